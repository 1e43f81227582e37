"""The sequence files shipped with indical, found by name: the `sequences/` folder, installed as
the `indical.shipped_sequences` package so a wheel carries it (an editable install maps it to
the checkout's folder). `indical run panel_flats.py` and the demos find them here."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from indical.errors import IndicalError

#: Where `indical run` also looks for a file that is not there: a bare name, or the README's
#: sequences/NAME.
_SHIPPED_PREFIXES = (Path("."), Path("sequences"))


def shipped_folder() -> Path:
    """The folder the shipped sequence files are in."""
    try:
        return Path(str(resources.files("indical.shipped_sequences")))
    except ModuleNotFoundError:
        raise IndicalError("indical.shipped_sequences is not installed: reinstall indical") \
            from None


def shipped_names() -> list[str]:
    """The shipped sequence files' names (panel_flats.py, ...)."""
    return sorted(p.name for p in shipped_folder().glob("*.py") if p.name != "__init__.py")


def shipped_sequence(name: str) -> Path:
    """A shipped sequence file by its name, with or without .py."""
    file = name if name.endswith(".py") else f"{name}.py"
    if file in shipped_names():
        return shipped_folder() / file
    raise IndicalError(f"{name}: no such file, nor a shipped sequence of that name (shipped: "
                       f"{', '.join(shipped_names())})")


def find_sequence(given: Path) -> tuple[Path, bool]:
    """The sequence file to run for `given`, and whether it is a shipped one found by name: the
    file itself when it exists, else, for a bare name or sequences/NAME, the shipped file of
    that name."""
    if given.exists() or given.parent not in _SHIPPED_PREFIXES:
        return given, False
    return shipped_sequence(given.name), True
