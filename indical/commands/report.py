"""`indical report`: a static HTML page about masters, sequences, needs and calibrated lights."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from indical.cli import console
from indical.commands.library_target import LIBRARY_OPTION, open_library


@click.command(short_help="Write an HTML report: masters, runs, needs, lights.")
@click.option("-o", "--out-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("indical-report"), show_default=True,
              help="Folder for index.html and its pictures.")
@LIBRARY_OPTION
@click.option("--logs", "log_folders", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Sequence exposure logs (*.jsonl) or folders holding them (default: the "
                   "library's folder). May be given more than once.")
@click.option("--min-frames", type=click.IntRange(1), default=10, show_default=True,
              help="Frames per master, for the needs tables.")
def report(out_dir, library_db, log_folders, min_frames) -> None:
    """Write an HTML report: master previews and histograms, exposure searches and ramps from
    sequence logs, what calibration is missing, calibration status per night."""
    from indical.calib.needs import NeedsOptions
    from indical.calib.report.page import write_report
    from indical.calib.status import StatusStore

    from indical.errors import check_output_folder
    check_output_folder(out_dir)
    library = open_library(library_db)
    with library, StatusStore(library.db_path) as store:
        page = write_report(library, store, out_dir,
                            log_folders=list(log_folders) if log_folders else None,
                            needs_options=NeedsOptions(min_frames=min_frames),
                            warn=lambda m: console.print(f"[yellow]warning:[/] {escape(m)}",
                                                         highlight=False, soft_wrap=True))
    console.print(f"report written: {escape(str(page))}", soft_wrap=True)
