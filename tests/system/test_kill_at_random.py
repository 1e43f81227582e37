"""SIGKILL at random moments (seeded, so a failure can be replayed) while indical ingests frames,
builds masters (for the library and with `indical master -o`) and calibrates lights. After every
kill the library's database passes SQLite's integrity and foreign-key checks and no row points
at a missing file; after `indical library sweep` no temporary file is left anywhere, and the
library finishes the work."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from click.testing import CliRunner

from indical.calib.library import CalibrationLibrary
from indical.cli import main
from indical.frame import FrameType
from indical.testing.frames import write_synthetic

SEED = 20261202
KILLS = 36
SHAPE = (400, 600)

# Each worker prints "started" and then works until it is killed.
_INGEST = textwrap.dedent("""
    import sys
    from pathlib import Path
    from indical.calib.autobuild import AutoBuildPolicy, build_group, due_groups
    from indical.calib.library import CalibrationLibrary
    from indical.frame import FrameType
    from indical.testing.frames import write_synthetic
    db, tag = Path(sys.argv[1]), sys.argv[2]
    policy = AutoBuildPolicy(min_frames_for_master=3)
    with CalibrationLibrary(db) as lib:
        print("started", flush=True)
        n = 0
        while True:   # new frames arrive (written as the sink does), are indexed, masters built
            night = lib.frames_dir / f"night-{tag}-{n}"
            for i in range(3):
                write_synthetic(night / f"flat_{i}.fits", FrameType.FLAT, level_adu=20000,
                                seed=100000 * int(tag) + 1000 * n + i, shape=(400, 600))
            lib.ingest([night])
            for group in due_groups(lib, policy, min_new=0):
                build_group(lib, group, policy)
            n += 1
""")

_MASTER = textwrap.dedent("""
    import sys
    from click.testing import CliRunner
    from indical.cli import main
    raw, out = sys.argv[1], sys.argv[2]
    print("started", flush=True)
    n = 0
    while True:
        CliRunner().invoke(main, ["master", raw, "-o", f"{out}/m{n % 3}.fits", "--force",
                                  "--rejection-map", f"{out}/r{n % 3}.fits"])
        n += 1
""")

_CALIBRATE = textwrap.dedent("""
    import sys
    from click.testing import CliRunner
    from indical.cli import main
    db, lights, out = sys.argv[1], sys.argv[2], sys.argv[3]
    print("started", flush=True)
    while True:
        CliRunner().invoke(main, ["calibrate", "--library", db, lights, "-o", out, "--force"])
""")


def _rows_point_at_files(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        queries = ["SELECT path FROM frames", "SELECT path FROM masters"]
        if "light_calibration" in tables:
            queries += ["SELECT output FROM light_calibration WHERE output IS NOT NULL",
                        "SELECT master_path FROM light_masters"]
        if "bad_pixel_maps" in tables:
            queries.append("SELECT path FROM bad_pixel_maps")
        return [p for q in queries for (p,) in con.execute(q) if not Path(p).is_file()]
    finally:
        con.close()


def _temporaries(*folders: Path) -> list[Path]:
    return [p for f in folders for p in f.rglob(".*.tmp")]


def _start(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            text=True)


def test_sigkill_at_random_moments_leaves_everything_consistent(tmp_path):
    rng = random.Random(SEED)
    db = tmp_path / "lib" / "library.sqlite"
    raw = tmp_path / "raw"
    lights = tmp_path / "lights"
    out_master = tmp_path / "masters-o"
    out_cal = tmp_path / "calibrated"
    out_master.mkdir()
    out_cal.mkdir()
    for i in range(5):
        write_synthetic(raw / f"dark_{i}.fits", FrameType.DARK, level_adu=500, seed=i,
                        exposure_s=30.0, shape=SHAPE)
    for i in range(4):
        write_synthetic(lights / f"light_{i}.fits", FrameType.LIGHT, level_adu=1500,
                        seed=50 + i, exposure_s=30.0, shape=SHAPE)
    # the library holds a 30 s master dark for the lights (and darks to rebuild it from)
    with CalibrationLibrary(db):
        pass
    result = CliRunner().invoke(main, ["library", "--library", str(db), "ingest", str(raw),
                                       "--min-frames", "3"])
    assert result.exit_code == 0, result.output

    kinds = {"ingest": 0, "master": 0, "calibrate": 0}
    for k in range(KILLS):
        kind = rng.choice(sorted(kinds))
        kinds[kind] += 1
        if kind == "ingest":
            proc = _start(_INGEST, str(db), str(k))
        elif kind == "master":
            proc = _start(_MASTER, str(raw), str(out_master))
        else:
            proc = _start(_CALIBRATE, str(db), str(lights), str(out_cal))
        try:
            assert proc.stdout.readline().strip() == "started"
            time.sleep(rng.uniform(0.05, 0.9))
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL, f"kill {k} ({kind}) came too late"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        missing = _rows_point_at_files(db)
        assert missing == [], f"after kill {k} ({kind}): rows point at missing files {missing}"
    assert min(kinds.values()) >= 5, kinds

    result = CliRunner().invoke(main, ["library", "--library", str(db), "sweep", "--min-frames",
                                       "3", str(out_master), str(out_cal)])
    assert result.exit_code == 0, result.output
    assert _temporaries(db.parent, out_master, out_cal) == []
    assert _rows_point_at_files(db) == []
    with CalibrationLibrary(db) as lib:
        assert lib.unindexed_masters() == []
        frames = lib.frames()
        # every frame written is indexed, and the current masters use every frame of their group
        on_disk = {str(p.resolve()) for p in lib.frames_dir.rglob("*.fits")}
        assert on_disk <= {f.path for f in frames}
        current = lib.masters()
        assert {m.frame_type for m in current} >= {FrameType.DARK}
        for m in current:
            assert len(lib.master_sources(m.id)) == m.n_frames
