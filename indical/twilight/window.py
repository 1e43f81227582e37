"""When the twilight sky can be used: the sun's altitude over the evening or morning, whether
it is dusk or dawn (from the sun's motion, never from the clock hour), and the sun-altitude
limits a run keeps to.

Times are UTC seconds since the Unix epoch (`*_unix`) inside; datetimes only at the edges."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from indical.site import Site
from indical.twilight.sun import sun_altaz_deg


class Twilight(enum.Enum):
    DUSK = "dusk"   # the sky is getting darker
    DAWN = "dawn"   # the sky is getting brighter

    @property
    def sign(self) -> int:
        """+1 when the sun is rising (dawn), -1 when it is setting (dusk)."""
        return 1 if self is Twilight.DAWN else -1


def to_unix(when: datetime) -> float:
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def from_unix(t_unix: float) -> datetime:
    return datetime.fromtimestamp(t_unix, tz=timezone.utc)


def sun_altitudes_deg(site: Site, times_unix: np.ndarray | list[float]) -> np.ndarray:
    """Geometric sun altitude (no refraction) at the site, one vectorised call for all times
    (`indical.twilight.sun`: ERFA, no Earth-orientation tables)."""
    return sun_altaz_deg(site, times_unix)[0]


def sun_azimuth_deg(site: Site, when_unix: float) -> float:
    """Sun azimuth (degrees east of north), for pointing away from the sun."""
    return float(sun_altaz_deg(site, when_unix)[1][0])


@dataclass(frozen=True)
class SunPath:
    """Sun altitude sampled over a stretch of time, interpolated in between: one call covers a
    whole twilight, so the controller can ask about any instant cheaply."""

    times_unix: np.ndarray
    altitudes_deg: np.ndarray

    @classmethod
    def compute(cls, site: Site, start_unix: float, duration_s: float,
                step_s: float = 30.0) -> "SunPath":
        n = max(2, int(np.ceil(duration_s / step_s)) + 1)
        times = start_unix + step_s * np.arange(n, dtype=float)
        return cls(times, sun_altitudes_deg(site, times))

    @property
    def start_unix(self) -> float:
        return float(self.times_unix[0])

    @property
    def end_unix(self) -> float:
        return float(self.times_unix[-1])

    def altitude(self, t_unix: float | np.ndarray) -> float | np.ndarray:
        """Altitude (deg) at a time; beyond the ends the path continues along its end slopes."""
        t = np.asarray(t_unix, dtype=float)
        ts, alts = self.times_unix, self.altitudes_deg
        a = np.interp(t, ts, alts)
        lo_slope = (alts[1] - alts[0]) / (ts[1] - ts[0])
        hi_slope = (alts[-1] - alts[-2]) / (ts[-1] - ts[-2])
        a = np.where(t < ts[0], alts[0] + lo_slope * (t - ts[0]), a)
        a = np.where(t > ts[-1], alts[-1] + hi_slope * (t - ts[-1]), a)
        return float(a) if a.ndim == 0 else a

    def rate_deg_per_s(self, t_unix: float) -> float:
        """How fast the sun's altitude changes (deg/s): negative when setting."""
        h = 15.0
        return float((self.altitude(t_unix + h) - self.altitude(t_unix - h)) / (2 * h))

    def crossing(self, altitude_deg: float, after_unix: float) -> float | None:
        """First time at or after `after_unix` when the sun crosses `altitude_deg`, or None
        when it does not within the path."""
        ts = self.times_unix
        alts = self.altitudes_deg - altitude_deg
        i0 = int(np.searchsorted(ts, after_unix))
        a_now = self.altitude(after_unix) - altitude_deg
        if a_now == 0:
            return after_unix
        prev_t, prev_a = after_unix, a_now
        for i in range(i0, len(ts)):
            if ts[i] <= after_unix:
                continue
            if np.sign(alts[i]) != np.sign(prev_a) and alts[i] != prev_a:
                # linear interpolation between the two samples that bracket the crossing
                return float(prev_t + (ts[i] - prev_t) * prev_a / (prev_a - alts[i]))
            prev_t, prev_a = float(ts[i]), float(alts[i])
        return None


def twilight_at(site: Site, when_unix: float) -> Twilight:
    """Dusk or dawn, from whether the sun is setting or rising at that moment."""
    before, after = sun_altitudes_deg(site, [when_unix - 300.0, when_unix + 300.0])
    return Twilight.DAWN if after > before else Twilight.DUSK


