"""`indical run FILE`: run a sequence file."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape

from indical.cli import RIG_OPTION, console, err_console
from indical.errors import describe_os_error


@click.command(short_help="Run a sequence file (flats, darks) on a rig.")
@click.argument("sequence_file", type=click.Path(dir_okay=False, path_type=Path))
@RIG_OPTION
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Exposure log (JSON lines). Default: beside the frames.")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("indical-frames"), show_default=True,
              help="Folder for the frames (one subfolder per night).")
@click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Trained-settings store. Default: in your data folder.")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Change a setting of the sequence file, e.g. --set FLATS_PER_FILTER=5.")
def run(sequence_file: Path, rig_path: Path | None, log_path: Path | None, out: Path,
        store_path: Path | None, sets: tuple[str, ...]) -> None:
    """Run SEQUENCE_FILE (a Python file like sequences/panel_flats.py, or the name of a shipped
    sequence such as panel_flats.py) on a rig."""
    from indical.errors import check_output_file, check_output_folder
    from indical.rig import load_rig
    from indical.sequence.engine import load_sequence, parse_override, run_file
    from indical.sequence.shipped import find_sequence
    overrides = dict(parse_override(s) for s in sets)
    found, shipped = find_sequence(sequence_file)
    if shipped:
        console.print(f"{escape(str(sequence_file))} is not here: running the shipped sequence "
                      f"{escape(str(found))}", soft_wrap=True)
    sequence_file = found
    # everything that can be checked is checked before a device moves
    load_sequence(sequence_file, overrides)
    check_output_folder(out)
    if log_path is not None:
        check_output_file(log_path, what="exposure log")
    if store_path is not None:
        check_output_file(store_path, what="trained-settings store")
    spec = load_rig(rig_path)
    console.print(f"running {escape(str(sequence_file))} on {escape(spec.source)}")
    result = run_file(sequence_file, spec, out, log_path=log_path, store_path=store_path,
                      overrides=overrides,
                      say=lambda m: console.print(f"  {escape(m)}", highlight=False,
                                                  soft_wrap=True))
    report(result)


def report(result) -> None:
    """Say where things went and how the run ended; exit non-zero when it did not finish."""
    folders = sorted({str(p.parent) for p in result.frames})
    console.print(f"wrote {len(result.frames)} frames"
                  + (f" to {escape(', '.join(folders))}" if folders else ""))
    if result.log_path is not None:
        console.print(f"exposure log: {escape(str(result.log_path))}")
    if result.interrupted:
        err_console.print("[yellow]interrupted[/]")
    if result.error is not None:
        error = result.error
        text = describe_os_error(error) if isinstance(error, OSError) else str(error)
        err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False)
    for problem in result.cleanup_problems:
        err_console.print(f"[bold red]could not leave safe:[/] {escape(problem)}",
                          highlight=False)
    if result.cleanup_problems:
        err_console.print("check the panel light and the cover by hand")
    elif result.interrupted or result.error is not None:
        err_console.print("exposure aborted, light off, cover as the sequence asks")
    if result.interrupted:
        sys.exit(130)
    if result.error is not None or result.cleanup_problems:
        sys.exit(2)
