"""HAL conformance suite: the behaviour every adapter of a role must show.

Subclass the class for your role in a test module and provide a fixture with the role's name
that yields a connected device, for example::

    from indical.testing.conformance import CameraConformance

    class TestMyCamera(CameraConformance):
        @pytest.fixture
        def camera(self):
            cam = MyCamera(...)
            yield cam
            cam.disconnect()

Third-party drivers run the same suite. Tests only use the public interfaces."""

from __future__ import annotations

import numpy as np
import pytest

from indical.errors import DeviceError, NotSupported
from indical.frame import Binning, Frame, FrameType
from indical.interfaces import (Camera, CameraInfo, Cover, CoverState, FilterWheel, LightPanel,
                                PanelInfo, Relay, Sky, Weather, WeatherReading)


def _short_exposure(info: CameraInfo) -> float:
    return max(info.min_exposure_s, min(0.1, info.max_exposure_s))


class CameraConformance:
    """Provide a `camera` fixture."""

    def test_is_a_camera_with_consistent_info(self, camera):
        assert isinstance(camera, Camera)
        info = camera.info()
        assert info.width > 0 and info.height > 0
        assert info.bit_depth in range(8, 33)
        assert 0 <= info.min_exposure_s < info.max_exposure_s
        assert isinstance(camera.describe(), dict) and camera.describe()
        assert camera.name

    def test_expose_returns_frame_with_metadata(self, camera):
        info = camera.info()
        t = _short_exposure(info)
        frame = camera.expose(t, FrameType.FLAT)
        assert isinstance(frame, Frame)
        assert frame.data.ndim == 2
        assert frame.data.shape == (info.height // camera.binning().y,
                                    info.width // camera.binning().x)
        assert frame.meta.frame_type is FrameType.FLAT
        assert frame.meta.exposure_s == pytest.approx(t)
        assert frame.meta.camera == camera.name
        assert frame.meta.binning == camera.binning()
        assert frame.meta.start is not None and frame.meta.start.tzinfo is not None
        assert np.issubdtype(frame.data.dtype, np.integer) or np.issubdtype(frame.data.dtype,
                                                                             np.floating)

    @pytest.mark.parametrize("kind", [FrameType.BIAS, FrameType.DARK, FrameType.LIGHT])
    def test_frame_type_is_recorded(self, camera, kind):
        frame = camera.expose(_short_exposure(camera.info()), kind)
        assert frame.meta.frame_type is kind

    def test_exposure_outside_range_is_refused_naming_the_camera(self, camera):
        info = camera.info()
        with pytest.raises(ValueError, match=camera.name):
            camera.expose(info.max_exposure_s * 10 + 1, FrameType.LIGHT)
        with pytest.raises(ValueError, match=camera.name):
            camera.expose(-1.0, FrameType.LIGHT)

    def test_binning_changes_frame_size(self, camera):
        info = camera.info()
        if info.max_binning < 2:
            with pytest.raises((ValueError, NotSupported)):
                camera.set_binning(Binning(2, 2))
            return
        camera.set_binning(Binning(2, 2))
        try:
            frame = camera.expose(_short_exposure(info), FrameType.BIAS)
            assert frame.data.shape == (info.height // 2, info.width // 2)
            assert frame.meta.binning == Binning(2, 2)
        finally:
            camera.set_binning(Binning(1, 1))

    def test_abort_when_idle_is_harmless(self, camera):
        camera.abort()
        frame = camera.expose(_short_exposure(camera.info()), FrameType.BIAS)
        assert frame.data.size > 0

    def test_gain_and_offset_round_trip_when_supported(self, camera):
        info = camera.info()
        if info.has_gain:
            old = camera.gain()
            camera.set_gain(old if old is not None else 0)
            assert camera.gain() == pytest.approx(old if old is not None else 0)
        else:
            with pytest.raises(NotSupported):
                camera.set_gain(0)
        if info.has_offset:
            old = camera.offset()
            camera.set_offset(old if old is not None else 0)
            assert camera.offset() == pytest.approx(old if old is not None else 0)


class LightPanelConformance:
    """Provide a `panel` fixture."""

    def test_is_a_panel_with_consistent_info(self, panel):
        assert isinstance(panel, LightPanel)
        info = panel.info()
        assert isinstance(info, PanelInfo)
        assert isinstance(panel.describe(), dict) and panel.describe()
        if info.dimmable:
            assert info.min_brightness < info.max_brightness
            assert info.step >= 1

    def test_on_and_off_are_reflected(self, panel):
        panel.on()
        assert panel.is_on()
        panel.off()
        assert not panel.is_on()

    def test_brightness_reads_back(self, panel):
        info = panel.info()
        if not info.dimmable:
            with pytest.raises(NotSupported):
                panel.set_brightness(1)
            return
        levels = info.levels()
        # with the light on, as sequences set it: some drivers take a brightness only then
        panel.on()
        try:
            for want in (levels[0], levels[len(levels) // 2], levels[-1]):
                got = panel.set_brightness(want)
                assert got == want
                assert panel.brightness() == want
        finally:
            panel.off()

    def test_brightness_out_of_range_is_refused(self, panel):
        info = panel.info()
        if not info.dimmable:
            with pytest.raises(NotSupported):
                panel.set_brightness(info.max_brightness + 1)
            return
        with pytest.raises((ValueError, DeviceError)):
            panel.set_brightness(info.max_brightness + info.step)


class CoverConformance:
    """Provide a `cover` fixture."""

    def test_open_and_close(self, cover):
        assert isinstance(cover, Cover)
        assert isinstance(cover.describe(), dict) and cover.describe()
        cover.close()
        assert cover.state() is CoverState.CLOSED
        cover.open()
        assert cover.state() is CoverState.OPEN

    def test_repeating_a_move_is_harmless(self, cover):
        cover.open()
        cover.open()
        assert cover.state() is CoverState.OPEN


class FilterWheelConformance:
    """Provide a `filter_wheel` fixture."""

    def test_names_and_moves(self, filter_wheel):
        assert isinstance(filter_wheel, FilterWheel)
        names = filter_wheel.names()
        assert names and all(isinstance(n, str) for n in names)
        for slot in (len(names), 1):
            filter_wheel.move_to(slot)
            assert filter_wheel.position() == slot
            assert filter_wheel.current() == names[slot - 1]

    def test_select_by_name(self, filter_wheel):
        names = filter_wheel.names()
        slot = filter_wheel.select(names[-1].lower())
        assert slot == len(names) and filter_wheel.position() == slot

    def test_unknown_filter_is_refused_listing_the_filters(self, filter_wheel):
        names = filter_wheel.names()
        with pytest.raises(ValueError, match=names[0]):
            filter_wheel.select("no-such-filter")
        with pytest.raises(ValueError):
            filter_wheel.select(len(names) + 1)


class RelayConformance:
    """Provide a `relay` fixture."""

    def test_on_and_off(self, relay):
        assert isinstance(relay, Relay)
        assert isinstance(relay.describe(), dict) and relay.describe()
        relay.on()
        assert relay.is_on()
        relay.off()
        assert not relay.is_on()

    def test_disconnect_leaves_it_off(self, relay):
        relay.on()
        relay.disconnect()
        # after disconnect the device may refuse queries; if it answers, it must be off
        try:
            assert not relay.is_on()
        except DeviceError:
            pass


class WeatherConformance:
    """Provide a `weather` fixture."""

    def test_reading(self, weather):
        assert isinstance(weather, Weather)
        assert isinstance(weather.describe(), dict) and weather.describe()
        reading = weather.reading()
        assert isinstance(reading, WeatherReading) and isinstance(reading.sky, Sky)
        assert isinstance(reading.detail, str)

    def test_disconnected_reads_unknown_or_answers(self, weather):
        weather.disconnect()
        # a station that can't be read is unknown weather, never an exception
        assert isinstance(weather.reading().sky, Sky)
