"""Calibration status of every light, kept in the calibration library's database.

Its tables (`light_calibration`, `light_masters` and the trigger that marks lights for
recalibration when a master they used is superseded, `captures`, `bad_pixel_maps`) are created
with the library's by `indical.calib.db`.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable

from indical.calib.config import CameraConfig, column_names as config_columns
from indical.calib.db import open_library_db
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
    """Reads and writes light status in the library database at `db_path` (its own connection,
    so it works beside the library's in the same process)."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self._lock = threading.Lock()
        self._db = open_library_db(self.db_path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "StatusStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, status: LightStatus, used: Iterable[MasterInfo] = ()) -> None:
        """Store one light's outcome (replacing the previous one) in one transaction."""
        used = list(used)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM light_masters WHERE light_path = ?", (status.path,))
                self._db.execute(
                    "INSERT INTO light_calibration (path, frame_id, status, reason, missing, "
                    "warnings, output, night, updated_at, needs_recal) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (path) DO UPDATE SET "
                    "frame_id = excluded.frame_id, status = excluded.status, "
                    "reason = excluded.reason, missing = excluded.missing, "
                    "warnings = excluded.warnings, output = excluded.output, "
                    "night = excluded.night, updated_at = excluded.updated_at, needs_recal = 0",
                    (status.path, status.frame_id, status.status.value, status.reason,
                     json.dumps(list(status.missing)), json.dumps(list(status.warnings)),
                     status.output, status.night, status.updated_at or _iso_now()))
                self._db.executemany(
                    "INSERT INTO light_masters (light_path, kind, master_id, master_path, "
                    "master_created) VALUES (?, ?, ?, ?, ?)",
                    [(status.path, m.kind.value, m.id, str(m.path),
                      m.created.isoformat(timespec="seconds")) for m in used])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get(self, path: str | Path) -> LightStatus | None:
        rows = self._select("WHERE path = ?", (str(path),), one=str(path))
        return rows[0] if rows else None

    def all(self) -> list[LightStatus]:
        return self._select("ORDER BY night, path", ())

    def to_redo(self) -> list[LightStatus]:
        """Lights marked for recalibration and lights that had no masters last time."""
        return self._select("WHERE needs_recal = 1 OR status = 'no_masters' ORDER BY path", ())

    def mark_superseded(self, master_ids: Iterable[int], kind: str | None = None) -> int:
        """Mark lights calibrated with these masters for recalibration (what the trigger does
        for library masters; used for bad pixel maps). Returns how many were marked."""
        ids = list(master_ids)
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        sql = (f"UPDATE light_calibration SET needs_recal = 1 WHERE status = 'calibrated' AND "
               f"path IN (SELECT light_path FROM light_masters WHERE master_id IN ({marks})"
               + (" AND kind = ?)" if kind else ")"))
        with self._lock:
            cur = self._db.execute(sql, (*ids, kind) if kind else tuple(ids))
        return cur.rowcount

    def per_night(self) -> dict[str, dict[str, int]]:
        """{night: {status: count, 'recalibrate': count}} for the report."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            rows = self._db.execute(
                "SELECT COALESCE(night, '?'), status, needs_recal, COUNT(*) FROM light_calibration "
                "GROUP BY 1, 2, 3 ORDER BY 1").fetchall()
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
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = {"path": str(info.path), **info.config.columns(),
                       "dark_master_id": dark_master_id, "flat_master_id": flat_master_id,
                       "n_hot": counts[0], "n_cold": counts[1], "n_dead": counts[2],
                       "created_at": info.created.isoformat(timespec="seconds")}
                cur = self._db.execute(
                    f"INSERT INTO bad_pixel_maps ({', '.join(row)}) "
                    f"VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
                new_id = int(cur.lastrowid)
                key = info.config.key_columns()
                same = " AND ".join(f"{col} IS ?" for col in key)
                old = [i for (i,) in self._db.execute(
                    f"SELECT id FROM bad_pixel_maps WHERE superseded_by IS NULL AND id != ? "
                    f"AND {same}", (new_id, *key.values())).fetchall()]
                for i in old:
                    self._db.execute("UPDATE bad_pixel_maps SET superseded_by = ? WHERE id = ?",
                                     (new_id, i))
                    self._db.execute(
                        "UPDATE light_calibration SET needs_recal = 1 WHERE status = 'calibrated' "
                        "AND path IN (SELECT light_path FROM light_masters WHERE kind = 'bpm' "
                        "AND master_id = ?)", (i,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return dataclasses.replace(info, id=new_id)

    def bad_pixel_maps(self) -> list[MasterInfo]:
        cols = ("id", "path", *config_columns(), "created_at", "superseded_by")
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(cols)} FROM bad_pixel_maps").fetchall()
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
        now = _iso_now()
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO captures (sequence, description, target, done, started_at, "
                "updated_at) VALUES (?, ?, ?, 0, ?, ?)", (sequence, description, target, now, now))
        return int(cur.lastrowid)

    def capture_progress(self, capture_id: int, done: int, *, finished: bool = False) -> None:
        with self._lock:
            self._db.execute("UPDATE captures SET done = ?, updated_at = ?, finished = ? "
                             "WHERE id = ?", (done, _iso_now(), int(finished), capture_id))

    def captures_in_progress(self, max_silence_h: float = 2.0,
                             now: datetime | None = None) -> list[dict]:
        """Captures not finished that reported progress in the last `max_silence_h` hours (a
        sequence killed outright never says it finished; it should not show forever)."""
        now = now or datetime.now(timezone.utc)
        since = (now - timedelta(hours=max_silence_h)).isoformat(timespec="seconds")
        with self._lock:
            rows = self._db.execute(
                "SELECT id, sequence, description, target, done, started_at, updated_at "
                "FROM captures WHERE finished = 0 AND updated_at >= ? ORDER BY started_at",
                (since,)).fetchall()
        keys = ("id", "sequence", "description", "target", "done", "started_at", "updated_at")
        return [dict(zip(keys, r)) for r in rows]

    # -- plumbing -----------------------------------------------------------------------------
    def _select(self, where: str, params: tuple, one: str | None = None) -> list[LightStatus]:
        with self._lock:
            rows = self._db.execute(
                "SELECT path, frame_id, status, reason, missing, warnings, output, night, "
                f"updated_at, needs_recal FROM light_calibration {where}", params).fetchall()
            used: dict[str, list[UsedMaster]] = {}
            sql = ("SELECT light_path, kind, master_id, master_path, master_created "
                   "FROM light_masters" + (" WHERE light_path = ?" if one else "") +
                   " ORDER BY kind")
            for lp, kind, mid, mpath, created in self._db.execute(
                    sql, (one,) if one else ()).fetchall():
                used.setdefault(lp, []).append(UsedMaster(kind, mid, mpath, created))
        return [LightStatus(path=p, frame_id=fid, status=Status(s), reason=r,
                            missing=tuple(json.loads(mi)), warnings=tuple(json.loads(w)),
                            output=o, night=n, updated_at=u, needs_recal=bool(nr),
                            masters=tuple(used.get(p, ())))
                for p, fid, s, r, mi, w, o, n, u, nr in rows]
