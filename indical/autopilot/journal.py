"""What the autopilot decided and did: the journal (one JSON line per task decision, for people
and scripts) and the state (a small SQLite file, the truth a restart reads).

A task's row is written `running` before it starts and its outcome when it ends, each in a
transaction; the journal line follows the outcome, and a line lost to a crash between the two
is written on the next start. So after a reboot or `kill -9` nothing that finished runs again,
and what was running is resumed (the sequences take only the frames still missing)."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

OUTCOMES = ("done", "skipped", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS task_runs (
    night TEXT NOT NULL,
    task TEXT NOT NULL,
    status TEXT NOT NULL,          -- running, done, skipped, failed
    reason TEXT NOT NULL DEFAULT '',
    start TEXT NOT NULL,
    end TEXT,
    frames INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 1,
    journalled INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (night, task)
);
CREATE TABLE IF NOT EXISTS arrivals (
    path TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    night TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Entry:
    """One journal line."""

    night: str
    task: str
    outcome: str
    reason: str
    start: str
    end: str
    frames: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=False)


def stamp(t: datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).isoformat(timespec="seconds")


class Journal:
    """Appends JSON lines, each flushed and synced before the call returns."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, entry: Entry) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(entry.to_json() + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def entries(self) -> list[Entry]:
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(Entry(**json.loads(line)))
            except (ValueError, TypeError):
                continue  # a line cut short by a crash: the state database has the truth
        return out


@dataclass(frozen=True)
class TaskRun:
    night: str
    task: str
    status: str
    reason: str
    start: str
    end: str | None
    frames: int
    attempts: int


class State:
    """The autopilot's state database: task runs per night, lights seen on arrival."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def run(self, night: str, task: str) -> TaskRun | None:
        row = self._db.execute("SELECT night, task, status, reason, start, end, frames, attempts "
                               "FROM task_runs WHERE night = ? AND task = ?",
                               (night, task)).fetchone()
        return None if row is None else TaskRun(*row)

    def runs(self) -> list[TaskRun]:
        rows = self._db.execute("SELECT night, task, status, reason, start, end, frames, attempts "
                                "FROM task_runs ORDER BY start").fetchall()
        return [TaskRun(*r) for r in rows]

    def begin(self, night: str, task: str, start: datetime) -> int:
        """Mark a task running; returns which attempt this is (2 after an interruption)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            prev = self.run(night, task)
            attempts = 1 if prev is None else prev.attempts + 1
            self._db.execute(
                "INSERT OR REPLACE INTO task_runs (night, task, status, reason, start, end, "
                "frames, attempts, journalled) VALUES (?, ?, 'running', '', ?, NULL, 0, ?, 0)",
                (night, task, stamp(start), attempts))
        return attempts

    def finish(self, entry: Entry) -> None:
        """Record a task's outcome; the journal line is written by `journal_pending`."""
        if entry.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {entry.outcome!r}")
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO task_runs (night, task, status, reason, start, end, frames, "
                "attempts, journalled) VALUES (?, ?, ?, ?, ?, ?, ?, 1, 0) "
                "ON CONFLICT (night, task) DO UPDATE SET status = excluded.status, "
                "reason = excluded.reason, end = excluded.end, frames = excluded.frames, "
                "journalled = 0",
                (entry.night, entry.task, entry.outcome, entry.reason, entry.start, entry.end,
                 entry.frames))

    def journal_pending(self, journal: Journal) -> int:
        """Write the journal lines of finished runs not journalled yet (all of them normally
        just one; after a crash, the one the crash cut off unless the journal has it)."""
        rows = self._db.execute(
            "SELECT night, task, status, reason, start, end, frames FROM task_runs "
            "WHERE journalled = 0 AND status != 'running' ORDER BY start").fetchall()
        if not rows:
            return 0
        have = {(e.night, e.task, e.outcome, e.end) for e in journal.entries()}
        for night, task, status, reason, start, end, frames in rows:
            if (night, task, status, end) not in have:
                journal.append(Entry(night, task, status, reason, start, end or start, frames))
            with self._db:
                self._db.execute("UPDATE task_runs SET journalled = 1 WHERE night = ? AND "
                                 "task = ?", (night, task))
        return len(rows)

    def interrupted(self) -> list[TaskRun]:
        return [r for r in self.runs() if r.status == "running"]

    # -- lights seen on arrival ---------------------------------------------------------------
    def arrival(self, path: str) -> tuple[int, int, str] | None:
        row = self._db.execute("SELECT size, mtime_ns, outcome FROM arrivals WHERE path = ?",
                               (path,)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def record_arrival(self, path: str, task: str, night: str, size: int, mtime_ns: int,
                       outcome: str, reason: str, at: datetime) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR REPLACE INTO arrivals (path, task, night, size, mtime_ns, "
                             "outcome, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (path, task, night, size, mtime_ns, outcome, reason, stamp(at)))

    # -- small facts: the first night, for --nights ----------------------------------------------
    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set(self, key: str, value: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                             (key, value))
