"""Auto-brightness: the next panel brightness to try at a fixed exposure.

Keeps the bracket of brightness steps known to be too dim and too bright, interpolates the
measured response (on log scales, where panel curves are close to straight lines) to the
target, and bisects when the interpolation leaves the bracket or the bracket stops shrinking.
Stops when a frame is in band; when the bracket closes to two adjacent steps (a coarse panel)
or the panel's range ends, it hands over to an exposure trim at the best step.

Pure: the same observations always give the same decision."""

from __future__ import annotations

import math
from dataclasses import dataclass

from indical.level import Band
from indical.sequence.exposure import (Accept, ExposureLimits, Measure, Observation, Refusal,
                                       Refuse, dark_floor_adu)


@dataclass(frozen=True)
class Steps:
    """The panel's real integer brightness range."""

    minimum: int
    maximum: int
    step: int = 1

    def __post_init__(self) -> None:
        if self.step < 1 or self.maximum <= self.minimum:
            raise ValueError(f"panel range {self.minimum}-{self.maximum} step {self.step} "
                             "has fewer than two settings")

    def snap(self, value: float) -> int:
        k = round((value - self.minimum) / self.step)
        return min(max(self.minimum + k * self.step, self.minimum), self.maximum)

    def middle(self) -> int:
        return self.snap((self.minimum + self.maximum) / 2)


@dataclass(frozen=True)
class Trim:
    """Brightness alone can't hit the band: keep this step and search the exposure, starting
    from `exposure_s`, with the frames already taken at this step."""

    brightness: int
    exposure_s: float
    why: str


BrightnessDecision = Measure | Accept | Trim | Refuse


@dataclass(frozen=True)
class ExposureWindow:
    """The exposures a flat may be trimmed to around the preferred one (a sequence's
    EXPOSURE_RANGE_S). The sensor is linear in time: a step whose level this window can bring
    into band is trimmed at once rather than searched for a better step."""

    min_s: float
    max_s: float

    def __post_init__(self) -> None:
        if not 0 < self.min_s <= self.max_s:
            raise ValueError(f"exposure window (EXPOSURE_RANGE_S) {self.min_s:g}-"
                             f"{self.max_s:g} s: need 0 < min <= max")

    @classmethod
    def around(cls, exposure_s: float, low: float = 0.5, high: float = 2.0) -> "ExposureWindow":
        return cls(exposure_s * low, exposure_s * high)


def window_trim(observations: list[Observation], band: Band, window: ExposureWindow,
                limits: ExposureLimits) -> Trim | None:
    """The step to keep and the exposure within `window` (and the hard limits) that puts its
    level on target, from lit frames whose level the window can bring into band; the smallest
    change of exposure first. None when no frame is within the window's reach."""
    lo = max(window.min_s, limits.min_exposure_s)
    hi = min(window.max_s, limits.max_exposure_s)
    if lo > hi:
        return None
    floor = dark_floor_adu(band)
    options = []
    for o in observations:
        if o.saturated or o.level_adu < floor or o.brightness is None:
            continue
        t = min(max(_exposure_for(o, band), lo), hi)
        if band.contains(o.level_adu * t / o.exposure_s):
            options.append((abs(math.log(t / o.exposure_s)), o.brightness, t))
    if not options:
        return None
    _, b, t = min(options)
    return Trim(b, limits.clamp(t), f"within the exposure window {lo:g}-{hi:g} s")


def _bracket(obs: list[Observation], band: Band) -> tuple[Observation | None, Observation | None]:
    lows = [o for o in obs if not o.saturated and o.level_adu < band.low_adu]
    highs = [o for o in obs if o.saturated or o.level_adu > band.high_adu]
    lo = max(lows, key=lambda o: o.brightness, default=None)
    hi = min(highs, key=lambda o: o.brightness, default=None)
    return lo, hi


def _width(obs: list[Observation], band: Band, steps: Steps) -> float:
    lo, hi = _bracket(obs, band)
    low = lo.brightness if lo is not None else steps.minimum
    high = hi.brightness if hi is not None else steps.maximum
    return float(high - low)


def _exposure_for(o: Observation, band: Band) -> float:
    """The exposure that would put this step's level on target (level is proportional to it)."""
    return o.exposure_s * band.target_adu / o.level_adu


