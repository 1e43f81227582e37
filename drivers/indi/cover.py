"""Cover adapter: a dust cap or a flip-flat's lid through CAP_PARK."""

from __future__ import annotations

from indical.drivers.indi.connection import IndiConnection
from indical.drivers.indi.device import IndiDevice
from indical.interfaces import Cover, CoverState


class IndiCover(IndiDevice, Cover):
    def __init__(self, conn: IndiConnection, device: str, *, timeout_s: float,
                 busy_timeout_s: float = 300.0) -> None:
        super().__init__(conn, device, timeout_s=timeout_s, busy_timeout_s=busy_timeout_s)

    def _setup(self) -> None:
        self._prop("CAP_PARK")

    def describe(self) -> dict[str, object]:
        return {"kind": "INDI cover", "state": self.state().value, **self._driver_facts()}

    def _move(self, park: bool, timeout_s: float) -> None:
        self._ready()
        want = "PARK" if park else "UNPARK"
        self._wait_no_exposure("closing" if park else "opening")
        serial = self.conn.send_switch(self.name, "CAP_PARK", want)
        self._settled("CAP_PARK", serial, "closing" if park else "opening", timeout_s=timeout_s,
                      done=lambda p: p.values.get(want) is True)

    def open(self, *, timeout_s: float = 60.0) -> None:
        self._move(False, timeout_s)

    def close(self, *, timeout_s: float = 60.0) -> None:
        self._move(True, timeout_s)

    def state(self) -> CoverState:
        self._ready()
        p = self._prop("CAP_PARK")
        if p.state == "Busy":
            return CoverState.MOVING
        if p.state == "Alert":
            return CoverState.ERROR
        if p.values.get("PARK"):
            return CoverState.CLOSED
        if p.values.get("UNPARK"):
            return CoverState.OPEN
        return CoverState.UNKNOWN
