"""Twilight sky flats on a sequence Session: the loop around the ramp's decisions and the
rejection checks. For each filter (least sensitive first at dusk, most sensitive first at dawn):
wait until the sky is in reach, take the flats still missing tonight, each exposure predicted
from the sky so far, keep what passes and set aside (on disk, flagged) what does not."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indical.atomic import atomic_file
from indical.errors import IndicalError, NotSupported, RigError
from indical.frame import Frame, FrameType
from indical.level import Band, Level, Target, channel_floor_problem, measure_bias
from indical.sequence.flat_config import FlatsTaken
from indical.sequence.panel import take_dark_flats
from indical.sequence.session import Session
from indical.twilight.baselines import RAMPS
from indical.twilight.controller import ExposureRange, Sensitivities, order_filters
from indical.twilight.ramp import Expose, Stop, TwilightRamp, Wait
from indical.twilight.rejection import (STACK, RejectionSettings, RunningReference, judge_frame,
                                        stack_outliers)
from indical.twilight.window import (SunLimits, SunPath, SunWindow, Twilight, flat_spot_altaz,
                                     from_unix, next_twilight, to_unix)


@dataclass(frozen=True)
class TwilightOptions:
    """How a twilight run behaves; the sequence file's settings."""

    twilight: str = "next"            # "dusk", "dawn" or "next" (whichever comes first)
    sun_brightest_deg: float = -2.0   # the sun-altitude limits of the run
    sun_darkest_deg: float = -10.0
    min_exposure_s: float = 1.0       # shutter shading below ~1 s on many cameras
    max_exposure_s: float = 60.0
    dither_arcsec: float = 20.0       # mount offset between frames (0: none)
    stop_tracking: bool = False       # let the stars trail instead of dithering
    flat_spot: bool = True            # point ~15 deg from the zenith, away from the sun
    bias_adu: float | None = None     # None: measured from a bias frame (cover closed)
    ramp: str = "predictive"          # or the baselines "ratio", "tyson-gal" (benchmarks)
    rejection: RejectionSettings = RejectionSettings()
    sky_memory: Path | None = None    # learned sensitivities; default beside the trained store
    filter_order: str = "learn"       # "learn": by sensitivity (learned, else from the names),
                                      # re-chosen after each filter; "given": as listed
    probe_filters: bool = True        # with "learn": one short frame per filter when the sky
                                      # enters the window while a filter's sensitivity is unknown
    probe_min_exposure_s: float = 0.05  # probes measure a level, not a flat: shorter than flats,
                                        # long enough for the shutter's timing error (~1 %)

    def __post_init__(self) -> None:
        if self.twilight not in ("dusk", "dawn", "next"):
            raise ValueError(f"twilight must be 'dusk', 'dawn' or 'next', got {self.twilight!r}")
        if self.filter_order not in ("learn", "given"):
            raise ValueError(f"filter_order must be 'learn' or 'given', got "
                             f"{self.filter_order!r}")
        if self.ramp not in RAMPS:
            raise ValueError(f"ramp must be one of {', '.join(RAMPS)}, got {self.ramp!r}")
        if not self.probe_min_exposure_s > 0:
            raise ValueError(f"probe_min_exposure_s must be above 0 s, got "
                             f"{self.probe_min_exposure_s!r}")
        SunLimits(self.sun_brightest_deg, self.sun_darkest_deg)
        ExposureRange(self.min_exposure_s, self.max_exposure_s)


@dataclass(frozen=True)
class TwilightFrame:
    """One sky frame as the run judged it."""

    filter: str | None
    start_unix: float
    exposure_s: float
    sun_alt_deg: float
    level_adu: float
    target_adu: float
    tolerance: float
    accepted: bool
    reason: str
    path: Path | None

    @property
    def in_band(self) -> bool:
        return abs(self.level_adu / self.target_adu - 1.0) <= self.tolerance