def _loglog(a: Observation, b: Observation, target: float, origin: float = 0.0) -> float | None:
    """Brightness where the straight line through two lit points in (log (b - origin),
    log level) meets the target; None when they do not define one. `origin` is the highest
    step known to give no light: panel curves rise like a power of the distance from there."""
    if min(a.brightness, b.brightness) <= origin or min(a.level_adu, b.level_adu) <= 0:
        return None
    x1, x2 = math.log(a.brightness - origin), math.log(b.brightness - origin)
    y1, y2 = math.log(a.level_adu), math.log(b.level_adu)
    if x1 == x2 or y1 == y2:
        return None
    slope = (y2 - y1) / (x2 - x1)
    if slope <= 0:
        return None
    return origin + math.exp(x1 + (math.log(target) - y1) / slope)


def _trim(lo: Observation | None, hi: Observation | None, band: Band, limits: ExposureLimits,
          why: str) -> Trim | Refuse:
    """Pick the step whose exposure can be trimmed onto the band, the smaller trim first. A
    saturated step hands over with the largest step down and lets the exposure search judge."""
    floor = dark_floor_adu(band)
    options = []
    for o in (lo, hi):
        if o is None or o.saturated or o.level_adu < floor:
            continue
        t = limits.clamp(_exposure_for(o, band))
        if band.contains(o.level_adu * t / o.exposure_s):
            options.append((abs(math.log(t / o.exposure_s)), o.brightness, t))
    if options:
        _, b, t = min(options)
        return Trim(b, t, why)
    if hi is not None and hi.saturated and hi.exposure_s > limits.min_exposure_s:
        # how far to shorten is unknown: the shortest exposure tells the most (in band, a rate
        # to scale from, or proof that dimmer steps are needed)
        return Trim(hi.brightness, limits.min_exposure_s,
                    why + " (saturated: trying the shortest exposure)")
    if hi is not None and (lo is None or lo.level_adu < floor):
        what = "saturated" if hi.saturated else f"{hi.level_adu:.0f} ADU"
        return Refuse(Refusal.TOO_BRIGHT,
                      f"too bright: {what} at brightness {hi.brightness} and "
                      f"{hi.exposure_s:g} s, and it is the dimmest step that gives light; the "
                      f"shortest allowed exposure {limits.min_exposure_s:g} s is still too long "
                      f"for the target {band.target_adu:.0f} ADU; add a diffuser or neutral "
                      f"density, or lower the exposure floor")
    if lo is not None and hi is None:
        return Refuse(Refusal.TOO_DIM,
                      f"too dim: {lo.level_adu:.0f} ADU at the maximum brightness "
                      f"{lo.brightness} and {lo.exposure_s:g} s; even the longest allowed "
                      f"exposure {limits.max_exposure_s:g} s would not reach "
                      f"{band.low_adu:.0f} ADU; allow longer exposures or use a brighter panel")
    assert lo is not None and hi is not None
    return Refuse(Refusal.TOO_DIM if lo.level_adu * limits.max_exposure_s / lo.exposure_s
                  < band.low_adu else Refusal.TOO_BRIGHT,
                  f"no setting reaches the target {band.target_adu:.0f} ADU: brightness "
                  f"{lo.brightness} gives {lo.level_adu:.0f} ADU and {hi.brightness} gives "
                  f"{'saturation' if hi.saturated else f'{hi.level_adu:.0f} ADU'} at "
                  f"{lo.exposure_s:g} s, and no exposure within {limits.min_exposure_s:g}-"
                  f"{limits.max_exposure_s:g} s closes the gap; widen the exposure limits")


def _agree(a: Observation, b: Observation, floor: float) -> bool:
    """Whether two frames fit a panel whose light never falls as the brightness rises."""
    if a.brightness == b.brightness:
        return False                    # a repeat: only the newest counts
    dim, bright = (a, b) if a.brightness < b.brightness else (b, a)
    if bright.saturated:
        return True
    return bright.level_adu >= 0.95 * dim.level_adu - floor


def consistent(observations: list[Observation], floor: float) -> list[Observation]:
    """The frames that agree with a non-decreasing panel response, newest first to win: a frame
    exposed before the panel settled (or while the light box still reported the old
    brightness) is dropped instead of bending the interpolation. Keeps the original order."""
    kept: list[Observation] = []
    for o in reversed(observations):
        if all(_agree(o, k, floor) for k in kept):
            kept.append(o)
    return list(reversed(kept))