@dataclass(frozen=True)
class SunLimits:
    """The sun altitudes a twilight run keeps to: flats are taken while the sun is between
    `darkest_deg` and `brightest_deg` (e.g. -10 and -2). The same limits serve dusk (start at
    the bright end) and dawn (start at the dark end)."""

    brightest_deg: float = -2.0
    darkest_deg: float = -10.0

    def __post_init__(self) -> None:
        if not self.darkest_deg < self.brightest_deg:
            raise ValueError(f"sun limits: darkest ({self.darkest_deg} deg) must be below "
                             f"brightest ({self.brightest_deg} deg)")

    def contains(self, altitude_deg: float) -> bool:
        return self.darkest_deg <= altitude_deg <= self.brightest_deg

    def entry_deg(self, twilight: Twilight) -> float:
        """The altitude at which the window opens: the bright end at dusk, the dark at dawn."""
        return self.brightest_deg if twilight is Twilight.DUSK else self.darkest_deg

    def exit_deg(self, twilight: Twilight) -> float:
        return self.darkest_deg if twilight is Twilight.DUSK else self.brightest_deg


class SunState(enum.Enum):
    BEFORE = "before"   # the sun has not reached the window yet: wait
    INSIDE = "inside"
    AFTER = "after"     # the sun has left the window: this twilight is over


def sun_state(limits: SunLimits, twilight: Twilight, altitude_deg: float) -> SunState:
    if limits.contains(altitude_deg):
        return SunState.INSIDE
    too_bright = altitude_deg > limits.brightest_deg
    if twilight is Twilight.DUSK:
        return SunState.BEFORE if too_bright else SunState.AFTER
    return SunState.AFTER if too_bright else SunState.BEFORE


@dataclass(frozen=True)
class SunWindow:
    """When the sun is inside the limits during one twilight (None: not reached)."""

    twilight: Twilight
    opens_unix: float | None
    closes_unix: float | None


def sun_window(path: SunPath, limits: SunLimits, twilight: Twilight,
               now_unix: float) -> SunWindow:
    """When the sun enters and leaves the limits, from `now_unix` on. When the sun is already
    inside, the window opens now; when it never gets there (high-latitude summer), both are None."""
    alt = path.altitude(now_unix)
    state = sun_state(limits, twilight, alt)
    if state is SunState.AFTER:
        return SunWindow(twilight, None, None)
    if state is SunState.INSIDE:
        opens: float | None = now_unix
    else:
        opens = path.crossing(limits.entry_deg(twilight), now_unix)
        if opens is None:
            return SunWindow(twilight, None, None)
    closes = path.crossing(limits.exit_deg(twilight), opens)
    return SunWindow(twilight, opens, closes)


def next_twilight(site: Site, now_unix: float, limits: SunLimits,
                  horizon_s: float = 36 * 3600.0) -> tuple[Twilight, SunWindow] | None:
    """The next twilight whose sun window has not closed yet (the current one if the sun is
    inside the limits now), by the sun's motion. None when the sun stays out of the limits
    (polar day or night) over the horizon."""
    path = SunPath.compute(site, now_unix - 60.0, horizon_s + 60.0, step_s=60.0)
    alts = path.altitudes_deg
    inside = (alts >= limits.darkest_deg) & (alts <= limits.brightest_deg)
    idx = np.nonzero(inside & (path.times_unix >= now_unix - 60.0))[0]
    if len(idx) == 0:
        return None
    i = int(idx[0])
    j = min(i + 1, len(alts) - 1)
    twilight = Twilight.DAWN if alts[j] > alts[max(i - 1, 0)] else Twilight.DUSK
    start = max(now_unix, float(path.times_unix[i]) - 60.0)
    return twilight, sun_window(path, limits, twilight, start)


def flat_spot_altaz(site: Site, when_unix: float,
                    zenith_distance_deg: float = 15.0) -> tuple[float, float]:
    """Where twilight flats are flattest: about 15 deg from the zenith, away from the sun
    (the gradient is smallest there). Returns (altitude, azimuth) in degrees."""
    return 90.0 - zenith_distance_deg, (sun_azimuth_deg(site, when_unix) + 180.0) % 360.0
