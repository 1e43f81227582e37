"""The calibration library's database: the one place that opens it and owns its schema.

A library is an SQLite file (the default: embedded, nothing to run) or a PostgreSQL database
(`postgresql://USER@HOST/DB`), which several machines share. Both are reached through
SQLAlchemy Core with the same SQL and the same schema.

Every table, index and trigger is created here, by numbered migrations. The number of the last
one applied is kept in the database (SQLite: `PRAGMA user_version`; PostgreSQL: the one row of
`schema_version`), so a library written by an older indical is upgraded in place when it is
opened, and one from a newer indical is refused rather than misread. Migrations are only ever
appended: a released one never changes.

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
  applied; NULL: mono; filled from the source frames for masters older than the column,
  from their own file for imported ones, and written into their group keys: migration 6),
  number of frames, creation time and `superseded_by` (the id of
  the master that replaced it; NULL while current). Superseded masters stay recorded.
- `master_sources`: (master_id, frame_id) links a master to the frames it was built from.
- `expiry`: per frame type, the age in days after which a master counts as expired.
- `light_calibration`, `light_masters`: per light, the outcome of calibrating it and which
  masters it used; a trigger marks lights for recalibration when one of those is superseded.
- `captures`: captures in progress, which sequences report so `indical needs` can show them.
- `bad_pixel_maps`: bad pixel maps, a master type of their own (with `bayer_pattern` as masters).
- `camera_sensors`: per camera, 'cmos' (the default) or 'ccd' (`indical library sensor`).

Times are UTC ISO 8601 text. Tables and indexes are SQLAlchemy `Table` objects compiled for
each database; the trigger is the one object written twice (SQLite's and PostgreSQL's syntax
for trigger bodies have nothing in common). `offset` is a reserved word in PostgreSQL: queries
write it quoted (`quoted`).
"""

from __future__ import annotations

import os
import threading
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Union

from indical.errors import IndicalError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

#: What `--library` names: an SQLite file, or a PostgreSQL URL (kept as text).
LibraryTarget = Union[Path, str]

_URL_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


