"""Running a combine with the C kernel (`native.c`), a block of rows per task on a small thread
pool (ctypes releases the GIL, so the blocks run on every core).

For 16-bit frames in plain files (the usual case) the kernel reads each block's rows of every
frame itself with pread into a small per-thread buffer: no memory maps to fault in, no cube,
resident memory is the output plus a megabyte or so per thread. Other frames (floating point,
32-bit, BSCALE, compressed) are converted chunk by chunk into a cube of physical values
(`plan.convert_rows`), and the kernel combines that."""

from __future__ import annotations

import ctypes
import errno
import os
import queue
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from typing import Callable

import numpy as np

from indical.calib.combine.native import NativeKernel
from indical.calib.combine.plan import CombinePlan, Progress, convert_rows, even_chunk_rows
from indical.calib.rawio import RawImage
from indical.errors import FitsError

_TASKS_PER_WORKER = 8  # blocks per thread: short enough to balance, long enough to not matter


def _workers() -> int:
    """One thread per core this process may run on (fewer than os.cpu_count() under taskset
    or a container's CPU set)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def plain_file_offset(image: RawImage) -> int | None:
    """Byte offset of the image's data in its file when it is read straight from the file
    (not a decompressed scratch copy), else None."""
    return image.file_offset


def _run_blocks(task: Callable[[int, int, np.ndarray], None], start: int, stop: int,
                work: "queue.SimpleQueue[np.ndarray]", pool: ThreadPoolExecutor, workers: int,
                done: Callable[[int], None]) -> None:
    """Rows [start, stop) in blocks on the pool; each task borrows a work buffer. Waits for
    all; the first error is raised after the others were cancelled or finished."""
    rows = stop - start
    per_task = max(1, -(-rows // (_TASKS_PER_WORKER * workers)))

    def one(r0: int, r1: int) -> int:
        buf = work.get()
        try:
            task(r0, r1, buf)
        finally:
            work.put(buf)
        return r1 - r0

    futures: list[Future[int]] = [pool.submit(one, r0, min(stop, r0 + per_task))
                                  for r0 in range(start, stop, per_task)]
    try:
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for f in finished:
                done(f.result())  # raises the task's error
    except BaseException:
        for f in futures:
            f.cancel()
        wait(futures)  # running blocks end before their files are closed
        raise


def _open_all(plan: CombinePlan, stack: ExitStack) -> np.ndarray | None:
    """A read-only descriptor per frame, closed when `stack` closes (after the pool stopped);
    None when the process runs out of descriptors (hundreds of frames under a low limit):
    the frames are then read through their memory maps instead."""
    fds = np.empty(len(plan.images), dtype=np.int32)
    with ExitStack() as opened:
        for k, im in enumerate(plan.images):
            try:
                fds[k] = os.open(im.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    return None
                raise FitsError(im.path, f"can't open it again to read its pixels: {exc}") from exc
            opened.callback(os.close, int(fds[k]))
        stack.push(opened.pop_all())
    return fds


def run(plan: CombinePlan, kernel: NativeKernel, progress: Progress | None) -> None:
    """Fill plan.out and plan.rejected with the C kernel: frame rows plan.first_row onwards."""
    n, height, width = len(plan.images), plan.height, plan.width
    first, end = plan.first_row, plan.first_row + height
    offsets = [plain_file_offset(im) for im in plan.images]
    from_files = plan.stored and all(o is not None for o in offsets)
    use_precal = plan.precal is not None
    flags = int(use_precal) | (2 if plan.cell_scales else 0)   # native.c's FLAG_* bits
    precal = plan.precal if use_precal else np.zeros((1, 1))
    network = np.ascontiguousarray(plan.network, dtype=np.int64)
    ptr = {name: arr.ctypes.data for name, arr in
           (("offsets", plan.offsets), ("precal", precal), ("scales", plan.scales),
            ("params", plan.params), ("network", network))}
    # the kernels write frame row r at out + r * width: a band's arrays start first_row rows
    # before that address (the kernels only touch the band's rows)
    ptr["out"] = plan.out.ctypes.data - first * width * plan.out.itemsize
    ptr["rejected"] = plan.rejected.ctypes.data - first * width * plan.rejected.itemsize
    n_pairs = int(network.shape[0])
    workers = _workers()
    work_bytes = kernel.work_bytes(n) + (kernel.read_bytes(n, width) if from_files else 0)
    work: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
    for _ in range(workers):
        work.put(np.empty(work_bytes, dtype=np.uint8))
    rows_done = 0

    def done(rows: int) -> None:
        nonlocal rows_done
        rows_done += rows
        if progress is not None:
            progress(rows_done, height)

    with ExitStack() as stack:
        fds = _open_all(plan, stack) if from_files else None
        from_files = fds is not None
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=workers,
                                                      thread_name_prefix="indical-combine"))
        if from_files:
            data_offsets = np.asarray(offsets, dtype=np.int64)

            def read_and_combine(r0: int, r1: int, buf: np.ndarray) -> None:
                failed = kernel.combine_be16_files(
                    fds.ctypes.data, data_offsets.ctypes.data, ptr["offsets"], n, width, r0, r1,
                    ptr["precal"], flags, ptr["scales"], plan.code, ptr["params"],
                    ptr["network"], n_pairs, ptr["out"], ptr["rejected"], buf.ctypes.data)
                if failed:
                    err = ctypes.get_errno()
                    im = plan.images[failed - 1]
                    raise FitsError(im.path, f"can't read rows {r0}-{r1 - 1} of its pixels "
                                             f"({os.strerror(err) if err else 'short read'})")

            _run_blocks(read_and_combine, first, end, work, pool, workers, done)
            return

        step = even_chunk_rows(plan, plan.dtype.itemsize)
        space = np.empty(n * step * width, dtype=plan.dtype)
        is_f64 = int(plan.dtype == np.float64)
        for start in range(first, end, step):
            stop = min(end, start + step)
            cube = space[:n * (stop - start) * width].reshape(n, -1, width)
            for k, im in enumerate(plan.images):
                convert_rows(plan, k, start, stop, cube[k])
                im.release(start, stop)

            def combine(r0: int, r1: int, buf: np.ndarray, cube: np.ndarray = cube,
                        start: int = start, stop: int = stop) -> None:
                kernel.combine_cube(cube.ctypes.data, is_f64, n, stop - start, width, start,
                                    r0, r1, ptr["precal"], flags, ptr["scales"],
                                    plan.code, ptr["params"], ptr["network"], n_pairs,
                                    ptr["out"], ptr["rejected"], buf.ctypes.data)

            _run_blocks(combine, start, stop, work, pool, workers, done)
