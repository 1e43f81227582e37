"""`indical calibrate LIGHTS --bias/--dark/--flat/--bpm FILE`: masters from `indical master -o`
or any program, checked against each light like library matches."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from indical.cli import main
from indical.frame import FrameType
from indical.testing.frames import write_synthetic


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def masters(tmp_path):
    """A master dark (30 s) and a master flat (L) built by `indical master -o`, and a light."""
    raw = tmp_path / "raw"
    for i in range(5):
        write_synthetic(raw / f"dark_{i}.fits", FrameType.DARK, level_adu=500, seed=10 + i,
                        exposure_s=30.0)
        write_synthetic(raw / f"flat_{i}.fits", FrameType.FLAT, level_adu=20000 + 400 * i,
                        seed=20 + i, vignetting=True, filter="L")
    dark, flat = tmp_path / "mdark.fits", tmp_path / "mflat.fits"
    assert invoke("master", *sorted(raw.glob("dark_*")), "-o", dark).exit_code == 0
    assert invoke("master", *sorted(raw.glob("flat_*")), "-o", flat).exit_code == 0
    light = write_synthetic(tmp_path / "lights" / "light_1.fits", FrameType.LIGHT,
                            level_adu=3000, seed=40, exposure_s=30.0, vignetting=True)
    fits.setval(light, "FILTER", value="L")   # synthetic lights carry no filter
    return tmp_path, dark, flat, light


def test_masters_from_indical_master_calibrate_a_light(masters):
    tmp, dark, flat, light = masters
    r = invoke("calibrate", light, "-o", tmp / "out", "--dark", dark, "--flat", flat)
    assert r.exit_code == 0, r.output
    out = tmp / "out" / "light_1_cal.fits"
    expected = (fits.getdata(light).astype(np.float64) - fits.getdata(dark)) / fits.getdata(flat)
    np.testing.assert_allclose(fits.getdata(out), expected, rtol=1e-5, atol=1e-3)
    header = fits.getheader(out)
    assert header["CALDARK"] == "mdark.fits" and header["CALFLAT"] == "mflat.fits"


def test_a_dark_of_another_exposure_is_refused_with_the_reason(masters, tmp_path):
    tmp, dark, flat, _ = masters
    light = write_synthetic(tmp / "l60" / "light.fits", FrameType.LIGHT, level_adu=3000,
                            seed=41, exposure_s=60.0)
    r = invoke("calibrate", light, "-o", tmp / "out60", "--dark", dark)
    assert r.exit_code == 1
    assert "exposure 30 s is not the light's 60 s" in r.output
    assert not (tmp / "out60").exists() or not any((tmp / "out60").iterdir())
    r = invoke("calibrate", light, "-o", tmp / "out60", "--dark", dark, "--allow-mismatch")
    assert r.exit_code == 0, r.output
    assert "used although master dark mdark.fits: exposure 30 s" in r.output


@pytest.mark.parametrize("change, words", [
    ({"filter": "R"}, "filter 'L' is not the light's 'R'"),
    ({"gain": 200.0}, "gain 100"),
    ({"offset": 30.0}, "offset 10"),
    ({"camera": "Other Cam"}, "camera 'Sim Cam' is not the light's 'Other Cam'"),
])
def test_configuration_mismatches_are_refused(masters, change, words):
    tmp, dark, flat, _ = masters
    cards = {"filter": "L", **change}
    light = write_synthetic(tmp / "odd" / "light.fits", FrameType.LIGHT, level_adu=3000,
                            seed=42, exposure_s=30.0,
                            **{k: v for k, v in cards.items() if k != "filter"})
    fits.setval(light, "FILTER", value=cards["filter"])
    r = invoke("calibrate", light, "-o", tmp / "odd_out", "--dark", dark, "--flat", flat)
    assert r.exit_code == 1 and words in r.output, r.output


def test_a_temperature_far_from_the_light_is_refused(masters):
    tmp, dark, _, _ = masters
    light = write_synthetic(tmp / "warm" / "light.fits", FrameType.LIGHT, level_adu=3000,
                            seed=43, exposure_s=30.0, temperature_c=5.0)
    r = invoke("calibrate", light, "-o", tmp / "warm_out", "--dark", dark)
    assert r.exit_code == 1 and "temperature -10.0 C is more than 2 C" in r.output, r.output


def test_size_mismatch_is_refused_even_when_mismatches_are_allowed(masters):
    tmp, dark, _, _ = masters
    light = write_synthetic(tmp / "big" / "light.fits", FrameType.LIGHT, level_adu=3000,
                            seed=44, exposure_s=30.0, shape=(50, 64))
    r = invoke("calibrate", light, "-o", tmp / "big_out", "--dark", dark, "--allow-mismatch")
    assert r.exit_code == 1 and "is 64x48 pixels, the light 64x50" in r.output, r.output


def test_unrecorded_values_are_warned_about(masters):
    tmp, dark, _, _ = masters
    bare = tmp / "bare_dark.fits"
    data = fits.getdata(dark)
    h = fits.Header()
    h["IMAGETYP"], h["EXPTIME"] = "Master Dark", 30.0
    fits.writeto(bare, data, h)
    light = tmp / "lights" / "light_1.fits"
    r = invoke("calibrate", light, "-o", tmp / "bare_out", "--dark", bare)
    assert r.exit_code == 0, r.output
    assert "temperature not checked: the master does not record it" in r.output
    assert "gain not checked" in r.output


def test_a_master_scaled_to_0_1_is_brought_back_to_adu(masters):
    """Siril and PixInsight store 16-bit data as 0..1: such a dark is multiplied by 65535."""
    tmp, dark, flat, light = masters
    unit = tmp / "unit_dark.fits"
    h = fits.getheader(dark)
    del h["IMAGETYP"]
    del h["CREATOR"]
    h["STACKCNT"], h["PROGRAM"] = 5, "Siril v1.0.6"
    fits.writeto(unit, (fits.getdata(dark) / 65535.0).astype(np.float32), h)
    r1 = invoke("calibrate", light, "-o", tmp / "a", "--dark", dark, "--flat", flat)
    r2 = invoke("calibrate", light, "-o", tmp / "b", "--dark", unit, "--flat", flat)
    assert r1.exit_code == 0 and r2.exit_code == 0, r2.output
    assert "from Siril (values x65535" in r2.output
    np.testing.assert_allclose(fits.getdata(tmp / "b" / "light_1_cal.fits"),
                               fits.getdata(tmp / "a" / "light_1_cal.fits"), rtol=1e-5, atol=1e-2)


def test_a_light_given_as_a_master_is_refused(masters):
    tmp, _, _, light = masters
    r = invoke("calibrate", light, "-o", tmp / "x", "--flat", light)
    assert r.exit_code != 0 and "light_1.fits" in r.output and "is a light" in r.output


def test_a_given_bad_pixel_map_flags_its_pixels(masters):
    from indical.calib.flags import PixelFlag
    tmp, dark, _, light = masters
    bpm = np.zeros((48, 64), np.uint8)
    bpm[5, 7] = PixelFlag.HOT
    h = fits.Header()
    h["IMAGETYP"], h["INSTRUME"], h["GAIN"], h["OFFSET"] = "Bad Pixel Map", "Sim Cam", 100, 10
    fits.writeto(tmp / "bpm.fits", bpm, h)
    r = invoke("calibrate", light, "-o", tmp / "flagged", "--dark", dark, "--bpm", tmp / "bpm.fits")
    assert r.exit_code == 0, r.output
    with fits.open(tmp / "flagged" / "light_1_cal.fits") as hdul:
        flags = hdul["FLAGS"].data
        assert flags[5, 7] & PixelFlag.HOT and np.count_nonzero(flags) == 1
        assert hdul[0].header["CALBPM"] == "bpm.fits"
