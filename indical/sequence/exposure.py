"""Auto-exposure: the next exposure to try for a flat, from the frames taken so far.

Fits level = a * exposure + b through the observations, solves for the target, damps and clamps
the step, keeps it inside the bracket of exposures known to be too short and too long, and
falls back to bisection on a log scale when the fit misbehaves. Fails at once, with the reason,
when the level does not respond to the exposure or the limits are reached.

Pure: the same observations always give the same decision."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from indical.level import Band


class Refusal(Enum):
    TOO_DIM = "too dim"
    TOO_BRIGHT = "too bright"
    NO_RESPONSE = "level does not respond"
    NO_LIGHT = "no light"
    GAVE_UP = "no level in band within the exposure cap"
    FLICKER = "the light flickers"


@dataclass(frozen=True)
class Observation:
    """One frame of a search: what was set and the level measured above bias."""

    exposure_s: float
    level_adu: float
    saturated: bool = False
    brightness: int | None = None


@dataclass(frozen=True)
class Measure:
    """Take a frame at this exposure (and, for brightness searches, this brightness)."""

    exposure_s: float
    brightness: int | None = None
    why: str = ""


@dataclass(frozen=True)
class Accept:
    """The last frame is in band: keep these settings."""

    exposure_s: float
    brightness: int | None = None


@dataclass(frozen=True)
class Refuse:
    """No settings within the limits reach the band; `message` says which limit and what to do."""

    kind: Refusal
    message: str


Decision = Measure | Accept | Refuse


@dataclass(frozen=True)
class ExposureLimits:
    """What exposures a flat may use. The floor is the largest of the camera's minimum, a
    mechanical shutter's minimum and the shortest exposure free of panel flicker."""

    min_exposure_s: float
    max_exposure_s: float
    max_exposures: int = 8
    max_step_factor: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.min_exposure_s < self.max_exposure_s:
            raise ValueError(f"exposure limits must satisfy 0 < min < max, got "
                             f"{self.min_exposure_s:g} and {self.max_exposure_s:g} s")

    def clamp(self, exposure_s: float) -> float:
        """Inside the limits, rounded to three significant digits (tidy file names, and darks
        at exactly the flats' exposure)."""
        tidy = float(f"{exposure_s:.3g}")
        return min(max(tidy, self.min_exposure_s), self.max_exposure_s)


def dark_floor_adu(band: Band) -> float:
    """Below this a level is indistinguishable from no light at all (bias estimate errors)."""
    return max(5.0, 1e-4 * band.target_adu)


def _is_low(o: Observation, band: Band) -> bool:
    return not o.saturated and o.level_adu < band.low_adu


def _is_high(o: Observation, band: Band) -> bool:
    return o.saturated or o.level_adu > band.high_adu


def not_responding(observations: list[Observation], band: Band) -> tuple[Observation, Observation] | None:
    """A pair of unsaturated frames, one at least twice as long as the other, whose levels do
    not follow: both dark, or the longer one gaining less than a fifth of what a level
    proportional to exposure would (panel off, light leak only, camera stuck). Returns the
    pair, or None when the level responds."""
    floor = dark_floor_adu(band)
    lit = [o for o in observations if not o.saturated]
    for i, a in enumerate(lit):
        for b in lit[i + 1:]:
            short, long_ = (a, b) if a.exposure_s < b.exposure_s else (b, a)
            ratio = long_.exposure_s / short.exposure_s
            if ratio < 2:
                continue
            if long_.level_adu < floor:
                return short, long_
            if short.level_adu >= floor and (long_.level_adu - short.level_adu
                                             < 0.2 * (ratio - 1) * short.level_adu):
                return short, long_
    return None


def _log_mid(a: float, b: float) -> float:
    return math.sqrt(a * b)


def _bracket(observations: list[Observation], band: Band
             ) -> tuple[Observation | None, Observation | None]:
    lows = [o for o in observations if _is_low(o, band)]
    highs = [o for o in observations if _is_high(o, band)]
    lo = max(lows, key=lambda o: o.exposure_s, default=None)
    hi = min(highs, key=lambda o: o.exposure_s, default=None)
    return lo, hi


def _bracket_width(observations: list[Observation], band: Band) -> float:
    lo, hi = _bracket(observations, band)
    if lo is None or hi is None:
        return math.inf
    return math.log(hi.exposure_s / lo.exposure_s)


def fit_line(observations: list[Observation]) -> tuple[float, float] | None:
    """Least-squares level = a * exposure + b through unsaturated frames; with one frame,
    through the origin (the level is already above bias). None when no fit is possible."""
    pts = [(o.exposure_s, o.level_adu) for o in observations if not o.saturated]
    if not pts:
        return None
    if len({t for t, _ in pts}) < 2:
        t = sum(p[0] for p in pts) / len(pts)
        level = sum(p[1] for p in pts) / len(pts)
        return (level / t, 0.0) if t > 0 else None
    n = len(pts)
    mt = sum(p[0] for p in pts) / n
    ml = sum(p[1] for p in pts) / n
    stt = sum((t - mt) ** 2 for t, _ in pts)
    stl = sum((t - mt) * (level - ml) for t, level in pts)
    a = stl / stt
    return a, ml - a * mt


