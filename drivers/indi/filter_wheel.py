"""Filter wheel adapter: FILTER_SLOT and FILTER_NAME."""

from __future__ import annotations

import re

from indical.drivers.indi.connection import IndiConnection
from indical.drivers.indi.device import IndiDevice
from indical.interfaces import FilterWheel


def _slot_number(element: str) -> int:
    match = re.search(r"(\d+)$", element)
    return int(match.group(1)) if match else 0


class IndiFilterWheel(IndiDevice, FilterWheel):
    def __init__(self, conn: IndiConnection, device: str, *, timeout_s: float,
                 busy_timeout_s: float = 300.0) -> None:
        super().__init__(conn, device, timeout_s=timeout_s, busy_timeout_s=busy_timeout_s)

    def _setup(self) -> None:
        self._prop("FILTER_SLOT")
        self._prop("FILTER_NAME")

    def describe(self) -> dict[str, object]:
        return {"kind": "INDI filter wheel", "filters": ", ".join(self.names()),
                **self._driver_facts()}

    def _slots(self) -> int:
        return int(round(self._prop("FILTER_SLOT").ranges["FILTER_SLOT_VALUE"][1]))

    def names(self) -> list[str]:
        self._ready()
        count = self._slots()
        p = self._has("FILTER_NAME")
        named = {} if p is None else {_slot_number(k): v for k, v in p.values.items()}
        return [named.get(i) or f"Filter {i}" for i in range(1, count + 1)]

    def position(self) -> int:
        self._ready()
        return int(round(self._prop("FILTER_SLOT").values["FILTER_SLOT_VALUE"]))

    def move_to(self, slot: int, *, timeout_s: float = 60.0) -> None:
        self._ready()
        count = self._slots()
        if not 1 <= slot <= count:
            raise ValueError(f"{self.name}: no slot {slot}; slots are 1 to {count}")
        if slot == self.position():
            return
        self._wait_no_exposure(f"moving to slot {slot}")
        serial = self.conn.send_number(self.name, "FILTER_SLOT", {"FILTER_SLOT_VALUE": slot})
        self._settled("FILTER_SLOT", serial, f"moving to slot {slot}", timeout_s=timeout_s,
                      done=lambda p: int(round(p.values["FILTER_SLOT_VALUE"])) == slot)
