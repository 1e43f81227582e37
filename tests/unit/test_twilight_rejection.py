"""Frame rejection on simulated twilight frames with injected star fields, clouds and trails."""

from __future__ import annotations

import numpy as np
import pytest

from indical.level import Band
from indical.simulators.models.optics import OpticsParams, illumination_map
from indical.simulators.models.sensor import Sensor, SensorParams
from indical.simulators.models.sky import SkyParams, render_sky
from indical.twilight.rejection import (CLOUDS, LEVEL_HIGH, LEVEL_LOW, SATURATED, STARS, TRAIL,
                                        RunningReference, central_level, judge_frame,
                                        longest_line, saturated_fraction, stack_outliers)

SENSOR = SensorParams(width=512, height=384)
TARGET = Band.around(25000.0, 0.10)


def _frame(i, *, cloud=False, trail=False, stars=20, star_max=20000.0, flux=2500.0,
           exposure_s=10.0, gradient=0.03):
    sky = SkyParams(star_count=stars, star_flux_e_per_s=(200.0, star_max), gradient=gradient,
                    cloud_probability=1.0 if cloud else 0.0,
                    trail_probability=1.0 if trail else 0.0, seed=3)
    rng = np.random.default_rng([7, i])
    light, spoilers = render_sky(sky, flux, (SENSOR.height, SENSOR.width),
                                 offset_px=(37.0 * (i % 8), 11.0 * (i % 8)), rng=rng)
    light = light * illumination_map(OpticsParams(), SENSOR.width, SENSOR.height)
    data, _ = Sensor(SENSOR).render(light, exposure_s, temp_c=0.0, rng=rng)
    return data, spoilers


@pytest.fixture()
def reference():
    ref = RunningReference(5)
    for i in range(4):
        data, _ = _frame(i)
        j, view = judge_frame(data, bias_adu=500.0, target=TARGET, reference=ref)
        assert j.accepted, j.reasons
        ref.add(view)
    return ref


def test_clean_frames_pass_with_and_without_a_reference(reference):
    data, _ = _frame(10)
    j, _ = judge_frame(data, bias_adu=500.0, target=TARGET, reference=reference)
    assert j.accepted and j.cloud_deviation is not None and j.cloud_deviation < 0.02
    assert j.level_adu == pytest.approx(25000, rel=0.03)
    j0, _ = judge_frame(data, bias_adu=500.0, target=TARGET, reference=RunningReference())
    assert j0.accepted and j0.cloud_deviation is None


@pytest.mark.parametrize("i", range(5))
def test_cloud_is_rejected(reference, i):
    data, spoilers = _frame(20 + i, cloud=True)
    assert spoilers == ["cloud"]
    j, _ = judge_frame(data, bias_adu=500.0, target=TARGET, reference=reference)
    # a cloud patch off the frame's edge can be too faint to matter; most are caught
    assert CLOUDS in j.reasons or j.cloud_deviation < 0.05
    assert not j.level_usable or CLOUDS not in j.reasons


def test_most_clouds_are_caught(reference):
    caught = 0
    for i in range(10):
        data, _ = _frame(40 + i, cloud=True)
        j, _ = judge_frame(data, bias_adu=500.0, target=TARGET, reference=reference)
        caught += CLOUDS in j.reasons
    assert caught >= 7


@pytest.mark.parametrize("with_reference", [True, False])
def test_trails_are_rejected_as_trails(reference, with_reference):
    ref = reference if with_reference else RunningReference()
    for i in range(5):
        data, spoilers = _frame(60 + i, trail=True, flux=800.0)   # faint enough not to saturate
        assert spoilers == ["trail"]
        j, _ = judge_frame(data, bias_adu=500.0, target=Band.around(8000.0), reference=ref)
        assert TRAIL in j.reasons, j


def test_star_field_is_rejected(reference):
    data, _ = _frame(80, stars=400)
    j, _ = judge_frame(data, bias_adu=500.0, target=TARGET, reference=reference)
    assert STARS in j.reasons and TRAIL not in j.reasons
    assert j.level_usable   # the sky level is still measured


def test_saturated_and_level_band():
    data, _ = _frame(90, flux=2500.0, star_max=400000.0, stars=60)
    j, _ = judge_frame(data, bias_adu=500.0, target=TARGET, reference=RunningReference())
    assert SATURATED in j.reasons and j.saturated_fraction > 1e-4
    assert j.level_usable            # stars saturate; the sky does not
    bright, _ = _frame(91, flux=8000.0)
    j, _ = judge_frame(bright, bias_adu=500.0, target=TARGET, reference=RunningReference())
    assert SATURATED in j.reasons and not j.level_usable
    high, _ = _frame(92, flux=2900.0)
    low, _ = _frame(93, flux=2100.0)
    assert LEVEL_HIGH in judge_frame(high, bias_adu=500.0, target=TARGET,
                                     reference=RunningReference())[0].reasons
    assert LEVEL_LOW in judge_frame(low, bias_adu=500.0, target=TARGET,
                                    reference=RunningReference())[0].reasons


def test_saturation_by_pile_up_or_known_level():
    data = np.full((100, 100), 1000, dtype=np.uint16)
    data[0, :5] = 60500
    assert saturated_fraction(data) == pytest.approx(5e-4)
    assert saturated_fraction(data, saturation_adu=65535) == 0.0
    noisy = np.random.default_rng(0).integers(0, 50000, (100, 100)).astype(np.uint16)
    assert saturated_fraction(noisy) < 3e-4
    assert central_level(np.full((10, 10), 700), 500.0) == 200.0


def test_longest_line():
    mask = np.zeros((300, 400), dtype=bool)
    rr = np.arange(300)
    mask[rr, (50 + rr * 0.7).astype(int)] = True
    assert longest_line(mask) >= 250
    dots = np.zeros((300, 400), dtype=bool)
    rng = np.random.default_rng(1)
    dots[rng.integers(0, 300, 300), rng.integers(0, 400, 300)] = True
    assert longest_line(dots) < 30
    assert longest_line(np.zeros((5, 5), dtype=bool)) == 0


def test_stack_rule_rejects_frames_off_by_more_than_two_percent():
    base = np.ones((3, 3))
    zones = [base * (1 + 0.002 * k) for k in range(6)]
    tilted = base.copy()
    tilted[:, 0] = 0.97
    zones.append(tilted / np.median(tilted))
    assert stack_outliers(zones) == [False] * 6 + [True]
    assert stack_outliers(zones[:2]) == [False, False]


def test_colour_frames_are_judged_by_whole_bayer_cells():
    """A one-shot-colour flat has a checkerboard of channel levels; judged per cell it is clean."""
    data, _ = _frame(5, stars=0)
    colour = data.astype(np.float64) - 500.0
    colour[0::2, 0::2] *= 0.5          # R
    colour[1::2, 1::2] *= 0.7          # B
    colour = (colour + 500.0).astype(np.uint16)
    j, _ = judge_frame(colour, bias_adu=500.0, target=Band.around(25000.0 * 0.8, 0.3),
                       reference=RunningReference(), bayer=True)
    assert j.accepted, j.reasons
    j_mono, _ = judge_frame(colour, bias_adu=500.0, target=Band.around(25000.0 * 0.8, 0.3),
                            reference=RunningReference())
    assert not j_mono.accepted     # pixel by pixel, the checkerboard looks like outliers
