"""Auto-exposure and auto-brightness decisions, run against model responses exhaustively:
every case must end in band within the cap, or refuse with the right reason."""

import itertools
import math

import numpy as np
import pytest

from indical.sequence.brightness import Steps, Trim, next_brightness
from indical.sequence.exposure import (Accept, ExposureLimits, Measure, Observation, Refusal,
                                       Refuse, dark_floor_adu, next_exposure,
                                       not_responding)
from indical.level import Band

BAND = Band(0.9 * 30000, 30000, 1.1 * 30000)
FULL = 65000.0


def expose_model(rate_adu_per_s, offset_adu=0.0):
    def level(t):
        raw = rate_adu_per_s * t + offset_adu
        return min(raw, FULL), raw >= FULL
    return level


def run_exposure(level_of, limits, first):
    obs = []
    while True:
        d = next_exposure(BAND if obs else None, limits, obs, first)
        if not isinstance(d, Measure):
            return d, obs
        assert limits.min_exposure_s <= d.exposure_s <= limits.max_exposure_s
        lv, sat = level_of(d.exposure_s)
        obs.append(Observation(d.exposure_s, lv, sat))
        assert len(obs) <= limits.max_exposures


@pytest.mark.parametrize("rate", list(np.geomspace(300, 3e6, 41)))
@pytest.mark.parametrize("first", [0.01, 1.0, 20.0])
def test_auto_exposure_reaches_band_or_refuses_correctly(rate, first):
    limits = ExposureLimits(0.01, 60.0, max_exposures=10)
    d, obs = run_exposure(expose_model(rate), limits, first)
    needed = BAND.target_adu / rate
    reachable = (rate * limits.max_exposure_s >= BAND.low_adu
                 and rate * limits.min_exposure_s <= BAND.high_adu)
    if reachable:
        assert isinstance(d, Accept), (d, obs)
        assert BAND.contains(rate * d.exposure_s)
        assert len(obs) <= 6
    else:
        assert isinstance(d, Refuse)
        assert d.kind is (Refusal.TOO_BRIGHT if needed < limits.min_exposure_s else Refusal.TOO_DIM)
        assert f"{limits.min_exposure_s:g} s" in d.message or f"{limits.max_exposure_s:g} s" in d.message


@pytest.mark.parametrize("offset", [-2000.0, 0.0, 3000.0, 12000.0])
def test_auto_exposure_copes_with_an_offset_in_the_response(offset):
    d, obs = run_exposure(expose_model(9000, offset), ExposureLimits(0.05, 60), 0.5)
    assert isinstance(d, Accept) and len(obs) <= 5


def test_auto_exposure_fails_fast_when_level_does_not_respond():
    d, obs = run_exposure(lambda t: (800.0, False), ExposureLimits(0.01, 60), 1.0)
    assert isinstance(d, Refuse) and d.kind is Refusal.NO_RESPONSE
    assert len(obs) == 2 and "does not follow the exposure" in d.message


def test_auto_exposure_without_light_says_so():
    d, obs = run_exposure(lambda t: (0.4, False), ExposureLimits(0.01, 60), 1.0)
    assert isinstance(d, Refuse) and d.kind is Refusal.NO_LIGHT and len(obs) == 2


def test_saturated_frames_are_only_lower_bounds():
    d, obs = run_exposure(expose_model(2e5), ExposureLimits(0.001, 60), 5.0)
    assert isinstance(d, Accept) and len(obs) <= 5
    assert obs[0].saturated


def test_not_responding_needs_a_real_exposure_ratio():
    a, b = Observation(1.0, 10000), Observation(1.5, 10100)
    assert not_responding([a, b], BAND) is None        # ratio < 2: no verdict
    assert not_responding([a, Observation(3.0, 30000)], BAND) is None


def test_hard_cap_on_exposures():
    limits = ExposureLimits(0.01, 60, max_exposures=3)
    flicker = iter([1000, 60000, 1000, 60000, 1000])
    d, obs = run_exposure(lambda t: (float(next(flicker)), False), limits, 1.0)
    assert isinstance(d, Refuse) and len(obs) <= 3


