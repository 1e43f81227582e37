"""The sun's geometric altitude and azimuth at a site (no refraction), from ERFA, the IAU's
SOFA routines that astropy itself calls, without astropy's Earth-orientation tables.

astropy's AltAz frame reads the IERS-B table (UT1-UTC, polar motion) on first use: about 1-2 s
per process, for a correction far below what flats need. Here UT1 is taken as UTC (|UT1-UTC|
< 0.9 s: at most 0.004 deg of hour angle), polar motion as zero (< 0.5"), TT as UTC + 69.184 s
(the leap seconds since 2017: one more shifts the sun 0.00001 deg) and nutation is IAU 2000B
(1 mas). The Earth's position is ERFA's `epv00`; aberration and light deflection are applied
as for any star, the sun's direction being the geocentric one (ERFA's
geocentric-place approach); the site's own parallax (under 9") is left out. Against astropy's
full transformation (astroplan's `sun_altaz`) the altitude differs by under 0.003 deg over a
year at five sites (tests/unit/test_twilight_sun.py; decision 011)."""

from __future__ import annotations

import math

import erfa
import numpy as np

from indical.site import Site

UNIX_EPOCH_JD = 2440587.5
TT_MINUS_UTC_S = 69.184     # 37 leap seconds + 32.184 s, since 2017-01-01


def sun_altaz_deg(site: Site, times_unix: np.ndarray | list[float] | float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Geometric (unrefracted) altitude and azimuth (east of north) of the sun, in degrees, at
    UTC times in seconds since the Unix epoch."""
    days = np.atleast_1d(np.asarray(times_unix, dtype=float)) / 86400.0
    tt = days + TT_MINUS_UTC_S / 86400.0
    earth_helio, earth_bary = erfa.epv00(UNIX_EPOCH_JD, tt)
    ra, dec = erfa.c2s(-earth_helio["p"])           # where the sun is, seen from the geocentre
    x, y = erfa.bpn2xy(erfa.pnm00b(UNIX_EPOCH_JD, tt))
    s = erfa.s00(UNIX_EPOCH_JD, tt, x, y)
    astrom = erfa.apci(UNIX_EPOCH_JD, tt, earth_bary, earth_helio["p"], x, y, s)
    ri, di = erfa.atciq(ra, dec, 0.0, 0.0, 0.0, 0.0, astrom)   # aberration, deflection
    theta = erfa.era00(UNIX_EPOCH_JD, days)                       # UT1 = UTC
    local = erfa.apio(0.0, theta, math.radians(site.longitude_deg),
                      math.radians(site.latitude_deg), site.elevation_m, 0.0, 0.0, 0.0, 0.0)
    azimuth, zenith_distance, *_ = erfa.atioq(ri, di, local)
    return 90.0 - np.degrees(zenith_distance), np.degrees(azimuth) % 360.0
