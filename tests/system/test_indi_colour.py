"""A one-shot-colour camera through a real indiserver: indical's INDI camera simulator as a
colour camera publishes CCD_CFA as real ones do, the INDI adapter reads it into each frame's
metadata (a region starting on an odd pixel shifts the pattern's phase), a panel-flats run
with a strongly coloured flip-flat puts the brightest channel on the target, and a twilight run
under the real-time blue sky of a site where the sun is setting now does the same."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from indi_helpers import start_server
from indical.frame import Binning, FrameType, Region, bayer_at
from indical.rig import open_rig, parse_rig
from indical.sequence.engine import run_sequence
from indical.sequence.log import read_log
from indical.sequence.trained import TrainedStore
from indical.simulators.indi.server import OUR_CCD, OUR_FLIPFLAT, simulator_rig_toml
from indical.sinks import FitsFolderSink
from indical.level import Target

SEQUENCE = Path(__file__).resolve().parents[2] / "sequences" / "panel_flats.py"
TWILIGHT = SEQUENCE.with_name("twilight_flats.py")
CAMERA, FLIPFLAT = "indical Flat Camera", "indical Flip-Flat"
BIAS = 500.0
FULL = 65535
FLUX = {"R": 1.0, "G": 0.55, "B": 0.25}

SIMS = """\
[camera]
width = 320
height = 240
readout_s = 0.05
bayer_pattern = "GRBG"
bayer_offset_y = 1
prnu = 0.0
hot_pixel_fraction = 0.0
cold_pixel_fraction = 0.0
jitter_s = 0.0

[flipflat]
travel_s = 0.3
channel_flux = [1.0, 0.55, 0.25]

[optics]
dust_count = 0
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("colour"), [OUR_CCD, OUR_FLIPFLAT], SIMS)
    server.wait_for_devices([CAMERA, FLIPFLAT])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def spec(server):
    return parse_rig(simulator_rig_toml(server.address, filter_wheel=False), "colour INDI rig")


def getprop(server, name: str) -> dict[str, str]:
    run = subprocess.run(["indi_getprop", "-p", str(server.port), "-t", "2",
                          f"{CAMERA}.{name}.*"], capture_output=True, text=True, timeout=15)
    out = {}
    for line in run.stdout.splitlines():
        key, _, value = line.partition("=")
        out[key.rsplit(".", 1)[1]] = value.strip()
    return out


def cell_levels(data):
    d = data.astype(np.float64) - BIAS
    return {(x, y): float(np.median(d[y::2, x::2])) for y in (0, 1) for x in (0, 1)}


def test_ccd_cfa_is_published_as_real_colour_cameras_do(server, spec):
    cfa = getprop(server, "CCD_CFA")
    assert cfa == {"CFA_OFFSET_X": "0", "CFA_OFFSET_Y": "1", "CFA_TYPE": "GRBG"}
    with open_rig(spec) as rig:              # and `indical rig check` shows it
        assert rig.camera.describe()["colour filter"] == "GRBG (offsets 0, 1)"


@pytest.mark.parametrize("region", [None, Region(1, 0, 200, 120), Region(3, 7, 120, 100),
                                    Region(0, 1, 160, 80)])
def test_adapter_reads_ccd_cfa_with_the_regions_phase(spec, region):
    with open_rig(spec) as rig:
        rig.cover.close()
        rig.panel.set_brightness(255)
        rig.panel.on()
        try:
            rig.camera.set_region(region)
            frame = rig.camera.expose(0.2, FrameType.FLAT)
        finally:
            rig.panel.off()
            rig.camera.set_region(None)
    start = region or Region(0, 0, 320, 240)
    m = frame.meta
    assert m.bayer_pattern == "GRBG"
    assert (m.bayer_offset_x, m.bayer_offset_y) == (start.x % 2, (1 + start.y) % 2)
    # the pixels agree: the colour the metadata gives each cell position has that colour's
    # share of the coloured panel's light
    seen = bayer_at(m.bayer_pattern, m.bayer_offset_x, m.bayer_offset_y)
    levels = cell_levels(frame.data)
    top = max(levels.values())
    for (x, y), level in levels.items():
        assert level / top == pytest.approx(FLUX[seen[2 * y + x]], rel=0.03), (x, y, seen)


def test_binned_colour_frames_carry_no_pattern(spec):
    with open_rig(spec) as rig:
        rig.camera.set_binning(Binning(2, 2))
        try:
            frame = rig.camera.expose(0.05, FrameType.DARK)
        finally:
            rig.camera.set_binning(Binning())
    assert frame.meta.bayer_pattern is None and frame.data.shape == (120, 160)


