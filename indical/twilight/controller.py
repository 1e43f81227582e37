"""The twilight exposure controller: from the frames so far, predict the sky rate over the next
exposure and choose the exposure whose integrated counts hit the target.

Model: ln rate(filter, sun altitude h) = level[filter] + slope * shape(h), where shape(h) is the
twilight zenith brightness of Patat et al. (2006) in natural-log units (0 at h = -5 deg) and
slope a multiplier with prior 1 (the twilight slope as a prior; Tyson & Gal 1993 describe the
same exponential sky in time). Levels and slope are fitted by weighted least squares over the
recent frames, newer frames weighing more, with a Gaussian prior on the slope. Filters share
the slope and differ in level: a filter's level relative to the others is its sensitivity,
learned from the frames and kept between runs, so a filter change predicts the right exposure
at once. The exposure integrates the predicted rate from the exposure's real start, so neither
the sky's change during the exposure nor the dead time before it makes the ramp lag."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from indical.level import Band
from indical.twilight.filter_prior import ordering_levels
from indical.twilight.window import SunPath, Twilight

# Patat et al. 2006, V band: m = a0 + a1 x + a2 x^2 with x = sun zenith distance - 95 deg,
# fitted for sun altitude -5 to -15 deg; continued along its tangents outside that range.
_PATAT_V = (11.84, 1.518, -0.057)
_X_MAX = 10.0  # sun altitude -15 deg
_LN10_04 = 0.4 * math.log(10.0)


def prior_shape(sun_alt_deg: float | np.ndarray) -> float | np.ndarray:
    """ln of the twilight sky brightness relative to its value at sun altitude -5 deg."""
    _, a1, a2 = _PATAT_V
    x = np.asarray(-5.0 - np.asarray(sun_alt_deg, dtype=float))
    dm = np.where(x < 0, a1 * x,
                  np.where(x > _X_MAX,
                           a1 * _X_MAX + a2 * _X_MAX ** 2 + (a1 + 2 * a2 * _X_MAX) * (x - _X_MAX),
                           a1 * x + a2 * x * x))
    out = -_LN10_04 * dm
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class RateSample:
    """One frame's sky rate (ADU/s above bias) at its mid-exposure time."""

    filter: str
    mid_unix: float
    sun_alt_deg: float
    rate_adu_s: float
    probe: bool = False     # a probe's: tonight's model uses it, the ratios kept between runs not


@dataclass(frozen=True)
class FitSettings:
    slope_sigma: float = 0.15        # prior width of the slope multiplier around 1
    measurement_sigma: float = 0.02  # relative scatter of one frame's rate
    memory_s: float = 600.0          # frames this much older weigh e times less
    max_samples: int = 12            # the most recent frames used


@dataclass(frozen=True)
class SkyModel:
    """Fitted sky: ln rate = levels[filter] + slope * prior_shape(h)."""

    slope: float
    levels: Mapping[str, float]
    last_filter: str | None = None   # the filter measured most recently

    def log_rate(self, filter_name: str, sun_alt_deg: float) -> float:
        return self.levels[filter_name] + self.slope * float(prior_shape(sun_alt_deg))


def fit_sky(samples: Sequence[RateSample], now_unix: float,
            settings: FitSettings = FitSettings(), prior_slope: float = 1.0) -> SkyModel | None:
    """Weighted least-squares fit of the slope and per-filter levels to recent samples, with
    the slope pulled towards the prior (Patat's 1, or what earlier runs learned). None
    without samples."""
    recent = sorted(samples, key=lambda s: s.mid_unix)[-settings.max_samples:]
    recent = [s for s in recent if s.rate_adu_s > 0]
    if not recent:
        return None
    filters = list(dict.fromkeys(s.filter for s in recent))
    n, k = len(recent), 1 + len(filters)
    a = np.zeros((n + 1, k))
    b = np.zeros(n + 1)
    for i, s in enumerate(recent):
        age = max(0.0, now_unix - s.mid_unix)
        w = math.exp(-0.5 * age / settings.memory_s) / settings.measurement_sigma
        a[i, 0] = w * float(prior_shape(s.sun_alt_deg))
        a[i, 1 + filters.index(s.filter)] = w
        b[i] = w * math.log(s.rate_adu_s)
    a[n, 0] = 1.0 / settings.slope_sigma
    b[n] = prior_slope / settings.slope_sigma
    theta = np.linalg.lstsq(a, b, rcond=None)[0]
    levels = {f: float(theta[1 + j]) for j, f in enumerate(filters)}
    return SkyModel(float(theta[0]), levels, recent[-1].filter)


