"""Settings of indical's INDI simulator drivers, from a rig-like TOML file.

indiserver starts drivers without arguments, so the file is named by the environment variable
INDICAL_INDI_SIM_CONFIG (or `--config PATH` when a driver is run by hand). One file describes
every simulator on a server: [camera] for indi_indical_ccd, [flipflat] for
indi_indical_flipflat, [optics] for the light path, [site] and [sky] for the twilight sky the
camera sees with the lid open. Every key is optional."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indical.errors import RigError
from indical.site import Site
from indical.settings import Setting, non_negative, positive, read_settings
from indical.simulators import schema as S
from indical.simulators.models.optics import OpticsParams
from indical.simulators.models.panel import PanelParams
from indical.simulators.models.sensor import SensorParams
from indical.simulators.models.sky import SkyParams

ENV = "INDICAL_INDI_SIM_CONFIG"

CAMERA_NAME = "indical Flat Camera"
FLIPFLAT_NAME = "indical Flip-Flat"

_SENSOR_KEYS = set(SensorParams.__dataclass_fields__)

CAMERA_SCHEMA = [s for s in S.ROLE_SCHEMAS["camera"] if s.key != "name"] + [
    Setting("name", str, CAMERA_NAME, "INDI device name"),
    Setting("light_box", str, FLIPFLAT_NAME, "light box device to snoop (FLAT_LIGHT_*)"),
    Setting("cover", str, FLIPFLAT_NAME, "cover device to snoop (CAP_PARK)"),
    Setting("filter_wheel", str, "", "filter wheel device to snoop (FILTER_SLOT)"),
    Setting("throughput", list, [], "relative throughput per filter slot (default 1.0 each)"),
    Setting("panel_flux_e_per_s", float, PanelParams().max_flux_e_per_s,
            "light of a snooped panel at full brightness, for panels that don't announce it",
            check=positive),
    Setting("open_flux_e_per_s", float, 0.0, "light reaching the sensor with the cover open",
            check=non_negative),
    Setting("gain_property", str, "CCD_GAIN",
            "how gain and offset are offered: CCD_GAIN (with CCD_OFFSET) or CCD_CONTROLS",
            check=lambda v: None if v in ("CCD_GAIN", "CCD_CONTROLS")
            else f"must be CCD_GAIN or CCD_CONTROLS, got {v!r}"),
    Setting("exposure_ok_delay_s", float, 0.0, "how long after sending a frame the driver "
            "reports CCD_EXPOSURE done (real drivers differ)", check=non_negative),
    Setting("truncate_frames", bool, False, "fault injection: every frame sent is cut to half "
            "its FITS file (a driver or link that loses the end)"),
]

# Bits of DRIVER_INFO.DRIVER_INTERFACE
DUSTCAP, LIGHTBOX, AUX = 512, 1024, 32768

#: Habits of real INDI 2.x panel and cover drivers, read from their sources (FIELD_NOTES 12).
#: `[flipflat] profile = "NAME"` starts from one; any key set in the table wins over it.
PROFILES: dict[str, dict[str, Any]] = {
    "default": {},
    # Alnitak Flip-Flat: light control and brightness only with the lid closed; announces its
    # interfaces once it knows the product (after connecting)
    "flip-flat": {"max_brightness": 255, "only_parked": True,
                  "interface_after_connect": DUSTCAP | LIGHTBOX | AUX},
    "snapcap": {"max_brightness": 255, "cap_abort": True},
    "pegasus-flatmaster": {"max_brightness": 100, "cover": False, "on_before_brightness": True},
    # brightness while off is kept and applied when the light goes on; only while parked
    "rbf-excalibur": {"max_brightness": 3000, "stored_while_off": True, "only_parked": True},
    "wanderer-v3": {"min_brightness": 1, "max_brightness": 255, "on_forces_max": True},
    # value while off kept for the next switch-on, 0 switches off; a lid between open and
    # closed shows both switches off and Idle
    "wanderer-v4": {"max_brightness": 255, "stored_while_off": True, "zero_is_off": True,
                    "idle_between": True},
    "deep-sky-dad-fp": {"max_brightness": 4096},
    "dragonlight": {"max_brightness": 1, "cover": False, "on_before_brightness": True},
    "gemini": {"max_brightness": 255, "interface_after_connect": DUSTCAP | LIGHTBOX | AUX},
    # INDI 2.1.6 and later: a panel that can't dim has no FLAT_LIGHT_INTENSITY
    "no-dimming": {"dimmable": False, "cover": False},
    # INDI 2.1.1-2.1.3 made CAP_PARK AtMostOne; CAP_ABORT since 2.1.0
    "cap-at-most-one": {"park_rule": "AtMostOne", "cap_abort": True},
}


def profile_device(profile: str) -> str:
    """Device name of a flip-flat started with a profile by its program name."""
    return f"indical {profile}"


def _profile(v: Any) -> str | None:
    return None if v in PROFILES else f"must be one of {', '.join(PROFILES)}, got {v!r}"


FLIPFLAT_SCHEMA = [s for s in S.ROLE_SCHEMAS["panel"] if s.key not in ("name", "on_cover")] + [
    Setting("profile", str, "default", "habits of a real driver (see PROFILES)", check=_profile),
    Setting("min_brightness", int, 0, "lowest brightness the driver accepts",
            check=non_negative),
    Setting("cover", bool, True, "the device has a lid (CAP_PARK)"),
    Setting("on_before_brightness", bool, False, "brightness refused while the light is off"),
    Setting("stored_while_off", bool, False, "brightness set while off is kept, not applied, "
            "until the light goes on"),
    Setting("on_forces_max", bool, False, "switching on sets the maximum brightness"),
    Setting("zero_is_off", bool, False, "brightness 0 switches the light off"),
    Setting("only_parked", bool, False, "light and brightness only while the lid is closed"),
    Setting("cap_abort", bool, False, "offers CAP_ABORT"),
    Setting("park_rule", str, "OneOfMany", "switch rule of CAP_PARK",
            check=lambda v: None if v in ("OneOfMany", "AtMostOne")
            else f"must be OneOfMany or AtMostOne, got {v!r}"),
    Setting("idle_between", bool, False, "a moving lid shows both switches off, Idle"),
    Setting("interface_after_connect", int, 0, "DRIVER_INTERFACE announced once connected "
            "(0: the same as before)", check=non_negative),
    Setting("name", str, FLIPFLAT_NAME, "INDI device name"),
    Setting("travel_s", float, 3.0, "time the lid takes to open or close", check=non_negative),
    Setting("closed", bool, False, "lid closed at start"),
    Setting("filter_wheel", str, "", "filter wheel device to snoop for per-filter presets"),
    Setting("filter_presets", list, [], "brightness per filter slot, applied by the driver "
            "after each filter move (FLAT_LIGHT_FILTER_INTENSITY); 0 = no preset"),
    Setting("preset_delay_s", float, 0.2, "how long the driver takes to apply a preset",
            check=non_negative),
]


@dataclass(frozen=True)
class CameraConfig:
    name: str
    sensor: SensorParams
    optics: OpticsParams
    light_box: str
    cover: str
    filter_wheel: str
    throughput: tuple[float, ...]
    panel_flux_e_per_s: float
    open_flux_e_per_s: float
    readout_s: float
    ambient_c: float
    cooler: bool
    cooling_rate_c_per_min: float
    max_binning: int
    hang: bool
    gain_property: str
    exposure_ok_delay_s: float = 0.0
    #: The twilight sky, when the file has a [site]: with the lid open the camera sees the sky
    #: of that site at the wall clock's time (else open_flux_e_per_s). [sky] sets its
    #: brightness and colour (channel_flux, also the colour of open_flux_e_per_s).
    site: Site | None = None
    sky: SkyParams = SkyParams()
    truncate_frames: bool = False


@dataclass(frozen=True)
class FlipFlatConfig:
    name: str
    panel: PanelParams
    travel_s: float
    closed: bool
    filter_wheel: str = ""
    filter_presets: tuple[int, ...] = ()
    preset_delay_s: float = 0.2
    profile: str = "default"
    min_brightness: int = 0
    cover: bool = True
    on_before_brightness: bool = False
    stored_while_off: bool = False
    on_forces_max: bool = False
    zero_is_off: bool = False
    only_parked: bool = False
    cap_abort: bool = False
    park_rule: str = "OneOfMany"
    idle_between: bool = False
    interface_after_connect: int = 0


def _load(path: str | Path | None) -> tuple[dict[str, Any], str]:
    path = path or os.environ.get(ENV)
    if not path:
        return {}, "built-in simulator settings"
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8")), str(path)
    except FileNotFoundError:
        raise RigError(str(path), "file", "no such simulator settings file") from None
    except tomllib.TOMLDecodeError as exc:
        raise RigError(str(path), "TOML", f"not valid TOML ({exc})") from None


def _optics(doc: dict[str, Any], source: str) -> OpticsParams:
    t = S.read_table("optics", doc.get("optics", {}), source)
    return OpticsParams(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in t.items()})


def camera_config(path: str | Path | None = None) -> CameraConfig:
    doc, source = _load(path)
    s = read_settings(doc.get("camera", {}), CAMERA_SCHEMA, source=source, section="camera")
    if s["min_exposure_s"] >= s["max_exposure_s"]:
        raise RigError(source, "[camera] min_exposure_s", "must be below max_exposure_s")
    sensor = SensorParams(**{k: v for k, v in s.items() if k in _SENSOR_KEYS})
    return CameraConfig(
        name=s["name"], sensor=sensor, optics=_optics(doc, source), light_box=s["light_box"],
        cover=s["cover"], filter_wheel=s["filter_wheel"],
        throughput=tuple(float(t) for t in s["throughput"]),
        panel_flux_e_per_s=s["panel_flux_e_per_s"], open_flux_e_per_s=s["open_flux_e_per_s"],
        readout_s=s["readout_s"], ambient_c=s["ambient_c"], cooler=s["cooler"],
        cooling_rate_c_per_min=s["cooling_rate_c_per_min"], max_binning=s["max_binning"],
        hang=s["hang"], gain_property=s["gain_property"],
        exposure_ok_delay_s=s["exposure_ok_delay_s"], site=_site(doc, source),
        sky=SkyParams(**S.read_table("sky", doc.get("sky", {}), source)),
        truncate_frames=s["truncate_frames"])


def _site(doc: dict[str, Any], source: str) -> Site | None:
    """The [site] of the simulators' file: where the INDI camera's sky is."""
    if "site" not in doc:
        return None
    from indical.rig import SITE_SCHEMA
    s = read_settings(doc["site"], SITE_SCHEMA, source=source, section="site", ignore=())
    return Site(s["latitude"], s["longitude"], s["elevation"], s["name"])


def flipflat_config(path: str | Path | None = None, *, profile: str | None = None
                    ) -> FlipFlatConfig:
    """The flip-flat's settings; `profile` (from the program's name) overrides the file's and
    names the device after it."""
    doc, source = _load(path)
    table = dict(doc.get("flipflat", {}))
    if profile is not None:
        table["profile"] = profile
        table["name"] = profile_device(profile)
    profile = PROFILES.get(table.get("profile", "default"), {})
    table = {**profile, **table}
    s = read_settings(table, FLIPFLAT_SCHEMA, source=source, section="flipflat")
    response = tuple((float(b), float(f)) for b, f in s["response"])
    if "response" not in table and s["max_brightness"] != 255:
        # the default curve is for 0-255: stretch it over the driver's range
        response = tuple((b * s["max_brightness"] / 255.0, f) for b, f in response)
    panel = PanelParams(dimmable=s["dimmable"], max_brightness=s["max_brightness"],
                        response=response,
                        max_flux_e_per_s=s["max_flux_e_per_s"], pwm_hz=s["pwm_hz"],
                        row_time_s=s["row_time_s"],
                        channel_flux=tuple(float(v) for v in s["channel_flux"]))
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= panel.max_brightness
               for v in s["filter_presets"]):
        raise RigError(source, "[flipflat] filter_presets",
                       f"must be whole numbers from 0 to {panel.max_brightness}")
    if s["min_brightness"] >= panel.max_brightness:
        raise RigError(source, "[flipflat] min_brightness", "must be below max_brightness")
    return FlipFlatConfig(s["name"], panel, s["travel_s"], s["closed"], s["filter_wheel"],
                          tuple(s["filter_presets"]), s["preset_delay_s"], s["profile"],
                          s["min_brightness"], s["cover"], s["on_before_brightness"],
                          s["stored_while_off"], s["on_forces_max"], s["zero_is_off"],
                          s["only_parked"], s["cap_abort"], s["park_rule"], s["idle_between"],
                          s["interface_after_connect"])
