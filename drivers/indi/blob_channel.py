"""A camera's frames over a connection of their own, decoded as they arrive.

pyindi-client carries properties well, but a frame through it costs its XML parser walking the
base64 text character by character, its decoder, and two copies before Python sees the bytes
(decision 023 has the figures). So the camera's BLOBs come over a second connection to the same
indiserver that asks for that one device (`getProperties`) and its BLOBs (`enableBLOB Also`);
the property connection asks for none. On it:

- over TCP, the base64 text is decoded piece by piece as it arrives (pybase64, SIMD) and each
  piece's pixels converted into the frame's array at once (blob_text.py): when the last byte
  arrives only the last piece is left;
- over indiserver's local (Unix) socket, the server hands each frame over as a shared-memory
  file descriptor (SCM_RIGHTS; the XML says `attached="true"`): the frame is mapped and decoded
  into the array, the only pass over its bytes on this side.

The device's CCD_EXPOSURE updates arrive on this connection in the order the driver sent them,
before and after its frames: how many were seen before a frame tells the camera whether the
frame came after the driver answered its request (decision 020).

A frame is whole or an error: a connection that ends inside a frame drops what came of it, a
frame shorter than its header says is an error the camera raises."""

from __future__ import annotations

import array
import collections
import logging
import mmap
import os
import socket
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import numpy as np

from indical.drivers.indi.blob_text import BlobText
from indical.drivers.indi.fits_blob import decode_fits
from indical.errors import DeviceError
from indical.xml_stream import ElementFramer

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_MAX_FDS = 16          # indiserver attaches at most 16 buffers to a message


@dataclass(frozen=True)
class DecodedBlob:
    """One frame as it arrived on the channel: its pixels, or why it could not be read."""

    device: str
    element: str
    format: str
    pixels: np.ndarray | None
    header: Any                   # the frame's FITS header (what `decode_fits` returns)
    error: DeviceError | None
    nbytes: int                   # bytes of the file the driver sent
    received_s: float             # perf_counter() when its last byte arrived
    decoded_s: float              # ... when its pixels were ready
    serial: int                   # +1 per frame on this channel
    exposure_serial: int          # CCD_EXPOSURE updates seen on this channel before it


def _attrs(tag: bytes) -> dict[str, str]:
    """Attributes of one start tag (small: a oneBLOB's), parsed as XML."""
    text = tag[:-2] + b"/>" if tag.endswith(b"/>") else tag[:-1] + b"/>"
    return dict(ET.fromstring(text).attrib)


