"""Calibration status of every light, kept in the calibration library's database.

Its tables (`light_calibration`, `light_masters` and the trigger that marks lights for
recalibration when a master they used is superseded, `captures`, `bad_pixel_maps`) are created
with the library's by `indical.calib.db`.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable

from indical.calib.config import CameraConfig, column_names as config_columns
from indical.calib.db import LibraryTarget, library_target, open_library_db, quoted
from indical.calib.match import MasterInfo, MasterKind


class Status(enum.Enum):
    CALIBRATED = "calibrated"
    FAILED = "failed"
    NO_MASTERS = "no_masters"


@dataclass(frozen=True)
class UsedMaster:
    kind: str
    id: int
    path: str
    created: str


@dataclass(frozen=True)
class LightStatus:
    path: str
    status: Status
    reason: str = ""
    missing: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    output: str | None = None
    night: str | None = None
    frame_id: int | None = None
    updated_at: str = ""
    needs_recal: bool = False
    masters: tuple[UsedMaster, ...] = field(default=())


def _iso_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class StatusStore:
    """Reads and writes light status in the library database at `db_path` (a file or a
    postgresql:// URL; its own connection, so it works beside the library's in the same
    process)."""

    def __init__(self, db_path: LibraryTarget) -> None:
        self.db_path = library_target(db_path) if isinstance(db_path, str) else Path(db_path)
        self._db = open_library_db(self.db_path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "StatusStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, status: LightStatus, used: Iterable[MasterInfo] = ()) -> None:
        """Store one light's outcome (replacing the previous one) in one transaction."""
        from sqlalchemy import text
        used = list(used)
        with self._db.transaction() as db:
            # the light's row first: its lock makes a second process recording the same light
            # wait, then replace these masters rather than clash with them
            db.execute(text(
                "INSERT INTO light_calibration (path, frame_id, status, reason, missing, "
                "warnings, output, night, updated_at, needs_recal) VALUES (:path, :frame_id, "
                ":status, :reason, :missing, :warnings, :output, :night, :updated_at, 0) "
                "ON CONFLICT (path) DO UPDATE SET "
                "frame_id = excluded.frame_id, status = excluded.status, "
                "reason = excluded.reason, missing = excluded.missing, "
                "warnings = excluded.warnings, output = excluded.output, "
                "night = excluded.night, updated_at = excluded.updated_at, needs_recal = 0"),
                {"path": status.path, "frame_id": status.frame_id, "status": status.status.value,
                 "reason": status.reason, "missing": json.dumps(list(status.missing)),
                 "warnings": json.dumps(list(status.warnings)), "output": status.output,
                 "night": status.night, "updated_at": status.updated_at or _iso_now()})
            db.execute(text("DELETE FROM light_masters WHERE light_path = :path"),
                       {"path": status.path})
            if used:
                db.execute(text(
                    "INSERT INTO light_masters (light_path, kind, master_id, master_path, "
                    "master_created) VALUES (:light, :kind, :id, :path, :created)"),
                    [{"light": status.path, "kind": m.kind.value, "id": m.id, "path": str(m.path),
                      "created": m.created.isoformat(timespec="seconds")} for m in used])

    def get(self, path: str | Path) -> LightStatus | None:
        rows = self._select("WHERE path = :path", {"path": str(path)}, one=str(path))
        return rows[0] if rows else None

    def all(self) -> list[LightStatus]:
        return self._select("ORDER BY night NULLS FIRST, path", {})

    def to_redo(self) -> list[LightStatus]:
        """Lights marked for recalibration and lights that had no masters last time."""
        return self._select("WHERE needs_recal = 1 OR status = 'no_masters' ORDER BY path", {})

    def mark_superseded(self, master_ids: Iterable[int], kind: str | None = None) -> int:
        """Mark lights calibrated with these masters for recalibration (what the trigger does
        for library masters; used for bad pixel maps). Returns how many were marked."""
        ids = [int(i) for i in master_ids]
        if not ids:
            return 0
        params: dict = {f"id{i}": v for i, v in enumerate(ids)}
        marks = ", ".join(f":{k}" for k in params)
        if kind:
            params["kind"] = kind
        return self._db.execute(
            f"UPDATE light_calibration SET needs_recal = 1 WHERE status = 'calibrated' AND "
            f"path IN (SELECT light_path FROM light_masters WHERE master_id IN ({marks})"
            + (" AND kind = :kind)" if kind else ")"), params)

    def per_night(self) -> dict[str, dict[str, int]]:
        """{night: {status: count, 'recalibrate': count}} for the report."""
        out: dict[str, dict[str, int]] = {}
        rows = self._db.rows(
            "SELECT COALESCE(night, '?'), status, needs_recal, COUNT(*) FROM light_calibration "
            "GROUP BY 1, 2, 3 ORDER BY 1")
        for night, status, recal, n in rows:
            d = out.setdefault(night, {})
            d[status] = d.get(status, 0) + n
            if recal:
                d["recalibrate"] = d.get("recalibrate", 0) + n
        return out

    # -- bad pixel maps (a master type of their own; the library's masters are bias/dark/flat)
    def add_bad_pixel_map(self, info: MasterInfo, *, dark_master_id: int | None,
                          flat_master_id: int | None, counts: tuple[int, int, int]) -> MasterInfo:
        """Record a bad pixel map (its file complete on disk); it supersedes current maps of
        the same camera configuration and marks lights flagged with those for recalibration."""
        from sqlalchemy import column, select, table, text
        row = {"path": str(info.path), **info.config.columns(),
               "dark_master_id": dark_master_id, "flat_master_id": flat_master_id,
               "n_hot": int(counts[0]), "n_cold": int(counts[1]), "n_dead": int(counts[2]),
               "created_at": info.created.isoformat(timespec="seconds")}
        key = info.config.key_columns()
        maps = table("bad_pixel_maps", column("id"), column("superseded_by"),
                     *(column(c) for c in key))
        with self._db.transaction() as db:
            self._db.lock(db, "bad_pixel_maps")  # one at a time: each supersedes the last
            new_id = int(db.execute(text(
                f"INSERT INTO bad_pixel_maps ({quoted(row)}) VALUES "
                f"({', '.join(':' + c for c in row)}) RETURNING id"), row).scalar_one())
            # the same configuration, NULLs equal (SQLite's IS, PostgreSQL's IS NOT DISTINCT
            # FROM: SQLAlchemy writes each)
            old = [i for (i,) in db.execute(select(maps.c.id).where(
                maps.c.superseded_by.is_(None), maps.c.id != new_id,
                *(maps.c[c].is_not_distinct_from(v) for c, v in key.items())))]
            for i in old:
                db.execute(text("UPDATE bad_pixel_maps SET superseded_by = :new WHERE id = :old"),
                           {"new": new_id, "old": i})
                db.execute(text(
                    "UPDATE light_calibration SET needs_recal = 1 WHERE status = 'calibrated' "
                    "AND path IN (SELECT light_path FROM light_masters WHERE kind = 'bpm' "
                    "AND master_id = :old)"), {"old": i})
        return dataclasses.replace(info, id=new_id)

    def bad_pixel_maps(self) -> list[MasterInfo]:
        cols = ("id", "path", *config_columns(), "created_at", "superseded_by")
        rows = self._db.rows(f"SELECT {quoted(cols)} FROM bad_pixel_maps")
        out = []
        for row in rows:
            r = dict(zip(cols, row))
            out.append(MasterInfo(id=r["id"], kind=MasterKind.BPM, path=Path(r["path"]),
                                  config=CameraConfig.from_columns(r),
                                  created=datetime.fromisoformat(r["created_at"]),
                                  superseded=r["superseded_by"] is not None))
        return out

    # -- captures in progress -----------------------------------------------------------------
    def begin_capture(self, sequence: str, description: str, target: int) -> int:
        from sqlalchemy import text
        now = _iso_now()
        with self._db.transaction() as db:
            return int(db.execute(text(
                "INSERT INTO captures (sequence, description, target, done, started_at, "
                "updated_at) VALUES (:sequence, :description, :target, 0, :now, :now) "
                "RETURNING id"), {"sequence": sequence, "description": description,
                                  "target": int(target), "now": now}).scalar_one())

    def capture_progress(self, capture_id: int, done: int, *, finished: bool = False) -> None:
        self._db.execute("UPDATE captures SET done = :done, updated_at = :now, "
                         "finished = :finished WHERE id = :id",
                         {"done": int(done), "now": _iso_now(), "finished": int(finished),
                          "id": capture_id})

    def captures_in_progress(self, max_silence_h: float = 2.0,
                             now: datetime | None = None) -> list[dict]:
        """Captures not finished that reported progress in the last `max_silence_h` hours (a
        sequence killed outright never says it finished; it should not show forever)."""
        now = now or datetime.now(timezone.utc)
        since = (now - timedelta(hours=max_silence_h)).isoformat(timespec="seconds")
        rows = self._db.rows(
            "SELECT id, sequence, description, target, done, started_at, updated_at "
            "FROM captures WHERE finished = 0 AND updated_at >= :since ORDER BY started_at",
            {"since": since})
        keys = ("id", "sequence", "description", "target", "done", "started_at", "updated_at")
        return [dict(zip(keys, r)) for r in rows]

    # -- plumbing -----------------------------------------------------------------------------
    def _select(self, where: str, params: dict, one: str | None = None) -> list[LightStatus]:
        from sqlalchemy import text
        with self._db.transaction(write=False) as db:
            rows = db.execute(text(
                "SELECT path, frame_id, status, reason, missing, warnings, output, night, "
                f"updated_at, needs_recal FROM light_calibration {where}"), params).all()
            used: dict[str, list[UsedMaster]] = {}
            sql = ("SELECT light_path, kind, master_id, master_path, master_created "
                   "FROM light_masters" + (" WHERE light_path = :one" if one else "") +
                   " ORDER BY kind")
            for lp, kind, mid, mpath, created in db.execute(
                    text(sql), {"one": one} if one else {}).all():
                used.setdefault(lp, []).append(UsedMaster(kind, mid, mpath, created))
        return [LightStatus(path=p, frame_id=fid, status=Status(s), reason=r,
                            missing=tuple(json.loads(mi)), warnings=tuple(json.loads(w)),
                            output=o, night=n, updated_at=u, needs_recal=bool(nr),
                            masters=tuple(used.get(p, ())))
                for p, fid, s, r, mi, w, o, n, u, nr in rows]
