"""Frames to FITS and back; atomic, non-clobbering writes; the per-night folder sink."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from astropy.io import fits

from indical.errors import FitsError
from indical.fits.keywords import header_to_meta, meta_to_header, parse_imagetyp
from indical.fits.io import read_frame, write_frame
from indical.frame import Binning, Frame, FrameMeta, FrameType, bayer_at
from indical.sinks import FitsFolderSink, FrameQuery, night_of

META = FrameMeta(frame_type=FrameType.FLAT, exposure_s=1.5, camera="Cam", gain=100.0,
                 offset=20.0, binning=Binning(2, 2), readout_mode="HCG", bit_depth=16,
                 sensor_temp_c=-10.04, setpoint_temp_c=-10.0, filter="Ha",
                 start=datetime(2026, 3, 20, 18, 0, 1, 500000, tzinfo=timezone.utc),
                 panel_brightness=42, sun_altitude_deg=-4.5, level_adu=21000.0)


def test_header_round_trip_keeps_every_field():
    back = header_to_meta(meta_to_header(META))
    for name in ("frame_type", "exposure_s", "camera", "gain", "offset", "binning",
                 "readout_mode", "bit_depth", "setpoint_temp_c", "filter", "start",
                 "panel_brightness", "sun_altitude_deg", "level_adu"):
        assert getattr(back, name) == getattr(META, name), name


def test_header_uses_keywords_other_tools_read():
    h = meta_to_header(META)
    assert h["IMAGETYP"] == "Flat Field" and h["EXPTIME"] == 1.5 and h["XBINNING"] == 2
    assert h["CCD-TEMP"] == -10.04 and h["SET-TEMP"] == -10.0 and h["FILTER"] == "Ha"
    assert h["DATE-OBS"] == "2026-03-20T18:00:01.500"


@pytest.mark.parametrize("text, kind", [
    ("Flat Frame", FrameType.FLAT), ("FLAT", FrameType.FLAT), ("Flat Field", FrameType.FLAT),
    ("Dark Flat", FrameType.DARKFLAT), ("DARKFLAT", FrameType.DARKFLAT),
    ("FLATDARK", FrameType.DARKFLAT), ("Bias Frame", FrameType.BIAS), ("Offset", FrameType.BIAS),
    ("Light Frame", FrameType.LIGHT), ("Object", FrameType.LIGHT), ("Master Flat", FrameType.FLAT),
    ("Dark Frame", FrameType.DARK), ("banana", None),
])
def test_imagetyp_dialects(text, kind):
    assert parse_imagetyp(text) is kind


def test_other_dialects_read():
    h = fits.Header({"IMAGETYP": "FLAT", "EXPOSURE": 2.0, "BLKLEVEL": 10, "EGAIN": 0.8})
    m = header_to_meta(h)
    assert m.exposure_s == 2.0 and m.offset == 10 and m.e_per_adu == 0.8


def test_uint16_frame_round_trips_exactly(tmp_path):
    data = np.array([[0, 1, 40000], [65535, 32768, 12]], dtype=np.uint16)
    path = write_frame(Frame(data, META), tmp_path / "a.fits")
    back = read_frame(path)
    assert back.data.dtype == np.uint16 and np.array_equal(back.data, data)
    assert back.meta.filter == "Ha"


def test_write_never_overwrites_and_leaves_no_temporary_files(tmp_path):
    data = np.zeros((4, 4), dtype=np.uint16)
    path = write_frame(Frame(data, META), tmp_path / "a.fits")
    with pytest.raises(FileExistsError):
        write_frame(Frame(data + 1, META), path)
    assert read_frame(path).data.max() == 0
    assert [p.name for p in tmp_path.iterdir()] == ["a.fits"]


def test_broken_fits_is_named(tmp_path):
    bad = tmp_path / "broken.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + b"\0" * 100)
    with pytest.raises(FitsError, match="broken.fits"):
        read_frame(bad)
    untyped = tmp_path / "untyped.fits"
    fits.PrimaryHDU(np.zeros((2, 2), np.uint16)).writeto(untyped)
    with pytest.raises(FitsError, match="untyped.fits: unknown frame type"):
        read_frame(untyped)


def test_night_turns_at_local_noon():
    dusk = datetime(2026, 3, 20, 18, 0, tzinfo=timezone.utc)
    dawn = datetime(2026, 3, 21, 5, 0, tzinfo=timezone.utc)
    assert night_of(dusk, 5.0) == night_of(dawn, 5.0) == "2026-03-20"
    # far east: 05:00 UTC is already afternoon of the 21st at 150 E
    assert night_of(dawn, 150.0) == "2026-03-21"


def test_sink_numbers_files_and_counts_by_configuration(tmp_path):
    sink = FitsFolderSink(tmp_path, longitude_deg=5.0)
    data = np.zeros((4, 4), dtype=np.uint16)
    paths = [sink.write(Frame(data, META)) for _ in range(3)]
    sink.write(Frame(data, META.replace(filter="R")))
    assert [p.name for p in paths] == [f"flat_Ha_1.5s_2x2_{i:04d}.fits" for i in (1, 2, 3)]
    assert paths[0].parent.name == "2026-03-20"
    fresh = FitsFolderSink(tmp_path)  # a new run sees what the last one wrote
    assert fresh.count(FrameQuery(FrameType.FLAT, filter="Ha")) == 3
    assert fresh.count(FrameQuery(FrameType.FLAT, filter="Ha", exposure_s=1.5)) == 3
    assert fresh.count(FrameQuery(FrameType.FLAT, filter="Ha", exposure_s=3.0)) == 0
    assert fresh.count(FrameQuery(FrameType.FLAT)) == 4
    assert fresh.count(FrameQuery(FrameType.DARKFLAT)) == 0


def test_written_files_get_ordinary_permissions_not_private_temporary_ones(tmp_path):
    import os
    old = os.umask(0o022)
    try:
        path = write_frame(Frame(np.zeros((2, 2), np.uint16), META), tmp_path / "p.fits")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("pattern, x, y, seen", [
    ("RGGB", 0, 0, "RGGB"), ("RGGB", 1, 0, "GRBG"), ("RGGB", 0, 1, "GBRG"), ("RGGB", 1, 1, "BGGR"),
    ("BGGR", 1, 0, "GBRG"), ("GRBG", 1, 1, "GBRG"), ("GBRG", 3, 2, "BGGR"), ("rggb", 2, 4, "RGGB"),
])
def test_bayer_pattern_seen_from_an_offset(pattern, x, y, seen):
    assert bayer_at(pattern, x, y) == seen


def test_bayer_pattern_shift_moves_each_colour_where_the_sensor_has_it():
    """The effective pattern of a crop at (x, y) is the sensor's colours read from there."""
    sensor = np.array([list("RG"), list("GB")] * 3)[:, [0, 1] * 3]   # 6x6 RGGB colour map
    for x in range(3):
        for y in range(3):
            crop = sensor[y:y + 2, x:x + 2]
            assert bayer_at("RGGB", x, y) == "".join(crop.ravel())