# ---- brightness -----------------------------------------------------------------------------

def panel_curve(kind, steps):
    """Relative flux 0..1 at each brightness, with a dead zone at the bottom."""
    lo, hi = steps.minimum, steps.maximum
    dead = lo + 0.06 * (hi - lo)

    def f(b):
        x = max(0.0, (b - dead) / (hi - dead))
        return {"linear": x, "convex": x ** 2.2, "concave": x ** 0.5,
                "s": 0.5 - 0.5 * math.cos(math.pi * x)}[kind]
    return f


def run_brightness(curve, steps, flux_at_max, t0, limits):
    obs = []
    band = None
    while True:
        d = next_brightness(band, steps, t0, limits, obs)
        if isinstance(d, Trim):
            rate = flux_at_max * curve(d.brightness)
            eo = [o for o in obs if o.brightness == d.brightness]
            lv = rate * d.exposure_s
            eo.append(Observation(d.exposure_s, min(lv, FULL), lv >= FULL, d.brightness))
            while True:
                dd = next_exposure(BAND, ExposureLimits(limits.min_exposure_s, limits.max_exposure_s,
                                                        limits.max_exposures - len(obs) + len(eo) - 1),
                                   eo, d.exposure_s)
                if not isinstance(dd, Measure):
                    return dd, len(obs) + len(eo) - len([o for o in obs if o.brightness == d.brightness])
                lv = rate * dd.exposure_s
                eo.append(Observation(dd.exposure_s, min(lv, FULL), lv >= FULL, d.brightness))
        if not isinstance(d, Measure):
            return d, len(obs)
        assert steps.minimum <= d.brightness <= steps.maximum
        assert (d.brightness - steps.minimum) % steps.step == 0
        assert all(o.brightness != d.brightness for o in obs), "re-probed a step"
        lv = flux_at_max * curve(d.brightness) * t0
        obs.append(Observation(t0, min(lv, FULL), lv >= FULL, d.brightness))
        band = BAND


STEPS = [Steps(0, 100), Steps(0, 255), Steps(0, 4095), Steps(0, 250, 10)]


@pytest.mark.parametrize("steps,kind", list(itertools.product(STEPS, ["linear", "convex", "concave", "s"])))
@pytest.mark.parametrize("flux_at_max", list(np.geomspace(1e3, 3e6, 17)))
def test_auto_brightness_ends_in_band_or_refuses(steps, kind, flux_at_max):
    curve = panel_curve(kind, steps)
    limits = ExposureLimits(0.01, 10.0, max_exposures=10)
    t0 = 1.0
    d, n = run_brightness(curve, steps, flux_at_max, t0, limits)
    # Ground truth: some step and an exposure within the limits reach the band.
    rates = [flux_at_max * curve(b) for b in range(steps.minimum, steps.maximum + 1, steps.step)]
    solvable = any(r * limits.max_exposure_s >= BAND.low_adu
                   and r * limits.min_exposure_s <= BAND.high_adu for r in rates)
    if solvable:
        assert isinstance(d, Accept), d
        assert n <= 8
    else:
        assert isinstance(d, Refuse), d
        top = max(rates)
        kind_expected = Refusal.TOO_DIM if top * limits.max_exposure_s < BAND.low_adu else Refusal.TOO_BRIGHT
        assert d.kind is kind_expected


def test_bracket_of_adjacent_steps_trims_instead_of_reprobing():
    steps = Steps(0, 10)
    # step 5 gives 20000, step 6 gives 40000: no step is in band
    obs = [Observation(1.0, 20000, False, 5), Observation(1.0, 40000, False, 6)]
    d = next_brightness(BAND, steps, 1.0, ExposureLimits(0.01, 10), obs)
    assert isinstance(d, Trim) and d.brightness in (5, 6)
    assert d.exposure_s == pytest.approx(1.0 * 30000 / (20000 if d.brightness == 5 else 40000))


