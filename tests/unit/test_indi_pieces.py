"""The INDI pieces that need no server: the driver protocol layer (parsing, whole-message
writes, exit on end of input), the camera simulator's light decision, simulator settings, rig
keys of the `indi` driver, FITS decoding of BLOBs and of base64 text arriving in pieces."""

from __future__ import annotations

import base64
import io
import os
import threading
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from astropy.io import fits

from indical.drivers.indi.camera import decode_fits
from indical.drivers.indi.connection import parse_server
from indical.errors import DeviceError, RigError
from indical.frame import FrameType
from indical.rig import parse_rig
from indical.simulators.indi import protocol as P
from indical.simulators.indi.ccd import Snooped, light_on_sensor
from indical.simulators.indi.config import camera_config, flipflat_config
from indical.simulators.models.panel import DEFAULT_PANEL_COLOUR
from indical.simulators.models.sky import DEFAULT_SKY_COLOUR, SkyParams, sky_flux


# ----- protocol layer -----
def _chunks(data: bytes, size: int):
    parts = [data[i:i + size] for i in range(0, len(data), size)] + [b""]
    return iter(parts).__next__


def test_stream_parser_yields_whole_messages_across_any_chunking():
    text = (b'<getProperties version="1.7"/>\n'
            b'<newNumberVector device="Cam" name="CCD_EXPOSURE">'
            b'<oneNumber name="CCD_EXPOSURE_VALUE"> 1.5 </oneNumber></newNumberVector>'
            b'<setSwitchVector device="Box" name="FLAT_LIGHT_CONTROL" state="Ok">'
            b'<oneSwitch name="FLAT_LIGHT_ON">On</oneSwitch>'
            b'<oneSwitch name="FLAT_LIGHT_OFF">Off</oneSwitch></setSwitchVector>')
    for size in (1, 7, 64, len(text)):
        msgs = list(P.parse_stream(_chunks(text, size)))
        assert [m.tag for m in msgs] == ["getProperties", "newNumberVector", "setSwitchVector"]
        assert msgs[1].members == {"CCD_EXPOSURE_VALUE": "1.5"}
        assert msgs[2].attrs["state"] == "Ok"
        assert msgs[2].members["FLAT_LIGHT_ON"] == "On"


def test_vectors_write_valid_xml_with_exact_blobs():
    v = P.number("CCD_EXPOSURE", "Expose", "Main", [("CCD_EXPOSURE_VALUE", "s", 1.0, 0.001, 3600, 1)])
    v.device = 'Cam "A" & <B>'
    root = ET.fromstring(v.def_xml())
    assert root.get("device") == 'Cam "A" & <B>'
    assert float(root[0].get("max")) == 3600 and float(root[0].text) == 1.0
    b = P.blob("CCD1", "Image", "Streams", [("CCD1", "Image")])
    payload = bytes(range(256)) * 1000
    b["CCD1"].value = payload
    one = ET.fromstring(b.set_bytes())[0]
    assert int(one.get("size")) == len(payload) and one.get("format") == ".fits"
    assert base64.b64decode(one.text) == payload


def test_sexagesimal_and_decimal_numbers():
    assert P.parse_number("1.25") == 1.25
    assert P.parse_number("-12:30:00") == pytest.approx(-12.5)


