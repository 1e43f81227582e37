"""The twilight exposure controller and ramp: model, fit, exposure solution, verdicts, filter
order, and closed-loop runs over simulated dusks and dawns."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest

from indical.level import Band
from indical.simulators.models.sky import SkyParams, sky_flux
from indical.site import Site
from indical.twilight.controller import (ExposureRange, RateSample, Sensitivities, SkyModel,
                                         Verdict, exposure_for, first_fit_time, fit_sky,
                                         integrated_level, level_for, order_filters, plan_exposure,
                                         prior_shape, rate_at_mid)
from indical.twilight.ramp import Expose, Stop, TwilightRamp, Wait
from indical.twilight.window import SunLimits, SunPath, Twilight, to_unix


@pytest.mark.parametrize("alt", [1.0, -2.0, -5.0, -7.5, -10.0, -14.0])
def test_prior_shape_is_patat_v(alt):
    p = SkyParams()
    assert prior_shape(alt) == pytest.approx(
        math.log(sky_flux(p, "V", alt) / sky_flux(p, "V", -5.0)), abs=1e-9)


def test_prior_shape_keeps_falling_below_the_fit_range():
    alts = np.linspace(3, -20, 200)
    assert np.all(np.diff(prior_shape(alts)) < 0)


def _samples(slope, levels, alts, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i, (f, a) in enumerate(alts):
        r = math.exp(levels[f] + slope * float(prior_shape(a)) + noise * rng.standard_normal())
        out.append(RateSample(f, 1000.0 + 60 * i, a, r))
    return out


def test_fit_with_one_frame_keeps_the_prior_slope():
    m = fit_sky(_samples(1.3, {"L": 8.0}, [("L", -6.0)]), 1000.0)
    assert m.slope == pytest.approx(1.0)
    assert m.log_rate("L", -6.0) == pytest.approx(8.0 + 1.3 * float(prior_shape(-6.0)))


def test_fit_recovers_slope_and_filter_levels():
    alts = [("R", -4.0 - 0.3 * i) for i in range(6)] + [("L", -5.8 - 0.3 * i) for i in range(6)]
    m = fit_sky(_samples(1.25, {"R": 7.0, "L": 8.5}, alts, noise=0.005), 1000.0 + 60 * 12)
    assert m.slope == pytest.approx(1.25, abs=0.05)
    assert m.levels["L"] - m.levels["R"] == pytest.approx(1.5, abs=0.05)
    assert m.last_filter == "L"


def test_no_samples_no_model():
    assert fit_sky([], 0.0) is None


def test_level_for_shifts_known_ratio_onto_tonight():
    known = Sensitivities({"L": 9.0, "Ha": 6.0}, sky_level=9.5, sky_slope=0.9, sky_filter="L")
    model = SkyModel(1.1, {"L": 8.0}, "L")     # tonight the sky is e^-1 fainter in L
    assert level_for("Ha", model, known) == pytest.approx((5.0, 1.1))
    assert level_for("L", model, known) == (8.0, 1.1)
    assert level_for("Ha", None, known) == pytest.approx((6.5, 0.9))   # last run's sky
    assert level_for("B", model, known) is None
    assert known.relative()["Ha"] == pytest.approx(math.exp(-3.0))
    assert Sensitivities.from_json(known.to_json()) == known


def test_learning_keeps_ratios_on_one_footing():
    known = Sensitivities({"L": 9.0, "R": 8.5})
    known.learn(SkyModel(0.8, {"L": 7.0}, "L"))          # one filter: its ratio stays
    assert known.ratios == {"L": 9.0, "R": 8.5} and known.sky_level == 7.0
    known.learn(SkyModel(0.8, {"L": 7.0, "Ha": 4.0}, "Ha"))  # fitted together: ratio learned
    assert known.ratios["Ha"] - known.ratios["L"] == pytest.approx(-3.0)
    assert known.ratios["R"] == 8.5 and known.sky_filter == "Ha"


def _exp_rate(r0, k, t0=0.0):
    return lambda t: math.log(r0) + k * (t - t0)


@pytest.mark.parametrize("k", [-0.004, -0.001, 0.0, 0.001, 0.004])
def test_exposure_integrates_to_the_target(k):
    log_rate = _exp_rate(2000.0, k)
    e = exposure_for(log_rate, 0.0, 20000.0, cap_s=1000.0)
    ts = np.linspace(0, e, 20001)
    counts = np.trapezoid(np.exp([log_rate(t) for t in ts]), ts)
    assert counts == pytest.approx(20000.0, rel=1e-4)
    assert integrated_level(log_rate, 0.0, e) == pytest.approx(20000.0, rel=1e-9)


def test_dusk_fading_too_fast_never_reaches_target():
    # at k = -0.01/s the whole remaining sky gives R0/|k| = 200000 ADU... less than asked
    assert exposure_for(_exp_rate(2000.0, -0.01), 0.0, 300000.0, cap_s=60.0) == math.inf


def test_rate_at_mid_is_exact_for_an_exponential_sky():
    k, r_mid, e = -0.004, 1500.0, 40.0
    level = r_mid * (math.exp(k * e / 2) - math.exp(-k * e / 2)) / k
    assert rate_at_mid(level, e, k) == pytest.approx(r_mid, rel=1e-9)
    assert rate_at_mid(300.0, 2.0, 0.0) == 150.0


def test_plan_verdicts_and_clamping():
    target, limits = Band.around(20000.0, 0.1), ExposureRange(1.0, 60.0)
    ok = plan_exposure(_exp_rate(2000.0, 0.0), 0.0, target, limits)
    assert ok.verdict is Verdict.EXPOSE and ok.exposure_s == pytest.approx(10.0)
    # slightly too bright for the minimum, but within the band: take it at the minimum
    edge = plan_exposure(_exp_rate(21000.0, 0.0), 0.0, target, limits)
    assert edge.verdict is Verdict.EXPOSE and edge.exposure_s == 1.0
    # ... but not right at the band's edge, where a small error would put it outside
    rim = plan_exposure(_exp_rate(21500.0, 0.0), 0.0, target, limits)
    assert rim.verdict is Verdict.TOO_BRIGHT
    assert plan_exposure(_exp_rate(21500.0, 0.0), 0.0, target, limits, margin=0.0).verdict \
        is Verdict.EXPOSE
    bright = plan_exposure(_exp_rate(40000.0, 0.0), 0.0, target, limits)
    assert bright.verdict is Verdict.TOO_BRIGHT and bright.exposure_s == 1.0
    dark = plan_exposure(_exp_rate(100.0, 0.0), 0.0, target, limits)
    assert dark.verdict is Verdict.TOO_DARK and dark.exposure_s == 60.0
    fading = plan_exposure(_exp_rate(150.0, -0.01), 0.0, target, limits)
    assert fading.verdict is Verdict.TOO_DARK and fading.ideal_exposure_s == math.inf


def test_first_fit_time_waits_for_the_dimming_sky():
    target, limits = Band.around(20000.0, 0.1), ExposureRange(1.0, 60.0)
    log_rate = _exp_rate(200000.0, -0.004)      # 10x too bright at t = 0
    t = first_fit_time(log_rate, 0.0, 3600.0, target, limits)
    assert plan_exposure(log_rate, t, target, limits).verdict is Verdict.EXPOSE
    assert plan_exposure(log_rate, t - 2.0, target, limits).verdict is Verdict.TOO_BRIGHT
    assert first_fit_time(log_rate, 0.0, 100.0, target, limits) is None


def test_filter_order_least_sensitive_first_at_dusk():
    known = Sensitivities({"L": 9.0, "R": 8.2, "B": 8.0, "Ha": 5.5})
    assert order_filters(["L", "R", "B", "Ha"], known, Twilight.DUSK) == ["Ha", "B", "R", "L"]
    assert order_filters(["L", "R", "B", "Ha"], known, Twilight.DAWN) == ["L", "R", "B", "Ha"]
    assert order_filters(["L", "X", "Ha"], known, Twilight.DUSK) == ["Ha", "L", "X"] or \
        order_filters(["L", "X", "Ha"], known, Twilight.DUSK) == ["Ha", "X", "L"]
    assert order_filters(["B", "A"], Sensitivities(), Twilight.DUSK) == ["B", "A"]


# -- closed loop: a pure simulated twilight, the truth differing from the prior ------------------

SITE = Site(52.0, 5.0, 10.0)


def _truth(band: str, scale: float, slope: float):
    """ln rate (ADU/s) of the true sky in a Patat band, its slope steeper or shallower than the
    prior's by `slope`."""
    p = SkyParams()

    def log_rate(alt: float) -> float:
        return math.log(scale) + slope * math.log(sky_flux(p, band, alt) / sky_flux(p, band, -5.0))
    return log_rate


