"""Bad pixel maps from master dark and flat, and correction from neighbours."""

from __future__ import annotations

import numpy as np

from calib_synthetic import make_scene
from indical.calib.bpm import BadPixelOptions, build_bad_pixel_map, correct_from_neighbours
from indical.calib.flags import PixelFlag


def test_hot_cold_and_dead_are_found_and_vignetting_is_not():
    scene = make_scene(shape=(128, 160))
    rng = np.random.default_rng(1)
    dark = (scene.bias + scene.dark_rate * 60 + rng.normal(0, 1, scene.bias.shape)).astype(np.float32)
    flat = scene.flat.astype(np.float32).copy()
    flat[100, 20] *= 0.5   # cold
    flat[90, 100] *= 0.8   # merely dim, like a pixel in a dust shadow: not bad
    flat[5, 150] = 0.0     # dead, in a vignetted corner
    bpm = build_bad_pixel_map(dark, flat, BadPixelOptions(hot_sigma=5, cold_fraction=0.6))
    assert bpm[10, 10] & PixelFlag.HOT
    assert bpm[100, 20] & PixelFlag.COLD
    assert bpm[5, 150] & PixelFlag.DEAD
    # vignetted corners (flat down to ~0.6) and the dust shadow (0.85) are not bad pixels
    assert not bpm[0:3, 0:3].any()
    assert not bpm[40:48, 60:68].any()
    assert not bpm[90, 100]
    assert np.count_nonzero(bpm) < 10


def test_correct_from_neighbours_uses_good_neighbours_only():
    img = np.arange(25, dtype=np.float32).reshape(5, 5)
    bad = np.zeros((5, 5), bool)
    bad[2, 2] = True
    bad[2, 3] = True
    img[2, 2] = 1e6
    img[2, 3] = 1e6
    out = correct_from_neighbours(img, bad)
    assert out[2, 2] == np.median([6, 7, 8, 11, 16, 17, 18])
    assert out[2, 3] == np.median([7, 8, 9, 14, 17, 18, 19])
    assert img[2, 2] == 1e6, "input untouched"
    # Bayer: neighbours two pixels away
    out2 = correct_from_neighbours(img, bad, step=2)
    assert out2[2, 2] == np.median([0, 2, 4, 10, 14, 20, 22, 24])


def test_pixel_without_good_neighbours_keeps_its_value():
    img = np.ones((3, 3), np.float32)
    bad = np.ones((3, 3), bool)
    assert np.array_equal(correct_from_neighbours(img, bad), img)
