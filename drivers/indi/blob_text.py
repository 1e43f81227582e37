"""The base64 text of one frame over TCP, decoded into the frame piece by piece as it arrives.

Each piece of text the socket delivers is decoded where it was received (pybase64: SIMD, and
it lets other threads run meanwhile) and handed to a `FitsAssembler`, which converts a plain
image's pixels into the frame's array at once: when the last piece arrives, only it is left to
do. Pieces are decoded in multiples of 32 characters (24 bytes), so a piece's bytes always end
on a pixel boundary of any FITS type (FITS data starts on a 2880-byte block, a multiple of 24),
and at most `_SLICE` characters at a time.

A piece is not searched first for the end of the text or for line breaks: the strict decoder
refuses both, and only a piece it refuses is looked at closely (the last one, or every one of
a driver that breaks lines, as some do every 72 characters: those are taken out). indiserver
starts and ends every text it encodes with a line break (`>\n...\n</oneBLOB>`): those two are
skipped, not taken for a text with lines. Text that can't be decoded is kept as an error for
when the frame is complete: a frame is whole or an error."""

from __future__ import annotations

import pybase64

from indical.drivers.indi.fits_blob import FitsAssembler
from indical.errors import DeviceError

_GROUP = 32          # characters decoded together: 24 bytes, a whole number of any pixel
#: Characters decoded at once (96 KiB of bytes): under glibc's 128 KiB threshold each slice's
#: bytes come from the heap and are reused, where a whole 1 MB piece's were new pages mapped
#: and faulted in every time (1 MP in 1 MB pieces: 3.1 ms whole, 1.0 ms in slices).
_SLICE = 131072
_SPACE = b" \t\r\n"


class BlobText:
    """One oneBLOB's text (`take` the pieces in order), then `end` and the assembler's
    `finish`."""

    def __init__(self, device: str, blob_format: str, size: int) -> None:
        self.assembler = FitsAssembler(device, blob_format, size)
        self._left = b""                 # fewer than _GROUP characters waiting for more
        self._lines = False              # the text has line breaks: look at every piece
        self._begun = False              # a character other than white space has come
        self.error: str | DeviceError = ""

    @property
    def length(self) -> int:
        """Bytes of the file decoded so far."""
        return self.assembler.length

    def take(self, buf: bytes | bytearray, start: int = 0, stop: int | None = None) -> int:
        """Decode the text in buf[start:stop] (read in place) up to its end: the index of the
        '<' that ends the text, or -1 when the text goes on after `stop`."""
        stop = len(buf) if stop is None else stop
        if self.error:
            return buf.find(b"<", start, stop)
        pos = start
        if not self._begun:              # indiserver's line break before the text
            while pos < stop and buf[pos] in _SPACE:
                pos += 1
            if pos == stop:
                return -1
            self._begun = True
        if self._lines:
            return self._closely(buf, pos, stop)
        if self._left:                   # complete the group the last piece began
            need = _GROUP - len(self._left)
            if stop - pos < need or _special(buf, pos, pos + need):
                return self._closely(buf, pos, stop)
            group, self._left = self._left + bytes(buf[pos:pos + need]), b""
            pos += need
            if not self._decode(group):
                return buf.find(b"<", pos, stop)
        whole = pos + (stop - pos) - (stop - pos) % _GROUP
        if whole > pos:
            text = memoryview(buf)
            while pos < whole:
                step = min(_SLICE, whole - pos)
                try:
                    data = pybase64.b64decode(text[pos:pos + step], validate=True)
                except ValueError:       # the end of the text, a line break, or damage
                    return self._closely(buf, pos, stop)
                pos += step
                if not self._give(data):
                    return buf.find(b"<", pos, stop)
        if _special(buf, pos, stop):
            return self._closely(buf, pos, stop)
        self._left = bytes(buf[pos:stop])
        return -1

    def _closely(self, buf: bytes | bytearray, pos: int, stop: int) -> int:
        """`take` for a piece that holds the text's end or line breaks (or damage)."""
        end = buf.find(b"<", pos, stop)
        last = stop if end < 0 else end
        while last > pos and buf[last - 1] in _SPACE:   # the line break ending the text
            last -= 1
        piece: bytes | memoryview
        # INDI drivers break lines with "\n" only; any other white space makes the strict
        # decoder refuse the text
        if buf.find(b"\n", pos, last) >= 0:
            self._lines = True
            piece = bytes(buf[pos:last]).translate(None, b" \t\r\n")
        else:
            piece = memoryview(buf)[pos:last]
        if self._left:
            need = _GROUP - len(self._left)
            if len(piece) < need:
                self._left += bytes(piece)
                return end
            group, self._left = self._left + bytes(piece[:need]), b""
            if not self._decode(group):
                return end
            piece = piece[need:]
        whole = len(piece) - len(piece) % _GROUP
        if whole < len(piece):
            self._left = bytes(piece[whole:])
        if whole:
            self._decode(piece[:whole])
        return end

    def _decode(self, text: bytes | memoryview) -> bool:
        for at in range(0, len(text), _SLICE):
            try:
                data = pybase64.b64decode(text[at:at + _SLICE], validate=True)
            except ValueError as exc:
                self.error = f"the frame's base64 text is damaged ({exc})"
                return False
            if not self._give(data):
                return False
        return True

    def _give(self, data: bytes) -> bool:
        try:
            self.assembler.feed(data)
        except DeviceError as exc:
            self.error = exc
            return False
        return True

    def end(self) -> FitsAssembler:
        """The text is complete: decode what is left and give the assembler (its `length` is
        the file's). ValueError when the text was damaged or cut inside a group, the
        assembler's DeviceError when the file could not be read as it came."""
        if self._left and not self.error:
            if len(self._left) % 4:
                self.error = f"the frame's base64 text ends inside a group " \
                             f"({len(self._left) % 4} characters left over)"
            else:
                left, self._left = self._left, b""
                self._decode(left)
        if isinstance(self.error, DeviceError):
            raise self.error
        if self.error:
            raise ValueError(self.error)
        return self.assembler


def _special(buf: bytes | bytearray, start: int, stop: int) -> bool:
    """Whether a few characters hold the text's end or a line break."""
    return buf.find(b"<", start, stop) >= 0 or buf.find(b"\n", start, stop) >= 0
