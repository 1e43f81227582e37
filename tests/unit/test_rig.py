"""Rig files: the built-in rig opens; bad files give one clear error naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from indical.errors import RigError
from indical.rig import load_rig, open_rig, parse_rig


def test_an_example_rig_is_found_by_its_name(tmp_path, monkeypatch):
    """As after a wheel install: the README's examples/rigs/NAME and a bare name both work."""
    monkeypatch.chdir(tmp_path)
    for given in ("relay-panel-mock.toml", "examples/rigs/relay-panel-mock.toml",
                  "relay-panel-mock"):
        spec = load_rig(given)
        assert spec.source.endswith("relay-panel-mock.toml") and "panel" in spec.roles
    with pytest.raises(RigError, match="no such rig file .example rigs shipped with indical: "
                                       "colour-camera-sim.toml, flipflat-emulator.toml, "
                                       "indi-simulators.toml"):
        load_rig("nope.toml")
    (tmp_path / "relay-panel-mock.toml").write_text('[camera]\ndriver = "sim"\n')
    assert list(load_rig("relay-panel-mock.toml").roles) == ["camera"]   # a file here wins


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("rigs/*.toml"))
                         + [EXAMPLES / "autopilot" / "sim-rig.toml"], ids=lambda p: p.name)
def test_every_example_rig_loads(path):
    """Each rig users copy parses with every key known (rig check on each: test_rig_check_*)."""
    spec = load_rig(path)
    assert spec.roles and all(spec.driver_of(role) for role in spec.roles)


def test_the_autopilot_example_rig_is_found_where_the_readme_names_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for given in ("examples/autopilot/sim-rig.toml", "sim-rig"):
        spec = load_rig(given)
        assert spec.source.endswith("autopilot/sim-rig.toml") and "weather" in spec.roles


def test_builtin_rig_has_every_role():
    spec = load_rig(None)
    assert set(spec.roles) == {"camera", "filter_wheel", "panel", "cover", "mount"}
    with open_rig(spec) as rig:
        assert rig.camera is not None and rig.panel is not None
        assert rig.relay is None  # absent, never silently simulated


@pytest.mark.parametrize("text, key, words", [
    ('[camera]\ndriver = "nope"\n', "[camera] driver", "no driver named 'nope'"),
    ('[camera]\nwidth = 10\n', "[camera] driver", "missing"),
    ('[camera]\ndriver = "sim"\ngain_e_per_adu = "x"\n', "[camera] gain_e_per_adu", "expected a number"),
    ('[camera]\ndriver = "sim"\nwidht = 10\n', "[camera] widht", "did you mean 'width'"),
    ('[camera]\ndriver = "sim"\nbit_depth = 13\n', "[camera] bit_depth", "12, 14 or 16"),
    ('[panel]\ndriver = "sim"\nresponse = [[0, 0.5], [10, 0.2]]\n', "[panel] response", "monotone"),
    ('[panel]\ndriver = "sim"\ndimmable = 1\n', "[panel] dimmable", "true or false"),
    ('[telescope]\ndriver = "sim"\n', "[telescope]", "unknown table"),
    ('[site]\nlatitude = 95\nlongitude = 0\n', "[site] latitude", "between -90"),
    ('[site]\nlongitude = 0\n', "[site] latitude", "missing"),
    ('[clock]\nstart = "yesterday"\n[camera]\ndriver = "sim"\n', "[clock] start", "ISO time"),
    ('camera = 3\n', "camera", "must be a table"),
    ('[camera\n', "TOML", "not valid TOML"),
])
def test_bad_rig_names_the_key(text, key, words):
    with pytest.raises(RigError) as info:
        parse_rig(text, "my-rig.toml")
    message = str(info.value)
    assert message.startswith(f"my-rig.toml: {key}:"), message
    assert words in message


def test_missing_rig_file_is_named(tmp_path):
    with pytest.raises(RigError, match="nope.toml: file: no such rig file"):
        load_rig(tmp_path / "nope.toml")


def test_require_names_missing_role():
    spec = parse_rig('[camera]\ndriver = "sim"\n', "r.toml")
    with open_rig(spec) as rig:
        with pytest.raises(RigError, match=r"\[panel\].*needs that role"):
            rig.require("camera", "panel")
