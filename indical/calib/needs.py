"""What calibration is still missing, from the lights in the library.

- uncovered: configurations of lights with no matching master (a dark of their exposure and
  temperature, a flat for their filter, a bias on CCDs), with how many raw frames exist and how
  many remain before `min_frames_for_master`;
- progress: groups of raw calibration frames not yet in a master, toward that count;
- expiring: current masters near or past their expiry age;
- captures: captures sequences have reported as running.
Sequences ask `remaining(...)` how many frames of a configuration they should still take.
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from indical.calib.calibrate import light_info
from indical.calib.catalogue import MasterCatalogue
from indical.calib.config import CameraConfig
from indical.calib.grouping import GroupingOptions, cluster_values, group_frames
from indical.calib.match import LightInfo, MasterKind, MatchRules, best_master
from indical.frame import FrameType
from indical.sinks import FrameQuery

DEFAULT_MIN_FRAMES = 10


@dataclass(frozen=True)
class NeedsOptions:
    """min_frames: frames per master (the library builds one when a group reaches it).
    ccd: lights are calibrated CCD-style (bias + any dark, scaled), so bias is needed and any
    dark exposure will do. bias: ask for bias masters too (default: only with ccd). since: only lights taken after this time count. expiry_warn_fraction:
    a master counts as expiring in the last fraction of its expiry age."""

    min_frames: int = DEFAULT_MIN_FRAMES
    ccd: bool = False
    rules: MatchRules = MatchRules()
    since: datetime | None = None
    expiry_warn_fraction: float = 0.2
    bias: bool | None = None  # also ask for bias masters; None: only when ccd

    @property
    def wants_bias(self) -> bool:
        return self.ccd if self.bias is None else self.bias


@dataclass(frozen=True)
class NeedConfig:
    """A master configuration that lights want: the frames to take to build it."""

    kind: MasterKind
    config: CameraConfig
    filter: str | None = None
    exposure_s: float | None = None

    @property
    def frame_type(self) -> FrameType:
        return FrameType(self.kind.value)

    def label(self) -> str:
        parts = [self.kind.value]
        if self.filter is not None:
            parts.append(f"filter {self.filter}")
        if self.exposure_s is not None:
            parts.append(f"{self.exposure_s:g} s")
        c = self.config
        if c.temperature_c is not None:
            parts.append(f"{c.temperature_c:.1f} C")
        parts.append(f"bin {c.binning}")
        if c.gain is not None:
            parts.append(f"gain {c.gain:g}")
        if c.offset is not None:
            parts.append(f"offset {c.offset:g}")
        if c.readout_mode:
            parts.append(f"mode {c.readout_mode}")
        return ", ".join(parts)

    def query(self, rules: MatchRules = MatchRules()) -> FrameQuery:
        """The library query counting raw frames of this configuration."""
        rel = rules.exposure_rel_tol
        if self.exposure_s:
            rel = max(rel, rules.exposure_tol_s / self.exposure_s)
        c = self.config
        return FrameQuery(frame_type=self.frame_type, camera=c.camera, filter=self.filter,
                          binning=c.binning, gain=c.gain, offset=c.offset,
                          readout_mode=c.readout_mode, exposure_s=self.exposure_s,
                          exposure_rel_tol=rel, temperature_c=c.temperature_c,
                          temperature_tol_c=rules.temperature_tol_c)


@dataclass(frozen=True)
class Need:
    config: NeedConfig
    lights: int
    have: int
    target: int

    @property
    def remaining(self) -> int:
        return max(0, self.target - self.have)

    @property
    def state(self) -> str:
        return "ready to build (indical library sweep)" if self.remaining == 0 else \
            f"{self.remaining} more frame(s)"


@dataclass(frozen=True)
class GroupProgress:
    label: str
    frame_type: str
    have: int
    target: int


@dataclass(frozen=True)
class Expiry:
    master: str
    kind: str
    age_days: float
    expiry_days: float

    @property
    def expired(self) -> bool:
        return self.age_days >= self.expiry_days


@dataclass
class NeedsReport:
    uncovered: list[Need] = field(default_factory=list)
    progress: list[GroupProgress] = field(default_factory=list)
    expiring: list[Expiry] = field(default_factory=list)
    captures: list[dict] = field(default_factory=list)
    lights: int = 0

    @property
    def nothing_missing(self) -> bool:
        return not self.uncovered

    def to_json(self) -> dict:
        return {
            "uncovered": [{**_config_json(n.config), "lights": n.lights, "have": n.have,
                           "target": n.target, "remaining": n.remaining} for n in self.uncovered],
            "progress": [vars(p) for p in self.progress],
            "expiring": [{**vars(e), "expired": e.expired} for e in self.expiring],
            "captures": self.captures,
            "lights": self.lights,
        }


def _config_json(c: NeedConfig) -> dict:
    return {"kind": c.kind.value, **c.config.to_json(), "filter": c.filter,
            "exposure_s": c.exposure_s, "label": c.label()}


def missing_configs(lights: list[LightInfo], catalogue: MasterCatalogue,
                    options: NeedsOptions = NeedsOptions(), now: datetime | None = None
                    ) -> list[tuple[NeedConfig, int]]:
    """Master configurations the lights lack, each with how many lights want it. Pure.

    Temperatures of lights wanting the same dark or bias are clustered with the matching
    tolerance as width; the need asks for the cluster's median temperature."""
    now = now or datetime.now(timezone.utc)
    rules = options.rules
    dark_rules = dataclasses.replace(rules, scale_darks=options.ccd)
    wanted: dict[tuple, list[LightInfo]] = {}
    for light in lights:
        kinds = [MasterKind.FLAT, MasterKind.DARK] + ([MasterKind.BIAS] if options.wants_bias else [])
        for kind in kinds:
            r = dark_rules if kind is MasterKind.DARK else rules
            if best_master(light, catalogue.infos, kind, r, now) is not None:
                continue
            if kind is MasterKind.DARK and light.exposure_s <= 0:
                continue
            exposure = None
            if kind is MasterKind.DARK and not options.ccd:
                exposure = round(light.exposure_s, 3)
            key = (kind, light.config.key(), light.filter if kind is MasterKind.FLAT else None,
                   exposure)
            wanted.setdefault(key, []).append(light)
    out: list[tuple[NeedConfig, int]] = []
    for key, group in wanted.items():
        kind, config, filt, exposure = key
        if kind is MasterKind.DARK and options.ccd:
            exposure = max(l.exposure_s for l in group)  # scaling down is better than up
        if kind is MasterKind.FLAT:
            clusters = [group]
        else:
            known = [l for l in group if l.config.temperature_c is not None]
            unknown = [l for l in group if l.config.temperature_c is None]
            labels = cluster_values([l.config.temperature_c for l in known],
                                    rules.temperature_tol_c)
            by_label: dict[int, list[LightInfo]] = {}
            for l, lab in zip(known, labels):
                by_label.setdefault(lab, []).append(l)
            clusters = list(by_label.values()) + ([unknown] if unknown else [])
        for members in clusters:
            temps = sorted(l.config.temperature_c for l in members
                           if l.config.temperature_c is not None)
            temp = None
            if temps and kind is not MasterKind.FLAT:
                temp = round(temps[len(temps) // 2], 1)
            out.append((NeedConfig(kind, dataclasses.replace(config, temperature_c=temp), filt,
                                   exposure), len(members)))
    out.sort(key=lambda item: (item[0].kind.value, item[0].config.camera, item[0].filter or "",
                               item[0].exposure_s or 0.0, item[0].config.temperature_c or 0.0))
    return out


def compute_needs(library, store=None, options: NeedsOptions = NeedsOptions(),
                  now: datetime | None = None) -> NeedsReport:
    """The needs report for a CalibrationLibrary (and its StatusStore for bad pixel maps and
    captures in progress)."""
    now = now or datetime.now(timezone.utc)
    extra = store.bad_pixel_maps() if store is not None else []
    catalogue = MasterCatalogue.from_library(library, extra=extra)
    lights = []
    for rec in library.frames(frame_type=FrameType.LIGHT):
        if options.since is not None and (rec.meta.start is None or rec.meta.start < options.since):
            continue
        lights.append(light_info(rec.meta, rec.width, rec.height))
    report = NeedsReport(lights=len(lights))
    for config, n_lights in missing_configs(lights, catalogue, options, now):
        have = library.count(config.query(options.rules))
        report.uncovered.append(Need(config, n_lights, have, options.min_frames))
    in_masters = library.frame_ids_in_current_masters()
    loose = [r for r in library.frames() if r.meta.frame_type is not FrameType.LIGHT
             and r.id not in in_masters]
    groups, small = group_frames(loose, GroupingOptions(
        temp_width_c=options.rules.temperature_tol_c, min_group=1))
    for g in groups + small:
        report.progress.append(GroupProgress(g.label(), g.key.frame_type.value, len(g.records),
                                             options.min_frames))
    for m in library.masters():
        days = library.expiry_days(m.frame_type)
        created = m.created_at if m.created_at.tzinfo else m.created_at.replace(tzinfo=timezone.utc)
        age = (now - created) / timedelta(days=1)
        if age >= days * (1 - options.expiry_warn_fraction):
            report.expiring.append(Expiry(m.path, m.frame_type.value, round(age, 1), days))
    if store is not None:
        report.captures = store.captures_in_progress()
    return report


def remaining(library, config: NeedConfig, options: NeedsOptions = NeedsOptions()) -> int:
    """How many frames of `config` a sequence should still take: min_frames minus those the
    library already holds (0 when enough exist, even if the master is not built yet)."""
    return max(0, options.min_frames - library.count(config.query(options.rules)))