def run_closed_loop(twilight: Twilight, start: datetime, filters: dict[str, tuple[str, float]],
                    *, slope: float = 1.0, overhead_s: float = 3.0, count: int = 12,
                    known: Sensitivities | None = None):
    """Drive the ramp over one twilight, the sky integrated exactly; returns per-filter
    lists of (level / target) for the frames taken."""
    t0 = to_unix(start)
    path = SunPath.compute(SITE, t0, 3 * 3600)
    target = Band.around(25000.0, 0.10)
    ramp = TwilightRamp(path, twilight, SunLimits(-2.0, -12.0), target,
                        ExposureRange(0.5, 60.0), known=known or Sensitivities())
    now = t0
    levels: dict[str, list[float]] = {}
    probes: list[bool] = []
    order = order_filters(list(filters), ramp.known, twilight)
    for f in order:
        band, scale = filters[f]
        truth = _truth(band, scale, slope)
        got = levels.setdefault(f, [])
        while sum(1 for x in got if abs(x - 1) <= 0.1) < count:
            action = ramp.decide(f, now)
            if isinstance(action, Stop):
                break
            if isinstance(action, Wait):
                assert action.until_unix > now
                now = action.until_unix
                continue
            start_t = now + 0.2                           # command latency
            ts = np.linspace(start_t, start_t + action.exposure_s, 400)
            rates = np.exp([truth(float(path.altitude(t))) for t in ts])
            level = float(np.trapezoid(rates, ts))
            clipped = level > 60000
            ramp.record(f, decided_unix=now, start_unix=start_t, exposure_s=action.exposure_s,
                        level_adu=min(level, 60000.0), level_usable=not clipped,
                        saturated=clipped)
            got.append(level / target.target_adu)
            probes.append(action.probe)
            now = start_t + action.exposure_s + overhead_s
    return levels, ramp, probes


