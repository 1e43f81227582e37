"""Light from panels that are not simulated devices, for the simulated camera to see.

A rig may pair the simulated camera with a real adapter's panel: a relay on a (mock) GPIO pin,
or the Alnitak driver talking to the pty emulator. The simulated world then reads the panel's
*physical* state, as the sensor would: the pin's electrical level, or the emulator's published
light and cover state. It never asks the driver what it believes, so a driver that gets
active-low wrong, or forgets to switch off, shows up in the frames.

Configured in the simulated camera's table, `[camera] light_source = {...}`:
    { gpio_pin = 17, active_high = false, max_flux_e_per_s = 30000 }
    { alnitak_state = "indical-flipflat.state.json" }   (a bare name: the emulator's default,
                                                         in the user's private folder)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

from indical.errors import DeviceError, RigError
from indical.settings import Setting, positive, read_settings
from indical.simulators.models.panel import PanelParams
from indical.simulators.world import LidState, PanelState

#: What a light source reports at the start of each exposure.
Reading = tuple[PanelState | None, LidState | None]
LightSource = Callable[[], Reading]

_LEVELS = 1000   # a pin's duty cycle, in thousandths, as the panel model's brightness

SCHEMA = [
    Setting("gpio_pin", (int, str, type(None)), None, "the pin that powers the panel"),
    Setting("active_high", bool, True, "the panel is lit when the pin is high"),
    Setting("max_flux_e_per_s", float, PanelParams().max_flux_e_per_s, check=positive),
    Setting("alnitak_state", str, "", "state file of an indical-alnitak-emulator (a bare name: in the user's private folder)"),
]


def gpio_pin_light(pin: int | str, active_high: bool, max_flux_e_per_s: float) -> LightSource:
    """A panel powered through a GPIO pin: lit in proportion to the pin's active duty cycle.

    Reads the pin from gpiozero's process-wide pin factory, where the gpio driver drives it.
    A pin nobody drives (never opened, or released to an input) gives no light."""
    params = PanelParams(dimmable=True, max_brightness=_LEVELS,
                         response=((0.0, 0.0), (float(_LEVELS), 1.0)),
                         max_flux_e_per_s=max_flux_e_per_s)

    def read() -> Reading:
        from gpiozero import Device
        factory = Device.pin_factory
        duty = 0.0
        if factory is not None:
            for _header, info in factory.board_info.find_pin(pin):
                found = factory.pins.get(info)
                if found is not None and found.function == "output":
                    level = float(found.state)
                    duty = level if active_high else 1.0 - level
                break
        lit = round(duty * _LEVELS)
        return PanelState(params, on=lit > 0, brightness=lit, on_cover=False), None

    return read


def alnitak_state_light(path: str | Path) -> LightSource:
    """A Flip-Flat or Flat-Man emulated by `indical-alnitak-emulator`, through its state file.
    A bare file name is looked up in the user's private folder, where the emulator writes it by
    default."""
    path = Path(path)
    if path.name == str(path):
        from indical.simulators.alnitak_emulator import default_state_file
        path = default_state_file(path.name.removesuffix(".state.json"))

    def read() -> Reading:
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            p = state["panel"]
            params = PanelParams(**{**p, "response": tuple(tuple(pt) for pt in p["response"]),
                                    "channel_flux": tuple(p.get("channel_flux",
                                                                PanelParams().channel_flux))})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DeviceError("simulated observatory", f"reading the emulator state {path}",
                              str(exc), "is indical-alnitak-emulator running with this "
                              "--state-file?") from None
        has_cover = state["cover"] != "none"
        panel = PanelState(params, on=bool(state["light_on"]), brightness=int(state["brightness"]),
                           on_cover=has_cover)
        cover = LidState(travel_s=0.0, closed=state["cover"] == "closed") if has_cover else None
        return panel, cover

    return read


def light_source(table: Mapping[str, Any], source: str) -> LightSource | None:
    """The light source a `[camera] light_source` table describes; None for an empty table."""
    if not table:
        return None
    s = read_settings(table, SCHEMA, source=source, section="camera.light_source", ignore=())
    if (s["gpio_pin"] is None) == (not s["alnitak_state"]):
        raise RigError(source, "[camera] light_source",
                       "give either gpio_pin (a panel on a GPIO pin) or alnitak_state (the "
                       "emulator's state file)")
    if s["gpio_pin"] is not None:
        return gpio_pin_light(s["gpio_pin"], s["active_high"], s["max_flux_e_per_s"])
    return alnitak_state_light(s["alnitak_state"])
