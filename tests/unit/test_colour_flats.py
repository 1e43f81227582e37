"""Flats on a one-shot-colour camera, on the in-process simulated observatory: the target
applies to one channel (the brightest by default), the weakest channel is checked against a
floor, the exposure log records every channel, and panel and twilight runs both work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from indical.level import (BitDepth, Level, Target, channel_floor_problem, counted_channel,
                           measure_level)
from indical.rig import open_rig, parse_rig
from indical.sequence.engine import run_sequence
from indical.sequence.log import read_log
from indical.sequence.trained import TrainedStore
from indical.sinks import FitsFolderSink

SEQUENCES = Path(__file__).resolve().parents[2] / "sequences"
FULL = 65535
BIAS = 500

RIG = """
[site]
latitude = 52.0
longitude = 5.0
[clock]
start = "{start}"
[camera]
driver = "sim"
width = 192
height = 128
bayer_pattern = "RGGB"
{camera}
[panel]
driver = "sim"
channel_flux = {flux}
[cover]
driver = "sim"
[sky]
star_flux_e_per_s = [100.0, 20000.0]
{sky}
"""


def spec(flux="[1.0, 0.55, 0.25]", camera="", sky="", start="2026-03-20T15:00:00+00:00"):
    return parse_rig(RIG.format(flux=flux, camera=camera, sky=sky, start=start), "colour rig")


def run(tmp_path, rig_spec, sequence, **settings):
    said: list[str] = []
    with open_rig(rig_spec) as rig:
        sink = FitsFolderSink(tmp_path / "frames", longitude_deg=5.0)
        result = run_sequence(SEQUENCES / sequence, rig, sink, log_path=tmp_path / "log.jsonl",
                              store=TrainedStore(tmp_path / "trained.sqlite"),
                              overrides=settings, say=said.append)
    assert result.error is None, result.error
    return said, list(read_log(tmp_path / "log.jsonl"))


def channel_levels(path):
    """Median of the central half above bias, per colour (RGGB)."""
    with fits.open(path) as hdul:
        d = hdul[0].data.astype(np.float64) - BIAS
        header = hdul[0].header
    h, w = d.shape
    c = d[h // 4:3 * h // 4, w // 4:3 * w // 4]
    assert header["BAYERPAT"] == "RGGB" and header["XBAYROFF"] == 0 == header["YBAYROFF"]
    return {"R": np.median(c[0::2, 0::2]), "G": np.median(np.r_[c[0::2, 1::2].ravel(),
                                                                c[1::2, 0::2].ravel()]),
            "B": np.median(c[1::2, 1::2]), "max": float(hdul_max(path))}


def hdul_max(path):
    return fits.getdata(path).max()


def test_colour_panel_flats_with_a_strong_colour_cast(tmp_path):
    said, log = run(tmp_path, spec(), "panel_flats.py", FILTERS=None, FLATS_PER_FILTER=4,
                    DARK_FLATS_PER_EXPOSURE=2)
    flats = sorted((tmp_path / "frames").rglob("flat_*.fits"))
    assert len(flats) == 4
    band = Target.fraction(0.5, 0.1).band(FULL, BIAS)
    for path in flats:
        levels = channel_levels(path)
        # the brightest channel (red) within the target band, none saturated, blue above
        # the 10 % floor
        assert band.contains(levels["R"]), levels
        assert levels["max"] < FULL
        assert levels["R"] > levels["G"] > levels["B"] > 0.10 * FULL
        assert levels["B"] / levels["R"] == pytest.approx(0.25, rel=0.03)
    kept = [e for e in log if e["kind"] in ("search", "flat") and e["accepted"]]
    assert len(kept) == 4
    for entry in kept:
        assert set(entry["channels"]) == {"R", "G", "B"}
        assert entry["level"] == entry["channels"]["R"] == max(entry["channels"].values())
    assert not [s for s in said if s.startswith("warning")]
    exposures = sum(1 for e in log if e["kind"] in ("search", "flat"))
    print(f"colour panel flats: {exposures} flat exposures, channels {kept[0]['channels']}")


def test_weak_channel_below_the_floor_is_reported_with_what_to_change(tmp_path):
    said, log = run(tmp_path, spec("[1.0, 0.4, 0.08]"), "panel_flats.py", FILTERS=None,
                    FLATS_PER_FILTER=2, DARK_FLATS_PER_EXPOSURE=1)
    warnings = [s for s in said if s.startswith("warning")]
    assert len(warnings) == 1, said
    text = warnings[0]
    # which channel, its level and the floor, every channel's level, and what to change
    assert "channel B would end at" in text and "below the floor of 10%" in text
    assert "R 4" in text and "G 1" in text and "B 3." in text
    assert "more blue" in text and "floor=0.03" in text
    # the flats are still taken (the brightest channel in band): the run warns, not fails
    assert len(list((tmp_path / "frames").rglob("flat_*.fits"))) == 2


def test_a_floor_that_fits_is_silent_and_a_higher_target_is_offered():
    target = Target.fraction(0.5)
    band = target.band(FULL, BIAS)
    ok = Level(30000, {"R": 30000, "G": 17000, "B": 7500}, False, BitDepth(16), BIAS, "R")
    assert channel_floor_problem(ok, target, band) is None
    mono = Level(30000, {"mono": 30000}, False, BitDepth(16), BIAS)
    assert channel_floor_problem(mono, target, band) is None
    weak = Level(30000, {"R": 30000, "G": 17000, "B": 5000}, False, BitDepth(16), BIAS, "R")
    text = channel_floor_problem(weak, target, band)
    assert "Target.fraction(0.6" in text and "B 8.2%" in text
    assert channel_floor_problem(weak, Target.fraction(0.5, floor=0.08), band) is None


@pytest.mark.parametrize("channel, counted, level", [
    ("max", "G", 29000), ("min", "R", 8000), ("R", "R", 8000), ("B", "B", 11000),
])
def test_target_channel_picks_the_level_that_counts(channel, counted, level):
    data = np.zeros((64, 64), dtype=np.uint16)
    data[0::2, 0::2], data[0::2, 1::2], data[1::2, 0::2], data[1::2, 1::2] = \
        9000, 30000, 30000, 12000
    m = measure_level(data, bias_adu=1000, reported_bits=16, bayer="RGGB", channel=channel)
    assert (m.channel, m.level_adu) == (counted, level)
    assert m.channels == {"R": 8000, "G": 29000, "B": 11000}
    assert counted_channel({"mono": 5.0}, "B") == "mono"


def test_target_channel_and_floor_are_checked():
    assert Target.fraction(0.5, channel="min").describe().endswith("in the weakest colour channel")
    assert Target.adu(20000, channel="G").describe().endswith("in the G channel")
    with pytest.raises(ValueError, match="channel must be one of max, min, R, G, B"):
        Target.fraction(0.5, channel="red")
    with pytest.raises(ValueError, match="floor"):
        Target.fraction(0.5, floor=1.5)


def test_target_on_the_weakest_channel(tmp_path):
    """channel="min" puts blue on the target; red ends about 2.5x higher (still unsaturated
    at a 30 % target)."""
    said, log = run(tmp_path, spec("[1.0, 0.55, 0.4]"), "panel_flats.py", FILTERS=None,
                    FLATS_PER_FILTER=2, DARK_FLATS_PER_EXPOSURE=1,
                    TARGET=Target.fraction(0.3, channel="min"))
    band = Target.fraction(0.3).band(FULL, BIAS)
    for path in sorted((tmp_path / "frames").rglob("flat_*.fits")):
        levels = channel_levels(path)
        assert band.contains(levels["B"]) and levels["R"] > 2 * levels["B"]


def test_twilight_flats_on_a_colour_camera(tmp_path):
    """The blue twilight sky: blue is the brightest channel and is put on the target; red,
    the weakest, stays above the floor; the log has every channel of every sky frame."""
    said, log = run(tmp_path, spec(start="2026-03-20T17:30:00+00:00"), "twilight_flats.py",
                    FLATS_PER_FILTER=4, DARKS_COUNT=1)
    flats = [p for p in sorted((tmp_path / "frames").rglob("flat_*.fits"))
             if "rejected" not in p.parts]
    assert len(flats) == 4
    band = Target.fraction(0.4, 0.1).band(FULL, BIAS)      # the sequence's TARGET
    for path in flats:
        levels = channel_levels(path)
        assert levels["B"] > levels["G"] > levels["R"] > 0.10 * FULL
        assert levels["max"] < FULL
        # the ramp aims at the target: every kept frame within twice the band's tolerance
        assert abs(levels["B"] / band.target_adu - 1) <= 2 * band.tolerance, levels
    sky = [e for e in log if e["kind"] == "twilight"]
    assert sky and all(set(e["channels"]) == {"R", "G", "B"} for e in sky)
    assert all(e["level"] == e["channels"]["B"] for e in sky)
    assert not [s for s in said if s.startswith("warning")]
    kept = [e for e in sky if e["accepted"]]
    print(f"twilight colour: {len(sky)} sky exposures, {len(kept)} kept, first kept "
          f"{kept[0]['channels']}")
