"""Whole twilight-flats runs on the in-process simulated observatory: dusk and dawn, spoiled
frames set aside, interrupted and resumed, the mount's flat spot and dithers, no site."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.io import fits

from indical.errors import RigError
from indical.rig import open_rig, parse_rig
from indical.sequence import Session
from indical.sequence.engine import run_sequence
from indical.level import Target
from indical.sequence.log import ExposureLog, read_log
from indical.sequence.trained import TrainedStore
from indical.sinks import FitsFolderSink
from indical.sequence.twilight import TwilightOptions, take_twilight_flats

SEQUENCES = Path(__file__).resolve().parents[2] / "sequences"

RIG = """
[site]
latitude = {lat}
longitude = 5.0
[clock]
start = "{start}"
[camera]
driver = "sim"
width = 192
height = 144
[filter_wheel]
driver = "sim"
names = ["L", "R", "Ha"]
throughput = [1.0, 0.45, 0.05]
[cover]
driver = "sim"
[sky]
star_flux_e_per_s = [100.0, 20000.0]
cloud_probability = {clouds}
trail_probability = {trails}
{mount}
"""

SETTINGS = {"FLATS_PER_FILTER": 6, "DARKS_COUNT": 2}


def spec(*, start="2026-03-20T17:30:00+00:00", lat=52.0, clouds=0.0, trails=0.0, mount=False,
         site=True):
    text = RIG.format(start=start, lat=lat, clouds=clouds, trails=trails,
                      mount='[mount]\ndriver = "sim"' if mount else "")
    if not site:
        text = text.replace("[site]\nlatitude = 52.0\nlongitude = 5.0\n", "")
    return parse_rig(text, "test rig")


class StopAfter:
    """A sink that raises KeyboardInterrupt (as Ctrl-C would) after n kept frames."""

    def __init__(self, inner, n):
        self.inner, self.n, self.kept = inner, n, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def count(self, query):
        return self.inner.count(query)

    def write(self, frame):
        if self.kept >= self.n:
            raise KeyboardInterrupt
        self.kept += 1
        return self.inner.write(frame)


def run(tmp_path, rig_spec, sink=None, **extra):
    with open_rig(rig_spec) as rig:
        sink = sink or FitsFolderSink(tmp_path / "frames", longitude_deg=5.0)
        result = run_sequence(SEQUENCES / "twilight_flats.py", rig, sink,
                              log_path=tmp_path / "log.jsonl",
                              store=TrainedStore(tmp_path / "trained.sqlite"),
                              overrides={**SETTINGS, **extra})
    return result


def flats(tmp_path, folder="frames"):
    out = {}
    for p in sorted((tmp_path / folder).rglob("flat_*.fits")):
        if "rejected" not in p.parts:
            h = fits.getheader(p)
            out.setdefault(h["FILTER"], []).append(h)
    return out


def twilight_entries(tmp_path):
    return [e for e in read_log(tmp_path / "log.jsonl") if e["kind"] == "twilight"]


@pytest.mark.parametrize("twilight,start", [("dusk", "2026-03-20T17:30:00+00:00"),
                                            ("dawn", "2026-03-21T03:30:00+00:00")])
def test_a_whole_twilight_in_seconds(tmp_path, twilight, start):
    result = run(tmp_path, spec(start=start), TWILIGHT=twilight)
    assert result.error is None and not result.interrupted, result.error
    got = flats(tmp_path)
    assert {f: len(v) for f, v in got.items()} == {"L": 6, "R": 6, "Ha": 6}
    target = 0.4 * 65535 - 500
    for hs in got.values():
        for h in hs:
            assert abs(h["LEVEL"] / target - 1) <= 0.1
            assert -10.5 <= h["SUNALT"] <= -2 and h["TWILIGHT"] == twilight
    entries = twilight_entries(tmp_path)
    # after the first night's probes, the ramp lands every frame in the band
    measured = [e for e in entries if e["extra"].get("predicted") is not None]
    in_band = [e for e in measured if abs(e["level"] / e["target"] - 1) <= 0.1]
    assert len(in_band) / len(measured) >= 0.95
    # a second twilight of the same kind starts from what was learned: least sensitive filter
    # first at dusk, most sensitive first at dawn, and no probes
    (tmp_path / "log.jsonl").unlink()
    run(tmp_path, spec(start=start), TWILIGHT=twilight, FLATS_PER_FILTER=12)
    entries = twilight_entries(tmp_path)
    order = list(dict.fromkeys(e["filter"] for e in entries))
    assert order == (["Ha", "R", "L"] if twilight == "dusk" else ["L", "R", "Ha"])
    assert all(e["extra"].get("predicted") is not None for e in entries)
    assert sum(abs(e["level"] / e["target"] - 1) <= 0.1 for e in entries) / len(entries) >= 0.95
    # bias frames for the flats, taken with the cover closed
    assert len(list((tmp_path / "frames").rglob("bias_*.fits"))) == 2


def test_spoiled_frames_are_set_aside_with_the_reason(tmp_path):
    rig_spec = spec(clouds=0.25, trails=0.25)
    spoilers: list[tuple[str, list[str]]] = []
    with open_rig(rig_spec) as rig:
        camera = rig.camera
        world = camera.world
        original = camera.expose

        def expose(*args, **kwargs):
            frame = original(*args, **kwargs)
            spoilers.append((frame.meta.start.isoformat(), list(world.last_spoilers)))
            return frame
        camera.expose = expose
        sink = FitsFolderSink(tmp_path / "frames", longitude_deg=5.0)
        obs = Session(rig, sink, ExposureLog(None), store=None)
        result = take_twilight_flats(obs, ["L", "R"], count=8, target=Target.fraction(0.4),
                                     options=TwilightOptions(sky_memory=tmp_path / "sky.json"))
    # probes only measure the sky (never saved): only frames aimed at the target count here
    from indical.twilight.window import from_unix
    probes = {from_unix(p.start_unix).isoformat()[:19] for p in result.probes}
    spoiled = {when: s for when, s in spoilers if s and when[:19] not in probes}
    assert len(spoiled) >= 4
    rejected = list((tmp_path / "frames").rglob("rejected/*.fits"))
    reasons = {fits.getheader(p)["DATE-OBS"][:19]: fits.getheader(p)["REJECTED"]
               for p in rejected}
    # every frame with a trail is set aside as a trail (but the probes of a saturated sky,
    # where nothing shows); most clouds are caught
    for when, s in spoiled.items():
        if "trail" in s and reasons.get(when[:19]) != "saturated; level above band":
            assert "trail" in reasons.get(when[:19], ""), (when, s, reasons)
    clouds = [when for when, s in spoiled.items() if s == ["cloud"]]
    caught = [w for w in clouds if "clouds" in reasons.get(w[:19], "")]
    assert len(caught) >= 0.6 * len(clouds)
    # the rejected frames don't count: each filter still has its 8 kept flats
    assert result.accepted("L") == 8 and result.accepted("R") == 8
    assert sink.count(obs.query(__import__("indical").frame.FrameType.FLAT, filter="L")) == 8


def test_interrupted_and_resumed(tmp_path):
    rig_spec = spec()
    inner = FitsFolderSink(tmp_path / "frames", longitude_deg=5.0)
    result = run(tmp_path, rig_spec, StopAfter(inner, 8))
    assert result.interrupted and result.error is None
    assert sum(len(v) for v in flats(tmp_path).values()) == 8
    result = run(tmp_path, rig_spec)
    assert result.error is None and not result.interrupted, result.error
    assert {f: len(v) for f, v in flats(tmp_path).items()} == {"L": 6, "R": 6, "Ha": 6}
    # the resumed run knew the sky: its first frame was predicted, not probed
    second = twilight_entries(tmp_path)
    resumed = [e for e in second if e["time"] > "2026-03-20T18:00"][-12:]
    assert resumed[0]["extra"].get("predicted") is not None


def test_mount_points_at_the_flat_spot_and_dithers(tmp_path):
    rig_spec = spec(mount=True)
    with open_rig(rig_spec) as rig:
        sink = FitsFolderSink(tmp_path / "frames", longitude_deg=5.0)
        obs = Session(rig, sink, ExposureLog(None), store=None)
        offsets = []
        original = rig.mount.offset
        rig.mount.offset = lambda e, n: (offsets.append((e, n)), original(e, n))
        take_twilight_flats(obs, ["L"], count=5, target=Target.fraction(0.4),
                            options=TwilightOptions(sky_memory=tmp_path / "sky.json"))
        alt, az = rig.mount.st.pointing_altaz
        assert alt == 75.0 and 60 < az < 120      # sun sets in the west: point east
        assert len(offsets) >= 5 and len(set(offsets)) == len(offsets)
        take_twilight_flats(obs, ["R"], count=3, target=Target.fraction(0.4),
                            options=TwilightOptions(sky_memory=tmp_path / "sky.json",
                                                    stop_tracking=True))
        assert rig.mount.st.tracking is True     # restored


def test_no_site_names_the_table(tmp_path):
    with open_rig(spec(site=False)) as rig:
        obs = Session(rig, FitsFolderSink(tmp_path), ExposureLog(None), store=None)
        with pytest.raises(RigError, match=r"\[site\]"):
            take_twilight_flats(obs, ["L"], count=1, target=Target.fraction(0.4))


def test_polar_summer_says_so_and_takes_nothing(tmp_path):
    said = []
    with open_rig(spec(lat=70.0, start="2026-06-21T12:00:00+00:00")) as rig:
        obs = Session(rig, FitsFolderSink(tmp_path), ExposureLog(None), store=None,
                      say=said.append)
        result = take_twilight_flats(obs, ["L"], count=3, target=Target.fraction(0.4),
                                     options=TwilightOptions(sky_memory=tmp_path / "sky.json"))
    assert result.frames == [] and result.twilight is None
    assert any("does not pass" in m for m in said)


def test_rejected_frames_are_kept_but_never_counted_or_ingested(tmp_path):
    import numpy as np

    from indical.calib.ingest import find_fits, inspect_file
    from indical.errors import FitsError
    from indical.frame import Frame, FrameMeta, FrameType
    from indical.sinks import FrameQuery

    sink = FitsFolderSink(tmp_path, longitude_deg=5.0)
    meta = FrameMeta(FrameType.FLAT, 2.0, camera="cam", filter="L",
                     start=__import__("datetime").datetime(2026, 3, 20, 18, 30,
                                                           tzinfo=__import__("datetime").timezone.utc))
    frame = Frame(np.full((8, 8), 1000, dtype=np.uint16), meta)
    kept = sink.write(frame)
    bad = sink.write_rejected(frame, "clouds or gradient")
    assert bad.parent.name == "rejected" and fits.getheader(bad)["REJECTED"] == "clouds or gradient"
    assert sink.count(FrameQuery(FrameType.FLAT, filter="L")) == 1
    assert list(find_fits([tmp_path])) == [kept]
    with pytest.raises(FitsError, match="rejected when taken"):
        inspect_file(bad)
    moved = sink.reject(kept, "differs from stack")
    assert not kept.exists() and moved.parent.name == "rejected"
    assert sink.count(FrameQuery(FrameType.FLAT, filter="L")) == 0
    assert fits.getheader(moved)["REJECTED"] == "differs from stack"


def test_demo_dusk(tmp_path):
    from indical.rig import load_rig
    from indical.demo.twilight import run_twilight_demo
    result, summary = run_twilight_demo(load_rig(None), tmp_path)
    assert result.error is None, result.error
    assert {s.filter: s.kept for s in summary} == {"L": 3, "R": 3, "Ha": 3}
    for s in summary:
        assert all(abs(v / s.target_adu - 1) <= 0.1 for v in s.levels_adu)


def test_sky_memory_round_trip_and_a_broken_file(tmp_path):
    from indical.errors import IndicalError
    from indical.twilight.controller import Sensitivities
    from indical.sequence.twilight import SkyMemory
    memory = SkyMemory(tmp_path / "sky.json")
    assert memory.load("cam") == Sensitivities()
    known = Sensitivities({"L": 12.0, "Ha": 9.0}, 11.5, 0.9, "L")
    memory.save("cam", known)
    memory.save("other", Sensitivities({"R": 1.0}))
    assert memory.load("cam") == known
    (tmp_path / "sky.json").write_text("{not json")
    with pytest.raises(IndicalError, match=r"sky\.json.*delete it"):
        memory.load("cam")


def test_bad_settings_are_named(tmp_path):
    result = run(tmp_path, spec(), TWILIGHT="noon")
    assert "twilight must be 'dusk', 'dawn' or 'next'" in str(result.error)
    result = run(tmp_path, spec(), SUN_BRIGHTEST_DEG=-12.0)
    assert "darkest" in str(result.error)
    assert not list((tmp_path / "frames").rglob("flat_*.fits"))


@pytest.mark.parametrize("twilight,start", [("dusk", "2026-03-20T17:30:00+00:00"),
                                            ("dawn", "2026-03-21T03:30:00+00:00")])
def test_a_first_night_probes_filters_whose_names_say_nothing(tmp_path, twilight, start):
    """Slots named "Slot 1"-"Slot 3" (the rig's L, R and Ha: no prior from the names): one
    short probe per filter as the sky enters the window orders them, the least sensitive first
    at dusk and last at dawn; the probes are never flats. Without the probes the run starts
    with the given first filter."""
    text = RIG.format(start=start, lat=52.0, clouds=0.0, trails=0.0, mount="").replace(
        'names = ["L", "R", "Ha"]', 'names = ["Slot 1", "Slot 2", "Slot 3"]')
    slots = ["Slot 1", "Slot 2", "Slot 3"]
    orders = {}
    for probe in (True, False):
        with open_rig(parse_rig(text, "test rig")) as rig:
            obs = Session(rig, FitsFolderSink(tmp_path / f"frames-{probe}", longitude_deg=5.0),
                          ExposureLog(None))
            result = take_twilight_flats(
                obs, list(slots), count=3, target=Target.fraction(0.4, 0.1),
                options=TwilightOptions(twilight=twilight, bias_adu=500.0,
                                        sky_memory=tmp_path / f"sky-{probe}.json",
                                        probe_filters=probe))
        orders[probe] = list(dict.fromkeys(f.filter for f in result.frames))
        if probe:
            assert len(result.probes) >= 3
            assert {p.filter for p in result.probes} == set(slots)
            assert not any(p.accepted for p in result.probes)
            assert result.accepted() == 9
            assert sum(f.in_band for f in result.frames) / len(result.frames) >= 0.9
        else:
            assert not result.probes
    assert orders[True] == (slots[::-1] if twilight == "dusk" else slots)
    assert orders[False][0] == "Slot 1"      # the given order's first, whatever the twilight
