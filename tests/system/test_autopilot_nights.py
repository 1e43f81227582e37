"""`indical autopilot` over simulated nights on the in-process observatory (simulated clock at
speed 0): the plan of the issue for seven nights with clouds on nights 2 and 5, and a restart
after `kill -9` in the middle of a night."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from indical.autopilot.pilot import Autopilot, Paths
from indical.autopilot.plan import parse_plan
from indical.calib.ingest import inspect_file
from indical.calib.library import CalibrationLibrary
from indical.fits.io import write_frame
from indical.frame import FrameType
from indical.rig import open_rig, parse_rig

RIG = """
[site]
latitude = 52.0
longitude = 5.0
elevation = 10.0

[clock]
start = "2026-03-20T10:00:00+00:00"
speed = 0

[camera]
driver = "sim"
width = 320
height = 240

[filter_wheel]
driver = "sim"
names = ["L", "R", "G", "B"]
throughput = [1.0, 0.45, 0.5, 0.4]

[panel]
driver = "sim"

[cover]
driver = "sim"

[weather]
driver = "sim"
cloudy_nights = CLOUDY
"""

PLAN = """
[[task]]
name = "sky flats"
sequence = "twilight_flats.py"
when = "dusk"
only_if = ["needed", "clear"]
set = { FLATS_PER_FILTER = 10 }

[[task]]
name = "panel flats"
sequence = "panel_flats.py"
when = "dawn"
only_if = ["needed"]

[[task]]
name = "darks"
sequence = "dark_library.py"
when = "night"
only_if = ["cloudy"]

