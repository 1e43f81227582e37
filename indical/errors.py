"""Errors indical raises. Each names the device, file or key involved and says what to do."""

from __future__ import annotations

import errno
import os
from pathlib import Path


class IndicalError(Exception):
    """Base of every error indical raises on purpose."""


class DeviceError(IndicalError):
    """A device failed at something it was asked to do."""

    def __init__(self, device: str, action: str, problem: str, hint: str = "") -> None:
        self.device = device
        self.action = action
        self.problem = problem
        self.hint = hint
        text = f"{device}: {action}: {problem}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class DeviceTimeout(DeviceError):
    """A device did not finish in time."""

    def __init__(self, device: str, action: str, timeout_s: float, hint: str = "") -> None:
        super().__init__(device, action, f"timed out after {timeout_s:g} s", hint)
        self.timeout_s = timeout_s


class DeviceNotFound(DeviceError):
    """A device named in the rig is not there; the message lists the ones that are."""

    def __init__(self, device: str, where: str, available: list[str]) -> None:
        have = ", ".join(sorted(available)) if available else "none"
        super().__init__(device, f"looking for it on {where}", "no such device",
                         f"devices there: {have}")
        self.available = list(available)


class NotSupported(DeviceError):
    """The device lacks a capability (a relay panel is not dimmable, a Flat-Man has no cover)."""

    def __init__(self, device: str, capability: str) -> None:
        super().__init__(device, capability, "not supported by this device")


class RigError(IndicalError):
    """A rig file is wrong: the message names the file and the key."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        super().__init__(f"{source}: {key}: {problem}")


class FitsError(IndicalError):
    """A FITS file could not be read, classified or written."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class OutputError(IndicalError):
    """An output can't go where it was asked to: a missing or read-only folder, a file where a
    folder should be, an input that would be overwritten."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        super().__init__(f"{path}: {problem}")


# What to do about an operating-system error, by errno; the message names the file.
_OS_HINTS = {
    errno.ENOSPC: "the disk is full; free some space and run again",
    errno.EDQUOT: "your disk quota is used up; free some space and run again",
    errno.EFBIG: "the file is larger than this process may write (ulimit -f); raise the limit",
    errno.EACCES: "permission denied; fix the permissions or choose another folder",
    errno.EPERM: "not permitted; fix the permissions or choose another folder",
    errno.EROFS: "the filesystem is read-only; choose another folder",
    errno.ENOENT: "no such file or folder; check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
    errno.EISDIR: "is a folder, not a file; name a file",
    errno.EIO: "input/output error; check the disk",
}


def describe_os_error(exc: OSError, path: object = None) -> str:
    """One line for an OSError: the file it is about (`path` when the error names none) and
    what to do."""
    where = exc.filename if exc.filename is not None else path
    hint = _OS_HINTS.get(exc.errno or 0) or (exc.strerror or str(exc))
    return f"{where}: {hint}" if where is not None else f"{exc.strerror or exc}: {hint}"


def check_output_file(path: Path, *, what: str = "output") -> Path:
    """Refuse, before any work, an output file whose folder is missing or not writable, or
    that names a folder."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(path, f"is a folder; name the {what} file")
    _writable_folder(path.parent)
    return path


def check_output_folder(folder: Path) -> Path:
    """Refuse, before any work, an output folder that is a file, is not writable, or whose
    parent folder is missing (a folder is made, never a whole missing path)."""
    folder = Path(folder)
    if folder.exists():
        if not folder.is_dir():
            raise OutputError(folder, "is a file, not a folder; choose a folder")
        _writable_folder(folder)
    else:
        _writable_folder(folder.parent)
    return folder


def _writable_folder(folder: Path) -> None:
    folder = Path(folder) if str(folder) else Path(".")
    if not folder.exists():
        raise OutputError(folder, "the folder does not exist; create it first or choose another")
    if not folder.is_dir():
        raise OutputError(folder, "is a file, not a folder; check the path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(folder, "can't write there (permission denied); fix the permissions "
                                  "or choose another folder")
