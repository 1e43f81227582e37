"""The exposure ramp of one twilight: what to do next (expose, wait, or stop a filter), from
the sun's path and the frames so far. Owns no hardware and reads no clock: the sequence passes
times in and carries the decisions out, so the same ramp runs in tests, benchmarks and on sky."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Callable

from indical.level import Band
from indical.twilight.controller import (ExposureRange, FitSettings, RateSample,
                                         Sensitivities, SkyModel, Verdict, first_fit_time,
                                         fit_sky, level_for, log_rate_function, plan_exposure,
                                         prior_shape, rate_at_mid, saturated_bound_level)
from indical.twilight.filter_prior import prior_log_sensitivity
from indical.twilight.window import SunLimits, SunPath, SunState, Twilight, sun_state, sun_window


#: How far the sun may move (deg) between a filter's probe and its first flat before the
#: filter is probed again.
REPROBE_DEG = 0.5


@dataclass(frozen=True)
class Expose:
    exposure_s: float
    predicted_level_adu: float | None   # None for a probe (nothing known yet)

    @property
    def probe(self) -> bool:
        return self.predicted_level_adu is None


@dataclass(frozen=True)
class Wait:
    until_unix: float
    why: str


@dataclass(frozen=True)
class Stop:
    why: str


Action = Expose | Wait | Stop


@dataclass
class TwilightRamp:
    """Decisions for one twilight. Call `decide(filter, now)`, take the frame, then `record`."""

    path: SunPath
    twilight: Twilight
    limits: SunLimits
    target: Band
    exposure: ExposureRange
    known: Sensitivities = field(default_factory=Sensitivities)
    fit_settings: FitSettings = FitSettings()
    samples: list[RateSample] = field(default_factory=list)
    bounds: dict[str, float] = field(default_factory=dict)   # lower bounds from saturated frames
    leads_s: list[float] = field(default_factory=list)       # decision -> exposure start
    opens_unix: float | None = None   # when this twilight's window opens (None: from the sun now)
    use_names: bool = True            # a filter's name as a prior for its sensitivity
    probed: set[str] = field(default_factory=set)   # filters a probe measured (not saturated)
    probe_alt: dict[str, float] = field(default_factory=dict)  # where a filter's newest
    #                                         measurement, a probe, was taken (sun altitude)

    def __post_init__(self) -> None:
        # the slope learned in earlier runs is tonight's prior (Patat's shape when none)
        self.prior_slope = self.known.sky_slope

    # -- what we know --
    def model(self, now_unix: float) -> SkyModel | None:
        return fit_sky(self.samples, now_unix, self.fit_settings, self.prior_slope)

    def log_rate(self, filter_name: str, now_unix: float) -> tuple[Callable[[float], float], bool] | None:
        """ln rate against time for a filter and whether it comes from measurements (False:
        only from a saturated frame's lower bound); None when nothing is known."""
        model = self.model(now_unix)
        found = level_for(filter_name, model, self.known)
        bound = self.bounds.get(filter_name)
        if found is not None:
            level, slope = found
            if bound is not None and bound > level:
                # a saturated frame says the sky is brighter than we thought. A bound exists
                # only while the filter's newest frame saturated (a usable one clears it), so
                # it is newer than any fitted level, tonight's included: a cloud that cleared,
                # a fit gone stale; planning from the older level repeats the saturated frame
                level = bound
            return log_rate_function(level, slope, self.path), True
        if model is not None and model.last_filter is not None:
            # a filter never measured: guess it as sensitive as the one measured last, scaled
            # by what the two names say (one frame then measures it; far better than a probe
            # at the range's end)
            guess = model.levels[model.last_filter]
            mine, theirs = prior_log_sensitivity(filter_name), \
                prior_log_sensitivity(model.last_filter)
            if self.use_names and mine is not None and theirs is not None:
                guess += mine - theirs
            if bound is not None:
                guess = max(guess, bound)
            return log_rate_function(guess, model.slope, self.path), False
        if bound is not None:
            return log_rate_function(bound, self.known.sky_slope, self.path), False
        return None

    def predicted_start(self, now_unix: float) -> float:
        """When an exposure commanded now really starts: measured delay (median of recent)."""
        return now_unix + (statistics.median(self.leads_s[-5:]) if self.leads_s else 0.0)

    # -- deciding --
    def decide(self, filter_name: str, now_unix: float) -> Action:
        action = self._decide(filter_name, now_unix)
        if isinstance(action, Wait) and action.until_unix < now_unix + 1.0:
            # at a window's edge two interpolations of the sun's path can disagree by a hair;
            # a wait always moves time on, so the run can't stand still
            return Wait(now_unix + 1.0, action.why)
        return action

    def _decide(self, filter_name: str, now_unix: float) -> Action:
        alt = float(self.path.altitude(now_unix))
        if self.opens_unix is not None and now_unix < self.opens_unix:
            # before this twilight (the sun may sit on the wrong side of a limit until then)
            return Wait(self.opens_unix, f"waiting for the sun to reach "
                        f"{self.limits.entry_deg(self.twilight):g} deg")
        state = sun_state(self.limits, self.twilight, alt)
        window = sun_window(self.path, self.limits, self.twilight, now_unix)
        if state is SunState.AFTER:
            return Stop(f"the sun is at {alt:.1f} deg, past the "
                        f"{self.limits.exit_deg(self.twilight):g} deg limit")
        if state is SunState.BEFORE:
            if window.opens_unix is None:
                return Stop(f"the sun does not reach {self.limits.entry_deg(self.twilight):g} "
                            "deg in this twilight")
            return Wait(window.opens_unix, f"waiting for the sun to reach "
                        f"{self.limits.entry_deg(self.twilight):g} deg")
        until = window.closes_unix if window.closes_unix is not None else self.path.end_unix
        known = self.log_rate(filter_name, now_unix)
        if known is None:
            probe = self.exposure.min_s if self.twilight is Twilight.DUSK else self.exposure.max_s
            return Expose(probe, None)
        log_rate, measured = known
        start = self.predicted_start(now_unix)
        model = self.model(now_unix)
        tonight = model is not None and filter_name in model.levels
        # a level carried over from another filter or run is less sure than tonight's own:
        # at the ends of the exposure range, aim further inside the band
        margin = 0.03 if tonight else 0.5 * self.target.tolerance
        plan = plan_exposure(log_rate, start, self.target, self.exposure, margin=margin)
        if plan.verdict is Verdict.EXPOSE:
            return Expose(plan.exposure_s, plan.predicted_level_adu if measured else None)
        waiting = (plan.verdict is Verdict.TOO_BRIGHT) == (self.twilight is Twilight.DUSK)
        if not waiting:
            return Stop(f"sky {plan.verdict.value} for {self.exposure.min_s:g}-"
                        f"{self.exposure.max_s:g} s exposures")
        t = first_fit_time(log_rate, start, until, self.target, self.exposure, margin=margin)
        if t is None:
            return Stop("the sky will not come within reach before the sun leaves the limits")
        return Wait(max(t - (start - now_unix), now_unix + 1.0),
                    f"sky {plan.verdict.value} for {self.exposure.min_s:g}-"
                    f"{self.exposure.max_s:g} s" + ("" if measured else " (saturated so far)"))

    def probe(self, filter_name: str, now_unix: float, shortest_s: float) -> Action:
        """One short frame that only measures a filter's sky rate (the first night's pass over
        filters of unknown sensitivity, as the sky enters the window): Wait before the window,
        Stop after it, else an exposure from `shortest_s` (the camera's) up to the range's
        longest, aimed at a tenth of the target for a filter as sensitive as the most
        sensitive measured tonight, so filters from 25x more to 100x less sensitive read a
        level. With nothing measured: `shortest_s` at dusk (the brightest sky), the range's
        shortest at dawn."""
        alt = float(self.path.altitude(now_unix))
        if self.opens_unix is not None and now_unix < self.opens_unix:
            return Wait(self.opens_unix, f"waiting for the sun to reach "
                        f"{self.limits.entry_deg(self.twilight):g} deg")
        state = sun_state(self.limits, self.twilight, alt)
        if state is SunState.AFTER:
            return Stop(f"the sun is at {alt:.1f} deg, past the "
                        f"{self.limits.exit_deg(self.twilight):g} deg limit")
        if state is SunState.BEFORE:
            window = sun_window(self.path, self.limits, self.twilight, now_unix)
            if window.opens_unix is None:
                return Stop(f"the sun does not reach {self.limits.entry_deg(self.twilight):g} "
                            "deg in this twilight")
            return Wait(window.opens_unix, f"waiting for the sun to reach "
                        f"{self.limits.entry_deg(self.twilight):g} deg")
        model = self.model(now_unix)
        brightest = None
        if model is not None:
            h = float(prior_shape(alt))
            brightest = max(lv + model.slope * h for lv in model.levels.values())
        for f, bound in self.bounds.items():
            if f != filter_name:
                b = bound + self.known.sky_slope * float(prior_shape(alt))
                brightest = b if brightest is None else max(brightest, b)
        if brightest is None:
            exposure_s = shortest_s if self.twilight is Twilight.DUSK else self.exposure.min_s
        else:
            exposure_s = 0.1 * self.target.target_adu / math.exp(brightest)
        return Expose(min(max(exposure_s, shortest_s), self.exposure.max_s), None)

    def probe_ready(self, filter_name: str, now_unix: float, shortest_s: float) -> float | None:
        """At dusk, when a probe of `shortest_s` in a filter whose probes saturated would read
        half the target if the sky were at its lower bound (it is brighter, so a probe then
        still may saturate and raise the bound): the time to probe it again. None when that
        is not before the window closes, or the filter has no bound."""
        bound = self.bounds.get(filter_name)
        if bound is None or self.twilight is not Twilight.DUSK:
            return None
        window = sun_window(self.path, self.limits, self.twilight, now_unix)
        until = window.closes_unix if window.closes_unix is not None else self.path.end_unix
        t = now_unix
        while t <= until:
            level = math.exp(bound + self.known.sky_slope
                             * float(prior_shape(float(self.path.altitude(t))))) * shortest_s
            if level <= 0.5 * self.target.target_adu:
                return t
            t += 10.0
        return None

    def stale_probe(self, filter_name: str, now_unix: float) -> bool:
        """Whether the filter's only measurement tonight is a probe taken more than
        REPROBE_DEG of sun altitude ago: filters fade at slightly different rates (the sky's
        colour changes), so one frame early in the window mispredicts a filter's first flat
        much later by 15-25 %; a fresh probe before it costs a short frame."""
        alt = self.probe_alt.get(filter_name)
        return alt is not None and abs(float(self.path.altitude(now_unix)) - alt) > REPROBE_DEG

    def probe_order(self, filters: list[str]) -> dict[str, float]:
        """Tonight's levels for ordering after a probe pass: fitted where a probe read a level,
        else a saturated probe's lower bound (the filter is at least that sensitive)."""
        model = self.model(max((s.mid_unix for s in self.samples), default=0.0))
        out = dict(model.levels) if model is not None else {}
        for f in filters:
            if f not in out and f in self.bounds:
                out[f] = self.bounds[f]
        return {f: out[f] for f in filters if f in out}

    # -- learning --
    def record(self, filter_name: str, *, decided_unix: float, start_unix: float,
               exposure_s: float, level_adu: float, level_usable: bool,
               saturated: bool, probe: bool = False) -> RateSample | None:
        """Learn from a frame: the delay before it started, and its sky rate at mid-exposure
        (or, for a saturated frame, a lower bound on the sky). `probe`: a frame that only
        measured the filter's rate (see `probe`)."""
        self.leads_s.append(max(0.0, start_unix - decided_unix))
        mid = start_unix + exposure_s / 2
        alt = float(self.path.altitude(mid))
        if saturated and not level_usable:
            model = self.model(mid)
            clip = max(level_adu, self.target.high_adu)
            # The sky was brighter than clip / exposure. Planning the next probe as if it were
            # clip / target times brighter still makes each probe gain that factor squared.
            bound = saturated_bound_level(clip, exposure_s, alt, model.slope if model else 1.0) \
                + math.log(clip / self.target.target_adu)
            self.bounds[filter_name] = max(bound, self.bounds.get(filter_name, -math.inf))
            self.probe_alt.pop(filter_name, None)   # no fresh probe to wait for
            return None
        if not level_usable:
            return None
        # a frame too faint to measure still bounds the sky from above: count it as 1 ADU
        level_adu = max(level_adu, 1.0)
        model = self.model(mid)
        slope = model.slope if model else 1.0
        k = slope * (float(prior_shape(alt + 0.01)) - float(prior_shape(alt - 0.01))) / 0.02 \
            * self.path.rate_deg_per_s(mid)
        sample = RateSample(filter_name, mid, alt, rate_at_mid(level_adu, exposure_s, k), probe)
        self.samples.append(sample)
        self.bounds.pop(filter_name, None)
        if probe:
            self.probed.add(filter_name)
            self.probe_alt[filter_name] = alt
        else:
            self.probe_alt.pop(filter_name, None)
        # ratios kept between runs come from flats alone: a probe taken early in the window,
        # where the sky's colour differs, carried a filter's ratio 20 % off into the next run
        new = fit_sky([s for s in self.samples if not s.probe], mid, self.fit_settings,
                      self.prior_slope)
        if new is not None:
            self.known.learn(new)
        return sample
