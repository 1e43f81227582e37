"""The calibration library's database: the one place that opens it and owns its schema.

Every table, index and trigger is created here, by numbered migrations. The number of the last
one applied is kept in the file (`PRAGMA user_version`), so a file written by an older indical
is upgraded in place when it is opened, and a file from a newer indical is refused rather than
misread. Migrations are only ever appended: a released one never changes.

Tables (see docs/decisions/015-library-schema.md):

- `frames`: one row per frame file: path (unique), sha256 of the content (unique, so ingesting
  the same file twice is a no-op), type, configuration (camera, readout mode, gain, offset,
  binning, width, height, filter, exposure_s), sensor and set-point temperature, Bayer pattern
  as written (BAYERPAT) and its offsets (`bayer_offset_x`, `bayer_offset_y`: XBAYROFF, YBAYROFF),
  DATE-OBS, median and MAD in ADU, ingest time, what lit a flat (`flat_source`: PANEL or SKY).
- `masters`: one row per master file: type, the same configuration columns, its mean
  temperature, `group_key` (JSON of the configuration that defines "the same master"), method and
  parameters (JSON), precalibration used and why (`precal_reason`), what lit a flat
  (`flat_source`: PANEL or SKY), the Bayer pattern at its pixel (0, 0) (`bayer_pattern`, offsets
  applied; NULL: mono), number of frames, creation time and `superseded_by` (the id of
  the master that replaced it; NULL while current). Superseded masters stay recorded.
- `master_sources`: (master_id, frame_id) links a master to the frames it was built from.
- `expiry`: per frame type, the age in days after which a master counts as expired.
- `light_calibration`, `light_masters`: per light, the outcome of calibrating it and which
  masters it used; a trigger marks lights for recalibration when one of those is superseded.
- `captures`: captures in progress, which sequences report so `indical needs` can show them.
- `bad_pixel_maps`: bad pixel maps, a master type of their own (with `bayer_pattern` as masters).
- `camera_sensors`: per camera, 'cmos' (the default) or 'ccd' (`indical library sensor`).

Times are UTC ISO 8601 text. The SQL is kept to what SQLite and PostgreSQL both accept, except
the trigger body and the PRAGMAs, which are SQLite's.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from indical.errors import IndicalError


class LibraryError(IndicalError):
    """The library database can't be opened or used; names the file."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


# Migration N is MIGRATIONS[N - 1]: statements run in one transaction, with the new number.
# IF NOT EXISTS throughout: files written before the migrations were numbered (indical up to
# December 2026 wrote user_version 1 and created the status tables of migration 2 on first use,
# without changing the number) may already hold some of these objects.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: frames and masters.
    (
        """CREATE TABLE IF NOT EXISTS frames (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            sha256 TEXT NOT NULL UNIQUE,
            frame_type TEXT NOT NULL,
            camera TEXT NOT NULL DEFAULT '',
            readout_mode TEXT,
            gain REAL,
            offset REAL,
            xbin INTEGER NOT NULL DEFAULT 1,
            ybin INTEGER NOT NULL DEFAULT 1,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            filter TEXT,
            exposure_s REAL NOT NULL,
            sensor_temp_c REAL,
            setpoint_temp_c REAL,
            bayer_pattern TEXT,
            date_obs TEXT,
            median_adu REAL,
            mad_adu REAL,
            ingested_at TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS frames_config ON frames (frame_type, camera, xbin, ybin, filter)",
        """CREATE TABLE IF NOT EXISTS masters (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            frame_type TEXT NOT NULL,
            camera TEXT NOT NULL DEFAULT '',
            readout_mode TEXT,
            gain REAL,
            offset REAL,
            xbin INTEGER NOT NULL DEFAULT 1,
            ybin INTEGER NOT NULL DEFAULT 1,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            filter TEXT,
            exposure_s REAL NOT NULL,
            temperature_c REAL,
            group_key TEXT NOT NULL,
            method TEXT NOT NULL,
            parameters TEXT NOT NULL DEFAULT '{}',
            precal TEXT NOT NULL DEFAULT 'none',
            n_frames INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            superseded_by INTEGER REFERENCES masters (id)
        )""",
        "CREATE INDEX IF NOT EXISTS masters_key ON masters (group_key, superseded_by)",
        """CREATE TABLE IF NOT EXISTS master_sources (
            master_id INTEGER NOT NULL REFERENCES masters (id),
            frame_id INTEGER NOT NULL REFERENCES frames (id),
            PRIMARY KEY (master_id, frame_id)
        )""",
        """CREATE TABLE IF NOT EXISTS expiry (
            frame_type TEXT PRIMARY KEY,
            max_age_days REAL NOT NULL
        )""",
    ),
    # 2: light status, captures in progress, bad pixel maps (created by the status store on
    # first use before they were numbered).
    (
        """CREATE TABLE IF NOT EXISTS light_calibration (
            path TEXT PRIMARY KEY,
            frame_id INTEGER,
            status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            missing TEXT NOT NULL DEFAULT '[]',
            warnings TEXT NOT NULL DEFAULT '[]',
            output TEXT,
            night TEXT,
            updated_at TEXT NOT NULL,
            needs_recal INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX IF NOT EXISTS light_calibration_status "
        "ON light_calibration (status, needs_recal)",
        """CREATE TABLE IF NOT EXISTS light_masters (
            light_path TEXT NOT NULL REFERENCES light_calibration (path) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            master_id INTEGER NOT NULL,
            master_path TEXT NOT NULL,
            master_created TEXT NOT NULL,
            PRIMARY KEY (light_path, kind)
        )""",
        "CREATE INDEX IF NOT EXISTS light_masters_master ON light_masters (kind, master_id)",
        """CREATE TABLE IF NOT EXISTS captures (
            id INTEGER PRIMARY KEY,
            sequence TEXT NOT NULL,
            description TEXT NOT NULL,
            target INTEGER NOT NULL,
            done INTEGER NOT NULL DEFAULT 0,
            started_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            finished INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE IF NOT EXISTS bad_pixel_maps (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            camera TEXT NOT NULL DEFAULT '',
            readout_mode TEXT,
            gain REAL,
            offset REAL,
            xbin INTEGER NOT NULL DEFAULT 1,
            ybin INTEGER NOT NULL DEFAULT 1,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            temperature_c REAL,
            dark_master_id INTEGER,
            flat_master_id INTEGER,
            n_hot INTEGER NOT NULL,
            n_cold INTEGER NOT NULL,
            n_dead INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            superseded_by INTEGER
        )""",
        # When a newer master replaces one that calibrated a light, the light is marked for
        # recalibration, whoever records the new master.
        """CREATE TRIGGER IF NOT EXISTS light_recal_on_supersede
        AFTER UPDATE OF superseded_by ON masters
        WHEN NEW.superseded_by IS NOT NULL AND OLD.superseded_by IS NULL
        BEGIN
            UPDATE light_calibration SET needs_recal = 1
            WHERE status = 'calibrated' AND path IN (
                SELECT light_path FROM light_masters WHERE master_id = NEW.id AND kind != 'bpm');
        END""",
    ),
    # 3: why a flat master's precalibration was chosen; which light made a flat (PANEL or SKY),
    # so counts, groups and masters keep panel and sky flats apart; each camera's sensor type
    # (a CCD's flats may take the bias plus a dark scaled by exposure).
    (
        "ALTER TABLE masters ADD COLUMN precal_reason TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE masters ADD COLUMN flat_source TEXT",
        "ALTER TABLE frames ADD COLUMN flat_source TEXT",
        """CREATE TABLE IF NOT EXISTS camera_sensors (
            camera TEXT PRIMARY KEY,
            sensor TEXT NOT NULL CHECK (sensor IN ('cmos', 'ccd'))
        )""",
    ),
    # 4: one-shot-colour sensors. A frame's Bayer offsets (XBAYROFF, YBAYROFF) beside its
    # BAYERPAT; masters and bad pixel maps keep the pattern at their pixel (0, 0) with the
    # offsets applied (the phase a light must have to use them; NULL: mono).
    (
        "ALTER TABLE frames ADD COLUMN bayer_offset_x INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE frames ADD COLUMN bayer_offset_y INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE masters ADD COLUMN bayer_pattern TEXT",
        "ALTER TABLE bad_pixel_maps ADD COLUMN bayer_pattern TEXT",
    ),
)

