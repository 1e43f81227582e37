"""`indical rig check` reports GPIO and serial devices, using the example rigs users start from."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from gpiozero import Device

from indical.cli import main
from indical.simulators.alnitak_emulator import AlnitakEmulator

RIGS = Path(__file__).resolve().parents[2] / "examples" / "rigs"


@pytest.fixture
def restore_pins():
    previous = Device.pin_factory
    yield
    if Device.pin_factory is not previous and Device.pin_factory is not None:
        Device.pin_factory.reset()
    Device.pin_factory = previous


def check(path: Path):
    return CliRunner().invoke(main, ["rig", "check", str(path)], env={"COLUMNS": "250"})


def test_relay_panel_rig(restore_pins):
    result = check(RIGS / "relay-panel-mock.toml")
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "relay-switched panel" in out and "active: low" in out
    assert "GPIO relay" in out and "all roles reachable" in out


def test_pwm_panel_rig(restore_pins):
    result = check(RIGS / "pwm-panel-mock.toml")
    assert result.exit_code == 0, result.output
    assert "PWM-dimmed panel" in " ".join(result.output.split())


def test_colour_camera_rig():
    result = check(RIGS / "colour-camera-sim.toml")
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "colour filter: RGGB (offsets 0, 0)" in out and "all roles reachable" in out


def test_flipflat_rig_with_the_emulator(tmp_path):
    link = tmp_path / "flipflat"
    rig = tmp_path / "ff.toml"
    rig.write_text((RIGS / "flipflat-emulator.toml").read_text()
                   .replace("/tmp/indical-flipflat", str(link)))
    with AlnitakEmulator(link=link, state_file=f"{link}.state.json"):
        result = check(rig)
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "Alnitak Flip-Flat light (serial)" in out and "state: open" in out


def test_flipflat_rig_without_the_device_is_one_clear_error(tmp_path):
    rig = tmp_path / "ff.toml"
    rig.write_text((RIGS / "flipflat-emulator.toml").read_text()
                   .replace("/tmp/indical-flipflat", str(tmp_path / "gone")))
    result = check(rig)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "no such port" in result.output


@pytest.mark.skipif(Path("/proc/device-tree/model").exists(), reason="this machine has GPIO pins")
def test_pi_rig_off_a_pi_says_so(monkeypatch, restore_pins):
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    Device.pin_factory = None
    result = check(RIGS / "pi-relay-panel.toml")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "this computer has no GPIO pins gpiozero can drive" in result.output
