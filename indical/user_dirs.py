"""The user's folders for indical, after the XDG conventions (through platformdirs): data
(the calibration library, trained flat settings) in $XDG_DATA_HOME/indical, compiled helpers in
$XDG_CACHE_HOME/indical, and a private folder for files other processes of the same user read
(the flip-flat emulator's state) in $XDG_RUNTIME_DIR/indical."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import platformdirs

from indical.errors import IndicalError

APP = "indical"


def data_dir() -> Path:
    """$XDG_DATA_HOME/indical, usually ~/.local/share/indical."""
    return platformdirs.user_data_path(APP, appauthor=False)


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/indical, usually ~/.cache/indical."""
    return platformdirs.user_cache_path(APP, appauthor=False)


def private_dir() -> Path:
    """A folder only this user can enter, created if needed: $XDG_RUNTIME_DIR/indical, or
    TMPDIR/indical-UID when there is no runtime folder. An existing one is used only when it is
    a real folder (not a link) owned by this user and closed to others; else IndicalError."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        folder = Path(runtime) / APP
    else:
        folder = Path(tempfile.gettempdir()) / f"{APP}-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise IndicalError(f"{folder}: can't create a private folder ({exc.strerror or exc}); "
                           f"set XDG_RUNTIME_DIR to a folder of your own") from None
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode):
        raise IndicalError(f"{folder}: exists and is not a folder (a link?); remove it or set "
                           f"XDG_RUNTIME_DIR to a folder of your own")
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise IndicalError(f"{folder}: belongs to another user or is open to others (mode "
                           f"{stat.S_IMODE(info.st_mode):o}); remove it or set XDG_RUNTIME_DIR")
    return folder