@dataclass
class TwilightResult:
    """What a run took: `frames` the exposures aimed at the target (flats kept or set aside),
    `probes` the short frames that only measured a filter's sky rate (never flats)."""

    twilight: Twilight | None = None
    window: SunWindow | None = None
    frames: list[TwilightFrame] = field(default_factory=list)
    stopped: dict[str, str] = field(default_factory=dict)
    probes: list[TwilightFrame] = field(default_factory=list)

    def accepted(self, filter: str | None = ...) -> int:  # type: ignore[assignment]
        return sum(1 for f in self.frames if f.accepted and (filter is ... or f.filter == filter))

    def in_band_fraction(self) -> float:
        return sum(f.in_band for f in self.frames) / len(self.frames) if self.frames else 0.0

    def exposures(self, filter: str | None) -> list[float]:
        return [f.exposure_s for f in self.frames if f.accepted and f.filter == filter]


class SkyMemory:
    """Learned filter sensitivities and sky, one entry per camera configuration, in a small
    JSON file written atomically after every frame (so an interrupted run resumes with them)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndicalError(f"{self.path}: can't read the twilight sky memory ({exc}); "
                               "delete it to start afresh") from None

    def load(self, key: str) -> Sensitivities:
        doc = self._read().get(key)
        return Sensitivities.from_json(doc) if doc else Sensitivities()

    def save(self, key: str, known: Sensitivities) -> None:
        if self.path is None:
            return
        doc = self._read()
        doc[key] = known.to_json()
        with atomic_file(self.path, text=True, overwrite=True, fsync=False) as fh:
            json.dump(doc, fh, indent=1, sort_keys=True)


class _Pointing:
    """The optional mount: flat spot, dithers between frames, or tracking off."""

    def __init__(self, obs: Session, site, options: TwilightOptions) -> None:
        self.obs, self.site, self.options = obs, site, options
        self.mount = obs.rig.mount
        self.step = 0
        self.started = False

    def start(self, now_unix: float) -> None:
        """Before the first exposure (not hours ahead: the flat spot follows the sun)."""
        if self.started:
            return
        self.started = True
        if self.mount is None:
            return
        if self.options.flat_spot:
            alt, az = flat_spot_altaz(self.site, now_unix)
            try:
                self.mount.slew_altaz(alt, az)
                self.obs.say(f"pointing at the flat spot: altitude {alt:.0f}, azimuth {az:.0f} deg")
            except NotSupported:
                self.obs.say(f"{self.mount.name} can't slew to alt/az; flats where it points")
        if self.options.stop_tracking:
            self.mount.set_tracking(False)

    def between_frames(self) -> None:
        """A growing square spiral, so no star lands twice on the same pixels."""
        if self.mount is None or self.options.stop_tracking or self.options.dither_arcsec <= 0:
            return
        self.step += 1
        d = self.options.dither_arcsec * (1 + self.step // 4)
        east, north = [(d, 0.0), (0.0, d), (-d, 0.0), (0.0, -d)][self.step % 4]
        self.mount.offset(east, north)

    def finish(self) -> None:
        if self.mount is not None and self.started and self.options.stop_tracking:
            self.mount.set_tracking(True)


def _choose_twilight(site, now_unix: float, limits: SunLimits,
                     which: str) -> tuple[Twilight, SunWindow] | None:
    t = now_unix
    for _ in range(3):
        found = next_twilight(site, t, limits)
        if found is None:
            return None
        twilight, window = found
        if which == "next" or twilight.value == which:
            return found
        t = (window.closes_unix or window.opens_unix or t) + 120.0
    return None


def _bias(obs: Session, options: TwilightOptions) -> float:
    """The bias level, from a bias frame with the cover closed if there is one (the sky must
    not reach the sensor); cameras without cover or shutter should set BIAS_ADU."""
    if options.bias_adu is not None:
        return options.bias_adu
    cover = obs.rig.cover
    if cover is not None:
        obs.close_cover()
    frame = obs.expose(obs.camera.info().min_exposure_s, FrameType.BIAS)
    level = measure_bias(frame.data)
    obs.record("bias", frame, level=level, target=None, accepted=True,
               reason=f"bias level {level:.1f} ADU for the sky flats")
    if cover is not None:
        obs.open_cover()
    return level


def _keep_rejected(obs: Session, frame: Frame, level: Level, reason: str) -> Path | None:
    writer = getattr(obs.sink, "write_rejected", None)
    if writer is None:
        return None
    return writer(frame.with_meta(level_adu=round(level.level_adu, 1)), reason)


def sky_key(obs: Session) -> str:
    cam = obs.camera
    return f"{cam.name}|bin {cam.binning()}|gain {cam.gain()}|offset {cam.offset()}|" \
           f"mode {cam.readout_mode()}"


def take_twilight_flats(obs: Session, filters: list[str | None], *, count: int,
                        target: Target, options: TwilightOptions = TwilightOptions()
                        ) -> TwilightResult:
    """Flats from the twilight sky in each filter, `count` per filter tonight (only those still
    missing are taken). Returns what was taken and why each filter stopped."""
    site = obs.rig.site
    if site is None:
        raise RigError(obs.rig.spec.source, "[site]", "twilight flats need the site: add "
                       "[site] latitude, longitude and elevation to the rig file")
    result = TwilightResult()
    limits = SunLimits(options.sun_brightest_deg, options.sun_darkest_deg)
    now = to_unix(obs.clock.now())
    chosen = _choose_twilight(site, now, limits, options.twilight)
    if chosen is None or chosen[1].opens_unix is None:
        obs.say(f"the sun does not pass between {limits.brightest_deg:g} and "
                f"{limits.darkest_deg:g} deg in the coming day at this site: no twilight flats")
        return result
    twilight, window = chosen
    result.twilight, result.window = twilight, window
    closes = window.closes_unix
    obs.say(f"{twilight.value}: sun between {limits.brightest_deg:g} and {limits.darkest_deg:g} "
            f"deg from {from_unix(window.opens_unix):%H:%M:%S} to "
            + (f"{from_unix(closes):%H:%M:%S} UTC" if closes else "the end of the night"))
    end = (closes if closes is not None else window.opens_unix + 6 * 3600) + 1800
    path = SunPath.compute(site, now - 60.0, end - now + 60.0)

    bias = _bias(obs, options)
    obs.set_bias(bias)
    info = obs.camera.info()
    band = target.band(float((1 << info.bit_depth) - 1), bias)
    exposure = ExposureRange(max(options.min_exposure_s, info.min_exposure_s),
                             min(options.max_exposure_s, info.max_exposure_s))
    memory_path = options.sky_memory or (obs.store.path.parent / "twilight_sky.json"
                                         if obs.store is not None else None)
    memory = SkyMemory(memory_path)
    key = sky_key(obs)
    known = memory.load(key)
    learn = options.filter_order == "learn"
    ramp: TwilightRamp = RAMPS[options.ramp](path, twilight, limits, band, exposure,
                                             known=known, opens_unix=window.opens_unix,
                                             use_names=learn)
    names = {(f or ""): f for f in filters}
    remaining = list(names)
    pointing = _Pointing(obs, site, options)
    tonight: dict[str, float] | None = None
    try:
        if learn and options.probe_filters and len(names) > 1 \
                and any(n not in ramp.known.ratios for n in names):
            tonight = {}
        while remaining:
            if tonight is not None:
                # probe the filters no probe has measured yet (at first all; later those whose
                # probe saturated, which the changing sky may now let a probe measure)
                unmeasured = [n for n in remaining if n not in ramp.probed]
                while unmeasured:
                    tonight.update(_probe_pass(obs, {n: names[n] for n in unmeasured},
                                               ramp=ramp, band_target=band.target_adu,
                                               channel=target.channel, pointing=pointing,
                                               result=result, memory=memory, key=key,
                                               shortest_s=options.probe_min_exposure_s))
                    unmeasured = [n for n in remaining if n not in ramp.probed]
                    if len(unmeasured) < len(remaining):
                        break
                    # every probe saturated (a dusk sky too bright even for the shortest
                    # probe): no order yet, and no filter's flats in reach either; probe again
                    # when the least sensitive bound says a probe would read a level
                    shortest = max(info.min_exposure_s, options.probe_min_exposure_s)
                    now = to_unix(obs.clock.now())
                    ready = [t for n in unmeasured
                             if (t := ramp.probe_ready(n, now, shortest)) is not None]
                    if not ready:
                        break
                    obs.say(f"filter probes saturated: probing again at "
                            f"{from_unix(min(ready)):%H:%M:%S} UTC")
                    obs.clock.sleep(max(1.0, min(ready) - now))
            # chosen again after each filter: its frames may have changed what is known
            n = order_filters(remaining, ramp.known, twilight, tonight=tonight)[0] if learn \
                else remaining[0]
            remaining.remove(n)
            _one_filter(obs, names[n], count=count, ramp=ramp, target=target, band=band,
                        bias=bias, options=options, pointing=pointing, result=result,
                        memory=memory, key=key)
    finally:
        pointing.finish()
    return result


def _probe_pass(obs: Session, names: dict[str, str | None], *, ramp: TwilightRamp,
                band_target: float, channel: str, pointing: _Pointing,
                result: TwilightResult, memory: SkyMemory, key: str,
                shortest_s: float) -> dict[str, float]:
    """One short frame per filter as the sky enters the window, to order the filters by what
    they measure when some sensitivity is unknown (a first night, names like "Slot 5"). The
    frames only measure the sky rate: they may be shorter than flats (down to `shortest_s`),
    and are never kept. Returns tonight's level (or saturated bound) per filter."""
    shortest = max(obs.camera.info().min_exposure_s, shortest_s)
    told: str | None = None
    for n, name in names.items():
        obs.select_filter(name)
        while True:
            now = to_unix(obs.clock.now())
            action = ramp.probe(n, now, shortest)
            if isinstance(action, Wait):
                if action.why != told:
                    told = action.why
                    obs.say(f"filter probes: {action.why}; expect to start at "
                            f"{from_unix(action.until_unix):%H:%M:%S} UTC")
                obs.clock.sleep(max(1.0, min(action.until_unix - now, 600.0)))
                continue
            if isinstance(action, Stop):
                obs.say(f"filter probes: {action.why}")
                return ramp.probe_order(list(names))
            if not pointing.started:
                pointing.start(now)
                continue
            break
        assert isinstance(action, Expose)
        _probe_frame(obs, n, name, action.exposure_s, now, ramp=ramp, band_target=band_target,
                     channel=channel, result=result, why="for the order")
        memory.save(key, ramp.known)
    order = ramp.probe_order(list(names))
    obs.say("filter probes: " + ", ".join(f"{n or 'the one filter'} {math.exp(v):.3g}"
                                          for n, v in sorted(order.items(), key=lambda x: x[1]))
            + " (sky rate, ADU/s at -5 deg)")
    return order


