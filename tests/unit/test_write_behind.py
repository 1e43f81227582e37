"""Frames written while the next exposure runs: names known at once, files whole, failures
raised, nothing left unwritten at the end, the library indexed."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import numpy as np
import pytest

from indical.calib.library import CalibrationLibrary
from indical.calib.sink import LibrarySink
from indical.fits.io import read_frame, write_frame
from indical.frame import Binning, Frame, FrameMeta, FrameType
from indical.sinks import FitsFolderSink, FrameQuery
from indical.write_behind import WriteBehindSink, write_behind

META = FrameMeta(frame_type=FrameType.FLAT, exposure_s=1.5, camera="Cam", gain=100.0,
                 offset=20.0, binning=Binning(1, 1), bit_depth=16, filter="R",
                 start=datetime(2026, 3, 20, 18, 0, 1, tzinfo=timezone.utc))


def _frame(value: int, shape=(64, 48)) -> Frame:
    return Frame(np.full(shape, value, dtype=np.uint16), META)


class _HeldSink(FitsFolderSink):
    """The real folder sink, its writes held until the test lets them go: shows what the
    sequence sees while a write is still under way."""

    def __init__(self, root):
        super().__init__(root)
        self.go = threading.Event()

    def write(self, frame, **kw):
        self.go.wait(10)
        return super().write(frame, **kw)


def test_write_returns_the_name_at_once_and_the_file_follows(tmp_path):
    inner = _HeldSink(tmp_path)
    sink = WriteBehindSink(inner, depth=2)
    try:
        t0 = time.monotonic()
        paths = [sink.write(_frame(v)) for v in (1, 2)]
        assert time.monotonic() - t0 < 1.0          # nothing waited for the disk
        assert [p.name for p in paths] == ["flat_R_1.5s_1x1_0001.fits",
                                           "flat_R_1.5s_1x1_0002.fits"]
        assert not any(p.exists() for p in paths)
        inner.go.set()
        sink.flush()
        assert [int(read_frame(p).data[0, 0]) for p in paths] == [1, 2]
        assert sink.count(FrameQuery(FrameType.FLAT)) == 2
    finally:
        inner.go.set()
        sink.close()


def test_a_sequence_faster_than_the_disk_waits_for_it(tmp_path):
    inner = _HeldSink(tmp_path)
    sink = WriteBehindSink(inner, depth=1)
    try:
        sink.write(_frame(1))                      # taken by the writer, held
        time.sleep(0.2)
        sink.write(_frame(2))                      # waits in the queue
        third = threading.Thread(target=sink.write, args=(_frame(3),))
        third.start()
        third.join(0.5)
        assert third.is_alive()                    # memory bounded: the third one waits
        inner.go.set()
        third.join(5)
        sink.flush()
        assert len(list(tmp_path.rglob("*.fits"))) == 3
    finally:
        inner.go.set()
        sink.close()


def test_a_failed_write_is_raised_by_the_next_call_naming_the_file(tmp_path):
    inner = _HeldSink(tmp_path)
    sink = WriteBehindSink(inner)
    first = sink.write(_frame(1))
    first.parent.parent.mkdir(parents=True, exist_ok=True)
    first.parent.write_text("not a folder")        # the night's folder can't be made
    inner.go.set()
    with pytest.raises(OSError):
        sink.flush()
    assert sink.where(first) is None
    sink.close()                                   # raised once, not again


def test_close_raises_a_failure_not_yet_raised(tmp_path):
    inner = _HeldSink(tmp_path)
    sink = WriteBehindSink(inner)
    first = sink.write(_frame(1))
    first.parent.parent.mkdir(parents=True, exist_ok=True)
    first.parent.write_text("not a folder")
    inner.go.set()
    with pytest.raises(OSError):
        sink.close()


def test_a_name_taken_meanwhile_by_another_program_moves_the_frame_on(tmp_path):
    inner = _HeldSink(tmp_path)
    sink = WriteBehindSink(inner)
    reserved = sink.write(_frame(7))
    write_frame(_frame(99), reserved)              # another program, first
    inner.go.set()
    sink.close()
    actual = sink.where(reserved)
    assert actual is not None and actual != reserved
    assert int(read_frame(actual).data[0, 0]) == 7
    assert int(read_frame(reserved).data[0, 0]) == 99


def test_rejected_frames_and_other_calls_see_the_writes_first(tmp_path):
    sink = WriteBehindSink(FitsFolderSink(tmp_path))
    try:
        kept = sink.write(_frame(1))
        rejected = sink.write_rejected(_frame(2), "drifted")
        assert rejected.parent.name == "rejected"
        moved = sink.reject(kept, "stack")          # passed through after the write
        assert moved.exists() and not kept.exists()
        assert sink.root == tmp_path
    finally:
        sink.close()


def test_the_library_is_indexed_by_the_writer(tmp_path):
    with CalibrationLibrary(tmp_path / "lib.sqlite") as library:
        sink = write_behind(LibrarySink(library))
        assert isinstance(sink, WriteBehindSink)
        paths = [sink.write(_frame(v)) for v in (1000, 1001, 1002)]
        assert sink.count(FrameQuery(FrameType.FLAT)) == 3
        sink.close()
        assert all(p.exists() for p in paths)


def test_frames_waiting_at_exit_are_written(tmp_path):
    script = f"""
