"""One PostgreSQL library, several processes writing at once (the way several machines share
it): two ingests of overlapping folders, and an ingest beside a sweep. Each frame is indexed
once, each group's master is built once, and the newest master of a configuration is the only
current one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from indical.calib.library import CalibrationLibrary
from indical.frame import FrameType
from indical.testing.frames import write_synthetic

# 4 configurations x 12 frames; with --min-frames 6 every group is due from the sixth frame
GROUPS = [(FrameType.DARK, 30.0, -10.0), (FrameType.DARK, 60.0, -10.0),
          (FrameType.DARK, 30.0, 0.0), (FrameType.BIAS, 0.001, -10.0)]
PER_GROUP = 12


def _frames(root: Path) -> list[Path]:
    paths = []
    for g, (kind, exposure, temp) in enumerate(GROUPS):
        for i in range(PER_GROUP):
            night = root / f"night{i % 3}"  # each group spread over three folders
            paths.append(write_synthetic(night / f"{kind.value}_{g}_{i:02d}.fits", kind,
                                         level_adu=500 + 100 * g, seed=100 * g + i,
                                         exposure_s=exposure, temperature_c=temp))
    return paths


def _indical(url: str, root: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "INDICAL_LIBRARY_ROOT": str(root), "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-c", "from indical.cli import main; main()",
                             "library", "--library", url,
                             *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _finish(*procs: subprocess.Popen) -> list[str]:
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=240)
        assert p.returncode == 0, out
        outs.append(out)
    return outs


def _check_integrity(url: str, root: Path, files: list[Path]) -> None:
    with CalibrationLibrary(url, root=root) as lib:
        frames = lib.frames()
        # each frame once
        assert sorted(f.path for f in frames) == sorted(str(p.resolve()) for p in files)
        assert len({f.sha256 for f in frames}) == len(files)
        masters = lib.masters(include_superseded=True)
        sources = {m.id: frozenset(f.id for f in lib.master_sources(m.id)) for m in masters}
        # each master once: no two masters of the same frames
        assert len(set(sources.values())) == len(masters), sources
        current = lib.masters()
        # one current master per configuration (group key and temperature), holding all of
        # its frames
        def config(m):
            return m.group_key, round(m.config.temperature_c)
        assert Counter(config(m) for m in current) == Counter(
            {k: 1 for k in {config(m) for m in masters}})
        assert len(current) == len(GROUPS)
        assert sorted(len(sources[m.id]) for m in current) == [PER_GROUP] * len(GROUPS)
        # a superseded master was replaced by a newer one of its configuration
        by_id = {m.id: m for m in masters}
        for m in masters:
            if m.superseded_by is not None:
                newer = by_id[m.superseded_by]
                assert newer.group_key == m.group_key and newer.id > m.id
        # every indexed master's file is there, and no master file is unindexed
        assert all(Path(m.path).is_file() for m in masters)
        assert lib.unindexed_masters() == []


def _counts(out: str) -> tuple[int, int]:
    line = next(x for x in out.splitlines() if "frames added" in x)
    words = line.split()
    return int(words[0]), int(words[3])


def test_two_ingests_of_overlapping_folders(postgres, tmp_path):
    url = postgres.new_database()
    CalibrationLibrary(url, root=tmp_path / "lib").close()  # the schema, once
    files = _frames(tmp_path / "raw")
    raw = tmp_path / "raw"
    build = ("--min-frames", "6", "--combine", "median")
    one = _indical(url, tmp_path / "lib", "ingest", str(raw), *build)
    two = _indical(url, tmp_path / "lib", "ingest", str(raw / "night2"), str(raw / "night1"),
                   str(raw / "night0"), *build)
    out_one, out_two = _finish(one, two)
    (added_1, known_1), (added_2, known_2) = _counts(out_one), _counts(out_two)
    # each file added by exactly one of them; the other found it known
    assert added_1 + added_2 == len(files) and known_1 + known_2 == len(files), (out_one,
                                                                                 out_two)
    _check_integrity(url, tmp_path / "lib", files)


def test_ingest_beside_a_sweep(postgres, tmp_path):
    url = postgres.new_database()
    root = tmp_path / "lib"
    CalibrationLibrary(url, root=root).close()
    # frames where the library's sink writes them: sweep indexes those too
    files = _frames(root / "frames")
    build = ("--min-frames", "6", "--combine", "median")
    ingest = _indical(url, root, "ingest", str(root / "frames"), *build)
    sweep = _indical(url, root, "sweep", *build)
    out_ingest, out_sweep = _finish(ingest, sweep)
    _check_integrity(url, root, files)
    # a second sweep finds nothing left to do
    (again,) = _finish(_indical(url, root, "sweep", *build))
    assert "no group is due" in again and "0 frames added" in again


def test_status_and_masters_of_one_library_from_two_connections(postgres, tmp_path):
    """A master recorded through one connection supersedes one recorded through another and
    marks, by the PostgreSQL trigger, the lights calibrated with it."""
    from datetime import datetime, timezone

    from indical.calib.config import CameraConfig
    from indical.calib.library import MasterRecord
    from indical.calib.match import MasterInfo, MasterKind
    from indical.calib.status import LightStatus, Status, StatusStore

    url = postgres.new_database()
    root = tmp_path / "lib"
    config = CameraConfig(camera="Sim Cam", gain=100.0, offset=10.0, width=64, height=48,
                          temperature_c=-10.0)
    files = [root / f"m{i}.fits" for i in range(2)]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"complete")
    record = dict(frame_type=FrameType.DARK, config=config, filter=None, exposure_s=30.0,
                  group_key=json.dumps({"camera": "Sim Cam"}), method="median", n_frames=0)
    with CalibrationLibrary(url, root=root) as one, CalibrationLibrary(url, root=root) as two, \
            StatusStore(url) as store:
        first = one.add_master(MasterRecord(path=str(files[0]), **record), [])
        store.record(LightStatus(path="/l.fits", status=Status.CALIBRATED),
                     [MasterInfo(id=first.id, kind=MasterKind.DARK, path=files[0],
                                 config=config, created=datetime.now(timezone.utc))])
        assert not store.get("/l.fits").needs_recal
        second = two.add_master(MasterRecord(path=str(files[1]), **record), [])
        assert [m.id for m in one.masters()] == [second.id]
        assert store.get("/l.fits").needs_recal


def test_commands_take_the_url_from_indical_library(postgres, tmp_path):
    url = postgres.new_database()
    root = tmp_path / "lib"
    files = _frames(tmp_path / "raw")
    env = {**os.environ, "INDICAL_LIBRARY": url, "INDICAL_LIBRARY_ROOT": str(root),
           "COLUMNS": "200"}
    main = [sys.executable, "-c", "from indical.cli import main; main()"]
    done = subprocess.run([*main, "library", "ingest", str(tmp_path / "raw"), "--min-frames",
                           "6"], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(files)} frames added" in done.stdout
    with CalibrationLibrary(url, root=root) as lib:
        assert len(lib.masters()) == len(GROUPS)
        assert all(Path(m.path).parent == root / "masters" for m in lib.masters())
    listing = subprocess.run([*main, "library", "ls"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert "library_" in listing.stdout and "current" in listing.stdout


def test_a_library_url_that_does_not_answer_is_named(postgres, tmp_path):
    main = [sys.executable, "-c", "from indical.cli import main; main()"]
    url = f"postgresql://indical:secret@/no_such_db?host={postgres.dir}"
    done = subprocess.run([*main, "library", "--library", url, "ls"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    assert "no_such_db" in done.stderr and "can't connect" in done.stderr
    assert "secret" not in done.stderr + done.stdout  # the password is never shown


def test_two_calibrations_of_overlapping_lights(postgres, tmp_path):
    """Two `indical calibrate` processes on overlapping lights against one PostgreSQL
    library: one status row per light, its masters recorded once, every output complete."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "unit"))
    try:
        from calib_fixtures import standard_library, write_light
    finally:
        sys.path.pop(0)
    import numpy as np

    from indical.calib.status import Status, StatusStore

    url = postgres.new_database()
    lib, scene, masters = standard_library(tmp_path / "lib", target=url)
    lib.close()
    rng = np.random.default_rng(5)
    lights = [write_light(tmp_path / "night" / f"part{i % 2}", f"light_{i:02d}.fits", scene, rng)
              for i in range(12)]
    main = [sys.executable, "-c", "from indical.cli import main; main()", "calibrate",
            "--library", url]
    env = {**os.environ, "COLUMNS": "200"}
    procs = [subprocess.Popen([*main, *paths, "-o", str(tmp_path / "out")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for paths in ([str(tmp_path / "night")],
                           [str(tmp_path / "night" / "part1"), str(tmp_path / "night" / "part0")])]
    _finish(*procs)
    with StatusStore(url) as store:
        rows = store.all()
        assert sorted(r.path for r in rows) == sorted(str(p.resolve()) for p in lights)
        assert all(r.status is Status.CALIBRATED for r in rows)
        for r in rows:
            kinds = [m.kind for m in r.masters]
            assert sorted(kinds) == sorted(set(kinds)) and {m.id for m in r.masters} == {
                masters["dark"].id, masters["flat"].id}
            assert Path(r.output).is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{p.stem}_cal.fits" for p in lights)


def test_a_postgresql_database_of_something_else_or_newer_is_refused(postgres, tmp_path):
    import psycopg

    from indical.calib.db import SCHEMA_VERSION, LibraryError

    def sql(url: str, statement: str) -> None:
        name = url.split("?")[0].rsplit("/", 1)[-1]
        with psycopg.connect(f"host={postgres.dir} user={postgres.user} dbname={name}",
                             autocommit=True) as con:
            con.execute(statement)

    other = postgres.new_database()
    sql(other, "CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(LibraryError, match=r"library_\d+.*PostgreSQL database of something "
                                           r"else \(tables invoices\)"):
        CalibrationLibrary(other, root=tmp_path)
    newer = postgres.new_database()
    CalibrationLibrary(newer, root=tmp_path).close()
    sql(newer, f"UPDATE schema_version SET version = {SCHEMA_VERSION + 1}")
    with pytest.raises(LibraryError, match=rf"version {SCHEMA_VERSION + 1} is newer.*upgrade"):
        CalibrationLibrary(newer, root=tmp_path)
