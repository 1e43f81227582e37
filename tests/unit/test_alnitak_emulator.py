"""The emulated firmware's replies, command by command, for each kind of device."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from indical.simulators.alnitak_emulator import AlnitakEmulator


def test_flip_flat_replies():
    em = AlnitakEmulator(device_id=99, travel_s=0.05, firmware=7)
    assert em.respond(">P000") == "*P99000"
    assert em.respond(">V000") == "*V99007"
    assert em.respond(">S000") == "*S99002"            # stopped, light off, open
    assert em.respond(">C000") == "*C99000"
    assert em.respond(">S000") == "*S99100"            # motor running, moving
    time.sleep(0.08)
    assert em.respond(">S000") == "*S99001"            # closed
    assert em.respond(">L000") == "*L99000" and em.respond(">S000") == "*S99011"
    assert em.respond(">B300") == "*B99255"            # clamped to the 8-bit range
    assert em.respond(">B007") == "*B99007" and em.respond(">J000") == "*J99007"
    assert em.respond(">D000") == "*D99000" and em.respond(">S000") == "*S99001"
    assert em.respond(">X000") is None and em.respond("P000") is None


@pytest.mark.parametrize("device_id", [10, 15, 19])
def test_flat_man_has_no_cover(device_id):
    em = AlnitakEmulator(device_id=device_id)
    assert em.respond(">O000") is None and em.respond(">C000") is None
    assert em.respond(">L000") == f"*L{device_id}000"
    assert em.state()["cover"] == "none" and em.state()["light_on"]


def test_flip_mask_has_no_light():
    em = AlnitakEmulator(device_id=98)
    assert em.respond(">L000") is None and em.respond(">B100") is None
    assert em.respond(">O000") == "*O98000"


def test_jammed_cover_reports_timed_out():
    em = AlnitakEmulator(travel_s=0.01, jam_cover=True)
    em.respond(">C000")
    time.sleep(0.03)
    assert em.respond(">S000") == "*S99003"


def test_mute_device_never_answers():
    em = AlnitakEmulator(mute=True)
    assert em.respond(">P000") is None and em.received == [">P000"]


def test_state_file_follows_the_device(tmp_path):
    state = tmp_path / "s.json"
    with AlnitakEmulator(travel_s=0.05, state_file=state, link=tmp_path / "ff") as em:
        assert (tmp_path / "ff").resolve() == Path(em.port).resolve()
        em.respond(">C000")
        time.sleep(0.2)                               # the serve loop publishes the arrival
        assert json.loads(state.read_text())["cover"] == "closed"
    assert not state.exists() and not (tmp_path / "ff").exists()   # nothing stale left behind


def test_state_file_is_never_written_through_a_planted_link(tmp_path):
    """Another user plants links where the state (and its temporary copy) will be written:
    the emulator replaces them and the files they point at stay as they were."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    state = tmp_path / "shared" / "ff.state.json"
    state.parent.mkdir()
    (state.parent / "ff.state.json.tmp").symlink_to(victim)
    state.symlink_to(victim)
    with AlnitakEmulator(travel_s=0.01, state_file=state) as em:
        em.respond(">C000")
        time.sleep(0.2)                               # the serve loop publishes the arrival
        assert not state.is_symlink()
        assert json.loads(state.read_text())["cover"] == "closed"
        assert state.stat().st_mode & 0o077 == 0
    assert victim.read_text() == "precious"


def test_default_state_file_is_in_a_private_folder(tmp_path, monkeypatch):
    from indical.simulators.alnitak_emulator import default_state_file
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    path = default_state_file("/tmp/indical-flipflat")
    assert path == tmp_path / "indical" / "indical-flipflat.state.json"
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_a_planted_private_folder_is_refused(tmp_path, monkeypatch):
    from indical.errors import IndicalError
    from indical.simulators.alnitak_emulator import default_state_file
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    runtime = tmp_path / "run"
    runtime.mkdir()
    (runtime / "indical").symlink_to(elsewhere)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    with pytest.raises(IndicalError, match="not a folder"):
        default_state_file("ff")
    (runtime / "indical").unlink()
    (runtime / "indical").mkdir(mode=0o755)
    (runtime / "indical").chmod(0o755)
    with pytest.raises(IndicalError, match="open to others"):
        default_state_file("ff")
