"""Rig files: which driver serves which role, read and checked once.

A rig file is TOML with one table per role ([camera], [panel], [cover], [filter_wheel], [relay],
[mount], [weather]) naming a `driver` and its settings, plus [site] and, for simulators, [clock] and [sky].
A role that is not in the file is absent: it is never silently simulated."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping

from indical.clock import Clock, SystemClock
from indical.default_rig import DEFAULT_RIG_TOML
from indical.errors import IndicalError, RigError
from indical.interfaces import (ROLE_INTERFACES, Camera, Cover, Device, FilterWheel,
                                LightPanel, Mount, Relay, Weather)
from indical.plugins import PluginNotFound, available_drivers, load_driver
from indical.settings import Setting, between, read_settings
from indical.site import Site

ROLES = tuple(ROLE_INTERFACES)
OTHER_TABLES = ("site", "clock", "sky", "optics", "flats")

SITE_SCHEMA = [
    Setting("latitude", float, doc="degrees, north positive", check=between(-90, 90)),
    Setting("longitude", float, doc="degrees, east positive", check=between(-180, 360)),
    Setting("elevation", float, 0.0, "metres above sea level"),
    Setting("name", str, ""),
]


@dataclass
class RigSpec:
    """A validated rig file, not yet connected."""

    source: str
    roles: dict[str, dict[str, Any]]
    tables: dict[str, dict[str, Any]]
    site: Site | None

    def driver_of(self, role: str) -> str:
        return self.roles[role]["driver"]


def parse_rig(text: str, source: str) -> RigSpec:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RigError(source, "TOML", f"not valid TOML ({exc})") from None
    roles: dict[str, dict[str, Any]] = {}
    tables: dict[str, dict[str, Any]] = {}
    installed = available_drivers()
    for key, value in doc.items():
        if key not in ROLES and key not in OTHER_TABLES:
            raise RigError(source, f"[{key}]", "unknown table (roles are "
                           f"{', '.join(ROLES)}; other tables are {', '.join(OTHER_TABLES)})")
        if not isinstance(value, dict):
            raise RigError(source, key, f"must be a table ([{key}]), got {value!r}")
        if key in OTHER_TABLES:
            tables[key] = value
            continue
        driver = value.get("driver")
        if driver is None:
            raise RigError(source, f"[{key}] driver",
                           f"missing (say which driver serves the {key}: one of "
                           f"{', '.join(installed)})")
        if not isinstance(driver, str):
            raise RigError(source, f"[{key}] driver", f"expected a string, got {driver!r}")
        if driver not in installed:
            raise RigError(source, f"[{key}] driver",
                           f"no driver named {driver!r} is installed "
                           f"(installed: {', '.join(installed)})")
        plugin = load_driver(driver)
        if key not in plugin.roles:
            raise RigError(source, f"[{key}] driver",
                           f"driver {driver!r} does not serve the {key} role "
                           f"(it serves: {', '.join(sorted(plugin.roles))})")
        validate = getattr(plugin, "validate", None)
        if validate is not None:
            validate(key, value, source=source, tables=doc)
        roles[key] = value
    site = None
    if "site" in tables:
        s = read_settings(tables["site"], SITE_SCHEMA, source=source, section="site", ignore=())
        site = Site(s["latitude"], s["longitude"], s["elevation"], s["name"])
    return RigSpec(source, roles, tables, site)


#: Where load_rig also looks for a rig file that is not there: a bare name, or the README's
#: examples/rigs/NAME (and examples/autopilot/NAME, the autopilot's simulated rig).
_EXAMPLE_PREFIXES = (Path("."), Path("examples/rigs"))


def shipped_examples(kind: str) -> dict[str, Path]:
    """The example TOML files shipped with indical under examples/KIND/ (installed as the
    package `indical.examples.KIND`: rigs, autopilot), by file name."""
    try:
        folder = resources.files("indical.examples") / kind
    except ModuleNotFoundError:
        return {}
    if not folder.is_dir():
        return {}
    return {p.name: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def shipped_example(path: Path, kind: str) -> Path | None:
    """The shipped example that `path` names when it is not a file here: a bare name (with or
    without .toml) or examples/KIND/NAME, as the README writes them; None otherwise."""
    if path.exists() or path.parent not in (Path("."), Path("examples") / kind):
        return None
    name = path.name if path.suffix == ".toml" else f"{path.name}.toml"
    return shipped_examples(kind).get(name)


def example_rigs() -> dict[str, Path]:
    """The example rig files shipped with indical (examples/rigs/), by file name."""
    return shipped_examples("rigs")


def load_rig(path: str | Path | None = None) -> RigSpec:
    """Read a rig file; with no path, the built-in simulated observatory. A bare name or
    examples/rigs/NAME that is not a file here is looked up among the shipped example rigs."""
    if path is None:
        return parse_rig(DEFAULT_RIG_TOML, "built-in simulated observatory")
    path = Path(path)
    path = shipped_example(path, "rigs") or shipped_example(path, "autopilot") or path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        shipped = ""
        if path.parent in _EXAMPLE_PREFIXES:
            names = ", ".join(sorted(example_rigs()))
            shipped = f" (example rigs shipped with indical: {names})"
        raise RigError(str(path), "file", f"no such rig file{shipped}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RigError(str(path), "file", f"can't read it ({exc})") from None
    return parse_rig(text, str(path))


@dataclass
class _Session:
    source: str
    tables: Mapping[str, Mapping[str, Any]]
    site: Site | None
    clock: Clock = field(default_factory=SystemClock)
    shared: dict[str, Any] = field(default_factory=dict)
    #: what drivers learn that outlives one rig of the same command (servers found unreachable)
    memo: dict[str, Any] = field(default_factory=dict)
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def on_close(self, callback: Callable[[], None]) -> None:
        self._closers.append(callback)


class Rig:
    """Connected devices by role. Absent roles are None. Use as a context manager, or call
    disconnect(), which leaves every device safe (panel light off, relays off)."""

    def __init__(self, spec: RigSpec, devices: dict[str, Device], session: _Session) -> None:
        self.spec = spec
        self.devices = devices
        self._session = session
        self._closed = False

    @property
    def clock(self) -> Clock:
        return self._session.clock

    @property
    def site(self) -> Site | None:
        return self.spec.site

    @property
    def camera(self) -> Camera | None:
        return self.devices.get("camera")  # type: ignore[return-value]

    @property
    def panel(self) -> LightPanel | None:
        return self.devices.get("panel")  # type: ignore[return-value]

    @property
    def cover(self) -> Cover | None:
        return self.devices.get("cover")  # type: ignore[return-value]

    @property
    def filter_wheel(self) -> FilterWheel | None:
        return self.devices.get("filter_wheel")  # type: ignore[return-value]

    @property
    def relay(self) -> Relay | None:
        return self.devices.get("relay")  # type: ignore[return-value]

    @property
    def mount(self) -> Mount | None:
        return self.devices.get("mount")  # type: ignore[return-value]

    @property
    def weather(self) -> Weather | None:
        return self.devices.get("weather")  # type: ignore[return-value]

    def require(self, *roles: str) -> None:
        """Raise a clear error when a role a sequence needs is not in the rig."""
        missing = [r for r in roles if r not in self.devices]
        if missing:
            raise RigError(self.spec.source, ", ".join(f"[{r}]" for r in missing),
                           "this sequence needs that role; add it to the rig file")

    def disconnect(self) -> None:
        if self._closed:
            return
        self._closed = True
        errors: list[str] = []
        for role, device in reversed(list(self.devices.items())):
            try:
                device.disconnect()
            except Exception as exc:  # keep going: every other device must still be released
                errors.append(f"{role}: {exc}")
        for closer in reversed(self._session._closers):
            try:
                closer()
            except Exception as exc:
                errors.append(str(exc))
        if errors:
            raise IndicalError("while disconnecting the rig: " + "; ".join(errors))

    def __enter__(self) -> "Rig":
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()


def open_rig(spec: RigSpec, roles: tuple[str, ...] | None = None, *,
             memo: dict[str, Any] | None = None) -> Rig:
    """Connect the devices of a rig (all roles, or those named). Rigs opened with the same
    `memo` dict share what drivers learn, like a server that could not be reached."""
    session = _Session(spec.source, spec.tables, spec.site,
                       memo=memo if memo is not None else {})
    devices: dict[str, Device] = {}
    rig = Rig(spec, devices, session)
    try:
        # The clock comes from a driver that offers one (the simulator's), else the system.
        for role in ROLES:
            if role in spec.roles and (roles is None or role in roles):
                plugin = load_driver(spec.driver_of(role))
                device = plugin.open(role, spec.roles[role], session)
                if not isinstance(device, ROLE_INTERFACES[role]):
                    raise RigError(spec.source, f"[{role}] driver",
                                   f"driver {spec.driver_of(role)!r} returned a "
                                   f"{type(device).__name__}, not a {ROLE_INTERFACES[role].__name__}")
                devices[role] = device
    except BaseException:
        try:
            rig.disconnect()
        except IndicalError:
            pass
        raise
    return rig


__all__ = ["RigSpec", "Rig", "load_rig", "parse_rig", "open_rig", "ROLES", "PluginNotFound"]