def test_colour_panel_flats_through_indi(spec, tmp_path):
    out = tmp_path / "frames"
    with open_rig(spec) as rig:
        result = run_sequence(SEQUENCE, rig, FitsFolderSink(out),
                              log_path=tmp_path / "log.jsonl",
                              store=TrainedStore(tmp_path / "trained.sqlite"),
                              overrides={"FLATS_PER_FILTER": 3, "DARK_FLATS_PER_EXPOSURE": 1,
                                         "EXPOSURE_S": 0.2})
        assert not rig.panel.is_on()
    assert result.error is None, result.error
    band = Target.fraction(0.5).band(FULL, BIAS)
    flats = sorted(out.rglob("flat_*.fits"))
    assert len(flats) == 3
    for path in flats:
        with fits.open(path) as hdul:
            h, data = hdul[0].header, hdul[0].data
        assert (h["BAYERPAT"], h["XBAYROFF"], h["YBAYROFF"]) == ("GRBG", 0, 1)
        levels = cell_levels(data)
        seen = bayer_at("GRBG", 0, 1)
        by_colour = {seen[2 * y + x]: v for (x, y), v in levels.items()}
        assert band.contains(by_colour["R"]), by_colour
        assert data.max() < FULL
        assert by_colour["B"] > 0.10 * FULL
    kept = [e for e in read_log(tmp_path / "log.jsonl")
            if e["kind"] in ("search", "flat") and e["accepted"]]
    assert len(kept) == 3
    assert all(e["level"] == e["channels"]["R"] > e["channels"]["G"] > e["channels"]["B"]
               for e in kept)


TWILIGHT_SIMS = SIMS.replace('bayer_offset_y = 1\n', '') + """
[site]
latitude = {lat}
longitude = {lon}

[sky]
channel_flux = [0.45, 0.75, 1.0]
"""


def dusk_longitude(lat: float, sun_alt_deg: float) -> float:
    """A longitude where, now, the sun is setting through `sun_alt_deg` (so a twilight run
    starts at once, in real time)."""
    from astropy import units as u
    from astropy.coordinates import AltAz, EarthLocation, get_sun
    from astropy.time import Time
    now = Time.now()
    lons = np.arange(-180.0, 180.0, 0.25)
    where = EarthLocation(lat=np.full(lons.size, lat) * u.deg, lon=lons * u.deg)
    alts = get_sun(now).transform_to(AltAz(obstime=now, location=where)).alt.deg
    later = np.roll(alts, -1)              # 1 minute of time later = 0.25 deg further east
    setting = later < alts
    i = int(np.argmin(np.where(setting, np.abs(alts - sun_alt_deg), np.inf)))
    return float(lons[i])


def test_colour_twilight_flats_through_indi(tmp_path):
    """The INDI camera sees the real-time twilight sky of a site where the sun is setting
    through -6.5 deg now; the blue sky's brightest channel (B) goes on the target."""
    lat = 30.0
    lon = dusk_longitude(lat, -6.5)
    server = start_server(tmp_path / "indi", [OUR_CCD, OUR_FLIPFLAT],
                          TWILIGHT_SIMS.format(lat=lat, lon=lon))
    try:
        server.wait_for_devices([CAMERA, FLIPFLAT])
        text = simulator_rig_toml(server.address, filter_wheel=False) + \
            f"\n[site]\nlatitude = {lat}\nlongitude = {lon}\n"
        out = tmp_path / "frames"
        with open_rig(parse_rig(text, "colour INDI twilight rig")) as rig:
            result = run_sequence(TWILIGHT, rig, FitsFolderSink(out, longitude_deg=lon),
                                  log_path=tmp_path / "log.jsonl",
                                  store=TrainedStore(tmp_path / "trained.sqlite"),
                                  overrides={"FLATS_PER_FILTER": 3, "DARKS_COUNT": 1,
                                             "TWILIGHT": "dusk", "MIN_EXPOSURE_S": 0.05,
                                             "MAX_EXPOSURE_S": 10.0})
    finally:
        server.stop()
    assert result.error is None, result.error
    band = Target.fraction(0.4).band(FULL, BIAS)           # the sequence's TARGET
    flats = [p for p in sorted(out.rglob("flat_*.fits")) if "rejected" not in p.parts]
    assert len(flats) == 3
    for path in flats:
        with fits.open(path) as hdul:
            h, data = hdul[0].header, hdul[0].data
        assert (h["BAYERPAT"], h["XBAYROFF"], h["YBAYROFF"]) == ("GRBG", 0, 0)
        assert h["FLATSRC"] == "SKY" and -10 <= h["SUNALT"] <= -2
        levels = cell_levels(data)
        by_colour = {"GRBG"[2 * y + x]: v for (x, y), v in levels.items()}
        assert by_colour["B"] > by_colour["G"] > by_colour["R"] > 0.10 * FULL, by_colour
        assert abs(by_colour["B"] / band.target_adu - 1) <= 2 * band.tolerance, by_colour
        assert data.max() < FULL
    sky = [e for e in read_log(tmp_path / "log.jsonl") if e["kind"] == "twilight"]
    assert all(e["level"] == e["channels"]["B"] for e in sky)
    print(f"INDI colour twilight at longitude {lon}: {len(sky)} sky exposures, "
          f"{sum(e['accepted'] for e in sky)} kept, channels {sky[-1]['channels']}")
