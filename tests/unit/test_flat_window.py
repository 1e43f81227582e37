"""The exposure window of panel flats: a lit step whose level an exposure within the window
brings into band is trimmed at once (the sensor is linear in time) instead of searching for a
better step; checked over grids of levels and windows and over model panels of several
families, where the frame after the first one within reach must be in band."""

import math

import numpy as np
import pytest

from indical.level import Band
from indical.sequence.brightness import (WIDEN_AFTER, ExposureWindow, Steps, Trim, at_floor,
                                         next_brightness, window_trim)
from indical.sequence.exposure import (Accept, ExposureLimits, Measure, Observation, Refusal,
                                       Refuse, dark_floor_adu, next_exposure)
from indical.sequence.panel import _untried_below

BAND = Band(0.9 * 30000, 30000, 1.1 * 30000)
FULL = 65000.0
LIMITS = ExposureLimits(0.05, 10.0, max_exposures=10)


def test_window_must_be_ordered_and_positive():
    with pytest.raises(ValueError, match="exposure window"):
        ExposureWindow(2.0, 1.0)
    with pytest.raises(ValueError, match="exposure window"):
        ExposureWindow(0.0, 1.0)
    assert ExposureWindow.around(2.0) == ExposureWindow(1.0, 4.0)


@pytest.mark.parametrize("exposure_s", [0.05, 1.0, 3.0])
@pytest.mark.parametrize("window", [ExposureWindow(0.5, 2.0), ExposureWindow(1.0, 1.0),
                                    ExposureWindow(0.2, 8.0), ExposureWindow(20.0, 40.0)])
def test_window_trim_exactly_when_an_exposure_in_the_window_reaches_the_band(exposure_s, window):
    lo, hi = max(window.min_s, LIMITS.min_exposure_s), min(window.max_s, LIMITS.max_exposure_s)
    for level in np.geomspace(10.0, 64000.0, 241):
        o = Observation(exposure_s, float(level), False, 40)
        d = window_trim([o], BAND, window, LIMITS)
        rate = level / exposure_s
        reachable = lo <= hi and any(BAND.contains(rate * t) for t in np.geomspace(lo, hi, 2001))
        if not reachable:
            assert d is None, level
            continue
        assert isinstance(d, Trim) and d.brightness == 40, level
        assert lo <= d.exposure_s <= hi
        # in band (the exposure keeps three significant digits), on target when it can be
        assert BAND.contains(rate * d.exposure_s * (1 + 2e-3)) or BAND.contains(
            rate * d.exposure_s * (1 - 2e-3)), level
        if lo <= BAND.target_adu / rate <= hi:
            assert rate * d.exposure_s == pytest.approx(BAND.target_adu, rel=6e-3)


def test_window_trim_ignores_saturated_dark_and_takes_the_smallest_change():
    obs = [Observation(1.0, 65000, True, 90), Observation(1.0, 1.0, False, 5),
           Observation(1.0, 20000, False, 30), Observation(1.0, 40000, False, 50)]
    d = window_trim(obs, BAND, ExposureWindow(0.5, 2.0), LIMITS)
    assert isinstance(d, Trim) and d.brightness == 50      # 0.75x beats 1.5x
    assert d.exposure_s == pytest.approx(0.75)
    assert window_trim(obs[:2], BAND, ExposureWindow(0.5, 2.0), LIMITS) is None


def test_a_lit_step_within_reach_is_trimmed_instead_of_probing_another_step():
    """The issue's example (target 1988 ADU): 25 -> 747, 67 -> saturated, 36 -> 1445: at 36 a
    1.38 s exposure is on target, where the search used to probe 43, 40 and 41."""
    band = Band(0.9 * 1988, 1988, 1.1 * 1988)
    obs = [Observation(1.0, 747, False, 25), Observation(1.0, 4000, True, 67)]
    window = ExposureWindow(0.5, 2.0)
    d = next_brightness(band, Steps(0, 100), 1.0, LIMITS, obs, window=window)
    assert isinstance(d, Measure)                 # 747 needs 2.66 s: beyond the window
    obs.append(Observation(1.0, 1445, False, 36))
    d = next_brightness(band, Steps(0, 100), 1.0, LIMITS, obs, window=window)
    assert isinstance(d, Trim) and d.brightness == 36
    assert band.contains(1445 * d.exposure_s) and 0.5 <= d.exposure_s <= 2.0
    # without a window the search goes on probing steps
    assert isinstance(next_brightness(band, Steps(0, 100), 1.0, LIMITS, obs), Measure)


