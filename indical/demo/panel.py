"""The panel-flats part of `indical demo`, the first thing a newcomer runs: the shipped
`sequences/panel_flats.py` with quick settings, summarised per filter (how many exposures it
took to find the level, which levels the flats hit). The command (indical/commands/demo.py)
chooses the rig: indical's INDI simulators behind a private indiserver, or the in-process
simulator."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from indical.rig import RigSpec
from indical.sequence.engine import RunResult, run_file
from indical.sequence.log import read_log
from indical.sequence.shipped import shipped_sequence


DEMO_SETTINGS: dict[str, Any] = {
    "FLATS_PER_FILTER": 3,
    "DARK_FLATS_PER_EXPOSURE": 2,
    "EXPOSURE_S": 0.25,
}


@dataclass
class FilterSummary:
    """What the demo did in one filter, read back from the exposure log."""

    filter: str | None
    exposures_to_first_flat: int = 0
    flats: int = 0
    brightness: int | None = None
    exposure_s: float | None = None
    levels_adu: list[float] = field(default_factory=list)
    target_adu: float | None = None


def summarize(log_path: Path) -> list[FilterSummary]:
    """Per filter: exposures until the first flat, settings found, levels of the flats."""
    out: dict[str | None, FilterSummary] = {}
    for e in read_log(log_path):
        if e["kind"] not in ("search", "flat"):
            continue
        s = out.setdefault(e["filter"], FilterSummary(e["filter"]))
        if s.flats == 0:
            s.exposures_to_first_flat += 1
        if e["accepted"]:
            s.flats += 1
            s.brightness, s.exposure_s = e["brightness"], e["exposure"]
            s.levels_adu.append(e["level"])
            s.target_adu = e["target"]
    return list(out.values())


def run_demo(spec: RigSpec, out: Path, *, settings: dict[str, Any] | None = None,
             say: Callable[[str], None] = lambda message: None) -> tuple[RunResult, list[FilterSummary]]:
    """Run sequences/panel_flats.py on a rig into `out`, with the demo's quick settings (or
    those given), and summarise it per filter."""
    sequence = shipped_sequence("panel_flats.py")
    say(f"running {sequence.name} on {spec.source}")
    result = run_file(sequence, spec, out, store_path=out / "trained_flats.sqlite",
                      overrides={**DEMO_SETTINGS, **(settings or {})}, say=say)
    summary = summarize(result.log_path) if result.log_path and result.log_path.exists() else []
    return result, summary
