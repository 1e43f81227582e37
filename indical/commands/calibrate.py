"""`indical calibrate`: apply masters from the calibration library to light frames."""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter
from pathlib import Path

import click
from rich.markup import escape

from indical.cli import console
from indical.commands.library_target import LIBRARY_OPTION, open_library
from indical.commands.scheduler import SCHEDULER_OPTION, connect
from indical.errors import IndicalError, check_output_folder

_STYLE = {"calibrated": "green", "failed": "red", "no_masters": "yellow"}


@click.command(short_help="Apply matching masters to lights.")
@click.argument("lights", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--out-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for calibrated lights (default: 'calibrated' beside each light).")
@LIBRARY_OPTION
@click.option("--ccd", is_flag=True,
              help="CCD: subtract bias and dark current scaled by exposure (default CMOS: a "
                   "dark of the light's exposure).")
@click.option("--integer", "integer_output", is_flag=True,
              help="Write integers rounded and clipped to the camera's bit depth (all-sky "
                   "software) instead of float32.")
@click.option("--bit-depth", type=click.IntRange(1, 16), default=None,
              help="Bit depth for --integer when the light's header has no BITDEPTH.")
@click.option("--bad-pixels", type=click.Choice(["off", "flag", "correct"]), default="flag",
              show_default=True,
              help="Use the bad pixel map: flag pixels in the FLAGS extension, or also "
                   "replace them from their neighbours.")
@click.option("--temperature-tol", type=click.FloatRange(0), default=2.0, show_default=True,
              help="Degrees C a bias or dark may differ from the light.")
@click.option("--exposure-tol", type=click.FloatRange(0), default=0.5, show_default=True,
              help="Seconds a CMOS dark's exposure may differ from the light's (or 2 %).")
@click.option("--flat-floor", type=click.FloatRange(0, 1, max_open=True), default=0.05,
              show_default=True,
              help="Normalised flat values below this are raised to it and flagged.")
@click.option("--flat-source", type=click.Choice(["panel", "sky"]), default=None,
              help="Flat-field with flats of this source only (default: panel flats, and sky "
                   "flats for lights no panel flat matches; never the two mixed in a master).")
@click.option("--force", is_flag=True, help="Calibrate again lights already calibrated.")
@click.option("--assume-light", is_flag=True,
              help="Files whose header does not say what they are (no IMAGETYP) are lights.")
@click.option("--sync", "sync_outputs", is_flag=True,
              help="Flush each output to disk before recording it (slower; outputs can always "
                   "be made again, so by default they are only renamed into place atomically).")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Lights calibrated at the same time (locally).")
@SCHEDULER_OPTION
@click.option("--bias", "bias_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Use this master bias (any program's) instead of the library.")
@click.option("--dark", "dark_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Use this master dark instead of the library.")
@click.option("--flat", "flat_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Use this master flat instead of the library.")
@click.option("--bpm", "bpm_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Use this bad pixel map instead of the library.")
@click.option("--allow-mismatch", is_flag=True,
              help="With --bias/--dark/--flat: use masters whose camera, gain, offset, filter, "
                   "exposure or temperature differ from the light's (warned); size and "
                   "binning must still agree.")
def calibrate(lights, out_dir, library_db, ccd, integer_output, bit_depth, bad_pixels,
              temperature_tol, exposure_tol, flat_floor, flat_source, force, assume_light,
              sync_outputs, workers, scheduler, bias_file, dark_file, flat_file, bpm_file,
              allow_mismatch) -> None:
    """Calibrate LIGHTS (files or folders) with matching masters from the library.

    Each light gets a float32 copy with HISTORY naming the masters used; the light itself is
    never changed. With no LIGHTS, the library is brought up to date: lights marked for
    recalibration (a master they used was superseded), lights that had no masters, and lights
    indexed in the library but never calibrated. With --bias/--dark/--flat/--bpm (any of
    them), those masters are used instead of the library's, after the same checks as library
    matching. With --scheduler, each light is a task on a Dask cluster whose workers see the
    same paths; this process writes the library. Exit status 1 when any light failed or had no
    masters."""
    from indical.calib.apply import ApplyOptions
    from indical.calib.calibrate import CalibrateOptions, calibrate_paths
    from indical.calib.match import MatchRules
    from indical.calib.status import StatusStore

    options = CalibrateOptions(
        out_dir=out_dir, ccd=ccd, rules=MatchRules(exposure_tol_s=exposure_tol,
                                                   temperature_tol_c=temperature_tol,
                                                   flat_source=flat_source and flat_source.upper()),
        apply=ApplyOptions(flat_floor=flat_floor), bit_depth_output=integer_output,
        bit_depth=bit_depth, bad_pixels=bad_pixels, force=force, workers=workers,
        sync_outputs=sync_outputs, assume_light=assume_light)
    if out_dir is not None:
        check_output_folder(out_dir)
    if any(f is not None for f in (bias_file, dark_file, flat_file, bpm_file)):
        if not lights:
            raise click.UsageError("--bias/--dark/--flat/--bpm need LIGHTS to calibrate")
        _calibrate_with_given(lights, options, bias_file, dark_file, flat_file, bpm_file,
                              allow_mismatch, scheduler)
        return
    library = open_library(library_db)
    with library, StatusStore(library.db_path) as store:
        if not lights:
            from indical.frame import FrameType
            redo = [Path(s.path) for s in store.to_redo() if Path(s.path).exists()]
            seen = {s.path for s in store.all()}
            new = [Path(r.path) for r in library.frames(frame_type=FrameType.LIGHT)
                   if r.path not in seen and Path(r.path).exists()]
            if not redo and not new:
                console.print("nothing to do: every light in the library is calibrated with "
                              "current masters", soft_wrap=True)
                return
            console.print(f"{len(redo)} light(s) marked for recalibration, {len(new)} in the "
                          f"library not calibrated yet")
            lights = redo + new
            options = dataclasses.replace(options, force=True)

        from indical.calib.calibrate import light_paths
        found = light_paths(lights, options.out_dir)
        if not found:
            console.print("no FITS files in " + ", ".join(escape(str(p)) for p in lights),
                          soft_wrap=True)
            sys.exit(1)
        with connect(scheduler) as cluster:
            summary = calibrate_paths(library, store, found, options, progress=_show,
                                      cluster=cluster)
    _summarise(summary)


def _show(o) -> None:
    name = escape(str(o.path))
    if o.status is None:
        console.print(f"[dim]skipped[/] {name}: {escape(o.message)}", soft_wrap=True)
        return
    style = _STYLE[o.status.value]
    line = f"[{style}]{o.status.value}[/] {name}"
    if o.output is not None:
        line += f" -> {escape(str(o.output))}"
    else:
        line += f": {escape(o.message)}"
    console.print(line, highlight=False, soft_wrap=True)
    for w in o.warnings:
        console.print(f"    [yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)


def _calibrate_with_given(lights, options, bias, dark, flat, bpm, allow_mismatch,
                          scheduler: str | None) -> None:
    """Calibrate with the masters named on the command line; the library is not touched. With
    a scheduler, one task per light as with the library's masters (the workers read the given
    files, named by absolute path)."""
    import dataclasses
    from datetime import datetime, timezone

    from indical.calib.calibrate import Calibrator, RunSummary, light_paths
    from indical.calib.catalogue import MasterCatalogue
    from indical.calib.given_masters import GivenMasters, describe
    if scheduler:   # the workers' working folders are not ours
        bias, dark, flat, bpm = (None if p is None else Path(p).absolute()
                                 for p in (bias, dark, flat, bpm))
    given = GivenMasters.read(bias=bias, dark=dark, flat=flat, bpm=bpm)  # FitsError names it
    for line in describe(given):
        console.print(f"using {escape(line)}", highlight=False, soft_wrap=True)
    options = dataclasses.replace(options, given=given, allow_mismatch=allow_mismatch)
    found = light_paths(lights, options.out_dir)
    if not found:
        console.print("no FITS files in " + ", ".join(escape(str(p)) for p in lights),
                      soft_wrap=True)
        sys.exit(1)
    summary = RunSummary()
    with connect(scheduler) as cluster:
        if cluster is None:
            catalogue = MasterCatalogue(given.infos(), loader=given.loader())
            outcomes = Calibrator(catalogue, options).run(found)
        else:
            outcomes = cluster.calibrate(given.infos(), options, datetime.now(timezone.utc),
                                         [Path(p).absolute() for p in found])
        for outcome in outcomes:
            summary.outcomes.append(outcome)
            _show(outcome)
    _summarise(summary)


def _summarise(summary) -> None:
    from indical.calib.status import Status
    counts = {s: summary.count(s) for s in Status}
    parts = [f"{counts[Status.CALIBRATED]} calibrated", f"{counts[Status.NO_MASTERS]} without "
             f"masters", f"{counts[Status.FAILED]} failed"]
    if summary.already:
        parts.append(f"{len(summary.already)} already calibrated (--force to redo)")
    skipped = summary.count(None)
    if skipped:
        parts.append(f"{skipped} skipped")
    console.print(", ".join(parts))
    sources = Counter(o.choice.flat.source_name for o in summary.outcomes
                      if o.status is Status.CALIBRATED and o.choice is not None
                      and o.choice.flat is not None)
    if len(sources) > 1:   # one night's lights flat-fielded two ways: say so, say how to choose
        said = ", ".join(f"{n} with {name}s" for name, n in sorted(sources.items()))
        console.print(f"[yellow]warning:[/] the lights were flat-fielded with flats of "
                      f"different sources ({said}): where no panel flat matches a light its "
                      f"sky flat is used. Choose one with --flat-source panel or sky.",
                      soft_wrap=True, highlight=False)
    if counts[Status.NO_MASTERS] or counts[Status.FAILED] or not (
            counts[Status.CALIBRATED] or summary.already):
        sys.exit(1)  # something failed, or nothing given was a light
