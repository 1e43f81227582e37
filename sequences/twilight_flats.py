"""Twilight sky flats, at dusk or at dawn, then bias frames for them.

The run finds the next twilight from the sun's motion at the rig's [site] (or the one you ask
for), waits until the sky is in reach of each filter, and follows the brightening or dimming
sky with a predicted exposure ramp. Filters go least sensitive first at dusk, most sensitive
first at dawn. Frames spoiled by saturation, stars, trails or clouds are kept in a rejected/
folder beside the flats, each flagged with the reason. Only the flats still missing tonight are
taken, so an interrupted run picks up where it stopped.

With a mount in the rig, the telescope points about 15 deg from the zenith away from the sun
and moves a little between frames so stars do not land twice on the same pixels (or, with
STOP_TRACKING, lets them trail). An all-sky camera needs no mount: the sky turns by itself.

Copy this file and edit the settings below. Run it with:
    indical run sequences/twilight_flats.py --rig my_rig.toml
    indical run sequences/twilight_flats.py --set TWILIGHT=dawn
"""

from indical.sequence import Target

TWILIGHT = "next"               # "dusk", "dawn" or "next" (whichever comes first)
FILTERS = None                  # None: every filter in the wheel; or a list like ["Ha", "R", "L"]
                                # (ordered by sensitivity: on the first run from one short
                                # probe per filter, later from what the frames measured)
FLATS_PER_FILTER = 15
TARGET = Target.fraction(0.4, tolerance=0.1)   # 40 % of full scale +/- 10 % of that
SUN_BRIGHTEST_DEG = -2.0        # flats while the sun is between these altitudes
SUN_DARKEST_DEG = -10.0
MIN_EXPOSURE_S = 1.0            # shorter exposures show shutter shading on many cameras
MAX_EXPOSURE_S = 60.0
DITHER_ARCSEC = 20.0            # mount offset between frames (0: none)
STOP_TRACKING = False           # instead of dithering, let the stars trail
FLAT_SPOT = True                # point ~15 deg from the zenith, away from the sun
BIAS_ADU = None                 # ADU; None: measured (cover closed): set it for a camera
                                # with neither cover nor shutter
DARKS = "bias"                  # "bias", "longest" (dark flats at each filter's longest
DARKS_COUNT = 20                #  exposure), "each" (at every exposure) or "none"
COVER_ON_EXIT = "leave"         # "open", "closed" or "leave"


def run(obs):
    obs.open_cover()
    result = obs.twilight_flats(
        obs.filters(FILTERS), count=FLATS_PER_FILTER, target=TARGET, twilight=TWILIGHT,
        sun_brightest_deg=SUN_BRIGHTEST_DEG, sun_darkest_deg=SUN_DARKEST_DEG,
        min_exposure_s=MIN_EXPOSURE_S, max_exposure_s=MAX_EXPOSURE_S,
        dither_arcsec=DITHER_ARCSEC, stop_tracking=STOP_TRACKING, flat_spot=FLAT_SPOT,
        bias_adu=BIAS_ADU)
    obs.twilight_darks(result, mode=DARKS, count=DARKS_COUNT)


def still_needed(needs):
    """For `indical autopilot` (only_if = ["needed"]): what tonight still lacks, or None."""
    return needs.flats(FILTERS)