def _probe_frame(obs: Session, n: str, name: str | None, exposure_s: float, decided: float, *,
                 ramp: TwilightRamp, band_target: float, channel: str, result: TwilightResult,
                 why: str) -> None:
    """Take one probe: a frame that only measures the filter's sky rate, logged as a search
    frame and listed in `result.probes`, never kept."""
    frame = obs.expose(exposure_s, FrameType.FLAT)
    start = to_unix(frame.meta.start) if frame.meta.start else decided
    alt = float(ramp.path.altitude(start + exposure_s / 2))
    frame = frame.with_meta(sun_altitude_deg=round(alt, 3), flat_source="SKY")
    level = obs.measure(frame, channel)
    ramp.record(n, decided_unix=decided, start_unix=start, exposure_s=exposure_s,
                level_adu=level.level_adu, level_usable=not level.saturated,
                saturated=level.saturated, probe=True)
    what = "saturated" if level.saturated else f"{level.level_adu:.0f} ADU"
    obs.record("search", frame, level=level.level_adu, target=band_target, accepted=False,
               reason=f"filter probe: {what} at {exposure_s:g} s, the filter's sky rate {why}",
               sun_alt=round(alt, 3))
    result.probes.append(TwilightFrame(name, start, exposure_s, alt, level.level_adu,
                                       ramp.target.target_adu, ramp.target.tolerance, False,
                                       "filter probe", None))


