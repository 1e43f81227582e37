"""Panel flats with a dimmable flip-flat: every filter, then dark flats.

The cover closes over the optics with the panel on its inside; for each filter the panel
brightness is searched at a fixed exposure (as soon as a step's level is within reach of an
exposure in EXPOSURE_RANGE_S the exposure is trimmed instead; beyond it only when the panel's
steps are too coarse or its range ends), flats are taken, and dark flats follow at each exposure used.
Only what tonight's frames are missing is taken, so an interrupted run picks up where it stopped.

Copy this file and edit the settings below. Run it with:
    indical run sequences/panel_flats.py --rig my_rig.toml
"""

from indical.sequence import Target

FILTERS = None                  # None: every filter in the wheel; or a list like ["L", "R", "G", "B"]
FLATS_PER_FILTER = 20
DARK_FLATS_PER_EXPOSURE = 20
TARGET = Target.fraction(0.5, tolerance=0.1)   # 50 % of full scale +/- 10 % of that
EXPOSURE_S = 1.0                # brightness is searched at this exposure
EXPOSURE_RANGE_S = None         # (min, max) a step may be trimmed within; None: 0.5x-2x EXPOSURE_S
COVER_ON_EXIT = "open"          # "open" (ready to observe), "closed" or "leave"


def run(obs):
    obs.close_cover()
    for name in obs.filters(FILTERS):
        obs.panel_flats(name, count=FLATS_PER_FILTER, target=TARGET, exposure_s=EXPOSURE_S,
                        exposure_range_s=EXPOSURE_RANGE_S)
    obs.light_off()
    obs.dark_flats(count=DARK_FLATS_PER_EXPOSURE)


def still_needed(needs):
    """For `indical autopilot` (only_if = ["needed"]): what tonight still lacks, or None."""
    return needs.flats(FILTERS)
