"""A whole panel-flats + dark-flats run on the in-process simulated observatory: three
filters, interrupted and resumed, frame counts, headers and the exposure log checked."""

from pathlib import Path

import pytest
from astropy.io import fits

from indical.frame import FrameType
from indical.rig import open_rig, parse_rig
from indical.sequence.engine import run_sequence
from indical.sequence.log import read_log
from indical.sequence.trained import TrainedStore
from indical.sinks import FitsFolderSink, FrameQuery

SEQUENCES = Path(__file__).resolve().parents[2] / "sequences"

RIG = """
[site]
latitude = 52.0
longitude = 5.0
[clock]
start = "2026-03-20T15:00:00+00:00"
[camera]
driver = "sim"
width = 256
height = 192
{camera}
[filter_wheel]
driver = "sim"
names = ["L", "R", "Ha"]
throughput = [1.0, 0.45, {ha}]
[panel]
driver = "sim"
{panel}
[cover]
driver = "sim"
"""

SETTINGS = {"FLATS_PER_FILTER": 4, "DARK_FLATS_PER_EXPOSURE": 3}


def rig_spec(camera="", panel="", ha=0.05):
    return parse_rig(RIG.format(camera=camera, panel=panel, ha=ha), "test rig")


class StopAfter:
    """A sink that raises KeyboardInterrupt (as Ctrl-C would) after n frames."""

    def __init__(self, inner, n):
        self.inner, self.n = inner, n

    def count(self, query):
        return self.inner.count(query)

    def write(self, frame):
        if len(self.inner.written) >= self.n:
            raise KeyboardInterrupt
        return self.inner.write(frame)


def run(tmp_path, spec, sink=None, sequence="panel_flats.py", **extra):
    with open_rig(spec) as rig:
        sink = sink or FitsFolderSink(tmp_path / "frames", longitude_deg=5.0)
        result = run_sequence(SEQUENCES / sequence, rig, sink, log_path=tmp_path / "log.jsonl",
                              store=TrainedStore(tmp_path / "trained.sqlite"),
                              overrides={**SETTINGS, **extra})
        state = (rig.panel.is_on(), rig.cover.state().value if rig.cover else None)
    return result, state


def headers(tmp_path):
    return [fits.getheader(p) for p in sorted((tmp_path / "frames").rglob("*.fits"))]


def test_whole_run_interrupted_and_resumed(tmp_path):
    spec = rig_spec()
    inner = FitsFolderSink(tmp_path / "frames", longitude_deg=5.0)
    result, (panel_on, cover) = run(tmp_path, spec, StopAfter(inner, 6))
    assert result.interrupted and result.error is None
    assert not panel_on and cover == "open"          # COVER_ON_EXIT = "open"
    assert len(inner.written) == 6

    result, (panel_on, cover) = run(tmp_path, spec)
    assert not result.interrupted and result.error is None, result.error
    assert not panel_on and cover == "open"
    hs = headers(tmp_path)
    flats = [h for h in hs if h["IMAGETYP"] == "Flat Field"]
    darks = [h for h in hs if h["IMAGETYP"] == "Dark Flat"]
    by_filter = {f: [h for h in flats if h["FILTER"] == f] for f in ("L", "R", "Ha")}
    assert {f: len(v) for f, v in by_filter.items()} == {"L": 4, "R": 4, "Ha": 4}
    for h in flats:
        assert 0.45 * 65535 - 500 <= h["LEVEL"] <= 0.55 * 65535 - 500
        assert "PANELBRT" in h and h["BITDEPTH"] == 16
    exposures = {round(h["EXPTIME"], 4) for h in flats}
    dark_exposures = [round(h["EXPTIME"], 4) for h in darks]
    assert set(dark_exposures) == exposures
    assert all(dark_exposures.count(t) == 3 for t in exposures)
    # the exposure log has every field, one line per exposure, across both runs
    entries = list(read_log(tmp_path / "log.jsonl"))
    for e in entries:
        for key in ("time", "kind", "filter", "brightness", "exposure", "level", "target",
                    "accepted", "reason"):
            assert key in e
    kept = [e for e in entries if e["accepted"] and e["kind"] in ("search", "flat")]
    assert len(kept) == 12
    assert len([e for e in entries if e["kind"] == "darkflat"]) == len(darks)


