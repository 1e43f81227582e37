"""Raw pixel access: the stored integers of a FITS image, memory-mapped, with BZERO and BSCALE
kept apart so callers scale one chunk at a time (astropy refuses to memory-map scaled data, and
scaling a whole stack at once is what makes other tools slow and memory-hungry). Plain files are
read without astropy (`indical.fits.header`); tile-compressed and gzipped ones through it."""

from __future__ import annotations

import mmap
import os
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from indical.errors import FitsError
from indical.fits.header import BLOCK, Header, HeaderError, read_header_at

_BITPIX = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
_PAGE = mmap.PAGESIZE


@dataclass
class RawImage:
    """A 2-D image's stored values (`raw`, shape height x width), its scaling and its header
    (merged with the primary header for extension HDUs)."""

    path: Path
    raw: np.ndarray
    bzero: float
    bscale: float
    header: Header
    _mm: mmap.mmap | None = None
    file_offset: int | None = None  # where the stored values start in `path`; None: not in it

    @property
    def height(self) -> int:
        return int(self.raw.shape[0])

    @property
    def width(self) -> int:
        return int(self.raw.shape[1])

    @property
    def exact_in_float32(self) -> bool:
        """True when every physical value is an integer below 2^24 or already float32."""
        kind, size = self.raw.dtype.kind, self.raw.dtype.itemsize
        if kind == "f":
            return size == 4 and self.bscale == 1.0 and self.bzero == 0.0
        return size <= 2 and self.bscale == 1.0 and float(self.bzero).is_integer()

    def rows(self, start: int, stop: int, dtype: np.dtype, out: np.ndarray | None = None) -> np.ndarray:
        """Physical values of rows [start, stop) as `dtype` (BSCALE and BZERO applied)."""
        block = self.raw[start:stop]
        if out is None:
            out = np.empty(block.shape, dtype=dtype)
        np.copyto(out, block, casting="unsafe")
        if self.bscale != 1.0:
            out *= self.bscale
        if self.bzero != 0.0:
            out += self.bzero
        return out

    def _byte_range(self, start: int, stop: int) -> tuple[int, int]:
        row_bytes = self.width * self.raw.dtype.itemsize
        base = self.file_offset or 0
        begin = base + start * row_bytes
        end = base + stop * row_bytes
        begin_page = (begin // _PAGE) * _PAGE
        return begin_page, end - begin_page

    def release(self, start: int, stop: int) -> None:
        """Tell the kernel rows [start, stop) won't be read again, so mapped pages leave the
        process's resident memory (keeps peak memory bounded on a Raspberry Pi)."""
        if self._mm is None or not hasattr(self._mm, "madvise"):
            return
        begin, length = self._byte_range(start, stop)
        length = (length // _PAGE) * _PAGE  # whole pages only: the next rows share the last
        if length > 0:
            self._mm.madvise(mmap.MADV_DONTNEED, begin, length)


def _find_image(hdul, path: Path):
    """(index, header) of the first 2-D image HDU of an astropy HDU list (compressed files)."""
    from astropy.io import fits

    for index, hdu in enumerate(hdul):
        if not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
            continue
        naxis = int(hdu.header.get("NAXIS", 0))
        if naxis < 2:
            continue
        _check_axes(path, naxis, [int(hdu.header.get(f"NAXIS{i}", 1)) for i in range(3, naxis + 1)])
        header = _from_astropy(hdu.header)
        if index > 0:
            _merge_primary(header, _from_astropy(hdul[0].header))
        return index, header
    raise FitsError(path, "no 2-D image in any HDU")


def _from_astropy(header) -> Header:
    def plain(value):
        return value if isinstance(value, (str, int, float, bool, complex)) else None
    return Header((c.keyword, plain(c.value), c.comment) for c in header.cards)


def _merge_primary(header: Header, primary: Header) -> None:
    """Extension images (compressed files) keep the observation keywords in the primary HDU."""
    for card in primary.cards:
        if card.keyword not in header and card.keyword not in ("SIMPLE", "EXTEND", ""):
            header.append(card)


def _check_axes(path: Path, naxis: int, extra: list[int]) -> None:
    if naxis > 2 and any(n > 1 for n in extra):
        raise FitsError(path, f"image has {naxis} axes; indical combines 2-D frames only "
                              "(split colour cubes into planes first)")


@dataclass(frozen=True)
class _Plain:
    """Where a plain (uncompressed) image's stored values are in its file."""

    header: Header
    offset: int
    bitpix: int
    height: int
    width: int


def _data_bytes(header: Header) -> int:
    naxis = int(header.get("NAXIS", 0) or 0)
    if naxis == 0:
        return 0
    count = 1
    for i in range(1, naxis + 1):
        count *= int(header.get(f"NAXIS{i}", 0) or 0)
    bitpix = abs(int(header.get("BITPIX", 8) or 8))
    gcount = int(header.get("GCOUNT", 1) or 1)
    pcount = int(header.get("PCOUNT", 0) or 0)
    return bitpix // 8 * gcount * (pcount + count)


def _locate_plain(path: Path) -> _Plain | None:
    """The first 2-D image of a plain FITS file, read without astropy; None when the image is
    tile-compressed (astropy decompresses those). Raises FitsError naming the file."""
    with open(path, "rb") as fh:
        start = fh.read(9)
        if start != b"SIMPLE  =":
            raise FitsError(path, "not a readable FITS file (it does not start with SIMPLE)")
        size = os.fstat(fh.fileno()).st_size
        offset = 0
        primary: Header | None = None
        while offset < size:
            try:
                header, data = read_header_at(fh, offset, where=f"HDU at byte {offset}")
            except EOFError:
                break
            except HeaderError as exc:
                raise FitsError(path, f"not a readable FITS file ({exc})") from None
            if primary is None:
                primary = header
            xtension = str(header.get("XTENSION", "")).strip().upper()
            if xtension == "BINTABLE" and header.get("ZIMAGE") is True:
                return None
            naxis = int(header.get("NAXIS", 0) or 0)
            if naxis >= 2 and (header is primary or xtension in ("IMAGE", "IUEIMAGE")):
                _check_axes(path, naxis, [int(header.get(f"NAXIS{i}", 1) or 1)
                                          for i in range(3, naxis + 1)])
                bitpix = int(header.get("BITPIX", 0) or 0)
                if bitpix not in _BITPIX:
                    raise FitsError(path, f"unsupported BITPIX {bitpix}")
                if header is not primary:
                    _merge_primary(header, primary)
                return _Plain(header, data, bitpix, int(header["NAXIS2"]), int(header["NAXIS1"]))
            span = _data_bytes(header)
            offset = data + span + (-span % BLOCK)
    raise FitsError(path, "no 2-D image in any HDU")


def _open_with_astropy(path: Path):
    """Compressed and gzipped files: astropy decompresses; returns (pixels, header, bzero,
    bscale) with the stored (unscaled) values."""
    from astropy.io import fits

    try:
        with warnings.catch_warnings(record=True):
            # astropy warns about a short file; its error (below) says what is wrong
            warnings.simplefilter("always")
            with fits.open(path, memmap=False, do_not_scale_image_data=True) as hdul:
                index, header = _find_image(hdul, path)
                hdu = hdul[index]
                height, width = int(hdu.header["NAXIS2"]), int(hdu.header["NAXIS1"])
                pixels = np.ascontiguousarray(hdu.data).reshape(height, width)
    except FitsError:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError, EOFError) as exc:
        raise FitsError(path, f"not a readable FITS file ({exc})") from exc
    return pixels, header, float(header.get("BZERO", 0.0)), float(header.get("BSCALE", 1.0))


@contextmanager
def open_raw(path: Path, *, scratch_dir: Path | None = None) -> Iterator[RawImage]:
    """Memory-map an image's stored values. Compressed (tile-compressed or gzipped) images are
    decompressed once into a scratch file (removed afterwards) and mapped from there.

    Raises FitsError naming the file: not FITS, truncated, no 2-D image, unsupported BITPIX."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            gzipped = fh.read(2) == b"\x1f\x8b"
        plain = None if gzipped else _locate_plain(path)
    except OSError as exc:
        raise FitsError(path, f"can't be read ({exc.strerror or exc})") from exc
    if plain is None:
        pixels, header, bzero, bscale = _open_with_astropy(path)
        with tempfile.TemporaryDirectory(prefix="indical-", dir=scratch_dir) as tmp:
            scratch = np.lib.format.open_memmap(Path(tmp) / "image.npy", mode="w+",
                                                dtype=pixels.dtype, shape=pixels.shape)
            scratch[:] = pixels
            del pixels
            scratch.flush()
            yield RawImage(path, scratch, bzero, bscale, header)
            del scratch
        return
    header = plain.header
    dtype = np.dtype(_BITPIX[plain.bitpix])
    span = plain.height * plain.width * dtype.itemsize
    size = path.stat().st_size
    if plain.offset + span > size:
        raise FitsError(path, f"truncated: the header promises {plain.offset + span} bytes but "
                              f"the file has {size}")
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        raw = np.frombuffer(mm, dtype=dtype, count=plain.height * plain.width,
                            offset=plain.offset).reshape(plain.height, plain.width)
        yield RawImage(path, raw, float(header.get("BZERO", 0.0)), float(header.get("BSCALE", 1.0)),
                       header, mm, file_offset=plain.offset)
        del raw
    finally:
        try:
            mm.close()
        except BufferError:
            pass  # a caller still holds a view; the mapping goes when that view does
