"""Twilight sky model.

Zenith sky brightness against sun altitude from Patat et al. 2006 (A&A 455, 385; Paranal):
m = a0 + a1 x + a2 x^2 mag/arcsec^2 with x = sun zenith distance - 95 deg, fitted for sun altitude
-5 to -15 deg. Above -5 deg the curve is continued along its tangent at -5 deg; below -15 deg
along its tangent at -15 deg until a night sky's 21.5 mag/arcsec^2 (the parabola itself turns
bright again: at -40 deg it would be brighter than daylight). Sun altitude comes
from ERFA as indical computes it (`indical.twilight.sun`). Stars, clouds and satellite trails spoil some frames, as on a real sky."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import numpy as np

from indical.site import Site
from indical.twilight.sun import sun_altaz_deg

# band: (a0, a1, a2)
PATAT_2006 = {
    "U": (15.01, 1.376, -0.039),
    "B": (11.84, 1.411, -0.041),
    "V": (11.84, 1.518, -0.057),
    "R": (11.40, 1.567, -0.064),
    "I": (10.93, 1.470, -0.062),
}


#: x (sun zenith distance - 95 deg) at the fit's dark end, the sun at -15 deg.
_X_DARK = 10.0

#: A dark night sky (V, mag/arcsec^2): past the fit the sky darkens to this and no further.
NIGHT_SKY_MAG = 21.5


#: The bright daytime sky, about 2 mag/arcsec^2 in V (some 17,000 cd/m^2): the sky never gets
#: brighter than this, whatever the sun's altitude (the tangent reaches it with the sun about
#: 1.5 deg up). Without the floor the tangent reached -90 mag at noon and overflowed float32.
DAYLIGHT_MAG = 2.0


def patat_mag(band: str, sun_alt_deg: float, slope: float = 1.0) -> float:
    """Zenith sky surface brightness (mag/arcsec^2) in a Johnson band. `slope` scales how fast
    the sky fades with the sun's depression (1: Paranal as Patat measured it)."""
    a0, a1, a2 = PATAT_2006[band]
    x = (90.0 - sun_alt_deg) - 95.0
    if x < 0:  # sun above -5 deg: outside the fit, continue along the tangent to daylight
        return max(a0 + slope * a1 * x, DAYLIGHT_MAG)
    if x > _X_DARK:
        # sun below -15 deg: outside the fit too, whose parabola turns bright again; continue
        # along the tangent until the night sky's darkness
        edge = a0 + slope * (a1 * _X_DARK + a2 * _X_DARK * _X_DARK)
        tangent = max(slope * (a1 + 2 * a2 * _X_DARK), 0.0)
        return min(edge + tangent * (x - _X_DARK), max(edge, NIGHT_SKY_MAG))
    return a0 + slope * (a1 * x + a2 * x * x)


#: The twilight sky's colour on a one-shot-colour sensor (r, g, b): blue.
DEFAULT_SKY_COLOUR = (0.45, 0.75, 1.0)


@dataclass(frozen=True)
class SkyParams:
    zero_point_mag: float = 25.0     # surface brightness giving 1 e-/s per pixel (unfiltered)
    offset_mag: float = -0.3         # site brighter than Paranal (low sites ~30 % brighter)
    gradient: float = 0.03           # fractional change across the field, brighter sunward
    star_count: int = 40
    star_flux_e_per_s: tuple[float, float] = (200.0, 200000.0)
    cloud_probability: float = 0.0
    trail_probability: float = 0.0
    seed: int = 1
    twilight_slope: float = 1.0      # fading speed relative to Patat's Paranal sky
    channel_flux: tuple[float, float, float] = DEFAULT_SKY_COLOUR   # relative r, g, b


def sky_flux(p: SkyParams, band: str, sun_alt_deg: float) -> float:
    """Mean sky flux in e-/s per pixel through a filter of throughput 1 in `band`."""
    m = patat_mag(band, sun_alt_deg, p.twilight_slope) + p.offset_mag
    return 10 ** (-0.4 * (m - p.zero_point_mag))


@lru_cache(maxsize=4096)
def _sun_altitude_cached(lat: float, lon: float, elev: float, unix_s: float) -> float:
    return float(sun_altaz_deg(Site(lat, lon, elev), unix_s)[0][0])


