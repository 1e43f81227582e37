"""File names made from header text, and outputs kept inside their folder.

Header values (FILTER, OBJECT, INSTRUME, READMODE...) come from other programs and other people:
'x/../../name' or 'R/G' must not choose where a file goes. Every file name built from such text
goes through `safe_name`, and every output path built under a folder through `path_inside`."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from indical.errors import IndicalError

MAX_NAME_CHARS = 40
_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")


class UnsafePath(IndicalError):
    """An output path that would land outside the folder it belongs in."""


def safe_name(text: object, *, max_chars: int = MAX_NAME_CHARS) -> str:
    """A file-name part made from header text: ASCII letters, digits, '.', '+' and '-' only
    (no path separators, no '_', which separates the parts of indical's names), no leading
    dot or dash, at most `max_chars` characters. Text that passes unchanged is kept as it is;
    anything changed gets '-' and 8 hex digits of the original's SHA-256, so distinct values
    stay distinct ('R/G' and 'R-G', 'Hα' and 'Hβ')."""
    original = "" if text is None else str(text)
    cleaned = _UNSAFE.sub("-", original).lstrip(".-").rstrip("-")
    if cleaned == original and 0 < len(cleaned) <= max_chars:
        return cleaned
    digest = hashlib.sha256(original.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    keep = max(0, max_chars - len(digest) - 1)
    stem = cleaned[:keep].rstrip(".-")
    return f"{stem}-{digest}" if stem else f"x-{digest}"


def path_inside(folder: Path, name: str) -> Path:
    """FOLDER/NAME, refused (UnsafePath) unless it is a plain name that resolves inside
    FOLDER (symbolic links followed)."""
    folder = Path(folder)
    path = folder / name
    if Path(name).name != name or name in ("", ".", ".."):
        raise UnsafePath(f"{path}: the file name {name!r} is not a plain name; nothing written")
    if not path.resolve().is_relative_to(folder.resolve()):
        raise UnsafePath(f"{path}: resolves to {path.resolve()}, outside {folder}; nothing "
                         f"written (a link in the folder points elsewhere?)")
    return path
