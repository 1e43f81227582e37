"""Trained flat settings: the brightness and exposure that put a configuration on target last
time, so the next run starts there, checks with one frame, and searches only if it is off.

Keyed by everything that changes the answer: camera, filter name and slot, binning, gain,
offset, readout mode and panel. A small SQLite file; the default lives in the user's data
folder ($XDG_DATA_HOME/indical, usually ~/.local/share/indical)."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

from indical.errors import IndicalError


@dataclass(frozen=True)
class FlatKey:
    camera: str
    filter: str | None
    filter_slot: int | None
    binning: str
    gain: float | None
    offset: float | None
    readout_mode: str | None
    panel: str


@dataclass(frozen=True)
class TrainedFlat:
    brightness: int | None
    exposure_s: float
    level_adu: float
    target_adu: float
    when: datetime


def default_store_path() -> Path:
    from indical.user_dirs import data_dir
    return data_dir() / "trained_flats.sqlite"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS trained_flats (
    camera TEXT NOT NULL, filter TEXT NOT NULL, filter_slot INTEGER NOT NULL,
    binning TEXT NOT NULL, gain REAL NOT NULL, offset REAL NOT NULL,
    readout_mode TEXT NOT NULL, panel TEXT NOT NULL,
    brightness INTEGER, exposure_s REAL NOT NULL, level_adu REAL NOT NULL,
    target_adu REAL NOT NULL, trained_at TEXT NOT NULL,
    PRIMARY KEY (camera, filter, filter_slot, binning, gain, offset, readout_mode, panel)
)
"""

# SQL NULLs never compare equal, so absent values are stored as sentinels in the key.
_NONE_TEXT = ""
_NONE_NUMBER = -1e300


def _key_values(key: FlatKey) -> tuple:
    return (key.camera, key.filter if key.filter is not None else _NONE_TEXT,
            key.filter_slot if key.filter_slot is not None else 0, key.binning,
            key.gain if key.gain is not None else _NONE_NUMBER,
            key.offset if key.offset is not None else _NONE_NUMBER,
            key.readout_mode if key.readout_mode is not None else _NONE_TEXT, key.panel)


class TrainedStore:
    """Read and write trained settings. Each call opens its own short transaction."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise IndicalError(f"{self.path}: can't open the trained-settings store ({exc}); "
                               "pass another path or fix the permissions") from exc

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for one transaction: committed on success, always closed."""
        db = sqlite3.connect(self.path, timeout=10)
        try:
            with db:
                yield db
        finally:
            db.close()

    def get(self, key: FlatKey) -> TrainedFlat | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT brightness, exposure_s, level_adu, target_adu, trained_at FROM trained_flats "
                "WHERE camera=? AND filter=? AND filter_slot=? AND binning=? AND gain=? AND offset=? "
                "AND readout_mode=? AND panel=?", _key_values(key)).fetchone()
        if row is None:
            return None
        return TrainedFlat(row[0], row[1], row[2], row[3], datetime.fromisoformat(row[4]))

    def put(self, key: FlatKey, value: TrainedFlat) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO trained_flats VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                _key_values(key) + (value.brightness, value.exposure_s, value.level_adu,
                                    value.target_adu, value.when.isoformat()))

    def all(self) -> list[tuple[FlatKey, TrainedFlat]]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM trained_flats ORDER BY camera, filter").fetchall()
        out = []
        for r in rows:
            key = FlatKey(r[0], r[1] or None, r[2] or None, r[3],
                          None if r[4] == _NONE_NUMBER else r[4],
                          None if r[5] == _NONE_NUMBER else r[5], r[6] or None, r[7])
            out.append((key, TrainedFlat(r[8], r[9], r[10], r[11], datetime.fromisoformat(r[12]))))
        return out
