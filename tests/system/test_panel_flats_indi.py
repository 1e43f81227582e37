"""Panel flats through a real indiserver: indical's camera and flip-flat simulators and the stock
filter wheel, reached through the INDI adapters. A whole flats + dark flats run for three
filters, interrupted and resumed; and a real Ctrl-C (SIGINT) to `indical run`, after which the
light must be off and the cover open, as the sequence file asks, with no second Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from astropy.io import fits

from indical.interfaces import CoverState
from indical.rig import open_rig
from indical.sequence.engine import run_sequence
from indical.sequence.log import read_log
from indical.sequence.trained import TrainedStore
from indical.simulators.indi.server import simulator_rig
from indical.sinks import FitsFolderSink

ROOT = Path(__file__).resolve().parents[2]
SEQUENCE = ROOT / "sequences" / "panel_flats.py"
BIN = Path(sys.executable).parent
FILTERS = ["Red", "Green", "Blue"]

SIMS = """\
[camera]
width = 320
height = 240
readout_s = 0.05
filter_wheel = "Filter Simulator"
throughput = [0.45, 0.5, 0.4, 0.15, 0.15, 0.15, 0.9, 1.0]

[flipflat]
travel_s = 0.3
max_flux_e_per_s = 400000.0
"""

SETTINGS = {"FILTERS": FILTERS, "FLATS_PER_FILTER": 3, "DARK_FLATS_PER_EXPOSURE": 2,
            "EXPOSURE_S": 0.1}


@pytest.fixture(scope="module")
def indi_spec():
    with simulator_rig(sim_config=SIMS) as spec:
        yield spec


class StopAfter:
    """A sink that raises KeyboardInterrupt, as Ctrl-C would, after n frames."""

    def __init__(self, inner: FitsFolderSink, n: int) -> None:
        self.inner, self.n = inner, n

    def count(self, query):
        return self.inner.count(query)

    def write(self, frame):
        if len(self.inner.written) >= self.n:
            raise KeyboardInterrupt
        return self.inner.write(frame)


def run_once(spec, tmp_path, sink):
    with open_rig(spec) as rig:
        result = run_sequence(SEQUENCE, rig, sink, log_path=tmp_path / "log.jsonl",
                              store=TrainedStore(tmp_path / "trained.sqlite"), overrides=SETTINGS)
        state = (rig.panel.is_on(), rig.cover.state())
    return result, state


def test_three_filters_interrupted_and_resumed_through_indi(indi_spec, tmp_path):
    out = tmp_path / "frames"
    inner = FitsFolderSink(out)
    result, (light_on, cover) = run_once(indi_spec, tmp_path, StopAfter(inner, 5))
    assert result.interrupted and len(inner.written) == 5
    assert not light_on and cover is CoverState.OPEN

    result, (light_on, cover) = run_once(indi_spec, tmp_path, FitsFolderSink(out))
    assert result.error is None and not result.interrupted, result.error
    assert not light_on and cover is CoverState.OPEN

    headers = [fits.getheader(p) for p in sorted(out.rglob("*.fits"))]
    flats = [h for h in headers if h["IMAGETYP"] == "Flat Field"]
    darks = [h for h in headers if h["IMAGETYP"] == "Dark Flat"]
    assert sorted(h["FILTER"] for h in flats) == sorted(FILTERS * 3)
    for h in flats:
        raw = h["LEVEL"] + 500
        assert 0.45 * 65535 <= raw <= 0.55 * 65535, (h["FILTER"], h["LEVEL"])
        assert h["INSTRUME"] == "indical Flat Camera" and 0 < h["PANELBRT"] <= 255
    flat_exposures = sorted({round(h["EXPTIME"], 4) for h in flats})
    dark_exposures = [round(h["EXPTIME"], 4) for h in darks]
    assert sorted(set(dark_exposures)) == flat_exposures
    assert all(dark_exposures.count(t) == 2 for t in flat_exposures)
    for h in darks:
        assert abs(h["LEVEL"]) < 20                   # light off, cover closed: no light
    # across both runs the log shows each exposure once, and no flat was taken twice
    entries = list(read_log(tmp_path / "log.jsonl"))
    kept = [e for e in entries if e["accepted"] and e["kind"] in ("search", "flat")]
    assert len(kept) == 9


def test_one_ctrl_c_leaves_light_off_and_cover_open(indi_spec, tmp_path):
    """Ctrl-C during the run; a second one during the clean-up must not cut it short."""
    rig_file = tmp_path / "rig.toml"
    rig_file.write_text(indi_spec_text(indi_spec))
    log = tmp_path / "log.jsonl"
    sets = [f"--set=FILTERS={json.dumps(FILTERS)}", "--set=FLATS_PER_FILTER=30",
            "--set=EXPOSURE_S=0.5"]
    proc = subprocess.Popen([str(BIN / "indical"), "run", str(SEQUENCE), "--rig", str(rig_file),
                             "--out", str(tmp_path / "frames"), "--log", str(log),
                             "--store", str(tmp_path / "trained.sqlite"), *sets],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if log.exists() and len(log.read_text().splitlines()) >= 4:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the run never got going")
        time.sleep(0.2)                                # most likely in the middle of an exposure
        proc.send_signal(signal.SIGINT)
        time.sleep(0.15)                               # an impatient second one, mid clean-up
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err and "Traceback" not in err
    with open_rig(indi_spec) as rig:
        assert not rig.panel.is_on()
        assert rig.cover.state() is CoverState.OPEN
        frame = rig.camera.expose(0.01)               # the camera is free again
        assert frame.data.shape == (240, 320)


def indi_spec_text(spec) -> str:
    """The rig file text behind a spec (for a separate `indical run` process)."""
    lines = []
    for role, table in spec.roles.items():
        lines.append(f"[{role}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def test_demo_runs_panel_flats_through_indi(tmp_path):
    run = subprocess.run([str(BIN / "indical"), "demo", "-o", str(tmp_path), "-n", "2"],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "private indiserver" in run.stdout and "panel_flats.py" in run.stdout
    for name in ("Luminance", "Red", "Green", "Blue", "H_Alpha"):
        assert f"{name}: " in run.stdout
    panel = [p for p in tmp_path.rglob("*.fits") if "twilight" not in p.relative_to(tmp_path).parts]
    flats = [p for p in panel if p.name.startswith("flat_")]
    darks = [p for p in panel if p.name.startswith("darkflat_")]
    assert len(flats) == 10 and len(darks) >= 2
    assert "exposure log:" in run.stdout


def test_server_lost_mid_run_ends_with_the_device_named(tmp_path):
    """indiserver dies during the flats: the run stops with an error naming what was lost,
    exits non-zero without a traceback, and does not hang."""
    from indical.simulators.indi.config import CAMERA_NAME, FLIPFLAT_NAME
    from indical.simulators.indi.server import (OUR_CCD, OUR_FLIPFLAT, IndiServer,
                                                simulator_rig_toml)
    (tmp_path / "sims.toml").write_text(SIMS)
    server = IndiServer([OUR_CCD, OUR_FLIPFLAT, "indi_simulator_wheel"], workdir=tmp_path,
                        env={"INDICAL_INDI_SIM_CONFIG": str(tmp_path / "sims.toml")}).start()
    try:
        server.wait_for_devices([CAMERA_NAME, FLIPFLAT_NAME])
        rig_file = tmp_path / "rig.toml"
        rig_file.write_text(simulator_rig_toml(server.address))
        log = tmp_path / "log.jsonl"
        proc = subprocess.Popen([str(BIN / "indical"), "run", str(SEQUENCE), "--rig",
                                 str(rig_file), "--out", str(tmp_path / "frames"), "--log",
                                 str(log), "--store", str(tmp_path / "t.sqlite"),
                                 "--set=FLATS_PER_FILTER=50", "--set=EXPOSURE_S=0.5"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not (log.exists() and len(log.read_text().splitlines()) >= 4):
                assert time.monotonic() < deadline, "the run never got going"
                time.sleep(0.1)
            server.kill()
            t0 = time.monotonic()
            out, err = proc.communicate(timeout=120)
            exited_s = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    finally:
        server.stop()
    assert proc.returncode == 2, (out, err)
    assert "Traceback" not in err
    assert "indiserver" in err, err
    assert "error:" in err and "could not leave safe" in err     # the run's error, then cleanup
    assert "exposure log:" in out                              # the report still comes
    # the loss is noticed at once and the clean-up tries each device once (a refused
    # connection fails in a millisecond): no 5 s retries per device as before
    assert exited_s < 10, (f"the run took {exited_s:.1f} s to end after indiserver died; "
                           f"it said:\n{out[-1500:]}\n{err[-3000:]}")
    assert "check the panel light and the cover by hand" in err