FILTERS = {"L": ("V", 2.4e5), "R": ("R", 1.6e5), "Ha": ("R", 1.1e4)}


@pytest.mark.parametrize("slope", [0.8, 1.0, 1.25])
def test_closed_loop_dusk_first_night_then_second(slope):
    dusk = datetime(2026, 3, 20, 17, 50, tzinfo=timezone.utc)
    levels, ramp, probes = run_closed_loop(Twilight.DUSK, dusk, FILTERS, slope=slope)
    frames = [x for f in levels for x in levels[f]]
    # nothing is measured on the first night, but the names order the filters (Ha, the least
    # sensitive, first at dusk); the first frames probe a sky that saturates them, the next two
    # learn how fast it fades, and each new filter's first frame measures its sensitivity
    assert list(levels) == ["Ha", "R", "L"]
    assert sum(probes) <= 5 + 2
    steady = [x for x, p in zip(frames, probes) if not p][2:]
    assert sum(1 for x in steady if abs(x - 1) <= 0.1) / len(steady) >= 0.95, levels
    # every filter reaches its count: the least sensitive no longer runs out of sky
    assert all(sum(1 for x in levels[f] if abs(x - 1) <= 0.1) >= 12 for f in FILTERS), levels
    assert set(ramp.known.ratios) == set(FILTERS)
    # the next night starts from what was learned: least sensitive first, no probes, each
    # filter's first frame close (the model extrapolated to another sun altitude), then in band
    levels2, _, probes2 = run_closed_loop(Twilight.DUSK, dusk, FILTERS, slope=slope,
                                          known=ramp.known)
    assert list(levels2) == ["Ha", "R", "L"]
    assert not any(probes2)
    assert all(abs(levels2[f][0] - 1) <= 0.35 for f in levels2), levels2
    later = [x for f in levels2 for x in levels2[f][1:]]
    assert sum(1 for x in later if abs(x - 1) <= 0.1) / len(later) >= 0.95, levels2


@pytest.mark.parametrize("slope", [0.8, 1.25])
def test_closed_loop_dawn_stays_in_band(slope):
    # from an earlier, clearer night: the sky is 30 % fainter now, the filter ratios the same
    known = Sensitivities({f: math.log(scale) for f, (_, scale) in FILTERS.items()},
                          sky_level=math.log(FILTERS["L"][1]) + 0.3, sky_slope=slope,
                          sky_filter="L")
    levels, _, probes = run_closed_loop(Twilight.DAWN, datetime(2026, 3, 21, 4, 30, tzinfo=timezone.utc),
                                        FILTERS, slope=slope, known=known)
    assert list(levels) == ["L", "R", "Ha"]
    assert not any(probes)
    assert 0.6 < levels["L"][0] < 0.85          # the first frame measures tonight's sky ...
    later = [x for f in levels for x in levels[f]][1:]
    # ... and from then on, filter changes included, the frames are in the band
    assert sum(1 for x in later if abs(x - 1) <= 0.1) / len(later) >= 0.95, levels
    assert all(sum(1 for x in levels[f] if abs(x - 1) <= 0.1) >= 12 for f in levels), levels


