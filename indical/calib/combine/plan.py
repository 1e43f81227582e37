"""What a combine needs once the frames are open and checked: every array the kernel takes, the
output arrays, and how a row chunk of the frames becomes a cube of physical values (for frames
the kernel does not read from their files itself). Built by `engine`, run by `run_native`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from indical.calib.rawio import RawImage

BE_INT16 = np.dtype(">i2")
Progress = Callable[[int, int], None]


@dataclass
class CombinePlan:
    """One combine, ready to run. `stored`: every frame is big-endian 16-bit with BSCALE 1, so
    the kernel reads the stored integers and add `offsets[k]` (BZERO - pedestal) themselves;
    otherwise chunks are converted to `dtype` (float32 when exact, else float64) first."""

    images: Sequence[RawImage]
    dtype: np.dtype
    stored: bool
    offsets: np.ndarray          # float64, per frame: BZERO - pedestal
    pedestal_adu: float
    precal: np.ndarray | None    # float64, C-ordered, height x width
    scales: np.ndarray           # float64, per frame (4 x per frame with cell_scales)
    code: int                    # options.METHOD_CODE
    params: np.ndarray           # float64, options.kernel_params layout
    network: np.ndarray          # int64 comparator pairs for len(images) inputs
    out: np.ndarray              # float32 result, the rows combined x width
    rejected: np.ndarray         # uint16 rejection counts, the rows combined x width
    memory_limit_bytes: int
    first_row: int = 0           # frame row that out[0] holds (a band of a split combine)
    cell_scales: bool = False    # scales per 2x2 colour cell position (native.c FLAG_CELL_SCALES)

    @property
    def height(self) -> int:
        """Rows combined (the frames' height, or a band's)."""
        return self.out.shape[0]

    @property
    def width(self) -> int:
        return self.out.shape[1]


def chunk_rows(n_frames: int, width: int, height: int, itemsize: int, memory_limit: int) -> int:
    """Rows per chunk so that the cube (frames x rows x width) stays within half the budget
    (the rest holds the output, the precalibration image and the interpreter)."""
    per_row = max(1, n_frames * width * itemsize)
    return int(min(height, max(1, (memory_limit // 2) // per_row)))


def even_chunk_rows(plan: CombinePlan, itemsize: int) -> int:
    """chunk_rows, evened out: the same budget in chunks of (nearly) equal size, so one buffer
    serves every chunk."""
    step = chunk_rows(len(plan.images), plan.width, plan.height, itemsize, plan.memory_limit_bytes)
    return -(-plan.height // -(-plan.height // step))


def convert_rows(plan: CombinePlan, k: int, start: int, stop: int, target: np.ndarray) -> None:
    """Rows [start, stop) of frame k as physical values minus the pedestal, into `target`
    (float32 or float64): stored integer times BSCALE plus BZERO, computed in float64 where
    the kernel does (so every path sees the same values)."""
    im = plan.images[k]
    block = im.raw[start:stop]
    if im.bscale != 1.0:
        np.multiply(block, im.bscale, out=target, casting="unsafe")
        target += im.bzero - plan.pedestal_adu
    elif block.dtype == BE_INT16:
        np.add(block, np.float64(plan.offsets[k]), out=target, dtype=np.float64, casting="unsafe")
    else:
        np.add(block, plan.dtype.type(im.bzero - plan.pedestal_adu), out=target, casting="unsafe")
