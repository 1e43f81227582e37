"""A library written before masters had a Bayer pattern, opened by this indical (migration 6), on
SQLite and PostgreSQL: its colour masters and the ones built since are one configuration (a new
master supersedes the old, matching takes the new), imported colour masters read their pattern
from their own file, and one whose file is gone stays as it was, with a log line for each."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from indical.calib import db as dbmod
from indical.calib.autobuild import group_key_json
from indical.calib.catalogue import MasterCatalogue
from indical.calib.config import CameraConfig
from indical.calib.db import LibraryDB
from indical.calib.grouping import GroupingOptions, group_frames
from indical.calib.library import CalibrationLibrary, MasterRecord
from indical.calib.match import LightInfo, MasterKind, choose_masters
from indical.frame import Binning, FrameType

DATA = Path(__file__).parent / "data"
IMPORTED = "imported_flat_siril-flat-0-c173a198_20261203T032211270410.fits"
GONE = "imported_flat_siril-flat-1-e276c7d0_20261203T032211277985.fits"


def _old_sql(root: Path) -> str:
    return (DATA / "library_v3_colour.sql").read_text().replace("'/data/", f"'{root}/")


def _old_library(target, root: Path, monkeypatch) -> None:
    """The fixture's library at `target`: on SQLite the file as indical cd17a2b wrote it; on
    PostgreSQL the schema of migrations 1-3 (what indical wrote before migration 4) holding the
    same rows. The imported master's file is put where the library keeps it."""
    (root / "lib" / "masters").mkdir(parents=True, exist_ok=True)
    shutil.copy(DATA / "library_v3_colour_imported_flat.fits", root / "lib" / "masters" / IMPORTED)
    source = sqlite3.connect(":memory:" if isinstance(target, str) else target)
    try:
        source.executescript(_old_sql(root))
        if not isinstance(target, str):
            return
        tables = [n for (n,) in source.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        rows = {t: (source.execute(f'SELECT * FROM "{t}"').fetchall(),
                    [d[1] for d in source.execute(f'PRAGMA table_info("{t}")')]) for t in tables}
    finally:
        source.close()
    with monkeypatch.context() as m:   # this indical's first three migrations, and no more
        m.setattr(dbmod, "SCHEMA_VERSION", 3)
        m.setattr(dbmod, "_MIGRATIONS", dbmod.migrations()[:3])
        db = LibraryDB(target)
    from sqlalchemy import text
    try:
        with db.transaction() as conn:
            assert db.version(conn) == 3
            for table in ("frames", "masters", "master_sources", "expiry", "light_calibration",
                          "light_masters", "captures", "bad_pixel_maps", "camera_sensors"):
                values, columns = rows[table]
                if not values:
                    continue
                conn.execute(text(f"INSERT INTO {table} ({dbmod.quoted(columns)}) VALUES "
                                  f"({', '.join(':c%d' % i for i in range(len(columns)))})"),
                             [{f"c{i}": v for i, v in enumerate(r)} for r in values])
                if "id" in columns:   # explicit ids leave the serial behind
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                      f"(SELECT MAX(id) FROM {table}))"))
    finally:
        db.close()


@pytest.fixture
def old_library(library_target, tmp_path, monkeypatch, caplog):
    root = tmp_path   # the library's folder is tmp_path/lib on either database
    _old_library(library_target, root, monkeypatch)
    caplog.set_level(logging.WARNING, logger="indical.calib.colour_upgrade")
    return library_target, root


def _by_name(lib: CalibrationLibrary) -> dict[str, MasterRecord]:
    return {Path(m.path).name: m for m in lib.masters(include_superseded=True)}