def test_no_light_at_maximum_brightness_is_named():
    obs = [Observation(1.0, 0.5, False, 100)]
    d = next_brightness(BAND, Steps(0, 100), 1.0, ExposureLimits(0.01, 10), obs)
    assert isinstance(d, Refuse) and d.kind is Refusal.NO_LIGHT and "maximum brightness 100" in d.message


def test_trained_start_is_used():
    d = next_brightness(None, Steps(0, 255), 1.0, ExposureLimits(0.01, 10), [], 77)
    assert isinstance(d, Measure) and d.brightness == 77


def test_a_frame_taken_before_the_panel_settled_is_outvoted():
    """Brightness 64 read as bright as full light (the panel still at the last filter's
    setting): later frames disagree with it, and the search does not creep along on it."""
    steps, limits = Steps(0, 255), ExposureLimits(0.01, 10, max_exposures=10)
    obs = [Observation(0.1, 19425, False, 64), Observation(0.1, 6608, False, 106)]
    d = next_brightness(BAND, steps, 0.1, limits, obs)
    assert isinstance(d, Measure) and d.brightness > 150      # the secant through 106 only
    obs.append(Observation(0.1, 19480, False, 255))
    d = next_brightness(BAND, steps, 0.1, limits, obs)
    assert isinstance(d, Trim) and d.brightness == 255


def test_consistent_keeps_order_and_newest():
    from indical.sequence.brightness import consistent
    a, b, c = Observation(1, 100, False, 10), Observation(1, 50, False, 20), Observation(1, 200, False, 30)
    assert consistent([a, b, c], 5) == [b, c]        # a disagrees with the newer b
    assert consistent([b, a], 5) == [a]


# ---- brightness at the exposure floor and at the cap ----------------------------------------

@pytest.mark.parametrize("level", [500.0, 5000.0, 20000.0, 26000.0])
def test_a_lit_step_below_the_band_at_the_floor_is_trimmed_not_interpolated(level):
    """At the shortest exposure (brighter steps were too bright at the longer one) a lit step
    below the band needs only a longer exposure: one trim, in proportion to the level."""
    limits = ExposureLimits(0.05, 10)
    obs = [Observation(0.05, 0.0, False, 10), Observation(0.05, 65000, True, 20),
           Observation(0.05, level, False, 14)]
    d = next_brightness(BAND, Steps(0, 100), 0.05, limits, obs)
    assert isinstance(d, Trim) and d.brightness == 14
    assert BAND.contains(level * d.exposure_s / 0.05)


def test_above_the_floor_a_lit_step_below_the_band_is_still_interpolated():
    """At the requested exposure the brightness search keeps that exposure."""
    obs = [Observation(1.0, 0.0, False, 10), Observation(1.0, 65000, True, 60),
           Observation(1.0, 5000, False, 30)]
    d = next_brightness(BAND, Steps(0, 100), 1.0, ExposureLimits(0.05, 10), obs)
    assert isinstance(d, Measure) and 30 < d.brightness < 60 and d.exposure_s == 1.0


def test_a_lit_step_too_dim_even_at_the_longest_exposure_is_not_trimmed_at_the_floor():
    obs = [Observation(0.05, 0.0, False, 10), Observation(0.05, 65000, True, 20),
           Observation(0.05, 10.0, False, 14)]
    d = next_brightness(BAND, Steps(0, 100), 0.05, ExposureLimits(0.05, 10), obs)
    assert isinstance(d, Measure) and 14 < d.brightness < 20


@pytest.mark.parametrize("cap", [3, 4, 10])
@pytest.mark.parametrize("bright", [(40000.0, False), (65000.0, True)])
def test_a_refusal_the_frames_prove_keeps_its_reason_at_the_cap(cap, bright):
    """The frame that completes the proof (dark below, too bright at the floor one step up)
    may be the last one the cap allows: the refusal still says "too bright"."""
    level, saturated = bright
    obs = [Observation(0.05, 0.0, False, 28)] * (cap - 2) + [
        Observation(0.05, 0.0, False, 28), Observation(0.05, level, saturated, 29)]
    d = next_brightness(BAND, Steps(0, 4095), 0.05, ExposureLimits(0.05, 10, max_exposures=cap),
                        obs)
    assert isinstance(d, Refuse) and d.kind is Refusal.TOO_BRIGHT, d
    assert "brightness 29" in d.message and "0.05 s" in d.message


