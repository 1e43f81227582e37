"""The C combine kernel against a small, slow numpy reference (combine_reference.py) bit for
bit (values, NaN positions and rejection counts) for every method, stack sizes 1 to 40, widths
that are not whole tiles, ties, precalibration, flat scales and BZERO offsets; its baseline and
AVX2 copies against each other; and its entry points (reading errors, descriptors, levels, a
missing extension)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

import combine_reference as ref
from indical.calib.combine import CombineInput, CombineOptions, combine_files, native
from indical.calib.combine.network import sorting_network
from indical.frame import FrameType
from indical.testing.frames import write_synthetic

# (method code, params): 0 sigma_low, 1 sigma_high, 2 use_median, 3 maxiters, 4 clip,
# 5 percentile_low, 6 percentile_high
CASES = [
    ("mean", 0, [3, 3, 1, 5, 1, 0.2, 0.1]),
    ("median", 1, [3, 3, 1, 5, 1, 0.2, 0.1]),
    ("minmax", 2, [3, 3, 1, 5, 1, 0.2, 0.1]),
    ("sigma-median-5", 3, [3.0, 3.0, 1, 5, 1, 0.2, 0.1]),
    ("sigma-mean-1", 3, [2.0, 2.0, 0, 1, 1, 0.2, 0.1]),
    ("sigma-median-none-asym", 3, [1.3, 2.6, 1, -1, 1, 0.2, 0.1]),
    ("sigma-mean-none-tight", 3, [0.8, 1.1, 0, -1, 1, 0.2, 0.1]),
    ("percentile", 6, [3, 3, 1, 5, 1, 0.01, 0.005]),
    ("winsorized-5", 4, [3.0, 3.0, 1, 5, 1, 0.2, 0.1]),
    ("winsorized-1", 4, [2.0, 2.5, 1, 1, 1, 0.2, 0.1]),
    ("winsorized-none-asym", 4, [1.2, 2.7, 1, -1, 1, 0.2, 0.1]),
    ("winsorized-none-tight", 4, [0.3, 0.2, 1, -1, 1, 0.2, 0.1]),   # most rejections refused
    ("linearfit-5", 5, [3.0, 3.0, 1, 5, 1, 0.2, 0.1]),
    ("linearfit-1", 5, [2.0, 2.5, 1, 1, 1, 0.2, 0.1]),
    ("linearfit-none-asym", 5, [1.1, 2.9, 1, -1, 1, 0.2, 0.1]),
    ("linearfit-none-tight", 5, [0.4, 0.3, 1, -1, 1, 0.2, 0.1]),
]
WIDTHS = [1, 5, 130]  # a tile is 128 columns


@pytest.fixture(scope="module")
def kernel():
    return native.kernel()


def stored_stack(rng, n, rows, width):
    """Big-endian 16-bit integers as stored in FITS (viewed as uint16): noise, outliers, rows of
    ties (few distinct values), a constant row, and the extremes of the type."""
    data = rng.normal(0, 20, (n, rows, width))
    hits = rng.random(data.shape)
    data[hits < 0.05] += 3000
    data[hits > 0.97] -= 800
    data[:, 0] = rng.integers(-2, 2, (n, width))   # ties and exact bounds
    data[:, 1] = 7                                  # constant stacks: std 0
    data[:, 2, :1] = -32768
    data[-1, 2, :1] = 32767
    ints = np.clip(np.rint(data), -32768, 32767).astype(np.int16)
    return ints.astype(">i2").view(np.uint16), ints


def native_files(kernel, tmp_path, raw, offsets, precal, scales, code, params, net):
    n, rows, width = raw.shape
    fds, starts = [], []
    for k in range(n):
        path = tmp_path / f"frame{k}.raw"
        header = 2880 * (1 + k % 2)
        path.write_bytes(b"\0" * header + raw[k].tobytes())
        fds.append(os.open(path, os.O_RDONLY))
        starts.append(header)
    fds_a = np.asarray(fds, np.int32)
    starts_a = np.asarray(starts, np.int64)
    out = np.full((rows, width), -1.0, np.float32)
    rej = np.full((rows, width), 999, np.uint16)
    use = precal is not None
    pre = precal if use else np.zeros((1, 1))
    work = np.empty(kernel.work_bytes(n) + kernel.read_bytes(n, width), np.uint8)
    try:
        for r0, r1 in ((0, 1), (1, rows)):  # two calls: row ranges start anywhere
            failed = kernel.combine_be16_files(
                fds_a.ctypes.data, starts_a.ctypes.data, offsets.ctypes.data, n, width, r0, r1,
                pre.ctypes.data, int(use), scales.ctypes.data, code, params.ctypes.data,
                net.ctypes.data, len(net), out.ctypes.data, rej.ctypes.data, work.ctypes.data)
            assert failed == 0
    finally:
        for fd in fds:
            os.close(fd)
    return out, rej


def native_cube(kernel, cube, precal, scales, code, params, net):
    n, rows, width = cube.shape
    out = np.full((rows, width), -1.0, np.float32)
    rej = np.full((rows, width), 999, np.uint16)
    use = precal is not None
    pre = precal if use else np.zeros((1, 1))
    work = np.empty(kernel.work_bytes(n), np.uint8)
    kernel.combine_cube(cube.ctypes.data, int(cube.dtype == np.float64), n, rows, width, 0, 0,
                        rows, pre.ctypes.data, int(use), scales.ctypes.data, code,
                        params.ctypes.data, net.ctypes.data, len(net), out.ctypes.data,
                        rej.ctypes.data, work.ctypes.data)
    return out, rej


def assert_identical(a, b, what):
    (out_a, rej_a), (out_b, rej_b) = a, b
    assert np.array_equal(out_a, out_b, equal_nan=True), f"{what}: values differ"
    assert np.array_equal(out_a.view(np.uint32)[~np.isnan(out_a)],
                          out_b.view(np.uint32)[~np.isnan(out_b)]), f"{what}: bits differ"
    assert np.array_equal(rej_a, rej_b), f"{what}: rejection counts differ"


FRAME_COUNTS = [*range(1, 21), 24, 31, 40]


def reference_files(raw_ints, offsets, precal, scales, code, params, net):
    """The reference for 16-bit frames: the kernel sees float32 values."""
    return ref.combine_cube(raw_ints + offsets[:, None, None], precal, scales, np.float32, net,
                            code, params)


@pytest.mark.parametrize("name, code, params", CASES, ids=[c[0] for c in CASES])
def test_kernel_equals_the_reference(kernel, tmp_path, name, code, params):
    rng = np.random.default_rng(code * 100 + len(name))
    rows = 3
    for n in FRAME_COUNTS:
        width = WIDTHS[n % len(WIDTHS)]
        raw, ints = stored_stack(rng, n, rows, width)
        p = np.asarray(params, np.float64)
        if code == 2:
            p[4] = min(p[4] + n % 3, (n - 1) // 2)  # clip 0..2, never all frames
        # the same offset and scale for every frame (bias, darks) lets the kernel sort the
        # stored integers; different ones (flats, mixed BZERO) take the general path
        offsets = (rng.choice([32768.0, 0.0, -17.25], n) if n % 4 == 0 else
                   np.full(n, rng.choice([32768.0, -17.25])))
        precal = rng.normal(3, 2, (rows, width)) if n % 2 else None
        scales = (rng.uniform(0.8, 1.25, n) if n % 3 == 0 else
                  np.full(n, 1.0 if n % 3 == 1 else 1.07))
        net = sorting_network(n)
        expect = reference_files(ints, offsets, precal, scales, code, p, net)
        what = f"{name}, {n} frames, width {width}"
        assert_identical(native_files(kernel, tmp_path, raw, offsets, precal, scales, code, p,
                                      net), expect, what + " (16-bit files)")
        physical = ints + offsets[:, None, None]
        assert_identical(native_cube(kernel, physical.astype(np.float32), precal, scales, code,
                                     p, net), expect, what + " (float32 cube)")
        if n % 5 == 0:  # float64 values (not exact in float32): their own reference
            assert_identical(native_cube(kernel, physical, precal, scales, code, p, net),
                             ref.combine_cube(physical, precal, scales, np.float64, net, code, p),
                             what + " (float64 cube)")


def test_kernel_equals_the_reference_with_nan_and_inf_precalibration(kernel, tmp_path):
    """Non-finite precalibration values reach every frame of a pixel alike."""
    rng = np.random.default_rng(4)
    raw, ints = stored_stack(rng, 10, 3, 12)
    precal = rng.normal(0, 3, (3, 12))
    precal[0, :5] = np.nan
    precal[1, :3] = np.inf
    precal[2, :3] = -np.inf
    net = sorting_network(10)
    for offsets in (np.full(10, 32768.0), np.linspace(0, 9, 10)):
        for _, code, params in CASES:
            p = np.asarray(params, np.float64)
            expect = reference_files(ints, offsets, precal, np.ones(10), code, p, net)
            got = native_files(kernel, tmp_path, raw, offsets, precal, np.ones(10), code, p, net)
            assert_identical(got, expect, f"code {code}, offsets {offsets[:2]}")


@pytest.mark.parametrize("n", [9, 12, 70])
def test_kernel_equals_the_reference_with_nans_and_infinities_and_many_frames(kernel, n):
    """Single NaNs and infinities among finite values (winsorized and linear fit then reject
    nothing: their sigma is NaN), and more frames than a small stack."""
    rng = np.random.default_rng(n)
    cube = rng.normal(100, 5, (n, 2, 11))
    cube[rng.random(cube.shape) < 0.03] += 400
    hits = rng.random(cube.shape)
    cube[hits < 0.01] = np.inf
    cube[hits > 0.99] = -np.inf
    cube[(hits > 0.5) & (hits < 0.51)] = np.nan
    cube[:, 0, :2] = np.nan
    net = sorting_network(n)
    scales = rng.uniform(0.9, 1.1, n)
    for _, code, params in CASES:
        p = np.asarray(params, np.float64)
        for dtype in (np.float32, np.float64):
            c = cube.astype(dtype)
            assert_identical(native_cube(kernel, c, None, scales, code, p, net),
                             ref.combine_cube(c, None, scales, dtype, net, code, p),
                             f"code {code} {p[:4]}, {n} frames, {np.dtype(dtype).name}")


def test_the_baseline_and_avx2_copies_give_the_same_bits(kernel, tmp_path):
    """One build, two copies of the kernel (the CPU picks): every method, 16-bit files, both
    cube types, flats' scales and precalibration, on enough pixels to use every vector path."""
    best = kernel.isa
    assert best == kernel.use_isa(-1)
    if os.uname().machine == "x86_64" and "avx2" in Path("/proc/cpuinfo").read_text():
        assert best == 1, "this CPU has AVX2: the AVX2 copy should run"
    rng = np.random.default_rng(11)
    try:
        for n in (5, 33):
            rows, width = 3, 260
            raw, ints = stored_stack(rng, n, rows, width)
            net = sorting_network(n)
            precal = rng.normal(3, 2, (rows, width))
            for offsets, scales in ((np.full(n, 32768.0), np.ones(n)),
                                    (rng.choice([0.0, -17.25], n), rng.uniform(0.8, 1.2, n)))[:n // 10 + 1]:
                physical = ints + offsets[:, None, None]
                for _, code, params in CASES:
                    p = np.asarray(params, np.float64)
                    runs = []
                    for isa in (0, best):
                        assert kernel.use_isa(isa) == isa
                        runs.append([native_files(kernel, tmp_path, raw, offsets, precal, scales,
                                                  code, p, net),
                                     native_cube(kernel, physical.astype(np.float32), None,
                                                 scales, code, p, net),
                                     native_cube(kernel, physical * 1.001, precal, scales, code,
                                                 p, net)])
                    for a, b in zip(*runs):
                        assert_identical(a, b, f"code {code} {p[:4]}, {n} frames")
    finally:
        kernel.use_isa(-1)


def _engine_results(paths, job_kwargs):
    return combine_files(CombineInput(paths, rejection_map=True, **job_kwargs))


@pytest.mark.parametrize("kind", ["float32", "compressed", "bscale"])
def test_frames_converted_first_combine_as_the_reference(tmp_path, kind):
    """Frames that are not plain 16-bit integers go through a converted chunk cube, in chunks,
    through the same kernel."""
    from astropy.io import fits

    rng = np.random.default_rng(6)
    paths, physical = [], []
    for i in range(9):
        data = rng.normal(500, 30, (21, 140))
        data[rng.random(data.shape) < 0.03] += 4000
        path = tmp_path / f"{kind}{i}.fits"
        header = fits.Header({"IMAGETYP": "Dark Frame", "EXPTIME": 10.0})
        if kind == "float32":
            fits.PrimaryHDU(data.astype(np.float32), header).writeto(path)
            physical.append(data.astype(np.float32))
        elif kind == "compressed":
            fits.HDUList([fits.PrimaryHDU(header=header),
                          fits.CompImageHDU(np.rint(data).astype(np.int16))]).writeto(path)
            physical.append(np.rint(data))
        else:
            hdu = fits.PrimaryHDU(np.rint(data).astype(np.int16), header)
            hdu.header["BSCALE"] = 0.5
            hdu.header["BZERO"] = 3.0
            hdu.writeto(path)
            physical.append(np.rint(data) * 0.5 + 3.0)
        paths.append(path)
    options = CombineOptions(method="sigma", sigma_low=2.0, sigma_high=2.5)
    got = _engine_results(paths, dict(options=options, memory_limit_bytes=1 << 16))
    code, params = options.kernel_params()
    expect = ref.combine_cube(np.asarray(physical), None, np.ones(9), np.float32,
                              sorting_network(9), code, params)
    assert got.rejected.sum() > 0
    assert_identical((got.data, got.rejected), expect, kind)


@pytest.mark.parametrize("job", [
    dict(options=CombineOptions(method="sigma", maxiters=None), memory_limit_bytes=1 << 16),
    dict(options=CombineOptions(method="winsorized"), normalise=True),
    dict(options=CombineOptions(method="percentile"), pedestal_adu=100.5),   # float64 cube
    dict(options=CombineOptions(method="linearfit"), pedestal_adu=100.0, normalise=True),
    dict(options=CombineOptions(method="minmax", clip=2), precal_image="ramp"),
], ids=["sigma-chunks", "winsorized-flats", "pedestal-f64", "linearfit-flats", "minmax-precal"])
def test_engine_equals_the_reference(tmp_path, job):
    """The engine's own arrays (levels, scales, offsets, precalibration) reach the kernel as
    the reference expects them, on the pread path and on the converted-cube path."""
    from astropy.io import fits

    paths = [write_synthetic(tmp_path / f"f{i}.fits", FrameType.FLAT, level_adu=9000 + 300 * i,
                             shape=(7, 133), seed=i, noise_adu=40.0) for i in range(11)]
    if job.get("precal_image") == "ramp":
        job = dict(job, precal_image=np.linspace(0, 50, 7 * 133).reshape(7, 133))
    got = _engine_results(paths, job)
    physical = np.asarray([fits.getdata(p).astype(np.float64) for p in paths])
    physical -= job.get("pedestal_adu", 0.0)
    code, params = got.options.kernel_params()
    dtype = np.float64 if job.get("pedestal_adu", 0.0) % 1 else np.float32
    expect = ref.combine_cube(physical, job.get("precal_image"), np.asarray(got.scales), dtype,
                              sorting_network(11), code, params)
    assert_identical((got.data, got.rejected), expect, str(job))


@pytest.mark.parametrize("stored", ["int16", "float32", "pedestal-f64"])
@pytest.mark.parametrize("method", ["sigma", "winsorized", "percentile", "linearfit", "median"])
def test_per_cell_scales_equal_the_reference(tmp_path, stored, method):
    """Colour flats scaled per 2x2 cell position (FLAG_CELL_SCALES): every frame's four
    positions take their own factor, on the pread path, the float32 cube and the float64 one,
    with a precalibration image, in both copies of the kernel."""
    from astropy.io import fits

    paths = [write_synthetic(tmp_path / f"f{i}.fits", FrameType.FLAT, level_adu=9000 + 300 * i,
                             shape=(7, 133), seed=i, noise_adu=40.0) for i in range(11)]
    if stored == "float32":
        for p in paths:
            fits.writeto(p, fits.getdata(p).astype(np.float32) + np.float32(0.25),
                         fits.getheader(p), overwrite=True)
    pedestal = 100.5 if stored == "pedestal-f64" else 0.0
    rng = np.random.default_rng(9)
    cells = [rng.uniform(3000, 12000, (2, 2)) for _ in paths]
    job = dict(options=CombineOptions(method=method), normalise=True, pedestal_adu=pedestal,
               precal_image=np.linspace(0, 50, 7 * 133).reshape(7, 133),
               per_cell_position=True, cell_levels_adu=cells)
    physical = np.asarray([fits.getdata(p).astype(np.float64) for p in paths]) - pedestal
    kernel = native.kernel()
    best = kernel.isa
    try:
        for isa in sorted({0, best}):
            kernel.use_isa(isa)
            got = _engine_results(paths, job)
            scales = np.asarray(got.cell_scales)
            assert scales.shape == (11, 2, 2) and np.ptp(scales[3]) > 0.1
            code, params = got.options.kernel_params()
            expect = ref.combine_cube(physical, job["precal_image"], scales,
                                      np.float64 if pedestal % 1 else np.float32,
                                      sorting_network(11), code, params)
            assert_identical((got.data, got.rejected), expect, f"{stored} isa {isa}")
    finally:
        kernel.use_isa(best)


def test_a_missing_extension_says_what_to_run(monkeypatch):
    monkeypatch.setitem(sys.modules, "indical.calib.combine._native", None)  # import fails
    native.kernel.cache_clear()
    try:
        with pytest.raises(native.KernelMissing, match=r"missing.*bootstrap\.sh install.*pip install"):
            native.kernel()
    finally:
        native.kernel.cache_clear()


@pytest.mark.parametrize("shape, pedestal", [((64, 40), 0.0), ((65, 41), 100.0), ((3, 7), -5.0),
                                             ((1, 1), 0.0)])
def test_levels_read_by_the_kernel_equal_numpys(tmp_path, shape, pedestal):
    """measure_level's C path (pread, histogram median) gives numpy's median exactly: odd and
    even sample counts, negative stored values, a pedestal."""
    from contextlib import ExitStack

    from indical.calib.combine import engine
    from indical.calib.rawio import open_raw

    rng = np.random.default_rng(shape[0])
    data = rng.integers(0, 65535, shape).astype(np.uint16)   # stored: int16 around BZERO
    path = write_synthetic(tmp_path / "l.fits", FrameType.FLAT, data=data)
    with ExitStack() as stack:
        image = stack.enter_context(open_raw(path))
        rows = np.unique(np.linspace(0, image.height - 1, min(64, image.height)).astype(int))
        fast = engine._level_from_file(image, rows, pedestal)
        assert fast is not None
        sample = np.asarray(image.raw[rows, ::4], dtype=np.float64) * image.bscale + image.bzero
        assert fast == float(np.median(sample - pedestal))
        assert engine.measure_level(image, None, pedestal) == fast


def test_a_short_file_is_reported_by_frame(kernel, tmp_path):
    import ctypes
    import errno

    rng = np.random.default_rng(2)
    raw, _ = stored_stack(rng, 3, 4, 20)
    paths = []
    for k in range(3):
        paths.append(tmp_path / f"s{k}.raw")
        paths[-1].write_bytes(raw[k].tobytes()[: (None if k != 1 else 100)])  # frame 1 is short
    fds = np.asarray([os.open(p, os.O_RDONLY) for p in paths], np.int32)
    try:
        starts = np.zeros(3, np.int64)
        offsets = np.zeros(3)
        out = np.empty((4, 20), np.float32)
        rej = np.empty((4, 20), np.uint16)
        net = sorting_network(3)
        p = np.asarray(CASES[3][2], np.float64)
        work = np.empty(kernel.work_bytes(3) + kernel.read_bytes(3, 20), np.uint8)
        failed = kernel.combine_be16_files(fds.ctypes.data, starts.ctypes.data, offsets.ctypes.data,
                                           3, 20, 0, 4, 0, 0, np.ones(3).ctypes.data, 3,
                                           p.ctypes.data, net.ctypes.data, len(net),
                                           out.ctypes.data, rej.ctypes.data, work.ctypes.data)
        assert failed == 2 and ctypes.get_errno() == errno.EIO
    finally:
        for fd in fds:
            os.close(int(fd))


def test_a_short_file_is_reported_by_frame(kernel, tmp_path):
    import ctypes
    import errno

    rng = np.random.default_rng(2)
    raw, _ = stored_stack(rng, 3, 4, 20)
    paths = []
    for k in range(3):
        paths.append(tmp_path / f"s{k}.raw")
        paths[-1].write_bytes(raw[k].tobytes()[: (None if k != 1 else 100)])  # frame 1 is short
    fds = np.asarray([os.open(p, os.O_RDONLY) for p in paths], np.int32)
    try:
        starts = np.zeros(3, np.int64)
        offsets = np.zeros(3)
        out = np.empty((4, 20), np.float32)
        rej = np.empty((4, 20), np.uint16)
        net = sorting_network(3)
        p = np.asarray(CASES[3][2], np.float64)
        work = np.empty(kernel.work_bytes(3) + kernel.read_bytes(3, 20), np.uint8)
        failed = kernel.combine_be16_files(fds.ctypes.data, starts.ctypes.data, offsets.ctypes.data,
                                           3, 20, 0, 4, 0, 0, np.ones(3).ctypes.data, 3,
                                           p.ctypes.data, net.ctypes.data, len(net),
                                           out.ctypes.data, rej.ctypes.data, work.ctypes.data)
        assert failed == 2 and ctypes.get_errno() == errno.EIO
    finally:
        for fd in fds:
            os.close(int(fd))


def test_interrupt_stops_the_blocks_and_closes_the_files(tmp_path):
    paths = [write_synthetic(tmp_path / f"i{i}.fits", FrameType.BIAS, shape=(400, 64), seed=i)
             for i in range(5)]
    seen = []

    def progress(done, total):
        seen.append(done)
        raise KeyboardInterrupt   # Ctrl-C while the first block reports

    open_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(KeyboardInterrupt):
        combine_files(CombineInput(paths), progress=progress)
    assert len(seen) == 1 and seen[0] < 400
    assert len(os.listdir("/proc/self/fd")) == open_before


def test_out_of_file_descriptors_reads_through_the_maps(tmp_path, monkeypatch):
    """Hundreds of frames under a low descriptor limit: the C kernel combines a converted
    cube instead of failing, with the same result."""
    import errno

    from indical.calib.combine import run_native

    paths = [write_synthetic(tmp_path / f"e{i}.fits", FrameType.DARK, shape=(33, 150), seed=i,
                             noise_adu=30.0) for i in range(7)]
    job = dict(levels_adu=[1000.0] * 7)
    expect = _engine_results(paths, job)
    real_open = os.open
    calls = []

    def scarce_open(path, flags, *args, **kwargs):
        if str(path).endswith(".fits"):
            calls.append(path)
            if len(calls) > 3:
                raise OSError(errno.EMFILE, "Too many open files")
        return real_open(path, flags, *args, **kwargs)

    open_before = len(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(run_native.os, "open", scarce_open)
    got = _engine_results(paths, job)
    monkeypatch.setattr(run_native.os, "open", real_open)
    assert len(calls) == 4
    assert len(os.listdir("/proc/self/fd")) == open_before
    assert_identical((got.data, got.rejected), (expect.data, expect.rejected), "EMFILE")
