"""The streaming combine driver: frames stay on disk; rows are read block by block (or in
chunks sized to the memory limit) and combined in parallel by the C kernel (`native`, run by
`run_native`). Each frame is read once; resident memory is the output, (for flats) the
precalibration image and the blocks or chunk being combined."""

from __future__ import annotations

import ctypes
import math
import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from indical.calib.combine import native, run_native
from indical.calib.combine.network import cached_network
from indical.calib.combine.options import CombineOptions
from indical.calib.combine.plan import BE_INT16, CombinePlan
from indical.calib.rawio import RawImage, open_raw
from indical.errors import FitsError

DEFAULT_MEMORY_LIMIT = 512 * 1024 * 1024
_LEVEL_ROWS = 64


@dataclass(frozen=True)
class CombineInput:
    """What to combine and how: the frames, whether to normalise them multiplicatively to a
    common level (flats), what to subtract first (an image and/or a pedestal, in ADU), the
    memory budget for the chunk cube, and whether to return a rejection counts map."""

    paths: Sequence[Path]
    options: CombineOptions = field(default_factory=CombineOptions)
    normalise: bool = False
    precal_image: np.ndarray | None = None
    pedestal_adu: float = 0.0
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT
    rejection_map: bool = False
    levels_adu: Sequence[float] | None = None  # already measured (after precalibration)
    #: flats of a colour (Bayer) sensor: scale each of the four positions of the 2x2 cell on
    #: its own (a sky flat's colour changes through twilight), each to its median level
    per_cell_position: bool = False
    cell_levels_adu: Sequence[np.ndarray] | None = None  # already measured: per frame, 2 x 2


@dataclass
class CombineResult:
    """The combined image (float32), per-pixel rejection counts if asked, the options actually
    used (auto resolved), and per frame the level (median after precalibration) and scale;
    scaled per CFA cell position, `cell_scales` holds each frame's 2 x 2 factors (and `scales`
    their mean, for display)."""

    data: np.ndarray
    rejected: np.ndarray | None
    options: CombineOptions
    levels_adu: list[float]
    scales: list[float]
    cell_scales: list[np.ndarray] | None = None


class ShapeMismatch(FitsError):
    """Frames of different sizes can't be combined; the message lists every size and file."""


def check_same_shape(images: Sequence[RawImage]) -> None:
    shapes: dict[tuple[int, int], list[Path]] = {}
    for im in images:
        shapes.setdefault((im.height, im.width), []).append(im.path)
    if len(shapes) > 1:
        lines = [f"{w}x{h}: {', '.join(p.name for p in ps)}" for (h, w), ps in sorted(shapes.items())]
        raise ShapeMismatch(images[0].path.parent,
                            "frames of different sizes can't be combined (group them with "
                            "--group size):\n  " + "\n  ".join(lines))


def measure_level(image: RawImage, precal: np.ndarray | None, pedestal: float) -> float:
    """Median (ADU, after precalibration) of a sparse grid: 64 evenly spaced rows, every 4th
    column. Touches only those rows' pages; the median of ~50 000 samples is far more precise
    than any flat normalisation needs."""
    rows = np.unique(np.linspace(0, image.height - 1, min(_LEVEL_ROWS, image.height)).astype(int))
    if precal is None:
        level = _level_from_file(image, rows, pedestal)
        if level is not None:
            return level
    sample = _read_rows(image, rows)[:, ::4].astype(np.float64) * image.bscale + image.bzero
    sample -= pedestal
    if precal is not None:
        sample -= precal[rows, ::4]
    return float(np.median(sample))


