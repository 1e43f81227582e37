"""PLAN.toml: the tasks of a night, in order of priority within each window, read and checked
once, with errors naming the file, the task and the key."""

from __future__ import annotations

import enum
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indical.errors import IndicalError


class PlanError(IndicalError):
    """A plan file is wrong: the message names the file, the task and the key."""

    def __init__(self, source: object, where: str, problem: str) -> None:
        super().__init__(f"{source}: {where}: {problem}")


class Window(enum.Enum):
    """Parts of a night at the site. dusk: sunset to the end of nautical twilight (sun -12 deg);
    night: until nautical dawn; dawn: until sunrise; day: until the next sunset."""

    DUSK = "dusk"
    NIGHT = "night"
    DAWN = "dawn"
    DAY = "day"


ORDER = (Window.DUSK, Window.NIGHT, Window.DAWN, Window.DAY)
WHEN = tuple(w.value for w in ORDER) + ("arrival",)
CONDITIONS = ("needed", "clear", "cloudy")


@dataclass(frozen=True)
class Task:
    """One [[task]]: a sequence file to run, or a folder of lights to calibrate."""

    name: str
    when: str                            # a Window's value, or "arrival"
    sequence: Path | None = None
    calibrate: Path | None = None
    only_if: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def window(self) -> Window | None:
        return None if self.when == "arrival" else Window(self.when)


@dataclass(frozen=True)
class Plan:
    source: str
    tasks: tuple[Task, ...]

    def in_window(self, window: Window) -> list[Task]:
        return [t for t in self.tasks if t.when == window.value]

    @property
    def arrivals(self) -> list[Task]:
        return [t for t in self.tasks if t.when == "arrival"]


def shipped_sequence(name: str) -> Path | None:
    """A sequence shipped with indical (`twilight_flats.py`), from the installed package."""
    import indical.shipped_sequences as shipped
    for folder in shipped.__path__:
        candidate = Path(folder) / name
        if candidate.is_file():
            return candidate
    return None


def _sequence_path(text: str, base: Path, source: str, where: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = base / path
    if path.is_file():
        return path
    shipped = shipped_sequence(text)
    if shipped is not None and "/" not in text:
        return shipped
    raise PlanError(source, where, f"no sequence file {text!r} (not beside the plan, and not a "
                    "shipped one like 'panel_flats.py', 'twilight_flats.py', 'dark_library.py')")


_KEYS = {"name", "sequence", "calibrate", "when", "only_if", "set"}


def parse_plan(text: str, source: str, base: Path) -> Plan:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(source, "TOML", f"not valid TOML ({exc})") from None
    unknown = set(doc) - {"task"}
    if unknown:
        raise PlanError(source, ", ".join(sorted(unknown)),
                        "unknown table (a plan has only [[task]] tables)")
    raw = doc.get("task")
    if not isinstance(raw, list) or not raw:
        raise PlanError(source, "[[task]]", "no tasks: add [[task]] tables")
    tasks: list[Task] = []
    names: set[str] = set()
    for i, t in enumerate(raw, 1):
        where = f"task {i}"
        if not isinstance(t, dict):
            raise PlanError(source, where, "must be a [[task]] table")
        name = t.get("name")
        if not isinstance(name, str) or not name.strip():
            raise PlanError(source, f"{where} name", "missing (give each task a name)")
        where = f"task {name!r}"
        if name in names:
            raise PlanError(source, f"{where} name", "two tasks have this name")
        names.add(name)
        for key in t:
            if key not in _KEYS:
                raise PlanError(source, f"{where} {key}",
                                f"unknown key (known: {', '.join(sorted(_KEYS))})")
        when = t.get("when")
        if when not in WHEN:
            raise PlanError(source, f"{where} when", f"must be one of {', '.join(WHEN)}, "
                            f"got {when!r}")
        has_seq, has_cal = "sequence" in t, "calibrate" in t
        if has_seq == has_cal:
            raise PlanError(source, where, "give either sequence = FILE or calibrate = FOLDER")
        only_if = t.get("only_if", [])
        if not isinstance(only_if, list) or any(c not in CONDITIONS for c in only_if):
            raise PlanError(source, f"{where} only_if",
                            f"must be a list of {', '.join(CONDITIONS)}, got {only_if!r}")
        if "clear" in only_if and "cloudy" in only_if:
            raise PlanError(source, f"{where} only_if", "'clear' and 'cloudy' never both hold")
        settings = t.get("set", {})
        if not isinstance(settings, dict) or any(not k.isupper() for k in settings):
            raise PlanError(source, f"{where} set", "must be a table of upper-case settings, "
                            "like { FLATS_PER_FILTER = 10 }")
        sequence = calibrate = None
        if has_seq:
            if when == "arrival":
                raise PlanError(source, f"{where} when", "'arrival' is for calibrate tasks")
            if not isinstance(t["sequence"], str):
                raise PlanError(source, f"{where} sequence", "must be a file name")
            sequence = _sequence_path(t["sequence"], base, source, f"{where} sequence")
        else:
            if when not in ("arrival", "day", "night", "dawn", "dusk"):
                raise PlanError(source, f"{where} when", "calibrate tasks run at a window or on "
                                "arrival")
            if not isinstance(t["calibrate"], str):
                raise PlanError(source, f"{where} calibrate", "must be a folder")
            if "needed" in only_if:
                raise PlanError(source, f"{where} only_if", "'needed' is for sequence tasks "
                                "(a calibrate task does only the lights not done yet)")
            if settings:
                raise PlanError(source, f"{where} set", "only sequence tasks have settings")
            calibrate = Path(t["calibrate"]).expanduser()
            if not calibrate.is_absolute():
                calibrate = base / calibrate
        tasks.append(Task(name, when, sequence, calibrate, tuple(only_if), dict(settings)))
    return Plan(source, tuple(tasks))


def load_plan(path: Path) -> Plan:
    """Read a plan file. A bare name or examples/autopilot/NAME that is not a file here is the
    example plan of that name shipped with indical (`indical autopilot plan.toml`)."""
    from indical.rig import shipped_example, shipped_examples

    path = Path(path)
    path = shipped_example(path, "autopilot") or path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        shipped = ""
        if path.parent in (Path("."), Path("examples/autopilot")):
            names = ", ".join(sorted(n for n in shipped_examples("autopilot") if "rig" not in n))
            shipped = f" (example plans shipped with indical: {names})" if names else ""
        raise PlanError(path, "file", f"no such plan file{shipped}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(path, "file", f"can't read it ({exc})") from None
    return parse_plan(text, str(path), path.parent)
