"""`indical bpm`: bad pixel maps from the library's master darks and flats."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape

from indical.cli import console
from indical.commands.library_target import LIBRARY_OPTION, open_library


@click.command(short_help="Build bad pixel maps from the library's masters.")
@LIBRARY_OPTION
@click.option("--hot-sigma", type=click.FloatRange(0, min_open=True), default=5.0,
              show_default=True,
              help="Hot: master dark above median + this many robust sigmas.")
@click.option("--cold-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.6, show_default=True,
              help="Cold: master flat below this fraction of its local level (dust shadows, "
                   "5-20 % dimmer, are not bad pixels).")
@click.option("--dead-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.2, show_default=True,
              help="Dead: master flat below this fraction of its local level.")
def bpm(library_db, hot_sigma, cold_fraction, dead_fraction) -> None:
    """Build a bad pixel map for each camera configuration with a current master dark or flat.

    `indical calibrate` then flags those pixels (FLAGS extension) or, with --bad-pixels correct,
    replaces them from their neighbours. A new map supersedes the previous one."""
    from indical.calib.bpm import BadPixelOptions
    from indical.calib.bpm_masters import build_bad_pixel_maps
    from indical.calib.status import StatusStore

    if dead_fraction >= cold_fraction:
        raise click.BadParameter(f"{dead_fraction:g} is not below --cold-fraction "
                                 f"{cold_fraction:g} (dead pixels are the darkest cold ones)",
                                 param_hint="--dead-fraction")
    options = BadPixelOptions(hot_sigma=hot_sigma, cold_fraction=cold_fraction,
                              dead_fraction=dead_fraction)
    library = open_library(library_db)
    with library, StatusStore(library.db_path) as store:
        built = build_bad_pixel_maps(library, store, options)
    if not built:
        console.print("no master darks or flats in the library: nothing to build a map from "
                      "(indical library ingest DIR builds them)")
        sys.exit(1)
    for b in built:
        sources = ", ".join(Path(p).name for p in (b.dark, b.flat) if p)
        console.print(f"[green]built[/] {escape(b.info.path.name)}: {b.hot} hot, {b.cold} cold, "
                      f"{b.dead} dead pixels (from {escape(sources)})", soft_wrap=True,
                      highlight=False)
