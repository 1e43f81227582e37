"""A small INDI driver protocol layer: property vectors, XML in from stdin, XML out to stdout.

indiserver hands a driver one socket as both stdin and stdout. Every message is written whole
under a lock with stdout in blocking mode (a non-blocking write would truncate large BLOBs, and
chunked writes from two threads would interleave), EAGAIN is waited out, and the driver exits
when stdin closes, that is when indiserver goes away."""

from __future__ import annotations

import array
import base64
import os
import select
import socket
import sys
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterator
from xml.sax.saxutils import escape, quoteattr

from indical.xml_stream import ElementFramer

PROTOCOL_VERSION = "1.7"

IDLE, OK, BUSY, ALERT = "Idle", "Ok", "Busy", "Alert"


def _timestamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def _attrs(**values: object) -> str:
    return "".join(f" {k}={quoteattr(str(v))}" for k, v in values.items() if v is not None)


@dataclass
class Element:
    """One member of a vector. `value` is a float (number), bool (switch), str (text), a state
    string (light) or bytes (BLOB)."""

    name: str
    label: str
    value: float | bool | str | bytes
    min: float = 0.0
    max: float = 0.0
    step: float = 0.0
    format: str = "%g"
    blob_format: str = ".fits"
    blob_size: int = 0              # size announced for a BLOB when not its length (compressed)


@dataclass
class Vector:
    """A property: a named vector of elements of one kind."""

    kind: str                       # "Number", "Switch", "Text", "Light", "BLOB"
    name: str
    label: str
    group: str
    elements: list[Element]
    perm: str = "rw"
    state: str = IDLE
    rule: str = "OneOfMany"         # switches only
    timeout: float = 60.0
    device: str = ""
    defined: bool = field(default=False, repr=False)

    def __getitem__(self, name: str) -> Element:
        for e in self.elements:
            if e.name == name:
                return e
        raise KeyError(f"{self.name} has no element {name}")

    def values(self) -> dict[str, float | bool | str | bytes]:
        return {e.name: e.value for e in self.elements}

    def on_switch(self) -> str | None:
        """Name of the first switch that is on (switch vectors)."""
        return next((e.name for e in self.elements if e.value is True), None)

    def _element_xml(self, e: Element, define: bool) -> str:
        tag = ("def" if define else "one") + self.kind
        if self.kind == "Number":
            extra = _attrs(name=e.name, label=e.label if define else None,
                           format=e.format if define else None,
                           min=repr(float(e.min)) if define else None,
                           max=repr(float(e.max)) if define else None,
                           step=repr(float(e.step)) if define else None)
            return f"<{tag}{extra}>{float(e.value)!r}</{tag}>"
        if self.kind == "Switch":
            text = "On" if e.value else "Off"
        elif self.kind == "BLOB":
            if define:
                return f"<defBLOB{_attrs(name=e.name, label=e.label)}/>"
            # set messages with BLOBs are built as bytes by set_bytes()
            return ""
        else:
            text = str(e.value)
        return f"<{tag}{_attrs(name=e.name, label=e.label if define else None)}>{escape(text)}</{tag}>"

    def def_xml(self) -> str:
        head = _attrs(device=self.device, name=self.name, label=self.label, group=self.group,
                      state=self.state, perm=None if self.kind == "Light" else self.perm,
                      rule=self.rule if self.kind == "Switch" else None,
                      timeout=None if self.kind == "Light" else f"{self.timeout:g}",
                      timestamp=_timestamp())
        body = "".join(self._element_xml(e, True) for e in self.elements)
        return f"<def{self.kind}Vector{head}>{body}</def{self.kind}Vector>\n"

    def set_bytes(self, message: str | None = None, only: list[str] | None = None) -> bytes:
        """The set message as bytes. BLOBs go straight from base64 into the message: for a
        16 MB frame, building it through str costs several copies and ~0.1 s."""
        if self.kind != "BLOB":
            return self.set_xml(message, only).encode("utf-8")
        head = _attrs(device=self.device, name=self.name, state=self.state,
                      timeout=f"{self.timeout:g}", timestamp=_timestamp(), message=message)
        parts = [f"<setBLOBVector{head}>".encode("utf-8")]
        for e in self.elements:
            if only is not None and e.name not in only:
                continue
            data = e.value if isinstance(e.value, bytes) else b""
            size = e.blob_size or len(data)
            parts += [f"<oneBLOB{_attrs(name=e.name, size=size, format=e.blob_format)}>"
                      .encode("utf-8"), base64.b64encode(data), b"</oneBLOB>"]
        parts.append(b"</setBLOBVector>\n")
        return b"".join(parts)

    def set_xml(self, message: str | None = None, only: list[str] | None = None) -> str:
        head = _attrs(device=self.device, name=self.name, state=self.state,
                      timeout=None if self.kind == "Light" else f"{self.timeout:g}",
                      timestamp=_timestamp(), message=message)
        elements = [e for e in self.elements if only is None or e.name in only]
        body = "".join(self._element_xml(e, False) for e in elements)
        return f"<set{self.kind}Vector{head}>{body}</set{self.kind}Vector>\n"


