"""Dark library: darks and bias for exactly the configurations your lights lack.

Reads the lights in the calibration library, works out which darks (exposure, temperature,
gain, offset, binning, readout mode) and bias have no matching master, closes the cover and
takes only the frames still missing into the library, where each master is built as soon as its
group is complete. Stops when nothing is missing. Run it in gaps between observations:
    indical run sequences/dark_library.py --rig my_rig.toml
"""

from indical.calib.gapfill import DarkLibrary, DarkLibraryOptions

LIBRARY = None            # calibration library database; None: $INDICAL_LIBRARY or the default
MIN_FRAMES = 10           # frames per master (min_frames_for_master)
CCD = False               # True: bias + darks of any exposure (scaled), for CCD sensors
BIAS = True               # also take bias frames for each configuration
TEMPERATURE_TOL_C = 2.0   # a dark matches lights within this many degrees
COOLER_TIMEOUT_S = 900.0  # longest wait for the cooler to reach a temperature
MAX_ROUNDS = 3            # passes over what is missing before giving up
COVER_ON_EXIT = "closed"  # "open", "closed" or "leave"


def run(obs):
    options = DarkLibraryOptions(min_frames=MIN_FRAMES, ccd=CCD, bias=BIAS,
                                 temperature_tol_c=TEMPERATURE_TOL_C,
                                 cooler_timeout_s=COOLER_TIMEOUT_S)
    with DarkLibrary(LIBRARY, options) as darks:
        todo = darks.missing(obs.camera)
        if not todo:
            obs.say("dark library complete: nothing is missing")
            return
        obs.close_cover()
        obs.light_off()
        for _ in range(MAX_ROUNDS):
            taken = sum(darks.capture(obs, need) for need in todo)
            todo = darks.missing(obs.camera)
            if not todo:
                obs.say("dark library complete: nothing is missing")
                return
            if taken == 0:
                break
        obs.say("still missing: " + "; ".join(n.config.label() for n in todo))


def still_needed(needs):
    """For `indical autopilot` (only_if = ["needed"]): the darks and bias still missing, or None."""
    return needs.darks(min_frames=MIN_FRAMES, ccd=CCD, bias=BIAS,
                       temperature_tol_c=TEMPERATURE_TOL_C)
