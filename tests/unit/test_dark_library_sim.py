"""sequences/dark_library.py on the in-process simulated observatory: it takes darks and bias for
exactly the configurations the library's lights lack, the masters get built, and a second run
finds nothing missing."""

from pathlib import Path

from indical.calib.ingest import inspect_file
from indical.calib.library import CalibrationLibrary
from indical.calib.match import MasterKind
from indical.calib.needs import NeedsOptions, compute_needs
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


def test_dark_library_fills_exactly_the_gaps(tmp_path):
    db = tmp_path / "lib" / "library.sqlite"
    spec = parse_rig(RIG, "test rig")
    with open_rig(spec) as rig, CalibrationLibrary(db) as lib:
        cam = rig.camera
        cam.set_temperature(-10.0)
        cam.wait_for_temperature(clock=rig.clock)
        for i, exposure in enumerate((30.0, 30.0, 120.0)):   # lights at two exposures
            frame = cam.expose(exposure, FrameType.LIGHT)
            lib.add_frame(inspect_file(write_frame(frame, tmp_path / "lights" / f"l{i}.fits")))
        cam.set_temperature(None)  # the sequence must cool again by itself
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
