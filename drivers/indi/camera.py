"""Camera adapter: exposures through CCD_EXPOSURE, frames from the CCD1 BLOB as FITS.

The camera is shared with other clients (the imaging program). Opening it changes nothing; an
exposure waits while another client's exposure runs (a new CCD_EXPOSURE would abort it), sets
what the frame needs (binning, region, frame type, frames sent to clients), and accepts only its
own frame. The connection puts every setting back at the end."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from indical.drivers.indi.blob_channel import BlobChannel, DecodedBlob
from indical.drivers.indi.connection import IndiConnection
from indical.drivers.indi.device import IndiDevice
from indical.drivers.indi.fits_blob import decode_fits
from indical.drivers.indi.local_socket import find_local_socket
from indical.errors import DeviceError, DeviceTimeout, NotSupported
from indical.frame import BAYER_PATTERNS, Binning, Frame, FrameMeta, FrameType, Region
from indical.interfaces import Camera, CameraInfo

__all__ = ["IndiCamera", "decode_fits"]

log = logging.getLogger(__name__)
# How long to wait for the driver's last CCD_EXPOSURE update after a frame (see
# IndiCamera._exposure_quiet); drivers send it within milliseconds of the frame.
_QUIET_TIMEOUT_S = 1.0

# INDI has no dark-flat frame type: a dark flat is a dark taken with flat settings.
FRAME_SWITCH = {
    FrameType.LIGHT: "FRAME_LIGHT",
    FrameType.BIAS: "FRAME_BIAS",
    FrameType.DARK: "FRAME_DARK",
    FrameType.DARKFLAT: "FRAME_DARK",
    FrameType.FLAT: "FRAME_FLAT",
}


class IndiCamera(IndiDevice, Camera):
    """A camera driven through its INDI driver. Settings made here are applied again when the
    driver or the server restarts."""

    def __init__(self, conn: IndiConnection, device: str, *, timeout_s: float,
                 readout_allowance_s: float, busy_timeout_s: float = 300.0,
                 frames: str = "auto", local_socket: str | None = None) -> None:
        super().__init__(conn, device, timeout_s=timeout_s, busy_timeout_s=busy_timeout_s)
        self.readout_allowance_s = readout_allowance_s
        self.frames = frames
        self.local_socket = local_socket
        self._channel: BlobChannel | None = None
        #: how frames travel, for `rig check`
        self.frames_via = ""
        self._want: dict[str, object] = {}
        self._busy_after_frames = False  # the driver leaves CCD_EXPOSURE Busy: don't wait
        self._exposing = False           # an exposure of ours is in flight
        #: perf_counter() times of the last exposure: sent, BLOB arrived, frame decoded.
        self.last_transfer: dict[str, float] = {}

    # ----- set-up -----
    def _setup(self) -> None:
        self._prop("CCD_EXPOSURE")
        # drivers define CCD_INFO on connect and fill in the sensor size a moment later
        self.conn.wait_for(lambda: (p := self.conn.props.get((self.name, "CCD_INFO"))) is not None
                           and p.values.get("CCD_MAX_X", 0) > 0
                           and p.values.get("CCD_BITSPERPIXEL", 0) > 0, timeout_s=self.timeout_s,
                           device=self.name, action="reading the sensor size (CCD_INFO)",
                           hint="is this device a camera?")
        self._open_channel()
        # settings asked for before a reconnect or a driver restart are applied again; the
        # transfer settings are checked before each exposure (never on opening: `rig check`
        # and other inspections change nothing)
        for key, value in list(self._want.items()):
            getattr(self, f"_apply_{key}")(value)

    def _open_channel(self) -> None:
        """The connection frames come over (blob_channel.py): shared memory through the
        server's local socket when it runs here (`frames` 'auto' or 'shared'), else TCP."""
        if self._channel is not None:
            self.conn.drop_channel(self._channel)
            self._channel = None
        conn = self.conn
        why = "frames = 'tcp' in the rig"
        if self._compressed():
            # indiserver 1.9.9 hands a compressed frame over with the size of the frame
            # uncompressed: the length of the data is lost (decision 023)
            why = "the camera compresses frames"
        elif self.frames in ("auto", "shared"):
            path, why = self.local_socket, ""
            if path is None:
                found = find_local_socket(conn.host, conn.port)
                path, why = found.path, found.why_not
            if path is not None:
                try:
                    self._channel = BlobChannel(conn.cond, self.name, unix_path=path,
                                                connect_timeout_s=conn.connect_timeout_s).open()
                    self.frames_via = f"shared memory through the local socket @{path}"
                except DeviceError as exc:
                    why = str(exc)
            if self._channel is None and self.frames == "shared":
                raise DeviceError(self.name, "opening the frame connection", "frames = 'shared'"
                                  f" but {why}", "set frames = 'auto' or 'tcp' in the rig")
        if self._channel is None:
            self._channel = BlobChannel(conn.cond, self.name, tcp=(conn.host, conn.port),
                                        connect_timeout_s=conn.connect_timeout_s).open()
            self.frames_via = f"base64 over TCP ({why})"
        conn.add_channel(self._channel)

    def _compressed(self) -> bool:
        p = self._has("CCD_COMPRESSION")
        return p is not None and p.values.get("INDI_ENABLED") is True

    def _frames_to_client(self) -> None:
        """Frames must reach this client as FITS. UPLOAD_LOCAL keeps them on the driver's side
        and a non-FITS transfer format can't be read: only then change them (put back at the
        end). Compression is left as it is: compressed FITS is read as it comes."""
        upload = self._has("UPLOAD_MODE")
        if upload is not None and upload.values.get("UPLOAD_LOCAL") and \
                "UPLOAD_CLIENT" in upload.values:
            serial = self.conn.send_switch(self.name, "UPLOAD_MODE", "UPLOAD_CLIENT")
            self._settled("UPLOAD_MODE", serial, "sending frames to the client")
        transfer = self._has("CCD_TRANSFER_FORMAT")
        if transfer is not None and "FORMAT_FITS" in transfer.values and \
                not transfer.values["FORMAT_FITS"]:
            serial = self.conn.send_switch(self.name, "CCD_TRANSFER_FORMAT", "FORMAT_FITS")
            self._settled("CCD_TRANSFER_FORMAT", serial, "choosing FITS frames")

    # ----- capabilities -----
    def _gain_prop(self, what: str) -> tuple[str, str] | None:
        """(property, element) for 'gain' or 'offset': CCD_GAIN/CCD_OFFSET or CCD_CONTROLS."""
        own = {"gain": ("CCD_GAIN", "GAIN"), "offset": ("CCD_OFFSET", "OFFSET")}[what]
        if self._has(own[0]) is not None:
            return own
        controls = self._has("CCD_CONTROLS")
        element = what.capitalize()
        if controls is not None and element in controls.values:
            return ("CCD_CONTROLS", element)
        return None

    def info(self) -> CameraInfo:
        self._ready()
        ccd = self._prop("CCD_INFO").values
        lo, hi, _ = self._prop("CCD_EXPOSURE").ranges["CCD_EXPOSURE_VALUE"]
        binning = self._has("CCD_BINNING")
        max_bin = int(binning.ranges["HOR_BIN"][1]) if binning is not None else 1
        return CameraInfo(width=int(ccd.get("CCD_MAX_X", 0)), height=int(ccd.get("CCD_MAX_Y", 0)),
                          bit_depth=int(ccd.get("CCD_BITSPERPIXEL", 16)), min_exposure_s=lo,
                          max_exposure_s=hi, pixel_size_um=ccd.get("CCD_PIXEL_SIZE") or None,
                          max_binning=max_bin,
                          has_cooler=self._has("CCD_TEMPERATURE") is not None,
                          has_gain=self._gain_prop("gain") is not None,
                          has_offset=self._gain_prop("offset") is not None)

    def describe(self) -> dict[str, object]:
        i = self.info()
        facts = {"kind": "INDI camera", "size": f"{i.width}x{i.height}",
                 "bit depth": i.bit_depth,
                 "exposure": f"{i.min_exposure_s:g}-{i.max_exposure_s:g} s",
                 "cooler": i.has_cooler, "gain": i.has_gain, "max binning": i.max_binning,
                 "frames": self.frames_via}
        cfa = self._has("CCD_CFA")
        if cfa is not None and str(cfa.values.get("CFA_TYPE", "")).strip():
            facts["colour filter"] = (f"{cfa.values['CFA_TYPE']} (offsets "
                                      f"{cfa.values.get('CFA_OFFSET_X', 0)}, "
                                      f"{cfa.values.get('CFA_OFFSET_Y', 0)})")
        return {**facts, **self._driver_facts()}

    # ----- settings -----
    def _apply_binning(self, binning: Binning) -> None:
        p = self._has("CCD_BINNING")
        if p is None:
            if binning != Binning():
                raise NotSupported(self.name, "binning")
            return
        if (int(p.values["HOR_BIN"]), int(p.values["VER_BIN"])) == (binning.x, binning.y):
            return
        serial = self.conn.send_number(self.name, "CCD_BINNING",
                                       {"HOR_BIN": binning.x, "VER_BIN": binning.y})
        self._settled("CCD_BINNING", serial, f"binning {binning}")

    def set_binning(self, binning: Binning) -> None:
        self._ready()
        p = self._has("CCD_BINNING")
        top = int(p.ranges["HOR_BIN"][1]) if p is not None else 1
        if binning.x > top or binning.y > top:
            raise ValueError(f"{self.name}: binning {binning} is above the maximum {top}x{top}")
        self._apply_binning(binning)
        self._want["binning"] = binning

    def _full_sensor(self) -> Region:
        ccd = self._prop("CCD_INFO").values
        return Region(0, 0, int(ccd["CCD_MAX_X"]), int(ccd["CCD_MAX_Y"]))

    def set_region(self, region: Region | None) -> None:
        """Expose only `region` (unbinned sensor pixels); None for the full sensor, the
        default."""
        self._ready()
        full = self._full_sensor()
        if region is not None and not (0 <= region.x and 0 <= region.y and region.width > 0
                                       and region.height > 0
                                       and region.x + region.width <= full.width
                                       and region.y + region.height <= full.height):
            raise ValueError(f"{self.name}: region {region} is outside the "
                             f"{full.width}x{full.height} sensor")
        self._want["region"] = region

    def region(self) -> Region:
        """The region the next frame will cover."""
        self._ready()
        want = self._want.get("region")
        return want if isinstance(want, Region) else self._full_sensor()

    def _apply_region(self, region: Region | None) -> None:
        """Region and binning are set for every frame: another client may have left others."""
        region = region or self._full_sensor()
        p = self._has("CCD_FRAME")
        if p is None:
            if region != self._full_sensor():
                raise NotSupported(self.name, "sub-frames")
            return
        want = {"X": region.x, "Y": region.y, "WIDTH": region.width, "HEIGHT": region.height}
        if all(int(round(p.values.get(k, -1))) == v for k, v in want.items()):
            return
        serial = self.conn.send_number(self.name, "CCD_FRAME", want)
        self._settled("CCD_FRAME", serial, f"choosing the region {region.width}x{region.height}"
                      f" at {region.x},{region.y}")

    def binning(self) -> Binning:
        """The binning of the next frame: as asked, else 1x1, whatever another client left."""
        self._ready()
        want = self._want.get("binning")
        return want if isinstance(want, Binning) else Binning()

    def _apply_level(self, what: str, value: float) -> None:
        where = self._gain_prop(what)
        if where is None:
            raise NotSupported(self.name, what)
        prop, element = where
        lo, hi, _ = self._prop(prop).ranges[element]
        if not lo <= value <= hi:
            raise ValueError(f"{self.name}: {what} {value:g} outside {lo:g}-{hi:g}")
        serial = self.conn.send_number(self.name, prop, {element: value})
        self._settled(prop, serial, f"setting {what} {value:g}")

    def _apply_gain(self, value: float) -> None:
        self._apply_level("gain", value)

    def _apply_offset(self, value: float) -> None:
        self._apply_level("offset", value)

    def _read_level(self, what: str) -> float | None:
        self._ready()
        where = self._gain_prop(what)
        if where is None:
            return None
        p = self._has(where[0])
        return None if p is None else float(p.values[where[1]])

    def set_gain(self, gain: float) -> None:
        self._ready()
        self._apply_gain(float(gain))
        self._want["gain"] = float(gain)

    def gain(self) -> float | None:
        return self._read_level("gain")

    def set_offset(self, offset: float) -> None:
        self._ready()
        self._apply_offset(float(offset))
        self._want["offset"] = float(offset)

    def offset(self) -> float | None:
        return self._read_level("offset")

    def _apply_setpoint(self, setpoint_c: float | None) -> None:
        if self._has("CCD_TEMPERATURE") is None:
            raise NotSupported(self.name, "cooling")
        if setpoint_c is None:
            cooler = self._has("CCD_COOLER")
            if cooler is not None and "COOLER_OFF" in cooler.values:
                self.conn.send_switch(self.name, "CCD_COOLER", "COOLER_OFF")
            return
        serial = self.conn.send_number(self.name, "CCD_TEMPERATURE",
                                       {"CCD_TEMPERATURE_VALUE": setpoint_c})
        # the property stays Busy while the sensor cools: wait only for the answer
        self.conn.wait_for(lambda: (p := self.conn.props.get((self.name, "CCD_TEMPERATURE")))
                           is not None and p.serial > serial, timeout_s=self.timeout_s,
                           device=self.name, action=f"setting the cooler to {setpoint_c:g} C")
        p = self._has("CCD_TEMPERATURE")
        if p is not None and p.state == "Alert":
            raise DeviceError(self.name, f"setting the cooler to {setpoint_c:g} C",
                              "the driver refused", self.conn.last_message(self.name))

    def set_temperature(self, setpoint_c: float | None) -> None:
        self._ready()
        self._apply_setpoint(setpoint_c)
        self._want["setpoint"] = setpoint_c

    def temperature_c(self) -> float | None:
        self._ready()
        p = self._has("CCD_TEMPERATURE")
        return None if p is None else float(p.values["CCD_TEMPERATURE_VALUE"])

    def setpoint_c(self) -> float | None:
        value = self._want.get("setpoint")
        return None if value is None else float(value)  # type: ignore[arg-type]

    def default_timeout_s(self, exposure_s: float) -> float:
        return exposure_s * 1.2 + self.readout_allowance_s

    # ----- exposing -----
    def abort(self) -> None:
        """Abort indical's own exposure; another client's is left alone."""
        if not self._exposing:
            return
        try:
            if self._has("CCD_ABORT_EXPOSURE") is not None and self.conn.connected:
                self.conn.send_switch(self.name, "CCD_ABORT_EXPOSURE", "ABORT")
        except DeviceError:
            pass  # nothing to abort on a device that is gone

    def _set_frame_type(self, frame_type: FrameType) -> None:
        p = self._has("CCD_FRAME_TYPE")
        want = FRAME_SWITCH[frame_type]
        if p is None or want not in p.values or p.values[want]:
            return
        serial = self.conn.send_switch(self.name, "CCD_FRAME_TYPE", want)
        self._settled("CCD_FRAME_TYPE", serial, f"choosing frame type {want}")

    def expose(self, exposure_s: float, frame_type: FrameType = FrameType.LIGHT, *,
               timeout_s: float | None = None) -> Frame:
        self._ready()
        lo, hi, _ = self._prop("CCD_EXPOSURE").ranges["CCD_EXPOSURE_VALUE"]
        if not lo <= exposure_s <= hi:
            raise ValueError(f"{self.name}: exposure {exposure_s:g} s outside {lo:g}-{hi:g} s")
        timeout = self.default_timeout_s(exposure_s) if timeout_s is None else timeout_s
        action = f"exposing {exposure_s:g} s"
        self._wait_idle(action)
        self._frames_to_client()
        self._set_frame_type(frame_type)
        binning = self.binning()
        self._apply_binning(binning)
        region = self.region()
        self._apply_region(region)
        want_w, want_h = region.width // binning.x, region.height // binning.y
        conn = self.conn
        with conn.cond:
            generation = conn.devices.get(self.name)
        channel = self._channel
        if channel is None or not channel.alive or channel.shared and self._compressed():
            # the frame connection ended (a server restart), or compression was switched on
            self._open_channel()
            channel = self._channel
        assert channel is not None
        self._wait_idle(action)   # settings take a moment: look again just before exposing
        start = datetime.now(timezone.utc)
        sent = time.perf_counter()
        self._exposing = True
        try:
            with conn.cond:
                mark, after = channel.exposure_updates, channel.latest_serial
            serial = conn.send_number(self.name, "CCD_EXPOSURE",
                                      {"CCD_EXPOSURE_VALUE": exposure_s})

            def arrived() -> DecodedBlob | None:
                if conn.devices.get(self.name) != generation:
                    raise DeviceError(self.name, action, "the device left the server during "
                                      "the exposure (its driver stopped or restarted)",
                                      "the next exposure waits for it to come back")
                blob = channel.latest
                if blob is not None and blob.serial > after:
                    return blob
                if not channel.alive:
                    raise DeviceError(self.name, action, f"lost the frame connection to "
                                      f"indiserver {conn.address} ({channel.ended_because})",
                                      "the next exposure connects again")
                p = conn.props.get((self.name, "CCD_EXPOSURE"))
                if p is not None and p.serial > serial and p.state == "Alert":
                    raise DeviceError(self.name, action, "the driver reported a failure",
                                      conn.last_message(self.name) or "see the driver's log")
                return None

            deadline = time.monotonic() + timeout
            ignored = 0
            while True:
                try:
                    blob = conn.wait_for(arrived, timeout_s=max(0.0, deadline - time.monotonic()),
                                         device=self.name, action=action,
                                         hint="the frame never arrived; is the camera stuck? "
                                              "(exposure aborted)")
                except DeviceTimeout as exc:
                    self.abort()
                    hint = exc.hint + (f"; {ignored} frame(s) of other exposures ignored"
                                       if ignored else "")
                    raise DeviceTimeout(self.name, action, timeout, hint) from None
                # Every client with BLOBs on receives every client's frames. Frames reach us in
                # the order the driver sent them, after its CCD_EXPOSURE updates: one that came
                # before the driver answered our request belongs to an exposure before ours.
                if blob.exposure_serial > mark:
                    break
                log.info("%s: ignored a frame from an exposure before ours (another client's)",
                         self.name)
                ignored += 1
                after = blob.serial
        finally:
            self._exposing = False
        if blob.error is not None:
            raise blob.error
        data, header = blob.pixels, blob.header
        assert data is not None
        self._exposure_quiet(action)
        if data.shape[-2:] != (want_h, want_w):
            raise DeviceError(self.name, action,
                              f"the frame is {data.shape[-1]}x{data.shape[-2]} pixels but "
                              f"{want_w}x{want_h} was asked ({region.width}x{region.height} at "
                              f"{region.x},{region.y}, binned {binning})",
                              "the driver or another client changed the frame meanwhile")
        self.last_transfer = {"sent_s": sent, "blob_s": blob.received_s,
                              "frame_s": blob.decoded_s, "exposure_s": exposure_s,
                              "bytes": float(blob.nbytes)}
        meta = self._meta(frame_type, exposure_s, start)
        meta = meta.replace(binning=binning, extra={**meta.extra,
                                                    "XORGSUBF": region.x // binning.x,
                                                    "YORGSUBF": region.y // binning.y},
                            **self._colour(region, binning, header))
        return Frame(data, meta)

    def _colour(self, region: Region, binning: Binning, header: Any
                ) -> dict[str, object]:
        """The frame's Bayer pattern and offsets (FrameMeta fields), from CCD_CFA, which INDI
        colour cameras define for the whole sensor: a region starting on an odd column or row
        shifts the pattern's phase by its start. Without CCD_CFA, what the driver wrote in the
        frame's header (BAYERPAT, XBAYROFF, YBAYROFF) is taken as it is. Binned frames of a
        colour sensor carry no pattern: drivers bin colour sensors differently (summing every
        colour, or each colour apart), and CCD_CFA does not say which."""
        cfa = self._has("CCD_CFA")
        if cfa is not None:
            pattern = str(cfa.values.get("CFA_TYPE", "")).strip().upper()
            try:
                ox = int(float(cfa.values.get("CFA_OFFSET_X") or 0))
                oy = int(float(cfa.values.get("CFA_OFFSET_Y") or 0))
            except ValueError:
                raise DeviceError(self.name, "reading the colour filter pattern (CCD_CFA)",
                                  f"offsets {cfa.values.get('CFA_OFFSET_X')!r}, "
                                  f"{cfa.values.get('CFA_OFFSET_Y')!r} are not whole numbers",
                                  "check the camera driver's Bayer settings") from None
            ox, oy = ox + region.x, oy + region.y
        else:
            pattern = str(header.get("BAYERPAT") or "").strip().upper()
            ox, oy = int(header.get("XBAYROFF") or 0), int(header.get("YBAYROFF") or 0)
        if not pattern or pattern in ("NONE", "MONO") or binning != Binning():
            return {}
        if pattern not in BAYER_PATTERNS:
            raise DeviceError(self.name, "reading the colour filter pattern (CCD_CFA)",
                              f"unknown pattern {pattern!r}; known: "
                              f"{', '.join(BAYER_PATTERNS)}",
                              "check the camera driver's Bayer settings")
        return {"bayer_pattern": pattern, "bayer_offset_x": ox % 2, "bayer_offset_y": oy % 2}

    def _wait_idle(self, action: str) -> None:
        """Wait while another client's exposure runs: a CCD_EXPOSURE sent now would abort it.
        Refuses after `busy_timeout_s`."""
        conn = self.conn

        def exposing() -> bool:
            p = conn.props.get((self.name, "CCD_EXPOSURE"))
            if p is None or p.state != "Busy":
                return False
            # a driver that leaves the property Busy after frames counts down to 0 and stays
            return not self._busy_after_frames or p.values.get("CCD_EXPOSURE_VALUE", 0) > 0

        with conn.cond:
            if not exposing():
                return
        log.warning("%s: another client is exposing; waiting up to %g s for its exposure to "
                    "end", self.name, self.busy_timeout_s)
        try:
            conn.wait_for(lambda: not exposing(), timeout_s=self.busy_timeout_s,
                          device=self.name, action=action)
        except DeviceTimeout:
            raise DeviceError(self.name, action, "camera busy: another client is exposing",
                              f"waited {self.busy_timeout_s:g} s; run indical when the imaging "
                              "program is idle, or raise busy_timeout_s in the rig file") from None

    def _exposure_quiet(self, action: str) -> None:
        """Wait until the driver has said its last word on the previous exposure (CCD_EXPOSURE
        no longer Busy). Many drivers send the frame first and `CCD_EXPOSURE_VALUE = 0, Ok`
        after it. pyindi-client applies that update to the same property object a new
        exposure is written into before it is sent, so an update landing in between sent 0 s
        and the driver refused the exposure. Bounded: a driver that leaves the property Busy
        is waited for once, then no more."""
        if self._busy_after_frames:
            return
        conn = self.conn

        def quiet():
            p = conn.props.get((self.name, "CCD_EXPOSURE"))
            return p is None or p.state != "Busy"

        try:
            conn.wait_for(quiet, timeout_s=_QUIET_TIMEOUT_S, device=self.name, action=action)
        except DeviceTimeout:
            self._busy_after_frames = True
            log.debug("%s: CCD_EXPOSURE stays Busy after frames; not waiting for it again",
                      self.name)

    def _meta(self, frame_type: FrameType, exposure_s: float, start: datetime) -> FrameMeta:
        ccd = self._has("CCD_INFO")
        temp = self._has("CCD_TEMPERATURE")
        binning = self._has("CCD_BINNING")
        return FrameMeta(
            frame_type=frame_type, exposure_s=exposure_s, camera=self.name,
            gain=self._read_level("gain"), offset=self._read_level("offset"),
            binning=Binning(int(binning.values["HOR_BIN"]), int(binning.values["VER_BIN"]))
            if binning is not None else Binning(),
            bit_depth=int(ccd.values["CCD_BITSPERPIXEL"]) if ccd is not None else None,
            sensor_temp_c=float(temp.values["CCD_TEMPERATURE_VALUE"]) if temp is not None else None,
            setpoint_temp_c=self.setpoint_c(), start=start,
            end=start + timedelta(seconds=exposure_s),
            pixel_size_um=(float(ccd.values["CCD_PIXEL_SIZE"]) or None) if ccd is not None else None)
