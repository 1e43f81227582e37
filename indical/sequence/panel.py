"""Panel flats and dark flats: the loops around the pure search decisions.

For one filter: count what tonight already holds, start from the trained settings (or a
guess), search brightness and/or exposure until a frame is in band (that frame is the first
flat), take the rest, re-aiming the exposure if the panel drifts, and store what worked."""

from __future__ import annotations

from indical.errors import IndicalError
from indical.frame import Frame, FrameType
from indical.interfaces.light_panel import PanelInfo
from indical.level import BANDING_LIMIT, Band, Level, Target, channel_floor_problem, row_banding
from indical.sequence.brightness import (ExposureWindow, Steps, at_floor, next_brightness,
                                         too_bright_at_edge)
from indical.sequence.exposure import (Accept, ExposureLimits, Measure, Observation, Refusal,
                                       Refuse, dark_floor_adu, next_exposure)
from indical.sequence.flat_config import FlatsTaken
from indical.sequence.session import Session
from indical.sequence.trained import TrainedFlat
from indical.sinks import FrameQuery

#: Flats in a row that may miss the band before the run stops (the light is unstable).
MAX_MISSES = 3


class FlatSearchFailed(IndicalError):
    """No brightness and exposure within the limits reach the target; says which limit."""

    def __init__(self, device: str, filter: str | None, refusal: Refuse) -> None:
        self.refusal = refusal
        where = f" in filter {filter}" if filter else ""
        super().__init__(f"{device}: flats{where}: {refusal.message}")


def _band(target: Target, level: Level) -> Band:
    return target.band(level.full_scale_adu, level.bias_adu)


def _steps(info: PanelInfo) -> Steps:
    return Steps(info.min_brightness, info.max_brightness, info.step)


class _Banded(Exception):
    """A search frame came out banded: the exposure spans too few flicker periods."""

    def __init__(self, exposure_s: float, ripple: float) -> None:
        super().__init__(f"banded at {exposure_s:g} s")
        self.exposure_s = exposure_s
        self.ripple = ripple


#: How much longer than a banded exposure the next search starts (bands fade with the number
#: of flicker periods an exposure spans).
FLICKER_STEP = 10.0


class _Search:
    """One filter's search: exposes what the decisions ask for, logs every frame."""

    def __init__(self, obs: Session, filter: str | None, target: Target) -> None:
        self.obs = obs
        self.filter = filter
        self.target = target
        self.taken = 0
        self.history: list[Observation] = []
        self.last: tuple[Frame, Level, Band] | None = None

    def shoot(self, brightness: int | None, exposure_s: float, why: str) -> Observation:
        obs = self.obs
        if brightness is not None and obs.light.panel is not None:
            brightness = obs.light.panel.set_brightness(brightness)
        frame = obs.expose(exposure_s, FrameType.FLAT)
        level = obs.measure(frame, self.target.channel)
        band = _band(self.target, level)
        self.taken += 1
        self.last = (frame, level, band)
        ripple = 0.0 if level.saturated else row_banding(
            frame.data, bias_adu=level.bias_adu, bayer=frame.meta.effective_bayer)
        if ripple > BANDING_LIMIT:
            obs.record("search", frame, level=level.level_adu, target=band.target_adu,
                       accepted=False, reason=f"{why}: rows banded by {ripple:.1%} (panel "
                       f"flicker)", channels=level.channels)
            raise _Banded(exposure_s, ripple)
        ok = band.contains(level.level_adu) and not level.saturated
        if not ok:
            state = "saturated" if level.saturated else (
                "below" if level.level_adu < band.low_adu else "above")
            obs.record("search", frame, level=level.level_adu, target=band.target_adu,
                       accepted=False, reason=f"{why}: {state} band "
                       f"{band.low_adu:.0f}-{band.high_adu:.0f}", channels=level.channels)
        o = Observation(exposure_s, level.level_adu, level.saturated, brightness)
        self.history.append(o)
        return o

    def keep_first(self, why: str) -> None:
        """The frame that landed in band is the first flat."""
        frame, level, band = self.last  # type: ignore[misc]
        path = self.obs.save(frame, level)
        self.obs.record("search", frame, level=level.level_adu, target=band.target_adu,
                        accepted=True, reason=f"{why}: in band, kept as a flat", path=path,
                        channels=level.channels)

    def band(self) -> Band:
        return self.last[2]  # type: ignore[index]