def _one_filter(obs: Session, name: str | None, *, count: int, ramp: TwilightRamp,
                target: Target, band: Band, bias: float, options: TwilightOptions,
                pointing: _Pointing, result: TwilightResult, memory: SkyMemory, key: str
                ) -> None:
    label = name or "the one filter"
    rkey = name or ""
    obs.select_filter(name)
    query = obs.query(FrameType.FLAT, filter=name, flat_source="SKY")
    need = obs.still_needed(query, count)
    if need == 0:
        obs.say(f"{label}: {count} twilight flats already taken tonight")
        return
    obs.say(f"{label}: {need} of {count} flats to take")
    reference = RunningReference(options.rejection.running_frames)
    kept: list[tuple[Path | None, Any, int]] = []     # (path, zone levels, index in result)
    told: tuple[str, int] | None = None
    colour_checked = False
    while True:
        while need > 0:
            now = to_unix(obs.clock.now())
            action = ramp.decide(rkey, now)
            if isinstance(action, Stop):
                result.stopped[label] = action.why
                obs.say(f"{label}: stopping: {action.why}")
                break
            if isinstance(action, Wait):
                said = (action.why, round(action.until_unix / 60.0))
                if said != told:
                    told = said
                    obs.say(f"{label}: {action.why}; expect to start at "
                            f"{from_unix(action.until_unix):%H:%M:%S} UTC")
                obs.clock.sleep(min(action.until_unix - now, 600.0))
                continue
            assert isinstance(action, Expose)
            told = None
            if not pointing.started:
                pointing.start(now)
                now = to_unix(obs.clock.now())   # the slew took time: decide again
                continue
            if ramp.stale_probe(rkey, now):
                probe = ramp.probe(rkey, now, max(obs.camera.info().min_exposure_s,
                                                  options.probe_min_exposure_s))
                if isinstance(probe, Expose):
                    _probe_frame(obs, rkey, name, probe.exposure_s, now, ramp=ramp,
                                 band_target=band.target_adu, channel=target.channel,
                                 result=result, why="before its first flat")
                    continue
            level = _expose_one(obs, name, action, now, ramp=ramp, target=target, band=band,
                                bias=bias, options=options, reference=reference, kept=kept,
                                result=result)
            if level is not None:
                need -= 1
                if not colour_checked:
                    colour_checked = True
                    problem = channel_floor_problem(level, target, band)
                    if problem:
                        obs.warn(f"{label}: {problem}")
            memory.save(key, ramp.known)
            pointing.between_frames()
        # across the stack: frames whose normalised zone medians stray from the others'
        flags = stack_outliers([z for _, z, _ in kept], options.rejection.stack_tolerance)
        bad = [k for k, flag in zip(kept, flags) if flag]
        if not bad:
            break
        for path, _, index in bad:
            _reject_later(obs, path, index, result)
            need += 1
        kept = [k for k, flag in zip(kept, flags) if not flag]
        obs.say(f"{label}: {len(bad)} frame(s) differ from the stack by more than "
                f"{options.rejection.stack_tolerance:.0%}; set aside")
        if label in result.stopped:
            break
    obs.say(f"{label}: {result.accepted(name)} flats kept this run")


