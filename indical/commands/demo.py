"""`indical demo`: chooses the simulated observatory (INDI simulators behind a private
indiserver, or the in-process simulator) and runs the panel-flats demo on it."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import click
from rich.markup import escape

from indical.cli import RIG_OPTION, console
from indical.rig import RigSpec

# A bright panel and a small sensor keep the demo quick: exposures of a fraction of a second,
# which the INDI camera simulator really waits for.
DEMO_SIMULATORS = """\
[camera]
width = 640
height = 480
readout_s = 0.1
filter_wheel = "Filter Simulator"
throughput = [0.45, 0.5, 0.4, 0.15, 0.15, 0.15, 0.9, 1.0]

[flipflat]
travel_s = 1.0
max_flux_e_per_s = 200000.0
"""

#: Five of the stock wheel's eight filters keep the demo well under a minute.
INDI_FILTERS = ["Luminance", "Red", "Green", "Blue", "H_Alpha"]


@contextmanager
def demo_rig(rig_path: Path | None, in_process: bool, say: Callable[[str], None]
             ) -> Iterator[tuple[RigSpec, dict[str, Any]]]:
    """The rig the demo runs on, and settings that suit it."""
    from indical.rig import load_rig
    if rig_path is not None or in_process:
        yield load_rig(rig_path), {}
        return
    if not shutil.which("indiserver"):
        say("indiserver is not installed (Debian package indi-bin): using the in-process "
            "simulator instead")
        yield load_rig(None), {}
        return
    from indical.simulators.indi.server import simulator_rig
    say("starting a private indiserver with indical's camera and flip-flat simulators and the "
        "stock filter wheel; indical reaches them through its INDI adapters")
    with simulator_rig(sim_config=DEMO_SIMULATORS) as spec:
        yield spec, {"FILTERS": INDI_FILTERS}


@click.command(short_help="Take flats on a simulated observatory.")
@RIG_OPTION
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("indical-demo"), show_default=True, help="Folder for the frames.")
@click.option("-n", "--frames", default=3, show_default=True, help="Flats per filter.")
@click.option("--builtin", "in_process", is_flag=True,
              help="Use the built-in in-process simulator instead of INDI simulators.")
@click.option("--twilight/--no-twilight", default=True, show_default=True,
              help="Also take twilight flats over a simulated dusk.")
def demo(rig_path: Path | None, out: Path, frames: int, in_process: bool, twilight: bool) -> None:
    """Run sequences/panel_flats.py on a simulated observatory: flats for several filters with
    automatic panel brightness, then dark flats, written as FITS. Then, unless --no-twilight,
    sequences/twilight_flats.py over a simulated dusk (on --rig when it has a [site] and a
    [clock], else on the built-in observatory; frames in OUT/twilight/)."""
    from indical.commands.run import report
    from indical.demo.panel import run_demo
    say = lambda m: console.print(f"  {escape(m)}", highlight=False, soft_wrap=True)  # noqa: E731
    with demo_rig(rig_path, in_process, say) as (spec, settings):
        result, summary = run_demo(spec, out, settings={**settings, "FLATS_PER_FILTER": frames},
                                   say=say)
    if summary:
        console.print("per filter: exposures until the first flat, settings found, flat levels")
    for s in summary:
        levels = ", ".join(f"{v:.0f}" for v in s.levels_adu)
        setting = (f"brightness {s.brightness}, " if s.brightness is not None else "") + \
            (f"{s.exposure_s:g} s" if s.exposure_s is not None else "not found")
        target = f" (target {s.target_adu:.0f})" if s.target_adu is not None else ""
        console.print(f"  {escape(s.filter or '-'):>10}: {s.exposures_to_first_flat} exposure(s), "
                      f"{setting}; {s.flats} flats at {levels} ADU above bias{target}",
                      highlight=False, soft_wrap=True)
    report(result)
    if twilight:
        twilight_step(rig_path, out / "twilight", say)


def twilight_step(rig_path: Path | None, out: Path, say: Callable[[str], None]) -> None:
    """A simulated dusk, a whole twilight in seconds by the simulated clock."""
    from indical.commands.run import report
    from indical.demo.twilight import run_twilight_demo, twilight_rig
    spec = twilight_rig(rig_path)
    settings = {} if spec.source.startswith("built-in") else {"FILTERS": None}
    result, summary = run_twilight_demo(spec, out, settings=settings, say=say)
    if summary:
        console.print("twilight flats per filter: flats kept, exposures, sun altitude, levels")
    for s in summary:
        if s.kept:
            span = (f"{min(s.exposures_s):.3g}-{max(s.exposures_s):.3g} s at sun "
                    f"{max(s.sun_alt_deg):.1f} to {min(s.sun_alt_deg):.1f} deg; "
                    f"{', '.join(f'{v:.0f}' for v in s.levels_adu)} ADU (target "
                    f"{s.target_adu:.0f})")
        else:
            span = "none kept"
        rejected = "; ".join(f"{n} {why}" for why, n in s.rejected.items())
        console.print(f"  {escape(s.filter or '-'):>10}: {s.kept} of {s.frames} frames kept, "
                      f"{escape(span)}" + (f"; set aside: {escape(rejected)}" if rejected else ""),
                      highlight=False, soft_wrap=True)
    report(result)