def test_closed_loop_does_not_oscillate():
    levels, _, probes = run_closed_loop(
        Twilight.DUSK, datetime(2026, 3, 20, 17, 50, tzinfo=timezone.utc), {"L": ("V", 2.4e5)},
        slope=1.2, count=25)
    measured = [x for x, p in zip(levels["L"], probes) if not p]
    err = np.array(measured[1:]) - 1.0
    # errors stay small and do not flip sign from frame to frame with growing size
    assert np.max(np.abs(err)) < 0.05
    flips = np.sum(np.sign(err[1:]) != np.sign(err[:-1]))
    assert flips <= len(err) // 2 or np.max(np.abs(err)) < 0.01


def test_learned_sensitivity_predicts_a_filter_change_at_once():
    _, ramp, _ = run_closed_loop(Twilight.DUSK, datetime(2026, 3, 20, 17, 50, tzinfo=timezone.utc),
                              FILTERS, count=4)
    rel = ramp.known.relative()
    assert rel["L"] == pytest.approx(1.0)
    p = SkyParams()
    colour = (sky_flux(p, "R", -6) / sky_flux(p, "R", -5)) / (sky_flux(p, "V", -6) /
                                                              sky_flux(p, "V", -5))
    assert rel["Ha"] == pytest.approx(1.1e4 / 2.4e5 * colour, rel=0.1)


def test_ramp_waits_for_the_sun_then_stops_after_it():
    t0 = to_unix(datetime(2026, 3, 20, 16, 0, tzinfo=timezone.utc))
    path = SunPath.compute(SITE, t0, 4 * 3600)
    ramp = TwilightRamp(path, Twilight.DUSK, SunLimits(), Band.around(25000.0), ExposureRange(1, 60))
    first = ramp.decide("L", t0)
    assert isinstance(first, Wait) and path.altitude(first.until_unix) == pytest.approx(-2, abs=0.01)
    assert isinstance(ramp.decide("L", first.until_unix + 1), Expose)
    assert ramp.decide("L", first.until_unix + 1).probe
    assert isinstance(ramp.decide("L", t0 + 3.5 * 3600), Stop)


def test_simulated_sky_can_fade_faster_or_slower_than_patat():
    from dataclasses import replace
    p = SkyParams()
    steep = replace(p, twilight_slope=1.2)
    ratio = math.log(sky_flux(steep, "V", -9) / sky_flux(steep, "V", -5))
    assert ratio == pytest.approx(1.2 * float(prior_shape(-9)))


@pytest.mark.parametrize("carried_over", [False, True])
def test_waiting_ends_in_an_exposure_not_a_crawl(carried_over):
    """After a Wait for a sky too bright, the next decision exposes (the wait and the
    decision use the same margin), whether the level was measured tonight or carried over."""
    t0 = to_unix(datetime(2026, 3, 20, 18, 5, tzinfo=timezone.utc))
    path = SunPath.compute(SITE, t0, 3 * 3600)
    level = math.log(2.4e5)
    known = Sensitivities({"L": level}, sky_level=level, sky_filter="L")
    ramp = TwilightRamp(path, Twilight.DUSK, SunLimits(), Band.around(25000.0), ExposureRange(1, 60),
                        known=known)
    if not carried_over:
        ramp.record("L", decided_unix=t0, start_unix=t0, exposure_s=1.0, level_adu=40000.0,
                    level_usable=True, saturated=False)
    action = ramp.decide("L", t0 + 5)
    assert isinstance(action, Wait) and action.until_unix > t0 + 60
    assert isinstance(ramp.decide("L", action.until_unix), Expose)