class LibraryError(IndicalError):
    """The library database can't be opened or used; names the file or the database."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


def is_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(_URL_SCHEMES)


def library_target(text: str | os.PathLike) -> LibraryTarget:
    """A `--library` value: a PostgreSQL URL stays text; anything else is a file path."""
    if is_url(text):
        return str(text)
    return Path(text).expanduser()


def display_name(target: LibraryTarget) -> str:
    """How messages name a library: its path, or its URL without a password."""
    if not is_url(target):
        return str(target)
    from sqlalchemy.engine import make_url
    return make_url(str(target)).render_as_string(hide_password=True)


# -- the schema ---------------------------------------------------------------------------------

def quoted(columns) -> str:
    """Column names for SQL text, each quoted (PostgreSQL reserves `offset`)."""
    return ", ".join(f'"{c}"' for c in columns)


def _migrations() -> tuple[tuple[Any, ...], ...]:
    """Migration N is the N-th entry: steps run in one transaction, with the new number. A step
    is portable SQL text, a Table or Index (created IF NOT EXISTS, compiled for the database),
    {dialect name: SQL text or tuple of texts}, or a function given the connection (data that
    SQL alone can't redo alike on both databases). IF NOT EXISTS throughout: SQLite files written
    before the migrations were numbered (indical up to December 2026 wrote user_version 1 and
    created the status tables of migration 2 on first use, without changing the number) may
    already hold some of these objects."""
    from sqlalchemy import (CheckConstraint, Column, Double, ForeignKey, Index, Integer,
                            MetaData, Table, Text, text)
    from sqlalchemy.dialects.sqlite import REAL

    # 8-byte floats on both (PostgreSQL's REAL is 4 bytes); SQLite files keep writing REAL
    real = Double().with_variant(REAL(), "sqlite")
    md = MetaData()

    def config_columns() -> list[Column]:
        return [Column("camera", Text, nullable=False, server_default=""),
                Column("readout_mode", Text), Column("gain", real), Column("offset", real),
                Column("xbin", Integer, nullable=False, server_default=text("1")),
                Column("ybin", Integer, nullable=False, server_default=text("1")),
                Column("width", Integer, nullable=False), Column("height", Integer, nullable=False)]

    frames = Table(
        "frames", md,
        Column("id", Integer, primary_key=True),
        Column("path", Text, nullable=False, unique=True),
        Column("sha256", Text, nullable=False, unique=True),
        Column("frame_type", Text, nullable=False),
        *config_columns(),
        Column("filter", Text), Column("exposure_s", real, nullable=False),
        Column("sensor_temp_c", real), Column("setpoint_temp_c", real),
        Column("bayer_pattern", Text), Column("date_obs", Text),
        Column("median_adu", real), Column("mad_adu", real),
        Column("ingested_at", Text, nullable=False))
    masters = Table(
        "masters", md,
        Column("id", Integer, primary_key=True),
        Column("path", Text, nullable=False, unique=True),
        Column("frame_type", Text, nullable=False),
        *config_columns(),
        Column("filter", Text), Column("exposure_s", real, nullable=False),
        Column("temperature_c", real),
        Column("group_key", Text, nullable=False), Column("method", Text, nullable=False),
        Column("parameters", Text, nullable=False, server_default="{}"),
        Column("precal", Text, nullable=False, server_default="none"),
        Column("n_frames", Integer, nullable=False), Column("created_at", Text, nullable=False),
        Column("superseded_by", Integer, ForeignKey("masters.id")))
    master_sources = Table(
        "master_sources", md,
        Column("master_id", Integer, ForeignKey("masters.id"), primary_key=True),
        Column("frame_id", Integer, ForeignKey("frames.id"), primary_key=True))
    expiry = Table(
        "expiry", md,
        Column("frame_type", Text, primary_key=True),
        Column("max_age_days", real, nullable=False))
    light_calibration = Table(
        "light_calibration", md,
        Column("path", Text, primary_key=True),
        Column("frame_id", Integer),
        Column("status", Text, nullable=False),
        Column("reason", Text, nullable=False, server_default=""),
        Column("missing", Text, nullable=False, server_default="[]"),
        Column("warnings", Text, nullable=False, server_default="[]"),
        Column("output", Text), Column("night", Text),
        Column("updated_at", Text, nullable=False),
        Column("needs_recal", Integer, nullable=False, server_default=text("0")))
    light_masters = Table(
        "light_masters", md,
        Column("light_path", Text, ForeignKey("light_calibration.path", ondelete="CASCADE"),
               primary_key=True),
        Column("kind", Text, primary_key=True),
        Column("master_id", Integer, nullable=False),
        Column("master_path", Text, nullable=False),
        Column("master_created", Text, nullable=False))
    captures = Table(
        "captures", md,
        Column("id", Integer, primary_key=True),
        Column("sequence", Text, nullable=False), Column("description", Text, nullable=False),
        Column("target", Integer, nullable=False),
        Column("done", Integer, nullable=False, server_default=text("0")),
        Column("started_at", Text, nullable=False), Column("updated_at", Text, nullable=False),
        Column("finished", Integer, nullable=False, server_default=text("0")))
    bad_pixel_maps = Table(
        "bad_pixel_maps", md,
        Column("id", Integer, primary_key=True),
        Column("path", Text, nullable=False, unique=True),
        *config_columns(),
        Column("temperature_c", real),
        Column("dark_master_id", Integer), Column("flat_master_id", Integer),
        Column("n_hot", Integer, nullable=False), Column("n_cold", Integer, nullable=False),
        Column("n_dead", Integer, nullable=False),
        Column("created_at", Text, nullable=False), Column("superseded_by", Integer))
    camera_sensors = Table(
        "camera_sensors", md,
        Column("camera", Text, primary_key=True),
        Column("sensor", Text, CheckConstraint("sensor IN ('cmos', 'ccd')"), nullable=False))

    # When a newer master replaces one that calibrated a light, the light is marked for
    # recalibration, whoever records the new master.
    recal = ("UPDATE light_calibration SET needs_recal = 1 WHERE status = 'calibrated' AND path "
             "IN (SELECT light_path FROM light_masters WHERE master_id = NEW.id AND kind != 'bpm')")
    trigger = {
        "sqlite": f"""CREATE TRIGGER IF NOT EXISTS light_recal_on_supersede
            AFTER UPDATE OF superseded_by ON masters
            WHEN NEW.superseded_by IS NOT NULL AND OLD.superseded_by IS NULL
            BEGIN
                {recal};
            END""",
        "postgresql": (
            f"""CREATE OR REPLACE FUNCTION light_recal_on_supersede() RETURNS trigger
            LANGUAGE plpgsql AS $$ BEGIN {recal}; RETURN NULL; END $$""",
            """CREATE OR REPLACE TRIGGER light_recal_on_supersede
            AFTER UPDATE OF superseded_by ON masters FOR EACH ROW
            WHEN (NEW.superseded_by IS NOT NULL AND OLD.superseded_by IS NULL)
            EXECUTE FUNCTION light_recal_on_supersede()"""),
    }
    return (
        # 1: frames and masters.
        (frames, Index("frames_config", frames.c.frame_type, frames.c.camera, frames.c.xbin,
                       frames.c.ybin, frames.c["filter"]),
         masters, Index("masters_key", masters.c.group_key, masters.c.superseded_by),
         master_sources, expiry),
        # 2: light status, captures in progress, bad pixel maps (created by the status store on
        # first use before they were numbered).
        (light_calibration,
         Index("light_calibration_status", light_calibration.c.status,
               light_calibration.c.needs_recal),
         light_masters, Index("light_masters_master", light_masters.c.kind,
                              light_masters.c.master_id),
         captures, bad_pixel_maps, trigger),
        # 3: why a flat master's precalibration was chosen; which light made a flat (PANEL or
        # SKY), so counts, groups and masters keep panel and sky flats apart; each camera's
        # sensor type (a CCD's flats may take the bias plus a dark scaled by exposure).
        ("ALTER TABLE masters ADD COLUMN precal_reason TEXT NOT NULL DEFAULT ''",
         "ALTER TABLE masters ADD COLUMN flat_source TEXT",
         "ALTER TABLE frames ADD COLUMN flat_source TEXT",
         camera_sensors),
        # 4: one-shot-colour sensors. A frame's Bayer offsets (XBAYROFF, YBAYROFF) beside its
        # BAYERPAT; masters and bad pixel maps keep the pattern at their pixel (0, 0) with the
        # offsets applied (the phase a light must have to use them; NULL: mono).
        ("ALTER TABLE frames ADD COLUMN bayer_offset_x INTEGER NOT NULL DEFAULT 0",
         "ALTER TABLE frames ADD COLUMN bayer_offset_y INTEGER NOT NULL DEFAULT 0",
         "ALTER TABLE masters ADD COLUMN bayer_pattern TEXT",
         "ALTER TABLE bad_pixel_maps ADD COLUMN bayer_pattern TEXT"),
        # 5: masters built before 4 from colour frames get their sources' pattern (those frames'
        # offsets were not recorded: taken as 0), bad pixel maps their masters'; otherwise colour
        # lights would find them mono. Imported masters have no sources and stay NULL.
        ("""UPDATE masters SET bayer_pattern = (
                SELECT UPPER(TRIM(f.bayer_pattern)) FROM master_sources s
                JOIN frames f ON f.id = s.frame_id
                WHERE s.master_id = masters.id
                  AND UPPER(TRIM(f.bayer_pattern)) IN ('RGGB', 'BGGR', 'GRBG', 'GBRG')
                ORDER BY f.id LIMIT 1)
            WHERE bayer_pattern IS NULL""",
         """UPDATE bad_pixel_maps SET bayer_pattern = (
                SELECT m.bayer_pattern FROM masters m
                WHERE m.id = COALESCE(bad_pixel_maps.dark_master_id,
                                      bad_pixel_maps.flat_master_id))
            WHERE bayer_pattern IS NULL"""),
        # 6: masters from before 4 and those built since are one configuration: imported
        # masters read their pattern from their own file, colour masters' group keys carry the
        # pattern, and current masters that now share a key supersede each other in the order
        # they were recorded (indical/calib/colour_upgrade.py; a Python step: it reads files
        # and rewrites JSON text the same way on both databases).
        (_colour_upgrade,),
    )


def _colour_upgrade(conn: "Connection") -> None:
    from indical.calib.colour_upgrade import upgrade
    upgrade(conn)


#: The schema version this indical writes and understands (the number of migrations).
SCHEMA_VERSION = 6

_KNOWN_TABLES = {"frames", "masters", "master_sources", "expiry", "light_calibration",
                 "light_masters", "captures", "bad_pixel_maps", "camera_sensors",
                 "schema_version"}


# -- connections --------------------------------------------------------------------------------

class LibraryDB:
    """One connection to a library database, upgraded to SCHEMA_VERSION when opened.

    `transaction()` is one atomic change (SQLite: `BEGIN IMMEDIATE`, so writers queue behind
    each other; PostgreSQL: READ COMMITTED, with the unique constraints and advisory locks the
    callers take where two writers could race). `rows()` reads. Thread-safe: one thread at a
    time uses the connection. Raises LibraryError naming the file or database when it can't be
    used; nothing is left open then."""

    def __init__(self, target: LibraryTarget) -> None:
        self.target = library_target(target) if isinstance(target, str) else Path(target)
        self.name = display_name(self.target)
        self.postgres = is_url(self.target)
        self._lock = threading.RLock()
        self._engine = self._conn = None
        try:
            if self.postgres:
                self._open_postgres()
            else:
                self._open_sqlite()
        except BaseException:
            self.close()
            raise

    # -- opening
    def _open_sqlite(self) -> None:
        from sqlalchemy import create_engine, event
        from sqlalchemy.exc import DBAPIError
        from sqlalchemy.pool import NullPool

        path = self.target
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LibraryError(path, f"can't create its folder ({exc.strerror or exc})") from exc
        created = not path.exists()
        self._engine = create_engine(
            "sqlite://", creator=lambda: _sqlite_connect(path), poolclass=NullPool)

        @event.listens_for(self._engine, "begin")
        def _begin(conn) -> None:
            # pysqlite's own transaction handling is off (see _sqlite_connect): indical says
            # BEGIN itself, IMMEDIATE for writes so two writers never deadlock on an upgrade
            conn.exec_driver_sql(conn.info.get("indical_begin", "BEGIN"))

        try:
            self._conn = self._engine.connect()
            self._migrate()
        except DBAPIError as exc:
            self.close()
            if created:  # an empty file made by this failed attempt helps nobody
                for suffix in ("", "-wal", "-shm", "-journal"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
            raise LibraryError(path, _open_problem(path, exc.orig, "not a usable calibration "
                                                   f"library ({exc.orig})")) from exc

    def _open_postgres(self) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
        from sqlalchemy.pool import NullPool

        try:
            url = make_url(self.target).set(drivername="postgresql+psycopg")
            self._engine = create_engine(url, poolclass=NullPool)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            hint = (" (install indical's PostgreSQL support: pip install 'indical[postgresql]')"
                    if isinstance(exc, (NoSuchModuleError, ImportError)) else "")
            raise LibraryError(self.name, f"not a usable database URL: {exc}{hint}") from exc
        try:
            self._conn = self._engine.connect()
        except DBAPIError as exc:
            raise LibraryError(self.name, f"can't connect to the database "
                                          f"({str(exc.orig).strip()})") from exc
        try:
            self._migrate()
        except DBAPIError as exc:
            raise LibraryError(self.name, f"not a usable calibration library "
                                          f"({str(exc.orig).strip()})") from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def __enter__(self) -> "LibraryDB":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- use
    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator["Connection"]:
        """One atomic change: committed on success, rolled back on any exception (Ctrl-C
        too)."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise LibraryError(self.name, "the library is closed")
            conn.info["indical_begin"] = "BEGIN IMMEDIATE" if write else "BEGIN"
            with conn.begin():
                yield conn

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        """The rows a query returns, read in a transaction of their own."""
        from sqlalchemy import text
        with self.transaction(write=False) as conn:
            return [tuple(r) for r in conn.execute(text(sql), params or {})]

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        """Run one statement in a transaction of its own; the number of rows it changed."""
        from sqlalchemy import text
        with self.transaction() as conn:
            return conn.execute(text(sql), params or {}).rowcount

    def lock(self, conn: "Connection", key: str) -> None:
        """Hold `key` until the transaction on `conn` ends: PostgreSQL's transaction-level
        advisory lock, so writers on other machines that take the same key queue behind this
        one (SQLite's BEGIN IMMEDIATE already queues every writer)."""
        if self.postgres:
            from sqlalchemy import text
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_id(key)})

    @contextmanager
    def held(self, key: str, *, shared: bool = False, wait: bool = True) -> Iterator[bool]:
        """Hold `key` across transactions (PostgreSQL's session-level advisory lock; released
        at the end, or by the server when this process dies). Yields False when `wait` is False
        and another session holds it. On SQLite it is always granted: one machine's writers
        already queue on the file."""
        if not self.postgres:
            yield True
            return
        from sqlalchemy import text
        kind = "_shared" if shared else ""
        fn = f"pg{'' if wait else '_try'}_advisory_lock{kind}"
        with self._lock:  # (not across the yield: other threads go on using the connection)
            got = self._conn.execute(text(f"SELECT {fn}(:k)"), {"k": _lock_id(key)}).scalar()
            self._conn.commit()
        got = True if wait else bool(got)
        try:
            yield got
        finally:
            if got:
                with self._lock:
                    self._conn.execute(text(f"SELECT pg_advisory_unlock{kind}(:k)"),
                                       {"k": _lock_id(key)})
                    self._conn.commit()

    # -- the schema version and migrations
    def version(self, conn: "Connection") -> int:
        if not self.postgres:
            return int(conn.exec_driver_sql("PRAGMA user_version").scalar())
        from sqlalchemy import text
        exists = conn.execute(text("SELECT to_regclass('schema_version')")).scalar()
        if exists is None:
            return 0
        return int(conn.execute(text("SELECT version FROM schema_version")).scalar() or 0)

    def _migrate(self) -> int:
        """Apply the migrations the database lacks, all in one transaction; returns the version
        it had. Safe when several processes open a new library at once: the version is read
        again under the write lock (SQLite) or an advisory lock (PostgreSQL)."""
        with self.transaction(write=False) as conn:
            version = self.version(conn)
            self._check_version(conn, version)
        if version == SCHEMA_VERSION:
            return version
        with self.transaction() as conn:
            self.lock(conn, "migrate")
            version = self.version(conn)
            self._check_version(conn, version)
            for steps in migrations()[version:]:
                for step in steps:
                    self._run_step(conn, step)
            if self.postgres:
                conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS schema_version "
                                     "(version INTEGER NOT NULL)")
                conn.exec_driver_sql("DELETE FROM schema_version")
                conn.exec_driver_sql(f"INSERT INTO schema_version VALUES ({SCHEMA_VERSION})")
            else:
                conn.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return version

    def _run_step(self, conn: "Connection", step: Any) -> None:
        from sqlalchemy import Index, Table
        from sqlalchemy.schema import CreateIndex, CreateTable
        if isinstance(step, Table):
            conn.execute(CreateTable(step, if_not_exists=True))
        elif isinstance(step, Index):
            conn.execute(CreateIndex(step, if_not_exists=True))
        elif isinstance(step, dict):
            texts = step[conn.dialect.name]
            for sql in (texts,) if isinstance(texts, str) else texts:
                conn.exec_driver_sql(sql)
        elif callable(step):
            step(conn)
        else:
            conn.exec_driver_sql(step)

    def _check_version(self, conn: "Connection", version: int) -> None:
        if version > SCHEMA_VERSION:
            raise LibraryError(self.name, f"schema version {version} is newer than this indical "
                                          f"understands ({SCHEMA_VERSION}); upgrade indical")
        if version == 0:
            from sqlalchemy import inspect
            foreign = sorted(set(inspect(conn).get_table_names()) - _KNOWN_TABLES)
            if foreign:
                what = "a PostgreSQL" if self.postgres else "an SQLite"
                where = "--library URL" if self.postgres else "--library path"
                raise LibraryError(self.name, f"is {what} database of something else (tables "
                                              f"{', '.join(foreign)}), not a calibration "
                                              f"library; give another {where}")