def _expose_one(obs: Session, name: str | None, action: Expose, decided: float, *,
                ramp: TwilightRamp, target: Target, band: Band, bias: float,
                options: TwilightOptions, reference: RunningReference, kept: list,
                result: TwilightResult) -> Level | None:
    """Take, judge, learn from and store one frame; its level when it is kept as a flat."""
    frame = obs.expose(action.exposure_s, FrameType.FLAT)
    start = to_unix(frame.meta.start) if frame.meta.start else decided
    alt = float(ramp.path.altitude(start + action.exposure_s / 2))
    frame = frame.with_meta(sun_altitude_deg=round(alt, 3), flat_source="SKY")
    level = obs.measure(frame, target.channel)
    judgement, view = judge_frame(frame.data, bias_adu=bias, target=ramp.target,
                                  reference=reference, settings=options.rejection,
                                  level_adu=level.level_adu,
                                  bayer=frame.meta.bayer_pattern is not None)
    usable = judgement.level_usable and not level.saturated
    ramp.record(name or "", decided_unix=decided, start_unix=start,
                exposure_s=action.exposure_s, level_adu=level.level_adu, level_usable=usable,
                saturated=not usable and (level.saturated or judgement.clipped))
    reason = judgement.reason or "in band"
    if judgement.accepted:
        path = obs.save(frame, level, TWILIGHT=ramp.twilight.value)
        reference.add(view)
    else:
        path = _keep_rejected(obs, frame, level, reason)
    obs.record("twilight", frame, level=level.level_adu, target=band.target_adu,
               accepted=judgement.accepted, reason=reason, path=path, sun_alt=round(alt, 3),
               predicted=None if action.probe else round(action.predicted_level_adu, 1),
               channels=level.channels)
    result.frames.append(TwilightFrame(name, start, action.exposure_s, alt, level.level_adu,
                                       ramp.target.target_adu, ramp.target.tolerance,
                                       judgement.accepted, reason, path))
    if judgement.accepted:
        kept.append((path, judgement.zone_levels, len(result.frames) - 1))
        return level
    return None


