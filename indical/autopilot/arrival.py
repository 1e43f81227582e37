"""Lights arriving in a folder: watched with watchdog (inotify on Linux, the platform's own
notification elsewhere), each handed on once it is completely written.

A light is complete when its FITS structure is whole (every header has its END, the file ends
exactly after the last data block) and either the writer closed it after its last write
(inotify's close-after-write) or its size and modification time have not changed for
`settle_s` seconds (writers that keep the file open, platforms without close events). A file
being written is never handed on: its size is short of what its headers announce, or its last
header has no END yet."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from indical.calib.ingest import is_fits_name
from indical.fits.header import BLOCK, HeaderError, read_header_at


def fits_complete(path: Path) -> bool:
    """True when the file is whole FITS: each HDU's header ends (END) and its data is all
    there, padded to 2880 bytes, and nothing follows the last HDU but nothing is missing."""
    try:
        size = path.stat().st_size
        if size == 0 or size % BLOCK:
            return False
        with open(path, "rb") as fh:
            if fh.read(9) != b"SIMPLE  =":
                return False
            offset = 0
            while offset < size:
                header, data_start = read_header_at(fh, offset, where=str(path))
                naxis = int(header.get("NAXIS", 0) or 0)
                n = 1 if naxis else 0
                for i in range(1, naxis + 1):
                    n *= int(header.get(f"NAXIS{i}", 0) or 0)
                bits = abs(int(header.get("BITPIX", 8)))
                count = int(header.get("GCOUNT", 1) or 1)
                extra = int(header.get("PCOUNT", 0) or 0)
                nbytes = bits // 8 * count * (extra + n) if (n or extra) else 0
                offset = data_start + -(-nbytes // BLOCK) * BLOCK
            return offset == size
    except (OSError, HeaderError, EOFError, ValueError, TypeError):
        return False


@dataclass(frozen=True)
class Arrived:
    path: Path
    size: int
    mtime_ns: int
    complete: bool     # False: left alone but not whole FITS


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    changed_at: float      # time.monotonic() of the last change seen
    closed: bool = False   # closed after its last write


class Arrivals:
    """Watches a folder (recursively; `calibrated/` output folders are left alone) and tells
    which new FITS files are complete. Thread-safe: watchdog calls in from its own thread."""

    def __init__(self, folder: Path, *, settle_s: float = 5.0) -> None:
        self.folder = Path(folder)
        self.settle_s = settle_s
        self._lock = threading.Lock()
        self._seen: dict[Path, _Seen] = {}
        self._observer = None

    # -- watchdog side --------------------------------------------------------------------------
    def _wanted(self, path: Path) -> bool:
        return is_fits_name(path) and "calibrated" not in path.relative_to(self.folder).parts[:-1]

    def _touch(self, path: Path, closed: bool = False) -> None:
        try:
            if not self._wanted(path):
                return
            st = path.stat()
        except (OSError, ValueError):
            return
        with self._lock:
            old = self._seen.get(path)
            if old is None or (old.size, old.mtime_ns) != (st.st_size, st.st_mtime_ns):
                self._seen[path] = _Seen(st.st_size, st.st_mtime_ns, time.monotonic(), closed)
            elif closed:
                old.closed = True

    def start(self) -> "Arrivals":
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        owner = self

        class Handler(FileSystemEventHandler):
            def on_created(self, event):
                if not event.is_directory:
                    owner._touch(Path(os.fsdecode(event.src_path)))

            def on_modified(self, event):
                if not event.is_directory:
                    owner._touch(Path(os.fsdecode(event.src_path)))

            def on_moved(self, event):   # written elsewhere, then renamed in: complete at once
                if not event.is_directory:
                    owner._touch(Path(os.fsdecode(event.dest_path)), closed=True)

            def on_closed(self, event):
                if not event.is_directory:
                    owner._touch(Path(os.fsdecode(event.src_path)), closed=True)

        self.folder.mkdir(parents=True, exist_ok=True)
        self._observer = Observer()
        self._observer.schedule(Handler(), str(self.folder), recursive=True)
        self._observer.start()
        # files already there (written while indical was not running) count as arrived
        for path in sorted(self.folder.rglob("*")):
            if path.is_file():
                self._touch(path, closed=True)
        return self

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=10)
            self._observer = None

    def __enter__(self) -> "Arrivals":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the autopilot's side -------------------------------------------------------------------
    def complete(self) -> list[Arrived]:
        """Files settled now: complete ones, and ones closed by their writer and left alone
        for `settle_s` but not whole FITS (cut short, or not FITS), never calibrated. Each is returned once (it
        comes back only if it changes again)."""
        now = time.monotonic()
        ready: list[Arrived] = []
        with self._lock:
            candidates = [(p, s) for p, s in self._seen.items()
                          if s.closed or now - s.changed_at >= self.settle_s]
        for path, seen in candidates:
            try:
                st = path.stat()
            except OSError:
                with self._lock:
                    self._seen.pop(path, None)   # gone (renamed, deleted)
                continue
            if (st.st_size, st.st_mtime_ns) != (seen.size, seen.mtime_ns):
                self._touch(path)
                continue
            whole = fits_complete(path)
            if not whole and not (seen.closed and now - seen.changed_at >= self.settle_s):
                continue   # still being written, perhaps by appends that each close: wait
            with self._lock:
                if self._seen.get(path) is seen:
                    del self._seen[path]
            ready.append(Arrived(path, st.st_size, st.st_mtime_ns, whole))
        return sorted(ready, key=lambda a: a.path)

    def pending(self) -> int:
        with self._lock:
            return len(self._seen)
