"""The calibration library: an index of frames and masters in an SQLite file (WAL mode) or a
PostgreSQL database that several machines share.

The tables and their migrations are in `indical.calib.db`. A file is always complete on disk
before a row points at it (writes are atomic), and each change is one transaction, so a crash
leaves the database consistent. Times are UTC ISO 8601.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from indical.calib.config import CameraConfig, column_names as config_columns
from indical.calib.db import LibraryError, LibraryTarget, is_url, open_library_db, quoted
from indical.calib.ingest import FrameRecord, find_fits, inspect_file
from indical.errors import FitsError
from indical.fits.keywords import meta_flat_source
from indical.frame import Binning, FrameMeta, FrameType
from indical.sinks import FrameQuery

_FRAME_COLS = quoted((
    "id", "path", "sha256", "frame_type", "camera", "readout_mode", "gain", "offset", "xbin",
    "ybin", "width", "height", "filter", "exposure_s", "sensor_temp_c", "setpoint_temp_c",
    "bayer_pattern", "date_obs", "median_adu", "mad_adu", "flat_source", "bayer_offset_x",
    "bayer_offset_y"))
_MASTER_FIELDS = ("id", "path", "frame_type", *config_columns(), "filter", "exposure_s",
                  "group_key", "method", "parameters", "precal", "n_frames", "created_at",
                  "superseded_by", "precal_reason", "flat_source")
_MASTER_COLS = quoted(_MASTER_FIELDS)

# Default expiry ages (days): bias drifts slowly, flats change with dust and every filter swap.
DEFAULT_EXPIRY_DAYS = {FrameType.BIAS: 180.0, FrameType.DARK: 90.0, FrameType.DARKFLAT: 30.0,
                       FrameType.FLAT: 30.0}


def default_library_path() -> LibraryTarget:
    """$INDICAL_LIBRARY (a file or a postgresql:// URL), else
    $XDG_DATA_HOME/indical/library/library.sqlite (usually
    ~/.local/share/indical/library/library.sqlite)."""
    from indical.calib.db import library_target
    from indical.user_dirs import data_dir
    env = os.environ.get("INDICAL_LIBRARY")
    if env:
        return library_target(env)
    return data_dir() / "library" / "library.sqlite"


def default_library_root(target: LibraryTarget) -> Path:
    """Where a library keeps its frames and masters: beside an SQLite file; for a PostgreSQL
    library $INDICAL_LIBRARY_ROOT (a folder every machine sees at the same path), else
    $XDG_DATA_HOME/indical/library."""
    if not is_url(target):
        return Path(target).parent
    from indical.user_dirs import data_dir
    env = os.environ.get("INDICAL_LIBRARY_ROOT")
    return Path(env).expanduser() if env else data_dir() / "library"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def _time(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text)


@dataclass(frozen=True)
class MasterRecord:
    """A master in the library: its file, configuration, how it was made and whether a newer one
    of the same configuration replaced it."""

    path: str
    frame_type: FrameType
    config: CameraConfig
    filter: str | None
    exposure_s: float
    group_key: str
    method: str
    parameters: dict[str, Any] = field(default_factory=dict)
    precal: str = "none"
    precal_reason: str = ""
    flat_source: str | None = None
    n_frames: int = 0
    created_at: datetime = field(default_factory=_now)
    superseded_by: int | None = None
    id: int | None = None

    @property
    def current(self) -> bool:
        return self.superseded_by is None

    def age(self, now: datetime | None = None) -> timedelta:
        return (now or _now()) - self.created_at


@dataclass
class IngestResult:
    """Outcome of `CalibrationLibrary.ingest`: new rows, files already known, files skipped."""

    added: list[FrameRecord] = field(default_factory=list)
    known: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


class CalibrationLibrary:
    """Index of frames and masters in an SQLite file or a PostgreSQL database (`db_path`: a
    path or a postgresql:// URL); frames written by the sink go under `root/frames/NIGHT/` and
    masters under `root/masters/` (see `default_library_root`). Safe for several threads,
    processes and (on PostgreSQL) machines at once."""

    def __init__(self, db_path: LibraryTarget | None = None, *, root: Path | None = None) -> None:
        from indical.calib.db import library_target
        self.db_path = library_target(db_path) if db_path is not None else default_library_path()
        self.root = Path(root) if root is not None else default_library_root(self.db_path)
        self._db = open_library_db(self.db_path)

    @property
    def name(self) -> str:
        """The library as messages name it (its file, or its URL without a password)."""
        return self._db.name

    @property
    def db(self):
        """The library's database connection (`indical.calib.db.LibraryDB`)."""
        return self._db

    @property
    def frames_dir(self) -> Path:
        return self.root / "frames"

    @property
    def masters_dir(self) -> Path:
        return self.root / "masters"

    # -- plumbing -----------------------------------------------------------------------------
    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "CalibrationLibrary":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _query(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
        return self._db.rows(sql, params)

    # -- frames -------------------------------------------------------------------------------
    def add_frame(self, record: FrameRecord) -> tuple[FrameRecord, bool]:
        """Index a frame. Returns (record with id, True) when new; (existing record, False) when
        the same content is already known (its path is updated if the old file is gone)."""
        from sqlalchemy import text
        m = record.meta
        row = {"path": record.path, "sha256": record.sha256, "frame_type": m.frame_type.value,
               "camera": m.camera, "readout_mode": m.readout_mode, "gain": m.gain,
               "offset": m.offset, "xbin": m.binning.x, "ybin": m.binning.y,
               "width": record.width, "height": record.height, "filter": m.filter,
               "exposure_s": m.exposure_s, "sensor_temp_c": m.sensor_temp_c,
               "setpoint_temp_c": m.setpoint_temp_c, "bayer_pattern": m.bayer_pattern,
               "date_obs": _iso(m.start), "median_adu": _finite(record.median_adu),
               "mad_adu": _finite(record.mad_adu), "ingested_at": _iso(_now()),
               "flat_source": meta_flat_source(m) if m.frame_type is FrameType.FLAT else None,
               "bayer_offset_x": m.bayer_offset_x, "bayer_offset_y": m.bayer_offset_y}
        find = text(f"SELECT {_FRAME_COLS} FROM frames WHERE sha256 = :sha256 OR path = :path")
        # Another process may insert the same file between the look-up and the insert (on
        # PostgreSQL nothing queues them): the unique path and sha256 make that insert a no-op,
        # and the look-up, run again, finds the other's row.
        insert = text(f"INSERT INTO frames ({quoted(row)}) VALUES "
                      f"({', '.join(':' + c for c in row)}) ON CONFLICT DO NOTHING RETURNING id")
        with self._db.transaction() as db:
            for _ in range(3):
                found = db.execute(find, row).first()
                if found is not None:
                    break
                new_id = db.execute(insert, row).scalar()
                if new_id is not None:
                    return replace(record, id=new_id), True
            else:
                raise LibraryError(record.path, "indexed and removed again by another process "
                                                "three times over; run again")
            known = _frame_from_row(tuple(found))
            if known.sha256 == record.sha256 and known.path != record.path \
                    and not Path(known.path).exists():
                db.execute(text("UPDATE frames SET path = :path WHERE id = :id"),
                           {"path": record.path, "id": known.id})
                known = replace(known, path=record.path)
            elif known.path == record.path and known.sha256 != record.sha256:
                raise LibraryError(record.path, "the file changed since it was indexed; "
                                                "frames must not be edited in place")
            return known, False

    def ingest(self, paths: Iterable[Path], *, frame_type: FrameType | None = None,
               progress: Callable[[Path], None] | None = None) -> IngestResult:
        """Inspect and index FITS files (folders are searched recursively). Bad files are
        skipped with the reason; known content is not indexed twice."""
        result = IngestResult()
        for path in find_fits(paths):
            try:
                record = inspect_file(path, frame_type=frame_type)
            except FitsError as exc:
                result.skipped.append((path, exc.problem))
            else:
                stored, new = self.add_frame(record)
                (result.added.append(stored) if new else result.known.append(path))
            if progress is not None:
                progress(path)
        return result

    def frames(self, query: FrameQuery | None = None, *, frame_type: FrameType | None = None,
               ids: Iterable[int] | None = None) -> list[FrameRecord]:
        """Frames matching a query (or of a type, or by id), oldest first."""
        where, params = _frame_where(query, frame_type)
        if ids is not None:
            id_list = list(ids)
            where.append(f"id IN ({', '.join(f':id{i}' for i in range(len(id_list)))})"
                         if id_list else "FALSE")
            params.update((f"id{i}", int(v)) for i, v in enumerate(id_list))
        sql = f"SELECT {_FRAME_COLS} FROM frames"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_frame_from_row(r) for r in self._query(sql + " ORDER BY date_obs NULLS FIRST, id", params)]

    def count(self, query: FrameQuery) -> int:
        """How many indexed frames match (the FrameSink question, answered by the database)."""
        where, params = _frame_where(query, None)
        sql = "SELECT COUNT(*) FROM frames" + (" WHERE " + " AND ".join(where) if where else "")
        return int(self._query(sql, params)[0][0])

    def frame_by_path(self, path: Path) -> FrameRecord | None:
        rows = self._query(f"SELECT {_FRAME_COLS} FROM frames WHERE path = :path",
                           {"path": str(Path(path).resolve())})
        return _frame_from_row(rows[0]) if rows else None

    def missing_files(self) -> list[str]:
        """Indexed frame and master paths whose files are gone (moved or deleted by hand)."""
        rows = self._query("SELECT path FROM frames UNION ALL SELECT path FROM masters")
        return [p for (p,) in rows if not Path(p).exists()]

    def unindexed_masters(self) -> list[Path]:
        """Master files under masters/ that no row refers to: a build killed after writing the
        file and before indexing it (the database never points at them; sweep removes them)."""
        if not self.masters_dir.exists():
            return []
        known = {p for (p,) in self._query("SELECT path FROM masters")}
        return sorted(p for p in self.masters_dir.iterdir()
                      if p.is_file() and not p.name.startswith(".") and str(p.resolve()) not in known)

    # -- masters ------------------------------------------------------------------------------
    def add_master(self, master: MasterRecord, source_ids: Iterable[int], *,
                   temperature_tol_c: float = 2.0) -> MasterRecord:
        """Record a master (its file must already be complete on disk) and, in the same
        transaction, mark current masters of the same configuration (same group_key, temperature
        within the tolerance) as superseded by it."""
        if not Path(master.path).is_file():
            raise LibraryError(master.path, "master file does not exist; write it before indexing")
        sources = sorted(set(int(i) for i in source_ids))
        row = {"path": master.path, "frame_type": master.frame_type.value,
               **master.config.columns(), "filter": master.filter,
               "exposure_s": master.exposure_s, "group_key": master.group_key,
               "method": master.method,
               "parameters": json.dumps(master.parameters, sort_keys=True),
               "precal": master.precal, "n_frames": master.n_frames,
               "created_at": _iso(master.created_at), "precal_reason": master.precal_reason,
               "flat_source": master.flat_source}
        from sqlalchemy import text
        with self._db.transaction() as db:
            # masters of one configuration are recorded one at a time, so each sees the one
            # recorded before it and supersedes it (on PostgreSQL two could otherwise both
            # stay current)
            self._db.lock(db, f"masters:{master.group_key}")
            new_id = db.execute(text(f"INSERT INTO masters ({quoted(row)}) VALUES "
                                     f"({', '.join(':' + c for c in row)}) RETURNING id"),
                                row).scalar_one()
            if sources:
                db.execute(text("INSERT INTO master_sources (master_id, frame_id) "
                                "VALUES (:master_id, :frame_id)"),
                           [{"master_id": new_id, "frame_id": fid} for fid in sources])
            for old_id, old_t in db.execute(text(
                    "SELECT id, temperature_c FROM masters WHERE group_key = :key AND id != :id "
                    "AND superseded_by IS NULL"), {"key": master.group_key, "id": new_id}).all():
                new_t = master.config.temperature_c
                same_temp = (old_t is None and new_t is None) or (
                    old_t is not None and new_t is not None
                    and abs(old_t - new_t) <= temperature_tol_c)
                if same_temp:
                    db.execute(text("UPDATE masters SET superseded_by = :new WHERE id = :old"),
                               {"new": new_id, "old": old_id})
        return replace(master, id=new_id)

    def masters(self, *, frame_type: FrameType | None = None, include_superseded: bool = False,
                group_key: str | None = None) -> list[MasterRecord]:
        """Masters, newest first; current ones only unless asked."""
        where, params = [], {}
        if frame_type is not None:
            where.append("frame_type = :frame_type")
            params["frame_type"] = frame_type.value
        if not include_superseded:
            where.append("superseded_by IS NULL")
        if group_key is not None:
            where.append("group_key = :group_key")
            params["group_key"] = group_key
        sql = f"SELECT {_MASTER_COLS} FROM masters"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_master_from_row(r) for r in self._query(sql + " ORDER BY created_at DESC, id DESC", params)]

    def master_sources(self, master_id: int) -> list[FrameRecord]:
        ids = [i for (i,) in self._query("SELECT frame_id FROM master_sources "
                                         "WHERE master_id = :id", {"id": master_id})]
        return self.frames(ids=ids)

    def frame_ids_in_current_masters(self) -> set[int]:
        rows = self._query("SELECT s.frame_id FROM master_sources s JOIN masters m "
                           "ON m.id = s.master_id WHERE m.superseded_by IS NULL")
        return {i for (i,) in rows}

    # -- expiry -------------------------------------------------------------------------------
    # -- sensor types -------------------------------------------------------------------------
    def set_sensor(self, camera: str, sensor: str) -> None:
        """Say whether `camera` has a CMOS or a CCD sensor (how flats are precalibrated when no
        dark of their exposure exists, and how lights are calibrated)."""
        if sensor not in ("cmos", "ccd"):
            raise ValueError(f"sensor must be 'cmos' or 'ccd', got {sensor!r}")
        self._db.execute("INSERT INTO camera_sensors (camera, sensor) VALUES (:camera, :sensor) "
                         "ON CONFLICT (camera) DO UPDATE SET sensor = excluded.sensor",
                         {"camera": camera, "sensor": sensor})

    def sensor_of(self, camera: str) -> str:
        """'ccd' or 'cmos' (the default for a camera not set)."""
        rows = self._query("SELECT sensor FROM camera_sensors WHERE camera = :camera",
                           {"camera": camera})
        return rows[0][0] if rows else "cmos"

    def sensors(self) -> dict[str, str]:
        return dict(self._query("SELECT camera, sensor FROM camera_sensors ORDER BY camera"))

    def set_expiry(self, frame_type: FrameType, max_age_days: float) -> None:
        if not max_age_days > 0:
            raise ValueError(f"expiry age must be positive, got {max_age_days}")
        self._db.execute("INSERT INTO expiry (frame_type, max_age_days) VALUES (:kind, :days) "
                         "ON CONFLICT (frame_type) DO UPDATE SET "
                         "max_age_days = excluded.max_age_days",
                         {"kind": frame_type.value, "days": float(max_age_days)})

    def expiry_days(self, frame_type: FrameType) -> float:
        rows = self._query("SELECT max_age_days FROM expiry WHERE frame_type = :kind",
                           {"kind": frame_type.value})
        return float(rows[0][0]) if rows else DEFAULT_EXPIRY_DAYS.get(frame_type, 30.0)

    def is_expired(self, master: MasterRecord, now: datetime | None = None) -> bool:
        return master.age(now) > timedelta(days=self.expiry_days(master.frame_type))


def _finite(x: float) -> float | None:
    return x if x == x and abs(x) != float("inf") else None


def _frame_where(query: FrameQuery | None,
                 frame_type: FrameType | None) -> tuple[list[str], dict[str, Any]]:
    where: list[str] = []
    params: dict[str, Any] = {}
    if frame_type is not None:
        where.append("frame_type = :type")
        params["type"] = frame_type.value
    if query is None:
        return where, params
    where.append("frame_type = :q_type")
    params["q_type"] = query.frame_type.value
    for col, value in (("camera", query.camera), ("filter", query.filter), ("gain", query.gain),
                       ("offset", query.offset), ("readout_mode", query.readout_mode)):
        if value is not None:
            where.append(f'"{col}" = :{col}')
            params[col] = value
    if query.binning is not None:
        where.append("xbin = :xbin AND ybin = :ybin")
        params.update(xbin=query.binning.x, ybin=query.binning.y)
    if query.exposure_s is not None:
        where.append("ABS(exposure_s - :exposure_s) <= :exposure_tol")
        params.update(exposure_s=float(query.exposure_s),
                      exposure_tol=query.exposure_rel_tol * max(query.exposure_s, 1e-6))
    if query.since is not None:
        where.append("date_obs IS NOT NULL AND date_obs >= :since")
        params["since"] = _iso(query.since)
    if query.flat_source is not None:
        where.append("flat_source = :flat_source")
        params["flat_source"] = query.flat_source
    if query.temperature_c is not None:
        where.append("ABS(COALESCE(sensor_temp_c, setpoint_temp_c) - :temp) <= :temp_tol")
        params.update(temp=float(query.temperature_c), temp_tol=float(query.temperature_tol_c))
    return where, params


def _frame_from_row(row: tuple) -> FrameRecord:
    (fid, path, sha, kind, camera, mode, gain, offset, xbin, ybin, width, height, filt, exp,
     temp, setp, bayer, date_obs, med, mad, source, bayer_x, bayer_y) = row
    meta = FrameMeta(frame_type=FrameType(kind), exposure_s=exp, camera=camera, gain=gain,
                     offset=offset, binning=Binning(xbin, ybin), readout_mode=mode,
                     sensor_temp_c=temp, setpoint_temp_c=setp, filter=filt,
                     start=_time(date_obs), bayer_pattern=bayer, flat_source=source,
                     bayer_offset_x=bayer_x or 0, bayer_offset_y=bayer_y or 0)
    return FrameRecord(path=path, sha256=sha, meta=meta, width=width, height=height,
                       median_adu=med if med is not None else float("nan"),
                       mad_adu=mad if mad is not None else float("nan"), id=fid)


def _master_from_row(row: tuple) -> MasterRecord:
    r = dict(zip(_MASTER_FIELDS, row))
    return MasterRecord(path=r["path"], frame_type=FrameType(r["frame_type"]),
                        config=CameraConfig.from_columns(r), filter=r["filter"],
                        exposure_s=r["exposure_s"], group_key=r["group_key"], method=r["method"],
                        parameters=json.loads(r["parameters"]), precal=r["precal"],
                        n_frames=r["n_frames"], created_at=_time(r["created_at"]),
                        superseded_by=r["superseded_by"], precal_reason=r["precal_reason"],
                        flat_source=r["flat_source"], id=r["id"])