@dataclass
class Sensitivities:
    """What carries over between runs: each filter's sensitivity as a log ratio to the others
    (`ratios`; only differences matter, sky colour aside they hold at any sun altitude) and
    the last fitted sky (level, slope and filter) to predict the first frame of the next run.
    Clouds and haze change the sky's level, hardly the filters' ratios."""

    ratios: dict[str, float] = field(default_factory=dict)
    sky_level: float | None = None
    sky_slope: float = 1.0
    sky_filter: str | None = None

    def learn(self, model: SkyModel) -> None:
        """Take in a fit: filters fitted together (one slope) give their ratios exactly."""
        anchors = [f for f in model.levels if f in self.ratios]
        shift = (self.ratios[anchors[0]] - model.levels[anchors[0]]) if anchors else 0.0
        for f, level in model.levels.items():
            if f not in self.ratios or len(model.levels) > 1:
                self.ratios[f] = level + shift
        if model.last_filter is not None:
            self.sky_level = model.levels[model.last_filter]
            self.sky_slope = model.slope
            self.sky_filter = model.last_filter

    def relative(self) -> dict[str, float]:
        """Sensitivity of each known filter relative to the most sensitive one (<= 1)."""
        if not self.ratios:
            return {}
        top = max(self.ratios.values())
        return {f: math.exp(v - top) for f, v in self.ratios.items()}

    def to_json(self) -> dict:
        return {"ratios": dict(self.ratios), "sky_level": self.sky_level,
                "sky_slope": self.sky_slope, "sky_filter": self.sky_filter}

    @classmethod
    def from_json(cls, doc: Mapping) -> "Sensitivities":
        return cls({str(k): float(v) for k, v in doc.get("ratios", {}).items()},
                   doc.get("sky_level"), float(doc.get("sky_slope", 1.0)), doc.get("sky_filter"))


def level_for(filter_name: str, model: SkyModel | None,
              known: Sensitivities) -> tuple[float, float] | None:
    """(level, slope) for a filter tonight: fitted when it was measured; else the filter
    measured last shifted by the known ratio; else the last run's sky shifted the same way."""
    if model is not None and filter_name in model.levels:
        return model.levels[filter_name], model.slope
    if filter_name not in known.ratios:
        return None
    if model is not None:
        anchors = [f for f in [model.last_filter, *model.levels]
                   if f is not None and f in known.ratios and f in model.levels]
        if anchors:
            g = anchors[0]
            return model.levels[g] + known.ratios[filter_name] - known.ratios[g], model.slope
    if known.sky_level is not None and known.sky_filter in known.ratios:
        return (known.sky_level + known.ratios[filter_name] - known.ratios[known.sky_filter],
                known.sky_slope)
    return None


def log_rate_function(level: float, slope: float, path: SunPath) -> Callable[[float], float]:
    """ln rate (ADU/s) against time, for one filter."""
    return lambda t_unix: level + slope * float(prior_shape(path.altitude(t_unix)))


def rate_at_mid(level_adu: float, exposure_s: float, log_rate_per_s: float) -> float:
    """Sky rate at mid-exposure from a frame's level: the level over the exposure, corrected
    for the sky's exponential change during it (a small effect, exact for an exponential)."""
    x = 0.5 * log_rate_per_s * exposure_s
    factor = 1.0 if abs(x) < 1e-9 else x / math.sinh(x)
    return level_adu / exposure_s * factor


def integrated_level(log_rate: Callable[[float], float], start_unix: float,
                     exposure_s: float) -> float:
    """Counts (ADU) collected from start over the exposure, ln rate taken as linear in time."""
    r0 = math.exp(log_rate(start_unix))
    k = (log_rate(start_unix + exposure_s) - log_rate(start_unix)) / exposure_s
    x = k * exposure_s
    return r0 * exposure_s * (1.0 if abs(x) < 1e-9 else math.expm1(x) / x)


def exposure_for(log_rate: Callable[[float], float], start_unix: float, target_adu: float,
                 cap_s: float) -> float:
    """Exposure whose integrated counts reach the target from `start_unix` (Tyson & Gal's
    e = ln(1 + k N / R0) / k, with k refined over the exposure itself); inf when the sky
    fades too fast to reach it, values above `cap_s` only mean "more than cap_s"."""
    r0 = math.exp(log_rate(start_unix))
    e = min(target_adu / r0, cap_s)
    for _ in range(6):
        k = (log_rate(start_unix + e) - log_rate(start_unix)) / e
        if abs(k * e) < 1e-9:
            new = target_adu / r0
        else:
            arg = 1.0 + k * target_adu / r0
            if arg <= 0:
                return math.inf
            new = math.log(arg) / k
        if new > cap_s:
            # beyond the cap the exact value does not matter; check it really is beyond
            if integrated_level(log_rate, start_unix, cap_s) < target_adu:
                return max(new, cap_s * (1 + 1e-9))
            new = cap_s
        if abs(new - e) <= 1e-6 * e:
            return new
        e = new
    return e


