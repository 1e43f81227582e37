"""Running a combine with the numba kernels: the fallback when the C kernel can't be built
(or INDICAL_NATIVE=0). Row chunks are copied from the memory
maps into one cube and combined in parallel by numba; mapped pages are released after each."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from indical.calib.combine.kernels import combine_rows, combine_rows_be16
from indical.calib.combine.plan import CombinePlan, Progress, convert_rows, even_chunk_rows
from indical.calib.combine.startup import blas_probe_skipped

# Row blocks per chunk: a few per core, so a core slowed by other work does not hold up the rest.
_N_BLOCKS = 4 * (os.cpu_count() or 1)


def run(plan: CombinePlan, progress: Progress | None) -> None:
    """Fill plan.out and plan.rejected."""
    n, height, width = len(plan.images), plan.height, plan.width
    itemsize = 2 if plan.stored else plan.dtype.itemsize
    step = even_chunk_rows(plan, itemsize)
    use_precal = plan.precal is not None
    precal = plan.precal if use_precal else np.zeros((1, 1))
    # one allocation for every chunk (each is a C-ordered view of its start): fresh
    # memory costs a page fault per 4 KiB on first touch
    space = np.empty(n * step * width, dtype=np.uint16 if plan.stored else plan.dtype)

    def chunk(start: int, stop: int) -> np.ndarray:
        return space[:n * (stop - start) * width].reshape(n, -1, width)

    def combine_chunk(cube: np.ndarray, start: int, stop: int) -> None:
        chunk_precal = precal[start:stop] if use_precal else precal
        out, rejected = plan.out[start:stop], plan.rejected[start:stop]
        if plan.stored:
            combine_rows_be16(cube, plan.offsets, chunk_precal, use_precal, plan.scales,
                              plan.code, plan.params, plan.network, out, rejected, _N_BLOCKS)
        else:
            combine_rows(cube, chunk_precal, use_precal, plan.scales, plan.code, plan.params,
                         plan.network, out, rejected, _N_BLOCKS)

    def load_kernel() -> None:  # an empty chunk: same argument types, no work
        with blas_probe_skipped():
            combine_chunk(chunk(0, 0), 0, 0)

    # the kernel is loaded from numba's cache (~0.2 s in a fresh process) while the first
    # chunk is copied (which releases the GIL)
    with ThreadPoolExecutor(max_workers=1) as loader:
        loading = loader.submit(load_kernel)
        for start in range(0, height, step):
            stop = min(height, start + step)
            cube = chunk(start, stop)
            for k, im in enumerate(plan.images):
                if plan.stored:
                    np.copyto(cube[k], im.raw[start:stop].view(np.uint16))
                else:
                    convert_rows(plan, k, start, stop, cube[k])
                im.release(start, stop)
            loading.result()  # at once after the first chunk; raises what loading raised
            combine_chunk(cube, start, stop)
            if progress is not None:
                progress(stop, height)
