"""A camera's FITS frame, decoded from the bytes INDI delivered straight into the frame's array.

Plain FITS images (what INDI cameras send with compression off) are read here in one pass over
the pixels: the header with indical's own card reader, the data converted from big-endian
(and BZERO-shifted) integers into a native array by one numpy operation, never through an
intermediate copy. `FitsAssembler` does the same for a file that arrives in pieces (the TCP
path decodes base64 as it comes): each piece's pixels are converted into the frame's array as
it arrives, so only the last piece is left when the last byte is in. Anything else
(tile-compressed `.fits.fz`, zlib `.fits.z`, scaled data, more than two axes) goes through
astropy. Either way a frame is whole or an error: data shorter than its header announces raises
DeviceError."""

from __future__ import annotations

import io
import warnings
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from indical.errors import DeviceError
from indical.fits.header import BLOCK, CARD, HeaderError, parse_header

#: BITPIX -> big-endian dtype as stored, and (BZERO -> native dtype it means)
_STORED = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
_UNSIGNED = {16: (32768, np.uint16), 32: (2147483648, np.uint32)}
_MAX_HEADER = 200 * BLOCK


def _unreadable(device: str, why: str) -> DeviceError:
    return DeviceError(device, "reading the frame", f"the driver sent unreadable FITS ({why})",
                       "is a non-FITS format switched on?")


def _header_end(buf: memoryview, device: str, *, first_block: int = 0) -> int:
    """Byte offset where the primary header's data begins; -1 when `buf` ends before the
    header does (the caller decides whether more may come). Blocks before `first_block` were
    looked at already."""
    if len(buf) >= 9 and bytes(buf[:9]) != b"SIMPLE  =":
        raise _unreadable(device, "it does not start with SIMPLE")
    for block in range(first_block, min(len(buf), _MAX_HEADER), BLOCK):
        if block + BLOCK > len(buf):
            break
        for i in range(block, block + BLOCK, CARD):
            if bytes(buf[i:i + 3]) == b"END" and not bytes(buf[i + 3:i + CARD]).strip():
                return block + BLOCK
    if len(buf) >= _MAX_HEADER:
        raise _unreadable(device, f"no END card in its first {_MAX_HEADER} bytes")
    return -1


@dataclass(frozen=True)
class _Layout:
    """How a plain 2-D image's data is stored and what array it becomes."""

    shape: tuple[int, int]
    stored: np.dtype          # big-endian, as in the file
    native: np.dtype          # the frame's array
    flip: Any                 # the BZERO offset as a top bit to flip (unsigned), or None

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * self.stored.itemsize

    @property
    def read_as(self) -> np.dtype:
        """The stored pixels' type as `convert` reads them: unsigned when the top bit flips."""
        return self.stored if self.flip is None else np.dtype(self.stored.str.replace("i", "u"))

    def convert(self, raw: np.ndarray, out: np.ndarray) -> None:
        """Stored pixels (read as `read_as`) -> the frame's: one pass that byte-swaps (and
        flips the top bit: stored - 2^(n-1) as signed is the same bits as unsigned with the
        top bit flipped)."""
        if self.flip is None:
            np.copyto(out, raw)
        else:
            np.bitwise_xor(raw, self.flip, out=out)


def _layout(header: Any) -> _Layout | None:
    """The layout of a plain 2-D image, or None for anything `decode_fits` gives to astropy."""
    bitpix = header.get("BITPIX")
    if header.get("NAXIS") != 2 or bitpix not in _STORED or header.get("BSCALE", 1) != 1:
        return None
    shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
    if min(shape) < 0:
        return None
    stored = np.dtype(_STORED[bitpix])
    bzero = header.get("BZERO", 0)
    if bzero == 0:
        return _Layout(shape, stored, stored.newbyteorder("="), None)
    unsigned = _UNSIGNED.get(bitpix)
    if unsigned is None or bzero != unsigned[0]:
        return None
    return _Layout(shape, stored, np.dtype(unsigned[1]), unsigned[1](unsigned[0]))