def test_second_run_takes_nothing_and_trained_settings_hit_first_time(tmp_path):
    spec = rig_spec()
    run(tmp_path, spec)
    before = len(headers(tmp_path))
    result, _ = run(tmp_path, spec)
    assert result.frames == [] and len(headers(tmp_path)) == before
    # a new night (fresh folder) with the same store: one exposure per filter finds the level
    (tmp_path / "log.jsonl").unlink()
    result, _ = run(tmp_path, spec, FitsFolderSink(tmp_path / "night2"))
    searches = [e for e in read_log(tmp_path / "log.jsonl") if e["kind"] == "search"]
    assert len(searches) == 3 and all(e["accepted"] for e in searches)


def test_too_dim_panel_fails_with_the_limits_and_leaves_light_off(tmp_path):
    spec = rig_spec(panel="max_flux_e_per_s = 200.0")
    result, (panel_on, cover) = run(tmp_path, spec)
    assert result.error is not None and "too dim" in str(result.error)
    assert "60 s" in str(result.error)
    assert not panel_on and cover == "open"


def test_on_off_panel_auto_exposure(tmp_path):
    spec = rig_spec(panel="dimmable = false")
    result, _ = run(tmp_path, spec, sequence="relay_panel_flats.py")
    assert result.error is None, result.error
    flats = [h for h in headers(tmp_path) if h["IMAGETYP"] == "Flat Field"]
    assert len(flats) == 12
    for h in flats:
        assert 0.4 * 0.85 * 65535 - 500 <= h["LEVEL"] <= 0.4 * 1.15 * 65535 - 500


def test_stacked_readout_mode_target_follows_the_mode(tmp_path):
    # 12-bit raw below 2 s, 16-bit stacked (bias x16) above: Ha can't reach the 12-bit
    # target below 2 s, so it ends in the stacked mode with its own bias and full scale
    spec = rig_spec(camera="stack_threshold_s = 2.0", ha=0.015)
    result, _ = run(tmp_path, spec)
    assert result.error is None, result.error
    flats = [h for h in headers(tmp_path) if h["IMAGETYP"] == "Flat Field"]
    modes = {h["FILTER"]: (h["READOUTM"], h["BITDEPTH"]) for h in flats}
    assert modes["Ha"] == ("stack16", 16)
    for h in flats:
        full = 65535 if h["READOUTM"] == "stack16" else 4095
        raw = h["LEVEL"] + (500 * 16 if h["READOUTM"] == "stack16" else 500)
        assert 0.45 * full <= raw <= 0.55 * full


def test_a_camera_that_stops_answering_leaves_the_rig_safe(tmp_path):
    spec = rig_spec(camera="hang = true")
    result, (panel_on, cover) = run(tmp_path, spec)
    assert result.error is not None and "timed out" in str(result.error)
    assert "Sim Camera" in str(result.error)
    assert not panel_on and cover == "open"
    assert result.cleanup_problems == []


def test_rig_without_wheel_or_cover_takes_the_one_filter(tmp_path):
    spec = parse_rig('[clock]\nstart = "2026-03-20T15:00:00+00:00"\n[camera]\ndriver = "sim"\n'
                     'width = 128\nheight = 96\n[panel]\ndriver = "sim"\n', "bare rig")
    with open_rig(spec) as rig:
        result = run_sequence(SEQUENCES / "panel_flats.py", rig,
                              FitsFolderSink(tmp_path / "frames"), log_path=tmp_path / "log.jsonl",
                              store=TrainedStore(tmp_path / "t.sqlite"), overrides=SETTINGS)
        assert not rig.panel.is_on()
    assert result.error is None, result.error
    hs = headers(tmp_path)
    assert [h["IMAGETYP"] for h in hs].count("Flat Field") == 4
    assert all("FILTER" not in h for h in hs)


