"""The sun's position from ERFA without Earth-orientation tables (`indical.twilight.sun`),
against astropy's full transformation (IERS tables, UT1, polar motion, topocentric place)
through astroplan: a year of times at five sites, far within the 0.1 deg that flats need."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from indical.site import Site
from indical.twilight.sun import sun_altaz_deg

SITES = [Site(52.0, 5.0, 10.0), Site(-30.24, -70.74, 2700.0), Site(69.6, 18.9, 50.0),
         Site(0.0, 120.0, 0.0), Site(33.0, -117.0, 1700.0)]
YEAR_2026 = 1767225600.0 + np.arange(0.0, 365 * 86400.0, 97 * 60.0)   # every 97 minutes


@pytest.mark.parametrize("site", SITES, ids=lambda s: f"{s.latitude_deg:+.0f}")
def test_a_year_of_sun_positions_matches_astropy(site):
    import astroplan
    from astropy.time import Time

    theirs = astroplan.Observer(location=site.earth_location()).sun_altaz(
        Time(YEAR_2026, format="unix"))
    alt, az = sun_altaz_deg(site, YEAR_2026)
    assert len(alt) == len(YEAR_2026) > 5000
    assert np.max(np.abs(alt - theirs.alt.deg)) < 0.005          # 0.1 deg would do for flats
    low = theirs.alt.deg < 80.0             # near the zenith the azimuth is ill-conditioned
    assert np.max(np.abs((az - theirs.az.deg + 180.0)[low] % 360.0 - 180.0)) < 0.02


def test_noon_at_the_equinox_and_a_single_time():
    """At the March 2026 equinox (14:46 UTC) the noon sun is 90 deg - latitude high, due south
    at 52 N (over minutes of the day, by itself: no astropy)."""
    day = 1773964800.0 + np.arange(0.0, 86400.0, 60.0)       # 2026-03-20, UTC
    alt, az = sun_altaz_deg(Site(52.0, 0.0), day)
    noon = int(np.argmax(alt))
    assert alt[noon] == pytest.approx(38.0, abs=0.2) and az[noon] == pytest.approx(180, abs=0.3)
    one_alt, one_az = sun_altaz_deg(Site(52.0, 0.0), day[noon])
    assert one_alt.shape == (1,) and (one_alt[0], one_az[0]) == (alt[noon], az[noon])


def test_the_suns_altitude_reads_no_iers_table():
    """A process that only asks for the sun never imports astropy's IERS module (reading its
    table cost 1-2 s per process)."""
    code = ("import sys\n"
            "from indical.site import Site\n"
            "from indical.twilight.window import next_twilight, SunLimits\n"
            "assert next_twilight(Site(52.0, 5.0), 1774000000.0, SunLimits()) is not None\n"
            "print(sorted(m for m in sys.modules if m.startswith(('astropy', 'astroplan'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
