"""The camera configuration: one value type that matching, grouping, needs, precalibration and
the library all compare and store the same way."""

from __future__ import annotations

from dataclasses import make_dataclass, replace

import pytest

from indical.calib.config import CameraConfig, column_names
from indical.frame import Binning, FrameMeta, FrameType

CFG = CameraConfig(camera="Cam", readout_mode="HG", gain=100.0, offset=10.0,
                   binning=Binning(2, 2), width=3124, height=2088, temperature_c=-10.0)


def test_from_meta_takes_the_sensor_temperature_else_the_set_point():
    meta = FrameMeta(FrameType.DARK, 30.0, camera="Cam", gain=100.0, offset=10.0,
                     binning=Binning(2, 2), readout_mode="HG", sensor_temp_c=-10.0,
                     setpoint_temp_c=-9.0)
    assert CameraConfig.from_meta(meta, 3124, 2088) == CFG
    assert CameraConfig.from_meta(meta.replace(sensor_temp_c=None)).temperature_c == -9.0


@pytest.mark.parametrize("changes, reason", [
    (dict(camera="Other"), "camera 'Other' is not 'Cam'"),
    (dict(readout_mode=None), "readout_mode None is not 'HG'"),
    (dict(gain=200.0), "gain 200.0 is not 100.0"),
    (dict(offset=11.0), "offset 11.0 is not 10.0"),
    (dict(binning=Binning(1, 1)), "binning 1x1 is not 2x2"),
    (dict(height=100), "size 3124x100 is not 3124x2088"),
    (dict(temperature_c=20.0), None),                  # matched within a tolerance elsewhere
    (dict(gain=100.0 + 1e-9), None),
])
def test_mismatch_names_the_first_field_that_differs(changes, reason):
    assert replace(CFG, **changes).mismatch(CFG) == reason


def test_agrees_where_both_sides_know_the_value():
    unknown = replace(CFG, camera="", readout_mode=None, gain=None, offset=None)
    assert unknown.agrees(CFG) and CFG.agrees(unknown)
    assert not replace(CFG, gain=0.0).agrees(CFG)
    assert not replace(CFG, width=64).agrees(CFG)
    assert replace(CFG, temperature_c=30.0).agrees(CFG)


def test_key_drops_only_the_temperature():
    assert CFG.key() == replace(CFG, temperature_c=None)
    assert hash(CFG.key()) == hash(replace(CFG, temperature_c=-20.0).key())


def test_columns_and_json_carry_every_field():
    cols = CFG.columns()
    assert tuple(cols) == column_names() == ("camera", "readout_mode", "gain", "offset", "xbin",
                                             "ybin", "width", "height", "temperature_c",
                                             "bayer_pattern")
    assert CameraConfig.from_columns({**cols, "id": 7, "path": "/x"}) == CFG
    assert "temperature_c" not in CFG.key_columns() and len(CFG.key_columns()) == len(cols) - 1
    assert CFG.to_json() == {"camera": "Cam", "readout_mode": "HG", "gain": 100.0, "offset": 10.0,
                             "binning": "2x2", "width": 3124, "height": 2088,
                             "temperature_c": -10.0, "bayer_pattern": None}


def test_a_new_field_is_compared_and_stored_without_further_changes():
    """What adding a field takes: the field, nothing else in this type."""
    Moded = make_dataclass("Moded", [("sensor_mode", "str | None", None)],
                           bases=(CameraConfig,), frozen=True)
    fast = Moded(**vars(CFG), sensor_mode="fast")
    plain = Moded(**vars(CFG))
    assert fast.mismatch(plain) == "sensor_mode 'fast' is not None"
    assert not fast.agrees(replace(fast, sensor_mode="slow")) and fast.agrees(plain)
    assert fast.columns()["sensor_mode"] == "fast" == fast.key_columns()["sensor_mode"]
    assert Moded.from_columns(fast.columns()) == fast
    assert fast.to_json()["sensor_mode"] == "fast"


def test_the_bayer_pattern_is_the_one_at_pixel_0_0():
    """BAYERPAT shifted by XBAYROFF/YBAYROFF: two frames of one sensor read out at different
    offsets have different configurations, and the reason says why."""
    meta = FrameMeta(FrameType.LIGHT, 30.0, camera="Cam", gain=100.0, offset=10.0,
                     binning=Binning(2, 2), readout_mode="HG", sensor_temp_c=-10.0,
                     bayer_pattern="RGGB", bayer_offset_x=1)
    colour = CameraConfig.from_meta(meta, 3124, 2088)
    assert colour.bayer_pattern == "GRBG"
    assert colour.mismatch(replace(colour, bayer_pattern="RGGB")).startswith(
        "Bayer phase GRBG is not RGGB at pixel 0,0")
    assert "a mono master never calibrates a colour light" in CFG.mismatch(colour)
    assert not colour.agrees(replace(colour, bayer_pattern="RGGB")) and colour.agrees(CFG)
    assert CameraConfig.from_columns(colour.columns()) == colour
    odd = CameraConfig.from_meta(meta.replace(bayer_pattern="XYZW"))
    assert odd.bayer_pattern == "XYZW"   # unknown: compared as written
