"""indi_indical_flipflat: a flip-flat simulator (light box on the inside of a motorised lid) that
indiserver runs like any INDI driver.

One device with FLAT_LIGHT_CONTROL, FLAT_LIGHT_INTENSITY and CAP_PARK, as a real flip-flat
driver has. The lid takes `travel_s` to move (CAP_PARK is Busy meanwhile). The panel's response
curve turns brightness into light, announced in FLAT_LIGHT_OUTPUT.FLAT_LIGHT_FLUX (e-/s per
pixel at full optics and filter throughput) with its colour (FLAT_LIGHT_RED, _GREEN, _BLUE: the
relative flux per channel of a colour sensor) for indi_indical_ccd to snoop.

`profile` (config.PROFILES) gives it the habits of a real INDI 2.x driver: its brightness range,
light that must be on before a brightness takes, values kept while off, switching on forcing
the maximum, light only with the lid closed, no brightness at all, CAP_ABORT, CAP_PARK as
AtMostOne, a lid between open and closed with both switches off, interfaces announced late."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from indical.simulators.indi import protocol as P
from indical.simulators.indi.config import AUX, DUSTCAP, LIGHTBOX, FlipFlatConfig, flipflat_config


class FlipFlatDriver(P.DriverBase):
    def __init__(self, cfg: FlipFlatConfig, **fds: int) -> None:
        super().__init__(cfg.name, **fds)
        self.cfg = cfg
        self._move_id = 0
        panel, main = cfg.panel, "Main Control"
        add = self.add
        add(P.switch("CONNECTION", "Connection", main,
                     [("CONNECT", "Connect", False), ("DISCONNECT", "Disconnect", True)]))
        interface = LIGHTBOX | AUX | (DUSTCAP if cfg.cover else 0)
        if cfg.interface_after_connect:
            interface = AUX           # the real kind is known only once connected
        self.info = add(P.text("DRIVER_INFO", "Driver Info", "General Info",
                               [("DRIVER_NAME", "Name", "indical flip-flat simulator"),
                                ("DRIVER_EXEC", "Exec", "indi_indical_flipflat"),
                                ("DRIVER_VERSION", "Version", "1.0"),
                                ("DRIVER_INTERFACE", "Interface", str(interface))], perm="ro"))
        self.control = add(P.switch("FLAT_LIGHT_CONTROL", "Flat Light", main,
                                    [("FLAT_LIGHT_ON", "On", False),
                                     ("FLAT_LIGHT_OFF", "Off", True)]))
        self.applied = 0   # the brightness the light really has when on
        if panel.dimmable:
            self.intensity = add(P.number("FLAT_LIGHT_INTENSITY", "Brightness", main,
                                          [("FLAT_LIGHT_INTENSITY_VALUE", "Value",
                                            cfg.min_brightness, cfg.min_brightness,
                                            panel.max_brightness, 1)], fmt="%.f"))
            self.applied = cfg.min_brightness
        r, g, b = panel.channel_flux
        top = max(panel.channel_flux)
        self.output = add(P.number("FLAT_LIGHT_OUTPUT", "Light output", main,
                                   [("FLAT_LIGHT_FLUX", "Flux (e-/s/px)", 0, 0,
                                     panel.max_flux_e_per_s, 0),
                                    ("FLAT_LIGHT_RED", "Red (relative)", r, 0, top, 0),
                                    ("FLAT_LIGHT_GREEN", "Green (relative)", g, 0, top, 0),
                                    ("FLAT_LIGHT_BLUE", "Blue (relative)", b, 0, top, 0)],
                                   perm="ro"))
        self.park: P.Vector | None = None
        if cfg.cover:
            self.park = add(P.switch("CAP_PARK", "Dust Cover", main,
                                     [("PARK", "Park", cfg.closed),
                                      ("UNPARK", "Unpark", not cfg.closed)],
                                     rule=cfg.park_rule))
        self.cap_abort: P.Vector | None = None
        if cfg.cover and cfg.cap_abort:
            self.cap_abort = add(P.switch("CAP_ABORT", "Abort", main, [("ABORT", "Abort", False)],
                                          rule="AtMostOne"))
        self.presets: P.Vector | None = None
        if cfg.filter_presets and panel.dimmable:
            self.presets = add(P.number("FLAT_LIGHT_FILTER_INTENSITY", "Filter presets", "Presets",
                                        [(f"FILTER_SLOT_{i + 1}", f"Slot {i + 1}", v, 0,
                                          panel.max_brightness, 1)
                                         for i, v in enumerate(cfg.filter_presets)]))
        self.slot: int | None = None
        # drivers that learn what they are on connecting define their properties only then
        self._late = cfg.interface_after_connect != 0
        for vector in self.props.values():
            vector.state = P.OK
            if not self._late or vector.name in ("CONNECTION", "DRIVER_INFO"):
                self.define(vector)

    def on_start(self) -> None:
        if self.presets is not None and self.cfg.filter_wheel:
            self.snoop(self.cfg.filter_wheel, "FILTER_SLOT")

    def on_snoop(self, msg: P.Incoming) -> None:
        """After a filter move ends, set the brightness to that filter's preset (after the
        delay a real driver takes), as light boxes with per-filter presets do."""
        if (self.presets is None or msg.attrs.get("name") != "FILTER_SLOT"
                or msg.attrs.get("state") == P.BUSY or "FILTER_SLOT_VALUE" not in msg.members):
            return
        slot = int(round(P.parse_number(msg.members["FILTER_SLOT_VALUE"])))
        if slot == self.slot:
            return
        self.slot = slot
        key = f"FILTER_SLOT_{slot}"
        preset = self.presets.values().get(key)
        if not preset:
            return

        def apply() -> None:
            with self.lock:
                self.intensity["FLAT_LIGHT_INTENSITY_VALUE"].value = float(preset)
                if self._lit() or not self.cfg.stored_while_off:
                    self.applied = int(preset)
                self._announce_output()
                self.update(self.intensity, state=P.OK)
        timer = threading.Timer(self.cfg.preset_delay_s, apply)
        timer.daemon = True
        timer.start()

    def _brightness(self) -> int:
        if not self.cfg.panel.dimmable:
            return self.cfg.panel.max_brightness
        return self.applied

    def _lit(self) -> bool:
        return self.control["FLAT_LIGHT_ON"].value is True

    def _parked(self) -> bool:
        return self.park is None or (self.park["PARK"].value is True
                                     and self.park.state != P.BUSY)

    def _announce_output(self) -> None:
        flux = self.cfg.panel.flux_e_per_s(self._brightness()) if self._lit() else 0.0
        if self.output["FLAT_LIGHT_FLUX"].value != flux:
            self.output["FLAT_LIGHT_FLUX"].value = flux
            self.update(self.output, state=P.OK)

    def on_new(self, vector: P.Vector, values: dict[str, str]) -> None:
        if vector.kind == "Number":
            numbers = {}
            for k, v in values.items():
                if k not in vector.values():
                    continue
                number = P.parse_number(v)
                e = vector[k]
                if not e.min <= number <= e.max:
                    self.update(vector, state=P.ALERT,
                                message=f"{k} {number:g} outside {e.min:g}-{e.max:g}")
                    return
                numbers[k] = number
            if vector.name == "FLAT_LIGHT_INTENSITY" and numbers:
                self._set_brightness(int(round(numbers["FLAT_LIGHT_INTENSITY_VALUE"])))
                return
            for k, number in numbers.items():
                vector[k].value = number
            self.update(vector, state=P.OK)
            return
        if vector.kind != "Switch":
            return
        on = [k for k, v in values.items() if v == "On" and k in vector.values()]
        if vector is self.cap_abort:
            self._abort_move()
            return
        if not on:
            self.update(vector, state=P.ALERT, message="no switch turned on")
            return
        if vector is self.park:
            self._move(on[0] == "PARK")
            return
        if vector is self.control:
            self._switch_light(on[0] == "FLAT_LIGHT_ON")
            return
        for e in vector.elements:
            e.value = e.name == on[0]
        self.update(vector, state=P.OK)
        if vector.name == "CONNECTION" and self._late:
            self._connected(on[0] == "CONNECT")

    def _connected(self, connected: bool) -> None:
        """Announce the real interfaces and the properties once connected; take them back on
        disconnecting."""
        self.info["DRIVER_INTERFACE"].value = str(self.cfg.interface_after_connect
                                                  if connected else AUX)
        self.update(self.info, state=P.OK)
        for vector in self.props.values():
            if vector.name in ("CONNECTION", "DRIVER_INFO"):
                continue
            if connected and not vector.defined:
                self.define(vector)
            elif not connected and vector.defined:
                self.delete(vector.name)

    def _set_brightness(self, value: int) -> None:
        """A brightness as the profile's driver takes it. The light changes before the client
        hears the setting is done, so an exposure it starts next sees the new light."""
        cfg, element = self.cfg, self.intensity["FLAT_LIGHT_INTENSITY_VALUE"]
        if cfg.zero_is_off and value == 0:
            element.value = 0.0
            self._switch_light(False)
            self.update(self.intensity, state=P.OK)
            return
        if not self._lit():
            if cfg.on_before_brightness:
                self.update(self.intensity, state=P.ALERT,
                            message="You must set On the Flat Light first.")
                return
            element.value = float(value)       # kept; the light takes it when switched on
            if not cfg.stored_while_off:
                self.applied = value
            self.update(self.intensity, state=P.OK)
            return
        if cfg.only_parked and not self._parked():
            self.update(self.intensity, state=P.ALERT,
                        message="the cover must be closed to set the brightness")
            return
        element.value = float(value)
        self.applied = value
        self._announce_output()
        self.update(self.intensity, state=P.OK)

    def _switch_light(self, on: bool) -> None:
        cfg = self.cfg
        if on and cfg.only_parked and not self._parked():
            self.update(self.control, state=P.ALERT,
                        message="the cover must be closed to switch the light on")
            return
        self.control["FLAT_LIGHT_ON"].value = on
        self.control["FLAT_LIGHT_OFF"].value = not on
        if on and cfg.panel.dimmable:
            element = self.intensity["FLAT_LIGHT_INTENSITY_VALUE"]
            if cfg.on_forces_max:
                element.value = float(cfg.panel.max_brightness)
                self.update(self.intensity, state=P.OK)
            self.applied = int(round(element.value))
        self._announce_output()
        self.update(self.control, state=P.OK if on else P.IDLE)

    def _abort_move(self) -> None:
        """CAP_ABORT: the lid stops where it is, CAP_PARK Alert with both switches off."""
        assert self.park is not None and self.cap_abort is not None
        self._move_id += 1
        for e in self.park.elements:
            e.value = False
        self.update(self.park, state=P.ALERT, message="cover motion aborted")
        self.update(self.cap_abort, state=P.OK)

    def _move(self, close: bool) -> None:
        """Start the lid moving; it reports Busy until it gets there (or, with `idle_between`,
        both switches off and Idle)."""
        assert self.park is not None
        want = "PARK" if close else "UNPARK"
        already = self.park[want].value is True and self.park.state not in (P.BUSY, P.ALERT)
        if already or self.cfg.travel_s <= 0:
            for e in self.park.elements:
                e.value = e.name == want
            self.update(self.park, state=P.OK)
            return
        self._move_id += 1
        move_id = self._move_id
        if self.cfg.idle_between:
            for e in self.park.elements:
                e.value = False
            self.update(self.park, state=P.IDLE)
        else:
            for e in self.park.elements:
                e.value = e.name == want
            self.update(self.park, state=P.BUSY)

        def arrive() -> None:
            with self.lock:
                if move_id == self._move_id:   # a newer command supersedes this one
                    for e in self.park.elements:
                        e.value = e.name == want
                    self.update(self.park, state=P.OK)
        timer = threading.Timer(self.cfg.travel_s, arrive)
        timer.daemon = True
        timer.start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="indi_indical_flipflat",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="simulator settings (TOML); default: $INDICAL_INDI_SIM_CONFIG")
    args = parser.parse_args(argv)
    # indiserver passes no arguments: a link named indi_indical_flipflat+PROFILE starts the
    # device "indical PROFILE" with that profile, so one server can hold several
    program = Path(sys.argv[0]).name
    profile = program.split("+", 1)[1] if "+" in program else None
    try:
        cfg = flipflat_config(args.config, profile=profile)
    except Exception as exc:
        print(f"indi_indical_flipflat: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    FlipFlatDriver(cfg).run()


if __name__ == "__main__":
    main()
