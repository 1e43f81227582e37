"""sequences/dark_library.py on the in-process simulated observatory: it takes darks and bias for
exactly the configurations the library's lights lack, the masters get built, and a second run
finds nothing missing."""

import threading
from pathlib import Path

from indical.calib.ingest import inspect_file
from indical.calib.library import CalibrationLibrary
from indical.calib.match import MasterKind
from indical.calib.needs import NeedsOptions, compute_needs
from indical.calib.sink import LibrarySink
from indical.fits.io import write_frame
from indical.frame import FrameType
from indical.interfaces.cover import CoverState
from indical.rig import open_rig, parse_rig
from indical.sequence.engine import run_sequence
from indical.sinks import FitsFolderSink

SEQUENCE = Path(__file__).resolve().parents[2] / "sequences" / "dark_library.py"

RIG = """
[clock]
start = "2026-03-20T22:00:00+00:00"
[camera]
driver = "sim"
width = 128
height = 96
[cover]
driver = "sim"
"""


def _library_with_lights(tmp_path, spec):
    """A library holding lights at two exposures (-10 C), and the sensor warm again."""
    db = tmp_path / "lib" / "library.sqlite"
    with open_rig(spec) as rig, CalibrationLibrary(db) as lib:
        cam = rig.camera
        cam.set_temperature(-10.0)
        cam.wait_for_temperature(clock=rig.clock)
        for i, exposure in enumerate((30.0, 30.0, 120.0)):   # lights at two exposures
            frame = cam.expose(exposure, FrameType.LIGHT)
            lib.add_frame(inspect_file(write_frame(frame, tmp_path / "lights" / f"l{i}.fits")))
        cam.set_temperature(None)  # the sequence must cool again by itself
    return db


def test_dark_library_fills_exactly_the_gaps(tmp_path):
    spec = parse_rig(RIG, "test rig")
    db = _library_with_lights(tmp_path, spec)
    with CalibrationLibrary(db) as lib:
        before = compute_needs(lib, options=NeedsOptions(bias=True, min_frames=3))
    wanted = sorted(n.config.label() for n in before.uncovered if n.config.kind is not MasterKind.FLAT)
    assert [w.split(", bin")[0] for w in wanted] == [
        "bias, -10.0 C", "dark, 120 s, -10.0 C", "dark, 30 s, -9.6 C"]

    settings = {"LIBRARY": str(db), "MIN_FRAMES": 3}
    with open_rig(spec) as rig:
        sink = FitsFolderSink(tmp_path / "frames")
        result = run_sequence(SEQUENCE, rig, sink, overrides=settings, log_path=tmp_path / "log.jsonl")
        assert result.error is None, result.error
        assert rig.cover.state() is CoverState.CLOSED
    assert len(result.frames) == 9   # 3 bias + 3 darks at 30 s + 3 at 120 s, nothing else

    with CalibrationLibrary(db) as lib:
        kinds = sorted((m.frame_type.value, m.exposure_s) for m in lib.masters()
                       if m.frame_type is not FrameType.FLAT)
        assert [k for k, _ in kinds] == ["bias", "dark", "dark"]
        assert sorted(e for k, e in kinds if k == "dark") == [30.0, 120.0]
        after = compute_needs(lib, options=NeedsOptions(bias=True, min_frames=3))
        assert not [n for n in after.uncovered if n.config.kind is not MasterKind.FLAT]

    with open_rig(spec) as rig:
        again = run_sequence(SEQUENCE, rig, FitsFolderSink(tmp_path / "frames2"),
                             overrides=settings, log_path=tmp_path / "log2.jsonl")
    assert again.error is None and again.frames == []


def test_dark_library_frames_are_written_behind_the_sequence(tmp_path, monkeypatch):
    """Each dark is written and indexed (and masters built) by the frame writer while the next
    exposure runs, as the flat sequences' frames are; every one is on disk and in the library
    at the end."""
    spec = parse_rig(RIG, "test rig")
    db = _library_with_lights(tmp_path, spec)
    writers = []
    write = LibrarySink.write

    def noting_the_thread(self, frame, **kw):
        writers.append(threading.current_thread().name)
        return write(self, frame, **kw)

    monkeypatch.setattr(LibrarySink, "write", noting_the_thread)
    with open_rig(spec) as rig:
        result = run_sequence(SEQUENCE, rig, FitsFolderSink(tmp_path / "frames"),
                              overrides={"LIBRARY": str(db), "MIN_FRAMES": 3},
                              log_path=tmp_path / "log.jsonl")
    assert result.error is None, result.error
    assert writers == ["frame writer"] * 9
    with CalibrationLibrary(db) as lib:
        indexed = {r.path for r in lib.frames() if r.meta.frame_type is not FrameType.LIGHT}
        assert len([m for m in lib.masters() if m.frame_type is not FrameType.FLAT]) == 3
    assert sorted(Path(p) for p in indexed) == sorted(result.frames)
    assert all(p.exists() for p in result.frames)


def test_dark_library_interrupted_keeps_every_frame_taken(tmp_path):
    """Ctrl-C during an exposure: the frames taken before it are written and indexed (none
    lost in the writer), the run says it was interrupted, the cover stays closed."""
    spec = parse_rig(RIG, "test rig")
    db = _library_with_lights(tmp_path, spec)
    with open_rig(spec) as rig:
        expose, calls = rig.camera.expose, []

        def ctrl_c_at_the_fifth(*args, **kwargs):
            calls.append(args)
            if len(calls) == 5:
                raise KeyboardInterrupt
            return expose(*args, **kwargs)

        rig.camera.expose = ctrl_c_at_the_fifth
        result = run_sequence(SEQUENCE, rig, FitsFolderSink(tmp_path / "frames"),
                              overrides={"LIBRARY": str(db), "MIN_FRAMES": 3},
                              log_path=tmp_path / "log.jsonl")
        assert rig.cover.state() is CoverState.CLOSED
    assert result.interrupted and result.error is None
    assert len(result.frames) == 4 and all(p.exists() for p in result.frames)
    with CalibrationLibrary(db) as lib:
        indexed = sorted(Path(r.path) for r in lib.frames()
                         if r.meta.frame_type is not FrameType.LIGHT)
    assert indexed == sorted(result.frames)


def test_a_dark_that_cant_be_written_ends_the_run_with_an_error_naming_it(tmp_path):
    spec = parse_rig(RIG, "test rig")
    db = _library_with_lights(tmp_path, spec)
    night = db.parent / "frames" / "2026-03-20"     # the simulated clock's night
    night.parent.mkdir(parents=True, exist_ok=True)
    night.write_text("a file where the night's folder should be")
    with open_rig(spec) as rig:
        result = run_sequence(SEQUENCE, rig, FitsFolderSink(tmp_path / "frames"),
                              overrides={"LIBRARY": str(db), "MIN_FRAMES": 3},
                              log_path=tmp_path / "log.jsonl")
        assert rig.cover.state() is CoverState.CLOSED
    assert isinstance(result.error, OSError) and str(night) in str(result.error)
    assert result.frames == []                      # none of them is on disk
    with CalibrationLibrary(db) as lib:
        assert [r for r in lib.frames() if r.meta.frame_type is not FrameType.LIGHT] == []
