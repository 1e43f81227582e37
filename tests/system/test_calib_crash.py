"""A process killed (SIGKILL, no clean-up at all) while ingesting or building masters leaves the
library consistent: the database passes SQLite's integrity check, every row points at a complete
file, and the next sweep finishes the work."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from astropy.io import fits

from indical.calib.library import CalibrationLibrary
from indical.frame import FrameType
from indical.testing.frames import write_synthetic

_WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from indical.calib.autobuild import AutoBuildPolicy, build_group, due_groups
    from indical.calib.library import CalibrationLibrary
    db, raw = Path(sys.argv[1]), Path(sys.argv[2])
    policy = AutoBuildPolicy(min_frames_for_master=3)
    with CalibrationLibrary(db) as lib:
        print("started", flush=True)
        while True:          # ingest and rebuild until killed
            lib.ingest([raw])
            for group in due_groups(lib, policy, min_new=0):
                build_group(lib, group, policy)
""")


def _check_consistent(db: Path, *, after_sweep: bool) -> None:
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    con.close()
    with CalibrationLibrary(db) as lib:
        for f in lib.frames():
            assert Path(f.path).is_file()
        for m in lib.masters(include_superseded=True):
            with fits.open(m.path) as hdul:        # complete and readable
                assert hdul[0].data.shape == (m.config.height, m.config.width)
                assert hdul[0].header["NCOMBINE"] == m.n_frames
            assert len(lib.master_sources(m.id)) == m.n_frames
        if after_sweep:
            # killed between writing a master and indexing it: sweep removed the file
            assert lib.unindexed_masters() == []


@pytest.mark.parametrize("delay_s", [0.5, 1.5, 3.0])
def test_kill_during_ingest_and_build_leaves_library_consistent(tmp_path, delay_s):
    db = tmp_path / "lib" / "library.sqlite"
    raw = db.parent / "frames" / "2026-03-20"   # where the sink writes: sweep indexes it
    for i in range(6):
        write_synthetic(raw / f"dark_{i}.fits", FrameType.DARK, level_adu=500, seed=i,
                        exposure_s=30.0, shape=(600, 800))
        write_synthetic(raw / f"flat_{i}.fits", FrameType.FLAT, level_adu=20000, seed=20 + i,
                        shape=(600, 800))
    proc = subprocess.Popen([sys.executable, "-c", _WORKER, str(db), str(raw)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
        time.sleep(delay_s)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    _check_consistent(db, after_sweep=False)
    from click.testing import CliRunner
    from indical.cli import main
    result = CliRunner().invoke(main, ["library", "--library", str(db), "sweep", "--min-frames", "3"])
    assert result.exit_code == 0, result.output
    _check_consistent(db, after_sweep=True)
    with CalibrationLibrary(db) as lib:
        assert len(lib.frames()) == 12
        current = lib.masters()
        assert sorted(m.frame_type.value for m in current) == ["dark", "flat"]
        assert all(m.n_frames == 6 for m in current)