def test_unknown_bayer_pattern_is_named():
    with pytest.raises(ValueError, match="'RGBW'"):
        bayer_at("RGBW")


def test_bayer_keywords_round_trip_and_give_the_effective_pattern():
    colour = META.replace(bayer_pattern="RGGB", bayer_offset_x=1, bayer_offset_y=0)
    h = meta_to_header(colour)
    assert (h["BAYERPAT"], h["XBAYROFF"], h["YBAYROFF"]) == ("RGGB", 1, 0)
    back = header_to_meta(h)
    assert (back.bayer_pattern, back.bayer_offset_x, back.bayer_offset_y) == ("RGGB", 1, 0)
    assert back.effective_bayer == "GRBG"
    mono = meta_to_header(META)
    assert "BAYERPAT" not in mono and "XBAYROFF" not in mono
    assert header_to_meta(mono).effective_bayer is None


def test_other_programs_bayer_keywords():
    h = fits.Header({"IMAGETYP": "LIGHT", "EXPTIME": 1.0, "BAYERPAT": "gbrg ", "YBAYROFF": 1})
    m = header_to_meta(h)
    assert (m.bayer_pattern, m.bayer_offset_x, m.bayer_offset_y) == ("GBRG", 0, 1)
    assert m.effective_bayer == "RGGB"
    assert header_to_meta(fits.Header({"IMAGETYP": "LIGHT", "EXPTIME": 1.0,
                                       "BAYERPAT": "NONE"})).bayer_pattern is None
    assert header_to_meta(fits.Header({"IMAGETYP": "LIGHT", "EXPTIME": 1.0,
                                       "COLORTYP": "BGGR"})).effective_bayer == "BGGR"
