"""What the exposure log's line costs the sequence per flat: `ExposureLog.add` now (the line
written and flushed to the file, its fsync on the log's own thread) against the log before
(the same line, then `os.fsync` on the sequence's thread), in the same run, on the same disk.

Two settings: a quiet disk, and one where a frame writer (as the write-behind sink does during
the next exposure) writes and fsyncs a 16 MB frame (8 MP of 16 bits) per line in another
thread, which is when an fsync waits longest. Each case alternates with the other, line by line
in rounds, so both see the same disk. Figures: the time `add` takes per line, median, 95th
percentile and max, in ms.
Run: .venv/bin/python benchmarks/bench_exposure_log.py [FOLDER]  (default: a temporary folder
under the repository, i.e. the disk the frames go to)"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from indical.sequence.log import ExposureLog, LogEntry

LINES = 200
BUSY_LINES = 30
FRAME_BYTES = 16 << 20    # an 8-megapixel frame of 16 bits


def _entry(i: int) -> LogEntry:
    return LogEntry(time=f"2026-12-03T06:00:00.{i % 1000:03d}", kind="flat", filter="L",
                    brightness=120, exposure=2.5, level=21000.0 + i, target=21000.0,
                    accepted=True, reason="in band", path=f"/frames/flat_L_{i:04d}.fits",
                    extra={"sun_alt": -4.321})


class _FsyncInline(ExposureLog):
    """The log before: each line fsync'd on the caller's thread."""

    def add(self, entry: LogEntry) -> None:
        super().add(entry)
        os.fsync(self._fh.fileno())  # type: ignore[union-attr]


def _frames(folder: Path, stop: threading.Event, go: threading.Semaphore) -> None:
    block = os.urandom(1 << 20)
    n = 0
    while not stop.is_set():
        if not go.acquire(timeout=0.1):
            continue
        path = folder / f"frame{n % 2}.fits"
        with open(path, "wb") as fh:
            for _ in range(FRAME_BYTES >> 20):
                fh.write(block)
            fh.flush()
            os.fsync(fh.fileno())
        n += 1


def _run(folder: Path, busy: bool) -> dict[str, list[float]]:
    logs = {"before: fsync inline": _FsyncInline(folder / "before.jsonl"),
            "now: fsync on the log's thread": ExposureLog(folder / "now.jsonl")}
    times: dict[str, list[float]] = {name: [] for name in logs}
    stop, go = threading.Event(), threading.Semaphore(0)
    writer = threading.Thread(target=_frames, args=(folder, stop, go), daemon=True)
    if busy:
        writer.start()
    try:
        for i in range(BUSY_LINES if busy else LINES):
            for name, log in logs.items():
                if busy:
                    go.release()
                    time.sleep(0.02)        # the frame is on its way to the disk
                t0 = time.perf_counter()
                log.add(_entry(i))
                times[name].append((time.perf_counter() - t0) * 1000)
                time.sleep(0.005)           # the rest of the sequence between two flats
    finally:
        stop.set()
        if busy:
            writer.join()
        for log in logs.values():
            log.close()
    return times


def main() -> None:
    base = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(dir=base, prefix=".bench-log-") as tmp:
        print(f"{LINES} lines per case quiet, {BUSY_LINES} busy, disk of {base}; load {os.getloadavg()[0]:.1f}")
        print(f"{'disk':<34}{'case':<34}{'median':>8}{'p95':>8}{'max':>8}  (ms per line)")
        for busy in (False, True):
            for name, ms in _run(Path(tmp), busy).items():
                ms.sort()
                print(f"{'busy: 16 MB frame per line' if busy else 'quiet':<34}{name:<34}"
                      f"{statistics.median(ms):8.3f}{ms[int(0.95 * len(ms))]:8.3f}"
                      f"{ms[-1]:8.3f}")


if __name__ == "__main__":
    main()
