"""Lights written slowly into the watched folder, as a camera program does, are each calibrated
once, after they are complete; a file cut short is never calibrated."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import numpy as np

from calib_fixtures import CAMERA, light_meta, standard_library
from indical.autopilot.arrival import Arrivals, fits_complete
from indical.autopilot.pilot import Autopilot, Paths
from indical.autopilot.plan import parse_plan
from indical.calib.status import Status, StatusStore
from indical.fits.io import frame_to_hdul
from indical.frame import Frame
from indical.rig import parse_rig


def _light_bytes(scene, seed: int) -> bytes:
    meta = light_meta()
    buf = io.BytesIO()
    frame_to_hdul(Frame(scene.light(meta.exposure_s, np.random.default_rng(seed)), meta)).writeto(buf)
    return buf.getvalue()


def _write_slowly(path: Path, data: bytes, pieces: int = 6, pause_s: float = 0.15,
                  stop_at: int | None = None) -> None:
    """Append a piece at a time, closing the file in between (some programs reopen for each
    write); `stop_at`: leave the file cut short after that many pieces."""
    step = -(-len(data) // pieces)
    for i in range(pieces if stop_at is None else stop_at):
        with open(path, "ab") as fh:
            fh.write(data[i * step:(i + 1) * step])
        time.sleep(pause_s)


def test_fits_complete_only_for_whole_files(tmp_path):
    from calib_synthetic import make_scene
    data = _light_bytes(make_scene(shape=(60, 80)), 1)
    path = tmp_path / "l.fits"
    for cut in (0, 80, 2880, len(data) - 2880, len(data) - 1):
        path.write_bytes(data[:cut])
        assert not fits_complete(path), cut
    path.write_bytes(data)
    assert fits_complete(path)
    path.write_bytes(data + b"\0" * 2880)   # junk after the last HDU is not this file
    assert not fits_complete(path)


def test_arrivals_hands_on_a_slow_file_once_when_complete(tmp_path):
    from calib_synthetic import make_scene
    data = _light_bytes(make_scene(shape=(60, 80)), 2)
    with Arrivals(tmp_path, settle_s=0.5) as watcher:
        writer = threading.Thread(target=_write_slowly, args=(tmp_path / "a.fits", data))
        writer.start()
        seen = []
        deadline = time.monotonic() + 10
        while (writer.is_alive() or not seen) and time.monotonic() < deadline:
            seen += watcher.complete()
            time.sleep(0.02)
        writer.join()
        # handed on once, and only whole: never while pieces were missing
        assert [(a.path.name, a.size, a.complete) for a in seen] == [("a.fits", len(data), True)]
        time.sleep(0.6)
        assert watcher.complete() == []   # once


RIG = """
[site]
latitude = 52.0
longitude = 5.0

[clock]
start = "2026-03-20T14:00:00+00:00"
speed = 4000    # a night in about 14 s: the lights (about 5 s of writing) arrive in wall time
                # meanwhile, with room for a loaded machine (8000 failed once under load)

[weather]       # a simulated device, so the rig runs on the simulated clock
driver = "sim"
"""


def test_autopilot_calibrates_each_slowly_written_light_once(tmp_path):
    lib, scene, _ = standard_library(tmp_path / "lib")
    lib.close()
    lights = tmp_path / "lights"
    lights.mkdir()
    plan = parse_plan(f'[[task]]\nname = "calibrate"\ncalibrate = "{lights}"\nwhen = "arrival"\n',
                      "test plan", tmp_path)
    spec = parse_rig(RIG, "test rig")
    paths = Paths(tmp_path / "out", library=tmp_path / "lib" / "library.sqlite")
    names = [f"light_{i}.fits" for i in range(3)]

    def camera_program() -> None:
        for i, name in enumerate(names):
            _write_slowly(lights / name, _light_bytes(scene, 10 + i))
        _write_slowly(lights / "cut_short.fits", _light_bytes(scene, 99), stop_at=4)

    writer = threading.Thread(target=camera_program)
    with Autopilot(plan, spec, paths, settle_s=1.0) as pilot:
        writer.start()
        pilot.run(nights=1)
    writer.join()

    journal = [json.loads(x) for x in paths.journal_file.read_text().splitlines()]
    done = [e for e in journal if e["outcome"] == "done"]
    assert sorted(e["reason"].split(" ->")[0] for e in done) == names   # each once
    assert all(e["task"] == "calibrate" and e["frames"] == 1 for e in done)
    cut = [e for e in journal if "cut_short" in e["reason"]]
    assert [e["outcome"] for e in cut] == ["failed"] and "not a whole FITS" in cut[0]["reason"]
    outputs = sorted(p.name for p in (lights / "calibrated").iterdir())
    assert outputs == [n.replace(".fits", "_cal.fits") for n in names]
    store = StatusStore(tmp_path / "lib" / "library.sqlite")
    try:
        for name in names:
            row = store.get(str((lights / name).resolve()))
            assert row is not None and row.status is Status.CALIBRATED, row
        assert store.get(str((lights / "cut_short.fits").resolve())) is None
    finally:
        store.close()
    assert CAMERA  # the lights are of the library's camera