def migrations() -> tuple[tuple[Any, ...], ...]:
    """The migrations, built at first use (SQLAlchemy's schema module costs an import)."""
    global _MIGRATIONS
    if _MIGRATIONS is None:
        _MIGRATIONS = _migrations()
        assert len(_MIGRATIONS) == SCHEMA_VERSION
    return _MIGRATIONS


_MIGRATIONS: tuple[tuple[Any, ...], ...] | None = None


def _lock_id(key: str) -> int:
    """A 64-bit advisory lock number for a text key (crc32 in the high half to spread keys,
    adler32 in the low half), the same on every machine."""
    data = f"indical:{key}".encode()
    value = (zlib.crc32(data) << 32) | zlib.adler32(data)
    return value - (1 << 64) if value >= 1 << 63 else value


#: How long a connection waits for other writers (SQLite's busy timeout, and the retries of
#: the switch to WAL below).
_SQLITE_TIMEOUT_S = 30.0


def _sqlite_connect(path: Path):
    """A connection in WAL mode. Switching a new file to WAL needs it alone: SQLite answers
    "database is locked" at once (its busy handler is not asked) or, on a file another
    connection is creating that instant, "disk I/O error", when several processes open a new
    library together. Both are retried on a fresh connection for a while; a file already in
    WAL mode (every library after its first opening) is only read."""
    import random
    import sqlite3
    import time
    deadline = time.monotonic() + _SQLITE_TIMEOUT_S
    io_retries = 50
    while True:
        # isolation_level=None: autocommit at the driver, transactions begun by LibraryDB
        con = sqlite3.connect(path, timeout=_SQLITE_TIMEOUT_S, check_same_thread=False,
                              isolation_level=None)
        try:
            if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                con.execute("PRAGMA journal_mode=WAL")
            # WAL commits stay atomic with NORMAL; only a power cut may lose the last ones
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("PRAGMA foreign_keys=ON")
            return con
        except sqlite3.OperationalError as exc:
            con.close()
            words = str(exc)
            if "locked" in words and time.monotonic() < deadline:
                pass
            elif "disk I/O error" in words and io_retries > 0:
                io_retries -= 1
            else:
                raise
            time.sleep(random.uniform(0.005, 0.05))
        except BaseException:
            con.close()
            raise


def _open_problem(path: Path, exc: BaseException, otherwise: str) -> str:
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


def open_library_db(target: LibraryTarget) -> LibraryDB:
    """The library database at `target` (an SQLite file, created if missing, or a PostgreSQL
    URL), upgraded to SCHEMA_VERSION."""
    return LibraryDB(target)
