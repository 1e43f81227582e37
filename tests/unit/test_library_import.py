"""`indical library import`: masters from indical master -o, Siril, PixInsight/WBPP, N.I.N.A.
and ccdproc are recognised, brought to indical's scale and matched like indical's own; ingest
never takes them (or lights another program calibrated) for raw frames."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from indical.calib.ingest import ingest_paths
from indical.calib.library import CalibrationLibrary
from indical.cli import main
from indical.frame import FrameType
from indical.testing.frames import write_synthetic

SHAPE = (48, 64)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _dark_adu(seed=1):
    rng = np.random.default_rng(seed)
    return (500 + 3 * rng.standard_normal(SHAPE)).astype(np.float32)


def _flat_rel(seed=2):
    y, x = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    return (1 - 0.3 * ((x / SHAPE[1] - 0.5) ** 2 + (y / SHAPE[0] - 0.5) ** 2)).astype(np.float32)


def _config(h, exposure=30.0):
    h["INSTRUME"], h["GAIN"], h["OFFSET"], h["CCD-TEMP"] = "Sim Cam", 100, 10, -10.0
    h["XBINNING"], h["YBINNING"], h["EXPTIME"] = 1, 1, exposure
    return h


def siril_dark(path):
    """As Siril 1.0.6 writes `stack dark rej s 3 3 -nonorm` of frames without IMAGETYP."""
    h = _config(fits.Header())
    h["STACKCNT"], h["PROGRAM"], h["LIVETIME"] = 7, "Siril v1.0.6", 210.0
    fits.writeto(path, _dark_adu() / 65535.0, h)
    return path


def siril_flat(path):
    h = _config(fits.Header(), exposure=1.0)
    h["IMAGETYP"], h["FILTER"], h["STACKCNT"], h["PROGRAM"] = "Flat Frame", "L", 7, "Siril v1.0.6"
    fits.writeto(path, 0.3 * _flat_rel(), h)
    return path


def pixinsight_dark(path):
    h = _config(fits.Header())
    h["IMAGETYP"] = "Master Dark"
    h["HISTORY"] = "ImageIntegration.numberOfImages: 20"
    h["HISTORY"] = "ImageIntegration.pixelCombination: average"
    fits.writeto(path, _dark_adu() / 65535.0, h)
    return path


def nina_dark(path):
    h = _config(fits.Header())
    h["IMAGETYP"], h["SWCREATE"] = "MASTERDARK", "N.I.N.A. 3.0.0.9001"
    fits.writeto(path, _dark_adu(), h)
    return path


def ccdproc_dark(path):
    from astropy.nddata import CCDData
    import ccdproc
    frames = []
    for i in range(3):
        h = _config(fits.Header())
        h["IMAGETYP"] = "DARK"
        frames.append(CCDData(_dark_adu() + i - 1, unit="adu", meta=h))
    ccdproc.combine(frames, method="average").write(path)
    return path


@pytest.mark.parametrize("make, program, scale", [
    (siril_dark, "Siril", 65535.0), (pixinsight_dark, "PixInsight", 65535.0),
    (nina_dark, "N.I.N.A.", 1.0), (ccdproc_dark, "astropy/ccdproc", 1.0)])
def test_darks_from_other_programs_are_imported_in_adu(tmp_path, make, program, scale):
    src = make(tmp_path / "master_dark_elsewhere.fits")
    db = tmp_path / "lib" / "library.sqlite"
    r = invoke("library", "--library", db, "import", src)
    assert r.exit_code == 0, r.output
    assert f"({program}" in r.output and "as master dark" in r.output
    with CalibrationLibrary(db) as lib:
        (m,) = lib.masters()
    c = m.config
    assert m.frame_type is FrameType.DARK and m.exposure_s == 30.0 and c.gain == 100
    assert c.camera == "Sim Cam" and c.temperature_c == -10.0 and (c.width, c.height) == (64, 48)
    data = fits.getdata(m.path)
    np.testing.assert_allclose(data, _dark_adu(), rtol=1e-5, atol=0.02)
    header = fits.getheader(m.path)
    assert header["IMAGETYP"] == "Master Dark" and header["IMPSCALE"] == scale
    assert header["IMPPROG"] == program
    r = invoke("library", "--library", db, "import", src)   # twice: harmless
    assert "already in the library" in r.output


def test_a_siril_flat_is_normalised_and_matched_for_calibration(tmp_path):
    src = siril_flat(tmp_path / "pp_flat_stacked.fits")
    db = tmp_path / "lib" / "library.sqlite"
    assert invoke("library", "--library", db, "import", src,
                  siril_dark(tmp_path / "dark_stacked.fits")).exit_code == 0
    with CalibrationLibrary(db) as lib:
        flat = next(m for m in lib.masters() if m.frame_type is FrameType.FLAT)
    assert flat.filter == "L"
    data = fits.getdata(flat.path)
    assert float(data.mean(dtype=np.float64)) == pytest.approx(1.0, abs=1e-6)
    from astropy.nddata import CCDData
    assert CCDData.read(flat.path).unit.physical_type == "dimensionless"
    light = write_synthetic(tmp_path / "lights" / "light.fits", FrameType.LIGHT, level_adu=3000,
                            seed=4, exposure_s=30.0, shape=SHAPE)
    fits.setval(light, "FILTER", value="L")
    r = invoke("calibrate", "--library", db, light, "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output
    out = fits.getdata(tmp_path / "out" / "light_cal.fits")
    expected = (fits.getdata(light).astype(np.float64) - _dark_adu()) / (
        _flat_rel() / _flat_rel().mean(dtype=np.float64))
    np.testing.assert_allclose(out, expected, rtol=2e-5, atol=0.05)


def test_indical_master_output_is_imported(tmp_path):
    raw = tmp_path / "raw"
    paths = [write_synthetic(raw / f"b{i}.fits", FrameType.BIAS, level_adu=300, seed=i,
                             exposure_s=0.0) for i in range(3)]
    out = tmp_path / "bias.fits"
    assert invoke("master", *paths, "-o", out, "--combine", "mean").exit_code == 0
    db = tmp_path / "lib" / "library.sqlite"
    r = invoke("library", "--library", db, "import", out)
    assert r.exit_code == 0 and "(indical) as master bias" in r.output, r.output


def test_raw_frames_and_lights_are_not_imported(tmp_path):
    raw = write_synthetic(tmp_path / "dark.fits", FrameType.DARK, level_adu=500, exposure_s=30.0)
    light = write_synthetic(tmp_path / "light.fits", FrameType.LIGHT, level_adu=500)
    db = tmp_path / "lib" / "library.sqlite"
    r = invoke("library", "--library", db, "import", raw, light)
    assert r.exit_code != 0
    assert "dark.fits: integer data that does not say it combines frames" in r.output
    assert "light.fits: is a light" in r.output


def test_ingest_does_not_take_other_programs_masters_or_calibrated_lights(tmp_path):
    """Siril's master flat was ingested as a raw flat and its calibrated light as a raw light."""
    flat = siril_flat(tmp_path / "pp_flat_stacked.fits")
    dark = siril_dark(tmp_path / "dark_stacked.fits")
    calibrated = tmp_path / "pp_light_00001.fits"
    h = _config(fits.Header())
    h["IMAGETYP"], h["PROGRAM"] = "Light Frame", "Siril v1.0.6"
    fits.writeto(calibrated, np.full(SHAPE, 0.05, np.float32), h)
    pi_cal = tmp_path / "light_c.fits"
    h2 = _config(fits.Header())
    h2["IMAGETYP"], h2["HISTORY"] = "Light Frame", "ImageCalibration.outputPedestal: 0"
    fits.writeto(pi_cal, np.full(SHAPE, 300.0, np.float32), h2)
    ccd = ccdproc_dark(tmp_path / "ccdproc_dark.fits")
    report = ingest_paths([flat, dark, calibrated, pi_cal, ccd])
    assert report.records == []
    reasons = {p.name: r for p, r in report.skipped}
    assert "master or stack (Siril)" in reasons["pp_flat_stacked.fits"]
    assert "master or stack (Siril)" in reasons["dark_stacked.fits"]
    assert "already processed by Siril" in reasons["pp_light_00001.fits"]
    assert "already calibrated (PixInsight)" in reasons["light_c.fits"]
    assert "astropy/ccdproc" in reasons["ccdproc_dark.fits"]