def test_frames_at_another_exposure_count_at_the_search_exposure():
    """A step measured at 0.1 s is as bright at 1 s as ten times its level."""
    obs = [Observation(1.0, 0.0, False, 10), Observation(0.1, 1500, False, 60)]
    d = next_brightness(BAND, Steps(0, 100), 1.0, LIMITS, obs, window=ExposureWindow(0.5, 2.0))
    assert isinstance(d, Trim) and d.brightness == 60 and d.exposure_s == pytest.approx(2.0)


def test_after_a_few_frames_the_hard_limits_are_the_window():
    obs = [Observation(1.0, 0.0, False, 10), Observation(1.0, 65000, True, 60),
           Observation(1.0, 5000, False, 30)]
    window = ExposureWindow(0.5, 2.0)
    assert len(obs) >= WIDEN_AFTER
    d = next_brightness(BAND, Steps(0, 100), 1.0, LIMITS, obs, window=window)
    assert isinstance(d, Trim) and d.brightness == 30 and d.exposure_s == pytest.approx(6.0)
    fewer = obs[-(WIDEN_AFTER - 1):]           # the same lit step, one frame earlier
    d = next_brightness(BAND, Steps(0, 100), 1.0, LIMITS, fewer, window=window)
    assert isinstance(d, Measure) and 30 < d.brightness < 60


def test_no_trim_once_the_cap_is_reached():
    obs = [Observation(1.0, 20000, False, 30)]
    d = next_brightness(BAND, Steps(0, 100), 1.0, ExposureLimits(0.05, 10, max_exposures=1),
                        obs, window=ExposureWindow(0.5, 2.0))
    assert isinstance(d, Refuse)


# ---- model panels of several families --------------------------------------------------------

def family_curve(shape, steps, rng):
    """Relative flux at each step: dead zone, a jump to the least light, 5-8 knots."""
    top = steps.maximum
    knots = int(rng.integers(5, 9))
    edge = max(1, int(round(rng.uniform(0, 0.2) * top)))
    if edge >= top - knots:
        edge = 1
    f_min = 10 ** rng.uniform(-3.5, -1.0)
    x = np.unique(np.round(np.linspace(edge + 1, top, knots)))
    u = (x - x[0]) / (x[-1] - x[0])
    if shape == "convex":
        y = u ** rng.uniform(1.5, 3.5)
    elif shape == "concave":
        y = u ** rng.uniform(0.3, 0.7)
    else:
        sig = 1 / (1 + np.exp(-rng.uniform(6, 14) * (u - rng.uniform(0.3, 0.7))))
        y = (sig - sig[0]) / (sig[-1] - sig[0])
    xs = [0.0, float(edge)] + list(x)
    ys = [0.0, 0.0] + list(f_min + (1 - f_min) * y)
    return lambda b: float(np.interp(b, xs, ys))


