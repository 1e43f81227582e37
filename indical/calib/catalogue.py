"""The masters that may calibrate lights, as matching sees them, with their pixels loaded once.

Built from the calibration library (bias, dark, flat masters with expiry from the library's
per-type ages; sky flats recognised by their header) plus the bad pixel maps."""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from indical.calib.match import MasterInfo, MasterKind
from indical.calib.output import master_pixels


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


class MasterCatalogue:
    """Master records and a small cache of their pixels (float32, read-only). Thread-safe."""

    def __init__(self, infos: list[MasterInfo],
                 loader: Callable[[Path], np.ndarray] = master_pixels, cache_size: int = 8) -> None:
        self.infos = list(infos)
        self._loader = loader
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, int], threading.Lock] = {}

    def pixels(self, info: MasterInfo) -> np.ndarray:
        key = (info.kind.value, info.id)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:  # one thread reads a given master; the others wait for it
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
            data = self._loader(info.path)
            data.setflags(write=False)
            with self._lock:
                self._cache[key] = data
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            return data

    @classmethod
    def from_library(cls, library, extra: list[MasterInfo] = ()) -> "MasterCatalogue":
        """Every master in `library` (a CalibrationLibrary), superseded ones included (sky flats
        of earlier twilights stay usable); `extra` adds bad pixel maps."""
        from indical.frame import FrameType

        infos: list[MasterInfo] = []
        for m in library.masters(include_superseded=True):
            if m.frame_type not in (FrameType.BIAS, FrameType.DARK, FrameType.FLAT):
                continue
            kind = MasterKind(m.frame_type.value)
            created = _aware(m.created_at)
            expires = created + timedelta(days=library.expiry_days(m.frame_type))
            sky, observed, source = False, None, None
            if kind is MasterKind.FLAT:
                sources = library.master_sources(m.id)
                source = m.flat_source   # recorded when built (FLATSRC); older masters: guessed
                sky = source == "SKY" or (source is None and is_sky_flat(
                    Path(m.path), [Path(f.path) for f in sources[:1]]))
                if sky:
                    source = "SKY"
                    observed = _mid_time([f.meta.start for f in sources]) or _header_mid_time(
                        Path(m.path))
            infos.append(MasterInfo(
                id=int(m.id), kind=kind, path=Path(m.path), config=m.config, created=created,
                filter=m.filter, exposure_s=m.exposure_s, superseded=m.superseded_by is not None,
                expires=expires, observed=observed, sky=sky, n_frames=m.n_frames,
                flat_source=source))
        return cls(infos + list(extra))


def is_sky_flat(path: Path, sources: list[Path] = ()) -> bool:
    """A master flat made from twilight sky: its header, or its first source frame's (a master
    keeps only what all sources share, and the sun altitude changes from frame to frame),
    carries the sun altitude or says sky or twilight."""
    for candidate in [path, *sources]:
        header = _header(candidate)
        if header is None:
            continue
        text = " ".join(str(header.get(k, "")) for k in ("IMAGETYP", "FLATSRC", "OBJECT")).lower()
        if "SUNALT" in header or "sky" in text or "twilight" in text:
            return True
    return False


def _header_mid_time(path: Path) -> datetime | None:
    """Middle of DATE-OBS .. DATE-END of a master (the first and last source frame)."""
    header = _header(path)
    if header is None:
        return None
    times = []
    for key in ("DATE-OBS", "DATE-END"):
        try:
            times.append(datetime.fromisoformat(str(header[key]).rstrip("Z")))
        except (KeyError, ValueError):
            pass
    return _mid_time(times)


def _header(path: Path) -> fits.Header | None:
    """A master's header, or None when it can't be read (a damaged master is reported when
    its pixels are loaded; astropy's warnings about it would only repeat that)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            return fits.getheader(path)
    except (OSError, ValueError):
        return None


def _mid_time(times: list[datetime | None]) -> datetime | None:
    known = sorted(_aware(t) for t in times if t is not None)
    if not known:
        return None
    return known[0] + (known[-1] - known[0]) / 2