def _parse(view: memoryview, start: int, device: str) -> Any:
    try:
        return parse_header(bytes(view[:start]), where="frame header")
    except HeaderError as exc:
        raise _unreadable(device, str(exc)) from None


def _truncated(device: str, got: int, want: int) -> DeviceError:
    return _unreadable(device, f"truncated: {got} of {want} data bytes")


def decode_plain(buf: Any, device: str) -> tuple[np.ndarray, Any] | None:
    """(pixels, header) of a plain 2-D FITS image held in `buf` (bytes, bytearray, mmap,
    memoryview), or None when it is another kind of FITS file (see `decode_fits`). The pixels
    are a new array: nothing keeps `buf` (a mapped shared frame) in use afterwards."""
    view = memoryview(buf).cast("B")
    try:
        return _decode_view(view, device)
    finally:
        view.release()


def _decode_view(view: memoryview, device: str) -> tuple[np.ndarray, Any] | None:
    if len(view) < 9:
        raise _unreadable(device, "it does not start with SIMPLE")
    start = _header_end(view, device)
    if start < 0:
        raise _unreadable(device, "truncated: it ends inside the header")
    header = _parse(view, start, device)
    layout = _layout(header)
    if layout is None:
        return None
    if start + layout.nbytes > len(view):
        raise _truncated(device, len(view) - start, layout.nbytes)
    raw = np.frombuffer(view, layout.read_as, layout.nbytes // layout.stored.itemsize, start)
    out = np.empty(layout.shape, layout.native)
    layout.convert(raw.reshape(layout.shape), out)
    return out, header


class FitsAssembler:
    """A FITS file that arrives in pieces, in order (`feed`), read as it comes: once the
    header is in, a plain image's pixels go straight from each piece into the frame's array;
    any other file is kept whole for `decode_fits` at the end. `finish` gives (pixels, header)
    or raises DeviceError: a file that stopped short is an error, never a partial frame."""

    def __init__(self, device: str, blob_format: str = ".fits", size_hint: int = 0) -> None:
        self.device = device
        self.format = blob_format or ".fits"
        self.length = 0                          # bytes fed so far
        self._plain_wanted = self.format.lower() == ".fits"
        self._head = bytearray()                 # bytes up to the header's end, while unknown
        self._looked = 0                         # header blocks already searched for END
        self._layout: _Layout | None = None
        self._header: Any = None
        self._out: np.ndarray | None = None      # the frame's array, flat
        self._done = 0                           # data bytes converted into it
        self._part = b""                         # a pixel split between two pieces
        self._file: np.ndarray | None = None     # the whole file, when not read as it comes
        self._size_hint = size_hint
        self._read_as = np.dtype(np.uint8)       # the layout's, once known
        self._itemsize = 1
        self._nbytes = 0

    def feed(self, piece: Any) -> None:
        """Take the next bytes of the file (any bytes-like object; not kept after returning)."""
        view = memoryview(piece).cast("B")
        if not len(view):
            return
        at = self.length
        self.length += len(view)
        if self._out is not None:
            if not self._part and len(view) % self._itemsize == 0 and \
                    self._done + len(view) <= self._nbytes:
                self._convert(view)               # the usual piece: whole pixels, no padding
            else:
                self._pixels(view)
        elif self._file is not None:
            self._keep(view, at)
        else:
            self._head += view
            if self._plain_wanted:
                self._read_header()
            else:
                self._whole()

    def _read_header(self) -> None:
        head = memoryview(self._head)
        try:
            start = _header_end(head, self.device, first_block=self._looked)
            if start < 0:
                self._looked = len(head) - len(head) % BLOCK
                return
            header = _parse(head, start, self.device)
        finally:
            head.release()
        layout = _layout(header)
        if layout is None:
            self._whole()
            return
        try:
            self._out = np.empty(layout.shape[0] * layout.shape[1], layout.native)
        except MemoryError:
            raise _unreadable(self.device, f"its header announces {layout.shape[1]} x "
                                           f"{layout.shape[0]} pixels") from None
        self._layout, self._header = layout, header
        self._read_as, self._itemsize, self._nbytes = layout.read_as, layout.stored.itemsize, \
            layout.nbytes
        rest = bytes(self._head[start:])
        self._head = bytearray()
        self._pixels(memoryview(rest))

    def _pixels(self, view: memoryview) -> None:
        layout = self._layout
        assert layout is not None
        size = layout.stored.itemsize
        view = view[:max(0, layout.nbytes - self._done - len(self._part))]  # not the padding
        if self._part:                            # complete the pixel the last piece split
            need = size - len(self._part)
            self._part += bytes(view[:need])
            view = view[need:]
            if len(self._part) < size:
                return
            self._convert(memoryview(self._part))
            self._part = b""
        whole = len(view) - len(view) % size
        if whole:
            self._convert(view[:whole])
        if whole < len(view):
            self._part = bytes(view[whole:])

    def _convert(self, data: memoryview) -> None:
        layout, out = self._layout, self._out
        assert layout is not None and out is not None
        first = self._done // self._itemsize
        raw = np.frombuffer(data, self._read_as)
        layout.convert(raw, out[first:first + len(raw)])
        self._done += len(data)

    def _whole(self) -> None:
        """From here on keep every byte: a file this reader does not take apart as it comes."""
        self._file = np.empty(max(self._size_hint, 2 * len(self._head)), np.uint8)
        head, self._head = self._head, bytearray()
        self._keep(memoryview(head), 0)

    def _keep(self, view: memoryview, at: int) -> None:
        file = self._file
        assert file is not None
        end = at + len(view)
        if end > len(file):
            grown = np.empty(max(end, 2 * len(file)), np.uint8)
            grown[:at] = file[:at]
            self._file = file = grown
        file[at:end] = np.frombuffer(view, np.uint8)

    def finish(self) -> tuple[np.ndarray, Any]:
        """The frame's pixels and header; DeviceError when the file is incomplete or damaged."""
        if self._out is not None:
            layout = self._layout
            assert layout is not None
            if self._done < layout.nbytes:
                raise _truncated(self.device, self._done + len(self._part), layout.nbytes)
            return self._out.reshape(layout.shape), self._header
        if self._file is not None:
            return decode_fits(memoryview(self._file)[:self.length], self.device, self.format)
        return decode_fits(bytes(self._head), self.device, self.format)


def decode_fits(data: Any, device: str, blob_format: str = ".fits") -> tuple[np.ndarray, Any]:
    """Pixels and header of the first image in a FITS file held in memory: plain, fpack
    tile-compressed (.fits.fz, what INDI sends with compression on) or zlib-compressed (.z).

    A truncated or damaged file raises DeviceError: a frame is returned whole or not at all."""
    fmt = (blob_format or ".fits").lower()
    if not fmt.startswith(".fits"):
        raise DeviceError(device, "reading the frame", f"the driver sent {fmt!r}, not FITS",
                          "set the camera's transfer format to FITS")
    if fmt == ".fits":
        plain = decode_plain(data, device)
        if plain is not None:
            return plain
    from astropy.io import fits   # only for compressed or unusual frames
    try:
        if fmt.endswith(".z"):
            data = zlib.decompress(data)
        with warnings.catch_warnings():
            # astropy only warns about truncation and pads with zeros: make it an error
            warnings.simplefilter("error")
            with fits.open(io.BytesIO(data), memmap=False) as hdul:
                hdu = next((h for h in hdul if h.data is not None and h.data.ndim >= 2), None)
                if hdu is None:
                    raise DeviceError(device, "reading the frame", "the FITS file holds no image")
                return np.array(hdu.data), hdu.header.copy()
    except DeviceError:
        raise
    except (OSError, ValueError, TypeError, zlib.error, Warning) as exc:
        raise _unreadable(device, str(exc)) from exc
