"""The simulated one-shot-colour sensor: the colour filter pattern is where the frame's header
says (with offsets), channel levels follow the light's channel_flux (panel and sky), binning
mixes the colours, and bad settings are refused naming the key."""

from __future__ import annotations

import numpy as np
import pytest

from indical.errors import RigError
from indical.fits.io import read_frame, write_frame
from indical.frame import FrameType, bayer_at
from indical.rig import open_rig, parse_rig
from indical.simulators.models.cfa import Cfa

BIAS = 500.0

RIG = """
[site]
latitude = 52.0
longitude = 5.0
[clock]
start = "2026-03-20T18:40:00+00:00"
[camera]
driver = "sim"
width = 96
height = 64
readout_s = 0
jitter_s = 0.0
hot_pixel_fraction = 0.0
cold_pixel_fraction = 0.0
{camera}
[panel]
driver = "sim"
{panel}
[cover]
driver = "sim"
travel_s = 0
[optics]
dust_count = 0
{sky}
"""


def rig(camera="", panel="", sky=""):
    return open_rig(parse_rig(RIG.format(camera=camera, panel=panel, sky=sky), "colour rig"))


def flat(r, exposure_s=0.5, brightness=255, binning=None):
    r.cover.close()
    r.panel.on()
    r.panel.set_brightness(brightness)
    if binning is not None:
        r.camera.set_binning(binning)
    return r.camera.expose(exposure_s, FrameType.FLAT)


def cell_levels(data):
    """Median above bias of each of the four positions of the 2x2 cell, by (x, y)."""
    d = data.astype(np.float64) - BIAS
    return {(x, y): float(np.median(d[y::2, x::2])) for y in (0, 1) for x in (0, 1)}