def test_large_message_arrives_whole_through_a_slow_non_blocking_pipe():
    """The trap of Python INDI drivers: a non-blocking stdout truncates big BLOBs."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    out = P.Output(w)
    message = "x" * (3 << 20)
    got = bytearray()

    def slow_reader():
        while True:
            time.sleep(0.001)
            chunk = os.read(r, 1 << 16)
            if not chunk:
                return
            got.extend(chunk)

    reader = threading.Thread(target=slow_reader)
    reader.start()
    out.write(message)
    os.close(w)
    reader.join(10)
    os.close(r)
    assert len(got) == len(message)


class _Echo(P.DriverBase):
    def __init__(self, **fds):
        super().__init__("Echo", **fds)
        self.box = self.add(P.switch("FLAT_LIGHT_CONTROL", "Light", "Main",
                                     [("FLAT_LIGHT_ON", "On", False), ("FLAT_LIGHT_OFF", "Off", True)]))
        self.define(self.box)
        self.seen: list[str] = []

    def on_new(self, vector, values):
        for e in vector.elements:
            e.value = values.get(e.name) == "On"
        self.update(vector, state=P.OK)

    def on_snoop(self, msg):
        self.seen.append(f"{msg.attrs['device']}.{msg.attrs.get('name')}")


def test_driver_answers_requests_snoops_and_exits_when_input_closes():
    to_driver_r, to_driver_w = os.pipe()
    from_driver_r, from_driver_w = os.pipe()
    driver = _Echo(in_fd=to_driver_r, out_fd=from_driver_w)
    runner = threading.Thread(target=driver.run)
    runner.start()
    os.write(to_driver_w, b'<getProperties version="1.7" device="Echo"/>'
                          b'<newSwitchVector device="Echo" name="FLAT_LIGHT_CONTROL">'
                          b'<oneSwitch name="FLAT_LIGHT_ON">On</oneSwitch>'
                          b'<oneSwitch name="FLAT_LIGHT_OFF">Off</oneSwitch></newSwitchVector>'
                          b'<setNumberVector device="Other" name="X" state="Ok">'
                          b'<oneNumber name="Y">1</oneNumber></setNumberVector>')
    os.close(to_driver_w)            # indiserver went away
    runner.join(5)
    assert not runner.is_alive(), "the driver kept running after its input closed"
    os.close(from_driver_w)
    with os.fdopen(from_driver_r, "rb") as fh:
        msgs = list(P.parse_stream(_chunks(fh.read(), 1 << 16)))
    tags = [m.tag for m in msgs]
    assert tags == ["defSwitchVector", "defSwitchVector", "setSwitchVector"]
    assert msgs[-1].members == {"FLAT_LIGHT_ON": "On", "FLAT_LIGHT_OFF": "Off"}
    assert driver.seen == ["Other.X"]


# ----- the camera simulator's light -----
@pytest.mark.parametrize("seen, frame_type, expected", [
    (Snooped(light_on=True, announced_flux=1000.0, cover_closed=True), FrameType.FLAT, 1000.0),
    (Snooped(light_on=True, announced_flux=1000.0, cover_closed=None), FrameType.FLAT, 1000.0),
    (Snooped(light_on=True, announced_flux=1000.0, cover_closed=False), FrameType.FLAT, 7.0),
    (Snooped(light_on=False, announced_flux=1000.0, cover_closed=True), FrameType.FLAT, 0.0),
    (Snooped(light_on=True, announced_flux=1000.0, cover_closed=True), FrameType.DARK, 0.0),
    (Snooped(light_on=True, announced_flux=1000.0, cover_closed=True), FrameType.BIAS, 0.0),
    (Snooped(light_on=True, brightness=100, brightness_max=200, cover_closed=True),
     FrameType.FLAT, 20000.0),
    (Snooped(light_on=True, announced_flux=1000.0, cover_closed=True, filter_slot=2),
     FrameType.FLAT, 500.0),
    (Snooped(light_on=True, announced_flux=1000.0, cover_closed=True, filter_slot=9),
     FrameType.FLAT, 1000.0),
])
def test_light_on_sensor(tmp_path, seen, frame_type, expected):
    (tmp_path / "s.toml").write_text("[camera]\npanel_flux_e_per_s = 40000.0\n"
                                     "open_flux_e_per_s = 7.0\nthroughput = [1.0, 0.5]\n")
    cfg = camera_config(tmp_path / "s.toml")
    flux, colour = light_on_sensor(cfg, seen, frame_type)
    assert flux == pytest.approx(expected)
    # the light's colour: the panel's as it announces it (else near white), the sky's
    # blue with the lid open
    if seen.cover_closed is False:
        assert colour == DEFAULT_SKY_COLOUR
    else:
        assert colour == (seen.announced_colour or DEFAULT_PANEL_COLOUR)


def test_lid_open_shows_the_twilight_sky_of_the_settings_site(tmp_path):
    (tmp_path / "s.toml").write_text("[site]\nlatitude = 30.0\nlongitude = -90.0\n"
                                     "[sky]\nchannel_flux = [0.5, 0.8, 1.0]\n"
                                     "[camera]\nthroughput = [0.5]\nopen_flux_e_per_s = 7.0\n")
    cfg = camera_config(tmp_path / "s.toml")
    seen = Snooped(cover_closed=False, filter_slot=1)
    flux, colour = light_on_sensor(cfg, seen, FrameType.FLAT, -6.0)
    assert flux == pytest.approx(0.5 * sky_flux(SkyParams(), "V", -6.0))
    assert colour == (0.5, 0.8, 1.0)
    darker, _ = light_on_sensor(cfg, seen, FrameType.FLAT, -9.0)
    assert darker < flux / 10                      # about a magnitude per degree
    assert light_on_sensor(cfg, seen, FrameType.DARK, -6.0)[0] == 0.0
    (tmp_path / "s.toml").write_text("[site]\nlatitude = 95.0\nlongitude = 0.0\n")
    with pytest.raises(RigError, match=r"\[site\] latitude"):
        camera_config(tmp_path / "s.toml")


def test_light_on_sensor_takes_the_announced_colour(tmp_path):
    cfg = camera_config(None)
    seen = Snooped(light_on=True, announced_flux=100.0, cover_closed=True,
                   announced_colour=(1.0, 0.55, 0.25))
    assert light_on_sensor(cfg, seen, FrameType.FLAT) == (100.0, (1.0, 0.55, 0.25))


# ----- settings -----
def test_simulator_settings_errors_name_the_key(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[camera]\ngain_property = "GAIN"\n')
    with pytest.raises(RigError, match=r"\[camera\] gain_property"):
        camera_config(path)
    path.write_text("[flipflat]\ntravel = 3\n")
    with pytest.raises(RigError, match=r"\[flipflat\] travel.*did you mean 'travel_s'"):
        flipflat_config(path)
    path.write_text("[flipflat]\nmax_brightness = 100\ntravel_s = 0.5\n")
    ff = flipflat_config(path)
    assert ff.panel.max_brightness == 100 and ff.travel_s == 0.5
    assert camera_config(None).name == "indical Flat Camera"


def test_indi_rig_keys_are_checked_naming_the_key():
    with pytest.raises(RigError, match=r"\[camera\] device: missing"):
        parse_rig('[camera]\ndriver = "indi"\n', "r.toml")
    with pytest.raises(RigError, match=r"\[panel\] server: must be 'host:port'"):
        parse_rig('[panel]\ndriver = "indi"\ndevice = "P"\nserver = "host:port"\n', "r.toml")
    with pytest.raises(RigError, match=r"\[mount\] driver"):
        parse_rig('[mount]\ndriver = "indi"\ndevice = "M"\n', "r.toml")
    spec = parse_rig('[panel]\ndriver = "indi"\ndevice = "Flip"\n[cover]\ndriver = "indi"\n'
                     'device = "Flip"\n', "r.toml")
    assert spec.roles["panel"]["device"] == spec.roles["cover"]["device"]


@pytest.mark.parametrize("text, expected", [
    ("localhost:7624", ("localhost", 7624)), ("10.0.0.5", ("10.0.0.5", 7624)),
    ("pi.local:7625", ("pi.local", 7625))])
def test_parse_server(text, expected):
    assert parse_server(text) == expected


@pytest.mark.parametrize("text", ["host:", "host:x", ":7624", "host:70000"])
def test_parse_server_refuses(text):
    with pytest.raises(ValueError):
        parse_server(text)


# ----- FITS from a BLOB -----
def test_truncated_fits_is_an_error_never_a_partial_frame():
    buf = io.BytesIO()
    pixels = np.arange(100 * 200, dtype=np.uint16).reshape(100, 200)
    fits.PrimaryHDU(pixels).writeto(buf)
    data, _ = decode_fits(buf.getvalue(), "Cam")
    assert np.array_equal(data, pixels) and data.dtype == np.uint16
    for cut in (len(buf.getvalue()) // 2, 100):
        with pytest.raises(DeviceError, match="Cam: reading the frame"):
            decode_fits(buf.getvalue()[:cut], "Cam")


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.uint8, np.int32, np.uint32,
                                   np.float32, np.float64])
def test_plain_fits_decodes_straight_to_the_same_pixels_astropy_reads(dtype):
    from indical.drivers.indi.fits_blob import decode_plain
    rng = np.random.default_rng(3)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    pixels = (rng.integers(info.min, info.max, (37, 53), dtype=dtype, endpoint=True)
              if info else rng.normal(size=(37, 53)).astype(dtype))
    buf = io.BytesIO()
    fits.PrimaryHDU(pixels).writeto(buf)
    decoded = decode_plain(memoryview(buf.getvalue()), "Cam")
    assert decoded is not None
    data, header = decoded
    assert data.dtype == np.dtype(dtype).newbyteorder("=") and data.dtype.isnative
    assert np.array_equal(data, pixels) and header["NAXIS1"] == 53


def test_fits_the_fast_path_does_not_know_goes_through_astropy():
    from indical.drivers.indi.fits_blob import decode_plain
    buf = io.BytesIO()
    fits.PrimaryHDU(np.zeros((2, 3, 4), np.uint16)).writeto(buf)   # three axes
    assert decode_plain(buf.getvalue(), "Cam") is None
    data, _ = decode_fits(buf.getvalue(), "Cam")
    assert data.shape == (2, 3, 4)


# ----- base64 text decoded into the frame as it arrives (the TCP path) -----
def _pieces(text: bytes, rng: np.random.Generator, most: int):
    """(start, end) of the text cut at random places, as a socket delivers it."""
    start = 0
    while start < len(text):
        end = min(len(text), start + int(rng.integers(1, most)))
        yield start, end
        start = end


def _blob_text(raw: bytes, fmt: str, size: int, rng: np.random.Generator, *,
               lines: bool = False, most: int = 5000):
    from indical.drivers.indi.blob_text import BlobText
    text = base64.b64encode(raw)
    if lines:   # as drivers that encode themselves send it
        text = b"\n".join(text[i:i + 72] for i in range(0, len(text), 72)) + b"\n"
    blob = BlobText("Cam", fmt, size)
    for start, end in _pieces(text, rng, most):
        assert blob.take(text, start, end) == -1
    return blob


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.uint8, np.int32, np.uint32,
                                   np.float32, np.float64])
@pytest.mark.parametrize("lines", [False, True])
def test_base64_text_in_any_pieces_decodes_to_the_pixels_astropy_reads(dtype, lines):
    rng = np.random.default_rng(5)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    pixels = (rng.integers(info.min, info.max, (37, 53), dtype=dtype, endpoint=True)
              if info else rng.normal(size=(37, 53)).astype(dtype))
    buf = io.BytesIO()
    fits.PrimaryHDU(pixels).writeto(buf)
    for most in (7, 100, 5000):   # pieces that split groups and pixels anywhere
        frame = _blob_text(buf.getvalue(), ".fits", len(buf.getvalue()), rng, lines=lines,
                           most=most).end()
        assert frame.length == len(buf.getvalue())
        data, header = frame.finish()
        assert data.dtype == np.dtype(dtype).newbyteorder("=") and data.dtype.isnative
        assert np.array_equal(data, pixels) and header["NAXIS1"] == 53


def test_fits_in_pieces_that_split_pixels_anywhere_is_read_whole():
    from indical.drivers.indi.fits_blob import FitsAssembler
    rng = np.random.default_rng(8)
    for dtype in (np.uint16, np.int32, np.float64):
        pixels = rng.integers(0, 30000, (41, 29)).astype(dtype)
        buf = io.BytesIO()
        fits.PrimaryHDU(pixels).writeto(buf)
        raw = buf.getvalue()
        frame = FitsAssembler("Cam", ".fits", len(raw))
        for start, end in _pieces(raw, rng, 13):
            frame.feed(raw[start:end])
        data, _ = frame.finish()
        assert np.array_equal(data, pixels) and data.dtype == np.dtype(dtype)


@pytest.mark.parametrize("lines", [False, True])
def test_the_text_ends_where_its_end_tag_starts_in_any_piece(lines):
    """The text is decoded without being searched first; its end tag is still found in
    whichever piece it comes, after padding too (lengths not a multiple of 3)."""
    from indical.drivers.indi.blob_text import BlobText
    rng = np.random.default_rng(9)
    buf = io.BytesIO()
    fits.PrimaryHDU(rng.integers(0, 60000, (30, 40)).astype(np.uint16)).writeto(buf)
    for length in (len(buf.getvalue()), 2880 + 1001, 2880 + 1002):
        text = base64.b64encode(buf.getvalue()[:length])
        if lines:
            text = b"\n".join(text[i:i + 72] for i in range(0, len(text), 72)) + b"\n"
        stream = text + b"</oneBLOB></setBLOBVector>"
        for most in (5, 33, 4000):
            blob, ended = BlobText("Cam", ".fits", length), -1
            for start, end in _pieces(stream, rng, most):
                ended = blob.take(stream, start, end)
                if ended >= 0:
                    break
            assert ended == len(text) and blob.end().length == length


def test_indiservers_line_breaks_around_the_text_keep_the_fast_path():
    """indiserver encodes a shared frame for a TCP client as `>\\n` + text + `\\n</oneBLOB>`:
    those two line breaks are skipped, not taken for a text broken into lines (which copies
    and searches every piece), in whichever pieces they come."""
    from indical.drivers.indi.blob_text import BlobText
    rng = np.random.default_rng(10)
    pixels = rng.integers(0, 60000, (300, 400)).astype(np.uint16)
    buf = io.BytesIO()
    fits.PrimaryHDU(pixels).writeto(buf)
    raw = buf.getvalue()
    stream = b"\n" + base64.b64encode(raw) + b"\n</oneBLOB>\n</setBLOBVector>"
    for most in (1, 3, 33, 4000, len(stream) + 1):
        blob, ended = BlobText("Cam", ".fits", len(raw)), -1
        pieces = _pieces(stream, rng, most) if most > 1 else \
            iter([(0, 1), (1, 2), (2, len(stream))])
        for start, end in pieces:
            ended = blob.take(stream, start, end)
            if ended >= 0:
                break
            assert not blob._lines     # noqa: SLF001 (the path taken is what is tested)
        assert ended == stream.index(b"</oneBLOB>")
        data, _ = blob.end().finish()
        assert np.array_equal(data, pixels)


def test_base64_text_cut_short_is_an_error_never_a_partial_frame():
    from indical.drivers.indi.blob_text import BlobText
    rng = np.random.default_rng(6)
    buf = io.BytesIO()
    fits.PrimaryHDU(np.arange(100 * 200, dtype=np.uint16).reshape(100, 200)).writeto(buf)
    raw = buf.getvalue()
    for cut in (100, 2880, 2881, len(raw) // 2, 2880 + 40000 - 1):
        with pytest.raises(DeviceError, match="Cam: reading the frame.*truncated"):
            _blob_text(raw[:cut], ".fits", cut, rng).end().finish()
    text = base64.b64encode(raw)
    for damaged in (text[:-3], text[:5000] + b"*" + text[5001:]):
        blob = BlobText("Cam", ".fits", len(raw))
        blob.take(damaged)
        with pytest.raises(ValueError, match="base64 text"):
            blob.end()
    blob = BlobText("Cam", ".fits", 100)
    blob.take(base64.b64encode(b"not a FITS file at all " * 300))
    with pytest.raises(DeviceError, match="does not start with SIMPLE"):
        blob.end()


def test_compressed_and_unusual_frames_in_pieces_go_through_astropy():
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 4000, (64, 80)).astype(np.uint16)
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(pixels)]).writeto(buf)
    frame = _blob_text(buf.getvalue(), ".fits.fz", pixels.nbytes + 2880, rng).end()
    assert frame.length == len(buf.getvalue())
    data, _ = frame.finish()
    assert np.array_equal(data, pixels)
    cube = io.BytesIO()
    fits.PrimaryHDU(np.ones((2, 3, 4), np.uint16)).writeto(cube)    # three axes
    data, _ = _blob_text(cube.getvalue(), ".fits", 0, rng, most=50).end().finish()
    assert data.shape == (2, 3, 4)
