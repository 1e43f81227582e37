"""Precalibration choice for flats: same size and binning (and camera settings where known);
dark flat before dark before bias; then the closest exposure and temperature."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from indical.calib.config import CameraConfig
from indical.calib.library import MasterRecord
from indical.calib.precal import PrecalSpec, PrecalTarget, best_match
from indical.frame import Binning, FrameType

CONFIG = CameraConfig(camera="Cam", gain=100.0, offset=10.0, binning=Binning(1, 1), width=64,
                      height=48, temperature_c=-10.0)
FLAT = PrecalTarget(CONFIG, exposure_s=2.0)


def m(id, kind, exposure_s=2.0, temperature_c=-10.0, **changes) -> MasterRecord:
    config = replace(CONFIG, temperature_c=temperature_c,
                     **{k: changes.pop(k) for k in list(changes) if hasattr(CONFIG, k)})
    base = dict(path=f"/m/{id}.fits", frame_type=kind, config=config, filter=None,
                exposure_s=exposure_s, group_key="k", method="sigma", id=id)
    base.update(changes)
    return MasterRecord(**base)


def test_type_order_darkflat_dark_bias():
    bias, dark, darkflat = m(1, FrameType.BIAS, 0.0), m(2, FrameType.DARK), m(3, FrameType.DARKFLAT)
    assert best_match([bias, dark, darkflat], FLAT) is darkflat
    assert best_match([bias, dark], FLAT) is dark
    assert best_match([bias], FLAT) is bias
    # a dark flat of another exposure is no candidate at all (it was ranked first before)
    assert best_match([bias, dark, m(4, FrameType.DARKFLAT, 30.0)], FLAT) is dark


def test_only_a_matching_exposure_then_temperature():
    a = m(1, FrameType.DARK, exposure_s=1.0)
    b = m(2, FrameType.DARK, exposure_s=2.05)
    c = m(3, FrameType.DARK, exposure_s=2.0, temperature_c=-5.0)
    assert best_match([a], FLAT) is None               # 1 s darks are not 2 s darks
    assert best_match([a, b], FLAT) is b               # 2.05 s is within 5 %
    assert best_match([b, c], FLAT) is b               # then the closest temperature
    d = m(4, FrameType.DARK, exposure_s=2.0, temperature_c=-11.0)
    assert best_match([b, c, d], FLAT) is b            # equal 1 degree off: closer exposure


def test_bias_ignores_exposure():
    near = m(1, FrameType.BIAS, exposure_s=0.0, temperature_c=-10.5)
    far = m(2, FrameType.BIAS, exposure_s=0.0, temperature_c=0.0)
    assert best_match([far, near], FLAT) is near


@pytest.mark.parametrize("changes", [dict(width=32), dict(height=32), dict(binning=Binning(2, 2)),
                                     dict(camera="Other"), dict(gain=0.0), dict(offset=50.0),
                                     dict(frame_type=FrameType.FLAT), dict(frame_type=FrameType.LIGHT)])
def test_mismatches_are_never_used(changes):
    kind = changes.pop("frame_type", FrameType.DARK)
    assert best_match([m(1, kind, **changes)], FLAT) is None


def test_unknown_settings_match_anything():
    assert best_match([m(1, FrameType.DARK, camera="", gain=None, offset=None)], FLAT) is not None


def test_newest_wins_a_tie():
    old, new = m(1, FrameType.DARK), m(2, FrameType.DARK)
    assert best_match([old, new], FLAT) is new


@pytest.mark.parametrize("text, kind, pedestal, path", [
    ("none", "none", 0.0, None), ("", "none", 0.0, None), ("library", "library", 0.0, None),
    ("pedestal:100", "pedestal", 100.0, None), ("pedestal:-2.5", "pedestal", -2.5, None),
    ("bias.fits", "file", 0.0, Path("bias.fits")),
])
def test_precal_spec_parse(text, kind, pedestal, path):
    spec = PrecalSpec.parse(text)
    assert (spec.kind, spec.pedestal_adu, spec.path) == (kind, pedestal, path)


@pytest.mark.parametrize("text", ["pedestal:", "pedestal:abc", "pedestal:nan"])
def test_precal_spec_bad_pedestal(text):
    with pytest.raises(ValueError, match="pedestal"):
        PrecalSpec.parse(text)