def number(name: str, label: str, group: str, elements: list[tuple[str, str, float, float, float, float]],
           *, perm: str = "rw", fmt: str = "%g") -> Vector:
    """A number vector from (name, label, value, min, max, step) tuples."""
    return Vector("Number", name, label, group,
                  [Element(n, lab, float(v), lo, hi, st, fmt) for n, lab, v, lo, hi, st in elements],
                  perm=perm)


def switch(name: str, label: str, group: str, elements: list[tuple[str, str, bool]], *,
           rule: str = "OneOfMany", perm: str = "rw") -> Vector:
    return Vector("Switch", name, label, group, [Element(n, lab, v) for n, lab, v in elements],
                  perm=perm, rule=rule)


def text(name: str, label: str, group: str, elements: list[tuple[str, str, str]], *,
         perm: str = "rw") -> Vector:
    return Vector("Text", name, label, group, [Element(n, lab, v) for n, lab, v in elements],
                  perm=perm)


def blob(name: str, label: str, group: str, elements: list[tuple[str, str]]) -> Vector:
    return Vector("BLOB", name, label, group, [Element(n, lab, b"") for n, lab in elements],
                  perm="ro")


def _unix_socket(fd: int) -> socket.socket | None:
    """A socket object for `fd` when it is a Unix stream socket (indiserver 1.9.5 and later
    run local drivers over one), else None (a pipe: older servers)."""
    copy = os.dup(fd)
    try:
        probe = socket.socket(fileno=copy)
    except OSError:
        os.close(copy)
        return None
    if probe.family == socket.AF_UNIX and probe.type == socket.SOCK_STREAM:
        return probe
    probe.close()
    return None


class Output:
    """Whole-message writes to a file descriptor, under a lock, in blocking mode. Where the
    descriptor is indiserver's Unix socket, a message can carry file descriptors (shared
    frames, see `write_attached`)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lock = threading.Lock()
        self.closed = False
        self._unix = _unix_socket(fd)

    @property
    def can_attach(self) -> bool:
        return self._unix is not None

    def write_attached(self, data: bytes, fds: list[int]) -> None:
        """Write one message with `fds` passed along (SCM_RIGHTS), as indiserver expects the
        buffers of BLOBs marked attached="true": with the message's first bytes."""
        assert self._unix is not None
        with self.lock:
            if self.closed:
                return
            try:
                os.set_blocking(self.fd, True)
                sent = self._unix.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                     array.array("i", fds))])
                rest = memoryview(data)[sent:]
                while rest:
                    rest = rest[os.write(self.fd, rest):]
            except (BrokenPipeError, ConnectionResetError, OSError):
                self.closed = True

    def write(self, text: str | bytes) -> None:
        data = memoryview(text.encode("utf-8") if isinstance(text, str) else text)
        with self.lock:
            if self.closed:
                return
            try:
                os.set_blocking(self.fd, True)
                while data:
                    try:
                        n = os.write(self.fd, data)
                    except BlockingIOError:
                        select.select([], [self.fd], [], 1.0)
                        continue
                    data = data[n:]
            except (BrokenPipeError, ConnectionResetError, OSError):
                # indiserver went away: the reader sees end-of-file and ends the driver
                self.closed = True


@dataclass
class Incoming:
    """A message from indiserver: the tag, its attributes and (name -> text) of its children."""

    tag: str
    attrs: dict[str, str]
    members: dict[str, str]
    member_attrs: dict[str, dict[str, str]]


def parse_stream(chunks: Callable[[], bytes]) -> Iterator[Incoming]:
    """Messages from a stream of XML elements that has no root element, each as soon as its
    last byte has arrived (see indical/xml_stream.py for why a pull parser alone is not enough)."""
    framer = ElementFramer()
    while True:
        data = chunks()
        if not data:
            return
        for raw in framer.feed(data):
            try:
                elem = ET.fromstring(raw)
            except ET.ParseError as exc:  # one broken message must not end the driver
                print(f"unreadable INDI message skipped ({exc}): {raw[:120]!r}", file=sys.stderr)
                continue
            members = {c.get("name", ""): (c.text or "").strip() for c in elem}
            member_attrs = {c.get("name", ""): dict(c.attrib) for c in elem}
            yield Incoming(elem.tag, dict(elem.attrib), members, member_attrs)