import time, numpy as np
from pathlib import Path
from datetime import datetime, timezone
from indical.frame import Frame, FrameMeta, FrameType
from indical.sinks import FitsFolderSink
from indical.write_behind import WriteBehindSink

class Slow(FitsFolderSink):
    def write(self, frame, **kw):
        time.sleep(0.3)
        return super().write(frame, **kw)

meta = FrameMeta(frame_type=FrameType.FLAT, exposure_s=1.0,
                 start=datetime(2026, 3, 20, 18, tzinfo=timezone.utc))
sink = WriteBehindSink(Slow(Path({str(tmp_path)!r})), depth=3)
for v in range(3):
    sink.write(Frame(np.full((8, 8), v, np.uint16), meta))
# the program ends here without closing the sink
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    files = sorted(tmp_path.rglob("*.fits"))
    assert [int(read_frame(p).data[0, 0]) for p in files] == [0, 1, 2]
    assert not list(tmp_path.rglob(".*"))          # no temporary file left behind


def _appears(path, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.02)
    return False


def test_a_frame_is_written_once_the_next_exposure_is_requested(tmp_path):
    """The writer keeps its pass over the frame and its flush to disk out of the time between
    the frame's arrival and the next request: it starts when the sequence requests the next
    exposure (`starting_exposure`)."""
    sink = WriteBehindSink(FitsFolderSink(tmp_path), hold_s=30.0)
    try:
        path = sink.write(_frame(5))
        assert not _appears(path, 0.5)              # held while the sequence decides
        sink.starting_exposure()
        assert _appears(path, 10.0)                 # written during the exposure, no flush
        assert int(read_frame(path).data[0, 0]) == 5
    finally:
        sink.close()


def test_a_held_frame_is_written_after_hold_s_without_a_next_exposure(tmp_path):
    sink = WriteBehindSink(FitsFolderSink(tmp_path), hold_s=0.3)
    try:
        path = sink.write(_frame(6))
        assert _appears(path, 10.0)
    finally:
        sink.close()


def test_a_sequence_that_saves_without_exposing_is_not_held_up(tmp_path):
    """Frames saved one after the other with no exposure between (depth full) are let go at
    once rather than after hold_s each."""
    sink = WriteBehindSink(FitsFolderSink(tmp_path), depth=1, hold_s=30.0)
    try:
        t0 = time.monotonic()
        paths = [sink.write(_frame(v)) for v in range(4)]
        assert time.monotonic() - t0 < 10.0
        sink.flush()
        assert all(p.exists() for p in paths)
    finally:
        sink.close()
