"""Frame sinks: where frames leave a sequence. The FITS folder sink writes each frame atomically
into a folder per night; the calibration library adds an indexed sink on the same interface."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol, runtime_checkable

from indical.fits.keywords import header_to_meta
from indical.fits.header import read_primary_header
from indical.filenames import safe_name
from indical.frame import Binning, Frame, FrameMeta, FrameType


@dataclass(frozen=True)
class FrameQuery:
    """A frame configuration, for "how many of these do we have?". None matches anything.

    Temperature is the sensor's measured one (its set point when not measured), within
    `temperature_tol_c`."""

    frame_type: FrameType
    camera: str | None = None
    filter: str | None = None
    binning: Binning | None = None
    gain: float | None = None
    offset: float | None = None
    readout_mode: str | None = None
    exposure_s: float | None = None
    exposure_rel_tol: float = 0.02
    since: datetime | None = None
    temperature_c: float | None = None
    temperature_tol_c: float = 1.0
    flat_source: str | None = None      # flats: PANEL or SKY (frame.FLAT_SOURCES)

    def matches(self, meta: FrameMeta) -> bool:
        if meta.frame_type is not self.frame_type:
            return False
        for name in ("camera", "filter", "binning", "gain", "offset", "readout_mode",
                     "flat_source"):
            want = getattr(self, name)
            if want is not None and getattr(meta, name) != want:
                return False
        if self.exposure_s is not None:
            if abs(meta.exposure_s - self.exposure_s) > self.exposure_rel_tol * max(self.exposure_s, 1e-6):
                return False
        if self.since is not None and (meta.start is None or meta.start < self.since):
            return False
        if self.temperature_c is not None:
            t = meta.sensor_temp_c if meta.sensor_temp_c is not None else meta.setpoint_temp_c
            if t is None or abs(t - self.temperature_c) > self.temperature_tol_c:
                return False
        return True


@runtime_checkable
class FrameSink(Protocol):
    def write(self, frame: Frame) -> Path:
        """Store a frame; returns where it went."""

    def count(self, query: FrameQuery) -> int:
        """How many stored frames match, so an interrupted run captures only the rest."""


#: Sub-folder of a night's folder for frames a sequence rejected: kept for inspection, never
#: counted as taken and never ingested as calibration frames.
REJECTED_DIR = "rejected"


def is_rejected_path(path: Path) -> bool:
    return REJECTED_DIR in Path(path).parts[:-1]


def night_of(when: datetime, longitude_deg: float | None = None) -> str:
    """The observing night a time belongs to, named by the local date of its evening.

    Local mean solar time from the longitude (UTC without one); the day turns at local noon, so
    dusk and the following dawn share one night."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    local = when.astimezone(timezone.utc) + timedelta(hours=(longitude_deg or 0.0) / 15.0)
    return (local - timedelta(hours=12)).date().isoformat()


def frame_filename(frame: Frame) -> str:
    """Stem without the sequence number: type, filter, exposure, binning."""
    m = frame.meta
    parts = [m.frame_type.value]
    if m.filter:
        parts.append(safe_name(m.filter))
    parts.append(f"{m.exposure_s:.4g}s")
    parts.append(str(m.binning))
    return "_".join(parts)


class FitsFolderSink:
    """Writes FITS files into ROOT/NIGHT/, never overwriting: each file gets the next free
    sequence number, claimed atomically."""

    def __init__(self, root: Path, *, longitude_deg: float | None = None) -> None:
        self.root = Path(root)
        self.longitude_deg = longitude_deg
        self.written: list[Path] = []
        self._metas: dict[Path, FrameMeta | None] = {}
        self._reserved: set[Path] = set()     # names promised to writes not yet done
        self._names = threading.Lock()

    def count(self, query: FrameQuery) -> int:
        """Frames under the root matching the query (headers read once per file)."""
        if not self.root.exists():
            return 0
        n = 0
        for path in self.root.rglob("*.fits"):
            if path.name.startswith(".") or is_rejected_path(path.relative_to(self.root)):
                continue
            if path not in self._metas:
                try:
                    self._metas[path] = header_to_meta(read_primary_header(path))
                except (OSError, ValueError):
                    self._metas[path] = None  # not ours to judge here; ingest reports it
            meta = self._metas[path]
            if meta is not None and query.matches(meta):
                n += 1
        return n

    def folder_for(self, frame: Frame) -> Path:
        when = frame.meta.start or datetime.now(timezone.utc)
        return self.root / night_of(when, self.longitude_deg)

    def write_rejected(self, frame: Frame, reason: str, *, path: Path | None = None) -> Path:
        """Keep a rejected frame in NIGHT/rejected/ (or at `path`, reserved with
        `reserve(frame, rejected=reason)`), its header saying why (REJECTED)."""
        flagged = frame.with_meta(extra={**frame.meta.extra, "REJECTED": reason[:68]})
        return self.write(flagged, folder=self.folder_for(frame) / REJECTED_DIR, path=path)

    def reject(self, path: Path, reason: str) -> Path:
        """Move a frame written earlier into NIGHT/rejected/, flagged with the reason."""
        from indical.fits.io import read_frame
        path = Path(path)
        frame = read_frame(path)
        moved = self.write_rejected(frame.with_meta(frame_type=frame.meta.frame_type), reason)
        path.unlink()
        self._metas.pop(path, None)
        if path in self.written:
            self.written.remove(path)
        return moved

    def reserve(self, frame: Frame, *, rejected: str | None = None) -> Path:
        """The name the frame will be written under (the next free sequence number), kept for
        it until `write(..., path=)` (see write_behind.py). `rejected`: the reason, for a frame
        kept in NIGHT/rejected/."""
        folder = self.folder_for(frame) / REJECTED_DIR if rejected else self.folder_for(frame)
        with self._names:
            path = self._next_free(folder, frame_filename(frame))
            self._reserved.add(path)
        return path

    def _next_free(self, folder: Path, stem: str, after: int = 0) -> Path:
        pattern = re.compile(re.escape(stem) + r"_(\d{4,})\.fits$")
        taken = [int(m.group(1)) for p in (folder.iterdir() if folder.is_dir() else ())
                 if (m := pattern.match(p.name))]
        taken += [int(m.group(1)) for p in self._reserved
                  if p.parent == folder and (m := pattern.match(p.name))]
        return folder / f"{stem}_{max(taken + [after], default=0) + 1:04d}.fits"

    def write(self, frame: Frame, *, folder: Path | None = None,
              path: Path | None = None) -> Path:
        """Write the frame atomically under the next free name in its night's folder (or
        `folder`), or under `path` reserved earlier. Should another program have taken that
        name meanwhile, the next free one is used: the returned path is where it went."""
        from indical.fits.io import write_frame  # astropy: imported by those who write frames
        if path is not None:
            folder = path.parent
        folder = folder if folder is not None else self.folder_for(frame)
        folder.mkdir(parents=True, exist_ok=True)
        stem = frame_filename(frame)
        promised = path
        try:
            while True:
                if path is None:
                    with self._names:
                        path = self._next_free(folder, stem)
                try:
                    write_frame(frame, path)
                except FileExistsError:
                    path = None
                    continue
                self.written.append(path)
                self._metas[path] = frame.meta
                return path
        finally:
            if promised is not None:
                with self._names:
                    self._reserved.discard(promised)