class DriverBase:
    """One INDI device: defines its properties on request, answers new* messages, snoops others.

    Subclasses fill `self.props` and implement `on_new(vector, values)`; snooped messages go to
    `on_snoop(message)`. Handlers run on the reader thread; long work belongs on other threads,
    which may call `update()` and `message()` at any time."""

    def __init__(self, device: str, *, out_fd: int = 1, in_fd: int = 0) -> None:
        self.device = device
        self.props: dict[str, Vector] = {}
        self.out = Output(out_fd)
        self.in_fd = in_fd
        self.lock = threading.RLock()
        self.stopping = threading.Event()

    # -- defining and updating --
    def add(self, vector: Vector) -> Vector:
        vector.device = self.device
        self.props[vector.name] = vector
        return vector

    def define(self, vector: Vector) -> None:
        vector.defined = True
        self.out.write(vector.def_xml())

    def delete(self, name: str) -> None:
        vector = self.props.get(name)
        if vector is not None:
            vector.defined = False
        self.out.write(f"<delProperty{_attrs(device=self.device, name=name, timestamp=_timestamp())}/>\n")

    def update(self, vector: Vector, *, state: str | None = None, message: str | None = None,
               only: list[str] | None = None) -> None:
        if state is not None:
            vector.state = state
        if vector.defined:
            self.out.write(vector.set_bytes(message, only))

    def update_attached(self, vector: Vector, element: str, fd: int, size: int,
                        blob_format: str, *, state: str | None = None) -> None:
        """Send a BLOB as shared memory: `fd` (a memfd holding `size` bytes) goes with the
        message and indiserver hands it on (to a Unix-socket client) or base64-encodes it
        (to a TCP client). Only where `self.out.can_attach`."""
        if state is not None:
            vector.state = state
        if not vector.defined:
            return
        head = _attrs(device=self.device, name=vector.name, state=vector.state,
                      timeout=f"{vector.timeout:g}", timestamp=_timestamp())
        blob_attrs = _attrs(name=element, size=size, format=blob_format, attached="true")
        self.out.write_attached(f"<setBLOBVector{head}><oneBLOB{blob_attrs}/>"
                                "</setBLOBVector>\n".encode("utf-8"), [fd])

    def message(self, text_: str) -> None:
        self.out.write(f"<message{_attrs(device=self.device, timestamp=_timestamp(), message=text_)}/>\n")

    def snoop(self, device: str, name: str | None = None) -> None:
        self.out.write(f"<getProperties{_attrs(version=PROTOCOL_VERSION, device=device, name=name)}/>\n")

    # -- hooks --
    def on_new(self, vector: Vector, values: dict[str, str]) -> None:
        """A client asked to change `vector`; `values` are the raw texts per element."""

    def on_snoop(self, msg: Incoming) -> None:
        """A def/set/del message from another device this driver snoops."""

    def on_start(self) -> None:
        """Called once before reading starts (send snoop requests here)."""

    # -- the loop --
    def _read(self) -> bytes:
        try:
            return os.read(self.in_fd, 1 << 16)
        except InterruptedError:
            return self._read()
        except OSError:
            return b""

    def _handle(self, msg: Incoming) -> None:
        tag = msg.tag
        device = msg.attrs.get("device")
        if tag == "getProperties":
            if device in (None, self.device):
                name = msg.attrs.get("name")
                with self.lock:
                    for vector in list(self.props.values()):
                        if vector.defined and (name is None or name == vector.name):
                            self.out.write(vector.def_xml())
            return
        if tag.startswith("new") and device == self.device:
            with self.lock:
                vector = self.props.get(msg.attrs.get("name", ""))
                if vector is None or not vector.defined or vector.perm == "ro":
                    return
                self.on_new(vector, msg.members)
            return
        if device != self.device and (tag.startswith(("def", "set")) or tag == "delProperty"):
            self.on_snoop(msg)

    def run(self) -> None:
        """Read and handle messages until indiserver closes stdin."""
        os.set_blocking(self.in_fd, True)
        self.on_start()
        try:
            for msg in parse_stream(self._read):
                try:
                    self._handle(msg)
                except Exception as exc:  # one bad message must not end the driver
                    print(f"{self.device}: error handling {msg.tag}: {exc!r}", file=sys.stderr)
        except ET.ParseError as exc:
            print(f"{self.device}: unreadable input from indiserver ({exc}); exiting",
                  file=sys.stderr)
        finally:
            self.stopping.set()
            self.out.closed = True


def parse_number(text_: str) -> float:
    """INDI numbers may be sexagesimal ("12:30:00"); drivers here take plain decimals too."""
    text_ = text_.strip()
    if ":" in text_:
        sign = -1.0 if text_.startswith("-") else 1.0
        parts = [abs(float(p)) for p in text_.lstrip("+-").split(":")]
        return sign * sum(p / 60 ** i for i, p in enumerate(parts))
    return float(text_)
