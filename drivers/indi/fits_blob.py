"""A camera's FITS frame, decoded from the bytes INDI delivered straight into the frame's array.

Plain FITS images (what INDI cameras send with compression off) are read here in one pass over
the pixels: the header with indical's own card reader, the data converted from big-endian
(and BZERO-shifted) integers into a native array by one numpy operation, never through an
intermediate copy. Anything else (tile-compressed `.fits.fz`, zlib `.fits.z`, scaled data,
more than two axes) goes through astropy. Either way a frame is whole or an error: data shorter
than its header announces raises DeviceError."""

from __future__ import annotations

import io
import warnings
import zlib
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


def _header_end(buf: memoryview, device: str) -> int:
    """Byte offset where the primary header's data begins."""
    if bytes(buf[:9]) != b"SIMPLE  =":
        raise _unreadable(device, "it does not start with SIMPLE")
    for block in range(0, min(len(buf), _MAX_HEADER), BLOCK):
        if block + BLOCK > len(buf):
            break
        for i in range(block, block + BLOCK, CARD):
            if bytes(buf[i:i + 3]) == b"END" and not bytes(buf[i + 3:i + CARD]).strip():
                return block + BLOCK
    raise _unreadable(device, "truncated: it ends inside the header")


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
    start = _header_end(view, device)
    try:
        header = parse_header(bytes(view[:start]), where="frame header")
    except HeaderError as exc:
        raise _unreadable(device, str(exc)) from None
    bitpix = header.get("BITPIX")
    if header.get("NAXIS") != 2 or bitpix not in _STORED or header.get("BSCALE", 1) != 1:
        return None
    shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
    stored = np.dtype(_STORED[bitpix])
    count = shape[0] * shape[1]
    if start + count * stored.itemsize > len(view):
        raise _unreadable(device, f"truncated: {len(view) - start} of "
                                  f"{count * stored.itemsize} data bytes")
    raw = np.frombuffer(view, stored, count, start).reshape(shape)
    bzero = header.get("BZERO", 0)
    if bzero == 0:
        return raw.astype(stored.newbyteorder("="), copy=True), header
    unsigned = _UNSIGNED.get(bitpix)
    if unsigned is None or bzero != unsigned[0]:
        return None
    # stored - 2^(n-1) as signed is the same bits as unsigned with the top bit flipped: one
    # pass that byte-swaps and flips into the frame's own array
    out = np.empty(shape, unsigned[1])
    np.bitwise_xor(raw.view(stored.str.replace("i", "u")), unsigned[1](unsigned[0]), out=out)
    return out, header


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
