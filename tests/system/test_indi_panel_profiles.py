"""The INDI adapters against the habits of real INDI 2.x panel and cover drivers, reproduced by
indical's flip-flat simulator profiles (simulators/indi/config.py PROFILES): brightness ranges
from 0-1 to 0-4096, light that must be on first, values kept while off, switching on forcing the
maximum, light only with the lid closed, no brightness at all, CAP_ABORT, AtMostOne CAP_PARK, a
lid between open and closed with both switches off, interfaces announced after connecting.

One indiserver holds the camera simulator and one flip-flat per profile (each started through a
link named indi_indical_flipflat+PROFILE). Every profile passes the HAL conformance suite and a
panel-flats run, with the camera looking at that profile's light."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from astropy.io import fits

from indi_helpers import open_indi_rig, rig_for, start_server
from indical.rig import open_rig, parse_rig
from indical.sequence.engine import run_sequence
from indical.sequence.trained import TrainedStore
from indical.simulators.indi.config import CAMERA_NAME, PROFILES, profile_device
from indical.simulators.indi.server import OUR_CCD, OUR_FLIPFLAT, find_driver
from indical.sinks import FitsFolderSink
from indical.testing.conformance import CoverConformance, LightPanelConformance

ROOT = Path(__file__).resolve().parents[2]
NAMES = [p for p in PROFILES if p != "default"]
WITH_COVER = [p for p in NAMES if PROFILES[p].get("cover", True)]

SIMS = """\
[camera]
width = 160
height = 120
readout_s = 0.02
prnu = 0.0
hot_pixel_fraction = 0.0
cold_pixel_fraction = 0.0
jitter_s = 0.0

[flipflat]
travel_s = 0.2
max_flux_e_per_s = 400000.0

[optics]
dust_count = 0
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("profiles")
    target = find_driver(OUR_FLIPFLAT)
    links = []
    for name in NAMES:
        link = tmp / f"{OUR_FLIPFLAT}+{name}"
        link.symlink_to(target)
        links.append(str(link))
    server = start_server(tmp, [OUR_CCD, *links], SIMS)
    server.wait_for_devices([CAMERA_NAME] + [profile_device(p) for p in NAMES], timeout_s=90)
    yield server
    server.stop()


def _roles(profile: str) -> dict[str, str]:
    device = profile_device(profile)
    roles = {"panel": device}
    if profile in WITH_COVER:
        roles["cover"] = device
    return roles


@pytest.fixture(params=NAMES)
def panel(request, server):
    profile = request.param
    with open_indi_rig(server.address, _roles(profile)) as rig:
        if PROFILES[profile].get("only_parked"):
            rig.cover.close()      # this driver lights up only with the lid closed
        yield rig.panel


@pytest.fixture(params=WITH_COVER)
def cover(request, server):
    with open_indi_rig(server.address, {"cover": profile_device(request.param)}) as rig:
        yield rig.cover


class TestProfilePanels(LightPanelConformance):
    pass


class TestProfileCovers(CoverConformance):
    pass


def test_ranges_and_missing_brightness_are_read_from_the_driver(server):
    expect = {"pegasus-flatmaster": (0, 100), "rbf-excalibur": (0, 3000),
              "wanderer-v3": (1, 255), "deep-sky-dad-fp": (0, 4096), "dragonlight": (0, 1)}
    for profile, (lo, hi) in expect.items():
        with open_indi_rig(server.address, {"panel": profile_device(profile)}) as rig:
            info = rig.panel.info()
            assert (info.dimmable, info.min_brightness, info.max_brightness) == (True, lo, hi)
    with open_indi_rig(server.address, {"panel": profile_device("no-dimming")}) as rig:
        assert not rig.panel.info().dimmable


@pytest.mark.parametrize("profile", NAMES)
def test_panel_flats_run(server, tmp_path, profile):
    device = profile_device(profile)
    # the camera looks at this profile's light and lid
    run = subprocess.run(["indi_setprop", "-p", str(server.port),
                          f"{CAMERA_NAME}.ACTIVE_DEVICES.ACTIVE_LIGHTBOX;ACTIVE_DUSTCAP="
                          f"{device};{device}"], capture_output=True, text=True, timeout=10)
    assert run.returncode == 0, run.stderr
    roles = {"camera": CAMERA_NAME, **_roles(profile)}
    spec = parse_rig(rig_for(server.address, roles), f"rig for {profile}")
    out = tmp_path / "frames"
    settings = {"FLATS_PER_FILTER": 2, "DARK_FLATS_PER_EXPOSURE": 1}
    if PROFILES[profile].get("dimmable", True):
        sequence, band = "panel_flats.py", (0.4, 0.6)          # brightness searched
        settings["EXPOSURE_S"] = 0.1
    else:
        sequence, band = "relay_panel_flats.py", (0.25, 0.55)  # exposure searched
        settings["FIRST_EXPOSURE_S"] = 0.1
    with open_rig(spec) as rig:
        result = run_sequence(ROOT / "sequences" / sequence, rig, FitsFolderSink(out),
                              log_path=tmp_path / "log.jsonl",
                              store=TrainedStore(tmp_path / "trained.sqlite"),
                              overrides=settings)
        assert result.error is None and not result.interrupted, result.error
        assert not rig.panel.is_on()
    headers = [fits.getheader(p) for p in sorted(out.rglob("*.fits"))]
    flats = [h for h in headers if h["IMAGETYP"] == "Flat Field"]
    darks = [h for h in headers if h["IMAGETYP"] == "Dark Flat"]
    assert len(flats) == 2 and darks, profile
    for h in flats:
        assert band[0] * 65535 <= h["LEVEL"] + 500 <= band[1] * 65535, (profile, h["LEVEL"])
    for h in darks:
        assert abs(h["LEVEL"]) < 20, profile


def test_discovery_finds_drivers_that_announce_themselves_after_connecting(server):
    """Flip-Flat and Gemini say what they are only once connected: discovery without
    connecting lists them as not connected, with --connect by what they can do, and leaves
    them disconnected as they were."""
    from indical.drivers.indi.discover import discover
    late = [profile_device(p) for p in ("flip-flat", "gemini")]
    for device in late:
        subprocess.run(["indi_setprop", "-p", str(server.port),
                        f"{device}.CONNECTION.DISCONNECT=On"], check=True, timeout=10)
    host, port = server.address.split(":")
    looked = {d.name: d for d in discover(host, int(port))}
    for device in late:
        assert not looked[device].connected
        assert "light box" not in looked[device].capabilities
    found = {d.name: d for d in discover(host, int(port), connect=True)}
    for device in late:
        assert {"light box", "dust cap"} <= set(found[device].capabilities), found[device]
    # every other profile is found by what it can do, whatever its name
    assert "dust cap" not in found[profile_device("pegasus-flatmaster")].capabilities
    assert all("light box" in found[profile_device(p)].capabilities for p in NAMES)
    assert "camera" in found[CAMERA_NAME].capabilities
    again = {d.name: d for d in discover(host, int(port))}
    assert all(not again[device].connected for device in late)
