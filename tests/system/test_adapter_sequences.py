"""The shipped sequences on rigs whose panel is a real adapter: `relay_panel_flats.py` with a
relay on a (mock) GPIO pin, `panel_flats.py` with the Alnitak driver talking to the firmware
emulator in its own process over a pty. The simulated camera sees the panel by its physical
state (the pin level, the emulator's published state), so levels in the frames show that the
driver really switched and dimmed the panel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin

from indical.fits.io import read_frame
from indical.frame import FrameType
from indical.rig import open_rig, parse_rig

ROOT = Path(__file__).resolve().parents[2]
SEQUENCES = ROOT / "sequences"
BIN = Path(sys.executable).parent
FULL_SCALE = 65535
BIAS = 500

CAMERA = f"""
[site]
latitude = 52.0
longitude = 5.0
[clock]
start = "2026-03-20T21:00:00+00:00"
[camera]
driver = "sim"
width = 128
height = 96
bias_adu = {BIAS}
gain_e_per_adu = 1.0
full_well_e = 100000
readout_s = 0
{{light}}
[filter_wheel]
driver = "sim"
names = ["L", "R"]
throughput = [1.0, 0.5]
"""


def frames(folder: Path):
    return [read_frame(p) for p in sorted(folder.rglob("*.fits"))]


def level(frame) -> float:
    return float(np.median(frame.data)) - BIAS


@pytest.mark.parametrize("role", ["panel", "relay"])   # a relay panel, or a relay powering one
def test_relay_panel_flats_on_a_mock_pin_relay(tmp_path, role):
    from indical.sequence.engine import run_sequence
    from indical.sequence.trained import TrainedStore
    from indical.sinks import FitsFolderSink

    previous = Device.pin_factory
    Device.pin_factory = factory = MockFactory(pin_class=MockPin)
    try:
        text = CAMERA.format(light="light_source = { gpio_pin = 17, active_high = false, "
                             "max_flux_e_per_s = 20000 }") + f"""
[{role}]
driver = "gpio"
pin = 17
active_high = false
pin_factory = "mock"
"""
        pin = factory.pin(17)
        with open_rig(parse_rig(text, "relay rig")) as rig:
            sink = FitsFolderSink(tmp_path / "frames", longitude_deg=5.0)
            result = run_sequence(SEQUENCES / "relay_panel_flats.py", rig, sink,
                                  log_path=tmp_path / "log.jsonl",
                                  store=TrainedStore(tmp_path / "trained.sqlite"),
                                  overrides={"FLATS_PER_FILTER": 3,
                                             "DARK_FLATS_PER_EXPOSURE": 2})
            assert result.error is None and not result.interrupted, result.error
            assert pin.state == 1 and not rig.devices[role].is_on()   # active-low: off is high
        assert pin.function == "input"                          # released after being driven off
        assert any(s.state == 0 for s in pin.states)            # and it was lit (low) meanwhile
    finally:
        factory.reset()
        Device.pin_factory = previous

    taken = frames(tmp_path / "frames")
    flats = [f for f in taken if f.meta.frame_type is FrameType.FLAT]
    darks = [f for f in taken if f.meta.frame_type is FrameType.DARKFLAT]
    assert sorted({f.meta.filter for f in flats}) == ["L", "R"]
    assert len(flats) == 6 and len(darks) >= 2
    for f in flats:          # the sequence's target: 40 % of full scale, +/- 15 % of that
        assert level(f) == pytest.approx(0.4 * FULL_SCALE, rel=0.2), (f.meta.filter, level(f))
    exposures = {f.meta.filter: f.meta.exposure_s for f in flats}
    assert exposures["R"] == pytest.approx(2 * exposures["L"], rel=0.2)   # half the throughput
    for f in darks:
        assert abs(level(f)) < 50                      # the relay really cut the light


@pytest.fixture
def emulator(tmp_path, monkeypatch):
    """`indical-alnitak-emulator` in its own process, as a user would start it: its state in
    the private runtime folder (here one of the test's own)."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    link = tmp_path / "flipflat"
    proc = subprocess.Popen([str(BIN / "indical-alnitak-emulator"), "--link", str(link),
                             "--travel-s", "0.5"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "linked as" in line, line
        yield link, "flipflat.state.json"   # a bare name: in the private folder
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        proc.stdout.close()
    assert not link.exists()                          # SIGTERM cleaned up the link


def test_panel_flats_on_the_serial_flipflat_emulator(tmp_path, emulator):
    link, state = emulator
    rig = tmp_path / "ff.toml"
    rig.write_text(CAMERA.format(light=f'light_source = {{ alnitak_state = "{state}" }}') + f"""
[panel]
driver = "alnitak"
port = "{link}"
model = "flip-flat"
[cover]
driver = "alnitak"
port = "{link}"
""")
    out = tmp_path / "frames"
    run = subprocess.run([str(BIN / "indical"), "run", str(SEQUENCES / "panel_flats.py"),
                          "--rig", str(rig), "--out", str(out),
                          "--store", str(tmp_path / "trained.sqlite"),
                          "--set", "FLATS_PER_FILTER=3", "--set", "DARK_FLATS_PER_EXPOSURE=2"],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "COLUMNS": "200"})
    assert run.returncode == 0, run.stdout + run.stderr
    end = json.loads((tmp_path / "run" / "indical" / state).read_text())
    assert end["light_on"] is False and end["cover"] == "open"   # COVER_ON_EXIT = "open"

    taken = frames(out)
    flats = [f for f in taken if f.meta.frame_type is FrameType.FLAT]
    darks = [f for f in taken if f.meta.frame_type is FrameType.DARKFLAT]
    assert sorted({f.meta.filter for f in flats}) == ["L", "R"] and len(flats) == 6
    for f in flats:          # the sequence's target: 50 % of full scale, +/- 10 % of that
        assert level(f) == pytest.approx(0.5 * FULL_SCALE, rel=0.12), (f.meta.filter, level(f))
    # dimmer filter, more light: a brighter step, or the same step (within the exposure
    # window's reach) exposed longer
    light = {f.meta.filter: (f.meta.panel_brightness, f.meta.exposure_s) for f in flats}
    assert light["R"] > light["L"], light
    assert darks and all(abs(level(f)) < 50 for f in darks)