[[task]]
name = "calibrate"
calibrate = "lights"
when = "arrival"
"""

NIGHTS = [f"2026-03-{d}" for d in range(20, 27)]
FILTERS = ["L", "R", "G", "B"]


def _lights_in_library(spec, db: Path, folder: Path) -> None:
    """Two 30 s lights in L at -10 C, taken before the first night: the darks they lack are
    what the dark library takes on the first cloudy night."""
    with open_rig(spec) as rig, CalibrationLibrary(db) as lib:
        cam = rig.camera
        rig.cover.close()
        cam.set_temperature(-10.0)
        cam.wait_for_temperature(clock=rig.clock)
        for i in range(2):
            frame = cam.expose(30.0, FrameType.LIGHT)
            lib.add_frame(inspect_file(write_frame(frame, folder / f"light_{i}.fits")))


def _flats_per_night(db: Path | str) -> dict[str, Counter]:
    from indical.sinks import night_of
    out: dict[str, Counter] = {}
    with CalibrationLibrary(db) as lib:
        for rec in lib.frames(frame_type=FrameType.FLAT):
            out.setdefault(night_of(rec.meta.start, 5.0), Counter())[rec.meta.filter] += 1
    return out


def test_seven_nights_with_clouds_on_nights_2_and_5(tmp_path):
    spec = parse_rig(RIG.replace("CLOUDY", "[2, 5]"), "test rig")
    plan = parse_plan(PLAN, "test plan", tmp_path)
    paths = Paths(tmp_path / "out", store=tmp_path / "trained.sqlite")
    _lights_in_library(spec, paths.library_db, tmp_path / "old-lights")
    started = time.monotonic()
    with Autopilot(plan, spec, paths) as pilot:
        tally = pilot.run(nights=7)
    wall_s = time.monotonic() - started
    print(f"seven simulated nights: {wall_s:.1f} s of wall time")

    journal = [json.loads(line) for line in paths.journal_file.read_text().splitlines()]
    assert [(e["night"], e["task"]) for e in journal] == [(e.night, e.task) for e in tally.entries]
    decided = {(e["night"], e["task"]): e for e in journal}
    assert len(decided) == len(journal) == 21, "one decision per task and night, none twice"
    for e in journal:
        assert set(e) == {"night", "task", "outcome", "reason", "start", "end", "frames"}
        assert e["start"] <= e["end"]
    cloudy = {NIGHTS[1], NIGHTS[4]}
    for night in NIGHTS:
        sky, panel, darks = (decided[(night, t)] for t in ("sky flats", "panel flats", "darks"))
        if night in cloudy:
            assert sky["outcome"] == "skipped" and "not clear" in sky["reason"], sky
            assert panel["outcome"] == "done" and panel["frames"] > 0, panel
            assert darks["outcome"] == "done", darks
        else:
            assert sky["outcome"] == "done" and sky["frames"] >= 40, sky
            assert "clear" in sky["reason"] and "needed" in sky["reason"]
            assert panel["outcome"] == "skipped" and "not needed" in panel["reason"], panel
            assert darks["outcome"] == "skipped" and "not cloudy" in darks["reason"], darks
    # the first cloudy night takes the darks the lights lack; the second finds none missing
    assert decided[(NIGHTS[1], "darks")]["frames"] == 20      # 10 darks of 30 s + 10 bias
    assert decided[(NIGHTS[4], "darks")]["frames"] == 0

    flats = _flats_per_night(paths.library_db)
    assert sorted(flats) == NIGHTS
    for night in NIGHTS:
        want = 20 if night in cloudy else 10      # panel flats' count, or the plan's set
        assert flats[night] == Counter({f: want for f in FILTERS}), (night, flats[night])
    with CalibrationLibrary(paths.library_db) as lib:
        masters = [m for m in lib.masters() if m.frame_type is FrameType.FLAT]
        assert {m.filter for m in masters} == set(FILTERS)


def _run_cli(tmp_path: Path, rig: Path, plan: Path, nights: int, out: Path) -> subprocess.Popen:
    with open(out, "w") as fh:   # the child has its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-c", "from indical.cli import main; main()", "autopilot",
             str(plan), "--rig", str(rig), "-o", str(tmp_path / "out"), "--store",
             str(tmp_path / "trained.sqlite"), "--nights", str(nights)],
            stdout=fh, stderr=subprocess.STDOUT, cwd=tmp_path)


def test_kill_9_in_the_middle_of_a_night_then_restart(tmp_path):
    """A cloudy first night: the panel flats at dawn are killed half way (SIGKILL: no clean-up
    at all), the autopilot is started again: nothing is taken twice, nothing is lost."""
    rig = tmp_path / "rig.toml"
    rig.write_text(RIG.replace("CLOUDY", "[1]"))
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    (tmp_path / "lights").mkdir()
    log = tmp_path / "out" / "logs" / f"{NIGHTS[0]}-panel-flats.jsonl"
    first = _run_cli(tmp_path, rig, plan, 1, tmp_path / "first.txt")
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            flats = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
            if sum(1 for f in flats if f["kind"] == "flat" and f.get("accepted")) >= 30:
                break
            assert first.poll() is None, (tmp_path / "first.txt").read_text()
            time.sleep(0.05)
        else:
            raise AssertionError("the panel flats never got half way")
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    journal = tmp_path / "out" / "journal.jsonl"
    before = [json.loads(x)["task"] for x in journal.read_text().splitlines()]
    assert before == ["sky flats", "darks"]          # the panel flats never finished

    second = _run_cli(tmp_path, rig, plan, 1, tmp_path / "second.txt")
    assert second.wait(timeout=300) == 0, (tmp_path / "second.txt").read_text()
    entries = [json.loads(x) for x in journal.read_text().splitlines()]
    assert [(e["night"], e["task"]) for e in entries] == [
        (NIGHTS[0], "sky flats"), (NIGHTS[0], "darks"), (NIGHTS[0], "panel flats")]
    panel = entries[-1]
    assert panel["outcome"] == "done" and "resumed after an interruption" in panel["reason"]

    db = tmp_path / "out" / "library.sqlite"
    assert _flats_per_night(db)[NIGHTS[0]] == Counter({f: 20 for f in FILTERS})
    with CalibrationLibrary(db) as lib:
        indexed = {Path(r.path).resolve() for r in lib.frames()}
        darkflats = Counter(round(r.meta.exposure_s, 3)
                            for r in lib.frames(frame_type=FrameType.DARKFLAT))
    on_disk = {p.resolve() for p in (tmp_path / "out" / "frames").rglob("*.fits")
               if "rejected" not in p.parts}
    assert on_disk == indexed                         # nothing written and then forgotten
    assert darkflats and set(darkflats.values()) == {20}   # one set per exposure, not two


def test_one_night_on_a_postgresql_library(postgres, tmp_path):
    """`indical autopilot --library postgresql://...`: one cloudy night (darks, then panel
    flats at dawn, two filters) with the frames and masters in a real PostgreSQL library and
    its files under INDICAL_LIBRARY_ROOT, while the autopilot's own state is a local SQLite file
    in its output folder; run again, the finished night is not run twice."""
    url = postgres.new_database()
    rig = tmp_path / "rig.toml"
    rig.write_text(RIG.replace("CLOUDY", "[1]").replace(
        'names = ["L", "R", "G", "B"]\nthroughput = [1.0, 0.45, 0.5, 0.4]',
        'names = ["L", "R"]\nthroughput = [1.0, 0.45]'))
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN.split('[[task]]\nname = "calibrate"')[0])
    root = tmp_path / "shared-library"
    env = {**os.environ, "INDICAL_LIBRARY_ROOT": str(root)}
    argv = [sys.executable, "-c", "from indical.cli import main; main()", "autopilot", str(plan),
            "--rig", str(rig), "-o", str(tmp_path / "out"), "--library", url, "--store",
            str(tmp_path / "trained.sqlite"), "--nights", "1"]
    runs = [subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                           env=env, stdin=subprocess.DEVNULL) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stdout + run.stderr
    journal = [json.loads(x) for x in (tmp_path / "out" / "journal.jsonl").read_text()
               .splitlines()]
    decided = {e["task"]: e for e in journal}
    assert len(journal) == len(decided) == 3, journal          # the second run took nothing
    assert decided["sky flats"]["outcome"] == "skipped"
    assert decided["darks"]["outcome"] == "done"
    assert decided["panel flats"]["outcome"] == "done" and decided["panel flats"]["frames"] > 0
    assert "0 decision(s)" in runs[1].stdout

    assert (tmp_path / "out" / "autopilot.sqlite").is_file()    # the state: local, in --out
    assert not (tmp_path / "out" / "library.sqlite").exists()   # the library: PostgreSQL
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "out", "plan.toml", "rig.toml", "shared-library", "trained.sqlite"]
    assert _flats_per_night(url)[NIGHTS[0]] == Counter({"L": 20, "R": 20})
    with CalibrationLibrary(url) as lib:
        indexed = {Path(r.path) for r in lib.frames()}
        assert {m.filter for m in lib.masters() if m.frame_type is FrameType.FLAT} == {"L", "R"}
    assert indexed and all(root / "frames" in p.parents for p in indexed)
    assert indexed == {p for p in (root / "frames").rglob("*.fits") if "rejected" not in p.parts}
