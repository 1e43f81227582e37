"""Simulated devices behind indical's interfaces, and the `sim` driver plugin that makes them
from a rig file. All simulated devices of one rig share one SimWorld."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

import numpy as np

from indical.errors import DeviceError, DeviceTimeout, RigError
from indical.frame import Binning, Frame, FrameMeta, FrameType
from indical.interfaces import (Camera, CameraInfo, Cover, CoverState, FilterWheel, LightPanel,
                                Mount, PanelInfo, Relay, Sky, Weather, WeatherReading)
from indical.sinks import night_of
from indical.simulators import schema as S
from indical.simulators.clock import SimClock
from indical.simulators.light_sources import light_source
from indical.simulators.models.optics import OpticsParams
from indical.simulators.models.panel import PanelParams
from indical.simulators.models.sensor import Sensor, SensorParams
from indical.simulators.models.sky import SkyParams
from indical.simulators.world import (Illumination, LidState, MountState, PanelState, SimWorld,
                                      WheelState)


def colour_meta(p: SensorParams, binning: Binning) -> dict[str, object]:
    """The frame's colour filter keywords: the pattern and where it starts. Binning sums
    neighbouring pixels of every colour, so a binned frame of a colour sensor has no pattern
    left (it is a luminance frame)."""
    if p.bayer_pattern is None or binning != Binning():
        return {}
    return {"bayer_pattern": p.bayer_pattern, "bayer_offset_x": p.bayer_offset_x,
            "bayer_offset_y": p.bayer_offset_y}


class SimCamera(Camera):
    def __init__(self, world: SimWorld, params: SensorParams, name: str, *, readout_s: float,
                 ambient_c: float, cooler: bool, cooling_rate_c_per_min: float,
                 max_binning: int, hang: bool = False) -> None:
        self.world = world
        self.name = name
        self.sensor = Sensor(params)
        self.params = params
        self.readout_s = readout_s
        self.ambient_c = ambient_c
        self.cooler = cooler
        self.cooling_rate = cooling_rate_c_per_min
        self.max_binning = max_binning
        self.hang = hang
        self._binning = Binning()
        self._gain = 0.0
        self._offset = 0.0
        self._setpoint: float | None = None
        self._temp_at = (world.clock.now(), ambient_c)   # (time, temperature) last known
        self._frames = 0
        self._abort = threading.Event()
        self._busy = threading.Lock()

    # -- capabilities and settings --
    def info(self) -> CameraInfo:
        p = self.params
        return CameraInfo(width=p.width, height=p.height, bit_depth=p.output_bits(p.max_exposure_s),
                          min_exposure_s=p.min_exposure_s, max_exposure_s=p.max_exposure_s,
                          pixel_size_um=p.pixel_size_um, max_binning=self.max_binning,
                          has_cooler=self.cooler, has_gain=True, has_offset=True,
                          readout_modes=(("raw12", "stack16") if p.stack_threshold_s else ()),
                          e_per_adu=p.e_per_adu(self._gain))

    def describe(self) -> dict[str, object]:
        i = self.info()
        facts: dict[str, object] = {
            "kind": "simulated camera", "size": f"{i.width}x{i.height}",
            "bit depth": i.bit_depth, "exposure": f"{i.min_exposure_s:g}-{i.max_exposure_s:g} s",
            "cooler": i.has_cooler, "max binning": i.max_binning}
        p = self.params
        if p.bayer_pattern is not None:
            facts["colour filter"] = (f"{p.bayer_pattern} (offsets {p.bayer_offset_x}, "
                                      f"{p.bayer_offset_y})")
        return facts

    def set_binning(self, binning: Binning) -> None:
        if binning.x > self.max_binning or binning.y > self.max_binning:
            raise ValueError(f"{self.name}: binning {binning} is above the maximum "
                             f"{self.max_binning}x{self.max_binning}")
        self._binning = binning

    def binning(self) -> Binning:
        return self._binning

    def set_gain(self, gain: float) -> None:
        if not 0 <= gain <= 600:
            raise ValueError(f"{self.name}: gain {gain} outside 0-600")
        self._gain = float(gain)

    def gain(self) -> float:
        return self._gain

    def set_offset(self, offset: float) -> None:
        if not 0 <= offset <= 1000:
            raise ValueError(f"{self.name}: offset {offset} outside 0-1000")
        self._offset = float(offset)

    def offset(self) -> float:
        return self._offset

    def readout_mode(self) -> str | None:
        return None if self.params.stack_threshold_s is None else "auto"

    def set_temperature(self, setpoint_c: float | None) -> None:
        if not self.cooler:
            super().set_temperature(setpoint_c)
        self._temp_at = (self.world.clock.now(), self.temperature_c())
        self._setpoint = setpoint_c

    def setpoint_c(self) -> float | None:
        return self._setpoint

    def temperature_c(self) -> float:
        """Sensor temperature: moves toward the set point (or ambient) at the cooling rate."""
        t0, temp0 = self._temp_at
        target = self.ambient_c if self._setpoint is None else max(self._setpoint,
                                                                    self.ambient_c - 40.0)
        minutes = (self.world.clock.now() - t0).total_seconds() / 60.0
        step = self.cooling_rate * minutes
        if abs(target - temp0) <= step:
            return target
        return temp0 + step * (1 if target > temp0 else -1)

    # -- exposing --
    def abort(self) -> None:
        self._abort.set()

    def _wait(self, seconds: float) -> None:
        """Sleep in simulated time, in slices, so abort() ends the wait."""
        clock = self.world.clock
        remaining = seconds
        while remaining > 0:
            if self._abort.is_set():
                raise DeviceError(self.name, "exposing", "aborted")
            step = min(remaining, 0.5 if clock.speed > 0 else remaining)
            clock.sleep(step)
            remaining -= step

    def expose(self, exposure_s: float, frame_type: FrameType = FrameType.LIGHT, *,
               timeout_s: float | None = None) -> Frame:
        p = self.params
        if not p.min_exposure_s <= exposure_s <= p.max_exposure_s:
            raise ValueError(f"{self.name}: exposure {exposure_s:g} s outside "
                             f"{p.min_exposure_s:g}-{p.max_exposure_s:g} s")
        timeout = self.default_timeout_s(exposure_s) if timeout_s is None else timeout_s
        if not self._busy.acquire(blocking=False):
            raise DeviceError(self.name, "exposing", "another exposure is in progress")
        try:
            self._abort.clear()
            start = self.world.clock.now()
            if self.hang:
                self._wait(timeout)
                raise DeviceTimeout(self.name, f"exposing {exposure_s:g} s", timeout)
            if exposure_s + self.readout_s > timeout:
                self._wait(timeout)
                raise DeviceTimeout(self.name, f"exposing {exposure_s:g} s", timeout)
            self._frames += 1
            rng = np.random.default_rng([p.seed, 100, self._frames])
            dark = frame_type in (FrameType.BIAS, FrameType.DARK, FrameType.DARKFLAT)
            light = Illumination(0.0) if dark and self.world.cover is None \
                and self.world.panel is None \
                else self.world.light((p.height, p.width), start, exposure_s, rng)
            temp = self.temperature_c()
            data, real_t = self.sensor.render(light.flux_e_per_s, exposure_s, temp_c=temp,
                                              gain=self._gain, offset=self._offset,
                                              binning=(self._binning.x, self._binning.y),
                                              channel_flux=light.channel_flux, rng=rng)
            self._wait(exposure_s)
            end = self.world.clock.now()
            self._wait(self.readout_s)
            meta = FrameMeta(
                frame_type=frame_type, exposure_s=exposure_s, camera=self.name, gain=self._gain,
                offset=self._offset, binning=self._binning,
                readout_mode=p.readout_mode(exposure_s) if p.stack_threshold_s else None,
                bit_depth=p.output_bits(exposure_s), sensor_temp_c=round(temp, 2),
                setpoint_temp_c=self._setpoint, start=start, end=end,
                e_per_adu=round(p.e_per_adu(self._gain), 4), pixel_size_um=p.pixel_size_um,
                **colour_meta(p, self._binning),
                site_lat_deg=self.world.site.latitude_deg if self.world.site else None,
                site_lon_deg=self.world.site.longitude_deg if self.world.site else None)
            return Frame(data, meta)
        finally:
            self._busy.release()


class SimLightPanel(LightPanel):
    def __init__(self, world: SimWorld, state: PanelState, name: str) -> None:
        self.world = world
        self.state = state
        self.name = name

    def info(self) -> PanelInfo:
        p = self.state.params
        if not p.dimmable:
            return PanelInfo(dimmable=False, min_brightness=0, max_brightness=1, step=1)
        return PanelInfo(dimmable=True, min_brightness=0, max_brightness=p.max_brightness, step=1)

    def describe(self) -> dict[str, object]:
        i = self.info()
        d: dict[str, object] = {"kind": "simulated light panel", "dimmable": i.dimmable}
        if i.dimmable:
            d["brightness"] = f"{i.min_brightness}-{i.max_brightness} step {i.step}"
        return d

    def on(self) -> None:
        with self.world.lock:
            self.state.on = True

    def off(self) -> None:
        with self.world.lock:
            self.state.on = False

    def is_on(self) -> bool:
        return self.state.on

    def set_brightness(self, brightness: int) -> int:
        info = self.info()
        if not info.dimmable:
            return super().set_brightness(brightness)
        if int(brightness) != brightness or not info.min_brightness <= brightness <= info.max_brightness:
            raise ValueError(f"{self.name}: brightness {brightness} outside "
                             f"{info.min_brightness}-{info.max_brightness}")
        with self.world.lock:
            self.state.brightness = int(brightness)
        return self.state.brightness

    def brightness(self) -> int | None:
        return self.state.brightness if self.state.params.dimmable else None

    def disconnect(self) -> None:
        self.off()


class SimCover(Cover):
    def __init__(self, world: SimWorld, state: LidState, name: str) -> None:
        self.world = world
        self.st = state
        self.name = name

    def describe(self) -> dict[str, object]:
        return {"kind": "simulated cover", "travel": f"{self.st.travel_s:g} s",
                "state": self.state().value}

    def _move(self, closed: bool, timeout_s: float) -> None:
        action = "closing" if closed else "opening"
        if self.st.closed == closed and self.st.moving_until is None:
            return
        if self.st.travel_s > timeout_s:
            self.world.clock.sleep(timeout_s)
            raise DeviceTimeout(self.name, action, timeout_s)
        with self.world.lock:
            self.st.moving_until = self.world.clock.now() + timedelta(seconds=self.st.travel_s)
        self.world.clock.sleep(self.st.travel_s)
        with self.world.lock:
            self.st.closed = closed
            self.st.moving_until = None

    def open(self, *, timeout_s: float = 60.0) -> None:
        self._move(False, timeout_s)

    def close(self, *, timeout_s: float = 60.0) -> None:
        self._move(True, timeout_s)

    def state(self) -> CoverState:
        if self.st.moving_until is not None:
            return CoverState.MOVING
        return CoverState.CLOSED if self.st.closed else CoverState.OPEN


class SimFilterWheel(FilterWheel):
    def __init__(self, world: SimWorld, state: WheelState, name: str, seconds_per_slot: float) -> None:
        self.world = world
        self.st = state
        self.name = name
        self.seconds_per_slot = seconds_per_slot

    def describe(self) -> dict[str, object]:
        return {"kind": "simulated filter wheel", "filters": ", ".join(self.st.names)}

    def names(self) -> list[str]:
        return list(self.st.names)

    def position(self) -> int:
        return self.st.slot

    def move_to(self, slot: int, *, timeout_s: float = 60.0) -> None:
        n = len(self.st.names)
        if not 1 <= slot <= n:
            raise ValueError(f"{self.name}: no slot {slot}; slots are 1 to {n}")
        travel = abs(slot - self.st.slot) * self.seconds_per_slot
        if travel > timeout_s:
            self.world.clock.sleep(timeout_s)
            raise DeviceTimeout(self.name, f"moving to slot {slot}", timeout_s)
        self.world.clock.sleep(travel)
        with self.world.lock:
            self.st.slot = slot


class SimRelay(Relay):
    def __init__(self, name: str) -> None:
        self.name = name
        self._on = False

    def describe(self) -> dict[str, object]:
        return {"kind": "simulated relay", "on": self._on}

    def on(self) -> None:
        self._on = True

    def off(self) -> None:
        self._on = False

    def is_on(self) -> bool:
        return self._on

    def disconnect(self) -> None:
        self.off()


class SimMount(Mount):
    def __init__(self, world: SimWorld, state: MountState, name: str) -> None:
        self.world = world
        self.st = state
        self.name = name

    def describe(self) -> dict[str, object]:
        return {"kind": "simulated mount", "tracking": self.st.tracking}

    def offset(self, east_arcsec: float, north_arcsec: float) -> None:
        with self.world.lock:
            self.st.offset_px[0] += east_arcsec / self.st.arcsec_per_px
            self.st.offset_px[1] += north_arcsec / self.st.arcsec_per_px
        self.world.clock.sleep(2.0)

    def set_tracking(self, on: bool) -> None:
        self.st.tracking = on

    def slew_altaz(self, alt_deg: float, az_deg: float, *, timeout_s: float = 120.0) -> None:
        """Point elsewhere: another part of the star field comes into view (the sky's light
        is modelled as uniform over the small angles a flat spot spans)."""
        if not 0 <= alt_deg <= 90:
            raise ValueError(f"{self.name}: altitude {alt_deg} deg outside 0-90")
        with self.world.lock:
            self.st.offset_px[0] = (az_deg * 3600.0 / self.st.arcsec_per_px) % 997.0
            self.st.offset_px[1] = (alt_deg * 3600.0 / self.st.arcsec_per_px) % 991.0
            self.st.pointing_altaz = (alt_deg, az_deg)
        self.world.clock.sleep(min(timeout_s, 20.0))


class SimWeather(Weather):
    """Cloudy on the nights listed (night 1 is the first evening on or after the simulated
    clock's start, by the site's local date), clear otherwise. The simulated sky follows: on a
    cloudy night every sky frame has clouds."""

    def __init__(self, world: SimWorld, name: str, cloudy_nights: list[int]) -> None:
        self.world = world
        self.name = name
        self.cloudy_nights = frozenset(cloudy_nights)
        world.overcast = self.cloudy_at

    def night_number(self, when: datetime) -> int:
        """1 for the first evening on or after the clock's start (its local date)."""
        lon = self.world.site.longitude_deg if self.world.site else 0.0
        start_local = self.world.clock.start + timedelta(hours=lon / 15.0)
        first = datetime(start_local.year, start_local.month, start_local.day)
        return (datetime.fromisoformat(night_of(when, lon)) - first).days + 1

    def cloudy_at(self, when: datetime) -> bool:
        return self.night_number(when) in self.cloudy_nights

    def describe(self) -> dict[str, object]:
        return {"kind": "simulated weather", "cloudy_nights": sorted(self.cloudy_nights)}

    def reading(self) -> WeatherReading:
        now = self.world.clock.now()
        night = self.night_number(now)
        if night in self.cloudy_nights:
            return WeatherReading(Sky.CLOUDY, f"simulated night {night} is cloudy")
        return WeatherReading(Sky.CLEAR, f"simulated night {night} is clear")


