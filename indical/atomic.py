"""Atomic file writes: a temporary file in the same folder, then renamed or linked into place,
so no reader ever sees half a file. The finished file gets the permissions any new file would
get (0666 less the umask), not the private 0600 of a temporary file.

A writer holds an exclusive lock (flock) on its temporary file while it writes; the kernel
drops it when the process ends, however it ends. So a temporary file nobody holds a lock on was
left by a killed writer, and `remove_stale_temporaries` (run by `indical library sweep`) can
remove it at once without waiting for it to grow old or guessing from its age."""

from __future__ import annotations

import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc: read it by setting it, then put it back
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str | Path, *, text: bool = False, overwrite: bool = False,
                fsync: bool = True) -> Iterator[IO]:
    """Open a temporary file to write; on success it becomes `path`.

    Without `overwrite`, an existing `path` raises FileExistsError (checked atomically with a
    hard link, so two writers can't both claim one name). With `fsync`, data and the folder
    entry are flushed to disk before returning. On any error the temporary file is removed, and
    an OSError names `path` (never the temporary file), so the message says which output
    failed: a full disk, a read-only folder."""
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX,
                                        dir=path.parent)
        tmp = Path(tmp_name)
        fcntl.flock(fd, fcntl.LOCK_EX)  # "being written": see remove_stale_temporaries
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8"} if text else {})) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            tmp.unlink()
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and (exc.filename is None or Path(str(exc.filename)).name
                                         .startswith(f".{path.name}.")):
            named = type(exc)(exc.errno, exc.strerror, str(path)) if exc.errno else exc
            raise named from exc
        raise
    if fsync:
        _fsync_dir(path.parent)


# Temporary files are named .NAME.XXXXXXXX.tmp beside their target: `library sweep` and
# `is_stale_temporary` recognise them.
TEMP_SUFFIX = ".tmp"


def is_temporary_name(name: str) -> bool:
    """True for the name of a temporary file atomic_file makes."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX) and name.count(".") >= 3


def remove_stale_temporaries(folder: Path, *, recursive: bool = True) -> list[Path]:
    """Remove the temporary files atomic_file left in `folder` when its writer was killed
    (those no live writer holds locked); returns what was removed. Files being written right
    now are left alone."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed: list[Path] = []
    candidates = folder.rglob(".*" + TEMP_SUFFIX) if recursive else folder.glob(".*" + TEMP_SUFFIX)
    for path in sorted(candidates):
        if not (is_temporary_name(path.name) and path.is_file() and not path.is_symlink()):
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live writer holds it
        else:
            path.unlink(missing_ok=True)
            removed.append(path)
        finally:
            os.close(fd)
    return removed
