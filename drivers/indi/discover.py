"""What an indiserver offers: its devices by what they can do, and a rig file for them.

Devices are recognised by the interface bits in DRIVER_INFO and by their standard properties,
never by name: names differ between drivers and, since INDI 2.2, users give devices nicknames.
Some drivers announce their real interfaces only once connected (Flip-Flat, Gemini), and most
define their properties only then: `connect=True` connects the devices that are not connected,
and the connection disconnects them again when it closes, like any setting it changed."""

from __future__ import annotations

import time
from dataclasses import dataclass

from indical.drivers.indi.connection import IndiConnection
from indical.errors import DeviceError

#: DRIVER_INFO.DRIVER_INTERFACE bits and the property that shows the same capability.
CAPABILITIES: dict[str, tuple[int, str]] = {
    "camera": (1 << 1, "CCD_EXPOSURE"),
    "light box": (1 << 10, "FLAT_LIGHT_CONTROL"),
    "dust cap": (1 << 9, "CAP_PARK"),
    "filter wheel": (1 << 4, "FILTER_SLOT"),
    "mount": (1 << 0, "EQUATORIAL_EOD_COORD"),
    "weather": (1 << 7, "WEATHER_STATUS"),
    "focuser": (1 << 3, "ABS_FOCUS_POSITION"),
}
#: The rig role each capability fills with the `indi` driver.
ROLES = {"camera": "camera", "light box": "panel", "dust cap": "cover",
         "filter wheel": "filter_wheel"}


@dataclass(frozen=True)
class FoundDevice:
    name: str
    driver: str
    capabilities: tuple[str, ...]
    connected: bool


def _quiet(conn: IndiConnection, quiet_s: float, timeout_s: float) -> None:
    """Wait until the server has stopped announcing properties for `quiet_s`."""
    deadline = time.monotonic() + timeout_s
    with conn.cond:
        last, since = conn.props_serial(), time.monotonic()
        while time.monotonic() < deadline:
            conn.cond.wait(0.05)
            now = conn.props_serial()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return


def _found(conn: IndiConnection, device: str) -> FoundDevice:
    info = conn.props.get((device, "DRIVER_INFO"))
    bits = 0
    driver = ""
    if info is not None:
        try:
            bits = int(str(info.values.get("DRIVER_INTERFACE", "0")) or 0)
        except ValueError:
            bits = 0
        driver = str(info.values.get("DRIVER_EXEC") or info.values.get("DRIVER_NAME") or "")
    have = {name for dev, name in conn.props if dev == device}
    capabilities = tuple(what for what, (bit, prop) in CAPABILITIES.items()
                         if bits & bit or prop in have)
    connection = conn.props.get((device, "CONNECTION"))
    connected = connection is None or bool(connection.values.get("CONNECT"))
    return FoundDevice(device, driver, capabilities, connected)


def discover(host: str, port: int, *, connect: bool = False, quiet_s: float = 0.5,
             timeout_s: float = 10.0, connect_timeout_s: float = 2.0) -> list[FoundDevice]:
    """The devices on an indiserver and what they can do. Changes nothing on the server (with
    `connect`, devices it connected are disconnected again)."""
    conn = IndiConnection(host, port, connect_timeout_s=connect_timeout_s)
    try:
        conn.connect()
        _quiet(conn, quiet_s, timeout_s)
        if connect:
            for device in sorted(conn.devices):
                if not _found(conn, device).connected:
                    try:
                        conn.connect_device(device, timeout_s=timeout_s)
                    except DeviceError:
                        pass   # listed as not connected
            _quiet(conn, quiet_s, timeout_s)
        with conn.cond:
            return [_found(conn, device) for device in sorted(conn.devices)]
    finally:
        problems = conn.close()
        if problems:
            raise DeviceError(f"indiserver {host}:{port}", "disconnecting the devices it "
                              "connected", "; ".join(problems))


def rig_text(address: str, found: list[FoundDevice], *, when: str = "") -> str:
    """A rig file for the devices found: the first device of each capability fills its role,
    the others are named in comments."""
    lines = [f"# Rig written by `indical rig discover {address}`{' on ' + when if when else ''}.",
             "# Check the roles below, then: indical rig check THIS_FILE", ""]
    for what, role in ROLES.items():
        candidates = [d for d in found if what in d.capabilities]
        if not candidates:
            lines += [f"# no {what} found", ""]
            continue
        first = candidates[0]
        lines += [f"[{role}]", 'driver = "indi"', f'server = "{address}"',
                  f"device = {_toml(first.name)}"]
        lines += [f"# also a {what}: {d.name}" for d in candidates[1:]]
        lines.append("")
    others = [d for d in found if not any(w in d.capabilities for w in ROLES)]
    for d in others:
        what = ", ".join(d.capabilities) or "nothing indical uses"
        lines.append(f"# {d.name}: {what}")
    return "\n".join(lines).rstrip("\n") + "\n"


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