def test_at_the_cap_without_a_proof_the_search_gives_up():
    obs = [Observation(0.05, 0.0, False, 28), Observation(0.05, 40000, False, 40)]
    d = next_brightness(BAND, Steps(0, 4095), 0.05, ExposureLimits(0.05, 10, max_exposures=2),
                        obs)
    assert isinstance(d, Refuse) and d.kind is Refusal.GAVE_UP


def test_at_floor_keeps_dark_steps_and_frames_at_the_floor():
    from indical.sequence.brightness import at_floor
    obs = [Observation(1.0, 0.0, False, 5), Observation(1.0, 65000, True, 50),
           Observation(1.0, 3000, False, 20)]
    trim = Observation(0.05, 50000, False, 50)
    history = obs + [Observation(0.5, 65000, True, 50), trim]
    kept = at_floor(obs, history, 0.05, dark_floor_adu(BAND))
    assert kept == [Observation(0.05, 0.0, False, 5), trim]


def _edge_history(dark_b, bright_b, bright_level=65000.0, floor_s=0.05):
    """A search stopped by the cap: dark and saturated at 1 s, then at the floor."""
    return [Observation(1.0, 65000, True, 1024), Observation(1.0, 0.0, False, 256),
            Observation(floor_s, 65000, True, 640), Observation(floor_s, 0.0, False, dark_b),
            Observation(floor_s, min(bright_level, FULL), bright_level >= FULL, bright_b)]


@pytest.mark.parametrize("steps", [Steps(0, 100), Steps(0, 255), Steps(0, 4095), Steps(0, 250, 10)])
@pytest.mark.parametrize("bright_level", [40000.0, 65000.0])
def test_too_bright_at_the_edge_of_the_dark_range_is_named_at_the_cap(steps, bright_level):
    from indical.sequence.brightness import EDGE_PINNED, too_bright_at_edge
    limits = ExposureLimits(0.05, 10, max_exposures=5)
    widest = max(steps.step, int(EDGE_PINNED * (steps.maximum - steps.minimum)) // steps.step
                 * steps.step)
    for gap in range(2 * steps.step, widest + 3 * steps.step, steps.step):
        dark_b = steps.snap(0.05 * steps.maximum)
        hist = _edge_history(dark_b, dark_b + gap, bright_level)
        d = too_bright_at_edge(hist, BAND, steps, limits)
        if gap <= max(steps.step, EDGE_PINNED * (steps.maximum - steps.minimum)):
            assert isinstance(d, Refuse) and d.kind is Refusal.TOO_BRIGHT, gap
            assert f"brightness {dark_b + gap} and the shortest allowed exposure 0.05 s" in d.message
            assert f"no light up to brightness {dark_b}" in d.message
            assert f"from {dark_b + steps.step} to {dark_b + gap - steps.step}" in d.message
        else:
            assert d is None, gap


def test_too_bright_at_the_edge_needs_all_the_evidence():
    from indical.sequence.brightness import too_bright_at_edge
    steps, limits = Steps(0, 4095), ExposureLimits(0.05, 10, max_exposures=5)
    assert too_bright_at_edge(_edge_history(316, 322), BAND, steps, limits) is not None
    # a lit step below the band (at any exposure) could be trimmed: not proven too bright
    lit = _edge_history(316, 322) + [Observation(1.0, 5000, False, 2000)]
    assert too_bright_at_edge(lit, BAND, steps, limits) is None
    # too bright only at a longer exposure than the floor
    assert too_bright_at_edge(_edge_history(316, 322, floor_s=0.1), BAND, steps, limits) is None
    # no dark step below the too-bright one
    no_dark = [o for o in _edge_history(316, 322) if o.level_adu > 0]
    assert too_bright_at_edge(no_dark, BAND, steps, limits) is None
    # above the band but not saturated still counts; in band would not be at the cap
    assert too_bright_at_edge(_edge_history(316, 322, 34000.0), BAND, steps, limits) is not None