def search(curve, steps, flux_at_max, window):
    """The panel flats loop in brief (as indical.sequence.panel.find_settings): brightness
    decisions, a trim hands over to the exposure search at that step, a trim too bright at the
    shortest exposure resumes the brightness search there. Returns (decision, frames, frame index of the first frame
    within the window's reach or None)."""
    frames, obs = [], []
    first_in_reach = None
    work_s = 1.0

    def shoot(b, t):
        raw = flux_at_max * curve(b) * t
        o = Observation(t, min(raw, FULL), raw >= FULL, b)
        frames.append(o)
        return o

    while True:
        in_reach = [i for i, o in enumerate(frames) if not o.saturated and o.level_adu > 5
                          and window.min_s <= o.exposure_s * BAND.target_adu / o.level_adu
                          <= window.max_s]
        if first_in_reach is None and in_reach:
            first_in_reach = in_reach[0] + 1
        left = ExposureLimits(LIMITS.min_exposure_s, LIMITS.max_exposure_s,
                              LIMITS.max_exposures - len(frames) + len(obs))
        d = next_brightness(BAND if obs else None, steps, work_s, left, obs, window=window)
        if isinstance(d, Measure):
            obs.append(shoot(d.brightness, d.exposure_s))
            continue
        if not isinstance(d, Trim):
            return d, len(frames), first_in_reach
        seed = [o for o in obs if o.brightness == d.brightness]
        if not any(o.exposure_s == d.exposure_s for o in seed):    # as find_settings does
            seed.append(shoot(d.brightness, d.exposure_s))
        while True:
            lim = ExposureLimits(LIMITS.min_exposure_s, LIMITS.max_exposure_s,
                                 LIMITS.max_exposures - len(frames) + len(seed))
            e = next_exposure(BAND, lim, seed, d.exposure_s)
            if not isinstance(e, Measure):
                break
            seed.append(shoot(d.brightness, e.exposure_s))
        if not (isinstance(e, Refuse) and e.kind is Refusal.TOO_BRIGHT
                and work_s > LIMITS.min_exposure_s
                and _untried_below(obs, d.brightness, steps, dark_floor_adu(BAND))):
            return e, len(frames), first_in_reach
        # too bright at the shortest exposure, dimmer steps untried: search at the floor
        work_s = LIMITS.min_exposure_s
        obs = at_floor(obs, frames, work_s, dark_floor_adu(BAND))


CASES = [(shape, Steps(0, top), seed) for shape in ("convex", "concave", "s")
         for top in (12, 100, 255, 1000, 4095) for seed in range(6)]


@pytest.mark.parametrize("shape,steps,seed", CASES)
def test_families_reach_the_band_one_frame_after_a_frame_within_reach(shape, steps, seed):
    rng = np.random.default_rng(seed * 7919 + steps.maximum)
    curve = family_curve(shape, steps, rng)
    window = ExposureWindow(0.5, 2.0)
    for ratio in np.geomspace(0.5, 500, 9):
        flux = ratio * BAND.target_adu
        rates = [flux * curve(b) for b in range(steps.maximum + 1)]
        if not any(r * LIMITS.max_exposure_s >= BAND.low_adu and r * LIMITS.min_exposure_s
                   <= BAND.high_adu for r in rates):
            continue
        d, n, first = search(curve, steps, flux, window)
        assert isinstance(d, Accept), (ratio, d)          # within the cap of 10
        if first is not None:
            assert n <= first + 1, (ratio, n, first)


def test_a_saturated_first_frame_is_followed_by_half_its_step_short():
    """Half the step, 20x shorter: in band it is the first flat, lit it is trimmed within the
    rig's limits, still too bright it counts as saturated (a bound) for the search."""
    window = ExposureWindow(0.5, 2.0)
    sat = Observation(1.0, FULL, True, 50)
    d = next_brightness(BAND, Steps(0, 100), 1.0, LIMITS, [sat], window=window)
    assert isinstance(d, Measure) and d.brightness == 25 and d.exposure_s == pytest.approx(0.05)
    # half of the way up from the range's bottom, on the panel's own steps
    d = next_brightness(BAND, Steps(10, 250, 10), 1.0, LIMITS,
                        [Observation(1.0, FULL, True, 130)], window=window)
    assert isinstance(d, Measure) and d.brightness == 70 and d.exposure_s == pytest.approx(0.05)
    # only the first frame: later saturated frames are bisected as before
    later = [Observation(1.0, 100.0, False, 10), sat]
    d = next_brightness(BAND, Steps(0, 100), 1.0, LIMITS, later, window=window)
    assert isinstance(d, Measure) and d.exposure_s == 1.0 and 10 < d.brightness < 50
    # no window (the old behaviour) or a floor at the search exposure: no short frame
    assert next_brightness(BAND, Steps(0, 100), 1.0, LIMITS, [sat]).exposure_s == 1.0
    d = next_brightness(BAND, Steps(0, 100), 0.05, LIMITS,
                        [Observation(0.05, FULL, True, 50)], window=window)
    assert isinstance(d, Measure) and "half the step" not in d.why
    # lit at 0.05 s: trimmed at once within the rig's limits (0.1 s here)
    short = Observation(0.05, 15000.0, False, 25)
    d = next_brightness(BAND, Steps(0, 100), 1.0, LIMITS, [sat, short], window=window)
    assert isinstance(d, Trim) and d.brightness == 25 and d.exposure_s == pytest.approx(0.1)
    # too bright even at 0.05 s, the floor here: see the next test; above the floor, a
    # saturated bound, and the search goes dimmer at the search exposure
    clipped = Observation(0.05, FULL, True, 25)
    d = next_brightness(BAND, Steps(0, 100), 1.0, ExposureLimits(0.01, 10.0), [sat, clipped],
                        window=window)
    assert isinstance(d, Measure) and d.brightness < 25 and d.exposure_s == 1.0


