"""indi_indical_ccd: a flat-field camera simulator that indiserver runs like any INDI driver.

It offers the standard CCD properties and renders frames with indical's sensor and optics
models. The light on the sensor comes from what it snoops through indiserver: a light box
(FLAT_LIGHT_CONTROL, FLAT_LIGHT_INTENSITY, and FLAT_LIGHT_OUTPUT when the box announces its
light, as indi_indical_flipflat does), a cover (CAP_PARK) and optionally a filter wheel
(FILTER_SLOT). The stock CCD simulator ignores panels, which is why this one exists.

With `[camera] bayer_pattern` it is a one-shot-colour camera, as real ones publish it: CCD_CFA
(CFA_OFFSET_X, CFA_OFFSET_Y, CFA_TYPE) for the whole sensor, and in each frame's header the
pattern and offsets of that frame (a region starting on an odd pixel shifts them). The light's
colour comes from the light box's FLAT_LIGHT_OUTPUT (FLAT_LIGHT_RED, _GREEN, _BLUE), else a
near-white panel; with the cover open, the sky's blue ([sky] channel_flux).

With a [site] in its settings the camera sees, lid open, the twilight sky of that site at the
wall clock's time (the sky model's zenith brightness for the sun's altitude mid-exposure,
without stars), so twilight flats run through INDI in real time."""

from __future__ import annotations

import argparse
import io
import os
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from astropy.io import fits

from indical.fits.keywords import meta_to_header
from indical.frame import Binning, FrameMeta, FrameType
from indical.simulators.indi import protocol as P
from indical.simulators.indi.config import CameraConfig, camera_config
from indical.simulators.models.optics import illumination_map
from indical.simulators.models.panel import DEFAULT_PANEL_COLOUR
from indical.simulators.models.sky import sky_flux, sun_altitude
from indical.simulators.models.sensor import Sensor

FRAME_TYPES = {"FRAME_LIGHT": FrameType.LIGHT, "FRAME_BIAS": FrameType.BIAS,
               "FRAME_DARK": FrameType.DARK, "FRAME_FLAT": FrameType.FLAT}


@dataclass
class Snooped:
    """What the camera knows of the devices in front of it."""

    light_on: bool = False
    brightness: float = 0.0
    brightness_max: float = 255.0
    announced_flux: float | None = None   # FLAT_LIGHT_OUTPUT of panels that announce it
    announced_colour: tuple[float, float, float] | None = None   # its r, g, b
    cover_closed: bool | None = None      # None: no cover seen, the light box is on the scope
    filter_slot: int | None = None


def light_on_sensor(cfg: CameraConfig, seen: Snooped, frame_type: FrameType,
                    sun_alt_deg: float | None = None) -> tuple[float, tuple[float, float, float]]:
    """Mean light per unbinned pixel (e-/s) at the centre of the field, before vignetting, and
    its colour (relative flux per channel r, g, b). With the lid open: the twilight sky at
    `sun_alt_deg` when the settings have a [site], else open_flux_e_per_s."""
    colour = seen.announced_colour or DEFAULT_PANEL_COLOUR
    if frame_type in (FrameType.BIAS, FrameType.DARK, FrameType.DARKFLAT):
        return 0.0, colour
    throughput = 1.0
    if seen.filter_slot is not None and 1 <= seen.filter_slot <= len(cfg.throughput):
        throughput = cfg.throughput[seen.filter_slot - 1]
    if seen.cover_closed is False:
        # lid open: a flip-flat's light faces the sky, the telescope sees the dome or sky
        if cfg.site is not None and sun_alt_deg is not None:
            return sky_flux(cfg.sky, "V", sun_alt_deg) * throughput, cfg.sky.channel_flux
        return cfg.open_flux_e_per_s * throughput, cfg.sky.channel_flux
    if not seen.light_on:
        return 0.0, colour
    if seen.announced_flux is not None:
        flux = seen.announced_flux
    else:
        flux = cfg.panel_flux_e_per_s * seen.brightness / max(seen.brightness_max, 1.0)
    return flux * throughput, colour