class SimDriver:
    """The `sim` driver plugin: every role, on one simulated world per rig."""

    name = "sim"
    roles = frozenset({"camera", "panel", "cover", "filter_wheel", "relay", "mount", "weather"})

    def validate(self, role: str, table: Mapping[str, Any], *, source: str,
                 tables: Mapping[str, Any]) -> None:
        settings = S.read_role(role, table, source)
        if role == "camera":
            light_source(settings["light_source"], source)
        for section in ("clock", "sky", "optics"):
            if section in tables:
                S.read_table(section, tables[section], source)

    def _world(self, session: Any) -> SimWorld:
        world = session.shared.get("sim")
        if world is None:
            clock_t = S.read_table("clock", session.tables.get("clock", {}), session.source)
            start = clock_t["start"]
            start_dt = datetime.fromisoformat(start) if start else datetime.now(timezone.utc)
            clock = SimClock(start_dt, clock_t["speed"])
            sky = SkyParams(**S.read_table("sky", session.tables.get("sky", {}), session.source))
            optics_t = S.read_table("optics", session.tables.get("optics", {}), session.source)
            optics = OpticsParams(**{k: (tuple(v) if isinstance(v, list) else v)
                                     for k, v in optics_t.items()})
            world = SimWorld(clock, session.site, sky, optics)
            session.shared["sim"] = world
            session.clock = clock
        return world

    def open(self, role: str, table: Mapping[str, Any], session: Any):
        s = S.read_role(role, table, session.source)
        world = self._world(session)
        name = s.pop("name")
        if role == "camera":
            world.external_panel = light_source(s.pop("light_source"), session.source)
            extra = {k: s.pop(k) for k in ("readout_s", "ambient_c", "cooler",
                                            "cooling_rate_c_per_min", "max_binning", "hang")}
            return SimCamera(world, SensorParams(**s), name, **extra)
        if role == "panel":
            response = tuple((float(b), float(f)) for b, f in s.pop("response"))
            on_cover = s.pop("on_cover")
            colour = tuple(float(v) for v in s.pop("channel_flux"))
            params = PanelParams(response=response, channel_flux=colour, **s)
            world.panel = PanelState(params, on_cover=on_cover)
            return SimLightPanel(world, world.panel, name)
        if role == "cover":
            world.cover = LidState(travel_s=s["travel_s"], closed=s["closed"])
            return SimCover(world, world.cover, name)
        if role == "filter_wheel":
            names = s["names"]
            throughput = s["throughput"] or [1.0] * len(names)
            if len(throughput) != len(names):
                raise RigError(session.source, "[filter_wheel] throughput",
                               f"has {len(throughput)} values for {len(names)} filters")
            world.wheel = WheelState(list(names), [float(t) for t in throughput])
            return SimFilterWheel(world, world.wheel, name, s["seconds_per_slot"])
        if role == "relay":
            return SimRelay(name)
        if role == "mount":
            world.mount = MountState(arcsec_per_px=s["arcsec_per_px"])
            return SimMount(world, world.mount, name)
        if role == "weather":
            return SimWeather(world, name, s["cloudy_nights"])
        raise RigError(session.source, f"[{role}]", "the sim driver does not serve this role")
