"""The exposure log: each line is in the file when `add` returns (a killed process loses none),
its fsync runs on a thread of the log's own, not in the sequence's way, `close` fsyncs the last
lines, and a failed fsync is raised with the log's path."""

import errno
import os
import subprocess
import sys
import threading

import pytest

from indical.sequence.log import ExposureLog, LogEntry, read_log


def _entry(i: int) -> LogEntry:
    return LogEntry(time=f"2026-12-03T06:00:{i:02d}.000", kind="flat", filter="L",
                    brightness=100, exposure=1.5, level=20000.0 + i, target=20000.0,
                    accepted=True, reason="in band")


def test_lines_are_in_the_file_while_their_fsync_is_still_running(tmp_path, monkeypatch):
    """A slow disk's fsync holds up neither `add` nor the lines' visibility; `close` waits
    for and fsyncs everything written."""
    release = threading.Event()
    synced: list[tuple[str, int]] = []   # (thread, file size the fsync covered)
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        if threading.current_thread() is not threading.main_thread():
            release.wait(10)
        synced.append((threading.current_thread().name, os.fstat(fd).st_size))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    path = tmp_path / "logs" / "run.jsonl"
    log = ExposureLog(path)
    for i in range(5):
        log.add(_entry(i))
    # every line is readable by another reader now, though no fsync has finished
    assert [e["level"] for e in read_log(path)] == [20000.0 + i for i in range(5)]
    assert synced == [] and not release.is_set()
    release.set()
    log.close()
    size = path.stat().st_size
    assert synced and synced[-1] == ("MainThread", size)
    assert all(name != "MainThread" for name, _ in synced[:-1])


def test_a_killed_process_loses_no_line(tmp_path):
    """SIGKILL while the log's fsync never returns: every line added is in the file."""
    path = tmp_path / "run.jsonl"
    child = subprocess.Popen([sys.executable, "-c", f"""
import os, sys, time
os.fsync = lambda fd: time.sleep(3600)          # a disk that never confirms
from indical.sequence.log import ExposureLog, LogEntry
log = ExposureLog({str(path)!r})
for i in range(3):
    log.add(LogEntry(time=f"2026-12-03T06:00:{{i:02d}}.000", kind="flat", filter="L",
                     brightness=100, exposure=1.5, level=20000.0 + i, target=20000.0,
                     accepted=True, reason="in band"))
print("added", flush=True)
time.sleep(3600)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "added\n"
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -9
    assert [e["time"][-6:] for e in read_log(path)] == ["00.000", "01.000", "02.000"]


def test_a_failed_fsync_is_raised_with_the_path(tmp_path, monkeypatch):
    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    path = tmp_path / "run.jsonl"
    log = ExposureLog(path)
    log.add(_entry(0))
    with pytest.raises(OSError, match=r"run\.jsonl: exposure log not synced to disk"):
        log.close()
    assert [e["time"] for e in read_log(path)] == [_entry(0).time]   # the line is there


def test_no_path_no_file():
    log = ExposureLog(None)
    log.add(_entry(0))
    log.close()
    assert [e.level for e in log.entries] == [20000.0]
