"""What runs on pyindi-client's own thread: the callbacks, which only copy what arrived into
plain Python values and hand it to the connection. An exception escaping a callback aborts the
whole process, so each one is guarded."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import PyIndi

_STATES = {PyIndi.IPS_IDLE: "Idle", PyIndi.IPS_OK: "Ok", PyIndi.IPS_BUSY: "Busy",
           PyIndi.IPS_ALERT: "Alert"}


@dataclass(frozen=True)
class Prop:
    """A copy of one INDI property as last announced: values per element, and number ranges."""

    device: str
    name: str
    kind: str                     # "number", "switch", "text", "light", "blob"
    state: str                    # "Idle", "Ok", "Busy", "Alert"
    values: dict[str, Any]
    ranges: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    serial: int = 0               # increases with every update of any property

    def on(self) -> list[str]:
        """Names of the switches that are on."""
        return [k for k, v in self.values.items() if v is True]


def copy_property(p: Any) -> tuple[str, str, str, str, dict[str, Any],
                                   dict[str, tuple[float, float, float]]] | None:
    """Plain Python copies of a pyindi property. None for a property of an unknown kind.
    BLOB properties carry no data here (this connection asks for none; frames come over the
    camera's own connection, blob_channel.py): their values are the lengths announced."""
    kind_code = p.getType()
    device, name = p.getDeviceName(), p.getName()
    state = _STATES.get(p.getState(), "Idle")
    values: dict[str, Any] = {}
    ranges: dict[str, tuple[float, float, float]] = {}
    if kind_code == PyIndi.INDI_NUMBER:
        kind = "number"
        for w in PyIndi.PropertyNumber(p):
            values[w.getName()] = float(w.getValue())
            ranges[w.getName()] = (float(w.getMin()), float(w.getMax()), float(w.getStep()))
    elif kind_code == PyIndi.INDI_SWITCH:
        kind = "switch"
        for w in PyIndi.PropertySwitch(p):
            values[w.getName()] = w.getState() == PyIndi.ISS_ON
    elif kind_code == PyIndi.INDI_TEXT:
        kind = "text"
        for w in PyIndi.PropertyText(p):
            values[w.getName()] = w.getText() or ""
    elif kind_code == PyIndi.INDI_LIGHT:
        kind = "light"
        for w in PyIndi.PropertyLight(p):
            values[w.getName()] = _STATES.get(w.getState(), "Idle")
    elif kind_code == PyIndi.INDI_BLOB:
        kind = "blob"
        for w in PyIndi.PropertyBlob(p):
            values[w.getName()] = int(w.getBlobLen())
    else:
        return None
    return device, name, kind, state, values, ranges


class CallbackOwner(Protocol):
    """What the callbacks hand over to (the IndiConnection, which imports this module)."""

    def _callback_failed(self, what: str, exc: BaseException) -> None: ...
    def _device_added(self, name: str) -> None: ...
    def _device_removed(self, name: str) -> None: ...
    def _property(self, p: Any) -> None: ...
    def _property_removed(self, device: str, name: str) -> None: ...
    def _message(self, device: str, text: str) -> None: ...
    def _server_up(self) -> None: ...
    def _server_down(self, code: int) -> None: ...


class CallbackClient(PyIndi.BaseClient):
    """Callbacks only copy and hand over to the owning IndiConnection; nothing may escape them."""

    def __init__(self, owner: CallbackOwner) -> None:
        super().__init__()
        self.owner = owner

    def _guard(self, what: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as exc:  # an exception escaping here aborts the process
            try:
                self.owner._callback_failed(what, exc)
            except BaseException:
                pass

    def newDevice(self, d):
        self._guard("newDevice", lambda: self.owner._device_added(d.getDeviceName()))

    def removeDevice(self, d):
        self._guard("removeDevice", lambda: self.owner._device_removed(d.getDeviceName()))

    def newProperty(self, p):
        self._guard("newProperty", lambda: self.owner._property(p))

    def updateProperty(self, p):
        self._guard("updateProperty", lambda: self.owner._property(p))

    def removeProperty(self, p):
        self._guard("removeProperty",
                    lambda: self.owner._property_removed(p.getDeviceName(), p.getName()))

    def newMessage(self, d, m):
        self._guard("newMessage", lambda: self.owner._message(d.getDeviceName(),
                                                              d.messageQueue(m)))

    def serverConnected(self):
        self._guard("serverConnected", lambda: self.owner._server_up())

    def serverDisconnected(self, code):
        self._guard("serverDisconnected", lambda: self.owner._server_down(code))


def _sockets() -> dict[int, str]:
    """This process's TCP sockets: file descriptor -> inode link ('socket:[123]')."""
    found: dict[int, str] = {}
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return found  # no /proc
    for name in names:
        try:
            link = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if link.startswith("socket:"):
            found[int(name)] = link
    return found


def new_socket_to(port: int, before: dict[int, str]) -> tuple[int, str] | None:
    """The TCP socket to `port` that appeared since `before` was taken (the one the client
    library just opened): (fd, inode link), or None where /proc can't tell."""
    for fd, link in _sockets().items():
        if before.get(fd) == link:
            continue
        try:
            with socket.socket(fileno=os.dup(fd)) as s:
                if s.type == socket.SOCK_STREAM and s.family in (socket.AF_INET, socket.AF_INET6) \
                        and s.getpeername()[1] == port:
                    return fd, link
        except (OSError, ValueError):
            continue
    return None


def socket_open(fd: int, link: str) -> bool:
    """True while descriptor `fd` still refers to the socket `link`."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == link
    except OSError:
        return False


def no_delay(fd: int) -> None:
    """Turn off Nagle's algorithm on the client library's socket.

    The client library writes a command in several small pieces; with Nagle on, the later pieces
    wait for the server's delayed acknowledgement, about 40 ms per command on Linux."""
    try:
        with socket.socket(fileno=os.dup(fd)) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


def shut(fd: int) -> None:
    """Shut the client library's socket down, so its reader thread sees the end of the stream,
    reports the server gone and ends on its own (see IndiConnection.close)."""
    try:
        with socket.socket(fileno=os.dup(fd)) as s:
            s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