#: The schema version this indical writes and understands.
SCHEMA_VERSION = len(MIGRATIONS)

_KNOWN_TABLES = {"frames", "masters", "master_sources", "expiry", "light_calibration",
                 "light_masters", "captures", "bad_pixel_maps", "camera_sensors"}


def open_library_db(path: Path) -> sqlite3.Connection:
    """A connection to the library database at `path` (created if missing), upgraded to
    SCHEMA_VERSION: WAL journal, foreign keys on, a 30 s busy timeout, autocommit (callers
    open their own transactions). Raises LibraryError naming the file when it can't be used;
    the connection is closed then."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LibraryError(path, f"can't create its folder ({exc.strerror or exc})") from exc
    created = not path.exists()
    try:
        db = sqlite3.connect(path, timeout=30.0, check_same_thread=False, isolation_level=None)
    except sqlite3.Error as exc:
        raise LibraryError(path, _open_problem(path, exc, f"can't be opened ({exc})")) from exc
    try:
        db.execute("PRAGMA journal_mode=WAL")
        # WAL commits stay atomic with NORMAL; only a power cut may lose the last ones
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        migrate(db, path)
    except sqlite3.DatabaseError as exc:
        db.close()
        if created:  # an empty file made by this failed attempt helps nobody
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        raise LibraryError(path, _open_problem(path, exc, f"not a usable calibration library "
                                                           f"({exc})")) from exc
    except BaseException:
        db.close()
        raise
    return db


def _open_problem(path: Path, exc: sqlite3.Error, otherwise: str) -> str:
    """Why a library could not be opened, and what to do: SQLite says only 'unable to open
    database file' for a read-only folder and 'database or disk is full' for a full disk."""
    folder = path.parent
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        return ("can't write in its folder (permission denied); the library writes beside its "
                "database: fix the permissions or give --library elsewhere")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return "can't read and write it (permission denied); fix its permissions"
    if "full" in str(exc):
        return "the disk is full; free some space and run again"
    return otherwise


def schema_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, path: Path) -> int:
    """Apply the migrations `db` lacks, all in one transaction; returns the version it had.
    Safe when several processes open the same file at once: the version is read again under
    the write lock."""
    version = schema_version(db)
    _check_version(db, path, version)
    if version == SCHEMA_VERSION:
        return version
    db.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(db)
        _check_version(db, path, version)
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return version


def _check_version(db: sqlite3.Connection, path: Path, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise LibraryError(path, f"schema version {version} is newer than this indical "
                                 f"understands ({SCHEMA_VERSION}); upgrade indical")
    if version == 0:
        foreign = sorted({name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
            - _KNOWN_TABLES)
        if foreign:
            raise LibraryError(path, f"is an SQLite database of something else (tables "
                                     f"{', '.join(foreign)}), not a calibration library; "
                                     "give another --library path")
