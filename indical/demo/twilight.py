"""The twilight step of `indical demo`: sequences/twilight_flats.py over a simulated dusk at
the built-in observatory (52 deg N, March equinox), a whole twilight in seconds by the
simulated clock, summarised per filter from the exposure log."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from indical.rig import RigSpec, load_rig
from indical.sequence.engine import RunResult, run_file
from indical.sequence.log import read_log
from indical.sequence.shipped import shipped_sequence


DEMO_SETTINGS: dict[str, Any] = {
    "TWILIGHT": "dusk",
    "FILTERS": ["L", "R", "Ha"],
    "FLATS_PER_FILTER": 3,
    "DARKS_COUNT": 2,
    "COVER_ON_EXIT": "closed",
}


@dataclass
class TwilightSummary:
    filter: str | None
    frames: int = 0
    kept: int = 0
    exposures_s: list[float] = field(default_factory=list)
    sun_alt_deg: list[float] = field(default_factory=list)
    levels_adu: list[float] = field(default_factory=list)
    target_adu: float | None = None
    rejected: dict[str, int] = field(default_factory=dict)


def summarize(log_path: Path) -> list[TwilightSummary]:
    out: dict[str | None, TwilightSummary] = {}
    for e in read_log(log_path):
        if e["kind"] != "twilight":
            continue
        s = out.setdefault(e["filter"], TwilightSummary(e["filter"]))
        s.frames += 1
        s.target_adu = e["target"]
        if e["accepted"]:
            s.kept += 1
            s.exposures_s.append(e["exposure"])
            s.sun_alt_deg.append(e["extra"]["sun_alt"])
            s.levels_adu.append(e["level"])
        else:
            s.rejected[e["reason"]] = s.rejected.get(e["reason"], 0) + 1
    return list(out.values())


def twilight_rig(rig_path: Path | None) -> RigSpec:
    """The given rig when it is a simulated one with a site and a clock, else the built-in."""
    if rig_path is not None:
        spec = load_rig(rig_path)
        if spec.site is not None and "clock" in spec.tables:
            return spec
    return load_rig(None)


def run_twilight_demo(spec: RigSpec, out: Path, *, settings: dict[str, Any] | None = None,
                      say: Callable[[str], None] = lambda message: None
                      ) -> tuple[RunResult, list[TwilightSummary]]:
    sequence = shipped_sequence("twilight_flats.py")
    say(f"running {sequence.name} over a simulated dusk on {spec.source}")
    result = run_file(sequence, spec, out, store_path=out / "trained_flats.sqlite",
                      overrides={**DEMO_SETTINGS, **(settings or {})}, say=say)
    summary = summarize(result.log_path) if result.log_path and result.log_path.exists() else []
    return result, summary