def _gave_up(search: _Search, limits: ExposureLimits, steps: Steps | None = None) -> Refuse:
    """The cap was reached: say what the frames showed, so the user knows which way to go."""
    band = search.band()
    if steps is not None:
        edge = too_bright_at_edge(search.history, band, steps, limits)
        if edge is not None:
            return edge
    dark = dark_floor_adu(band)
    high = [o for o in search.history if o.saturated or o.level_adu > band.high_adu]
    low = [o for o in search.history if not o.saturated and dark <= o.level_adu < band.low_adu]
    parts = []
    if high:
        o = min(high, key=lambda o: (o.exposure_s, o.brightness or 0))
        parts.append(f"too bright down to brightness {o.brightness} at {o.exposure_s:g} s")
    if low:
        o = max(low, key=lambda o: (o.exposure_s, o.brightness or 0))
        parts.append(f"too dim up to brightness {o.brightness} at {o.exposure_s:g} s")
    unlit = [o.brightness for o in search.history
             if o.brightness is not None and not o.saturated and o.level_adu < dark]
    if unlit:
        parts.append(f"no light up to brightness {max(unlit)}")
    return Refuse(Refusal.GAVE_UP,
                  f"no level in band after {search.taken} exposures, the cap ([flats] "
                  f"max_search_exposures = {limits.max_exposures})"
                  + (f": {'; '.join(parts)}" if parts else "")
                  + f"; target {band.low_adu:.0f}-{band.high_adu:.0f} ADU")


def _fail(obs: Session, filter: str | None, refusal: Refuse) -> FlatSearchFailed:
    obs.light.off()
    return FlatSearchFailed(obs.light.name or obs.camera.name, filter, refusal)


def find_settings(obs: Session, search: _Search, *, dim: bool, exposure_s: float,
                  start_brightness: int | None, window: ExposureWindow | None = None
                  ) -> tuple[int | None, float]:
    """Search until a frame is in band; returns (brightness, exposure). Raises
    FlatSearchFailed with the refusal when no setting within the limits will do.

    `window`: with a dimmable panel, the exposures a lit step may be trimmed to at once; at
    fixed light, the exposures the search may use at all (within the rig's limits)."""
    floor = obs.exposure_floor_s()
    top = max(obs.settings.max_exposure_s, floor * 1.01)
    if not dim and window is not None:
        floor, top = max(floor, window.min_s), min(top, window.max_s)
        if top == floor:
            top = floor * 1.001         # one exposure asked for (limits need min < max)
        if top < floor:
            raise _fail(obs, search.filter, Refuse(
                Refusal.TOO_BRIGHT, f"the exposure range {window.min_s:g}-{window.max_s:g} s "
                f"(EXPOSURE_RANGE_S) lies outside what the rig allows ({obs.exposure_floor_s():g}"
                f"-{obs.settings.max_exposure_s:g} s, [flats] min_exposure_s and "
                f"max_exposure_s); widen one of them"))
    limits = ExposureLimits(floor, top, max_exposures=obs.settings.max_search_exposures)
    work_s = limits.clamp(exposure_s)
    if not dim:
        found = _exposure_search(search, limits, None, [], work_s)
        if isinstance(found, Refuse):
            raise _fail(obs, search.filter,
                        _gave_up(search, limits) if found.kind is Refusal.GAVE_UP else found)
        return found
    steps = _steps(obs.light.panel.info())  # type: ignore[union-attr]
    observations: list[Observation] = []
    while True:
        band = search.band() if observations else None
        # the cap counts every frame of this search, whichever phase took it
        left = ExposureLimits(limits.min_exposure_s, limits.max_exposure_s,
                              limits.max_exposures - search.taken + len(observations))
        d = next_brightness(band, steps, work_s, left, observations, start_brightness, window)
        if isinstance(d, Accept):
            search.keep_first("brightness search")
            return d.brightness, d.exposure_s
        if isinstance(d, Refuse):
            raise _fail(obs, search.filter,
                        _gave_up(search, limits, steps) if d.kind is Refusal.GAVE_UP else d)
        if isinstance(d, Measure):
            observations.append(search.shoot(d.brightness, d.exposure_s, d.why))
            continue
        # Trim: keep this step and search the exposure; the trim estimate is taken as is
        # (the level is proportional to the exposure).
        obs.say(f"  {d.why}: brightness {d.brightness}, trimming the exposure")
        seed = [o for o in observations if o.brightness == d.brightness]
        if not any(o.exposure_s == limits.clamp(d.exposure_s) for o in seed):
            seed.append(search.shoot(d.brightness, limits.clamp(d.exposure_s), "trim"))
        found = _exposure_search(search, limits, d.brightness, seed, d.exposure_s)
        if not isinstance(found, Refuse):
            return found
        dark = dark_floor_adu(search.band())
        untried = _untried_below(observations, d.brightness, steps, dark)
        if not (found.kind is Refusal.TOO_BRIGHT and work_s > floor and untried):
            raise _fail(obs, search.filter, _gave_up(search, limits, steps)
                        if found.kind is Refusal.GAVE_UP else found)
        # Too bright even at the shortest exposure, but dimmer steps are untried: search the
        # brightness again at that exposure.
        obs.say(f"  too bright at brightness {d.brightness} even at {floor:g} s: "
                f"searching dimmer steps at {floor:g} s")
        work_s = floor
        observations = at_floor(observations, search.history, floor, dark)