def test_old_colour_masters_and_new_ones_are_one_configuration(old_library, tmp_path, caplog):
    target, root = old_library
    with CalibrationLibrary(target) as lib:
        old = _by_name(lib)
        dark, flat = (next(m for n, m in old.items() if n.startswith(f"master_{k}"))
                      for k in ("dark", "flat"))
        assert dark.config.bayer_pattern == flat.config.bayer_pattern == "RGGB"
        assert '"bayer_pattern": "RGGB"' in dark.group_key
        # the masters this indical builds from the same frames have the same key
        groups, _ = group_frames(lib.frames(), GroupingOptions(min_group=3))
        keys = {g.key.frame_type: group_key_json(g.key) for g in groups}
        assert keys[FrameType.DARK] == dark.group_key and keys[FrameType.FLAT] == flat.group_key
        # so a new dark, a little warmer, supersedes the old one, and matching takes it
        newer = root / "lib" / "masters" / "new_dark.fits"
        newer.write_bytes(b"complete")
        config = CameraConfig(camera="Sim Cam", gain=100.0, offset=10.0, binning=Binning(1, 1),
                              width=32, height=24, temperature_c=-11.5, bayer_pattern="RGGB")
        new = lib.add_master(MasterRecord(
            path=str(newer), frame_type=FrameType.DARK, config=config, filter=None,
            exposure_s=60.0, group_key=keys[FrameType.DARK], method="sigma", n_frames=3,
            created_at=datetime.now(timezone.utc)), [])
        assert _by_name(lib)[dark.path.rsplit("/", 1)[1]].superseded_by == new.id
        light = LightInfo(config=dataclasses.replace(config, temperature_c=-10.0),
                          exposure_s=60.0, filter="L")
        choice = choose_masters(light, MasterCatalogue.from_library(lib).infos)
        assert choice.dark is not None and choice.dark.id == new.id


def test_imported_colour_masters_read_their_pattern_from_their_file(old_library, caplog):
    target, root = old_library
    with CalibrationLibrary(target) as lib:
        masters = _by_name(lib)
    imported, gone = masters[IMPORTED], masters[GONE]
    assert imported.config.bayer_pattern == "GRBG"
    assert '"bayer_pattern": "GRBG"' in imported.group_key
    assert "GRBG at pixel 0,0 read from the file on upgrade" in imported.parameters["upgraded"]
    assert gone.config.bayer_pattern is None and "upgraded" not in gone.parameters
    logged = " | ".join(r.getMessage() for r in caplog.records)
    assert f"{IMPORTED}): Bayer pattern GRBG" in logged
    assert f"{GONE}): recorded before colour support and its file can't be read" in logged
    # a GRBG light of filter R now finds the imported flat
    with CalibrationLibrary(target) as lib:
        infos = MasterCatalogue.from_library(lib).infos
    light = LightInfo(config=CameraConfig(camera="Sim Cam", gain=100.0, offset=10.0, width=32,
                                          height=24, temperature_c=-10.0, bayer_pattern="GRBG"),
                      exposure_s=60.0, filter="R")
    flat = choose_masters(light, infos).flat
    assert flat is not None and flat.path.name == IMPORTED and flat.kind is MasterKind.FLAT
    # and `library ls` says what the upgrade changed
    from indical.cli import main
    result = CliRunner().invoke(main, ["library", "--library", str(target), "ls"])
    assert result.exit_code == 0, result.output
    assert "upgraded: Bayer pattern GRBG at pixel 0,0 read from the file" in result.output


def test_two_current_masters_of_one_configuration_are_resolved_on_upgrade(library_target,
                                                                           monkeypatch):
    """A library upgraded to schema 5 and used since: an old master (key without the pattern)
    and a new one of the same configuration both current. Opened now, the newer supersedes
    the older; a master of another temperature stays current."""
    with monkeypatch.context() as m:
        m.setattr(dbmod, "SCHEMA_VERSION", 5)
        m.setattr(dbmod, "_MIGRATIONS", dbmod.migrations()[:5])
        LibraryDB(library_target).close()
        lib = CalibrationLibrary(library_target)
        try:
            lib.masters_dir.mkdir(parents=True, exist_ok=True)
            old_key = '{"camera": "C", "frame_type": "dark"}'
            new_key = '{"bayer_pattern": "RGGB", "camera": "C", "frame_type": "dark"}'
            ids = []
            for n, (key, temp) in enumerate(((old_key, -10.0), (old_key, 5.0),
                                             (new_key, -10.5))):
                path = lib.masters_dir / f"m{n}.fits"
                path.write_bytes(b"complete")
                ids.append(lib.add_master(MasterRecord(
                    path=str(path), frame_type=FrameType.DARK,
                    config=CameraConfig(camera="C", width=8, height=8, temperature_c=temp,
                                        bayer_pattern="RGGB"),
                    filter=None, exposure_s=60.0, group_key=key, method="mean",
                    created_at=datetime(2026, 12, 1, n, tzinfo=timezone.utc)), []).id)
            assert all(m.current for m in lib.masters(include_superseded=True))
        finally:
            lib.close()
    with CalibrationLibrary(library_target) as lib:
        state = {m.id: m.superseded_by for m in lib.masters(include_superseded=True)}
    assert state == {ids[0]: ids[2], ids[1]: None, ids[2]: None}
