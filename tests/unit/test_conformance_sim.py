"""The simulated devices pass the HAL conformance suite."""

from __future__ import annotations

import pytest

from indical.rig import load_rig, open_rig
from indical.testing.conformance import (CameraConformance, CoverConformance,
                                         FilterWheelConformance, LightPanelConformance,
                                         RelayConformance, WeatherConformance)

RIG = """
[site]
latitude = 52.0
longitude = 5.0
[camera]
driver = "sim"
width = 320
height = 240
[panel]
driver = "sim"
[cover]
driver = "sim"
[filter_wheel]
driver = "sim"
[relay]
driver = "sim"
[weather]
driver = "sim"
cloudy_nights = [1]
"""


@pytest.fixture
def rig(tmp_path):
    path = tmp_path / "rig.toml"
    path.write_text(RIG)
    with open_rig(load_rig(path)) as r:
        yield r


class TestSimCamera(CameraConformance):
    @pytest.fixture
    def camera(self, rig):
        return rig.camera


class TestSimPanel(LightPanelConformance):
    @pytest.fixture
    def panel(self, rig):
        return rig.panel


class TestSimOnOffPanel(LightPanelConformance):
    @pytest.fixture
    def panel(self, tmp_path):
        path = tmp_path / "rig.toml"
        path.write_text('[panel]\ndriver = "sim"\ndimmable = false\n')
        with open_rig(load_rig(path)) as r:
            yield r.panel


class TestSimCover(CoverConformance):
    @pytest.fixture
    def cover(self, rig):
        return rig.cover


class TestSimFilterWheel(FilterWheelConformance):
    @pytest.fixture
    def filter_wheel(self, rig):
        return rig.filter_wheel


class TestSimRelay(RelayConformance):
    @pytest.fixture
    def relay(self, rig):
        return rig.relay


class TestSimWeather(WeatherConformance):
    @pytest.fixture
    def weather(self, rig):
        return rig.weather