def _untried_below(observations: list[Observation], brightness: int, steps: Steps,
                   dark_adu: float) -> bool:
    """Whether steps dimmer than `brightness` remain that are not known to be dark."""
    dark = [o.brightness for o in observations
            if o.brightness < brightness and not o.saturated and o.level_adu < dark_adu]
    lowest_unknown = (max(dark) if dark else steps.minimum - steps.step) + steps.step
    return lowest_unknown < brightness


def _exposure_search(search: _Search, limits: ExposureLimits, brightness: int | None,
                     seed: list[Observation], first_s: float) -> tuple[int | None, float] | Refuse:
    """Exposure search at fixed light, within what is left of the cap."""
    left = limits.max_exposures - search.taken + len(seed)
    limits = ExposureLimits(limits.min_exposure_s, limits.max_exposure_s, max_exposures=left)
    observations = list(seed)
    while True:
        band = search.band() if observations else None
        d = next_exposure(band, limits, observations, first_s)
        if isinstance(d, Accept):
            search.keep_first("exposure search")
            return brightness, d.exposure_s
        if isinstance(d, Refuse):
            return d
        observations.append(search.shoot(brightness, d.exposure_s, d.why))


def take_flats(obs: Session, filter: str | None, *, count: int, target: Target,
               exposure_s: float, dim: bool, use_trained: bool,
               window: ExposureWindow | None = None) -> FlatsTaken | None:
    obs.select_filter(filter)
    label = filter or "the one filter"
    query = obs.query(FrameType.FLAT, filter=filter, flat_source="PANEL")
    need = obs.still_needed(query, count)
    key = obs.flat_key(filter)
    trained = obs.store.get(key) if obs.store is not None and use_trained else None
    if need == 0:
        obs.say(f"{label}: {count} flats already taken tonight")
        if trained is not None:
            config = FlatsTaken(filter, trained.exposure_s, trained.brightness, query)
            obs.flats_taken.append(config)
            return config
        obs.say(f"{label}: no stored exposure for these flats, so no dark flats for them")
        return None
    if dim and not obs.light.dimmable:
        raise IndicalError(f"{obs.light.name or 'panel'}: not dimmable; use exposure_flats() "
                           "(auto-exposure) with an on/off panel")
    obs.light_on()
    start_b = trained.brightness if trained is not None else None
    start_t = trained.exposure_s if trained is not None else exposure_s
    obs.say(f"{label}: {need} of {count} flats to take"
            + (f"; starting from trained settings (brightness {start_b}, {start_t:g} s)"
               if trained else ""))
    search = _Search(obs, filter, target)
    while True:
        try:
            brightness, exp_s = find_settings(obs, search, dim=dim, exposure_s=start_t,
                                              start_brightness=start_b, window=window)
            break
        except _Banded as banded:
            longer = banded.exposure_s * FLICKER_STEP
            if longer > obs.settings.max_exposure_s or obs.exposure_floor_s() >= longer:
                raise _fail(obs, filter, Refuse(
                    Refusal.FLICKER, f"the light flickers: rows banded by {banded.ripple:.1%} "
                    f"at {banded.exposure_s:g} s; set [flats] min_exposure_s to an exposure "
                    f"free of bands (or allow longer exposures than "
                    f"{obs.settings.max_exposure_s:g} s)")) from None
            obs.say(f"  rows banded by {banded.ripple:.1%} at {banded.exposure_s:g} s (panel "
                    f"flicker): exposures from now on at least {longer:g} s")
            obs.raise_exposure_floor(longer)
            start_b, start_t = None, longer
    _, level, band = search.last  # type: ignore[misc]
    colours = "" if "mono" in level.channels else " (" + ", ".join(
        f"{c} {v:.0f}" for c, v in level.channels.items()) + ")"
    obs.say(f"{label}: brightness {brightness if brightness is not None else 'on'}, "
            f"{exp_s:g} s -> {level.level_adu:.0f} ADU above bias{colours} (target "
            f"{band.target_adu:.0f}), found in {search.taken} exposure(s)")
    problem = channel_floor_problem(level, target, band)
    if problem:
        obs.warn(f"{label}: {problem}")
    if obs.store is not None:
                obs.store.put(key, TrainedFlat(brightness, exp_s, level.level_adu, band.target_adu,
                                       obs.clock.now()))
    taken, misses = 1, 0
    while taken < need:
        frame = obs.expose(exp_s, FrameType.FLAT)
        level = obs.measure(frame, target.channel)
        band = _band(target, level)
        banded = not level.saturated and \
            row_banding(frame.data, bias_adu=level.bias_adu,
                        bayer=frame.meta.effective_bayer) > BANDING_LIMIT
        if band.contains(level.level_adu) and not level.saturated and not banded:
            path = obs.save(frame, level)
            obs.record("flat", frame, level=level.level_adu, target=band.target_adu,
                       accepted=True, reason="in band", path=path, channels=level.channels)
            taken, misses = taken + 1, 0
            continue
        misses += 1
        obs.record("flat", frame, level=level.level_adu, target=band.target_adu, accepted=False,
                   reason="saturated" if level.saturated else "banded (panel flicker)"
                   if banded else "drifted out of band",
                   channels=level.channels)
        if misses >= MAX_MISSES:
            obs.light.off()
            raise IndicalError(f"{obs.light.name}: flats in {label}: {misses} frames in a row "
                               f"out of band (last {level.level_adu:.0f} ADU, target "
                               f"{band.low_adu:.0f}-{band.high_adu:.0f}); the light is unstable")
        if not level.saturated and level.level_adu > 0:
            exp_s = min(max(exp_s * band.target_adu / level.level_adu, obs.exposure_floor_s()),
                        obs.settings.max_exposure_s)
    obs.say(f"{label}: {count} flats done")
    config = FlatsTaken(filter, exp_s, brightness, query)
    obs.flats_taken.append(config)
    return config