@pytest.mark.parametrize("pattern", ["RGGB", "GRBG", "GBRG", "BGGR"])
@pytest.mark.parametrize("offsets", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_pattern_is_where_the_header_says(tmp_path, pattern, offsets):
    flux = {"R": 1.0, "G": 0.55, "B": 0.25}
    camera = f'bayer_pattern = "{pattern}"\nbayer_offset_x = {offsets[0]}\n' \
             f'bayer_offset_y = {offsets[1]}'
    with rig(camera, "channel_flux = [1.0, 0.55, 0.25]") as r:
        frame = flat(r)
    # through a FITS file, as other programs read it
    back = read_frame(write_frame(frame, tmp_path / "f.fits"))
    m = back.meta
    assert (m.bayer_pattern, m.bayer_offset_x, m.bayer_offset_y) == (pattern, *offsets)
    seen_from_0 = bayer_at(m.bayer_pattern, m.bayer_offset_x, m.bayer_offset_y)
    levels = cell_levels(back.data)
    top = max(levels.values())
    for (x, y), level in levels.items():
        colour = seen_from_0[2 * y + x]
        assert level / top == pytest.approx(flux[colour], rel=0.02), (x, y, colour)


def test_channel_levels_follow_channel_flux_on_top_of_vignetting_and_prnu():
    with rig('bayer_pattern = "RGGB"\nprnu = 0.02', "channel_flux = [0.3, 1.0, 0.6]") as r:
        frame = flat(r, exposure_s=0.3)
    d = frame.data.astype(np.float64) - BIAS
    red, blue = d[0::2, 0::2], d[1::2, 1::2]
    greens = (d[0::2, 1::2] + d[1::2, 0::2]) / 2
    # the ratio holds pixel by pixel across the vignetted field (to the noise)...
    ratio = np.median(red) / np.median(greens)
    assert ratio == pytest.approx(0.3, rel=0.02)
    assert np.median(blue) / np.median(greens) == pytest.approx(0.6, rel=0.02)
    # ...while the field still shows the vignetting and the PRNU: corners darker than the
    # centre, and pixel scatter beyond photon noise
    h, w = greens.shape
    assert np.median(greens[:4, :4]) < 0.95 * np.median(greens[h // 2 - 2:h // 2 + 2,
                                                               w // 2 - 2:w // 2 + 2])
    centre = d[24:40, 40:56][0::2, 1::2]
    assert np.std(centre) > np.sqrt(np.mean(centre)) * 1.2


def test_mono_sensor_ignores_the_colour_of_the_light():
    with rig("", "channel_flux = [1.0, 0.55, 0.25]") as r:
        frame = flat(r, exposure_s=0.3)
    assert frame.meta.bayer_pattern is None
    levels = cell_levels(frame.data)
    assert max(levels.values()) / min(levels.values()) == pytest.approx(1.0, abs=0.02)


def test_binned_colour_frame_mixes_the_colours_and_has_no_pattern():
    with rig('bayer_pattern = "RGGB"', "channel_flux = [1.0, 0.5, 0.25]") as r:
        from indical.frame import Binning
        binned = flat(r, exposure_s=0.2, binning=Binning(2, 2))
        r.camera.set_binning(Binning())
        full = flat(r, exposure_s=0.2)
    assert binned.meta.bayer_pattern is None and full.meta.bayer_pattern == "RGGB"
    levels = cell_levels(full.data)
    # a 2x2 bin sums the light of one R, two G and one B pixel (the bias is added once)
    expected = sum(levels.values())
    assert np.median(binned.data.astype(float)) - BIAS == pytest.approx(expected, rel=0.03)


def test_twilight_sky_is_blue_by_default_and_settable():
    with rig('bayer_pattern = "RGGB"') as r:
        r.cover.open()
        blue = cell_levels(r.camera.expose(1.0, FrameType.FLAT).data)
    assert blue[(1, 1)] > blue[(1, 0)] > blue[(0, 0)]            # B > G > R
    with rig('bayer_pattern = "RGGB"', sky="[sky]\nchannel_flux = [1.0, 0.5, 0.2]") as r:
        r.cover.open()
        red = cell_levels(r.camera.expose(1.0, FrameType.FLAT).data)
    assert red[(0, 0)] / red[(1, 0)] == pytest.approx(2.0, rel=0.05)
    assert red[(1, 1)] / red[(1, 0)] == pytest.approx(0.4, rel=0.05)


@pytest.mark.parametrize("table, key, text, words", [
    ("camera", "bayer_pattern", '"RGBG"', "must be one of BGGR, GBRG, GRBG, RGGB"),
    ("camera", "bayer_pattern", '"rggb"', "got 'rggb'"),
    ("camera", "bayer_pattern", "1", "expected a string"),
    ("camera", "bayer_offset_x", "2", "must be 0 or 1"),
    ("panel", "channel_flux", "[1.0, 0.5]", "three numbers [r, g, b]"),
    ("panel", "channel_flux", "[1.0, -0.5, 0.2]", "0 or more"),
    ("panel", "channel_flux", "[0, 0, 0]", "at least one channel"),
    ("sky", "channel_flux", '["blue", 1, 1]', "three numbers"),
])
def test_bad_colour_settings_name_the_key(table, key, text, words):
    camera = panel = sky = ""
    if table == "camera":
        camera = f"{key} = {text}"
    elif table == "panel":
        panel = f"{key} = {text}"
    else:
        sky = f"[sky]\n{key} = {text}"
    with pytest.raises(RigError) as err:
        with rig(camera, panel, sky):
            pass
    message = str(err.value)
    assert f"[{table}] {key}" in message and words in message and "colour rig" in message


def test_cfa_colour_agrees_with_the_frame_module():
    for pattern in ("RGGB", "GRBG", "GBRG", "BGGR"):
        for ox in (0, 1):
            for oy in (0, 1):
                cfa = Cfa(pattern, ox, oy)
                assert "".join(cfa.colour(x, y) for y in (0, 1) for x in (0, 1)) == \
                    bayer_at(pattern, ox, oy)


def test_rig_check_shows_the_colour_filter():
    with rig('bayer_pattern = "GBRG"\nbayer_offset_y = 1') as r:
        assert r.camera.describe()["colour filter"] == "GBRG (offsets 0, 1)"
    with rig() as r:
        assert "colour filter" not in r.camera.describe()