def test_dark_at_half_the_step_probes_between_at_the_shortest_exposure():
    """Saturated at 1 s at step 50, dark at 25 short: halfway between at the floor, not step
    50 again at the floor (which would only say it is too bright there too)."""
    window = ExposureWindow(0.5, 2.0)
    frames = [Observation(1.0, FULL, True, 50), Observation(0.05, 0.0, False, 25)]
    d = next_brightness(BAND, Steps(0, 100), 1.0, LIMITS, frames, window=window)
    assert isinstance(d, Measure) and d.exposure_s == pytest.approx(0.05)
    assert d.brightness in (37, 38)
    # the saturated step already measured at the floor: no such probe
    frames.append(Observation(0.05, FULL, True, 50))
    d = next_brightness(BAND, Steps(0, 100), 1.0, LIMITS, frames, window=window)
    assert not (isinstance(d, Measure) and "between a dark step" in d.why)


def test_at_the_floor_with_nothing_lit_the_bracket_is_halved():
    """At the shortest exposure a saturated step says nothing of how much dimmer to go: the
    bracket between a dark and a saturated step is halved; above the floor the search still
    tries a quarter of the way up from a saturated step."""
    at_floor_frames = [Observation(0.05, 0.0, False, 10), Observation(0.05, FULL, True, 50)]
    d = next_brightness(BAND, Steps(0, 100), 0.05, LIMITS, at_floor_frames)
    assert isinstance(d, Measure) and d.brightness == 30
    d = next_brightness(BAND, Steps(0, 100), 1.0, LIMITS, [Observation(1.0, FULL, True, 40)])
    assert isinstance(d, Measure) and d.brightness == 10


def fewest_frames_to_find(n: int) -> int:
    """The fewest frames that find, in the worst case, the one lit step among `n` candidates
    when a frame at a candidate says only dark (it lies above), saturated (below) or lit
    (found), by exhaustive minimax over where each frame goes (2^k - 1 candidates for k)."""
    g = [0] * (n + 1)
    for m in range(1, n + 1):
        g[m] = 1 + min(max(g[i - 1], g[m - i]) for i in range(1, m + 1))
    return g[n]


def test_fewest_frames_is_the_binary_bound():
    assert [fewest_frames_to_find(n) for n in (1, 2, 3, 4, 7, 8, 15, 16, 24, 31, 63)] == \
        [1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 6]


