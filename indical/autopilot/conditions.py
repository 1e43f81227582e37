"""The conditions of a plan's `only_if`: `clear` and `cloudy` from the rig's [weather] role,
`needed` from the sequence itself, which answers through `still_needed(needs)` using the
library's needs tracking (this module's `Needs`).

Each check returns None when the condition holds, or the reason it does not, in words that go
into the journal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

from indical.frame import FrameType
from indical.interfaces import Sky, Weather, WeatherReading
from indical.sinks import FrameQuery

#: Lights this recent decide which filters need flats.
RECENT_LIGHTS = timedelta(days=3)


def weather_reading(weather: Weather | None) -> WeatherReading:
    if weather is None:
        return WeatherReading(Sky.UNKNOWN, "no [weather] role in the rig")
    try:
        return weather.reading()
    except Exception as exc:  # a station that can't be read is unknown weather, said why
        return WeatherReading(Sky.UNKNOWN, f"{weather.name}: {exc}")


def sky_condition(condition: str, reading: WeatherReading) -> str | None:
    """`clear` holds only on a clear reading (unknown counts as not clear); `cloudy` only on a
    cloudy one."""
    want = Sky.CLEAR if condition == "clear" else Sky.CLOUDY
    if reading.sky is want:
        return None
    said = reading.detail or reading.sky.value
    return f"not {condition}: the weather is {reading.sky.value} ({said})"


@dataclass
class Needs:
    """What a sequence's `still_needed(needs)` asks about: the calibration library, tonight,
    the rig's camera and filters. Each method returns None when nothing is missing, else what
    is, in words."""

    library_path: Path | str     # a file or a postgresql:// URL
    night_start: datetime
    camera: str | None
    wheel_filters: list[str] | None
    min_frames: int = 10

    def _library(self):
        from indical.calib.library import CalibrationLibrary
        return CalibrationLibrary(self.library_path)

    def recent_light_filters(self) -> list[str | None]:
        """Filters of the lights taken in the last days (the library's needs tracking)."""
        with self._library() as lib:
            since = self.night_start - RECENT_LIGHTS
            found: dict[str | None, None] = {}
            for rec in lib.frames(frame_type=FrameType.LIGHT):
                if rec.meta.start is not None and rec.meta.start >= since:
                    if self.camera is None or rec.meta.camera in (None, self.camera):
                        found[rec.meta.filter] = None
            return list(found)

    def flats(self, filters: list[str] | None = None, count: int | None = None) -> str | None:
        """Flats tonight: for the filters of recent lights when there are any, else for
        `filters` (None: every filter of the wheel), at least `count` (default: the frames a
        master takes) each. Any flats tonight count, whoever took them (sky or panel)."""
        count = self.min_frames if count is None else count
        wanted: list[str | None] = self.recent_light_filters()
        source = "recent lights"
        if not wanted:
            wanted = list(filters) if filters is not None else (
                list(self.wheel_filters) if self.wheel_filters else [None])
            source = "the sequence's filters"
        short = []
        with self._library() as lib:
            for name in wanted:
                have = lib.count(FrameQuery(FrameType.FLAT, camera=self.camera, filter=name,
                                            since=self.night_start))
                if have < count:
                    short.append(f"{name or 'no filter'} {have}/{count}")
        if not short:
            return None
        return f"flats tonight for {source}: " + ", ".join(short)

    def darks(self, *, min_frames: int | None = None, ccd: bool = False, bias: bool = True,
              temperature_tol_c: float = 2.0) -> str | None:
        """Darks and bias the lights in the library lack (what `dark_library.py` takes)."""
        from indical.calib.gapfill import DarkLibrary, DarkLibraryOptions
        options = DarkLibraryOptions(min_frames=min_frames or self.min_frames, ccd=ccd,
                                     bias=bias, temperature_tol_c=temperature_tol_c)

        class _Camera:
            name = self.camera
        with DarkLibrary(self.library_path, options) as darks:
            todo = darks.missing(_Camera())
        if not todo:
            return None
        return "missing: " + "; ".join(n.config.label() for n in todo)


def needed(still_needed: Callable[[Needs], str | None], needs: Needs) -> str | None:
    """None when the sequence says something is missing (the condition holds), else why not."""
    missing = still_needed(needs)
    if missing:
        return None
    return "not needed: nothing is missing"


def describe_missing(still_needed: Callable[[Needs], str | None], needs: Needs) -> str:
    return still_needed(needs) or "nothing missing"
