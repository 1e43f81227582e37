"""Needs: uncovered configurations, progress toward masters, expiry, remaining frames."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
from click.testing import CliRunner

from calib_fixtures import CAMERA, add_master, light_meta, standard_library, write_light
from indical.calib.config import CameraConfig
from indical.calib.ingest import inspect_file
from indical.calib.match import MasterKind
from indical.calib.needs import NeedConfig, NeedsOptions, compute_needs, remaining
from indical.calib.status import StatusStore
from indical.cli import main
from indical.fits.io import write_frame
from indical.frame import Binning, Frame, FrameType


def _index(lib, path):
    lib.add_frame(inspect_file(path))


def test_needs_from_lights_in_the_library(tmp_path):
    lib, scene, masters = standard_library(tmp_path / "lib")
    rng = np.random.default_rng(1)
    for i in range(3):
        _index(lib, write_light(tmp_path / "n", f"l{i}.fits", scene, rng))             # covered
        _index(lib, write_light(tmp_path / "n", f"ha{i}.fits", scene, rng, filter="Ha",
                                exposure_s=60.0, sensor_temp_c=-10.1 + 0.1 * i))
    _index(lib, write_light(tmp_path / "n", "warm.fits", scene, rng, filter="Ha", exposure_s=60.0,
                            sensor_temp_c=-4.0))
    for i in range(3):  # raw darks already taken toward the 60 s -10 C master
        meta = light_meta(frame_type=FrameType.DARK, exposure_s=60.0, filter=None,
                          sensor_temp_c=-10.0)
        path = write_frame(Frame(scene.light(0, rng), meta), tmp_path / "d" / f"d{i}.fits")
        _index(lib, path)
    old = datetime.now(timezone.utc) - timedelta(days=200)
    add_master(lib, FrameType.BIAS, scene.bias, name="bias_old.fits", created=old)
    store = StatusStore(lib.db_path)
    report = compute_needs(lib, store, NeedsOptions(min_frames=10))
    labels = {n.config.label(): n for n in report.uncovered}
    assert set(labels) == {
        "dark, 60 s, -10.0 C, bin 1x1, gain 100, offset 10",
        "dark, 60 s, -4.0 C, bin 1x1, gain 100, offset 10",
        "flat, filter Ha, bin 1x1, gain 100, offset 10",
    }
    cold = labels["dark, 60 s, -10.0 C, bin 1x1, gain 100, offset 10"]
    assert (cold.lights, cold.have, cold.remaining) == (3, 3, 7)
    assert labels["flat, filter Ha, bin 1x1, gain 100, offset 10"].lights == 4
    assert any(p.frame_type == "dark" and p.have == 3 for p in report.progress)
    assert [e.master.endswith("bias_old.fits") and e.expired for e in report.expiring] == [True]
    assert remaining(lib, cold.config) == 7
    assert remaining(lib, cold.config, NeedsOptions(min_frames=2)) == 0

    # CCD: a bias is needed (the old one is expired but still matches at -10 C), any dark
    # exposure does (the 30 s dark covers -10 C), so only the warm light lacks bias and dark
    ccd = compute_needs(lib, store, NeedsOptions(ccd=True))
    assert sorted(n.config.label() for n in ccd.uncovered if n.config.kind is not MasterKind.FLAT) == [
        "bias, -4.0 C, bin 1x1, gain 100, offset 10",
        "dark, 60 s, -4.0 C, bin 1x1, gain 100, offset 10"]

    data = json.loads(json.dumps(report.to_json()))
    assert {u["remaining"] for u in data["uncovered"]} == {7, 10}

    cid = store.begin_capture("dark_library", "dark 60 s -10 C", 7)
    store.capture_progress(cid, 2)
    assert compute_needs(lib, store).captures[0]["done"] == 2
    later = datetime.now(timezone.utc) + timedelta(hours=3)
    assert store.captures_in_progress(now=later) == []   # silent for 3 h: a killed run
    store.close()
    lib.close()

    db = str(tmp_path / "lib" / "library.sqlite")
    out = CliRunner().invoke(main, ["needs", "--library", db])
    assert out.exit_code == 0, out.output
    assert "Uncovered configurations" in out.output and "7 more frame(s)" in out.output
    assert "expired" in out.output and "Captures in progress" in out.output
    js = CliRunner().invoke(main, ["needs", "--library", db, "--json"])
    assert json.loads(js.output)["uncovered"][0]["kind"] == "dark"


def test_nothing_missing(tmp_path):
    lib, scene, _ = standard_library(tmp_path / "lib")
    db = str(lib.db_path)
    empty = CliRunner().invoke(main, ["needs", "--library", db])
    assert "no lights in the library yet" in empty.output
    _index(lib, write_light(tmp_path, "l.fits", scene, np.random.default_rng(2)))
    assert compute_needs(lib).nothing_missing
    assert "every light in the library (1) has matching masters" in CliRunner().invoke(
        main, ["needs", "--library", db]).output
    cfg = NeedConfig(MasterKind.DARK, CameraConfig(camera=CAMERA, gain=100.0, offset=10.0,
                                                   binning=Binning(1, 1), width=80, height=60,
                                                   temperature_c=-10.0), exposure_s=30.0)
    assert remaining(lib, cfg) == 10
    lib.close()
