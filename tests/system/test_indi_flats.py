"""Flat-field physics through a real indiserver: indical's camera simulator snoops the light box
and cover through the server, so a FLAT frame's level follows the panel."""

from __future__ import annotations

import time

import numpy as np
import pytest

from indi_helpers import open_indi_rig, start_server
from indical.fits.io import read_frame
from indical.frame import FrameType
from indical.interfaces import CoverState
from indical.simulators.indi.server import OUR_CCD, OUR_FLIPFLAT
from indical.simulators.models.panel import PanelParams

BIAS = 500.0


def level(frame) -> float:
    h, w = frame.data.shape
    return float(np.median(frame.data[h // 4:3 * h // 4, w // 4:3 * w // 4]))


@pytest.fixture(scope="module")
def flat_rig(sim_server):
    rig = open_indi_rig(sim_server.address, {"camera": "indical Flat Camera",
                                             "panel": "indical Flip-Flat",
                                             "cover": "indical Flip-Flat"})
    yield rig
    rig.disconnect()


def test_flat_level_follows_the_panel_response_curve(flat_rig):
    camera, panel, cover = flat_rig.camera, flat_rig.panel, flat_rig.cover
    cover.close()
    panel.on()
    levels = {}
    for brightness in (64, 128, 255):
        assert panel.set_brightness(brightness) == brightness
        levels[brightness] = level(camera.expose(0.1, FrameType.FLAT)) - BIAS
    assert levels[64] < levels[128] < levels[255]
    curve = PanelParams()
    # the light above bias scales with the model's response curve (the sensor is linear here)
    for b in (64, 128):
        expected = curve.relative_flux(b) / curve.relative_flux(255)
        assert levels[b] / levels[255] == pytest.approx(expected, rel=0.05)
    # 40000 e-/s at full brightness, 0.1 s, 1 e-/ADU, centre of the field
    assert levels[255] == pytest.approx(4000, rel=0.1)
    panel.off()
    assert level(camera.expose(0.1, FrameType.FLAT)) == pytest.approx(BIAS, abs=5)


def test_open_cover_shows_no_panel_light(flat_rig):
    camera, panel, cover = flat_rig.camera, flat_rig.panel, flat_rig.cover
    panel.set_brightness(255)
    panel.on()
    cover.close()
    closed = level(camera.expose(0.1, FrameType.FLAT))
    cover.open()
    assert cover.state() is CoverState.OPEN
    opened = level(camera.expose(0.1, FrameType.FLAT))
    panel.off()
    assert closed > BIAS + 3000
    assert opened == pytest.approx(BIAS, abs=5)


def test_dark_frames_see_no_light_and_lid_takes_its_travel_time(flat_rig):
    camera, panel, cover = flat_rig.camera, flat_rig.panel, flat_rig.cover
    cover.open()
    t0 = time.monotonic()
    cover.close()
    assert time.monotonic() - t0 >= 0.3            # travel_s in SMALL_SIMS
    panel.set_brightness(255)
    panel.on()
    try:
        assert level(camera.expose(0.1, FrameType.DARK)) == pytest.approx(BIAS, abs=5)
    finally:
        panel.off()


def test_camera_snoops_the_stock_light_panel(tmp_path):
    sims = '[camera]\nwidth = 160\nheight = 120\nreadout_s = 0.0\nlight_box = "Light Panel Simulator"\ncover = ""\n'
    server = start_server(tmp_path, [OUR_CCD, "indi_simulator_lightpanel"], sims)
    try:
        with open_indi_rig(server.address, {"camera": "indical Flat Camera",
                                            "panel": "Light Panel Simulator"}) as rig:
            rig.panel.on()
            rig.panel.set_brightness(0)
            dark = level(rig.camera.expose(0.1, FrameType.FLAT))
            rig.panel.set_brightness(250)
            lit = level(rig.camera.expose(0.1, FrameType.FLAT))
            rig.panel.set_brightness(120)
            half = level(rig.camera.expose(0.1, FrameType.FLAT))
        assert dark == pytest.approx(BIAS, abs=10)
        assert lit - BIAS == pytest.approx(4000 * 250 / 255, rel=0.1)
        assert (half - BIAS) / (lit - BIAS) == pytest.approx(120 / 250, rel=0.05)
    finally:
        server.stop()


@pytest.mark.parametrize("frames", ["shared", "tcp"])
def test_8_megapixel_frames_arrive_intact(tmp_path, frames):
    """The driver keeps its own copy (UPLOAD_BOTH); the frame that crossed indiserver must hold
    exactly the same pixels, as shared memory through the server's local socket (the driver
    passes its frames so) and as base64 over TCP (the server encodes them)."""
    sims = "[camera]\nwidth = 3264\nheight = 2448\nreadout_s = 0.0\n[flipflat]\nclosed = true\n"
    server = start_server(tmp_path / "srv", [OUR_CCD, OUR_FLIPFLAT], sims)
    local = tmp_path / "driver-side"
    try:
        with open_indi_rig(server.address, {"camera": "indical Flat Camera",
                                            "panel": "indical Flip-Flat"},
                           frames=frames) as rig:
            camera, conn = rig.camera, rig.camera.conn
            assert camera.describe()["frames"].startswith(
                {"shared": "shared memory", "tcp": "base64 over TCP"}[frames])
            conn.send_text(camera.name, "UPLOAD_SETTINGS", {"UPLOAD_DIR": str(local),
                                                            "UPLOAD_PREFIX": "frame_XXX"})
            conn.send_switch(camera.name, "UPLOAD_MODE", "UPLOAD_BOTH")
            rig.panel.set_brightness(200)
            rig.panel.on()
            for n in (1, 2):
                frame = camera.expose(0.2, FrameType.FLAT)
                assert frame.data.shape == (2448, 3264)
                kept = read_frame(local / f"frame_{n:03d}.fits")
                assert kept.data.dtype == frame.data.dtype == np.uint16
                assert np.array_equal(kept.data, frame.data)
                assert camera.last_transfer["bytes"] > 2 * 3264 * 2448
            assert level(frame) > BIAS + 1000   # real flat light, not an empty frame
    finally:
        server.stop()


@pytest.mark.parametrize("gain_property", ["CCD_GAIN", "CCD_CONTROLS"])
def test_gain_offset_and_cooler_reach_the_camera(tmp_path, gain_property):
    """Gain and offset through either property style change the frames as the sensor model
    says; the cooler set point is taken and the sensor starts cooling."""
    sims = ('[camera]\nwidth = 160\nheight = 120\nreadout_s = 0.0\nprnu = 0.0\n'
            f'gain_property = "{gain_property}"\ncooling_rate_c_per_min = 60.0\n'
            '[flipflat]\nclosed = true\ntravel_s = 0.0\n')
    server = start_server(tmp_path, [OUR_CCD, OUR_FLIPFLAT], sims)
    try:
        with open_indi_rig(server.address, {"camera": "indical Flat Camera",
                                            "panel": "indical Flip-Flat"}) as rig:
            camera = rig.camera
            assert camera.info().has_gain and camera.info().has_offset
            assert camera.conn.prop(camera.name, gain_property) is not None
            rig.panel.set_brightness(64)
            rig.panel.on()
            base = level(camera.expose(0.1, FrameType.FLAT)) - BIAS
            camera.set_gain(200)           # 20 dB: ten times fewer electrons per ADU
            camera.set_offset(100)
            frame = camera.expose(0.1, FrameType.FLAT)
            assert frame.meta.gain == 200 and frame.meta.offset == 100
            assert level(frame) - BIAS - 100 == pytest.approx(10 * base, rel=0.05)
            camera.set_temperature(-5.0)
            assert camera.setpoint_c() == -5.0
            conn = camera.conn
            conn.wait_for(lambda: camera.conn.props[(camera.name, "CCD_TEMPERATURE")]
                          .values["CCD_TEMPERATURE_VALUE"] < 9.5, timeout_s=5.0,
                          device=camera.name, action="cooling")
            assert camera.temperature_c() < 10.0
            assert camera.expose(0.1, FrameType.DARK).meta.setpoint_temp_c == -5.0
    finally:
        server.stop()


def test_brightness_set_after_a_filter_move_survives_the_panels_preset(tmp_path):
    """A light box with per-filter presets (FLAT_LIGHT_FILTER_INTENSITY) changes its brightness
    by itself when it sees a filter move end; the brightness indical sets must win."""
    sims = ('[flipflat]\nfilter_wheel = "Filter Simulator"\n'
            'filter_presets = [10, 20, 30, 40, 50, 60, 70, 80]\npreset_delay_s = 0.3\n')
    server = start_server(tmp_path, [OUR_FLIPFLAT, "indi_simulator_wheel"], sims)
    try:
        server.wait_for_devices(["indical Flip-Flat", "Filter Simulator"])
        with open_indi_rig(server.address, {"panel": "indical Flip-Flat",
                                            "filter_wheel": "Filter Simulator"}) as rig:
            panel, wheel = rig.panel, rig.filter_wheel
            wheel.move_to(2)
            conn = panel.conn
            conn.wait_for(lambda: panel.brightness() == 20, timeout_s=3.0, device=panel.name,
                          action="waiting for the preset")   # the presets really act
            wheel.move_to(5)
            assert panel.set_brightness(123) == 123
            time.sleep(0.5)
            assert panel.brightness() == 123
    finally:
        server.stop()