def test_a_wait_always_moves_time_on_at_the_windows_edge():
    """The window found on one sampling of the sun's path and the ramp's own sampling can
    disagree by a hair at the edge (it happened at the equator's June dawn)."""
    from indical.twilight.window import next_twilight
    site = Site(0.0, 0.0, 100.0)
    t0 = to_unix(datetime(2026, 6, 22, 4, 40, tzinfo=timezone.utc))
    twilight, window = next_twilight(site, t0, SunLimits())
    path = SunPath.compute(site, t0, 3 * 3600)
    ramp = TwilightRamp(path, twilight, SunLimits(), Band.around(25000.0), ExposureRange(1, 60),
                        opens_unix=window.opens_unix)
    for dt in np.linspace(-2.0, 2.0, 41):
        now = window.opens_unix + dt
        action = ramp.decide("L", now)
        assert not isinstance(action, Wait) or action.until_unix >= now + 1.0


def test_measured_start_delay_goes_into_the_prediction():
    """A camera that starts exposing seconds after the command sees a dimmer dusk sky: the
    delay is measured from the frames and the exposure planned for the real start."""
    t0 = to_unix(datetime(2026, 3, 20, 18, 35, tzinfo=timezone.utc))
    path = SunPath.compute(SITE, t0 - 600, 3 * 3600)

    def ramp_with(delay_s):
        ramp = TwilightRamp(path, Twilight.DUSK, SunLimits(), Band.around(25000.0),
                            ExposureRange(1, 120))
        for i in range(3):
            t = t0 - 300 + 60 * i
            mid = t + delay_s + 5.0          # the same sky, sampled where the frame really was
            ramp.record("L", decided_unix=t, start_unix=t + delay_s, exposure_s=10.0,
                        level_adu=10 * 2000.0 * math.exp(-0.004 * (mid - t0)),
                        level_usable=True, saturated=False)
        return ramp
    prompt, late = ramp_with(0.0), ramp_with(8.0)
    assert late.predicted_start(t0) == pytest.approx(t0 + 8.0)
    e_prompt = prompt.decide("L", t0).exposure_s
    e_late = late.decide("L", t0).exposure_s
    assert e_late > e_prompt * 1.02      # about exp(0.004 x 8) more, less what the fit differs


def test_tonights_probed_levels_decide_the_order_alone():
    """Levels a probe pass measured tonight order the filters, over names and older ratios;
    a filter the probes missed counts as the median of the others."""
    known = Sensitivities({"Slot 1": 9.0, "Slot 2": 5.0})
    tonight = {"Slot 1": 4.0, "Slot 2": 8.0, "Slot 3": 6.0}
    slots = ["Slot 1", "Slot 2", "Slot 3"]
    assert order_filters(slots, known, Twilight.DUSK, tonight=tonight) == \
        ["Slot 1", "Slot 3", "Slot 2"]
    assert order_filters(slots, known, Twilight.DAWN, tonight=tonight) == \
        ["Slot 2", "Slot 3", "Slot 1"]
    assert order_filters(slots, known, Twilight.DUSK) == ["Slot 2", "Slot 1", "Slot 3"] or \
        order_filters(slots, known, Twilight.DUSK)[0] == "Slot 2"


def test_probes_aim_below_the_target_and_go_stale_as_the_sun_moves():
    """A probe waits for the window, is as short as allowed with nothing measured at dusk,
    then aims at a tenth of the target for a filter as sensitive as the most sensitive measured;
    a filter whose newest measurement is a probe is probed again once the sun has moved
    REPROBE_DEG, and not after a flat."""
    from indical.twilight.ramp import REPROBE_DEG
    t0 = to_unix(datetime(2026, 3, 20, 16, 0, tzinfo=timezone.utc))
    path = SunPath.compute(SITE, t0, 4 * 3600)
    target = Band.around(25000.0)
    ramp = TwilightRamp(path, Twilight.DUSK, SunLimits(), target, ExposureRange(1, 60))
    wait = ramp.probe("A", t0, 0.05)
    assert isinstance(wait, Wait)
    t = wait.until_unix + 1
    first = ramp.probe("A", t, 0.05)
    assert isinstance(first, Expose) and first.exposure_s == pytest.approx(0.05)
    ramp.record("A", decided_unix=t, start_unix=t, exposure_s=0.05, level_adu=500.0,
                level_usable=True, saturated=False, probe=True)
    second = ramp.probe("B", t + 3, 0.05)
    rate = 500.0 / 0.05
    assert isinstance(second, Expose)
    assert second.exposure_s * rate == pytest.approx(0.1 * target.target_adu, rel=0.05)
    assert "A" in ramp.probed and not ramp.stale_probe("A", t + 3)
    later = t + 60
    while abs(path.altitude(later) - path.altitude(t)) <= REPROBE_DEG:
        later += 60
    assert ramp.stale_probe("A", later)
    ramp.record("A", decided_unix=later, start_unix=later, exposure_s=1.0, level_adu=25000.0,
                level_usable=True, saturated=False)
    assert not ramp.stale_probe("A", later + 600)


