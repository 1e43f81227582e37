"""What every INDI adapter shares: waiting for its device, connecting it, and setting it up again
after the server or the driver came back."""

from __future__ import annotations

import logging
from typing import Any

from indical.drivers.indi.connection import IndiConnection, Prop
from indical.errors import DeviceError, DeviceTimeout

log = logging.getLogger(__name__)


class IndiDevice:
    """Mixin for adapters: `self.name` is the INDI device name, `_setup()` runs once per
    appearance of the device (first use, after a reconnect, after a driver restart)."""

    name: str

    def __init__(self, conn: IndiConnection, device: str, *, timeout_s: float,
                 busy_timeout_s: float = 300.0) -> None:
        self.conn = conn
        self.name = device
        self.timeout_s = timeout_s
        #: how long to wait for another client's exposure to end before refusing
        self.busy_timeout_s = busy_timeout_s
        self._ready_key: tuple[int, int] | None = None

    def _setup(self) -> None:
        """Wait for the properties the adapter needs and apply its settings again."""

    def _ready(self) -> None:
        self.conn.ensure_connected()
        device_generation = self.conn.wait_device(self.name, timeout_s=self.timeout_s)
        key = (self.conn.generation, device_generation)
        if key != self._ready_key:
            self.conn.connect_device(self.name, timeout_s=self.timeout_s)
            self.conn.wait_defined(self.name)
            self._setup()
            self._ready_key = key

    def _prop(self, name: str) -> Prop:
        """A property the adapter needs, waited for."""
        return self.conn.wait_prop(self.name, name, timeout_s=self.timeout_s)

    def _has(self, name: str) -> Prop | None:
        return self.conn.prop(self.name, name)

    def _settled(self, name: str, serial: int, action: str, *, timeout_s: float | None = None,
                 done: Any = None) -> Prop:
        """Wait until property `name` is updated after `serial` and is no longer Busy (and, when
        given, `done(prop)` holds). Raises DeviceError when the driver answers Alert."""
        def check() -> Prop | None:
            p = self.conn.props.get((self.name, name))
            if p is None or p.serial <= serial:
                return None
            if p.state == "Alert":
                raise DeviceError(self.name, action, "the driver reported a failure",
                                  self.conn.last_message(self.name) or "see the driver's log")
            if p.state == "Busy" or (done is not None and not done(p)):
                return None
            return p
        return self.conn.wait_for(check, timeout_s=self.timeout_s if timeout_s is None
                                  else timeout_s, device=self.name, action=action)

    def _driver_facts(self) -> dict[str, object]:
        info = self._has("DRIVER_INFO")
        facts: dict[str, object] = {"server": self.conn.address}
        if info is not None:
            facts["driver"] = info.values.get("DRIVER_EXEC") or info.values.get("DRIVER_NAME")
        return facts

    def _wait_no_exposure(self, action: str) -> None:
        """Wait while a camera on this server is exposing (for another client: indical's own
        exposures are over when a sequence moves a filter, a cover or changes the light), then
        refuse after `busy_timeout_s`: a light change or a move would spoil that frame."""
        conn = self.conn

        def exposing() -> list[str]:
            return [dev for (dev, name), p in conn.props.items()
                    if name == "CCD_EXPOSURE" and p.state == "Busy"
                    and p.values.get("CCD_EXPOSURE_VALUE", 0) > 0]

        with conn.cond:
            cameras = exposing()
        if not cameras:
            return
        log.warning("%s: %s is exposing for another client; waiting up to %g s before %s",
                    self.name, ", ".join(cameras), self.busy_timeout_s, action)
        try:
            conn.wait_for(lambda: not exposing(), timeout_s=self.busy_timeout_s,
                          device=self.name, action=action)
        except DeviceTimeout:
            raise DeviceError(self.name, action, "camera busy: another client is exposing",
                              f"waited {self.busy_timeout_s:g} s for {', '.join(cameras)}")                from None