def _match_camera(obs: Session, query: FrameQuery) -> None:
    """Put the camera back in the configuration flats were taken in (binning, gain, offset)."""
    cam = obs.camera
    if query.binning is not None and cam.binning() != query.binning:
        cam.set_binning(query.binning)
    if query.gain is not None and cam.gain() != query.gain:
        cam.set_gain(query.gain)
    if query.offset is not None and cam.offset() != query.offset:
        cam.set_offset(query.offset)


def take_dark_flats(obs: Session, *, count: int) -> None:
    """Dark flats for each distinct flat exposure of this run, with the light off and the
    cover closed; only those still missing tonight."""
    if not obs.flats_taken:
        obs.say("no flats this run, so no dark flats")
        return
    obs.light_off()
    obs.close_cover()
    obs.select_filter(None)
    done: list[tuple] = []
    for config in obs.flats_taken:
        t = config.exposure_s
        _match_camera(obs, config.query)
        setup = (config.query.binning, config.query.gain, config.query.offset)
        if any(s == setup and abs(t - d) <= 0.02 * d for s, d in done):
            continue
        done.append((setup, t))
        query = obs.query(FrameType.DARKFLAT, exposure_s=t)
        need = obs.still_needed(query, count)
        if need == 0:
            obs.say(f"dark flats {t:g} s: {count} already taken tonight")
            continue
        obs.say(f"dark flats {t:g} s: taking {need} of {count}")
        for _ in range(need):
            frame = obs.expose(t, FrameType.DARKFLAT)
            level = obs.measure(frame)
            path = obs.save(frame, level)
            obs.record("darkflat", frame, level=level.level_adu, target=None, accepted=True,
                       reason=f"matches flats at {t:g} s", path=path)
