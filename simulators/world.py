"""The simulated observatory: one world shared by the simulated devices of a rig, so the camera
sees what the panel, cover, filter wheel and mount are doing, by a simulated clock."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, NamedTuple

import numpy as np

from indical.site import Site
from indical.simulators.clock import SimClock
from indical.simulators.models.optics import OpticsParams, illumination_map
from indical.simulators.models.panel import PanelParams, pwm_banding
from indical.simulators.models.sky import SkyParams, render_sky, sky_flux, sun_altitudes

# Johnson band that sets a filter's twilight colour, by filter name.
BAND_OF = {"l": "V", "lum": "V", "clear": "V", "v": "V", "g": "V", "b": "B", "u": "U",
           "r": "R", "ha": "R", "sii": "R", "oiii": "V", "i": "I"}


def band_for(filter_name: str | None) -> str:
    if not filter_name:
        return "V"
    return BAND_OF.get(filter_name.lower(), "V")


class Illumination(NamedTuple):
    """The light reaching each unbinned pixel (e-/s, averaged over the exposure; 0.0 when
    dark) and its colour: the relative flux per channel (r, g, b) a colour sensor sees."""

    flux_e_per_s: np.ndarray | float
    channel_flux: tuple[float, float, float] | None = None


@dataclass
class PanelState:
    params: PanelParams
    on: bool = False
    brightness: int = 0
    on_cover: bool = True   # a flip-flat: the light box is the inside of the cover


@dataclass
class LidState:
    """The simulated cover's mechanics (travel time, where it is, when a move ends); what a
    Cover reports of it is an `indical.interfaces.CoverState`."""

    travel_s: float = 5.0
    closed: bool = False
    moving_until: datetime | None = None


@dataclass
class WheelState:
    names: list[str]
    throughput: list[float]
    slot: int = 1


@dataclass
class MountState:
    offset_px: list[float] = field(default_factory=lambda: [0.0, 0.0])
    tracking: bool = True
    arcsec_per_px: float = 1.5
    pointing_altaz: tuple[float, float] | None = None


class SimWorld:
    def __init__(self, clock: SimClock, site: Site | None, sky: SkyParams,
                 optics: OpticsParams) -> None:
        self.clock = clock
        self.site = site
        self.sky = sky
        self.optics = optics
        self.lock = threading.RLock()
        self.panel: PanelState | None = None
        self.cover: LidState | None = None
        self.wheel: WheelState | None = None
        self.mount: MountState | None = None
        #: A panel that is not a simulated device (light_sources.py): read at each exposure.
        self.external_panel: Callable[[], tuple[PanelState | None, LidState | None]] | None = None
        self.last_spoilers: list[str] = []
        #: Whole cloudy nights (a simulated weather role): every sky frame then has clouds.
        self.overcast: Callable[[datetime], bool] | None = None
        self._sun_tables: dict[int, np.ndarray] = {}

    def filter_name(self) -> str | None:
        w = self.wheel
        return None if w is None else w.names[w.slot - 1]

    def throughput(self) -> float:
        w = self.wheel
        return 1.0 if w is None else w.throughput[w.slot - 1]

    def cover_closed(self) -> bool:
        return self.cover is not None and self.cover.closed

    def sun_altitude(self, when: datetime) -> float | None:
        """Sun altitude at the site: on a 30 s grid, one call per simulated hour, interpolated
        between (well under 0.001 deg off; a frame costs no sun position of its own)."""
        if self.site is None:
            return None
        s = self.site
        t = when.timestamp()
        hour = int(t // 3600)
        table = self._sun_tables.get(hour)
        if table is None:
            times = hour * 3600.0 + 30.0 * np.arange(122)
            table = sun_altitudes(s.latitude_deg, s.longitude_deg, s.elevation_m, times)
            if len(self._sun_tables) > 48:
                self._sun_tables.clear()
            self._sun_tables[hour] = table
        return float(np.interp(t, hour * 3600.0 + 30.0 * np.arange(122), table))

    def light(self, shape: tuple[int, int], start: datetime, exposure_s: float,
              rng: np.random.Generator) -> Illumination:
        """Light reaching each unbinned pixel, averaged over the exposure, and its colour."""
        h, w = shape
        with self.lock:
            panel, cover = self.panel, self.cover
            if panel is None and self.external_panel is not None:
                panel, outside_cover = self.external_panel()
                cover = cover or outside_cover
            panel_lit = panel is not None and panel.on
            cover_closed = cover is not None and cover.closed
            self.last_spoilers = []
            if panel_lit and (cover_closed or not panel.on_cover or cover is None):
                colour = panel.params.channel_flux
                source: np.ndarray | float = panel.params.flux_e_per_s(panel.brightness)
                bands = pwm_banding(panel.params, exposure_s, h, float(rng.random()))
                if bands is not None:
                    source = source * bands[:, np.newaxis]
            elif cover_closed or self.site is None:
                return Illumination(0.0)
            else:
                colour = self.sky.channel_flux
                mid = start + timedelta(seconds=exposure_s / 2)
                alt = self.sun_altitude(mid)
                flux = sky_flux(self.sky, band_for(self.filter_name()), alt)
                offset = self._star_offset(mid)
                sky = self.sky
                if self.overcast is not None and self.overcast(mid):
                    sky = dataclasses.replace(sky, cloud_probability=1.0)
                source, self.last_spoilers = render_sky(sky, flux, shape, offset_px=offset,
                                                        rng=rng)
            illum = illumination_map(self.optics, w, h)
            return Illumination(illum * (source * np.float32(self.throughput())), colour)

    def _star_offset(self, when: datetime) -> tuple[float, float]:
        m = self.mount
        if m is None:
            # a fixed camera (all-sky): the sky turns 15 arcsec/s past it
            drift = (when - self.clock.start).total_seconds() * 15.0 / 60.0
            return (drift, 0.0)
        drift = 0.0
        if not m.tracking:
            drift = (when - self.clock.start).total_seconds() * 15.0 / m.arcsec_per_px
        return (m.offset_px[0] + drift, m.offset_px[1])
