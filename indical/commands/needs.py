"""`indical needs`: what calibration the lights in the library still lack."""

from __future__ import annotations

import json
from pathlib import Path
from datetime import datetime, timedelta, timezone

import click
from rich.markup import escape
from rich.table import Table

from indical.cli import console
from indical.commands.library_target import LIBRARY_OPTION, open_library


def _bar(have: int, target: int, width: int = 10) -> str:
    filled = min(width, round(width * have / target)) if target else width
    return "#" * filled + "." * (width - filled)


@click.command(short_help="What calibration is still missing.")
@LIBRARY_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--min-frames", type=click.IntRange(1), default=10, show_default=True,
              help="Frames per master (min_frames_for_master).")
@click.option("--ccd", is_flag=True, help="Lights are calibrated CCD-style (bias + scaled dark).")
@click.option("--bias/--no-bias", default=None,
              help="Ask for bias masters too (default: only with --ccd).")
@click.option("--days", type=click.FloatRange(0, min_open=True), default=None,
              help="Only lights of the last DAYS days (default: all lights in the library).")
@click.option("--temperature-tol", type=click.FloatRange(0), default=2.0, show_default=True,
              help="Degrees C a bias or dark may differ from the light.")
def needs(library_db, as_json, min_frames, ccd, bias, days, temperature_tol) -> None:
    """What calibration is missing: uncovered light configurations, progress toward masters,
    masters near or past expiry, and captures in progress."""
    from indical.calib.match import MatchRules
    from indical.calib.needs import NeedsOptions, compute_needs
    from indical.calib.status import StatusStore

    since = datetime.now(timezone.utc) - timedelta(days=days) if days else None
    options = NeedsOptions(min_frames=min_frames, ccd=ccd, bias=bias, since=since,
                           rules=MatchRules(temperature_tol_c=temperature_tol))
    library = open_library(library_db)
    with library, StatusStore(library.db_path) as store:
        report = compute_needs(library, store, options)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    if report.captures:
        t = Table("sequence", "capturing", "done", title="Captures in progress")
        for c in report.captures:
            t.add_row(escape(c["sequence"]), escape(c["description"]),
                      f"{c['done']}/{c['target']}")
        console.print(t)
    if report.uncovered:
        t = Table("master needed", "camera", "lights", "frames", title="Uncovered configurations")
        t.add_column("to do", no_wrap=True)
        for n in report.uncovered:
            t.add_row(escape(n.config.label()), escape(n.config.config.camera), str(n.lights),
                      f"{n.have}/{n.target} {_bar(n.have, n.target)}", n.state)
        console.print(t)
    elif report.lights == 0:
        console.print("no lights in the library yet: `indical calibrate` or `indical library "
                      "ingest` indexes them, then this says what they lack", soft_wrap=True)
    else:
        console.print(f"[green]every light in the library ({report.lights}) has matching "
                      f"masters[/]")
    growing = [p for p in report.progress if p.have < p.target]
    if growing:
        t = Table("group", title="Frames accumulating toward a master")
        t.add_column("frames", no_wrap=True)
        for p in growing:
            t.add_row(escape(p.label), f"{p.have}/{p.target} {_bar(p.have, p.target)}")
        console.print(t)
    if report.expiring:
        t = Table("master", "type", "age (days)", "expiry (days)", "", title="Expiry")
        for e in report.expiring:
            t.add_row(escape(Path(e.master).name), e.kind, f"{e.age_days:g}", f"{e.expiry_days:g}",
                      "[red]expired[/]" if e.expired else "[yellow]expiring soon[/]")
        console.print(t)
