"""Ingest: header dialects from other capture programs, and each kind of bad file is skipped with
a reason that names it."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from astropy.io import fits

from indical.calib.ingest import file_sha256, ingest_paths, inspect_file
from indical.errors import FitsError
from indical.frame import Binning, FrameType
from indical.testing.frames import write_synthetic


def _write(path, header_cards, data=None):
    data = np.full((8, 10), 1000, dtype=np.uint16) if data is None else data
    hdu = fits.PrimaryHDU(data=data)
    for k, v in header_cards.items():
        hdu.header[k] = v
    hdu.writeto(path)
    return path


@pytest.mark.parametrize("cards, expect", [
    ({"IMAGETYP": "Flat Frame", "EXPOSURE": 2.5, "FILTER": "Ha ", "BLKLEVEL": 40, "EGAIN": 0.8},
     dict(frame_type=FrameType.FLAT, exposure_s=2.5, filter="Ha", offset=40.0, e_per_adu=0.8)),
    ({"IMAGETYP": "DARKFLAT", "EXPTIME": 3.0, "SET-TEMP": -10, "READMODE": "High Gain"},
     dict(frame_type=FrameType.DARKFLAT, setpoint_temp_c=-10.0, readout_mode="High Gain")),
    ({"IMAGETYP": "FLATDARK", "EXPOSURE": 2.0, "CCD-TEMP": -9.6, "GAIN": 139},
     dict(frame_type=FrameType.DARKFLAT, sensor_temp_c=-9.6, gain=139.0)),
    ({"IMAGETYP": "Offset", "CCDSUM": "2 2", "CAMERA": "QHY268M"},
     dict(frame_type=FrameType.BIAS, binning=Binning(2, 2), camera="QHY268M")),
    ({"IMAGETYP": "Bias Frame", "BINNING": "3x3", "BAYERPAT": "RGGB"},
     dict(frame_type=FrameType.BIAS, binning=Binning(3, 3), bayer_pattern="RGGB")),
    ({"IMAGETYP": "Dark Frame", "EXPTIME": 60, "XBINNING": 2, "YBINNING": 2,
      "INSTRUME": "ZWO ASI294MM Pro"},
     dict(frame_type=FrameType.DARK, binning=Binning(2, 2), camera="ZWO ASI294MM Pro")),
])
def test_header_dialects(tmp_path, cards, expect):
    record = inspect_file(_write(tmp_path / "f.fits", cards))
    for name, value in expect.items():
        assert getattr(record.meta, name) == value, name


def test_unsigned_16_bit_through_bzero(tmp_path):
    data = np.array([[0, 1, 40000, 65535]] * 4, dtype=np.uint16)
    path = _write(tmp_path / "u16.fits", {"IMAGETYP": "Flat", "EXPTIME": 1.0}, data)
    assert fits.getheader(path)["BZERO"] == 32768
    record = inspect_file(path)
    assert record.median_adu == pytest.approx(20000.5)


def test_truncated_file(tmp_path):
    path = write_synthetic(tmp_path / "cut.fits", FrameType.FLAT, shape=(100, 100))
    path.write_bytes(path.read_bytes()[:-5000])
    with pytest.raises(FitsError, match=r"cut\.fits.*truncated"):
        inspect_file(path)


def test_not_fits(tmp_path):
    path = tmp_path / "notes.fits"
    path.write_text("hello")
    with pytest.raises(FitsError, match=r"notes\.fits.*not a readable FITS"):
        inspect_file(path)


def test_nan_pixels(tmp_path):
    data = np.ones((8, 10), dtype=np.float32)
    data[2, 3] = np.nan
    path = _write(tmp_path / "nan.fits", {"IMAGETYP": "Flat"}, data)
    with pytest.raises(FitsError, match=r"nan\.fits: 1 pixels are NaN"):
        inspect_file(path)


def test_all_zero_frame(tmp_path):
    path = _write(tmp_path / "zero.fits", {"IMAGETYP": "Dark"}, np.zeros((8, 10), np.uint16))
    with pytest.raises(FitsError, match=r"zero\.fits: every pixel is zero"):
        inspect_file(path)


def test_unknown_type_unless_given(tmp_path):
    path = _write(tmp_path / "what.fits", {"IMAGETYP": "Calibration", "EXPTIME": 5.0})
    with pytest.raises(FitsError, match=r"what\.fits: can't tell"):
        inspect_file(path)
    assert inspect_file(path, frame_type=FrameType.DARK).meta.frame_type is FrameType.DARK


def test_batch_never_stops_for_one_bad_file(tmp_path):
    good = [write_synthetic(tmp_path / f"g{i}.fits", FrameType.FLAT, seed=i) for i in range(2)]
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"\0" * 10)
    report = ingest_paths([good[0], bad, tmp_path / "missing.fits", good[1]])
    assert [r.path for r in report.records] == [str(p.resolve()) for p in good]
    assert [(p.name, reason.split(" (")[0]) for p, reason in report.skipped] == \
        [("bad.fits", "not a readable FITS file"), ("missing.fits", "no such file")]


def test_masters_and_calibrated_lights_are_not_raw_frames(tmp_path):
    master = _write(tmp_path / "mf.fits", {"IMAGETYP": "Master Flat"})
    calibrated = _write(tmp_path / "l_cal.fits", {"IMAGETYP": "Light Frame",
                                                  "CALIBRAT": "2026-11-21T03:00:00Z"})
    light = _write(tmp_path / "l.fits", {"IMAGETYP": "Light Frame", "EXPTIME": 60.0})
    report = ingest_paths([master, calibrated, light])
    assert [r.path for r in report.records] == [str(light.resolve())]
    reasons = {p.name: reason for p, reason in report.skipped}
    assert "is a master or stack (unknown), not a raw frame" in reasons["mf.fits"]
    assert "is a calibrated light" in reasons["l_cal.fits"]


def test_file_sha256_is_the_content_hash_and_names_an_unreadable_file(tmp_path):
    path = tmp_path / "frame.fits"
    content = bytes(range(256)) * 5000  # more than one read block
    path.write_bytes(content)
    assert file_sha256(path) == hashlib.sha256(content).hexdigest()
    assert inspect_file(write_synthetic(tmp_path / "f.fits", FrameType.DARK)).sha256 == \
        hashlib.sha256((tmp_path / "f.fits").read_bytes()).hexdigest()
    with pytest.raises(FitsError, match="gone.fits.*can't be read"):
        file_sha256(tmp_path / "gone.fits")


@pytest.mark.parametrize("cards, problem", [
    ({"IMAGETYP": "Dark Frame"}, r"no exposure time \(EXPTIME or EXPOSURE\)"),
    ({"IMAGETYP": "Dark Frame", "EXPTIME": "abc"}, r"EXPTIME = 'abc' is not a number"),
    ({"IMAGETYP": "Dark Frame", "EXPTIME": -5}, r"EXPTIME = -5 is negative"),
    ({"IMAGETYP": "Flat Frame", "EXPOSURE": -0.5}, r"EXPOSURE = -0.5 is negative"),
    ({"IMAGETYP": "Light Frame", "EXPTIME": 1.0, "EXPOSURE": 30.0},
     r"EXPTIME = 1 but EXPOSURE = 30"),
])
def test_a_bad_exposure_is_refused_with_the_reason(tmp_path, cards, problem):
    """Today's code read a missing or 'abc' exposure as 0 s and stored -5 s as it was."""
    path = _write(tmp_path / "x.fits", cards)
    with pytest.raises(FitsError, match=r"x\.fits: " + problem):
        inspect_file(path)
    report = ingest_paths([path])
    assert report.records == [] and len(report.skipped) == 1


def test_a_bias_without_exposure_is_0_s(tmp_path):
    path = _write(tmp_path / "b.fits", {"IMAGETYP": "Bias Frame"})
    assert inspect_file(path).meta.exposure_s == 0.0
