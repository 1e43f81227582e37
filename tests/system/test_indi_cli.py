"""`indical rig check` on an INDI rig, and `indical demo` on its own private indiserver."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from indi_helpers import start_server
from indical.cli import main
from indical.fits.io import read_frame
from indical.frame import FrameType
from indical.simulators.indi.server import OUR_CCD, OUR_FLIPFLAT

ROOT = Path(__file__).resolve().parents[2]


def test_rig_check_on_the_example_indi_rig(tmp_path):
    server = start_server(tmp_path / "srv", [OUR_CCD, OUR_FLIPFLAT, "indi_simulator_wheel"])
    try:
        server.wait_for_devices(["indical Flat Camera", "indical Flip-Flat"])
        text = (ROOT / "examples/rigs/indi-simulators.toml").read_text()
        rig = tmp_path / "rig.toml"
        rig.write_text(text.replace("localhost:7624", server.address))
        result = CliRunner().invoke(main, ["rig", "check", str(rig)])
        assert result.exit_code == 0, result.output
        for expected in ("indical Flat Camera", "indical Flip-Flat", "Filter Simulator",
                         "INDI camera", "INDI light box", "INDI cover", "all roles reachable"):
            assert expected in result.output
        # the server runs here: frames come as shared memory through its local socket
        assert "frames:" in result.output and "shared" in result.output
        assert "base64" not in result.output

        wrong = tmp_path / "wrong.toml"
        wrong.write_text(rig.read_text().replace('device = "Filter Simulator"',
                                                 'device = "Filter Simulatr"\ntimeout_s = 1'))
        result = CliRunner().invoke(main, ["rig", "check", str(wrong)])
        assert result.exit_code != 0
        assert "Filter Simulatr" in result.output and "Filter Simulator" in result.output
    finally:
        server.stop()


def test_demo_runs_through_its_own_indiserver(tmp_path):
    """Run as `./bootstrap.sh demo` does: the virtual environment's bin folder is not on PATH,
    so the simulator drivers are found next to the Python running indical."""
    env = dict(os.environ, PATH="/usr/local/bin:/usr/bin:/bin", HOME=str(tmp_path))
    out = tmp_path / "frames"
    indical = str(Path(sys.executable).parent / "indical")
    proc = subprocess.run([indical, "demo", "-n", "1", "-o", str(out)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    address = re.search(r"INDI simulators on (127\.0\.0\.1:\d+)", proc.stdout)
    assert address, proc.stdout
    frames = [read_frame(f) for f in sorted(out.rglob("*.fits")) if "twilight" not in f.parts]
    flats = {f.meta.filter: f for f in frames if f.meta.frame_type is FrameType.FLAT}
    darks = [f for f in frames if f.meta.frame_type is FrameType.DARKFLAT]
    assert set(flats) == {"Luminance", "Red", "Green", "Blue", "H_Alpha"}
    assert darks and all(f.data.mean() < 1000 for f in darks)
    assert all(f.meta.camera == "indical Flat Camera" for f in frames)
    # the camera saw the panel through the wheel: the dimmest filter needed the longest flat
    assert flats["H_Alpha"].meta.exposure_s > 2 * flats["Luminance"].meta.exposure_s
    assert all(20000 < f.data.mean() < 45000 for f in flats.values())
    # the server is gone
    host, port = address.group(1).split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        still_there = True
    except OSError:
        still_there = False
    assert not still_there, "indical demo left its indiserver running"
    # then a simulated dusk on the in-process observatory: twilight flats in three filters
    sky = [p for p in (out / "twilight").rglob("flat_*.fits") if "rejected" not in p.parts]
    assert {read_frame(p).meta.filter for p in sky} == {"L", "R", "Ha"}
