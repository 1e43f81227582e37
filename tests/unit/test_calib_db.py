"""The library database: one owner of the schema, numbered migrations, files from older indical
upgraded in place, bad files refused with their name and no connection left open."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from indical.calib import db as dbmod
from indical.calib.db import SCHEMA_VERSION, LibraryError, open_library_db
from indical.calib.library import CalibrationLibrary, MasterRecord
from indical.calib.status import LightStatus, Status, StatusStore
from indical.frame import FrameType

DATA = Path(__file__).parent / "data"
ALL_TABLES = {"frames", "masters", "master_sources", "expiry", "light_calibration",
              "light_masters", "captures", "bad_pixel_maps"}


@pytest.fixture
def connections(monkeypatch):
    """Every sqlite3 connection opened while the test runs, to check none is left open."""
    opened: list[sqlite3.Connection] = []
    real = sqlite3.connect

    def connect(*args, **kwargs):
        con = real(*args, **kwargs)
        opened.append(con)
        return con

    monkeypatch.setattr(sqlite3, "connect", connect)
    return opened


def _closed(con: sqlite3.Connection) -> bool:
    try:
        con.execute("SELECT 1")
    except sqlite3.ProgrammingError:
        return True
    return False


def _objects(path: Path) -> tuple[int, set[str], set[str]]:
    con = sqlite3.connect(path)
    try:
        version = con.execute("PRAGMA user_version").fetchone()[0]
        tables = {n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        triggers = {n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    finally:
        con.close()
    return version, tables, triggers


def _from_sql(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "lib" / "library.sqlite"
    path.parent.mkdir(parents=True)
    con = sqlite3.connect(path)
    try:
        con.executescript((DATA / name).read_text())
    finally:
        con.close()
    return path


def test_new_file_gets_every_table_and_the_current_version(tmp_path):
    path = tmp_path / "new" / "library.sqlite"
    with open_library_db(path) as db:
        assert db.rows("PRAGMA journal_mode") == [("wal",)]
        assert db.rows("PRAGMA foreign_keys") == [(1,)]
    version, tables, triggers = _objects(path)
    assert version == SCHEMA_VERSION == len(dbmod.migrations())
    assert ALL_TABLES <= tables
    assert triggers == {"light_recal_on_supersede"}


@pytest.mark.parametrize("fixture", ["library_v1.sql", "library_v1_status.sql"])
def test_a_library_from_schema_version_1_opens_and_upgrades_in_place(tmp_path, fixture):
    path = _from_sql(tmp_path, fixture)
    assert _objects(path)[0] == 1
    with CalibrationLibrary(path) as lib:
        frames = lib.frames()
        assert [Path(f.path).name for f in frames] == ["dark_0.fits", "dark_1.fits", "light_0.fits"]
        assert frames[0].meta.camera == "Sim Cam" and frames[0].meta.gain == 100.0
        (master,) = lib.masters()
        assert master.method == "median" and master.config.temperature_c == -10.0
        assert [f.id for f in lib.master_sources(master.id)] == [1, 2]
        assert lib.expiry_days(FrameType.DARK) == 45.0
    version, tables, triggers = _objects(path)
    assert version == SCHEMA_VERSION and ALL_TABLES <= tables
    assert triggers == {"light_recal_on_supersede"}
    # the status tables work, and so does the trigger that marks lights for recalibration
    with StatusStore(path) as store:
        light = "/data/raw/light_0.fits"
        if store.get(light) is None:
            store.record(LightStatus(path=light, status=Status.CALIBRATED, frame_id=3))
            con = sqlite3.connect(path)
            with con:
                con.execute("INSERT INTO light_masters VALUES (?, 'dark', 1, 'm.fits', ?)",
                            (light, "2026-03-21T00:00:00+00:00"))
            con.close()
        assert store.get(light).status is Status.CALIBRATED and not store.get(light).needs_recal
        newer = tmp_path / "lib" / "masters" / "newer.fits"
        newer.parent.mkdir(parents=True, exist_ok=True)
        newer.write_bytes(b"complete")
        with CalibrationLibrary(path) as lib:
            lib.add_master(MasterRecord(
                path=str(newer), frame_type=FrameType.DARK, config=master.config, filter=None,
                exposure_s=1.0, group_key=master.group_key,
                method="median", n_frames=2, created_at=datetime.now(timezone.utc)), [1, 2])
        assert store.get(light).needs_recal


def test_a_failing_migration_changes_nothing(tmp_path, connections):
    """Migrations run in one transaction: a file they can't upgrade stays as it was."""
    path = _from_sql(tmp_path, "library_v1.sql")
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE light_masters_master (x)")  # clashes with migration 2's index
    con.close()
    with pytest.raises(LibraryError, match="library.sqlite"):
        CalibrationLibrary(path)
    version, tables, _ = _objects(path)
    assert version == 1 and "light_calibration" not in tables
    assert all(_closed(c) for c in connections)


