"""Which master calibrates which light: pure matching rules over master records.

A master is a candidate when its camera configuration (`CameraConfig`: camera, readout mode,
gain, offset, binning, size) equals the light's; flats also need the light's filter; darks need
the light's exposure within a tolerance (CMOS; a CCD scales any dark); bias and darks need the
temperature within a tolerance.
Among candidates: masters within their expiry age before stale ones; then the closest exposure
(darks) and temperature; then the newest. Superseded masters are out, except sky flats: for
those the master nearest in time (that dusk or dawn) to the light wins, as in reprocessing old
nights. See docs/decisions/007-applying-masters.md.

Flats lit by a panel and flats of the twilight sky are never weighed against each other: the
source is chosen first, then the master within it. `MatchRules.flat_source` asks for one
source only; without it panel flats come first and sky flats serve the lights that no panel
flat matches (flats whose source is unknown, from other programs, come between the two).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from indical.calib.config import CameraConfig


class MasterKind(enum.Enum):
    BIAS = "bias"
    DARK = "dark"
    DARKFLAT = "darkflat"
    FLAT = "flat"
    BPM = "bpm"


@dataclass(frozen=True)
class LightInfo:
    """A light frame as matching needs it: its camera configuration, exposure, filter and when
    it was taken."""

    config: CameraConfig
    exposure_s: float
    filter: str | None = None
    time: datetime | None = None


@dataclass(frozen=True)
class MasterInfo:
    """A master as matching sees it (built from the library's records). `observed` is the
    mid-time of its source frames (for sky flats: which dusk or dawn); `expires` is when it
    becomes stale (None: never)."""

    id: int
    kind: MasterKind
    path: Path
    config: CameraConfig
    created: datetime
    filter: str | None = None
    exposure_s: float | None = None
    superseded: bool = False
    expires: datetime | None = None
    observed: datetime | None = None
    sky: bool = False
    n_frames: int = 0
    flat_source: str | None = None   # flats: PANEL or SKY (frame.FLAT_SOURCES); None: unknown
    extra: dict = field(default_factory=dict, compare=False)

    def is_stale(self, now: datetime) -> bool:
        return self.expires is not None and _aware(now) >= _aware(self.expires)

    def describe(self) -> str:
        bits = [self.kind.value]
        if self.kind is MasterKind.FLAT and self.source_name != "flat":
            bits.append(f"({self.source_name.split()[0]})")
        if self.filter:
            bits.append(f"filter {self.filter}")
        if self.exposure_s is not None and self.kind in (MasterKind.DARK, MasterKind.DARKFLAT):
            bits.append(f"{self.exposure_s:g} s")
        if self.config.temperature_c is not None:
            bits.append(f"{self.config.temperature_c:.1f} C")
        bits.append(f"made {_aware(self.created).strftime('%Y-%m-%d %H:%M')} UTC")
        return f"master {' '.join(bits)} ({self.path.name})"

    @property
    def source(self) -> str | None:
        """What lit a master flat: PANEL, SKY or None (unknown)."""
        if self.flat_source is not None:
            return self.flat_source
        return "SKY" if self.sky else None

    @property
    def source_name(self) -> str:
        return {"PANEL": "panel flat", "SKY": "sky flat"}.get(self.source or "", "flat")


@dataclass(frozen=True)
class MatchRules:
    """Tolerances. Exposure: a CMOS dark matches when |t_dark - t_light| <= max(abs, rel * t).
    Temperature: within temperature_tol_c for bias and darks; flats ignore temperature unless
    flat_temperature_tol_c is set."""

    exposure_tol_s: float = 0.5
    exposure_rel_tol: float = 0.02
    temperature_tol_c: float = 2.0
    flat_temperature_tol_c: float | None = None
    scale_darks: bool = False  # CCD: any dark exposure will do, it is scaled
    flat_source: str | None = None  # PANEL or SKY: flats of that source only

    def __post_init__(self) -> None:
        if self.flat_source not in (None, "PANEL", "SKY"):
            raise ValueError(f"flat_source must be PANEL or SKY, not {self.flat_source!r}")

    def exposure_ok(self, master_s: float | None, light_s: float) -> bool:
        if master_s is None:
            return False
        return abs(master_s - light_s) <= max(self.exposure_tol_s, self.exposure_rel_tol * light_s)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def mismatch(light: LightInfo, master: MasterInfo, rules: MatchRules) -> str | None:
    """Why this master can't calibrate this light, or None when it can."""
    why = master.config.mismatch(light.config)
    if why is not None:
        return why
    if master.kind is MasterKind.FLAT and (master.filter or None) != (light.filter or None):
        return f"filter {master.filter!r} is not {light.filter!r}"
    if master.kind is MasterKind.FLAT and rules.flat_source is not None \
            and master.source != rules.flat_source:
        what = {"PANEL": "panel", "SKY": "sky"}
        said = f"a {what[master.source]} flat" if master.source else "a flat of unknown source"
        return f"{said}, and {what[rules.flat_source]} flats were asked for"
    if master.kind is MasterKind.DARK and not rules.scale_darks:
        if not rules.exposure_ok(master.exposure_s, light.exposure_s):
            return f"exposure {master.exposure_s} s is not {light.exposure_s:g} s"
    tol = rules.flat_temperature_tol_c if master.kind is MasterKind.FLAT else rules.temperature_tol_c
    if master.kind in (MasterKind.BIAS, MasterKind.DARK, MasterKind.FLAT) and tol is not None:
        mt, lt = master.config.temperature_c, light.config.temperature_c
        if lt is not None and mt is not None and abs(mt - lt) > tol:
            return f"temperature {mt:.1f} C is more than {tol:g} C from {lt:.1f} C"
    return None


#: Which source of flats comes first when the rules name none (a light never gets a flat of a
#: later source while one of an earlier source matches).
_SOURCE_ORDER = {"PANEL": 0, None: 1, "SKY": 2}


def _rank(light: LightInfo, master: MasterInfo, now: datetime) -> tuple:
    stale = master.is_stale(now)
    if master.kind is MasterKind.FLAT:   # the source first: panel and sky are never mixed
        return (_SOURCE_ORDER[master.source], *_rank_within(light, master, stale))
    return _rank_within(light, master, stale)


def _rank_within(light: LightInfo, master: MasterInfo, stale: bool) -> tuple:
    dexp = abs((master.exposure_s or 0.0) - light.exposure_s) if master.kind is MasterKind.DARK else 0.0
    mt, lt = master.config.temperature_c, light.config.temperature_c
    dtemp = abs(mt - lt) if mt is not None and lt is not None else 0.0
    if master.kind is MasterKind.FLAT and master.source == "SKY" and light.time is not None:
        when = master.observed or master.created
        dtime = abs((_aware(when) - _aware(light.time)).total_seconds())
        return (stale, dtime, -_aware(master.created).timestamp())
    if master.kind is MasterKind.FLAT:
        return (stale, -_aware(master.created).timestamp())
    return (stale, round(dexp, 6), round(dtemp, 3), -_aware(master.created).timestamp())


def best_master(light: LightInfo, masters: list[MasterInfo], kind: MasterKind,
                rules: MatchRules = MatchRules(), now: datetime | None = None
                ) -> MasterInfo | None:
    """The master of `kind` that should calibrate `light`, or None."""
    now = now or datetime.now(timezone.utc)
    eligible = [m for m in masters
                if m.kind is kind
                and (not m.superseded or (kind is MasterKind.FLAT and m.source == "SKY"))
                and mismatch(light, m, rules) is None]
    if not eligible:
        return None
    return min(eligible, key=lambda m: _rank(light, m, now))


@dataclass(frozen=True)
class MasterChoice:
    """The masters chosen for one light and what was looked for but not found."""

    bias: MasterInfo | None
    dark: MasterInfo | None
    flat: MasterInfo | None
    bpm: MasterInfo | None
    missing: tuple[str, ...]

    @property
    def used(self) -> list[MasterInfo]:
        return [m for m in (self.bias, self.dark, self.flat, self.bpm) if m is not None]


def choose_masters(light: LightInfo, masters: list[MasterInfo], *, ccd: bool = False,
                   rules: MatchRules = MatchRules(), now: datetime | None = None) -> MasterChoice:
    """Pick bias, dark, flat and bad pixel map for a light.

    CMOS needs a dark of the light's exposure (a bias alone stands in for very short lights
    only when no dark exists: reported as a missing dark). CCD needs a bias and a dark of any
    exposure (scaled). Every light wants a flat for its filter. A bad pixel map is optional."""
    now = now or datetime.now(timezone.utc)
    dark_rules = rules if not ccd else dataclasses.replace(rules, scale_darks=True)
    missing: list[str] = []
    bias = best_master(light, masters, MasterKind.BIAS, rules, now)
    dark = best_master(light, masters, MasterKind.DARK, dark_rules, now)
    flat = best_master(light, masters, MasterKind.FLAT, rules, now)
    bpm = best_master(light, masters, MasterKind.BPM, rules, now)
    if ccd:
        if bias is None:
            missing.append("bias")
        if dark is None and light.exposure_s > 0:
            missing.append(f"dark (any exposure, {_temp(light)})")
    else:
        if dark is None:
            missing.append(f"dark {light.exposure_s:g} s ({_temp(light)})")
        else:
            bias = None  # a CMOS dark of the same exposure already holds the bias
    if flat is None:
        which = {"PANEL": "panel flat", "SKY": "sky flat"}.get(rules.flat_source or "", "flat")
        missing.append(f"{which} for filter {light.filter or '(none)'}")
    return MasterChoice(bias, dark, flat, bpm, tuple(missing))


def _temp(light: LightInfo) -> str:
    t = light.config.temperature_c
    return "temperature unknown" if t is None else f"{t:.1f} C"


def expiry_from_age(created: datetime, max_age: timedelta | None) -> datetime | None:
    return None if max_age is None else _aware(created) + max_age
