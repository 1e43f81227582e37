"""Ingest: read a FITS file from indical or any capture program, classify it and measure it.

A file that can't be read or classified raises FitsError with the reason; `ingest_paths` turns
those into skipped entries so one bad file never stops a batch."""

from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from indical.calib.config import CameraConfig
from indical.calib.provenance import combines_frames, is_processed_by_another_program
from indical.calib.rawio import RawImage, open_raw
from indical.errors import FitsError
from indical.fits.keywords import ExposureError, header_to_meta
from indical.frame import FrameMeta, FrameType
from indical.sinks import is_rejected_path

# Set by `indical calibrate` in every calibrated light it writes.
CALIBRATED_KEY = "CALIBRAT"
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.fz", ".fit.fz", ".fz", ".fits.gz", ".fit.gz")
_STAT_SAMPLES = 1_000_000


@dataclass(frozen=True)
class FrameRecord:
    """What the library knows about one frame file: where, which content, how it was taken,
    its size in pixels and robust statistics (median and median absolute deviation, ADU)."""

    path: str
    sha256: str
    meta: FrameMeta
    width: int
    height: int
    median_adu: float
    mad_adu: float
    id: int | None = None

    @property
    def config(self) -> CameraConfig:
        return CameraConfig.from_meta(self.meta, self.width, self.height)


def is_fits_name(path: Path) -> bool:
    name = path.name.lower()
    return not name.startswith(".") and name.endswith(FITS_SUFFIXES)


def _rejected_by_a_sequence(path: Path, top: Path) -> bool:
    """Frames a sequence kept in a rejected/ folder are not calibration frames."""
    return is_rejected_path(path.relative_to(top))


def file_sha256(path: Path) -> str:
    """The library's identity of a frame file: the SHA-256 of its bytes, as hex."""
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        raise FitsError(path, f"can't be read ({exc.strerror or exc})") from exc


def is_master_header(header) -> bool:
    """True for masters and stacks of any program (IMAGETYP 'Master Flat' and the like,
    Siril's STACKCNT, NCOMBINE > 1, PixInsight's ImageIntegration): never raw inputs."""
    return combines_frames(header)


def robust_stats(image: RawImage) -> tuple[float, float]:
    """Median and MAD (ADU) from an even subsample of about a million pixels: exact enough to
    classify frames and normalise flats, and cheap on a Raspberry Pi."""
    step = max(1, int(np.sqrt(image.raw.size / _STAT_SAMPLES)))
    sample = np.asarray(image.raw[::step, ::step], dtype=np.float64) * image.bscale + image.bzero
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return float("nan"), float("nan")
    med = float(np.median(sample))
    return med, float(np.median(np.abs(sample - med)))


def check_pixels(image: RawImage) -> None:
    """Refuse NaN or infinite pixels and frames that are all zero (failed readouts)."""
    raw = image.raw
    if raw.dtype.kind == "f":
        n_bad = int(np.count_nonzero(~np.isfinite(raw)))
        if n_bad:
            raise FitsError(image.path, f"{n_bad} pixels are NaN or infinite; a raw frame never "
                                        "has them (was it already processed?)")
    low, high = raw.min(), raw.max()
    if low == high and float(low) * image.bscale + image.bzero == 0.0:
        raise FitsError(image.path, "every pixel is zero (a failed readout); delete or move the file")


def inspect_file(path: Path, *, frame_type: FrameType | None = None) -> FrameRecord:
    """Read, classify and measure one FITS file. `frame_type` overrides the header's IMAGETYP.

    Raises FitsError naming the file: unreadable or truncated, unknown type, NaN pixels, all
    pixels zero."""
    path = Path(path)
    if not path.is_file():
        raise FitsError(path, "no such file")
    with open_raw(path) as image:
        processed = is_processed_by_another_program(image.header,
                                                    float_data=image.raw.dtype.kind == "f")
        if processed:
            raise FitsError(path, f"is {processed}")
        if CALIBRATED_KEY in image.header:
            raise FitsError(path, "is a calibrated light (written by indical calibrate); "
                                  "raw frames only")
        if image.header.get("REJECTED"):
            raise FitsError(path, f"was rejected when taken ({image.header['REJECTED']}); "
                                  "kept for inspection, not for calibration")
        check_pixels(image)
        median, mad = robust_stats(image)
        width, height, header = image.width, image.height, image.header
    try:
        meta = header_to_meta(header, frame_type=frame_type)
    except ExposureError as exc:
        raise FitsError(path, str(exc)) from exc
    except ValueError as exc:
        raise FitsError(path, f"can't tell what kind of frame this is: {exc}; "
                              "give the type explicitly") from exc
    return FrameRecord(path=str(path.resolve()), sha256=file_sha256(path), meta=meta,
                       width=width, height=height, median_adu=median, mad_adu=mad)


@dataclass
class IngestReport:
    """Frames read, and files skipped with the reason (the batch goes on past them)."""

    records: list[FrameRecord]
    skipped: list[tuple[Path, str]]


def find_fits(paths: Iterable[Path], *, unreadable: list[tuple[Path, str]] | None = None,
              empty_ok: bool = False) -> Iterator[Path]:
    """FITS files named or found (recursively) in folders, in a stable order.

    A folder that can't be listed (permissions) raises FitsError naming it, or, when
    `unreadable` is a list, is added to it with the reason and the search goes on. A folder
    named on the command line that holds no FITS file raises FitsError (unless `empty_ok`)."""
    for p in paths:
        p = Path(p)
        if not p.is_dir():
            yield p
            continue
        found: list[Path] = []
        problems: list[tuple[Path, str]] = []

        def note(exc: OSError) -> None:
            problems.append((Path(exc.filename or p), "can't be read (permission denied); "
                             "fix its permissions or leave it out" if exc.errno == errno.EACCES
                             else f"can't be read ({exc.strerror or exc})"))

        for folder, dirs, files in os.walk(p, onerror=note):
            dirs.sort()
            for name in files:
                q = Path(folder) / name
                if is_fits_name(q) and not _rejected_by_a_sequence(q, p) and q.is_file():
                    found.append(q)
        if problems and unreadable is None:
            raise FitsError(*problems[0])
        if unreadable is not None:
            unreadable.extend(problems)
        if not found and not problems and not empty_ok:
            raise FitsError(p, "no FITS files in it (.fits, .fit, .fts, also compressed); "
                               "check the folder")
        yield from sorted(found)


def ingest_paths(paths: Iterable[Path], *, frame_type: FrameType | None = None,
                 progress: Callable[[Path], None] | None = None) -> IngestReport:
    """Inspect every file; bad ones are reported in `skipped`, never raised."""
    report = IngestReport([], [])
    for path in paths:
        try:
            report.records.append(inspect_file(path, frame_type=frame_type))
        except FitsError as exc:
            report.skipped.append((Path(path), exc.problem))
        if progress is not None:
            progress(Path(path))
    return report