def test_not_a_database_is_refused_by_name_and_closed(tmp_path, connections):
    bad = tmp_path / "lib.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    for opener in (CalibrationLibrary, StatusStore):
        with pytest.raises(LibraryError, match=r"lib\.sqlite.*not a usable calibration library"):
            opener(bad)
    assert len(connections) == 2 and all(_closed(c) for c in connections)
    assert bad.read_bytes() == b"this is not sqlite" * 100


def test_a_newer_schema_is_refused_by_name_and_closed(tmp_path, connections):
    path = tmp_path / "lib.sqlite"
    CalibrationLibrary(path).close()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    for opener in (CalibrationLibrary, StatusStore):
        with pytest.raises(LibraryError, match=rf"lib\.sqlite.*version {SCHEMA_VERSION + 1} is "
                                               "newer.*upgrade indical"):
            opener(path)
    assert all(_closed(c) for c in connections)


def test_another_programs_database_is_left_alone(tmp_path, connections):
    path = tmp_path / "trained_flats.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE trained_flats (camera TEXT)")
    con.close()
    with pytest.raises(LibraryError, match=r"trained_flats\.sqlite.*trained_flats.*not a "
                                           "calibration library"):
        CalibrationLibrary(path)
    assert _objects(path)[1] == {"trained_flats"}
    assert all(_closed(c) for c in connections)


def test_library_and_status_store_close_their_connections(tmp_path, connections):
    path = tmp_path / "lib.sqlite"
    with CalibrationLibrary(path), StatusStore(path):
        assert len(connections) == 2 and not any(_closed(c) for c in connections)
    assert all(_closed(c) for c in connections)


def test_processes_opening_a_new_file_at_once_all_get_the_schema(tmp_path):
    """The version is read again under the write lock, so racing openers migrate once; the
    switch of a new file to WAL, which SQLite refuses at once ("database is locked", "disk I/O
    error") while another connection makes it, is retried. 30 new files: the race lost about
    one round in 13 before the retry."""
    for round_ in range(30):
        path = tmp_path / f"lib{round_}.sqlite"
        start = threading.Barrier(4)
        errors: list[BaseException] = []

        def open_it() -> None:
            start.wait()
            try:
                open_library_db(path).close()
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [], f"round {round_}"
        version, tables, _ = _objects(path)
        assert version == SCHEMA_VERSION and ALL_TABLES <= tables


def _schema_sql(path: Path) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        con.close()