def test_dark_flats_follow_each_flat_configuration(tmp_path):
    """Flats at binning 1x1 for L and 2x2 for R: each gets dark flats in its own binning."""
    seq = tmp_path / "two_binnings.py"
    seq.write_text('''
from indical.frame import Binning
from indical.sequence import Target

def run(obs):
    obs.close_cover()
    obs.panel_flats("L", count=2, target=Target.fraction(0.5))
    obs.camera.set_binning(Binning(2, 2))
    obs.panel_flats("R", count=2, target=Target.fraction(0.5))
    obs.dark_flats(count=2)
''')
    with open_rig(rig_spec()) as rig:
        result = run_sequence(seq, rig, FitsFolderSink(tmp_path / "frames"),
                              log_path=tmp_path / "log.jsonl",
                              store=TrainedStore(tmp_path / "t.sqlite"))
    assert result.error is None, result.error
    hs = headers(tmp_path)
    flats = {(h["FILTER"], h["XBINNING"], round(h["EXPTIME"], 3))
             for h in hs if h["IMAGETYP"] == "Flat Field"}
    darks = [(h["XBINNING"], round(h["EXPTIME"], 3)) for h in hs if h["IMAGETYP"] == "Dark Flat"]
    assert {(b, t) for _, b, t in flats} == set(darks)
    assert len(darks) == 4


def test_left_justified_12_bit_camera_reporting_16_bits(tmp_path):
    spec = rig_spec(camera="bit_depth = 12\nleft_justify = true\nbias_adu = 100")
    result, _ = run(tmp_path, spec)
    assert result.error is None, result.error
    flats = [h for h in headers(tmp_path) if h["IMAGETYP"] == "Flat Field"]
    assert len(flats) == 12
    for h in flats:
        assert h["BITDEPTH"] == 12                      # what the data really has
        raw = h["LEVEL"] + 100 * 16                      # bias shifted up with the data
        assert 0.45 * 65520 <= raw <= 0.55 * 65520


def test_flickering_panel_raises_the_exposure_floor(tmp_path):
    """A PWM panel bands exposures spanning few flicker periods: the search sees the bands,
    moves to exposures ten times longer, and no flat it keeps is banded."""
    spec = rig_spec(panel="pwm_hz = 100.0\nrow_time_s = 0.0001")
    result, _ = run(tmp_path, spec, EXPOSURE_S=0.1)
    assert result.error is None, result.error
    flats = [h for h in headers(tmp_path) if h["IMAGETYP"] == "Flat Field"]
    assert len(flats) == 12 and all(h["EXPTIME"] >= 1.0 for h in flats)
    reasons = [e["reason"] for e in read_log(tmp_path / "log.jsonl")]
    assert any("banded" in r for r in reasons)


def test_flicker_with_no_room_to_lengthen_is_refused_by_name(tmp_path):
    spec = parse_rig(RIG.format(camera="", panel="pwm_hz = 100.0\nrow_time_s = 0.0001", ha=0.05)
                     + "[flats]\nmax_exposure_s = 0.5\n", "test rig")
    result, (panel_on, _) = run(tmp_path, spec, EXPOSURE_S=0.1)
    assert result.error is not None and "flickers" in str(result.error)
    assert "[flats] min_exposure_s" in str(result.error) and not panel_on


def test_a_relay_beside_the_panel_is_left_alone(tmp_path):
    """With a panel in the rig, the relay is something else (a dew heater): flats never cut it."""
    spec = parse_rig(RIG.format(camera="", panel="", ha=0.05) + '[relay]\ndriver = "sim"\n',
                     "test rig")
    with open_rig(spec) as rig:
        rig.relay.on()
        run_sequence(SEQUENCES / "panel_flats.py", rig,
                     FitsFolderSink(tmp_path / "frames", longitude_deg=5.0),
                     log_path=tmp_path / "log.jsonl", store=TrainedStore(tmp_path / "t.sqlite"),
                     overrides={**SETTINGS, "FILTERS": ["L"]})
        assert rig.relay.is_on()
        assert not rig.panel.is_on()


