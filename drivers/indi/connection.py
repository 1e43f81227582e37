"""One connection to an indiserver, shared by every adapter on that server.

pyindi-client calls back on its own C++ thread, and an exception escaping a callback aborts the
whole process, so each callback is guarded and only copies what arrived (property values, BLOB
bytes) into plain Python snapshots under a condition variable. Adapters read the snapshots and
wait on the condition, always with a timeout. When the server goes away, waits end at once with
ServerLost; the next call reconnects (disconnect first, then connect, re-enable BLOBs) and the
adapters set their devices up again because the connection's generation changed.

The server is shared with other clients (the imaging program): before the first change of a
property through this connection its values are kept, and `close()` puts every such property
back as it was (see decision 020). Closing ends the library's reader thread before returning, so
no thread calls into Python while the interpreter shuts down."""

from __future__ import annotations

import atexit
import collections
import logging
import socket
import threading
import time
import weakref
from typing import Any, Callable, TypeVar

import PyIndi

from indical.drivers.indi.client import (CallbackClient, Prop, copy_property, new_socket_to,
                                         no_delay, shut, socket_open, _sockets)
from indical.errors import DeviceError, DeviceNotFound, DeviceTimeout

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Properties that are actions, or whose end state the sequence decides (the light ends off, the
#: cover where the sequence leaves it): never put back.
NOT_RESTORED = frozenset({"CCD_EXPOSURE", "CCD_ABORT_EXPOSURE", "CAP_PARK", "CAP_ABORT",
                          "FLAT_LIGHT_CONTROL", "FILTER_ABORT_MOTION"})
#: Properties that stay Busy while the hardware gets there (a cooler): wait only for the answer.
_ANSWER_ONLY = frozenset({"CCD_TEMPERATURE"})
#: Put back where the driver lets it: some light boxes take a brightness only with the light
#: on, and the light ends off.
_BEST_EFFORT = frozenset({"FLAT_LIGHT_INTENSITY"})
#: How long the reader thread gets to end after its socket is shut down.
_READER_END_S = 2.0

_open_connections: "weakref.WeakSet[IndiConnection]" = weakref.WeakSet()


class ServerLost(DeviceError):
    """The indiserver connection dropped while waiting for a device."""


def parse_server(text: str) -> tuple[str, int]:
    """'host:port' (or 'host', default port 7624) -> (host, port). Raises ValueError."""
    text = text.strip()
    if ":" in text:
        host, _, port = text.rpartition(":")
    else:
        host, port = text, "7624"
    host = host.strip("[]")     # [::1]:7624
    if not host:
        raise ValueError("no host")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"port {port!r} is not a number") from None
    if not 0 < number < 65536:
        raise ValueError(f"port {number} is outside 1-65535")
    return host, number