def next_exposure(band: Band | None, limits: ExposureLimits, observations: list[Observation],
                  first_exposure_s: float) -> Decision:
    """The next step of an exposure search at fixed light. `band` comes from the last frame
    (full scale and bias can change with the readout mode); None before the first frame."""
    if not observations or band is None:
        return Measure(limits.clamp(first_exposure_s), why="first frame")
    last = observations[-1]
    if band.contains(last.level_adu) and not last.saturated:
        return Accept(last.exposure_s, last.brightness)
    pair = not_responding(observations, band)
    if pair is not None:
        short, long_ = pair
        if long_.level_adu < dark_floor_adu(band):
            return Refuse(Refusal.NO_LIGHT,
                          f"no light reaches the camera: {short.level_adu:.0f} ADU at "
                          f"{short.exposure_s:g} s and {long_.level_adu:.0f} ADU at "
                          f"{long_.exposure_s:g} s above bias; is the panel on and in front of "
                          f"the optics?")
        return Refuse(Refusal.NO_RESPONSE,
                      f"the level does not follow the exposure: {short.level_adu:.0f} ADU at "
                      f"{short.exposure_s:g} s, {long_.level_adu:.0f} ADU at "
                      f"{long_.exposure_s:g} s; check that the camera really exposes and that "
                      f"the light is steady")
    lo, hi = _bracket(observations, band)
    eps = 1e-9
    if hi is not None and hi.exposure_s <= limits.min_exposure_s * (1 + 1e-6) + eps:
        what = "saturated" if hi.saturated else f"{hi.level_adu:.0f} ADU"
        return Refuse(Refusal.TOO_BRIGHT,
                      f"too bright: {what} at the shortest allowed exposure "
                      f"{limits.min_exposure_s:g} s (target {band.target_adu:.0f} ADU); "
                      f"dim the light, add a diffuser or lower the exposure floor")
    if lo is not None and lo.exposure_s >= limits.max_exposure_s * (1 - 1e-6):
        return Refuse(Refusal.TOO_DIM,
                      f"too dim: {lo.level_adu:.0f} ADU at the longest allowed exposure "
                      f"{limits.max_exposure_s:g} s (target {band.target_adu:.0f} ADU); "
                      f"brighten the light or allow longer exposures")
    if len(observations) >= limits.max_exposures:
        return Refuse(Refusal.GAVE_UP,
                      f"no level in band after {len(observations)} exposures "
                      f"(last {last.level_adu:.0f} ADU at {last.exposure_s:g} s, target "
                      f"{band.low_adu:.0f}-{band.high_adu:.0f} ADU)")
    # Interpolate on the fitted response through the frames nearest the bracket.
    near = [o for o in (lo, hi) if o is not None and not o.saturated]
    fit = fit_line(near if len(near) == 2 else [last] if not last.saturated else near)
    guess: float | None = None
    if fit is not None and fit[0] > 0:
        guess = (band.target_adu - fit[1]) / fit[0]
    if last.saturated and lo is None:
        # A clipped level is only a lower bound: take the largest step down.
        guess = last.exposure_s / limits.max_step_factor
    if guess is None or guess <= 0 or not math.isfinite(guess):
        guess = last.exposure_s * (limits.max_step_factor if _is_low(last, band)
                                   else 1 / limits.max_step_factor)
    # Damp: never more than max_step_factor from the last frame.
    f = limits.max_step_factor
    guess = min(max(guess, last.exposure_s / f), last.exposure_s * f)
    guess = limits.clamp(guess)
    # Safeguard: stay strictly inside the bracket and make it shrink.
    lo_t = lo.exposure_s if lo is not None else None
    hi_t = hi.exposure_s if hi is not None else None
    if lo_t is not None and hi_t is not None:
        margin = 0.02 * math.log(hi_t / lo_t)
        inside = math.log(lo_t) + margin < math.log(guess) < math.log(hi_t) - margin
        stalled = (len(observations) >= 3 and _bracket_width(observations, band)
                   > 0.5 * _bracket_width(observations[:-2], band))
        if not inside or stalled:
            return Measure(_log_mid(lo_t, hi_t), last.brightness, why="bisection")
    elif lo_t is not None and guess <= lo_t:
        guess = limits.clamp(lo_t * 2)
    elif hi_t is not None and guess >= hi_t:
        guess = limits.clamp(hi_t / 2)
    return Measure(guess, last.brightness, why="fit")