def test_panel_too_bright_at_the_edge_of_its_dark_range_is_refused_as_too_bright(tmp_path):
    """A 4096-step panel dark up to 319 whose least light (step 320) saturates even at the
    shortest exposure: pinning that edge to the step takes more frames than the cap, and the
    refusal still says "too bright", with the steps it saw, and the light goes off."""
    camera = ("bit_depth = 14\nbias_adu = 500\nfull_well_e = 200000\nmin_exposure_s = 0.001\n"
              "[flats]\nmin_exposure_s = 0.05\nmax_exposure_s = 10\nmax_search_exposures = 10")
    response = [[0, 0], [319, 0], [320, 0.032], [524, 0.0329], [897, 0.0427], [1379, 0.0778],
                [1951, 0.161], [2599, 0.32], [3316, 0.588], [4095, 1.0]]
    panel = f"max_brightness = 4095\nresponse = {response}\nmax_flux_e_per_s = 1.14e7"
    result, (panel_on, _) = run(tmp_path, rig_spec(camera, panel), EXPOSURE_S=1.0)
    refusal = getattr(result.error, "refusal", None)
    assert refusal is not None and refusal.kind.value == "too bright", result.error
    assert "shortest allowed exposure 0.05 s" in str(result.error)
    searches = [e for e in read_log(tmp_path / "log.jsonl") if e["kind"] == "search"]
    assert 0 < len(searches) <= 10 and not any(e["accepted"] for e in searches)
    lit = [e["brightness"] for e in searches if e["level"] > 5]
    unlit = [e["brightness"] for e in searches if e["level"] <= 5]
    assert min(lit) > 319 and max(unlit) <= 319
    assert not panel_on


def test_on_off_panel_exposure_range_bounds_the_search(tmp_path):
    """EXPOSURE_RANGE_S on an on/off panel: flats inside it, or a refusal naming it."""
    spec = rig_spec(panel="dimmable = false")
    result, _ = run(tmp_path / "wide", spec, sequence="relay_panel_flats.py",
                    EXPOSURE_RANGE_S=(0.001, 30.0))
    assert result.error is None, result.error
    used = {h["EXPTIME"] for h in headers(tmp_path / "wide") if h["IMAGETYP"] == "Flat Field"}
    # the L filter needs far less than a second: a range above that is refused, and says so
    needed = min(used)
    result, (panel_on, _) = run(tmp_path / "narrow", spec, sequence="relay_panel_flats.py",
                                EXPOSURE_RANGE_S=(needed * 20, needed * 40))
    assert result.error is not None and "too bright" in str(result.error)
    assert f"{needed * 20:g} s" in str(result.error)
    assert not panel_on


def test_panel_flats_trim_within_the_exposure_range(tmp_path):
    """A dimmable panel bright enough for every filter: a filter's flats are within
    EXPOSURE_RANGE_S unless its search needed more than WIDEN_AFTER frames or measured a
    saturated step short (then the rig's limits are the window), and no filter needs more
    than five frames."""
    from indical.sequence.brightness import WIDEN_AFTER
    result, _ = run(tmp_path, rig_spec(panel="max_flux_e_per_s = 800000.0"), EXPOSURE_S=1.0,
                    EXPOSURE_RANGE_S=(0.8, 1.25))
    assert result.error is None, result.error
    log = list(read_log(tmp_path / "log.jsonl"))
    for name in ("L", "R", "Ha"):
        searches = [e for e in log if e["kind"] == "search" and e["filter"] == name]
        flats = [e for e in log if e["kind"] == "flat" and e["filter"] == name]
        assert flats and len(searches) <= 5, (name, searches)
        short = any(e["exposure"] < 1.0 for e in searches[:-1])
        if len(searches) <= WIDEN_AFTER and not short:
            assert all(0.8 <= e["exposure"] <= 1.25 for e in flats + searches[-1:]), name


def test_on_off_panel_with_one_exposure_asked_for(tmp_path):
    """EXPOSURE_RANGE_S = (t, t) on an on/off panel: that exposure or a refusal naming it."""
    spec = rig_spec(panel="dimmable = false")
    result, _ = run(tmp_path, spec, sequence="relay_panel_flats.py", EXPOSURE_RANGE_S=(5.0, 5.0))
    assert result.error is not None and "too bright" in str(result.error)
    assert "5 s" in str(result.error)
    result, _ = run(tmp_path / "out", spec, sequence="relay_panel_flats.py",
                    EXPOSURE_RANGE_S=(5.0, 1.0))
    assert result.error is not None and "(EXPOSURE_RANGE_S) 5-1 s" in str(result.error)