def _range_end(lo: Observation | None, hi: Observation | None, band: Band, steps: Steps,
               limits: ExposureLimits) -> Trim | Refuse | None:
    """What to do when brightness alone has run out: the range ends, or the bracket closed to
    two adjacent steps; None while there are steps left to try."""
    floor = dark_floor_adu(band)
    if lo is not None and lo.brightness >= steps.maximum:
        if lo.level_adu < floor:
            return Refuse(Refusal.NO_LIGHT,
                          f"no light at the maximum brightness {steps.maximum}: "
                          f"{lo.level_adu:.0f} ADU above bias at {lo.exposure_s:g} s; is the "
                          f"panel on and in front of the optics?")
        return _trim(lo, None, band, limits, "too dim at the maximum brightness")
    if hi is not None and hi.brightness <= steps.minimum:
        return _trim(None, hi, band, limits, "too bright at the minimum brightness")
    if lo is not None and hi is not None and hi.brightness - lo.brightness <= steps.step:
        return _trim(lo, hi, band, limits, "bracket closed to two adjacent steps")
    return None


def at_floor(observations: list[Observation], history: list[Observation], floor_s: float,
             dark_adu: float) -> list[Observation]:
    """The frames a brightness search moved down to the shortest exposure `floor_s` goes on
    from: the dark steps (dark at any exposure) and every frame already taken at `floor_s`."""
    kept = [Observation(floor_s, o.level_adu, False, o.brightness)
            for o in observations if not o.saturated and o.level_adu < dark_adu]
    return kept + [o for o in history if o.exposure_s == floor_s]


#: How close (as a fraction of the panel's range) the dark steps and the steps too bright at the
#: shortest exposure must come before a search stopped by the cap calls the panel too bright.
EDGE_PINNED = 0.01


def too_bright_at_edge(history: list[Observation], band: Band, steps: Steps,
                       limits: ExposureLimits) -> Refuse | None:
    """Why a brightness search that reached the cap found nothing, when the frames say: every
    step that gave light was too bright at the shortest exposure and every other was dark, the
    two within EDGE_PINNED of the range. Panels jump from no light to their least light at the
    edge of their dark range; pinning that edge to the step can take more frames than the cap
    (a 4096-step panel needs up to 12), while the user's remedy is already clear. None when
    the frames do not show that."""
    dark = dark_floor_adu(band)
    shortest = limits.min_exposure_s * (1 + 1e-6)
    bright = [o for o in history if o.brightness is not None and o.exposure_s <= shortest
              and (o.saturated or o.level_adu > band.high_adu)]
    if not bright or any(not o.saturated and dark <= o.level_adu <= band.high_adu
                         for o in history):
        return None
    top = min(bright, key=lambda o: o.brightness or 0)
    top_b = top.brightness or 0
    unlit = [o.brightness for o in history if o.brightness is not None and not o.saturated
             and o.level_adu < dark and o.brightness < top_b]
    if not unlit:
        return None
    edge = max(unlit)
    if top_b - edge > max(steps.step, EDGE_PINNED * (steps.maximum - steps.minimum)):
        return None
    what = "saturated" if top.saturated else f"{top.level_adu:.0f} ADU"
    return Refuse(Refusal.TOO_BRIGHT,
                  f"too bright: {what} at brightness {top.brightness} and the shortest allowed "
                  f"exposure {limits.min_exposure_s:g} s, and no light up to brightness {edge}; "
                  f"the steps from {edge + steps.step} to {top_b - steps.step} were "
                  f"not tried within the cap of {limits.max_exposures} exposures ([flats] "
                  f"max_search_exposures), but a panel's least light comes in one jump at the "
                  f"end of its dark range, so it is most likely too much for the target "
                  f"{band.target_adu:.0f} ADU; add a diffuser or neutral "
                  f"density, or lower the exposure floor")


#: After this many frames, a lit step that an exposure within the hard limits (not only the
#: window) brings into band is trimmed rather than searched further: one more frame, where a
#: search near a panel's dark edge can take several.
WIDEN_AFTER = 3

#: Where in its range an unknown panel is first tried.
FIRST_FRACTION = 0.25


def _scaled(o: Observation, exposure_s: float) -> Observation:
    """A frame as the search exposure would have seen it (level proportional to exposure); a
    saturated frame stays a lower bound."""
    if o.exposure_s == exposure_s:
        return o
    return Observation(exposure_s, o.level_adu * exposure_s / o.exposure_s, o.saturated,
                       o.brightness)


#: How much shorter than the search exposure a saturated first frame is followed up (down to
#: the floor).
SHORT_FACTOR = 20.0

#: Where, as a fraction of the way up from the range's bottom to a saturated first step, that
#: short frame is taken.
SHORT_STEP = 0.5

