"""Filling the gaps in a dark library: darks (and bias) for exactly the configurations the lights
in the calibration library lack, taken into the library so each master is built as soon as its
group is complete. Used by sequences/dark_library.py; the sequence engine owns cover, light and
cleanup, this module owns "what is missing" and "take it"."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from indical.calib.autobuild import AutoBuildPolicy, AutoBuilder
from indical.calib.library import CalibrationLibrary, default_library_path
from indical.calib.match import MasterKind, MatchRules
from indical.calib.needs import Need, NeedsOptions, compute_needs, remaining
from indical.calib.sink import LibrarySink
from indical.calib.status import StatusStore
from indical.errors import IndicalError
from indical.frame import Binning, FrameType
from indical.sinks import FrameSink
from indical.write_behind import WriteBehindSink


@dataclass(frozen=True)
class DarkLibraryOptions:
    """min_frames: frames per master. ccd: bias + scaled darks (any exposure). bias: take bias
    too (default on: flats and CCD lights use it). temperature_tol_c: how close the sensor must
    be to a need's temperature. cooler_timeout_s: longest wait for the cooler per temperature."""

    min_frames: int = 10
    ccd: bool = False
    bias: bool = True
    temperature_tol_c: float = 2.0
    cooler_timeout_s: float = 900.0

    def needs_options(self) -> NeedsOptions:
        return NeedsOptions(min_frames=self.min_frames, ccd=self.ccd, bias=self.bias,
                            rules=MatchRules(temperature_tol_c=self.temperature_tol_c))


class DarkLibrary:
    """The calibration library as a dark-library sequence uses it (a context manager)."""

    def __init__(self, library_path: Path | str | None = None,
                 options: DarkLibraryOptions = DarkLibraryOptions()) -> None:
        self.library = CalibrationLibrary(library_path if library_path is not None
                                          else default_library_path())
        self.store = StatusStore(self.library.db_path)
        self.options = options
        self.builder = AutoBuilder(self.library, AutoBuildPolicy(
            min_frames_for_master=options.min_frames))
        self.sink = LibrarySink(self.library, on_indexed=self.builder)
        self.skipped: list[str] = []
        # the library's sink with writes behind the sequence, once a capture starts
        self._writer: FrameSink | None = None

    def __enter__(self) -> "DarkLibrary":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        """Frames still being written are written (and indexed) before the library closes. A
        failed write is raised here when nothing else is; after an error or Ctrl-C it is left
        for the engine, which reports it with the run."""
        try:
            if isinstance(self._writer, WriteBehindSink):
                if exc_type is None:
                    self._writer.close()
                else:
                    self._writer.finish()
        finally:
            self.store.close()
            self.library.close()

    def _writes_done(self) -> None:
        """Wait for the frames handed to the writer (raising a failed write), before reading
        what the library holds."""
        if isinstance(self._writer, WriteBehindSink):
            self._writer.flush()

    def _sink(self, obs) -> FrameSink:
        """The library's sink, written behind the sequence through the run's Session (which
        closes it when the run ends), or as it is for callers without one."""
        if self._writer is None:
            behind = getattr(obs, "write_behind", None)
            self._writer = behind(self.sink) if behind is not None else self.sink
        return self._writer

    def missing(self, camera) -> list[Need]:
        """Uncovered dark and bias configurations of this camera that still want frames,
        warmest first (a cooler reaches warmer set points sooner), then by exposure."""
        self._writes_done()
        report = compute_needs(self.library, self.store, self.options.needs_options())
        todo = [n for n in report.uncovered
                if n.config.kind in (MasterKind.DARK, MasterKind.BIAS)
                and n.config.config.camera == camera.name and n.remaining > 0]
        return sorted(todo, key=lambda n: (-(n.config.config.temperature_c or 0.0),
                                           n.config.kind.value, n.config.exposure_s or 0.0))

    def capture(self, obs, need: Need) -> int:
        """Set the camera to the need's configuration and take the frames still missing, each
        written and indexed in the library while the next exposure runs (write_behind.py).
        Returns how many were taken (0 when the camera can't reach the configuration: the
        reason is in `skipped` and said to the user)."""
        cam = obs.camera
        sink = self._sink(obs)
        c = need.config
        problem = self._configure(obs, need)
        if problem:
            self.skipped.append(f"{c.label()}: {problem}")
            obs.say(f"skipping {c.label()}: {problem}")
            return 0
        kind = FrameType.DARK if c.kind is MasterKind.DARK else FrameType.BIAS
        exposure = c.exposure_s if kind is FrameType.DARK else cam.info().min_exposure_s
        self._writes_done()
        count = remaining(self.library, need.config, self.options.needs_options())
        if count == 0:
            return 0
        capture_id = self.store.begin_capture("dark_library", c.label(), count)
        obs.say(f"{c.label()}: taking {count} frame(s)")
        taken = 0
        try:
            for _ in range(count):
                frame = obs.expose(exposure, kind)
                path = sink.write(frame)
                obs.frames_saved.append(path)
                obs.record(kind.value, frame, level=None, target=None, accepted=True,
                           reason=f"dark library: {c.label()}", path=path)
                taken += 1
                self.store.capture_progress(capture_id, taken)
        finally:
            self.store.capture_progress(capture_id, taken, finished=True)
        return taken

    def _configure(self, obs, need: Need) -> str | None:
        """Put the camera in the need's configuration; the reason when it can't be."""
        cam = obs.camera
        c = need.config.config
        info = cam.info()
        if c.binning != cam.binning():
            if max(c.binning.x, c.binning.y) > info.max_binning:
                return f"binning {c.binning} is beyond this camera's {info.max_binning}"
            cam.set_binning(Binning(c.binning.x, c.binning.y))
        if (info.width // c.binning.x, info.height // c.binning.y) != (c.width, c.height):
            return (f"the lights are {c.size}, a region of the sensor; take these "
                    f"darks with the same region set")
        try:
            if c.gain is not None and c.gain != cam.gain():
                cam.set_gain(c.gain)
            if c.offset is not None and c.offset != cam.offset():
                cam.set_offset(c.offset)
            if c.readout_mode is not None and c.readout_mode != cam.readout_mode():
                cam.set_readout_mode(c.readout_mode)
        except IndicalError as exc:
            return str(exc)
        if c.temperature_c is None:
            return None
        now_c = cam.temperature_c()
        tol = self.options.temperature_tol_c
        if info.has_cooler:
            if cam.setpoint_c() != c.temperature_c:
                cam.set_temperature(c.temperature_c)
            obs.say(f"cooling to {c.temperature_c:.1f} C")
            cam.wait_for_temperature(tolerance_c=min(0.5, tol), timeout_s=self.options.cooler_timeout_s,
                                     clock=obs.clock)
            return None
        if now_c is None or abs(now_c - c.temperature_c) > tol:
            have = "unknown" if now_c is None else f"{now_c:.1f} C"
            return (f"the sensor is at {have} and has no cooler to reach "
                    f"{c.temperature_c:.1f} C; try again when the ambient is closer")
        return None


__all__ = ["DarkLibrary", "DarkLibraryOptions"]
