"""Flats with an on/off panel (an electroluminescent panel on a relay, or a light box that can
only be switched): the exposure is searched for each filter, then dark flats are taken.

Works with a `[panel]` that is not dimmable or, without a panel, a `[relay]` that powers one.
Without a cover the panel is simply in front of the optics; with one, it is closed first.

Run it with:
    indical run sequences/relay_panel_flats.py --rig my_rig.toml
"""

from indical.sequence import Target

FILTERS = None                  # None: every filter in the wheel
FLATS_PER_FILTER = 20
DARK_FLATS_PER_EXPOSURE = 20
TARGET = Target.fraction(0.4, tolerance=0.15)  # 40 % of full scale +/- 15 % of that
FIRST_EXPOSURE_S = 1.0          # the search starts here (or from the trained exposure)
EXPOSURE_RANGE_S = None         # (min, max) the exposure must stay within; None: [flats] limits
COVER_ON_EXIT = "leave"         # "open", "closed" or "leave" (as the run left it)


def run(obs):
    obs.close_cover()
    for name in obs.filters(FILTERS):
        obs.exposure_flats(name, count=FLATS_PER_FILTER, target=TARGET,
                           exposure_s=FIRST_EXPOSURE_S, exposure_range_s=EXPOSURE_RANGE_S)
    obs.light_off()
    obs.dark_flats(count=DARK_FLATS_PER_EXPOSURE)


def still_needed(needs):
    """For `indical autopilot` (only_if = ["needed"]): what tonight still lacks, or None."""
    return needs.flats(FILTERS)
