"""Helpers for the INDI system tests: start an indiserver with given drivers and simulator
settings, write rig text for it."""

from __future__ import annotations

from pathlib import Path

from indical.rig import open_rig, parse_rig
from indical.simulators.indi.server import OUR_CCD, OUR_FLIPFLAT, IndiServer

STOCK = ["indi_simulator_ccd", "indi_simulator_lightpanel", "indi_simulator_wheel"]

# A small sensor keeps the physics tests quick; the 8-megapixel test describes its own.
SMALL_SIMS = """\
[camera]
width = 320
height = 240
readout_s = 0.05
prnu = 0.0
hot_pixel_fraction = 0.0
cold_pixel_fraction = 0.0
jitter_s = 0.0

[flipflat]
travel_s = 0.3

[optics]
dust_count = 0
"""


def start_server(tmp: Path, drivers: list[str], sims: str | None = None, *,
                 port: int | None = None) -> IndiServer:
    """An indiserver with `drivers`; `sims` is TOML for indical's simulators."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = {}
    if sims is not None:
        config = tmp / "sims.toml"
        config.write_text(sims)
        env["INDICAL_INDI_SIM_CONFIG"] = str(config)
    return IndiServer(drivers, workdir=tmp, port=port, env=env).start()


#: rig keys only the camera has
CAMERA_ONLY = frozenset({"frames", "local_socket", "readout_allowance_s"})


def rig_for(address: str, roles: dict[str, str], **extra: object) -> str:
    """Rig text with one `indi` table per role, naming the device; `extra` keys go to every
    role that has them."""
    lines = []
    for role, device in roles.items():
        lines += [f"[{role}]", 'driver = "indi"', f'server = "{address}"', f'device = "{device}"']
        lines += [f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"'
                  for k, v in extra.items() if role == "camera" or k not in CAMERA_ONLY]
        lines.append("")
    return "\n".join(lines)


def open_indi_rig(address: str, roles: dict[str, str], **extra: object):
    return open_rig(parse_rig(rig_for(address, roles, **extra), "test rig"))