def test_a_library_written_before_the_sql_layer_opens_unchanged_and_works(tmp_path):
    """library_v3.sql: a version-3 library written by the code before SQLAlchemy (frames,
    a superseded master, light status, a capture, a bad pixel map, expiry, a sensor)."""
    path = _from_sql(tmp_path, "library_v3.sql")
    before = _schema_sql(path)
    with CalibrationLibrary(path) as lib, StatusStore(path) as store:
        frames = lib.frames()
        assert [Path(f.path).name for f in frames] == [
            "dark_0.fits", "dark_1.fits", "flat_2.fits", "flat_3.fits", "light_4.fits"]
        assert [f.meta.flat_source for f in frames[2:4]] == ["PANEL", "SKY"]
        assert frames[0].meta.offset == 10.0 and frames[0].median_adu == 1000.0
        (current,) = lib.masters()
        old = [m for m in lib.masters(include_superseded=True) if not m.current]
        assert Path(current.path).name == "m2.fits" and [m.superseded_by for m in old] == [2]
        assert current.parameters == {"kappa": 3.0} and current.config.temperature_c == -10.0
        assert lib.expiry_days(FrameType.DARK) == 45.0 and lib.sensor_of("Sim Cam") == "ccd"
        light = store.get("/data/raw/light_4.fits")
        assert light.needs_recal and light.warnings == ("w",) and light.masters[0].id == 1
        assert [c["done"] for c in store.captures_in_progress(
            now=datetime.fromisoformat(store.all()[0].updated_at))] == [5]
        (bpm,) = store.bad_pixel_maps()
        assert bpm.config.offset == 10.0 and not bpm.superseded
        # a new master supersedes m2 and marks the light recorded with it
        from indical.calib.match import MasterInfo, MasterKind
        store.record(LightStatus(path=light.path, status=Status.CALIBRATED, frame_id=5),
                     [MasterInfo(id=current.id, kind=MasterKind.DARK, path=Path(current.path),
                                 config=current.config, created=current.created_at)])
        assert not store.get(light.path).needs_recal
        newer = tmp_path / "lib" / "m3.fits"
        newer.write_bytes(b"complete")
        added = lib.add_master(MasterRecord(
            path=str(newer), frame_type=FrameType.DARK, config=current.config, filter=None,
            exposure_s=60.0, group_key=current.group_key, method="sigma", n_frames=2), [1, 2])
        assert [m.id for m in lib.masters()] == [added.id] and store.get(light.path).needs_recal
    after = _schema_sql(path)
    assert _objects(path)[0] == SCHEMA_VERSION
    # every object as the old code made it; only migrations after 3 added columns
    assert [(t, n) for t, n, _ in after] == [(t, n) for t, n, _ in before]
    altered = {"frames", "masters", "bad_pixel_maps"}
    assert [x for x in after if x[1] not in altered] == [x for x in before if x[1] not in altered]


def test_masters_of_colour_frames_from_before_migration_4_keep_their_pattern(tmp_path):
    """A library with a master built from RGGB frames before masters had a pattern (schema 4:
    the column exists, empty): opened now, the master is a colour master (colour lights match
    it), and its bad pixel map too."""
    path, T = tmp_path / "lib" / "library.sqlite", "2026-03-20T00:00:00+00:00"
    open_library_db(path).close()
    con = sqlite3.connect(path)
    with con:
        for i, pattern in enumerate(["RGGB", "RGGB"], start=1):
            con.execute("INSERT INTO frames (id, path, sha256, frame_type, width, height, "
                        "exposure_s, bayer_pattern, ingested_at) VALUES (?, ?, ?, 'flat', 64, 48, "
                        "1.0, ?, ?)", (i, f"/f{i}.fits", f"h{i}", pattern, T))
        con.execute("INSERT INTO frames (id, path, sha256, frame_type, width, height, exposure_s,"
                    " ingested_at) VALUES (3, '/d.fits', 'h3', 'dark', 64, 48, 1.0, ?)", (T,))
        for mid, sources in ((1, (1, 2)), (2, (3,))):
            con.execute("INSERT INTO masters (id, path, frame_type, width, height, exposure_s, "
                        "group_key, method, n_frames, created_at) VALUES (?, ?, 'flat', 64, 48, "
                        "1.0, '{}', 'mean', 2, ?)", (mid, f"/m{mid}.fits", T))
            con.executemany("INSERT INTO master_sources VALUES (?, ?)",
                            [(mid, f) for f in sources])
        con.execute("INSERT INTO bad_pixel_maps (path, width, height, flat_master_id, n_hot, "
                    "n_cold, n_dead, created_at) VALUES ('/b.fits', 64, 48, 1, 0, 0, 0, ?)", (T,))
        con.execute("PRAGMA user_version = 4")
    con.close()
    with CalibrationLibrary(path) as lib:
        patterns = {m.id: m.config.bayer_pattern for m in lib.masters(include_superseded=True)}
    assert patterns == {1: "RGGB", 2: None}
    version, _, _ = _objects(path)
    assert version == SCHEMA_VERSION
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT bayer_pattern FROM bad_pixel_maps").fetchone() == ("RGGB",)
    finally:
        con.close()
