"""Applying masters: the calibrated light equals the known sky within noise (CMOS and CCD)."""

from __future__ import annotations

import numpy as np
import pytest

from calib_synthetic import make_scene
from indical.calib.apply import (ApplyOptions, CalibrationInputError, DarkMode, apply_masters,
                                 normalise_flat, prepare_masters, scale_to_bit_depth, stored_shift)
from indical.calib.flags import BAD_PIXEL, PixelFlag, flag_keywords


def _pulls(cal, scene, exposure_s, flat_mean):
    # the flat is normalised to mean 1, so the sky comes out scaled by the flat's mean
    expected = scene.sky * flat_mean
    return (cal - expected) / (scene.expected_noise(exposure_s) * flat_mean)


def test_cmos_light_minus_dark_over_flat_recovers_the_sky():
    scene = make_scene()
    rng = np.random.default_rng(7)
    t = 30.0
    light = scene.light(t, rng)
    master_dark = (scene.bias + scene.dark_rate * t).astype(np.float32)
    masters = prepare_masters(light.shape, mode=DarkMode.CMOS, dark=master_dark,
                              flat=scene.flat.astype(np.float32))
    before = light.copy()
    result = apply_masters(light, t, masters)
    assert np.array_equal(light, before), "the light was modified"
    assert result.data.dtype == np.float32
    pulls = _pulls(result.data, scene, t, float(np.mean(scene.flat)))
    assert abs(pulls.mean()) < 0.05
    assert 0.9 < pulls.std() < 1.1
    # the hot pixel and the star are gone / kept as they should be
    assert abs(pulls[10, 10]) < 5
    assert result.data[60, 80] > 2500  # the star at the centre


def test_ccd_scales_the_dark_current_by_exposure():
    scene = make_scene(seed=5)
    rng = np.random.default_rng(8)
    t_light, t_dark = 120.0, 300.0
    light = scene.light(t_light, rng)
    master_bias = scene.bias.astype(np.float32)
    master_dark = (scene.bias + scene.dark_rate * t_dark).astype(np.float32)
    masters = prepare_masters(light.shape, mode=DarkMode.CCD, bias=master_bias, dark=master_dark,
                              dark_exposure_s=t_dark, flat=scene.flat)
    result = apply_masters(light, t_light, masters)
    pulls = _pulls(result.data, scene, t_light, float(np.mean(scene.flat)))
    assert abs(pulls.mean()) < 0.05
    assert 0.9 < pulls.std() < 1.1
    assert abs(pulls[10, 10]) < 5   # 50 ADU/s hot pixel scaled right: 6000 ADU removed

    # the unscaled dark would leave the hot pixel badly wrong: the test can fail
    wrong = prepare_masters(light.shape, mode=DarkMode.CMOS, dark=master_dark, flat=scene.flat)
    bad = _pulls(apply_masters(light, t_light, wrong).data, scene, t_light,
                 float(np.mean(scene.flat)))
    assert bad[10, 10] < -50


def test_ccd_dark_already_bias_subtracted():
    scene = make_scene(seed=6)
    rng = np.random.default_rng(9)
    light = scene.light(60.0, rng)
    masters = prepare_masters(light.shape, mode=DarkMode.CCD, bias=scene.bias,
                              dark=scene.dark_rate * 10.0, dark_exposure_s=10.0,
                              dark_includes_bias=False, flat=scene.flat)
    pulls = _pulls(apply_masters(light, 60.0, masters).data, scene, 60.0,
                   float(np.mean(scene.flat)))
    assert abs(pulls.mean()) < 0.05


def test_flat_floor_flags_tiny_values():
    flat = np.ones((10, 10), dtype=np.float32)
    flat[0, 0] = 0.0
    flat[0, 1] = 0.01
    flat[0, 2] = np.nan
    flat[0, 3] = 0.06
    n = normalise_flat(flat, floor=0.05)
    assert n.floored_count == 3
    assert n.floored[0, :3].all() and not n.floored[0, 3]
    assert np.all(np.isfinite(n.reciprocal))
    assert n.reciprocal.max() == pytest.approx(20.0)
    masters = prepare_masters(flat.shape, flat=flat)
    out = apply_masters(np.full((10, 10), 100, np.uint16), 1.0, masters)
    assert out.flags is not None and out.flags[0, 0] & PixelFlag.FLAT_FLOOR
    assert out.flags[5, 5] == 0


@pytest.mark.parametrize("value", [0.0, -1.0, np.nan])
def test_flat_without_level_is_refused(value):
    with pytest.raises(CalibrationInputError, match="no positive level"):
        normalise_flat(np.full((4, 4), value, dtype=np.float32))


def test_wrong_size_master_is_named():
    with pytest.raises(CalibrationInputError, match="master dark is 8x4 pixels but the light is 8x8"):
        prepare_masters((8, 8), dark=np.zeros((4, 8)))


def test_ccd_dark_needs_bias_and_exposure():
    with pytest.raises(CalibrationInputError, match="needs a master bias"):
        prepare_masters((4, 4), mode=DarkMode.CCD, dark=np.zeros((4, 4)), dark_exposure_s=10)
    with pytest.raises(CalibrationInputError, match="exposure time"):
        prepare_masters((4, 4), mode=DarkMode.CCD, bias=np.zeros((4, 4)), dark=np.zeros((4, 4)))


