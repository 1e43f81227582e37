"""Level measurement: bias, real bit depth, colour channels, saturation."""

import numpy as np
import pytest

from indical.level import (BitDepth, Target, central_region, detect_bit_depth,
                                    measure_bias, measure_level)


def frame(level, *, shape=(64, 96), bits=16, noise=20.0, seed=0, dtype=np.uint16):
    rng = np.random.default_rng(seed)
    data = rng.normal(level, noise, shape)
    return np.clip(np.rint(data), 0, (1 << bits) - 1).astype(dtype)


def test_fraction_target_band_is_raw_fraction_of_full_scale_minus_bias():
    band = Target.fraction(0.5, 0.1).band(65535, 500)
    assert band.target_adu == pytest.approx(0.5 * 65535 - 500)
    assert band.low_adu == pytest.approx(0.9 * band.target_adu)
    assert band.high_adu == pytest.approx(1.1 * band.target_adu)


def test_adu_target_is_above_bias_and_ignores_full_scale():
    assert Target.adu(20000, 0.2).band(4095, 300).target_adu == 20000


@pytest.mark.parametrize("bad", [dict(value=0.95, tolerance=0.1), dict(value=0.5, tolerance=0),
                                 dict(value=0.5, tolerance=1.5)])
def test_impossible_targets_are_refused(bad):
    with pytest.raises(ValueError):
        Target.fraction(**bad)


def test_target_below_bias_is_an_error():
    with pytest.raises(ValueError, match="below the bias"):
        Target.fraction(0.05).band(4095, 300)


def test_left_justified_12_bit_data_is_detected():
    data = (frame(1000, bits=12) << 4).astype(np.uint16)
    assert detect_bit_depth(data, 16) == BitDepth(12, 4)
    assert BitDepth(12, 4).full_scale_adu == 4095 * 16


def test_clipped_12_bit_data_reported_as_16_is_detected():
    data = frame(5000, bits=12)            # clipped at 4095: a pile-up
    assert detect_bit_depth(data, 16).bits == 12


def test_dim_16_bit_frame_keeps_reported_depth():
    assert detect_bit_depth(frame(1200), 16) == BitDepth(16)


def test_level_is_median_of_centre_minus_bias_and_ignores_hot_pixels():
    data = frame(10500)
    data[::20, ::20] = 65535               # hot pixels (0.25 %) in the centre too
    level = measure_level(data, bias_adu=500, reported_bits=16)
    assert level.level_adu == pytest.approx(10000, abs=30)
    assert not level.saturated


def test_vignetted_corners_do_not_count():
    data = frame(10000)
    data[:10, :] = 100
    data[:, :10] = 100
    assert measure_level(data, bias_adu=0, reported_bits=16).level_adu == pytest.approx(10000, abs=30)


def test_brightest_colour_channel_counts():
    data = frame(0, shape=(64, 64), noise=0).astype(np.uint16)
    data[0::2, 0::2] = 9000    # R
    data[0::2, 1::2] = 30000   # G
    data[1::2, 0::2] = 30000   # G
    data[1::2, 1::2] = 12000   # B
    level = measure_level(data, bias_adu=1000, reported_bits=16, bayer="RGGB")
    assert level.level_adu == 29000
    assert level.channels == {"R": 8000, "G": 29000, "B": 11000}
    # whole-frame thinking would see the mean (20250) and miss that green is near the top
    bgr = measure_level(data, bias_adu=1000, reported_bits=16, bayer="BGGR")
    assert bgr.channels["B"] == 8000


def test_saturated_channel_marks_the_frame():
    data = frame(30000, shape=(64, 64))
    data[0::2, 1::2] = 65535
    data[1::2, 0::2] = 65535
    assert measure_level(data, bias_adu=500, reported_bits=16, bayer="RGGB").saturated


def test_a_few_clipped_hot_pixels_do_not_saturate_but_clipped_areas_do():
    data = frame(30000, shape=(64, 64))
    data[::16, ::16] = 65535
    assert not measure_level(data, bias_adu=500, reported_bits=16).saturated
    data[:20, :] = 65535
    assert measure_level(data, bias_adu=500, reported_bits=16).saturated


def test_saturation_follows_real_bit_depth():
    data = frame(5000, bits=12)
    level = measure_level(data, bias_adu=200, reported_bits=16)
    assert level.bit_depth.bits == 12 and level.saturated


def test_unknown_bayer_pattern_is_named():
    with pytest.raises(ValueError, match="XYZW"):
        measure_level(frame(100), bias_adu=0, reported_bits=16, bayer="XYZW")


def test_bias_and_central_region():
    assert measure_bias(frame(512, noise=3)) == pytest.approx(512, abs=1)
    h, w = central_region(np.zeros((100, 200)), 0.5).shape
    assert abs(h - 50) <= 2 and w == 100 and h % 2 == 0


