"""Combine engine parity: identical per-pixel rejection to astropy's sigma_clip, numpy mean and
median, ccdproc.combine; the other methods against plain numpy re-implementations."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import sigma_clip

from indical.calib.combine import CombineInput, CombineOptions, combine_files
from indical.calib.combine.options import Method, TooFewFrames, auto_method
from indical.frame import FrameType
from indical.testing.frames import write_synthetic


def make_stack(tmp_path, n=11, shape=(20, 30), seed=1, level=1000.0, noise=20.0):
    """Integer frames with outliers (cosmic rays, low pixels) in a fraction of pixels."""
    rng = np.random.default_rng(seed)
    cube = rng.normal(level, noise, (n, *shape))
    hits = rng.random((n, *shape))
    cube[hits < 0.03] += rng.uniform(200, 5000, np.count_nonzero(hits < 0.03))
    cube[hits > 0.985] -= rng.uniform(100, 600, np.count_nonzero(hits > 0.985))
    cube = np.clip(np.rint(cube), 0, 65535).astype(np.uint16)
    paths = [write_synthetic(tmp_path / f"d{i:02d}.fits", FrameType.DARK, data=cube[i], seed=i)
             for i in range(n)]
    return paths, cube.astype(np.float64)


def run(paths, memory=64 << 20, **options):
    return combine_files(CombineInput(paths, CombineOptions(**options), rejection_map=True,
                                      memory_limit_bytes=memory))


@pytest.mark.parametrize("sigma_low, sigma_high, center, maxiters", [
    (3.0, 3.0, "median", 5),
    (2.0, 2.5, "median", None),
    (1.5, 3.0, "mean", 3),
    (2.5, 1.5, "mean", None),
    (1.2, 1.2, "median", 1),
])
def test_sigma_rejection_identical_to_astropy(tmp_path, sigma_low, sigma_high, center, maxiters):
    paths, cube = make_stack(tmp_path)
    result = run(paths, method="sigma", sigma_low=sigma_low, sigma_high=sigma_high,
                 center=center, maxiters=maxiters, memory=1 << 16)  # several chunks
    clipped = sigma_clip(cube, sigma_lower=sigma_low, sigma_upper=sigma_high, cenfunc=center,
                         stdfunc="std", maxiters=maxiters, axis=0, masked=True)
    assert np.array_equal(result.rejected, clipped.mask.sum(axis=0))
    assert result.rejected.sum() > 0  # the data really had something to reject
    expect = clipped.mean(axis=0).filled(np.nan).astype(np.float32)
    np.testing.assert_array_equal(result.data, expect)


def test_mean_and_median_equal_numpy(tmp_path):
    paths, cube = make_stack(tmp_path, n=8)
    np.testing.assert_array_equal(run(paths, method="mean").data, cube.mean(axis=0).astype(np.float32))
    np.testing.assert_array_equal(run(paths, method="median").data,
                                  np.median(cube, axis=0).astype(np.float32))


def test_minmax_drops_extremes(tmp_path):
    paths, cube = make_stack(tmp_path, n=7)
    s = np.sort(cube, axis=0)
    result = run(paths, method="minmax", clip=2)
    np.testing.assert_allclose(result.data, s[2:-2].mean(axis=0), rtol=1e-6)
    assert (result.rejected == 4).all()


def test_percentile_clip(tmp_path):
    paths, cube = make_stack(tmp_path, n=6)
    med = np.median(cube, axis=0)
    keep = (cube >= med - 0.05 * med) & (cube <= med + 0.02 * med)
    result = run(paths, method="percentile", percentile_low=0.05, percentile_high=0.02)
    np.testing.assert_allclose(result.data, (cube * keep).sum(0) / keep.sum(0), rtol=1e-6)
    assert np.array_equal(result.rejected, (~keep).sum(0))


@pytest.mark.parametrize("method", ["winsorized", "linearfit"])
def test_robust_methods_reject_outliers_and_keep_clean_pixels(tmp_path, method):
    rng = np.random.default_rng(5)
    cube = rng.normal(1000, 10, (16, 10, 12))
    cube[3, 4, 5] = 9000     # a cosmic ray
    cube[7, 1, 1] = 100      # a dropped value
    cube = np.rint(cube).astype(np.uint16)
    paths = [write_synthetic(tmp_path / f"x{i}.fits", FrameType.DARK, data=cube[i]) for i in range(16)]
    result = run(paths, method=method, sigma_low=3.0, sigma_high=3.0)
    clean = np.delete(cube[:, 4, 5].astype(float), 3).mean()
    assert result.data[4, 5] == pytest.approx(clean, abs=8)
    assert result.rejected[4, 5] >= 1 and result.rejected[1, 1] >= 1
    assert abs(float(np.median(result.data)) - 1000) < 3
    assert result.rejected.mean() < 2.0   # clean pixels keep most values


def test_matches_ccdproc_combine(tmp_path):
    ccdproc = pytest.importorskip("ccdproc")
    paths, cube = make_stack(tmp_path, n=9, shape=(12, 16))
    files = [str(p) for p in paths]
    ref = ccdproc.combine(files, method="average", sigma_clip=True, sigma_clip_low_thresh=2.0,
                          sigma_clip_high_thresh=2.0, sigma_clip_func="median",
                          sigma_clip_dev_func="std", unit="adu")
    ours = run(paths, method="sigma", sigma_low=2.0, sigma_high=2.0, center="median", maxiters=1)
    np.testing.assert_allclose(ours.data, ref.data, rtol=1e-6)
    ref = ccdproc.combine(files, method="median", unit="adu")
    np.testing.assert_allclose(run(paths, method="median").data, ref.data, rtol=1e-7)
    ref = ccdproc.combine(files, method="average", clip_extrema=True, nlow=1, nhigh=1, unit="adu")
    np.testing.assert_allclose(run(paths, method="minmax", clip=1).data, ref.data, rtol=1e-6)


def test_flats_normalised_before_rejection(tmp_path):
    """Flats at different levels: scaled to a common level, so no frame is rejected whole."""
    levels = [10000 * (1 + 0.01 * i) for i in range(8)] + [20000]   # the sky brightened
    paths = [write_synthetic(tmp_path / f"f{i}.fits", FrameType.FLAT, level_adu=lv,
                             seed=i, noise_adu=3.0, vignetting=True) for i, lv in enumerate(levels)]
    opts = CombineOptions(method="sigma", sigma_low=3.0, sigma_high=3.0)
    plain = combine_files(CombineInput(paths, opts, rejection_map=True))
    normed = combine_files(CombineInput(paths, opts, normalise=True, rejection_map=True))
    assert plain.rejected.min() >= 1        # unnormalised, the bright frame goes everywhere
    assert normed.rejected.mean() < 0.1     # normalised, it counts like the others
    assert normed.scales[0] > 1 > normed.scales[-1]


def test_chunking_does_not_change_the_result(tmp_path):
    paths, _ = make_stack(tmp_path, n=5)
    whole = run(paths, method="sigma", memory=1 << 30).data
    rowwise = run(paths, method="sigma", memory=1).data   # one row per chunk
    np.testing.assert_array_equal(whole, rowwise)


def test_auto_rule_and_too_few_frames():
    assert [auto_method(n).value for n in (1, 2, 3, 6, 7, 14, 15, 40)] == \
        ["mean", "mean", "percentile", "percentile", "sigma", "sigma", "winsorized", "winsorized"]
    CombineOptions(method="minmax", clip=2).check(5)
    with pytest.raises(TooFewFrames, match="minmax with --clip 2 needs at least 5 frames, got 4"):
        CombineOptions(method="minmax", clip=2).check(4)
    with pytest.raises(TooFewFrames, match="sigma needs at least 3"):
        CombineOptions(method=Method.SIGMA).check(2)
    with pytest.raises(ValueError, match="center"):
        CombineOptions(center="mode")


@pytest.mark.parametrize("n", range(1, 15))
def test_sorting_network_sorts_every_0_1_input(n):
    """0-1 principle: a comparator network that sorts all 2^n zero-one inputs sorts anything."""
    from indical.calib.combine.network import sorting_network
    net = sorting_network(n)
    inputs = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1).astype(np.int8)
    for i, j in net:
        lo, hi = np.minimum(inputs[:, i], inputs[:, j]), np.maximum(inputs[:, i], inputs[:, j])
        inputs[:, i], inputs[:, j] = lo, hi
    assert (np.diff(inputs, axis=1) >= 0).all()


@pytest.mark.parametrize("n", [17, 32, 33, 64, 100])
def test_sorting_network_large_stacks(n):
    from indical.calib.combine.network import sorting_network
    rng = np.random.default_rng(n)
    values = rng.normal(size=(500, n))
    for i, j in sorting_network(n):
        lo, hi = np.minimum(values[:, i], values[:, j]), np.maximum(values[:, i], values[:, j])
        values[:, i], values[:, j] = lo, hi
    assert (np.diff(values, axis=1) >= 0).all()


@pytest.mark.parametrize("sigma, center", [(1.0, "median"), (1.0, "mean"), (0.5, "mean"),
                                           (2.0, "median"), (1.5, "mean")])
def test_sigma_parity_on_ties_and_exact_bounds(tmp_path, sigma, center):
    """Few distinct values: many pixels have bounds landing exactly on a value (std 0, or
    rational), where a rounding difference would flip the rejection."""
    rng = np.random.default_rng(11)
    cube = rng.integers(100, 104, (8, 30, 40)).astype(np.uint16)
    cube[:, :5, :] = 101                    # constant stacks: std 0, bounds == every value
    cube[:4, 5:10, :] = 100                 # two values, half and half
    cube[4:, 5:10, :] = 102
    paths = [write_synthetic(tmp_path / f"t{i}.fits", FrameType.BIAS, data=cube[i], exposure_s=0.0)
             for i in range(8)]
    result = run(paths, method="sigma", sigma_low=sigma, sigma_high=sigma, center=center, maxiters=None)
    clipped = sigma_clip(cube.astype(np.float64), sigma=sigma, cenfunc=center, stdfunc="std",
                         maxiters=None, axis=0, masked=True)
    assert np.array_equal(result.rejected, clipped.mask.sum(axis=0))
    np.testing.assert_array_equal(result.data, clipped.mean(axis=0).filled(np.nan).astype(np.float32))