class BlobChannel:
    """The connection carrying one device's frames. `cond` is the property connection's
    condition: waiters there are woken by frames and by this channel's end."""

    def __init__(self, cond: threading.Condition, device: str, *, tcp: tuple[str, int] | None = None,
                 unix_path: str | None = None, prop: str = "CCD1",
                 connect_timeout_s: float = 5.0) -> None:
        if (tcp is None) == (unix_path is None):
            raise ValueError("a BLOB channel goes over TCP or a Unix socket")
        self.cond = cond
        self.device = device
        self.prop = prop
        self.tcp = tcp
        self.unix_path = unix_path
        self.connect_timeout_s = connect_timeout_s
        self.shared = unix_path is not None
        self.where = f"local socket @{unix_path}" if unix_path else f"{tcp[0]}:{tcp[1]}"  # type: ignore[index]
        self.latest: DecodedBlob | None = None
        self.exposure_updates = 0
        self.alive = False
        self.ended_because = ""
        self._serial = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._framer = ElementFramer()
        self._held = b""                                   # a start tag not yet complete
        self._fds: collections.deque[int] = collections.deque()
        self._payloads: collections.deque[tuple[str, Any]] = collections.deque()
        self._text: BlobText | None = None                # the BLOB text arriving

    @property
    def latest_serial(self) -> int:
        """Serial of the last frame (read under `cond`)."""
        return self._serial

    # ----- opening and closing -----
    def open(self) -> "BlobChannel":
        if self.shared:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: Any = "\0" + str(self.unix_path)   # indiserver's socket is abstract on Linux
        else:
            sock = socket.socket(socket.AF_INET6 if ":" in self.tcp[0] else socket.AF_INET,  # type: ignore[index]
                                 socket.SOCK_STREAM)
            address = self.tcp
        sock.settimeout(self.connect_timeout_s)
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            raise DeviceError(self.device, "opening the frame connection",
                              f"{self.where}: {exc.strerror or exc}") from None
        sock.settimeout(None)
        if not self.shared:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        dev = self.device.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
        prop = self.prop.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
        sock.sendall(f'<getProperties version="1.7" device="{dev}"/>\n'
                     f'<enableBLOB device="{dev}" name="{prop}">Also</enableBLOB>\n'.encode())
        self._sock = sock
        self.alive = True
        self._thread = threading.Thread(target=self._run, name=f"frames of {self.device}",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)
        if sock is not None:
            sock.close()

    # ----- reading -----
    def _run(self) -> None:
        chunk = bytearray(_CHUNK)
        view = memoryview(chunk)
        why = "the server closed the connection"
        try:
            while True:
                if self._text is not None:
                    if not self._receive_text(view):
                        break
                    continue
                n = self._receive(view)
                if n == 0:
                    break
                self._stream(chunk, 0, n)
        except OSError as exc:
            why = exc.strerror or str(exc)
        except Exception as exc:   # a bug here must end the channel, not hang the camera
            log.exception("%s: frame connection failed", self.device)
            why = repr(exc)
        finally:
            self._end(why)

    def _receive(self, view: memoryview) -> int:
        sock = self._sock
        if sock is None:
            return 0
        if not self.shared:
            return sock.recv_into(view)
        n, ancillary, _flags, _ = sock.recvmsg_into(
            [view], socket.CMSG_SPACE(_MAX_FDS * 4), getattr(socket, "MSG_CMSG_CLOEXEC", 0))
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
                self._fds.extend(fds)
        return n

    def _receive_text(self, view: memoryview) -> bool:
        """Receive and decode a BLOB's text until its end tag starts."""
        assert self._text is not None and self._sock is not None
        n = self._sock.recv_into(view)
        if n == 0:
            return False
        chunk = view.obj
        assert isinstance(chunk, bytearray)
        end = self._text.take(chunk, 0, n)
        if end < 0:
            return True
        self._payloads.append(("text", self._text))
        self._text = None
        self._stream(chunk, end, n)
        return True

    def _stream(self, buf: bytes | bytearray, pos: int = 0, stop: int | None = None) -> None:
        """Messages in buf[pos:stop] other than BLOB text go through the framer; a oneBLOB's
        text is decoded where it lies (never copied out of `buf`, which the next receive
        reuses) or stands for the descriptor that came with it."""
        stop = len(buf) if stop is None else stop
        if self._held:          # a tag cut at the end of the last piece
            buf, pos, stop = self._held + bytes(buf[pos:stop]), 0, len(self._held) + stop - pos
            self._held = b""
        while pos < stop:
            start = buf.find(b"<oneBLOB", pos, stop)
            if start < 0:
                # keep back a tag cut at the end, so "<oneBLOB" is never split
                last = buf.rfind(b"<", pos, stop)
                if last >= 0 and buf.find(b">", last, stop) < 0:
                    self._held, stop = bytes(buf[last:stop]), last
                self._feed(memoryview(buf)[pos:stop])
                return
            close = buf.find(b">", start, stop)
            if close < 0:
                self._feed(memoryview(buf)[pos:start])
                self._held = bytes(buf[start:stop])
                return
            tag = bytes(buf[start:close + 1])
            self._feed(memoryview(buf)[pos:close + 1])
            pos = close + 1
            attrs = _attrs(tag)
            if attrs.get("attached") == "true":
                self._payloads.append(("fd", self._fds.popleft() if self._fds else None))
                continue
            if tag.endswith(b"/>"):
                self._payloads.append(("text", b""))
                continue
            text = BlobText(self.device, attrs.get("format", ""), int(attrs.get("size") or 0))
            end = text.take(buf, pos, stop)
            if end >= 0:                       # the whole text came in this piece
                self._payloads.append(("text", text))
                pos = end
                continue
            self._text = text                  # the rest comes in the next pieces
            return

    def _feed(self, data: bytes | memoryview) -> None:
        if not data:
            return
        for raw in self._framer.feed(data):
            try:
                message = ET.fromstring(raw)
            except ET.ParseError as exc:
                log.warning("%s: unreadable message on the frame connection skipped (%s)",
                            self.device, exc)
                self._drop_payloads()
                continue
            self._message(message)

    def _drop_payloads(self) -> None:
        while self._payloads:
            kind, payload = self._payloads.popleft()
            if kind == "fd" and payload is not None:
                os.close(payload)

    def _message(self, message: ET.Element) -> None:
        if message.get("device") != self.device:
            self._drop_payloads()
            return
        name = message.get("name")
        if name == "CCD_EXPOSURE" and message.tag in ("setNumberVector", "defNumberVector"):
            with self.cond:
                self.exposure_updates += 1
            return
        if message.tag != "setBLOBVector":
            return
        received = time.perf_counter()
        for element in message.findall("oneBLOB"):
            kind, payload = self._payloads.popleft() if self._payloads else ("text", b"")
            if name != self.prop or int(element.get("size") or 0) == 0:
                if kind == "fd" and payload is not None:
                    os.close(payload)
                continue
            pixels, header, error, nbytes = self._decode(element, kind, payload)
            with self.cond:
                self._serial += 1
                self.latest = DecodedBlob(self.device, element.get("name", ""),
                                          element.get("format", ""), pixels, header, error,
                                          nbytes,
                                          received, time.perf_counter(), self._serial,
                                          self.exposure_updates)
                self.cond.notify_all()
        self._drop_payloads()

    def _decode(self, element: ET.Element, kind: str, payload: Any
                ) -> tuple[np.ndarray | None, Any, DeviceError | None, int]:
        fmt = element.get("format", "")
        size = int(element.get("size") or 0)
        try:
            if kind == "fd":
                if payload is None:
                    raise DeviceError(self.device, "reading the frame", "the server sent a "
                                      "shared frame without its memory")
                return self._decode_shared(payload, size, fmt)
            if not isinstance(payload, BlobText):      # a oneBLOB without its text
                raise DeviceError(self.device, "reading the frame", f"the frame is truncated: "
                                  f"0 of {size} bytes arrived")
            frame = payload.end()
            if fmt == ".fits" and frame.length < size:
                raise DeviceError(self.device, "reading the frame", f"the frame is truncated: "
                                  f"{frame.length} of {size} bytes arrived")
            pixels, header = frame.finish()
            return pixels, header, None, frame.length
        except DeviceError as exc:
            return None, None, exc, 0
        except (ValueError, TypeError) as exc:
            return None, None, DeviceError(self.device, "reading the frame",
                                           f"the frame's base64 text is damaged ({exc})"), 0

    def _decode_shared(self, fd: int, size: int, fmt: str
                       ) -> tuple[np.ndarray | None, Any, DeviceError | None, int]:
        try:
            length = os.fstat(fd).st_size
            if length < size:
                raise DeviceError(self.device, "reading the frame", f"the shared frame holds "
                                  f"{length} of {size} bytes")
            with mmap.mmap(fd, length, prot=mmap.PROT_READ) as shared:
                view = memoryview(shared)[:size or length]
                try:
                    # a new array and header, nothing that refers to the mapping
                    pixels, header = decode_fits(view, self.device, fmt)
                finally:
                    view.release()
            return pixels, header, None, size or length
        finally:
            os.close(fd)

    def _end(self, why: str) -> None:
        self._text = None
        while self._fds:
            os.close(self._fds.popleft())
        self._drop_payloads()
        with self.cond:
            self.alive = False
            self.ended_because = why
            self.cond.notify_all()
