"""Light box adapter: FLAT_LIGHT_CONTROL and FLAT_LIGHT_INTENSITY.

Real drivers take a brightness in different orders (FIELD_NOTES 12): some refuse one while the
light is off, some keep it and apply it only when switched on, one forces the maximum when
switched on. So a brightness asked while the light is off is kept here too, and switching on
sets the brightness asked again when the driver does not show it."""

from __future__ import annotations

from indical.drivers.indi.connection import IndiConnection
from indical.drivers.indi.device import IndiDevice
from indical.errors import DeviceError, DeviceTimeout, NotSupported
from indical.interfaces import LightPanel, PanelInfo


#: How long to watch for a per-filter preset overriding a brightness just set.
PRESET_SETTLE_S = 1.0


class IndiLightPanel(IndiDevice, LightPanel):
    """A flat panel (or the light of a flip-flat) through its INDI driver."""

    def __init__(self, conn: IndiConnection, device: str, *, timeout_s: float,
                 busy_timeout_s: float = 300.0) -> None:
        super().__init__(conn, device, timeout_s=timeout_s, busy_timeout_s=busy_timeout_s)
        self._wanted: int | None = None   # the brightness last asked for

    def _setup(self) -> None:
        self._prop("FLAT_LIGHT_CONTROL")

    def info(self) -> PanelInfo:
        self._ready()
        p = self._has("FLAT_LIGHT_INTENSITY")
        if p is None:
            return PanelInfo(dimmable=False)
        lo, hi, step = p.ranges["FLAT_LIGHT_INTENSITY_VALUE"]
        return PanelInfo(dimmable=True, min_brightness=int(round(lo)), max_brightness=int(round(hi)),
                         step=max(1, int(round(step))))

    def describe(self) -> dict[str, object]:
        i = self.info()
        facts: dict[str, object] = {"kind": "INDI light box", "dimmable": i.dimmable}
        if i.dimmable:
            facts["brightness"] = f"{i.min_brightness}-{i.max_brightness} step {i.step}"
        facts["light"] = "on" if self.is_on() else "off"
        return {**facts, **self._driver_facts()}

    def _switch(self, on: bool) -> None:
        self._ready()
        if on:
            self._wait_no_exposure("switching the light on")
        want = "FLAT_LIGHT_ON" if on else "FLAT_LIGHT_OFF"
        serial = self.conn.send_switch(self.name, "FLAT_LIGHT_CONTROL", want)
        self._settled("FLAT_LIGHT_CONTROL", serial, f"switching the light {'on' if on else 'off'}",
                      done=lambda p: p.values.get(want) is True)

    def on(self) -> None:
        self._switch(True)
        wanted = self._wanted
        if wanted is not None and self._has("FLAT_LIGHT_INTENSITY") is not None \
                and self.brightness() != wanted:
            # refused while off, or the driver forced its own value on switching on
            self._send_brightness(wanted)

    def off(self) -> None:
        self._switch(False)

    def is_on(self) -> bool:
        self._ready()
        return bool(self._prop("FLAT_LIGHT_CONTROL").values.get("FLAT_LIGHT_ON"))

    def _wait_filter_moves(self) -> None:
        """A driver with per-filter presets changes the brightness itself after a filter move:
        let any move on this server finish before setting brightness."""
        conn = self.conn
        conn.wait_for(lambda: not any(p.state == "Busy" for (dev, name), p in conn.props.items()
                                      if name == "FILTER_SLOT"),
                      timeout_s=self.timeout_s * 6, device=self.name,
                      action="waiting for the filter wheel to stop before setting brightness")

    def set_brightness(self, brightness: int) -> int:
        info = self.info()
        if not info.dimmable:
            raise NotSupported(self.name, "brightness")
        levels = info.levels()
        if brightness not in levels and brightness != info.max_brightness:
            raise ValueError(f"{self.name}: brightness {brightness} is not one the panel offers "
                             f"({info.min_brightness}-{info.max_brightness} in steps of {info.step})")
        self._wait_no_exposure(f"setting brightness {brightness}")
        presets = self._has("FLAT_LIGHT_FILTER_INTENSITY") is not None
        if presets:
            self._wait_filter_moves()
        self._wanted = brightness
        if not self.is_on():
            try:
                return self._send_brightness(brightness)
            except DeviceError:
                if self.is_on():
                    raise
                # the driver takes a brightness only with the light on: on() sets it
                return brightness
        return self._send_brightness(brightness)

    def _send_brightness(self, brightness: int) -> int:
        presets = self._has("FLAT_LIGHT_FILTER_INTENSITY") is not None
        for attempt in range(3):
            serial = self.conn.send_number(self.name, "FLAT_LIGHT_INTENSITY",
                                           {"FLAT_LIGHT_INTENSITY_VALUE": brightness})
            p = self._settled("FLAT_LIGHT_INTENSITY", serial, f"setting brightness {brightness}")
            if not presets or not self._overridden_by_preset(p.serial, brightness):
                break
        return int(round(self._prop("FLAT_LIGHT_INTENSITY").values["FLAT_LIGHT_INTENSITY_VALUE"]))

    def _overridden_by_preset(self, serial: int, brightness: int) -> bool:
        """A driver applies a filter's preset when it sees the move end, which may come just
        after our own setting: watch briefly for a change that is not ours."""
        def changed() -> bool:
            p = self.conn.props.get((self.name, "FLAT_LIGHT_INTENSITY"))
            return p is not None and p.serial > serial and \
                int(round(p.values["FLAT_LIGHT_INTENSITY_VALUE"])) != brightness
        try:
            self.conn.wait_for(changed, timeout_s=PRESET_SETTLE_S, device=self.name,
                               action="watching for a filter preset")
        except DeviceTimeout:
            return False
        return True

    def brightness(self) -> int | None:
        self._ready()
        p = self._has("FLAT_LIGHT_INTENSITY")
        return None if p is None else int(round(p.values["FLAT_LIGHT_INTENSITY_VALUE"]))

    def disconnect(self) -> None:
        """Leave the light off."""
        self.off()
