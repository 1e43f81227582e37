"""Reading and writing frames as FITS files. Writes are atomic: a temporary file in the same
folder, flushed to disk, then linked into place, so no reader ever sees half a file and an
existing file is never overwritten by accident."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from indical.atomic import atomic_file
from indical.errors import FitsError
from indical.fits.keywords import header_to_meta, meta_to_header
from indical.frame import Frame, FrameType


def frame_to_hdul(frame: Frame) -> fits.HDUList:
    header = meta_to_header(frame.meta)
    hdu = fits.PrimaryHDU(data=frame.data, header=header)
    return fits.HDUList([hdu])


def write_atomic(hdul: fits.HDUList, path: Path, *, overwrite: bool = False,
                 fsync: bool = True) -> Path:
    """Write an HDU list to `path` atomically (see indical.atomic.atomic_file).

    Without `overwrite`, raises FileExistsError if `path` exists."""
    with atomic_file(path, overwrite=overwrite, fsync=fsync) as fh:
        hdul.writeto(fh)
    return Path(path)


def write_frame(frame: Frame, path: Path, *, overwrite: bool = False) -> Path:
    return write_atomic(frame_to_hdul(frame), path, overwrite=overwrite)


def _read_image(path: Path) -> tuple[np.ndarray, fits.Header]:
    with fits.open(path, memmap=False) as hdul:
        hdu = next((h for h in hdul if h.data is not None and h.data.ndim >= 2), None)
        if hdu is None:
            raise FitsError(path, "no image data in any HDU")
        data = np.asarray(hdu.data)
        header = hdu.header.copy()
        if hdu is not hdul[0]:
            # compressed files keep the observation keywords in the primary header
            for card in hdul[0].header.cards:
                if card.keyword not in header and card.keyword not in ("SIMPLE", "EXTEND"):
                    header.append(card)
    return data, header


def read_frame(path: Path, *, frame_type: FrameType | None = None) -> Frame:
    """Read a frame written by indical or another capture program.

    Raises FitsError naming the file when it can't be read or classified."""
    path = Path(path)
    try:
        # Files from other programs are often not quite FITS-compliant (null padding, odd
        # cards); read what can be read and let the checks below decide.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            data, header = _read_image(path)
    except FitsError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise FitsError(path, f"not a readable FITS file ({exc})") from exc
    try:
        meta = header_to_meta(header, frame_type=frame_type)
    except ValueError as exc:
        raise FitsError(path, str(exc)) from exc
    return Frame(data, meta)