def measure_cell_levels(image: RawImage, precal: np.ndarray | None, pedestal: float) -> np.ndarray:
    """measure_level for each position of the 2x2 CFA cell: a 2 x 2 array, [row parity,
    column parity], each the median (ADU, after precalibration) of that position's pixels on
    64 evenly spaced pairs of rows, every other column of the position."""
    if image.height < 2 or image.width < 2:
        raise FitsError(image.path, f"is {image.width}x{image.height} pixels: a colour frame "
                                    "has at least one 2x2 cell")
    evens = np.unique(np.linspace(0, image.height - 2, _LEVEL_ROWS).astype(int) // 2 * 2)
    rows = np.stack([evens, evens + 1], axis=1).ravel()   # each even row, then the odd below
    sample = _read_rows(image, rows).astype(np.float64) * image.bscale + image.bzero
    sample -= pedestal
    if precal is not None:
        sample -= precal[rows, :]
    levels = np.empty((2, 2))
    for dy in (0, 1):
        for dx in (0, 1):
            levels[dy, dx] = np.median(sample[dy::2, dx::4])
    return levels


def _read_rows(image: RawImage, rows: np.ndarray) -> np.ndarray:
    """The stored values of some rows: read with pread from a plain file (touching the memory
    map faults in whole large folios around each row: 20 frames of 26 MP sampled through the
    map took a build's peak resident memory from 0.2 to 1.1 GB), else from `raw`."""
    offset = run_native.plain_file_offset(image)
    if offset is None:
        return np.asarray(image.raw[rows, :])
    row_bytes = image.width * image.raw.dtype.itemsize
    out = np.empty((len(rows), image.width), dtype=image.raw.dtype)
    try:
        fd = os.open(image.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FitsError(image.path, f"can't open it again to read its pixels: {exc}") from exc
    try:
        for i, r in enumerate(rows):
            got = os.pread(fd, row_bytes, offset + int(r) * row_bytes)
            if len(got) != row_bytes:
                raise FitsError(image.path, f"can't read row {r} of its pixels (short read)")
            out[i] = np.frombuffer(got, dtype=image.raw.dtype)
    except OSError as exc:
        raise FitsError(image.path, f"can't read its pixels ({exc})") from exc
    finally:
        os.close(fd)
    return out


def _level_from_file(image: RawImage, rows: np.ndarray, pedestal: float) -> float | None:
    """measure_level's median, the same number, read by the C kernel with pread when the frame
    is 16-bit integers in a plain file (faulting in the mapped rows cost more than the rest);
    None when that does not apply here."""
    offset = run_native.plain_file_offset(image)
    if (offset is None or image.raw.dtype != BE_INT16 or image.bscale != 1.0
            or not float(image.bzero).is_integer() or not float(pedestal).is_integer()):
        return None
    kernel = native.kernel()
    rows32 = np.ascontiguousarray(rows, dtype=np.int32)
    try:
        fd = os.open(image.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FitsError(image.path, f"can't open it again to read its pixels: {exc}") from exc
    try:
        level = kernel.level_be16(fd, offset, image.width, rows32.ctypes.data, rows32.size, 4,
                                  float(image.bzero) - float(pedestal))
        err = ctypes.get_errno()
    finally:
        os.close(fd)
    if math.isnan(level):
        raise FitsError(image.path, f"can't read its pixels ({os.strerror(err) if err else 'short read'})")
    return level


def combine_files(job: CombineInput, *, progress: Callable[[int, int], None] | None = None,
                  rows: tuple[int, int] | None = None) -> CombineResult:
    """Combine the frames of `job` into one float32 image. Raises FitsError naming a file that
    can't be read, ShapeMismatch listing sizes, TooFewFrames when the method needs more.

    `rows` (start, stop): combine only that band of rows; the result holds those rows. Every
    pixel is combined on its own, so bands put together are the whole image, bit for bit (give
    `levels_adu` so that every band scales the frames alike)."""
    paths = [Path(p) for p in job.paths]
    options = job.options.resolved(len(paths))
    options.check(len(paths))
    with ExitStack() as stack:
        images = [stack.enter_context(open_raw(p)) for p in paths]
        check_same_shape(images)
        height, width = images[0].height, images[0].width
        if job.precal_image is not None and job.precal_image.shape != (height, width):
            ph, pw = job.precal_image.shape
            raise ShapeMismatch(paths[0], f"precalibration image is {pw}x{ph} but the frames "
                                          f"are {width}x{height}")
        exact = all(im.exact_in_float32 for im in images) and job.pedestal_adu == int(job.pedestal_adu)
        dtype = np.dtype(np.float32 if exact else np.float64)

        levels = (list(job.levels_adu) if job.levels_adu is not None else
                  [measure_level(im, job.precal_image, job.pedestal_adu) for im in images])
        cell_scales = None
        if job.normalise:
            for im, level in zip(images, levels):
                if not level > 0:
                    raise FitsError(im.path, f"level after precalibration is {level:.1f} ADU; "
                                             "a flat needs light (is it a dark or bias?)")
            reference = float(np.median(levels))
            scales = [reference / lv for lv in levels]
            if job.per_cell_position:
                cell_scales = _cell_scales(job, images)
                scales = [float(np.mean(c)) for c in cell_scales]
        else:
            scales = [1.0] * len(images)

        code, params = options.kernel_params()
        first, stop = (0, height) if rows is None else rows
        if not 0 <= first < stop <= height:
            raise ValueError(f"rows {first}..{stop} are not a band of {height} rows")
        out = np.empty((stop - first, width), dtype=np.float32)
        rejected = np.empty((stop - first, width), dtype=np.uint16)
        plan = CombinePlan(
            images=images, dtype=dtype,
            # 16-bit frames (the usual case): kernels convert the stored integers themselves
            stored=(dtype == np.float32 and
                    all(im.raw.dtype == BE_INT16 and im.bscale == 1.0 for im in images)),
            offsets=np.asarray([im.bzero - job.pedestal_adu for im in images], dtype=np.float64),
            pedestal_adu=job.pedestal_adu,
            precal=(None if job.precal_image is None else
                    np.ascontiguousarray(job.precal_image, dtype=np.float64)),
            # per cell position: 4 x n factors, position 2 * row parity + column parity first
            scales=np.asarray(scales if cell_scales is None else
                              [[c[pos // 2, pos % 2] for c in cell_scales] for pos in range(4)],
                              dtype=np.float64).ravel(), code=code,
            params=np.asarray(params, dtype=np.float64), network=cached_network(len(images)),
            out=out, rejected=rejected, memory_limit_bytes=job.memory_limit_bytes,
            first_row=first, cell_scales=cell_scales is not None)
        run_native.run(plan, native.kernel(), progress)
    return CombineResult(data=out, rejected=rejected if job.rejection_map else None,
                         options=options, levels_adu=levels, scales=scales,
                         cell_scales=cell_scales)


def _cell_scales(job: CombineInput, images: Sequence[RawImage]) -> list[np.ndarray]:
    """Per frame, the 2 x 2 factors that bring each CFA cell position to that position's median
    level over the frames."""
    cells = (list(job.cell_levels_adu) if job.cell_levels_adu is not None else
             [measure_cell_levels(im, job.precal_image, job.pedestal_adu) for im in images])
    for im, level in zip(images, cells):
        bad = [(dx, dy) for dy in (0, 1) for dx in (0, 1) if not level[dy, dx] > 0]
        if bad:
            dx, dy = bad[0]
            raise FitsError(im.path, f"level after precalibration of the CFA position ({dx}, "
                                     f"{dy}) is {level[dy, dx]:.1f} ADU; a flat needs light "
                                     "in every colour (is it a dark or bias?)")
    reference = np.median(np.stack(cells), axis=0)
    return [reference / c for c in cells]