class CcdDriver(P.DriverBase):
    def __init__(self, cfg: CameraConfig, **fds: int) -> None:
        super().__init__(cfg.name, **fds)
        self.cfg = cfg
        self.sensor = Sensor(cfg.sensor)
        self.seen = Snooped()
        self.exposing = threading.Event()
        self.abort_event = threading.Event()
        self._exposure_id = 0
        self.frames = 0
        self.temp_c = cfg.ambient_c
        self.setpoint_c: float | None = None
        self._build()

    # ----- properties -----
    def _build(self) -> None:
        c, p = self.cfg, self.cfg.sensor
        main, info, opts = "Main Control", "Image Info", "Options"
        add = self.add
        self.connection = add(P.switch("CONNECTION", "Connection", main,
                                       [("CONNECT", "Connect", False),
                                        ("DISCONNECT", "Disconnect", True)]))
        add(P.text("DRIVER_INFO", "Driver Info", "General Info",
                   [("DRIVER_NAME", "Name", "indical flat-field CCD simulator"),
                    ("DRIVER_EXEC", "Exec", "indi_indical_ccd"),
                    ("DRIVER_VERSION", "Version", "1.0"),
                    ("DRIVER_INTERFACE", "Interface", "2")], perm="ro"))
        self.exposure = add(P.number("CCD_EXPOSURE", "Expose", main,
                                     [("CCD_EXPOSURE_VALUE", "Duration (s)", 1.0,
                                       p.min_exposure_s, p.max_exposure_s, 1.0)], fmt="%5.3f"))
        self.abort = add(P.switch("CCD_ABORT_EXPOSURE", "Abort", main,
                                  [("ABORT", "Abort", False)], rule="AtMostOne"))
        self.frame_type = add(P.switch("CCD_FRAME_TYPE", "Frame Type", opts,
                                       [(k, k[6:].title(), k == "FRAME_LIGHT")
                                        for k in FRAME_TYPES]))
        self.binning = add(P.number("CCD_BINNING", "Binning", opts,
                                    [("HOR_BIN", "X", 1, 1, c.max_binning, 1),
                                     ("VER_BIN", "Y", 1, 1, c.max_binning, 1)], fmt="%2.0f"))
        self.roi = add(P.number("CCD_FRAME", "Frame", opts,
                                [("X", "Left", 0, 0, p.width - 1, 1),
                                 ("Y", "Top", 0, 0, p.height - 1, 1),
                                 ("WIDTH", "Width", p.width, 1, p.width, 1),
                                 ("HEIGHT", "Height", p.height, 1, p.height, 1)], fmt="%4.0f"))
        add(P.number("CCD_INFO", "CCD Information", info,
                     [("CCD_MAX_X", "Max. Width", p.width, 1, 65535, 0),
                      ("CCD_MAX_Y", "Max. Height", p.height, 1, 65535, 0),
                      ("CCD_PIXEL_SIZE", "Pixel size (um)", p.pixel_size_um, 0, 100, 0),
                      ("CCD_PIXEL_SIZE_X", "Pixel size X", p.pixel_size_um, 0, 100, 0),
                      ("CCD_PIXEL_SIZE_Y", "Pixel size Y", p.pixel_size_um, 0, 100, 0),
                      ("CCD_BITSPERPIXEL", "Bits per pixel", p.output_bits(p.max_exposure_s),
                       8, 64, 0)], perm="ro"))
        self.cfa: P.Vector | None = None
        if p.bayer_pattern is not None:
            # as INDI's camera base class defines it for colour sensors: the whole sensor's
            # pattern, the same whatever region a frame covers
            self.cfa = add(P.text("CCD_CFA", "Bayer Info", info,
                                  [("CFA_OFFSET_X", "X Offset", str(p.bayer_offset_x)),
                                   ("CFA_OFFSET_Y", "Y Offset", str(p.bayer_offset_y)),
                                   ("CFA_TYPE", "Filter", p.bayer_pattern)]))
        if c.cooler:
            self.temperature = add(P.number("CCD_TEMPERATURE", "Temperature", main,
                                            [("CCD_TEMPERATURE_VALUE", "Temperature (C)",
                                              c.ambient_c, -50, 50, 0)], fmt="%5.2f"))
        # gain and offset as the simulator and QHY drivers offer them, or as ZWO and ToupTek do
        if c.gain_property == "CCD_CONTROLS":
            controls = add(P.number("CCD_CONTROLS", "Controls", main,
                                    [("Gain", "Gain", 0, 0, 600, 1),
                                     ("Offset", "Offset", 0, 0, 1000, 1)]))
            self.gain_at, self.offset_at = (controls, "Gain"), (controls, "Offset")
        else:
            gain = add(P.number("CCD_GAIN", "Gain", main, [("GAIN", "value", 0, 0, 600, 1)]))
            offset = add(P.number("CCD_OFFSET", "Offset", main,
                                  [("OFFSET", "value", 0, 0, 1000, 1)]))
            self.gain_at, self.offset_at = (gain, "GAIN"), (offset, "OFFSET")
        self.upload = add(P.switch("UPLOAD_MODE", "Upload", opts,
                                   [("UPLOAD_CLIENT", "Client", True),
                                    ("UPLOAD_LOCAL", "Local", False),
                                    ("UPLOAD_BOTH", "Both", False)]))
        self.upload_dir = add(P.text("UPLOAD_SETTINGS", "Upload Settings", opts,
                                     [("UPLOAD_DIR", "Dir", os.getcwd()),
                                      ("UPLOAD_PREFIX", "Prefix", "IMAGE_XXX")]))
        self.compression = add(P.switch("CCD_COMPRESSION", "Compression", opts,
                                        [("INDI_ENABLED", "Enabled", False),
                                         ("INDI_DISABLED", "Disabled", True)]))
        self.active = add(P.text("ACTIVE_DEVICES", "Snoop devices", opts,
                                 [("ACTIVE_LIGHTBOX", "Light box", c.light_box),
                                  ("ACTIVE_DUSTCAP", "Dust cap", c.cover),
                                  ("ACTIVE_FILTER", "Filter wheel", c.filter_wheel)]))
        self.ccd1 = add(P.blob("CCD1", "Image Data", "Image Streams", [("CCD1", "Image")]))
        for vector in self.props.values():
            vector.state = P.OK if vector.name in ("CCD_INFO", "DRIVER_INFO") else P.IDLE
            self.define(vector)

    # ----- snooping -----
    def on_start(self) -> None:
        self._snoop_all()
        threading.Thread(target=self._cool, daemon=True, name="cooler").start()

    def _snoop_all(self) -> None:
        for device in {self.active["ACTIVE_LIGHTBOX"].value, self.active["ACTIVE_DUSTCAP"].value,
                       self.active["ACTIVE_FILTER"].value}:
            if device:
                self.snoop(str(device))

    def on_snoop(self, msg: P.Incoming) -> None:
        device, name = msg.attrs.get("device"), msg.attrs.get("name")
        seen = self.seen
        with self.lock:
            if msg.tag == "delProperty":
                if device == self.active["ACTIVE_DUSTCAP"].value and name in (None, "CAP_PARK"):
                    seen.cover_closed = None
                if device == self.active["ACTIVE_LIGHTBOX"].value and name in (
                        None, "FLAT_LIGHT_CONTROL"):
                    seen.light_on = False
                return
            m = msg.members
            if device == self.active["ACTIVE_LIGHTBOX"].value:
                if name == "FLAT_LIGHT_CONTROL" and "FLAT_LIGHT_ON" in m:
                    seen.light_on = m["FLAT_LIGHT_ON"] == "On"
                elif name == "FLAT_LIGHT_INTENSITY" and "FLAT_LIGHT_INTENSITY_VALUE" in m:
                    seen.brightness = P.parse_number(m["FLAT_LIGHT_INTENSITY_VALUE"])
                    top = msg.member_attrs["FLAT_LIGHT_INTENSITY_VALUE"].get("max")
                    if top:
                        seen.brightness_max = P.parse_number(top)
                elif name == "FLAT_LIGHT_OUTPUT" and "FLAT_LIGHT_FLUX" in m:
                    seen.announced_flux = P.parse_number(m["FLAT_LIGHT_FLUX"])
                    rgb = ("FLAT_LIGHT_RED", "FLAT_LIGHT_GREEN", "FLAT_LIGHT_BLUE")
                    if all(k in m for k in rgb):
                        r, g, b = (P.parse_number(m[k]) for k in rgb)
                        seen.announced_colour = (r, g, b)
            if device == self.active["ACTIVE_DUSTCAP"].value and name == "CAP_PARK":
                if m.get("PARK") == "On":
                    # a lid still travelling lets light past; count it closed once there
                    seen.cover_closed = msg.attrs.get("state") != P.BUSY
                elif m.get("UNPARK") == "On":
                    seen.cover_closed = False
            if device == self.active["ACTIVE_FILTER"].value and name == "FILTER_SLOT":
                if "FILTER_SLOT_VALUE" in m:
                    seen.filter_slot = int(round(P.parse_number(m["FILTER_SLOT_VALUE"])))

    # ----- clients' requests -----
    def on_new(self, vector: P.Vector, values: dict[str, str]) -> None:
        if vector.kind == "Switch":
            on = [k for k, v in values.items() if v == "On"]
            self._switch(vector, on)
        elif vector.kind == "Number":
            numbers = {k: P.parse_number(v) for k, v in values.items() if k in vector.values()}
            self._number(vector, numbers)
        elif vector.kind == "Text":
            for k, v in values.items():
                if k in vector.values():
                    vector[k].value = v
            self.update(vector, state=P.OK)
            if vector is self.active:
                self.seen = Snooped()
                self._snoop_all()

    def _switch(self, vector: P.Vector, on: list[str]) -> None:
        if vector is self.abort:
            self.abort_event.set()
            self.update(self.abort, state=P.OK)
            return
        if not on:
            self.update(vector, state=P.ALERT)
            return
        for e in vector.elements:
            e.value = e.name == on[0]
        self.update(vector, state=P.OK)

    def _number(self, vector: P.Vector, numbers: dict[str, float]) -> None:
        for k, v in numbers.items():
            e = vector[k]
            if not e.min <= v <= e.max:
                self.update(vector, state=P.ALERT,
                            message=f"{vector.name}.{k} {v:g} outside {e.min:g}-{e.max:g}")
                return
        if vector is self.exposure:
            self._start_exposure(numbers.get("CCD_EXPOSURE_VALUE", 0.0))
            return
        if vector.name == "CCD_TEMPERATURE":
            self.setpoint_c = numbers.get("CCD_TEMPERATURE_VALUE", self.setpoint_c)
            self.update(vector, state=P.BUSY)
            return
        for k, v in numbers.items():
            vector[k].value = v
        self.update(vector, state=P.OK)

    # ----- exposing -----
    def _start_exposure(self, exposure_s: float) -> None:
        """As INDI's camera base class does, a new exposure aborts the one running, whichever
        client started it: the old one ends without a frame or a word."""
        self.abort_event.set()
        self._exposure_id += 1
        self.abort_event = threading.Event()
        self.exposing.set()
        self.exposure["CCD_EXPOSURE_VALUE"].value = exposure_s
        self.update(self.exposure, state=P.BUSY)
        threading.Thread(target=self._expose, args=(exposure_s, self._exposure_id,
                                                    self.abort_event),
                         daemon=True, name="exposure").start()

    def _current(self, exposure_id: int) -> bool:
        with self.lock:
            return exposure_id == self._exposure_id

    def _expose(self, exposure_s: float, exposure_id: int, aborted: threading.Event) -> None:
        try:
            start = datetime.now(timezone.utc)
            t0 = time.monotonic()
            with self.lock:
                frame_type = FRAME_TYPES[self.frame_type.on_switch() or "FRAME_LIGHT"]
                flux, colour = light_on_sensor(self.cfg, self.seen, frame_type,
                                               self._sun_altitude(start, exposure_s))
                bx = int(self.binning["HOR_BIN"].value)
                by = int(self.binning["VER_BIN"].value)
                roi = [int(self.roi[k].value) for k in ("X", "Y", "WIDTH", "HEIGHT")]
                colour_keys = self._colour_keys(roi, (bx, by))
                gain = float(self.gain_at[0][self.gain_at[1]].value)
                offset = float(self.offset_at[0][self.offset_at[1]].value)
                temp = self.temp_c
            # render while the exposure runs, as a camera integrates while the clock counts
            data = self._render(flux, colour, exposure_s, (bx, by), roi, gain, offset, temp)
            meta = FrameMeta(frame_type=frame_type, exposure_s=exposure_s, camera=self.device,
                             gain=gain, offset=offset, binning=Binning(bx, by),
                             bit_depth=self.cfg.sensor.output_bits(exposure_s),
                             sensor_temp_c=round(temp, 2), setpoint_temp_c=self.setpoint_c,
                             start=start, end=start + timedelta(seconds=exposure_s),
                             pixel_size_um=self.cfg.sensor.pixel_size_um, **colour_keys)
            mode = self.upload.on_switch()
            shared = None
            if mode in ("UPLOAD_CLIENT", "UPLOAD_BOTH") and self.out.can_attach and \
                    self.compression["INDI_ENABLED"].value is not True:
                # the server takes the frame as shared memory (no base64, no second copy);
                # the file is written while the clock counts down, like the rendering
                shared = self._shared_file(data, meta)
            try:
                if not self._count_down(t0, exposure_s, exposure_id, aborted):
                    return
                if self.cfg.hang:
                    aborted.wait()   # fault injection: the frame never comes
                    self._aborted(exposure_id)
                    return
                if self.cfg.readout_s and aborted.wait(self.cfg.readout_s):
                    self._aborted(exposure_id)
                    return
                if shared is not None:
                    if mode == "UPLOAD_BOTH":
                        self._save_local(encode_fits(data, meta))
                    if not self._send_shared(*shared, exposure_id):
                        return
                elif not self._send_inline(data, meta, mode, exposure_id):
                    return
            finally:
                if shared is not None:
                    os.close(shared[0])
            if self.cfg.exposure_ok_delay_s:
                time.sleep(self.cfg.exposure_ok_delay_s)
            with self.lock:
                if exposure_id == self._exposure_id:
                    self.exposure["CCD_EXPOSURE_VALUE"].value = 0.0
                    self.update(self.exposure, state=P.OK)
        except Exception as exc:
            self.update(self.exposure, state=P.ALERT, message=f"exposure failed: {exc}")
        finally:
            with self.lock:
                if exposure_id == self._exposure_id:
                    self.exposing.clear()

    def _shared_file(self, data: np.ndarray, meta: FrameMeta) -> tuple[int, int]:
        """The frame as a FITS file in a memory file: (descriptor, size), for `_send_shared`."""
        fd = os.memfd_create("indical-frame", os.MFD_CLOEXEC)
        try:
            with os.fdopen(os.dup(fd), "wb") as fh:
                write_fits(fh, data, meta)
            size = os.fstat(fd).st_size
            if self.cfg.truncate_frames:
                size //= 2
                os.ftruncate(fd, size)
        except BaseException:
            os.close(fd)
            raise
        return fd, size

    def _send_shared(self, fd: int, size: int, exposure_id: int) -> bool:
        """Pass the memory file to indiserver (protocol.DriverBase.update_attached). False when
        a newer exposure replaced this one."""
        with self.lock:
            if exposure_id != self._exposure_id:
                return False  # superseded while reading out: no frame
            self.update_attached(self.ccd1, "CCD1", fd, size, ".fits", state=P.OK)
        return True

    def _send_inline(self, data: np.ndarray, meta: FrameMeta, mode: str | None,
                     exposure_id: int) -> bool:
        """The frame as base64 in the message (a server that takes no shared memory, upload
        modes that keep a copy, compression). False when a newer exposure replaced this one."""
        fits_bytes = encode_fits(data, meta)
        if mode in ("UPLOAD_LOCAL", "UPLOAD_BOTH"):
            self._save_local(fits_bytes)
        if mode == "UPLOAD_LOCAL":
            return True
        if self.cfg.truncate_frames:
            fits_bytes = fits_bytes[:len(fits_bytes) // 2]
        element = self.ccd1["CCD1"]
        if self.compression["INDI_ENABLED"].value is True:
            # as INDI cameras do: fpack-compressed FITS, announced with the size the frame
            # has uncompressed
            element.value, element.blob_format = encode_fits(data, meta, True), ".fits.fz"
            element.blob_size = len(fits_bytes)
        else:
            element.value, element.blob_format, element.blob_size = fits_bytes, ".fits", 0
        try:
            with self.lock:
                if exposure_id != self._exposure_id:
                    return False  # superseded while reading out: no frame
                self.update(self.ccd1, state=P.OK)
        finally:
            element.value = b""
        return True

    def _aborted(self, exposure_id: int) -> None:
        """Say an exposure was aborted, unless a newer one replaced it (then say nothing)."""
        with self.lock:
            if exposure_id == self._exposure_id:
                self.exposure["CCD_EXPOSURE_VALUE"].value = 0.0
                self.update(self.exposure, state=P.ALERT, message="exposure aborted")


    def _save_local(self, fits_bytes: bytes) -> None:
        """Keep a copy on the driver's side, as INDI cameras do in UPLOAD_LOCAL/BOTH modes:
        PREFIX with XXX replaced by the frame number, written whole then renamed."""
        folder = Path(str(self.upload_dir["UPLOAD_DIR"].value))
        prefix = str(self.upload_dir["UPLOAD_PREFIX"].value).replace("XXX", f"{self.frames:03d}")
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{prefix}.fits.tmp"
        tmp.write_bytes(fits_bytes)
        os.replace(tmp, folder / f"{prefix}.fits")

    def _count_down(self, t0: float, exposure_s: float, exposure_id: int,
                    aborted: threading.Event) -> bool:
        """Report the time left once a second; False when aborted."""
        while True:
            left = exposure_s - (time.monotonic() - t0)
            if left <= 0:
                return True
            if aborted.wait(min(left, 1.0)):
                self._aborted(exposure_id)
                return False
            left = max(0.0, exposure_s - (time.monotonic() - t0))
            with self.lock:
                if left > 0 and exposure_id == self._exposure_id:
                    self.exposure["CCD_EXPOSURE_VALUE"].value = round(left, 3)
                    self.update(self.exposure, state=P.BUSY)

    def _sun_altitude(self, start: datetime, exposure_s: float) -> float | None:
        """The sun's altitude at the settings' [site] in the middle of the exposure (wall
        clock), None without a site."""
        site = self.cfg.site
        if site is None:
            return None
        mid = start + timedelta(seconds=exposure_s / 2)
        return sun_altitude(site.latitude_deg, site.longitude_deg, site.elevation_m, mid)

    def _colour_keys(self, roi: list[int], binning: tuple[int, int]) -> dict[str, object]:
        """The frame's BAYERPAT, XBAYROFF and YBAYROFF: CCD_CFA's pattern seen from the region's
        first pixel (a region starting on an odd column or row shifts the offsets). Binning
        sums pixels of every colour: a binned frame has no pattern."""
        if self.cfa is None or binning != (1, 1):
            return {}
        try:
            ox, oy = int(self.cfa["CFA_OFFSET_X"].value), int(self.cfa["CFA_OFFSET_Y"].value)
        except ValueError:
            ox = oy = 0
        return {"bayer_pattern": str(self.cfa["CFA_TYPE"].value),
                "bayer_offset_x": (ox + roi[0]) % 2, "bayer_offset_y": (oy + roi[1]) % 2}

    def _render(self, flux: float, colour: tuple[float, float, float], exposure_s: float,
                binning: tuple[int, int], roi: list[int], gain: float, offset: float,
                temp_c: float) -> np.ndarray:
        p = self.cfg.sensor
        self.frames += 1
        rng = np.random.default_rng([p.seed, 300, self.frames])
        light: np.ndarray | float = 0.0
        if flux > 0:
            light = illumination_map(self.cfg.optics, p.width, p.height) * np.float32(flux)
        data, _ = self.sensor.render(light, exposure_s, temp_c=temp_c, gain=gain, offset=offset,
                                     binning=binning, channel_flux=colour, rng=rng)
        x, y, w, h = roi
        bx, by = binning
        return np.ascontiguousarray(data[y // by:(y + h) // by, x // bx:(x + w) // bx])

    # ----- cooling -----
    def _cool(self) -> None:
        """Move the sensor temperature toward the set point at the configured rate."""
        if not self.cfg.cooler:
            return
        last = time.monotonic()
        while not self.stopping.wait(1.0):
            now = time.monotonic()
            with self.lock:
                target = self.cfg.ambient_c if self.setpoint_c is None else max(
                    self.setpoint_c, self.cfg.ambient_c - 40.0)
                step = self.cfg.cooling_rate_c_per_min * (now - last) / 60.0
                last = now
                if abs(target - self.temp_c) <= step:
                    self.temp_c = target
                else:
                    self.temp_c += step if target > self.temp_c else -step
                vector = self.temperature
                before = vector["CCD_TEMPERATURE_VALUE"].value
                vector["CCD_TEMPERATURE_VALUE"].value = round(self.temp_c, 2)
                state = P.OK if self.temp_c == target else P.BUSY
                if before != vector["CCD_TEMPERATURE_VALUE"].value or state != vector.state:
                    self.update(vector, state=state)


def encode_fits(data: np.ndarray, meta: FrameMeta, compressed: bool = False) -> bytes:
    """A frame as the bytes of a FITS file, as an INDI camera sends it; `compressed`: tile-
    compressed (Rice, lossless for integers), as fpack writes it."""
    buf = io.BytesIO()
    if compressed:
        fits.HDUList([fits.PrimaryHDU(),
                      fits.CompImageHDU(data=data, header=meta_to_header(meta),
                                        compression_type="RICE_1")]).writeto(buf)
    else:
        write_fits(buf, data, meta)
    return buf.getvalue()


def write_fits(fh: io.RawIOBase | io.BufferedIOBase, data: np.ndarray, meta: FrameMeta) -> None:
    """A frame as a plain FITS file written to `fh`, as an INDI camera writes it."""
    fits.PrimaryHDU(data=data, header=meta_to_header(meta)).writeto(fh)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="indi_indical_ccd", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="simulator settings (TOML); default: $INDICAL_INDI_SIM_CONFIG")
    args = parser.parse_args(argv)
    try:
        cfg = camera_config(args.config)
    except Exception as exc:
        print(f"indi_indical_ccd: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    CcdDriver(cfg).run()


if __name__ == "__main__":
    main()
