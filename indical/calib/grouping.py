"""Configuration keys and groups: which frames may be combined into one master.

Frames belong together when their camera configuration (camera, readout mode, gain, offset,
binning and image size) agrees and, by type, the filter (flats) and the exposure within a
tolerance (darks and dark flats).
Temperatures are clustered deterministically: sort, then split wherever two neighbours differ
by more than the width, so the same frames always give the same groups."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

from indical.calib.config import CameraConfig
from indical.calib.ingest import FrameRecord
from indical.filenames import safe_name
from indical.fits.keywords import meta_flat_source
from indical.frame import FrameType

KEY_NAMES = ("size", "filter", "exposure", "temp")


@dataclass(frozen=True)
class GroupingOptions:
    """How frames are grouped. `keys` picks the optional keys (always: type, camera, readout
    mode, gain, offset, binning); `filter` applies to flats only and `exposure` to darks and
    dark flats only, whatever is asked, because that is what makes them interchangeable."""

    keys: frozenset[str] = frozenset(KEY_NAMES)
    temp_width_c: float = 2.0
    exposure_rel_tol: float = 0.02
    min_group: int = 1

    def __post_init__(self) -> None:
        unknown = set(self.keys) - set(KEY_NAMES)
        if unknown:
            raise ValueError(f"unknown grouping key(s) {sorted(unknown)}; known: {', '.join(KEY_NAMES)}")
        if not self.temp_width_c > 0:
            raise ValueError(f"temperature width must be positive, got {self.temp_width_c}")
        if self.min_group < 1:
            raise ValueError(f"minimum group size must be at least 1, got {self.min_group}")

    @classmethod
    def parse(cls, text: str, **kwargs) -> "GroupingOptions":
        """From the command-line form 'size,filter,exposure,temp:1.5'."""
        keys: set[str] = set()
        width = kwargs.pop("temp_width_c", cls.temp_width_c)
        for part in (p.strip() for p in text.split(",") if p.strip()):
            name, _, arg = part.partition(":")
            if name == "temp" and arg:
                try:
                    width = float(arg)
                except ValueError:
                    raise ValueError(f"temp:WIDTH needs a number of degrees, got {arg!r}") from None
            keys.add(name)
        return cls(keys=frozenset(keys), temp_width_c=width, **kwargs)


@dataclass(frozen=True)
class ConfigKey:
    """The discrete part of a frame's configuration: the camera configuration without its
    temperature (clustered separately), and without the size unless grouping by size; the
    filter of flats and the exposure of darks. None means "not part of the key"."""

    frame_type: FrameType
    config: CameraConfig
    filter: str | None
    exposure_s: float | None
    flat_source: str | None = None   # flats: PANEL or SKY, never grouped together

    def label(self) -> str:
        """Short human and file-name friendly description (the filter name made safe by
        `safe_name`: a header value never chooses a folder)."""
        parts = [self.frame_type.value]
        if self.filter:
            parts.append(safe_name(self.filter))
        if self.flat_source:
            parts.append(self.flat_source.lower())
        if self.exposure_s is not None:
            parts.append(f"{self.exposure_s:g}s")
        c = self.config
        parts.append(f"bin{c.binning}")
        if c.gain is not None:
            parts.append(f"g{c.gain:g}")
        if c.offset is not None:
            parts.append(f"o{c.offset:g}")
        if c.width is not None:
            parts.append(c.size)
        if c.bayer_pattern:   # colour: the pattern at pixel (0, 0), so two phases never collide
            parts.append(safe_name(c.bayer_pattern))
        return "_".join(parts)


def config_key(record: FrameRecord, options: GroupingOptions) -> ConfigKey:
    """A frame's key under the options, with its exact exposure (`group_frames` merges exposures
    within the tolerance)."""
    m = record.meta
    kind = m.frame_type
    use_filter = "filter" in options.keys and kind is FrameType.FLAT
    use_exposure = "exposure" in options.keys and kind in (FrameType.DARK, FrameType.DARKFLAT)
    config = record.config.key()
    if "size" not in options.keys:
        config = replace(config, width=None, height=None)
    return ConfigKey(frame_type=kind, config=config,
                     filter=(m.filter or "") if use_filter else None,
                     exposure_s=m.exposure_s if use_exposure else None,
                     flat_source=meta_flat_source(m) if kind is FrameType.FLAT else None)


def cluster_values(values: Sequence[float], width: float) -> list[int]:
    """Cluster labels (0, 1, ...) for 1-D values: sorted, then split wherever two neighbours differ
    by more than `width`. Deterministic and order-independent; labels rise with the value."""
    order = sorted(range(len(values)), key=lambda i: (values[i], i))
    labels = [0] * len(values)
    label = 0
    for prev, cur in zip([None, *order[:-1]], order):
        if prev is not None and values[cur] - values[prev] > width:
            label += 1
        labels[cur] = label
    return labels


def _temperature(record: FrameRecord) -> float | None:
    t = record.meta.sensor_temp_c
    if t is None:
        t = record.meta.setpoint_temp_c
    return t if t is not None and math.isfinite(t) else None


@dataclass
class Group:
    """Frames that may be combined, with their shared key and mean temperature (if known)."""

    key: ConfigKey
    records: list[FrameRecord] = field(default_factory=list)

    @property
    def temperature_c(self) -> float | None:
        temps = [t for r in self.records if (t := _temperature(r)) is not None]
        return sum(temps) / len(temps) if temps else None

    @property
    def exposure_s(self) -> float:
        return sum(r.meta.exposure_s for r in self.records) / len(self.records)

    def label(self) -> str:
        t = self.temperature_c
        return self.key.label() + ("" if t is None else f"_{t:+.1f}C")


def _split_exposures(records: list[FrameRecord], rel_tol: float) -> list[list[FrameRecord]]:
    """Sorted by exposure, split where the next exposure is more than rel_tol above the previous."""
    rs = sorted(records, key=lambda r: (r.meta.exposure_s, r.path))
    out: list[list[FrameRecord]] = []
    for r in rs:
        if out and r.meta.exposure_s <= out[-1][-1].meta.exposure_s * (1 + rel_tol) + 1e-9:
            out[-1].append(r)
        else:
            out.append([r])
    return out


def group_frames(records: Iterable[FrameRecord], options: GroupingOptions) -> tuple[list[Group], list[Group]]:
    """Groups of at least `min_group` frames, and the smaller ones left over (for reporting).

    Deterministic: groups come out sorted by label, frames within a group by path."""
    by_key: dict[ConfigKey, list[FrameRecord]] = {}
    for r in records:
        by_key.setdefault(replace(config_key(r, options), exposure_s=None), []).append(r)
    groups: list[Group] = []
    for k, rs in by_key.items():
        exposure_sets = [rs]
        if (k.frame_type in (FrameType.DARK, FrameType.DARKFLAT) and "exposure" in options.keys):
            exposure_sets = _split_exposures(rs, options.exposure_rel_tol)
        for es in exposure_sets:
            if "temp" in options.keys:
                known = [r for r in es if _temperature(r) is not None]
                unknown = [r for r in es if _temperature(r) is None]
                labels = cluster_values([_temperature(r) for r in known], options.temp_width_c)
                clusters: dict[int, list[FrameRecord]] = {}
                for r, lab in zip(known, labels):
                    clusters.setdefault(lab, []).append(r)
                parts = list(clusters.values()) + ([unknown] if unknown else [])
            else:
                parts = [es]
            for part in parts:
                exp = None
                if k.frame_type in (FrameType.DARK, FrameType.DARKFLAT) and "exposure" in options.keys:
                    exp = sum(r.meta.exposure_s for r in part) / len(part)
                key = replace(k, exposure_s=exp)
                groups.append(Group(key, sorted(part, key=lambda r: r.path)))
    groups.sort(key=lambda g: (g.label(), g.records[0].path))
    big = [g for g in groups if len(g.records) >= options.min_group]
    small = [g for g in groups if len(g.records) < options.min_group]
    return big, small
