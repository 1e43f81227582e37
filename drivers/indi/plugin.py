"""The `indi` driver plugin: rig keys, validation, and one connection per server per rig."""

from __future__ import annotations

from typing import Any, Mapping

from indical.errors import DeviceError, RigError
from indical.settings import Setting, positive, read_settings


def _server(value: Any) -> str | None:
    from indical.drivers.indi.connection import parse_server
    try:
        parse_server(value)
    except ValueError as exc:
        return f"must be 'host:port', like 'localhost:7624' ({exc})"
    return None


def _frames(value: Any) -> str | None:
    return None if value in ("auto", "shared", "tcp") else "must be 'auto', 'shared' or 'tcp'"


def _named(value: Any) -> str | None:
    return None if value.strip() else "must name the INDI device, like 'CCD Simulator'"


COMMON = [
    Setting("server", str, "localhost:7624", "indiserver address, host:port", check=_server),
    Setting("device", str, doc="INDI device name, as the driver announces it", check=_named),
    Setting("timeout_s", float, 10.0, "longest wait for the device to answer a setting",
            check=positive),
    Setting("connect_timeout_s", float, 2.0, "longest wait for the server to answer a "
            "connection (a refused one fails at once)", check=positive),
    Setting("busy_timeout_s", float, 300.0, "longest wait for another client's exposure to end "
            "before refusing with 'camera busy'", check=positive),
]

SCHEMAS: dict[str, list[Setting]] = {
    "camera": COMMON + [
        Setting("readout_allowance_s", float, 30.0,
                "time allowed beyond the exposure for readout and transfer", check=positive),
        Setting("frames", str, "auto", "how frames travel: 'auto' (shared memory through the "
                "server's local socket when it runs on this machine, else TCP), 'shared' or "
                "'tcp'", check=_frames),
        Setting("local_socket", str, "", "the server's local socket (indiserver -u PATH) when "
                "'auto' can't find it (a server of another user)"),
    ],
    "panel": COMMON,
    "cover": COMMON,
    "filter_wheel": COMMON,
    "weather": COMMON,
}


class IndiDriver:
    """Cameras, light boxes, covers, filter wheels and weather stations behind an indiserver.
    A flip-flat is one INDI device: name it as both the panel's and the cover's `device`."""

    name = "indi"
    roles = frozenset(SCHEMAS)

    def validate(self, role: str, table: Mapping[str, Any], *, source: str,
                 tables: Mapping[str, Any]) -> None:
        read_settings(table, SCHEMAS[role], source=source, section=role)

    def open(self, role: str, table: Mapping[str, Any], session: Any):
        from indical.drivers.indi.connection import Connections, parse_server
        s = read_settings(table, SCHEMAS[role], source=session.source, section=role)
        connections = session.shared.get("indi")
        if connections is None:
            connections = session.shared["indi"] = Connections()
            session.on_close(connections.close)
        host, port = parse_server(s["server"])
        # a server that failed for one role is not tried again for the next, also when a
        # command opens the roles one by one (rig check): the memo outlives one rig
        unreachable = session.memo.setdefault("indi unreachable", {})
        if (host, port) in unreachable:
            raise unreachable[(host, port)]
        try:
            conn = connections.get(host, port, connect_timeout_s=s["connect_timeout_s"])
        except DeviceError as exc:
            unreachable[(host, port)] = exc
            raise
        device = _adapter(role, conn, s)
        device._ready()  # a wrong device name fails here, listing the devices that are there
        return device


    def discover(self, address: str, *, connect: bool = False
                 ) -> tuple[list[tuple[str, str, str, bool]], str]:
        """The devices on an indiserver as (name, driver, what it can do, connected), and the
        text of a rig file for them."""
        from datetime import datetime, timezone

        from indical.drivers.indi.connection import parse_server
        from indical.drivers.indi.discover import discover, rig_text
        try:
            host, port = parse_server(address)
        except ValueError as exc:
            raise RigError(address, "server", f"must be 'host:port' ({exc})") from None
        found = discover(host, port, connect=connect)
        rows = [(d.name, d.driver, ", ".join(d.capabilities), d.connected) for d in found]
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return rows, rig_text(f"{host}:{port}", found, when=when)


def _adapter(role: str, conn: Any, s: dict[str, Any]):
    if role == "camera":
        from indical.drivers.indi.camera import IndiCamera
        return IndiCamera(conn, s["device"], timeout_s=s["timeout_s"],
                          readout_allowance_s=s["readout_allowance_s"],
                          busy_timeout_s=s["busy_timeout_s"], frames=s["frames"],
                          local_socket=s["local_socket"] or None)
    if role == "panel":
        from indical.drivers.indi.light_box import IndiLightPanel
        return IndiLightPanel(conn, s["device"], timeout_s=s["timeout_s"],
                              busy_timeout_s=s["busy_timeout_s"])
    if role == "cover":
        from indical.drivers.indi.cover import IndiCover
        return IndiCover(conn, s["device"], timeout_s=s["timeout_s"],
                         busy_timeout_s=s["busy_timeout_s"])
    if role == "filter_wheel":
        from indical.drivers.indi.filter_wheel import IndiFilterWheel
        return IndiFilterWheel(conn, s["device"], timeout_s=s["timeout_s"],
                               busy_timeout_s=s["busy_timeout_s"])
    if role == "weather":
        from indical.drivers.indi.weather import IndiWeather
        return IndiWeather(conn, s["device"], timeout_s=s["timeout_s"],
                           busy_timeout_s=s["busy_timeout_s"])
    raise RigError("rig", f"[{role}]", "the indi driver does not serve this role")