@pytest.mark.parametrize("top", [100, 255])
def test_a_panel_whose_only_usable_step_is_its_least_light(top):
    """3000x the light the target needs at full brightness: every step above the dark range's
    edge saturates even at the shortest exposure but the first, whose least light the flat
    needs (half the target at the shortest exposure, so the flat is a trim of it). The first
    frame, a quarter of the range at the search exposure, saturates; then every frame at the
    shortest exposure can only say dark, saturated or lit about one step, so no search that
    starts there finds the lit step among the steps below the first in fewer than
    `fewest_frames_to_find` frames, and the trim is one more: 7 frames on a 0-100 panel, 8 on
    0-255, whatever the search. indical's search reaches exactly this bound over every edge
    (the code before the window took up to 9 and 10, or gave up at the cap); the goal of 6
    frames is out of reach for these panels without more than three outcomes per frame."""
    window = ExposureWindow(0.5, 2.0)
    first = Steps(0, top).snap(0.25 * top)
    bound = 1 + fewest_frames_to_find(first - 1) + 1
    assert bound == (7 if top == 100 else 8)
    worst = 0
    for edge in range(0, first - 1):          # the lit step anywhere from 1 to first - 1
        f_min = 0.5 * BAND.target_adu / (3000 * BAND.target_adu) / LIMITS.min_exposure_s

        def curve(b, edge=edge, f_min=f_min):
            return 0.0 if b <= edge else (f_min if b == edge + 1 else 0.05 + b / top)
        d, n, _ = search(curve, Steps(0, top), 3000 * BAND.target_adu, window)
        assert isinstance(d, Accept), (edge, d)
        worst = max(worst, n)
    assert worst == bound


def test_no_search_takes_six_frames_on_every_bright_panel_of_the_benchmark():
    """Issue 18's max of 6 frames, over the panels `bench_flat_search.py` draws, is out of
    reach for any search, not only for indical's: the benchmark draws 0-255 panels with dead
    ranges up to 15 % of the range (edges 0-38) and light up to 3000x the need, so for each
    of the 39 edges there are panels whose only usable step is the one above it. Wherever a
    search puts its frames, each says dark, saturated or lit about one step, so finding that
    step takes `fewest_frames_to_find(39)` = 6 frames, the first included; its level at the
    frame that finds it is anything a factor of 240 of exposures brings into band, so the
    flat itself is one more. Checked here on the same model panels as above: every edge from
    0 to 38 gives exactly one step that any allowed exposure brings into band, and its level
    at the floor ranges over more than the band's width (so no exposure chosen in advance
    lands in band on all of them)."""
    top = 255
    steps = Steps(0, top)
    flux = 3000 * BAND.target_adu
    usable_levels = []
    for edge in range(0, round(0.15 * top) + 1):
        for f_min in (0.2, 0.5) if edge % 2 else (0.5,):
            f = f_min * BAND.target_adu / flux / LIMITS.min_exposure_s

            def light(b, edge=edge, f=f):
                return 0.0 if b <= edge else (f if b == edge + 1 else 0.05 + b / top)
            usable = [b for b in range(steps.minimum, steps.maximum + 1)
                      if light(b) > 0 and flux * light(b) * LIMITS.min_exposure_s <= BAND.high_adu
                      and flux * light(b) * LIMITS.max_exposure_s >= BAND.low_adu]
            assert usable == [edge + 1]
            usable_levels.append(flux * light(edge + 1) * LIMITS.min_exposure_s)
    assert max(usable_levels) / min(usable_levels) > BAND.high_adu / BAND.low_adu
    any_search = fewest_frames_to_find(39) + 1
    assert any_search == 7 > 6
    # indical's own start (a quarter of the range, for the other panels' sake) costs one more
    assert 1 + fewest_frames_to_find(steps.snap(0.25 * top) - 1) + 1 == any_search + 1


def test_a_step_too_bright_at_the_floor_hands_over_to_the_search_there():
    """Saturated at 1 s and still too bright at the 0.05 s floor: a trim at the frame already
    taken, so the loop's exposure search refuses at once and the brightness search goes on at
    the floor (no frame is repeated)."""
    sat = Observation(1.0, FULL, True, 50)
    bright = Observation(0.05, 50000.0, False, 50)
    d = next_brightness(BAND, Steps(0, 100), 1.0, LIMITS, [sat, bright],
                        window=ExposureWindow(0.5, 2.0))
    assert isinstance(d, Trim) and d.brightness == 50 and d.exposure_s == 0.05
    seed = [sat, bright]
    e = next_exposure(BAND, ExposureLimits(0.05, 10.0, max_exposures=8), seed, d.exposure_s)
    assert isinstance(e, Refuse) and e.kind is Refusal.TOO_BRIGHT
