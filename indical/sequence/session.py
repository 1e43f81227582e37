"""A running sequence's view of the rig: the devices, the frame sink, the exposure log and the
clock, and the building blocks every kind of sequence is written with (`expose`, `measure`,
`save`, `still_needed`, `record`, moving the cover and the wheel, the light). Every exposure goes
through `expose`, so timeouts are the engine's, and every frame a sequence keeps goes through
`save`.

The loops that take flats (sequence/panel.py, sequence/twilight.py) work on a Session; the
object a sequence file's `run(obs)` receives is the `Observatory` (sequence/observatory.py), a
Session with the plan verbs that call those loops. So the loops import this module, never the
other way round."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Literal

from indical.errors import IndicalError
from indical.frame import Frame, FrameType
from indical.interfaces import Camera, LightPanel, Relay
from indical.level import BitDepth, Level, detect_bit_depth, measure_bias, measure_level
from indical.rig import Rig
from indical.sequence.flat_config import FlatSettings, FlatsTaken
from indical.sequence.log import ExposureLog, LogEntry, stamp
from indical.sequence.trained import FlatKey, TrainedStore
from indical.sinks import FrameQuery, FrameSink, night_of
from indical.write_behind import WriteBehindSink, write_behind

CoverOnExit = Literal["open", "closed", "leave"]


class Light:
    """The flat light: a light panel (dimmable or not) or, without one, a relay-switched panel.

    When the rig has a panel, the relay is something else (a dew heater, a fan): the sequence
    never switches it."""

    def __init__(self, panel: LightPanel | None, relay: Relay | None) -> None:
        self.panel = panel
        self.relay = relay if panel is None else None
        device = self.panel or self.relay
        self.name = device.name if device is not None else ""

    @property
    def dimmable(self) -> bool:
        return self.panel is not None and self.panel.info().dimmable

    def on(self) -> None:
        (self.panel or self.relay).on()  # type: ignore[union-attr]

    def off(self) -> None:
        device = self.panel or self.relay
        if device is not None:
            device.off()

    def is_on(self) -> bool:
        device = self.panel or self.relay
        return bool(device is not None and device.is_on())

    def brightness(self) -> int | None:
        return self.panel.brightness() if self.panel is not None else None


@dataclass
class _BiasBook:
    """Bias levels measured this run, by camera configuration and readout mode."""

    levels: dict[tuple, float] = field(default_factory=dict)
    bits: dict[tuple, BitDepth] = field(default_factory=dict)


class Session:
    """A running sequence's view of the rig, the frame sink, the exposure log and the clock."""

    def __init__(self, rig: Rig, sink: FrameSink, log: ExposureLog, *,
                 store: TrainedStore | None = None, settings: FlatSettings | None = None,
                 say: Callable[[str], None] = lambda message: None,
                 cover_on_exit: CoverOnExit = "leave") -> None:
        if rig.camera is None:
            rig.require("camera")
        self.rig = rig
        self.camera: Camera = rig.camera  # type: ignore[assignment]
        self.sink = sink
        self.log = log
        self.store = store
        self.settings = settings or FlatSettings.from_rig(rig)
        self.clock = rig.clock
        self.light = Light(rig.panel, rig.relay)
        self.cover_on_exit_state: CoverOnExit = cover_on_exit
        self.flats_taken: list[FlatsTaken] = []
        self.frames_saved: list[Path] = []
        #: Writers of sinks the sequence writes to itself (`write_behind`); the engine closes
        #: them with its own when the run ends.
        self.writers: list[WriteBehindSink] = []
        #: Warnings this run (a colour channel below its floor...), also said as they happen.
        self.warnings: list[str] = []
        self._say = say
        self._bias = _BiasBook()
        self._bias_override: float | None = None
        self._filter: str | None = None
        self._learned_floor_s = 0.0
        self.started = self.clock.now()

    # ---- plan verbs -------------------------------------------------------------------------
    def say(self, message: str) -> None:
        """Tell the user what is happening (one line)."""
        self._say(message)

    def warn(self, message: str) -> None:
        """Tell the user something about the flats they should act on; kept in `warnings`."""
        self.warnings.append(message)
        self._say(f"warning: {message}")

    def cover_on_exit(self, state: CoverOnExit) -> None:
        """Where the cover must be when the run ends, however it ends."""
        if state not in ("open", "closed", "leave"):
            raise ValueError(f"cover_on_exit: expected 'open', 'closed' or 'leave', got {state!r}")
        self.cover_on_exit_state = state

    def close_cover(self) -> None:
        """Close the cover over the optics (nothing to do without a cover)."""
        if self.rig.cover is not None:
            self.say(f"closing {self.rig.cover.name}")
            self.rig.cover.close(timeout_s=self.settings.cover_timeout_s)

    def open_cover(self) -> None:
        if self.rig.cover is not None:
            self.say(f"opening {self.rig.cover.name}")
            self.rig.cover.open(timeout_s=self.settings.cover_timeout_s)

    def light_on(self) -> None:
        if self.rig.panel is None and self.rig.relay is None:
            self.rig.require("panel")
        self.light.on()

    def light_off(self) -> None:
        self.light.off()

    def filters(self, wanted: list[str] | None = None) -> list[str | None]:
        """The filters to take flats in: those asked for (checked against the wheel), every
        filter in the wheel, or [None] (the one filter there is) without a wheel."""
        wheel = self.rig.filter_wheel
        if wheel is None:
            return [None]
        names = wheel.names()
        if wanted is None:
            return list(names)
        lower = {n.lower(): n for n in names}
        missing = [w for w in wanted if w.lower() not in lower]
        if missing:
            raise IndicalError(f"{wheel.name}: no filter named {', '.join(missing)}; the wheel "
                               f"holds {', '.join(names)}")
        return [lower[w.lower()] for w in wanted]

    def select_filter(self, name: str | None) -> None:
        """Move the wheel to a filter (nothing to do for None or without a wheel)."""
        self._filter = name
        wheel = self.rig.filter_wheel
        if wheel is not None and name is not None:
            wheel.select(name, timeout_s=self.settings.filter_timeout_s)

    # ---- building blocks ----------------------------------------------------------------------
    @property
    def current_filter(self) -> str | None:
        return self._filter

    def filter_slot(self) -> int | None:
        wheel = self.rig.filter_wheel
        return wheel.position() if wheel is not None and self._filter is not None else None

    def night_start(self) -> datetime:
        """Local noon before tonight: frames since then count as tonight's."""
        lon = self.rig.site.longitude_deg if self.rig.site else 0.0
        night = datetime.fromisoformat(night_of(self.started, lon)).replace(tzinfo=timezone.utc)
        return night + timedelta(hours=12 - lon / 15.0)

    def query(self, frame_type: FrameType, *, filter: str | None = None,
              exposure_s: float | None = None, flat_source: str | None = None) -> FrameQuery:
        """The sink query for frames of the camera's current configuration taken tonight
        (flats: of one source, PANEL or SKY: one never counts toward the other)."""
        cam = self.camera
        mode = cam.readout_mode()
        return FrameQuery(frame_type, camera=cam.name, filter=filter, binning=cam.binning(),
                          gain=cam.gain(), offset=cam.offset(),
                          readout_mode=mode if mode in cam.info().readout_modes else None,
                          exposure_s=exposure_s, since=self.night_start(),
                          flat_source=flat_source)

    def still_needed(self, query: FrameQuery, count: int) -> int:
        """How many of `count` frames matching `query` the sink does not hold yet."""
        return max(0, count - self.sink.count(query))

    def flat_key(self, filter: str | None) -> FlatKey:
        cam = self.camera
        return FlatKey(camera=cam.name, filter=filter, filter_slot=self.filter_slot(),
                       binning=str(cam.binning()), gain=cam.gain(), offset=cam.offset(),
                       readout_mode=cam.readout_mode(), panel=self.light.name)

    def exposure_floor_s(self) -> float:
        """The shortest exposure flats may use: camera minimum, shutter and panel flicker (from
        the rig's [flats] min_exposure_s, or learned this run from banded frames)."""
        return max(self.camera.info().min_exposure_s, self.settings.min_exposure_s,
                   self._learned_floor_s, 1e-6)

    def raise_exposure_floor(self, exposure_s: float) -> None:
        """Flats shorter than this band (panel flicker): never go below it again this run."""
        self._learned_floor_s = max(self._learned_floor_s, exposure_s)

    def expose(self, exposure_s: float, frame_type: FrameType) -> Frame:
        """One exposure with the engine's timeout; the frame carries the current filter. Frames
        saved before it are written while it runs (write_behind.py)."""
        cam = self.camera
        for sink in (self.sink, *self.writers):
            starting = getattr(sink, "starting_exposure", None)
            if starting is not None:
                starting()
        frame = cam.expose(exposure_s, frame_type, timeout_s=cam.default_timeout_s(exposure_s))
        changes: dict[str, Any] = {"filter": self._filter if self._filter is not None
                                   else frame.meta.filter}
        if frame_type.needs_light and self.light.panel is not None:
            changes["panel_brightness"] = self.light.brightness()
            if frame_type is FrameType.FLAT:
                changes["flat_source"] = "PANEL"
        return frame.with_meta(**changes)

    def set_bias(self, bias_adu: float | None) -> None:
        """Use a known bias level (ADU) instead of measuring one; None measures again."""
        self._bias_override = bias_adu

    def _config(self, frame: Frame) -> tuple:
        m = frame.meta
        return (m.camera, str(m.binning), m.gain, m.offset, m.readout_mode)

    def bias_for(self, frame: Frame) -> float:
        """The bias of the frame's configuration: measured once per readout mode from a bias
        frame (or, when the shortest exposure reads out in another mode, a dark at the frame's
        exposure), taken with the light off."""
        if self._bias_override is not None:
            return self._bias_override
        key = self._config(frame)
        if key in self._bias.levels:
            return self._bias.levels[key]
        was_on = self.light.is_on()
        if was_on:
            self.light.off()
        try:
            bias = self.expose(self.camera.info().min_exposure_s, FrameType.BIAS)
            kind = "bias"
            if bias.meta.readout_mode != frame.meta.readout_mode:
                bias = self.expose(frame.meta.exposure_s, FrameType.DARK)
                kind = "bias-dark"
        finally:
            if was_on:
                self.light.on()
        level = measure_bias(bias.data)
        self._bias.levels[key] = level
        self.record(kind, bias, level=level, target=None, accepted=True,
                    reason=f"bias level {level:.1f} ADU for readout mode "
                           f"{frame.meta.readout_mode or 'default'}")
        return level

    def measure(self, frame: Frame, channel: str = "max") -> Level:
        """The frame's level above bias (the brightest colour channel, or the target's
        `channel`), with the real bit depth remembered per configuration so a later dim frame
        is not misjudged."""
        key = self._config(frame)
        seen = detect_bit_depth(frame.data, frame.meta.bit_depth)
        known = self._bias.bits.get(key)
        if known is None or seen.bits < known.bits or seen.shift > known.shift:
            known = seen
            self._bias.bits[key] = known
        return measure_level(frame.data, bias_adu=self.bias_for(frame),
                             reported_bits=frame.meta.bit_depth,
                             bayer=frame.meta.effective_bayer, known_bits=known,
                             channel=channel)

    def save(self, frame: Frame, level: Level | None = None, **extra: Any) -> Path:
        """Write a frame to the sink with its measured level and real bit depth in the header."""
        changes: dict[str, Any] = {}
        if level is not None:
            changes["level_adu"] = round(level.level_adu, 1)
            changes["bit_depth"] = level.bit_depth.bits
        if extra:
            changes["extra"] = {**frame.meta.extra, **extra}
        path = self.sink.write(frame.with_meta(**changes) if changes else frame)
        self.frames_saved.append(path)
        return path

    def write_behind(self, sink: FrameSink) -> FrameSink:
        """`sink` with its frames written while the next exposure runs, as the run's own sink
        is (write_behind.py), for a sequence that writes frames to a sink of its own (the dark
        library's). The engine closes it when the run ends, however it ends, after the
        hardware is safe; a failed write is raised by the next call on it, as the run's."""
        writer = write_behind(sink)
        if isinstance(writer, WriteBehindSink):
            self.writers.append(writer)
        return writer

    def record(self, kind: str, frame: Frame, *, level: float | None, target: float | None,
               accepted: bool, reason: str, path: Path | None = None,
               channels: dict[str, float] | None = None, **extra: Any) -> None:
        """Log one exposure (every exposure a sequence takes, kept or not)."""
        m = frame.meta
        self.log.add(LogEntry(
            time=stamp(m.start or self.clock.now()), kind=kind, filter=m.filter,
            brightness=m.panel_brightness, exposure=m.exposure_s,
            level=None if level is None else round(level, 2),
            target=None if target is None else round(target, 2), accepted=accepted,
            reason=reason, path=str(path) if path else None, readout_mode=m.readout_mode,
            bit_depth=m.bit_depth,
            channels=None if channels is None or list(channels) == ["mono"]
            else {k: round(v, 2) for k, v in channels.items()},
            extra=extra))
