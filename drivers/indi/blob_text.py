"""The base64 text of one frame over TCP, decoded into the frame piece by piece as it arrives.

Each piece of text the socket delivers is decoded (pybase64: SIMD, and it lets other threads
run meanwhile) and handed to a `FitsAssembler`, which converts a plain image's pixels into the
frame's array at once: when the last piece arrives, only it is left to do. Pieces are decoded
in multiples of 32 characters (24 bytes), so a piece's bytes always end on a pixel boundary of
any FITS type (FITS data starts on a 2880-byte block, itself a multiple of 24).

Line breaks (drivers that send base64 themselves may put one every 72 characters) are taken
out first. Text that can't be decoded is kept as an error for when the frame is complete:
a frame is whole or an error."""

from __future__ import annotations

import pybase64

from indical.drivers.indi.fits_blob import FitsAssembler
from indical.errors import DeviceError

_GROUP = 32          # characters decoded together: 24 bytes, a whole number of any pixel


class BlobText:
    """One oneBLOB's text (`feed` in order), then `end` and the assembler's `finish`."""

    def __init__(self, device: str, blob_format: str, size: int) -> None:
        self.assembler = FitsAssembler(device, blob_format, size)
        self._left = b""                 # fewer than _GROUP characters waiting for more
        self.error: str | DeviceError = ""

    @property
    def length(self) -> int:
        """Bytes of the file decoded so far."""
        return self.assembler.length

    def feed(self, buf: bytes | bytearray, start: int = 0, end: int | None = None) -> None:
        """Decode the text in buf[start:end] (read in place, not copied, unless it holds line
        breaks to take out or completes a group begun in the last piece)."""
        end = len(buf) if end is None else end
        if self.error or end <= start:
            return
        piece: bytes | memoryview
        # INDI drivers break lines with "\n" only; any other white space makes the strict
        # decoder refuse the text (one scan of each piece, not four)
        if buf.find(b"\n", start, end) >= 0:
            piece = bytes(buf[start:end]).translate(None, b" \t\r\n")
        else:
            piece = memoryview(buf)[start:end]
        if self._left:
            need = _GROUP - len(self._left)
            if len(piece) < need:
                self._left += bytes(piece)
                return
            group, self._left = self._left + bytes(piece[:need]), b""
            self._decode(group)
            piece = piece[need:]
        whole = len(piece) - len(piece) % _GROUP
        if whole < len(piece):
            self._left = bytes(piece[whole:])
        if whole:
            self._decode(piece[:whole])

    def _decode(self, text: bytes | memoryview) -> None:
        if self.error:
            return
        try:
            self.assembler.feed(pybase64.b64decode(text, validate=True))
        except DeviceError as exc:
            self.error = exc
        except ValueError as exc:
            self.error = f"the frame's base64 text is damaged ({exc})"

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