def test_probes_inform_tonight_but_not_the_ratios_kept_between_runs():
    """A probe's rate plans tonight's frames, but the ratios stored for later runs come from
    flats alone (a probe early in the window, where the sky's colour differs, skews them)."""
    t0 = to_unix(datetime(2026, 3, 20, 18, 5, tzinfo=timezone.utc))
    path = SunPath.compute(SITE, t0, 3 * 3600)
    ramp = TwilightRamp(path, Twilight.DUSK, SunLimits(), Band.around(25000.0), ExposureRange(1, 60))
    ramp.record("A", decided_unix=t0, start_unix=t0, exposure_s=0.05, level_adu=800.0,
                level_usable=True, saturated=False, probe=True)
    ramp.record("B", decided_unix=t0 + 5, start_unix=t0 + 5, exposure_s=1.0, level_adu=25000.0,
                level_usable=True, saturated=False)
    assert "A" in ramp.model(t0 + 10).levels and "A" not in ramp.known.ratios
    assert "B" in ramp.known.ratios
    ramp.record("A", decided_unix=t0 + 10, start_unix=t0 + 10, exposure_s=1.0,
                level_adu=16000.0, level_usable=True, saturated=False)
    assert "A" in ramp.known.ratios


@pytest.mark.parametrize("twilight", [Twilight.DUSK, Twilight.DAWN])
def test_after_a_saturated_flat_the_next_exposure_trusts_the_saturated_frame(twilight):
    """A filter measured tonight, then a flat that saturates mid-ramp (a thin cloud cleared:
    the sky 4x brighter than the fit says). The saturated frame says the sky is at least its
    clip over its exposure; the next exposure is planned from that lower bound (it reads at
    most the target even if the sky were only at the bound), not from the older level, which
    would repeat the same exposure and saturate again."""
    start = datetime(2026, 3, 20, 18, 10, tzinfo=timezone.utc) if twilight is Twilight.DUSK \
        else datetime(2026, 3, 21, 5, 0, tzinfo=timezone.utc)
    t0 = to_unix(start)
    path = SunPath.compute(SITE, t0 - 600, 3 * 3600)
    target = Band.around(25000.0, 0.10)
    ramp = TwilightRamp(path, twilight, SunLimits(-2.0, -12.0), target, ExposureRange(0.5, 60.0))
    truth = _truth("R", 1.1e4, 1.0)
    now = t0
    in_band = 0
    while True:             # the sky as the model expects: in band, exposures of a few seconds
        action = ramp.decide("L", now)
        assert not isinstance(action, Stop)
        if isinstance(action, Wait):
            now = action.until_unix
            continue
        if in_band >= 3 and 3.0 <= action.exposure_s <= 20.0:
            break
        mid = now + action.exposure_s / 2
        level = math.exp(truth(float(path.altitude(mid)))) * action.exposure_s
        ramp.record("L", decided_unix=now, start_unix=now, exposure_s=action.exposure_s,
                    level_adu=min(level, 60000.0), level_usable=level < 60000.0,
                    saturated=level >= 60000.0)
        in_band += target.contains(level)
        now += action.exposure_s + 5.0
    assert not action.probe
    clip = 60000.0
    sat_s = action.exposure_s
    assert 4 * action.predicted_level_adu > clip
    ramp.record("L", decided_unix=now, start_unix=now, exposure_s=sat_s, level_adu=clip,
                level_usable=False, saturated=True)
    sat_alt = float(path.altitude(now + sat_s / 2))
    now += sat_s + 5.0
    after = ramp.decide("L", now)
    assert isinstance(after, Expose), after
    # the sky's lower bound at the next frame: the clip rate, moved along the prior's shape
    alt = float(path.altitude(now + after.exposure_s / 2))
    bound_rate = clip / sat_s * math.exp(float(prior_shape(alt)) - float(prior_shape(sat_alt)))
    assert bound_rate * after.exposure_s <= 1.02 * target.target_adu, (after, sat_s)
    assert after.exposure_s < 0.6 * sat_s