def _reject_later(obs: Session, path: Path | None, index: int, result: TwilightResult) -> None:
    """Set aside a frame already saved (the stack rule), flagged with the reason."""
    mover = getattr(obs.sink, "reject", None)
    moved = mover(path, STACK) if (mover is not None and path is not None) else path
    if mover is None:
        obs.say(f"{path}: differs from the stack, but this frame store can't set it aside")
    f = result.frames[index]
    result.frames[index] = TwilightFrame(f.filter, f.start_unix, f.exposure_s, f.sun_alt_deg,
                                         f.level_adu, f.target_adu, f.tolerance, False, STACK,
                                         moved)


def take_darks_for(obs: Session, result: TwilightResult, *, mode: str, count: int) -> None:
    """Calibration frames for the twilight flats, as configured: "bias" (twilight exposures
    change from frame to frame, so a bias and the dark current's scaling are the usual match),
    "longest" (dark flats at each filter's longest exposure, to scale from), "each" (dark
    flats at every exposure used, within 2 %) or "none". Cover closed, light off."""
    if mode not in ("bias", "longest", "each", "none"):
        raise ValueError(f"darks must be 'bias', 'longest', 'each' or 'none', got {mode!r}")
    if mode == "none":
        return
    if obs.rig.cover is None:
        obs.say("no cover: dark frames rely on the camera's shutter (or a capped lens)")
    if mode == "bias":
        obs.light_off()
        obs.close_cover()
        obs.select_filter(None)
        query = obs.query(FrameType.BIAS)
        need = obs.still_needed(query, count)
        obs.say(f"bias frames: taking {need} of {count}")
        for _ in range(need):
            frame = obs.expose(obs.camera.info().min_exposure_s, FrameType.BIAS)
            path = obs.save(frame)
            obs.record("bias", frame, level=None, target=None, accepted=True,
                       reason="bias for the twilight flats", path=path)
        return
    for name in dict.fromkeys(f.filter for f in result.frames if f.accepted):
        used = result.exposures(name)
        for t in ([max(used)] if mode == "longest" else used):
            obs.flats_taken.append(FlatsTaken(name, t, None,
                                              obs.query(FrameType.FLAT, filter=name,
                                                        flat_source="SKY")))
    take_dark_flats(obs, count=count)