#: A saturated first step with fewer steps than this below it is measured short itself: half
#: of it would land in the dark range of most coarse panels.
COARSE_STEPS = 8


def _short_probe(raw: list[Observation], exposure_s: float, steps: Steps,
                 limits: ExposureLimits) -> Measure | None:
    """A first frame that saturated: half its step at a short exposure. A step a few times too
    bright at the search exposure still gives light at half of it, and its level says which
    exposure within the limits will do (one more frame); a panel far too bright saturates
    there too, and its flat sits at the dark range's edge, below half the step, which the
    search then has a bracket half as wide to find (measuring the same step short, as before,
    told only that it was too bright)."""
    if len(raw) != 1 or not raw[0].saturated or raw[0].brightness is None:
        return None
    short_s = limits.clamp(max(limits.min_exposure_s, exposure_s / SHORT_FACTOR))
    if short_s >= raw[0].exposure_s:
        return None
    b = steps.snap(steps.minimum + SHORT_STEP * (raw[0].brightness - steps.minimum))
    if raw[0].brightness - steps.minimum < COARSE_STEPS * steps.step:
        b = raw[0].brightness       # few steps below it: the same step, short
    return Measure(short_s, b, why="saturated: half the step at a short exposure gives a level")


def _edge_probe(raw: list[Observation], lo: Observation | None, hi: Observation | None,
                dark_adu: float, steps: Steps, limits: ExposureLimits) -> Measure | None:
    """A panel already measured short (its first step saturated) that is dark at one step and
    saturated at the search exposure at a brighter one, never measured short there: halfway
    between them at the shortest exposure. The flat sits near the dark range's edge; trying
    the saturated step short first (the rule below) costs a frame that only says whether it is
    too bright there as well, also when a single step lies between them (that step is then
    the panel's least light or dark; with the edge just below a 0-255 panel's first step,
    this was a ninth frame where eight is the bound)."""
    shortest = limits.min_exposure_s * (1 + 1e-6)
    if lo is None or hi is None or not hi.saturated or lo.level_adu >= dark_adu \
            or hi.brightness - lo.brightness <= steps.step \
            or not any(o.exposure_s <= shortest for o in raw) \
            or any(o.brightness == hi.brightness and o.exposure_s <= shortest for o in raw):
        return None
    return Measure(limits.min_exposure_s, steps.snap((lo.brightness + hi.brightness) / 2),
                   why="between a dark step and one too bright, at the shortest exposure")