class IndiConnection:
    """A client connection to one indiserver, with property snapshots and bounded waits."""

    def __init__(self, host: str, port: int, *, connect_timeout_s: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.address = f"{host}:{port}"
        self.connect_timeout_s = connect_timeout_s
        self.cond = threading.Condition()
        self._send_lock = threading.Lock()
        self.props: dict[tuple[str, str], Prop] = {}
        self.devices: dict[str, int] = {}          # name -> generation it appeared in
        self._defined_at: dict[str, float] = {}    # device -> when it last defined a property
        self.messages: collections.deque[tuple[str, str]] = collections.deque(maxlen=100)
        self.callback_errors: list[str] = []
        self.connected = False
        self.generation = 0                        # +1 on every (re)connect
        self._device_generation = 0
        self._serial = 0
        self._closed = False
        self._socket: tuple[int, str] | None = None   # the library's socket: fd, inode link
        #: values of each shared property before this connection first changed it, in order
        self.originals: dict[tuple[str, str], Prop] = {}
        #: the cameras' frame connections (blob_channel.py), closed with this one
        self.channels: list[Any] = []
        self.client = CallbackClient(self)
        self.client.setServer(host, port)
        _open_connections.add(self)

    # ----- callbacks (C++ thread; guarded by _Client) -----
    def _callback_failed(self, what: str, exc: BaseException) -> None:
        with self.cond:
            self.callback_errors.append(f"{what}: {exc!r}")
            del self.callback_errors[:-20]

    def _device_added(self, name: str) -> None:
        with self.cond:
            self._device_generation += 1
            self.devices[name] = self._device_generation
            self.cond.notify_all()

    def _device_removed(self, name: str) -> None:
        with self.cond:
            self.devices.pop(name, None)
            for key in [k for k in self.props if k[0] == name]:
                del self.props[key]
            self.cond.notify_all()

    def _property_removed(self, device: str, name: str) -> None:
        with self.cond:
            self.props.pop((device, name), None)
            self.cond.notify_all()

    def _message(self, device: str, text: str) -> None:
        with self.cond:
            self.messages.append((device, text))

    def _server_up(self) -> None:
        with self.cond:
            self.connected = True
            self.cond.notify_all()

    def _server_down(self, code: int) -> None:
        with self.cond:
            self.connected = False
            self.devices.clear()
            self.props.clear()
            self.cond.notify_all()

    def _property(self, p: Any) -> None:
        copied = copy_property(p)
        if copied is None:
            return
        device, name, kind, state, values, ranges = copied
        with self.cond:
            self._serial += 1
            if (device, name) not in self.props:
                self._defined_at[device] = time.monotonic()
            self.props[(device, name)] = Prop(device, name, kind, state, values, ranges,
                                              self._serial)
            self.cond.notify_all()

    # ----- connecting -----
    def connect(self) -> None:
        """Connect (or reconnect) to the server. A refused connection fails at once; a server
        that doesn't answer fails after `connect_timeout_s`. No retries: a command that finds
        the server down says so in well under a second."""
        try:
            socket.create_connection((self.host, self.port),
                                     timeout=self.connect_timeout_s).close()
        except ConnectionRefusedError:
            raise self._unreachable("connection refused") from None
        except socket.timeout:
            raise self._unreachable(f"no answer within {self.connect_timeout_s:g} s") from None
        except OSError as exc:
            raise self._unreachable(exc.strerror or str(exc)) from None
        with self._send_lock:
            if self.generation > 0:
                # after a loss the library may still think it is connected
                self._stop_reader()
            with self.cond:
                self.connected = False
                self.devices.clear()
                self.props.clear()
            self.client.setServer(self.host, self.port)
            before = _sockets()
            if not self.client.connectServer():
                raise self._unreachable("the client library could not connect")
            self._socket = new_socket_to(self.port, before)
        if self._socket is not None:
            no_delay(self._socket[0])
        with self.cond:
            self.generation += 1
            self.connected = True
            self.cond.notify_all()

    def _unreachable(self, reason: str) -> DeviceError:
        return DeviceError(f"indiserver {self.address}", "connecting", reason,
                           "is indiserver running there, and is the address right?")

    def ensure_connected(self) -> None:
        """Reconnect when the server was lost (one attempt: it fails fast when it is down)."""
        if self._closed:
            raise DeviceError(f"indiserver {self.address}", "using the connection",
                              "the connection was closed")
        with self.cond:
            if self.connected:
                return
        self.connect()

    def close(self) -> list[str]:
        """Put back what this connection changed, then disconnect. Returns what could not be
        put back (also logged)."""
        if self._closed:
            return []
        problems = self.restore()
        self._closed = True
        for channel in self.channels:
            channel.close()
        self.channels.clear()
        with self.cond:
            self.connected = False
            self.cond.notify_all()
        with self._send_lock:
            self._stop_reader()
        _open_connections.discard(self)
        return problems

    def _stop_reader(self) -> None:
        """End the library's reader thread and wait until it has.

        The library's own disconnect holds the interpreter lock while it waits (2 s at most)
        for its reader thread, and that thread may itself be waiting for the lock to deliver a
        callback: the wait then always runs to its limit, and the thread, still waiting, may
        call into Python while the interpreter shuts down. That aborts the process ("terminate
        called without an active exception", exit status 134). So the socket is shut down
        first: the reader sees the end of the stream, reports the server gone and ends by
        itself while this thread waits without the lock; the library's disconnect then finds
        nothing left to wait for."""
        sock, self._socket = self._socket, None
        if sock is not None and socket_open(*sock):
            shut(sock[0])
            deadline = time.monotonic() + _READER_END_S
            with self.cond:
                while socket_open(*sock) and time.monotonic() < deadline:
                    self.cond.wait(0.005)
        if self.generation > 0:
            try:
                self.client.disconnectServer()
            except Exception:
                pass

    # ----- putting back what was changed -----
    def _remember(self, device: str, name: str) -> None:
        """Keep a property's values before this connection first changes it."""
        key = (device, name)
        if name in NOT_RESTORED or key in self.originals:
            return
        with self.cond:
            p = self.props.get(key)
        if p is not None:
            self.originals[key] = p

    def changed(self) -> list[tuple[str, str]]:
        """(device, property) of every shared property changed through this connection and not
        yet put back."""
        out = []
        for key, old in self.originals.items():
            now = self.prop(*key)
            if now is None or any(now.values.get(k) != v for k, v in old.values.items()):
                out.append(key)
        return out

    def restore(self, *, timeout_s: float = 10.0) -> list[str]:
        """Put every shared property this connection changed back as it was, newest change
        first, and a device this connection connected disconnected last. Returns problems."""
        if not self.originals:
            return []
        problems: list[str] = []
        try:
            self.ensure_connected()
        except DeviceError as exc:
            names = ", ".join(f"{d}.{n}" for d, n in self.originals)
            problems.append(f"could not put back {names}: {exc}")
        else:
            newest_first = list(reversed(self.originals.items()))
            # a device this connection connected is disconnected after its settings are back
            newest_first.sort(key=lambda item: item[0][1] == "CONNECTION")
            for (device, name), old in newest_first:
                try:
                    self._put_back(device, name, old, timeout_s)
                except DeviceError as exc:
                    if name not in _BEST_EFFORT:
                        problems.append(f"could not put back {device}.{name}: {exc}")
                        continue
                    log.info("%s.%s left as it is: %s", device, name, exc)
                del self.originals[(device, name)]
        for problem in problems:
            log.warning("%s", problem)
        return problems

    def _put_back(self, device: str, name: str, old: Prop, timeout_s: float) -> None:
        now = self.prop(device, name)
        if now is None:
            raise DeviceError(device, f"putting back {name}", "the property is gone")
        if all(now.values.get(k) == v for k, v in old.values.items()):
            return
        if old.kind == "switch":
            serial = self.send_switches(device, name, old.values, remember=False)
        elif old.kind == "number":
            serial = self.send_number(device, name, old.values, remember=False)
        elif old.kind == "text":
            serial = self.send_text(device, name, old.values, remember=False)
        else:
            return
        self.settled(device, name, serial, timeout_s=timeout_s, action=f"putting back {name}",
                     answer_only=name in _ANSWER_ONLY)

    def settled(self, device: str, name: str, serial: int, *, timeout_s: float, action: str,
                answer_only: bool = False) -> Prop:
        """Wait until `name` is updated after `serial` and not Busy. Raises DeviceError when the
        driver answers Alert."""
        def check() -> Prop | None:
            p = self.props.get((device, name))
            if p is None or p.serial <= serial:
                return None
            if p.state == "Alert":
                raise DeviceError(device, action, "the driver reported a failure",
                                  self.last_message(device) or "see the driver's log")
            return p if answer_only or p.state != "Busy" else None
        return self.wait_for(check, timeout_s=timeout_s, device=device, action=action)

    # ----- reading -----
    def props_serial(self) -> int:
        """Serial of the last update of any property (call under `cond`)."""
        return self._serial

    def prop(self, device: str, name: str) -> Prop | None:
        with self.cond:
            return self.props.get((device, name))

    def wait_for(self, check: Callable[[], T | None], *, timeout_s: float, device: str,
                 action: str, hint: str = "") -> T:
        """Wait until `check()` (called under the lock) returns something truthy.

        Raises ServerLost as soon as the server goes away, DeviceTimeout naming the device
        after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            generation = self.generation
            while True:
                if not self.connected or self.generation != generation:
                    raise ServerLost(device, action, f"lost the connection to indiserver "
                                     f"{self.address}", "the next command reconnects when it "
                                     "is back")
                result = check()
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DeviceTimeout(device, action, timeout_s, hint)
                self.cond.wait(min(remaining, 0.5))

    def wait_device(self, device: str, *, timeout_s: float) -> int:
        """Wait until `device` is on the server; returns its generation. Raises DeviceNotFound
        listing the devices that are there."""
        self.ensure_connected()
        try:
            return self.wait_for(lambda: self.devices.get(device), timeout_s=timeout_s,
                                 device=device, action="waiting for the device")
        except DeviceTimeout:
            with self.cond:
                there = list(self.devices)
            raise DeviceNotFound(device, f"indiserver {self.address}", there) from None

    def wait_defined(self, device: str, *, quiet_s: float = 0.1, timeout_s: float = 2.0) -> None:
        """Wait until `device` has defined no new property for `quiet_s` (INDI marks no end of
        a device's definitions; a setting read before its property arrived would be missed)."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while True:
                now = time.monotonic()
                since = now - self._defined_at.get(device, 0.0)
                if since >= quiet_s or now >= deadline:
                    return
                self.cond.wait(min(quiet_s - since, deadline - now))

    def wait_prop(self, device: str, name: str, *, timeout_s: float) -> Prop:
        return self.wait_for(lambda: self.props.get((device, name)), timeout_s=timeout_s,
                             device=device, action=f"waiting for property {name}",
                             hint="is this the right kind of device?")

    def last_message(self, device: str) -> str:
        with self.cond:
            for dev, text in reversed(self.messages):
                if dev == device:
                    return text
        return ""

    # ----- sending -----
    def _vector(self, device: str, name: str, getter: str) -> Any:
        dev = self.client.getDevice(device)
        if dev is None or not dev.isValid():
            raise DeviceError(device, f"setting {name}", "the device is not on the server now")
        vector = getattr(dev, getter)(name)
        if vector is None or not vector.isValid():
            raise DeviceError(device, f"setting {name}", "the device has no such property")
        return vector

    def send_number(self, device: str, name: str, values: dict[str, float], *,
                    remember: bool = True) -> int:
        """Send new values for some elements of a number property; returns the serial that
        updates after this one will exceed."""
        if remember:
            self._remember(device, name)
        with self._send_lock:
            vector = self._vector(device, name, "getNumber")
            for key, value in values.items():
                w = vector.findWidgetByName(key)
                if w is None:
                    raise DeviceError(device, f"setting {name}", f"no element {key}")
                w.setValue(float(value))
            serial = self._serial
            self.client.sendNewNumber(vector)
        return serial

    def send_switch(self, device: str, name: str, on: str, *, remember: bool = True) -> int:
        """Turn one switch of a property on (and, for one-of-many rules, the others off)."""
        with self._send_lock:
            vector = self._vector(device, name, "getSwitch")
            if vector.findWidgetByName(on) is None:
                raise DeviceError(device, f"setting {name}", f"no switch {on}")
        return self.send_switches(device, name, {on: True}, remember=remember)

    def send_switches(self, device: str, name: str, states: dict[str, bool], *,
                      remember: bool = True) -> int:
        """Set the switches of a property: those named true on, every other off."""
        if remember:
            self._remember(device, name)
        with self._send_lock:
            vector = self._vector(device, name, "getSwitch")
            for w in PyIndi.PropertySwitch(vector):
                w.setState(PyIndi.ISS_ON if states.get(w.getName()) else PyIndi.ISS_OFF)
            serial = self._serial
            self.client.sendNewSwitch(vector)
        return serial

    def send_text(self, device: str, name: str, values: dict[str, str], *,
                  remember: bool = True) -> int:
        if remember:
            self._remember(device, name)
        with self._send_lock:
            vector = self._vector(device, name, "getText")
            for key, value in values.items():
                w = vector.findWidgetByName(key)
                if w is None:
                    raise DeviceError(device, f"setting {name}", f"no element {key}")
                w.setText(value)
            serial = self._serial
            self.client.sendNewText(vector)
        return serial

    def add_channel(self, channel: Any) -> None:
        """A frame connection to close with this connection."""
        self.channels.append(channel)

    def drop_channel(self, channel: Any) -> None:
        channel.close()
        if channel in self.channels:
            self.channels.remove(channel)

    def connect_device(self, device: str, *, timeout_s: float) -> None:
        """Switch the driver's CONNECTION on when it has one and is off; wait until it is on."""
        # the device appears with its first property; CONNECTION follows a moment later
        try:
            conn = self.wait_for(lambda: self.props.get((device, "CONNECTION")),
                                 timeout_s=min(timeout_s, 3.0), device=device,
                                 action="waiting for CONNECTION")
        except DeviceTimeout:
            return  # a driver without CONNECTION is always connected
        if conn.values.get("CONNECT"):
            return
        self.send_switch(device, "CONNECTION", "CONNECT")
        self.wait_for(lambda: (p := self.props.get((device, "CONNECTION"))) is not None
                      and p.values.get("CONNECT") and p.state != "Busy",
                      timeout_s=timeout_s, device=device, action="connecting the device",
                      hint="check the driver's log; is the hardware plugged in?")
        p = self.prop(device, "CONNECTION")
        if p is not None and p.state == "Alert":
            raise DeviceError(device, "connecting the device", "the driver refused",
                              self.last_message(device))


class Connections:
    """The connections of one rig, one per server, closed with the rig. A server that could not
    be reached is not tried again by the other roles of the same rig."""

    def __init__(self) -> None:
        self.by_address: dict[tuple[str, int], IndiConnection] = {}
        self.failed: dict[tuple[str, int], DeviceError] = {}

    def get(self, host: str, port: int, *, connect_timeout_s: float) -> IndiConnection:
        key = (host, port)
        if key in self.failed:
            raise self.failed[key]
        conn = self.by_address.get(key)
        if conn is None:
            conn = IndiConnection(host, port, connect_timeout_s=connect_timeout_s)
            try:
                conn.connect()
            except DeviceError as exc:
                self.failed[key] = exc
                conn.close()
                raise
            self.by_address[key] = conn
        return conn

    def close(self) -> None:
        problems: list[str] = []
        for conn in self.by_address.values():
            problems += conn.close()
        self.by_address.clear()
        if problems:
            raise DeviceError("indiserver", "putting back what indical changed",
                              "; ".join(problems))


@atexit.register
def _close_all() -> None:
    """A connection left open at exit is closed here, so that its settings are put back and
    its reader thread has ended before the interpreter shuts down."""
    for conn in list(_open_connections):
        try:
            conn.close()
        except Exception:
            pass