def sun_altitudes(lat_deg: float, lon_deg: float, elevation_m: float,
                  times_unix: np.ndarray) -> np.ndarray:
    """Sun altitudes (degrees, no refraction) at many times in one call (ERFA, as indical
    computes them: within 0.003 deg of astropy's AltAz without reading its IERS tables)."""
    return sun_altaz_deg(Site(lat_deg, lon_deg, elevation_m), times_unix)[0]


def sun_altitude(lat_deg: float, lon_deg: float, elevation_m: float, when: datetime) -> float:
    """Sun altitude in degrees (no refraction), cached to the second."""
    return _sun_altitude_cached(lat_deg, lon_deg, elevation_m, round(when.timestamp()))


def render_sky(p: SkyParams, flux: float, shape: tuple[int, int], *, offset_px: tuple[float, float],
               rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Sky light on the sensor (e-/s per pixel) before optics: mean `flux` with a gradient, the
    star field shifted by the pointing offset, and by chance a cloud or a satellite trail.
    Returns the map and what spoilers were added (for tests)."""
    h, w = shape
    ramp = 1.0 + p.gradient * (np.arange(w, dtype=np.float32) / max(w - 1, 1) - 0.5)
    img = np.empty(shape, dtype=np.float32)
    img[:] = np.float32(flux) * ramp[np.newaxis, :]
    spoilers: list[str] = []
    if p.star_count:
        _add_stars(img, p, offset_px)
    if p.cloud_probability and rng.random() < p.cloud_probability:
        _add_cloud(img, rng)
        spoilers.append("cloud")
    if p.trail_probability and rng.random() < p.trail_probability:
        _add_trail(img, flux, rng)
        spoilers.append("trail")
    return img, spoilers


def _add_stars(img: np.ndarray, p: SkyParams, offset_px: tuple[float, float]) -> None:
    h, w = img.shape
    rng = np.random.default_rng([p.seed, 20])  # fixed star field, moved by the pointing
    n = p.star_count
    # a field three times the frame so offsets bring new stars in
    xs = rng.uniform(-w, 2 * w, 9 * n) + offset_px[0]
    ys = rng.uniform(-h, 2 * h, 9 * n) + offset_px[1]
    lo, hi = p.star_flux_e_per_s
    fluxes = lo * (hi / lo) ** rng.random(9 * n)
    inside = (xs >= 2) & (xs < w - 2) & (ys >= 2) & (ys < h - 2)
    sigma = 1.2
    k = np.arange(-2, 3)
    for x, y, f in zip(xs[inside], ys[inside], fluxes[inside]):
        ix, iy = int(x), int(y)
        gx = np.exp(-0.5 * ((ix + k - x) / sigma) ** 2)
        gy = np.exp(-0.5 * ((iy + k - y) / sigma) ** 2)
        stamp = np.outer(gy, gx)
        img[iy - 2:iy + 3, ix - 2:ix + 3] += (f * stamp / stamp.sum()).astype(np.float32)


def _add_cloud(img: np.ndarray, rng: np.random.Generator) -> None:
    """A smooth patch 10-30 % darker or brighter than the sky around it."""
    h, w = img.shape
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    r = rng.uniform(0.2, 0.5) * max(w, h)
    depth = rng.uniform(0.1, 0.3) * rng.choice([-1.0, 1.0])
    y, x = np.ogrid[:h, :w]
    blob = np.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))).astype(np.float32)
    img *= 1.0 + np.float32(depth) * blob


def _add_trail(img: np.ndarray, flux: float, rng: np.random.Generator) -> None:
    """A straight satellite trail two pixels wide, several times the sky level."""
    h, w = img.shape
    x0, x1 = rng.uniform(0, w, 2)
    t = np.linspace(0, 1, 4 * max(w, h))
    xs = (x0 + (x1 - x0) * t).astype(int)
    ys = (t * (h - 1)).astype(int)
    ok = (xs >= 0) & (xs < w - 1)
    img[ys[ok], xs[ok]] += np.float32(5 * flux + 1000)
    img[ys[ok], xs[ok] + 1] += np.float32(5 * flux + 1000)