def test_negative_fraction_warns_above_threshold():
    light = np.full((10, 10), 100, np.uint16)
    dark = np.full((10, 10), 90, np.float32)
    dark[:3] = 150  # 30 % of pixels go negative
    res = apply_masters(light, 1.0, prepare_masters(light.shape, dark=dark))
    assert res.negative_fraction == pytest.approx(0.3)
    assert "30% of the pixels are negative" in res.negative_warning(ApplyOptions())
    dark[:3] = 90
    dark[0] = 150
    res = apply_masters(light, 1.0, prepare_masters(light.shape, dark=dark))
    assert res.negative_warning(ApplyOptions()) is None


def test_bad_pixel_map_flags_reach_the_light():
    bpm = np.zeros((4, 4), np.uint8)
    bpm[1, 1] = PixelFlag.HOT
    bpm[2, 2] = PixelFlag.DEAD
    bpm[3, 3] = PixelFlag.COLD | PixelFlag.CORRECTED   # not a map's bit: not passed on
    flat = np.ones((4, 4), np.float32)
    flat[0, 0] = 0.0
    res = apply_masters(np.ones((4, 4), np.uint16), 1.0,
                        prepare_masters((4, 4), bad_pixels=bpm, flat=flat))
    assert res.flags[1, 1] == PixelFlag.HOT and res.flags[2, 2] == PixelFlag.DEAD
    assert res.flags[3, 3] == PixelFlag.COLD and res.flags[0, 0] == PixelFlag.FLAT_FLOOR
    assert res.flags.sum() == PixelFlag.HOT + PixelFlag.DEAD + PixelFlag.COLD + PixelFlag.FLAT_FLOOR


def test_a_bool_mask_flags_hot_and_every_bit_is_named_once():
    res = prepare_masters((2, 2), bad_pixels=np.array([[True, False], [False, False]]))
    assert res.flags.tolist() == [[PixelFlag.HOT, 0], [0, 0]]
    keywords = dict(flag_keywords())
    assert keywords == {"FLAGBIT1": "hot pixel", "FLAGBIT2": "cold pixel",
                        "FLAGBIT3": "dead pixel", "FLAGBIT4": "flat below floor",
                        "FLAGBIT5": "replaced from neighbours"}
    assert [k for k, _ in flag_keywords(BAD_PIXEL)] == ["FLAGBIT1", "FLAGBIT2", "FLAGBIT3"]


def test_scale_to_bit_depth_rounds_and_clips():
    data = np.array([[-5.0, 0.4, 4095.6, 5000.0, np.nan]], dtype=np.float32)
    out = scale_to_bit_depth(data, 12)
    assert out.dtype == np.uint16
    assert out.tolist() == [[0, 0, 4095, 4095, 0]]
    assert scale_to_bit_depth(np.array([[1600.0, 70000.0]]), 12, 16.0).tolist() == [[100, 4095]]
    assert stored_shift(4095, 12) == 1 and stored_shift(4096, 12) == 16 and stored_shift(9e4, 16) == 1
    assert scale_to_bit_depth(np.array([[300.0]]), 8).dtype == np.uint8
    with pytest.raises(ValueError):
        scale_to_bit_depth(data, 0)


def test_big_endian_result_equals_native():
    scene = make_scene(shape=(30, 40))
    light = scene.light(10.0, np.random.default_rng(1))
    masters = prepare_masters(light.shape, dark=scene.bias + scene.dark_rate * 10, flat=scene.flat)
    native = apply_masters(light, 10.0, masters)
    big = apply_masters(light, 10.0, masters, big_endian=True)
    assert big.data.dtype == np.dtype(">f4")
    assert np.array_equal(native.data, big.data)
    unflat = prepare_masters(light.shape, dark=scene.bias)
    assert np.array_equal(apply_masters(light, 1.0, unflat).data,
                          apply_masters(light, 1.0, unflat, big_endian=True).data)


def test_negative_fraction_on_a_large_frame_is_close():
    light = np.full((400, 300), 100, np.uint16)
    dark = np.full(light.shape, 90, np.float32)
    dark[::3] = 150   # a third of the rows
    res = apply_masters(light, 1.0, prepare_masters(light.shape, dark=dark))
    assert res.negative_fraction == pytest.approx(1 / 3, abs=0.01)


def test_a_mean_one_master_flat_is_used_as_it_is():
    """indical writes master flats with mean 1.0: calibrating with one divides by the flat
    itself, not by the flat over its median (which scaled lights by 1/median, 1.0087 once)."""
    scene = make_scene(seed=11)
    master_flat = (scene.flat / scene.flat.mean()).astype(np.float32)
    assert abs(float(np.median(master_flat)) - 1.0) > 0.003   # vignetted: median != mean
    light = scene.light(30.0, np.random.default_rng(3)).astype(np.float32)
    dark = (scene.bias + scene.dark_rate * 30.0).astype(np.float32)
    out = apply_masters(light, 30.0, prepare_masters(light.shape, dark=dark, flat=master_flat))
    expected = (light - dark) / master_flat
    np.testing.assert_allclose(out.data, expected, rtol=2e-6, atol=1e-3)


@pytest.mark.parametrize("brightness", [0.05, 1.0, 20000.0])
def test_flux_scale_does_not_depend_on_how_bright_the_flat_was(brightness):
    scene = make_scene(seed=12)
    light = scene.light(10.0, np.random.default_rng(4))
    reference = apply_masters(light, 10.0, prepare_masters(
        light.shape, flat=(scene.flat / scene.flat.mean()).astype(np.float32)))
    scaled = apply_masters(light, 10.0, prepare_masters(
        light.shape, flat=(scene.flat * brightness).astype(np.float32)))
    np.testing.assert_allclose(scaled.data, reference.data, rtol=3e-6)
