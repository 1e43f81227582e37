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
                                             "ybin", "width", "height", "temperature_c")
    assert CameraConfig.from_columns({**cols, "id": 7, "path": "/x"}) == CFG
    assert "temperature_c" not in CFG.key_columns() and len(CFG.key_columns()) == len(cols) - 1
    assert CFG.to_json() == {"camera": "Cam", "readout_mode": "HG", "gain": 100.0, "offset": 10.0,
                             "binning": "2x2", "width": 3124, "height": 2088,
                             "temperature_c": -10.0}


def test_a_new_field_is_compared_and_stored_without_further_changes():
    """What adding e.g. a Bayer pattern takes: the field, nothing else in this type."""
    Colour = make_dataclass("Colour", [("bayer_pattern", "str | None", None)],
                            bases=(CameraConfig,), frozen=True)
    rggb = Colour(**vars(CFG), bayer_pattern="RGGB")
    mono = Colour(**vars(CFG))
    assert rggb.mismatch(mono) == "bayer_pattern 'RGGB' is not None"
    assert not rggb.agrees(replace(rggb, bayer_pattern="BGGR")) and rggb.agrees(mono)
    assert rggb.columns()["bayer_pattern"] == "RGGB" == rggb.key_columns()["bayer_pattern"]
    assert Colour.from_columns(rggb.columns()) == rggb
    assert rggb.to_json()["bayer_pattern"] == "RGGB"