@dataclass(frozen=True)
class ExposureRange:
    min_s: float
    max_s: float

    def __post_init__(self) -> None:
        if not 0 < self.min_s < self.max_s:
            raise ValueError(f"exposure range {self.min_s}-{self.max_s} s: need 0 < min < max")


class Verdict(enum.Enum):
    EXPOSE = "expose"
    TOO_BRIGHT = "too bright"   # even the shortest exposure would overshoot the band
    TOO_DARK = "too dark"       # even the longest exposure would fall short of it


@dataclass(frozen=True)
class ExposurePlan:
    verdict: Verdict
    exposure_s: float             # clamped to the range
    predicted_level_adu: float    # at that exposure
    ideal_exposure_s: float       # unclamped (inf: the target can't be reached)


def plan_exposure(log_rate: Callable[[float], float], start_unix: float, target: Band,
                  limits: ExposureRange, margin: float = 0.03) -> ExposurePlan:
    """The exposure to start at `start_unix`, or why none fits. An exposure clamped to the
    range is taken only when its predicted level is `margin` (relative) inside the band, so
    a small prediction error does not put the frame outside."""
    ideal = exposure_for(log_rate, start_unix, target.target_adu, cap_s=limits.max_s)
    exposure = min(max(ideal, limits.min_s), limits.max_s)
    level = integrated_level(log_rate, start_unix, exposure)
    inner = max(target.tolerance - margin, 0.0)
    if level > target.target_adu * (1 + inner) * (1 + 1e-9):
        verdict = Verdict.TOO_BRIGHT
    elif level < target.target_adu * (1 - inner) * (1 - 1e-9):
        verdict = Verdict.TOO_DARK
    else:
        verdict = Verdict.EXPOSE
    return ExposurePlan(verdict, exposure, level, ideal)


def first_fit_time(log_rate: Callable[[float], float], from_unix: float, until_unix: float,
                   target: Band, limits: ExposureRange, step_s: float = 10.0,
                   margin: float = 0.03) -> float | None:
    """The earliest start time at which a planned exposure fits, scanning forward; None when
    none does before `until_unix`. Used to wait for the sky and to say when we expect to start."""
    t = from_unix
    while t <= until_unix:
        if plan_exposure(log_rate, t, target, limits, margin).verdict is Verdict.EXPOSE:
            if t == from_unix:
                return t
            lo, hi = t - step_s, t   # refine to a second
            while hi - lo > 1.0:
                mid = 0.5 * (lo + hi)
                if plan_exposure(log_rate, mid, target, limits, margin).verdict is Verdict.EXPOSE:
                    hi = mid
                else:
                    lo = mid
            return hi
        t += step_s
    return None


def order_filters(filters: Sequence[str], known: Sensitivities, twilight: Twilight,
                  use_names: bool = True, tonight: Mapping[str, float] | None = None
                  ) -> list[str]:
    """Least sensitive filter first at dusk (it needs the brightest sky), most sensitive first at
    dawn. `tonight`, levels a probe pass measured this run (one scale), decides alone when
    given; else sensitivities learned from frames come first; a filter not yet measured is
    placed by what its name says (`filter_prior`, unless `use_names` is off); one of unknown
    sensitivity and name counts as the median of the others; with nothing known the given
    order stays."""
    if tonight:
        levels = {f: tonight[f] for f in filters if f in tonight}
    else:
        levels = ordering_levels(filters, known.ratios) if use_names else \
            {f: known.ratios[f] for f in filters if f in known.ratios}
    if not levels and not known.ratios:
        return list(filters)
    fill = float(np.median(list(levels.values()) or list(known.ratios.values())))
    key = {f: levels.get(f, fill) for f in filters}
    ordered = sorted(filters, key=lambda f: key[f])   # stable: ties keep the given order
    return ordered if twilight is Twilight.DUSK else ordered[::-1]


def saturated_bound_level(saturation_adu: float, exposure_s: float, sun_alt_deg: float,
                          slope: float = 1.0) -> float:
    """A filter's level is at least this when a frame saturated: the rate was above
    saturation / exposure. Planning with it as the level never overshoots the sky."""
    return math.log(saturation_adu / exposure_s) - slope * float(prior_shape(sun_alt_deg))