def next_brightness(band: Band | None, steps: Steps, exposure_s: float, limits: ExposureLimits,
                    observations: list[Observation], first_brightness: int | None = None,
                    window: ExposureWindow | None = None) -> BrightnessDecision:
    """The next step of a brightness search at `exposure_s`.

    `observations` are the frames so far (at other exposures they count in proportion);
    `first_brightness` a trained or guessed start (default: a quarter of the range, where panel
    curves usually put mid-scale flats at flat-typical exposures); `window` the exposures a lit
    step may be trimmed to at once (None: only where brightness cannot do it, as before the
    window existed)."""
    if not observations or band is None:
        b = first_brightness if first_brightness is not None else steps.snap(
            steps.minimum + FIRST_FRACTION * (steps.maximum - steps.minimum))
        return Measure(exposure_s, steps.snap(b), why="first frame")
    last = observations[-1]
    if band.contains(last.level_adu) and not last.saturated:
        return Accept(last.exposure_s, last.brightness)
    taken = len(observations)
    floor = dark_floor_adu(band)
    raw = observations
    observations = consistent([_scaled(o, exposure_s) for o in observations], floor)
    if window is not None and taken < limits.max_exposures:
        short = _short_probe(raw, exposure_s, steps, limits)
        if short is not None:
            return short
        trim = window_trim(observations, band, window, limits)
        shorter = {o.brightness for o in raw if o.exposure_s < exposure_s}
        if trim is None and (taken >= WIDEN_AFTER or shorter):
            trim = window_trim(observations, band,
                               ExposureWindow(limits.min_exposure_s, limits.max_exposure_s),
                               limits)
        if trim is not None:
            return trim
        last = raw[-1]
        if last.brightness in shorter and last.exposure_s <= limits.min_exposure_s * (1 + 1e-6) \
                and (last.saturated or last.level_adu > band.high_adu):
            # too bright even at the shortest exposure: the search goes on at that exposure,
            # where frames read levels twenty times brighter before they saturate
            return Trim(last.brightness, last.exposure_s, "too bright at the shortest exposure")
        # a step measured short because it saturated and still too bright for any exposure
        # counts as saturated, a bound, as before: near a panel's dark edge one level predicts
        # the curve poorly (interpolating from it lands in the dark range)
        observations = [Observation(o.exposure_s, o.level_adu, True, o.brightness)
                        if o.brightness in shorter and o.level_adu > band.high_adu else o
                        for o in observations]
    lo, hi = _bracket(observations, band)
    end = _range_end(lo, hi, band, steps, limits)
    # at the cap, a refusal the frames already prove still gives its reason
    if taken >= limits.max_exposures and not isinstance(end, Refuse):
        return Refuse(Refusal.GAVE_UP,
                      f"no level in band after {taken} exposures (last "
                      f"{last.level_adu:.0f} ADU at brightness {last.brightness})")
    if end is not None:
        return end
    edge = _edge_probe(raw, lo, hi, floor, steps, limits) if window is not None else None
    if edge is not None:
        return edge
    if lo is not None and hi is not None and lo.level_adu < floor:
        # Below is the panel's dead zone: hunting for its edge wastes frames; trim the exposure
        # at the too-bright step if that can work.
        trim = _trim(None, hi, band, limits, "below this step the panel gives no light")
        if isinstance(trim, Trim):
            return trim
    floored = exposure_s <= limits.min_exposure_s * (1 + 1e-6)
    if floored and lo is not None and lo.level_adu >= floor:
        # Already at the shortest exposure (brighter steps were too bright at the longer one):
        # a lit step below the band only needs a longer exposure, which the level follows in
        # proportion; one trim beats interpolating a steep curve near its dark edge.
        trim = _trim(lo, None, band, limits, "lit but below the band at the shortest exposure")
        if isinstance(trim, Trim):
            return trim
    low_b = lo.brightness if lo is not None else steps.minimum
    high_b = hi.brightness if hi is not None else steps.maximum
    lit = sorted((o for o in observations if not o.saturated and o.level_adu >= floor),
                 key=lambda o: o.brightness)
    darks = [o.brightness for o in observations if not o.saturated and o.level_adu < floor]
    origin = float(max((b for b in darks if not lit or b < lit[0].brightness), default=0))
    guess: float | None = None
    if len(lit) >= 2:
        # secant on log scales through the two lit frames nearest the target: the local slope
        # follows the curve's bends (dead zone, knees) better than the bracket's ends would
        near = sorted(lit, key=lambda o: abs(math.log(o.level_adu / band.target_adu)))[:2]
        guess = _loglog(near[0], near[1], band.target_adu, origin)
    if guess is None and lit:
        # one lit frame: assume level proportional to brightness (panel curves are steeper,
        # so this errs toward the bracket, which the next frame closes)
        near = min(lit, key=lambda o: abs(math.log(o.level_adu / band.target_adu)))
        if not (hi is not None and hi.saturated and near is hi):
            guess = origin + (near.brightness - origin) * band.target_adu / near.level_adu
    if guess is None:
        guess = -math.inf    # nothing lit to scale from: bisect below
    # safeguards: strictly inside the bracket, and halve it at least every two frames
    below_dark = lo is not None and lo.level_adu < floor
    # a step saturated at the search exposure may need a much dimmer one: try a quarter of the
    # way up; at the shortest exposure with nothing lit yet, the search is for the dark range's
    # edge (the panel's least light is the flat), which halving the bracket pins fastest
    quarter = hi is not None and hi.saturated and not below_dark and not (floored and not lit)
    mid = low_b + (high_b - low_b) / (4 if quarter else 2)
    snapped = steps.snap(guess) if math.isfinite(guess) else guess
    if guess >= high_b and hi is None:
        guess, why = steps.maximum, "range end"   # the model says brighter than any step: check the top
    elif not low_b < snapped < high_b:
        guess, why = mid, "bisection"          # the model points at or past the bracket: distrust it
    else:
        why = "interpolation"
    stalled = (len(observations) >= 3 and _width(observations, band, steps)
               > 0.5 * _width(observations[:-2], band, steps))
    if stalled and lo is not None and hi is not None:
        guess, why = mid, "bisection"
    b = steps.snap(guess)
    if lo is not None and b <= low_b:
        b = low_b + steps.step
    if hi is not None and b >= high_b:
        b = high_b - steps.step
    if any(o.brightness == b for o in observations):
        b, why = steps.snap(mid), "bisection"
    return Measure(exposure_s, min(max(b, steps.minimum), steps.maximum), why=why)