def test_row_banding_sees_pwm_bands_not_vignetting_or_noise():
    from indical.level import BANDING_LIMIT, row_banding
    rng = np.random.default_rng(3)
    h, w = 240, 320
    y, x = np.mgrid[:h, :w]
    vignette = 1 - 0.2 * (((x - w / 2) ** 2 + (y - h / 2) ** 2) / (w ** 2 / 4 + h ** 2 / 4))
    flat = 500 + 30000 * vignette * (1 + 0.01 * rng.standard_normal((h, w)))
    assert row_banding(flat, bias_adu=500) < BANDING_LIMIT / 3
    bands = 1 + 0.02 * np.sin(2 * np.pi * y / 100)
    assert row_banding(500 + (flat - 500) * bands, bias_adu=500) > BANDING_LIMIT


def test_row_banding_ignores_the_noise_of_a_dim_flat():
    from indical.level import BANDING_LIMIT, row_banding
    rng = np.random.default_rng(4)
    dim = 500 + rng.normal(2000, 50, (96, 128))
    assert row_banding(dim, bias_adu=500) < BANDING_LIMIT / 3


def test_full_well_clipping_below_the_adc_maximum_is_saturation():
    data = frame(62000, shape=(64, 64))
    data = np.minimum(data, 60500).astype(np.uint16)      # 60000 e full well + 500 bias
    level = measure_level(data, bias_adu=500, reported_bits=16)
    assert level.saturated and level.level_adu == 60000


def test_a_flat_near_the_top_but_unclipped_is_not_saturated():
    assert not measure_level(frame(50000, shape=(64, 64)), bias_adu=500,
                             reported_bits=16).saturated


def big_flat(shape=(3000, 4000), level=30000.0, seed=5):
    """A vignetted flat with 1 % pixel noise, as a camera delivers it (uint16)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    y, x = np.ogrid[:h, :w]
    vignette = 1 - 0.2 * (((x - w / 2) ** 2 + (y - h / 2) ** 2) / (w ** 2 / 4 + h ** 2 / 4))
    data = 500 + level * vignette * (1 + 0.01 * rng.standard_normal(shape, dtype=np.float32))
    return np.clip(data, 0, 65535).astype(np.uint16)


def test_a_large_frame_is_measured_on_a_grid_with_the_same_result_and_no_full_copy():
    import tracemalloc

    from indical.level import LEVEL_SAMPLE_PIXELS, sample_step
    data = big_flat()
    region = central_region(data, 0.5)
    assert sample_step(region) > 1                  # 3 MP of region: read on a grid
    whole = float(np.median(region)) - 500
    tracemalloc.start()
    try:
        level = measure_level(data, bias_adu=500, reported_bits=16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert level.level_adu == pytest.approx(whole, rel=2e-4)
    assert not level.saturated
    # what it allocates is the sample, not a copy of the frame or its central region
    assert peak < 8 * LEVEL_SAMPLE_PIXELS * 2 < region.nbytes
    assert measure_bias(data) == pytest.approx(whole + 500, rel=2e-4)


def test_a_large_frame_clipped_over_a_few_percent_is_saturated_on_the_grid():
    data = big_flat()
    data[1400:1500, :] = 65535                      # 100 rows clipped: 6 % of the region
    assert measure_level(data, bias_adu=500, reported_bits=16).saturated
    colour = big_flat()
    colour[0::2, 1::2][700:800, :] = 65535          # one green plane clipped over a band
    assert measure_level(colour, bias_adu=500, reported_bits=16, bayer="RGGB").saturated
    assert not measure_level(big_flat(), bias_adu=500, reported_bits=16, bayer="RGGB").saturated


def test_row_banding_on_a_wide_frame_reads_a_few_columns_and_still_sees_bands():
    import tracemalloc

    from indical.level import BANDING_LIMIT, row_banding
    data = big_flat()
    tracemalloc.start()
    try:
        clean = row_banding(data, bias_adu=500)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert clean < BANDING_LIMIT / 3
    region_bytes = central_region(data, 0.5).nbytes
    assert peak < region_bytes                      # a float copy of the region would be 4x it
    y = np.arange(data.shape[0])[:, None]
    for amplitude in (0.02, 0.008):                 # rms 0.57 %: just above the limit, seen
        banded = (500 + (data - 500.0) * (1 + amplitude * np.sin(2 * np.pi * y / 80)))
        ripple = row_banding(banded.astype(np.uint16), bias_adu=500)
        assert ripple == pytest.approx(amplitude / np.sqrt(2), rel=0.15)
        assert ripple > BANDING_LIMIT
        colour = row_banding(banded.astype(np.uint16), bias_adu=500, bayer="RGGB")
        assert colour == pytest.approx(amplitude / np.sqrt(2), rel=0.15)
