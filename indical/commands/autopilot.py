"""`indical autopilot PLAN.toml`: the calibration work of every night, by itself."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click
from rich.markup import escape

from indical.cli import RIG_OPTION, console, err_console
from indical.commands.library_target import LIBRARY

WINDOWS = ("dusk", "night", "dawn", "day")


class Stopped(KeyboardInterrupt):
    """SIGTERM (`systemctl stop`): stop like one Ctrl-C, leaving the hardware safe."""


def _on_term(signum, frame) -> None:
    raise Stopped


@click.command(short_help="Run a plan's calibration tasks every night, by itself.")
@click.argument("plan_file", type=click.Path(dir_okay=False, path_type=Path))
@RIG_OPTION
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("indical-autopilot"), show_default=True,
              help="Folder for the calibration library (frames, masters), the journal and "
                   "the exposure logs.")
@click.option("--library", "library_db", type=LIBRARY, default=None,
              help="Use this calibration library instead of one in --out: a database file or "
                   "a postgresql://USER@HOST/DB URL (the autopilot's own state stays in --out).")
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Journal (JSON lines). Default: OUT/journal.jsonl.")
@click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Trained-settings store. Default: in your data folder.")
@click.option("--nights", type=click.IntRange(1), default=None,
              help="Stop after this many nights, counted from the first dusk. Default: run "
                   "until stopped.")
@click.option("--once", "once", type=click.Choice(WINDOWS), default=None,
              help="Run the tasks of this window now and exit: 0 when everything due was done "
                   "or rightly skipped, 1 when a task failed.")
@click.option("--settle", "settle_s", type=click.FloatRange(0), default=5.0, show_default=True,
              help="Seconds a new light's size must stay the same before it counts as written "
                   "(when its writer's close is not seen).")
def autopilot(plan_file: Path, rig_path: Path | None, out: Path, library_db,
              journal_path: Path | None, store_path: Path | None, nights: int | None,
              once: str | None, settle_s: float) -> None:
    """Run the tasks of PLAN_FILE every night: sky flats at dusk, darks on cloudy nights,
    panel flats at dawn, lights calibrated as they arrive. See the README, "Every night by
    itself"."""
    from indical.autopilot.pilot import Autopilot, Paths
    from indical.autopilot.plan import Window, load_plan
    from indical.rig import load_rig

    plan = load_plan(plan_file)
    spec = load_rig(rig_path)
    paths = Paths(out, library=library_db, journal=journal_path, store=store_path)
    say = lambda m: console.print(escape(m), highlight=False, soft_wrap=True)  # noqa: E731
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_term)
    console.print(f"autopilot: {escape(str(plan_file))} on {escape(spec.source)}; journal "
                  f"{escape(str(paths.journal_file))}")
    with Autopilot(plan, spec, paths, say=say, settle_s=settle_s) as pilot:
        try:
            tally = pilot.run_once(Window(once)) if once else pilot.run(nights)
        except Stopped:
            err_console.print("[yellow]stopped[/]: a task that was running resumes at the next "
                              "start")
            sys.exit(0)
    failed = tally.failed
    console.print(f"{len(tally.entries)} decision(s), {len(failed)} failed")
    if once and failed:
        sys.exit(1)
