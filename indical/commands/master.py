"""`indical master`: build master bias, dark, dark-flat or flat frames from FITS files."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import click
from rich.markup import escape

from indical.calib.combine.engine import DEFAULT_MEMORY_LIMIT
from indical.calib.combine.options import CombineOptions, Method
from indical.calib.grouping import GroupingOptions, group_frames
from indical.calib.ingest import FrameRecord, find_fits, ingest_paths
from indical.calib.library import CalibrationLibrary
from indical.calib.master import (FLAT_NORMALISATIONS, MasterSpec, Precal, build_master,
                                  write_master)
from indical.calib.precal import (DEFAULT_EXPOSURE_TOL, PrecalSpec, PrecalTarget, choose_precal,
                                  load_precal_image)
from indical.cli import console
from indical.commands.library_target import LIBRARY, open_library
from indical.commands.progress import masters_on_cluster, progress_bar
from indical.commands.scheduler import SCHEDULER_OPTION, connect
from indical.errors import IndicalError, OutputError, check_output_file, check_output_folder
from indical.filenames import path_inside
from indical.frame import FrameType

_TYPES = {"bias": FrameType.BIAS, "dark": FrameType.DARK, "darkflat": FrameType.DARKFLAT,
          "flat": FrameType.FLAT}


def resolve_precal(spec: PrecalSpec, *, flats: PrecalTarget | None,
                   library: CalibrationLibrary | None,
                   exposure_tol: float = DEFAULT_EXPOSURE_TOL) -> Precal:
    """Turn the --precal choice into the image/pedestal to subtract, with its description."""
    if spec.kind == "none":
        return Precal()
    if spec.kind == "pedestal":
        return Precal(pedestal_adu=spec.pedestal_adu, description=f"pedestal {spec.pedestal_adu:g} ADU")
    if spec.kind == "file":
        return Precal(image=load_precal_image(spec.path), description=f"file {spec.path.name}")
    if library is None or flats is None:
        raise IndicalError("--precal library needs a calibration library (--library)")
    choice = choose_precal(library.masters(), flats,
                           sensor=library.sensor_of(flats.config.camera), exposure_tol=exposure_tol)
    if choice is None:
        raise IndicalError(f"{library.name}: no bias, and no dark or dark-flat master of "
                           f"{flats.exposure_s:g} s, of {flats.config.size} bin "
                           f"{flats.config.binning} matches these flats; build one first or use "
                           "--precal none")
    return Precal(image=choice.image(), description=choice.description, reason=choice.reason)


def _flats(records: list[FrameRecord]) -> PrecalTarget:
    temps = [x.meta.sensor_temp_c for x in records if x.meta.sensor_temp_c is not None]
    config = replace(records[0].config, temperature_c=sum(temps) / len(temps) if temps else None)
    return PrecalTarget(config, sum(x.meta.exposure_s for x in records) / len(records))


def _master_spec(paths: list[Path], out: Path, *, kind: FrameType | None,
                 options: CombineOptions, precal_spec: PrecalSpec,
                 library: CalibrationLibrary | None, records: list[FrameRecord] | None,
                 ignore_type: bool, force: bool, memory_limit: int,
                 precal_exposure_tol: float = DEFAULT_EXPOSURE_TOL,
                 flat_normalisation: str = "channel",
                 inspect=ingest_paths) -> MasterSpec:
    """What to build for `out`: the inputs, the options, the precalibration resolved."""
    if out.exists() and not force:
        raise IndicalError(f"{out}: already exists; use --force to overwrite")
    precal = Precal()
    if precal_spec.kind != "none" and kind in (None, FrameType.FLAT):
        flats = _flats(records) if records else None
        if precal_spec.kind == "library" and flats is None:
            report = inspect(paths)
            flats = _flats(report.records) if report.records else None
        precal = resolve_precal(precal_spec, flats=flats, library=library,
                                exposure_tol=precal_exposure_tol)
    return MasterSpec(paths=paths, frame_type=kind, options=options, precal=precal,
                      ignore_type=ignore_type, memory_limit_bytes=memory_limit,
                      flat_normalisation=flat_normalisation)


def _build_one(paths: list[Path], out: Path, *, rejection_map: Path | None, **common) -> Path:
    spec = _master_spec(paths, out, **common)
    with progress_bar() as bar:
        task = bar.add_task(f"combining {len(paths)} frames -> {escape(out.name)}", total=None)
        build = build_master(spec, progress=lambda done, total: bar.update(task, completed=done, total=total))
    write_master(build, out, overwrite=common["force"], rejection_map=rejection_map)
    opts = build.result.options
    _say_written(out, str(build.header["IMAGETYP"]), len(paths), opts.method.value,
                 opts.parameters(), build.precal.description, build.precal.reason)
    return out


def _say_written(out: Path, imagetyp: str, n: int, method: str, parameters: dict,
                 precal: str, reason: str) -> None:
    params = ", ".join(f"{k}={v}" for k, v in parameters.items())
    console.print(f"[green]wrote[/] {escape(str(out))}: {imagetyp}, "
                  f"{n} frames, {method}{f' ({params})' if params else ''}, "
                  f"precal {escape(precal)}" + (f" ({escape(reason)})" if reason else ""),
                  soft_wrap=True, highlight=False)


def _cluster_ingest(cluster, paths: list[Path], frame_type: FrameType | None):
    """ingest_paths with one task per file on the cluster."""
    from indical.calib.ingest import IngestReport
    report = IngestReport([], [])
    for path, got in zip(paths, cluster.inspect(paths, frame_type)):
        if isinstance(got, str):
            report.skipped.append((Path(path), got))
        else:
            report.records.append(got)
    return report


def _build_groups(report, grouping: GroupingOptions,
                  frame_type: FrameType | None, out_dir: Path, move_inputs: Path | None,
                  common: dict, cluster, rows_per_task: int | None) -> None:
    """One master per group, each group's failure reported and the others built."""
    for path, reason in report.skipped:
        console.print(f"[yellow]skipped[/] {escape(str(path))}: {escape(reason)}",
                      soft_wrap=True, highlight=False)
    records = [r for r in report.records if frame_type is None or r.meta.frame_type is frame_type]
    groups, small = group_frames(records, grouping)
    for g in small:
        console.print(f"[yellow]group {escape(g.label())}[/]: {len(g.records)} frames, fewer "
                      f"than --min-group {grouping.min_group}; skipped")
    if not groups:
        raise IndicalError("no group has enough frames; nothing was built")
    failed: list[str] = []

    def fail(label: str, exc: IndicalError) -> None:
        console.print(f"[red]group {escape(label)} failed[/]: {escape(str(exc))}",
                      soft_wrap=True, highlight=False)
        failed.append(label)

    orders: list[MasterOrder] = []
    for g in groups:
        group_paths = [Path(r.path) for r in g.records]
        try:
            out = path_inside(out_dir, f"master_{g.label()}.fits")
            if cluster is None:
                _build_one(group_paths, out, records=g.records,
                           rejection_map=None, **{**common, "kind": g.key.frame_type})
                if move_inputs:
                    _move_inputs(group_paths, move_inputs)
            else:
                spec = _master_spec(group_paths, out, records=g.records,
                                    **{**common, "kind": g.key.frame_type})
                from indical.calib.cluster import MasterOrder
                orders.append(MasterOrder(spec, out, g.label(), overwrite=common["force"]))
        except IndicalError as exc:  # one bad group does not stop the others
            fail(g.label(), exc)
    if cluster is not None:
        for order, built in _build_on_cluster(cluster, orders, rows_per_task):
            try:
                if isinstance(built, IndicalError):
                    raise built
                if move_inputs:
                    _move_inputs(list(order.spec.paths), move_inputs)
            except IndicalError as exc:
                fail(order.label, exc)
    if failed:
        raise IndicalError(f"{len(failed)} of {len(groups)} groups failed: {', '.join(failed)}")


def _build_on_cluster(cluster, orders, rows_per_task: int | None):
    """Build `orders` on the cluster, saying what was written; yields (order, MasterWritten
    or IndicalError) in order."""
    for order, built in masters_on_cluster(cluster, orders, rows_per_task=rows_per_task):
        if not isinstance(built, IndicalError):
            _say_written(built.path, built.imagetyp, built.n_frames, built.method,
                         built.parameters, built.precal_description, built.precal_reason)
        yield order, built


def _check_outputs(output: Path, rejection_map: Path | None, inputs: list[Path], *,
                   force: bool) -> None:
    """Before any work: the master and the rejection map go to existing writable folders, are
    two different files, and never replace an input (not even with --force, not through a
    link)."""
    check_output_file(output, what="master")
    if output.exists() and not force:
        raise OutputError(output, "already exists; use --force to overwrite")
    if rejection_map is not None:
        check_output_file(rejection_map, what="rejection map")
        if rejection_map.exists() and not force:
            raise OutputError(rejection_map, "already exists; use --force to overwrite")
        if rejection_map.resolve() == output.resolve():
            raise OutputError(output, "is named as both the master and the rejection map; "
                                      "give them two names")
    sources = {p.resolve() for p in inputs}
    for out in (output, rejection_map):
        if out is not None and out.resolve() in sources:
            raise OutputError(out, "is one of the inputs; choose another name (indical never "
                                   "writes over a raw frame)")


def _check_free_names(paths: list[Path], folder: Path) -> None:
    taken = [p.name for p in paths if (folder / p.name).exists()]
    if taken:
        raise IndicalError(f"{folder}: already holds {', '.join(taken)}; nothing was moved")


def _move_inputs(paths: list[Path], folder: Path) -> None:
    """Move the inputs after success; refuse before moving anything if a name is taken."""
    folder.mkdir(parents=True, exist_ok=True)
    _check_free_names(paths, folder)
    for p in paths:
        shutil.move(str(p), str(folder / p.name))


@click.command(short_help="Combine FITS files into master frames.")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Output FITS file (one master from all FILES).")
@click.option("--type", "kind", type=click.Choice(sorted(_TYPES)), default=None,
              help="Frame type; default: from the headers (all must agree).")
@click.option("--combine", "method", type=click.Choice([m.value for m in Method]), default="sigma",
              show_default=True,
              help="Combine method (auto: mean for 1-2 frames, percentile 3-6, sigma 7-14, "
                   "winsorized 15 or more).")
@click.option("--sigma-low", type=float, default=3.0, show_default=True,
              help="sigma, winsorized, linearfit: reject values this many standard deviations "
                   "below the centre.")
@click.option("--sigma-high", type=float, default=3.0, show_default=True,
              help="sigma, winsorized, linearfit: reject values this many standard deviations "
                   "above the centre.")
@click.option("--center", type=click.Choice(["median", "mean"]), default="median",
              show_default=True,
              help="sigma: the centre rejection is measured from (as astropy's sigma_clip).")
@click.option("--maxiters", type=int, default=5, show_default=True,
              help="Maximum rejection iterations (0: until nothing changes).")
@click.option("--clip", type=int, default=1, show_default=True,
              help="minmax: drop this many lowest and highest values.")
@click.option("--percentile-low", type=float, default=0.2, show_default=True,
              help="percentile: reject values more than this fraction of the median below it.")
@click.option("--percentile-high", type=float, default=0.1, show_default=True,
              help="percentile: reject values more than this fraction of the median above it.")
@click.option("--precal", "precal_text", default="none", show_default=True,
              help="Subtract from flats: none, pedestal:N, a FITS file, or library.")
@click.option("--precal-exposure-tol", type=click.FloatRange(0), default=DEFAULT_EXPOSURE_TOL,
              show_default=True,
              help="--precal library: a dark (flat) is used only within this fraction of the "
                   "flats' exposure; otherwise the bias (CMOS) or the bias plus a dark scaled by "
                   "exposure (cameras set to ccd: indical library sensor).")
@click.option("--group", "group_text", default=None,
              help="Group the files, e.g. size,filter,exposure,temp:1.0; one master per group.")
@click.option("--min-group", type=int, default=3, show_default=True,
              help="With --group: smaller groups are reported and skipped.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="With --group: where the masters go.")
@click.option("--move-inputs", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Move the inputs of each master built into this folder.")
@click.option("--ignore-type", is_flag=True, help="Take --type over the headers' IMAGETYP.")
@click.option("--force", is_flag=True, help="Overwrite existing outputs.")
@click.option("--memory-limit", "memory_mb", type=click.IntRange(1),
              default=DEFAULT_MEMORY_LIMIT // 2**20,
              show_default=True, help="Memory budget in MB.")
@click.option("--rejection-map", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the number of values rejected per pixel to this file.")
@click.option("--library", "library_path", type=LIBRARY, default=None,
              help="Calibration library for --precal library (a file or a postgresql:// URL).")
@click.option("--flat-normalisation", type=click.Choice(FLAT_NORMALISATIONS), default="channel",
              show_default=True,
              help="Colour (Bayer) flats: each CFA channel to mean 1, or one overall factor "
                   "(the header's FLATNORM says which; mono flats always take one factor).")
@SCHEDULER_OPTION
@click.option("--rows-per-task", type=click.IntRange(0), default=None,
              help="With --scheduler: rows of the frames combined per task (default: bands "
                   "that read about 512 MB each; 0: one task per master).")
def master(files, output, kind, method, sigma_low, sigma_high, center, maxiters, clip,
           percentile_low, percentile_high, precal_text, precal_exposure_tol, group_text,
           min_group, out_dir,
           move_inputs, ignore_type, force, memory_mb, rejection_map, library_path,
           flat_normalisation, scheduler, rows_per_task) -> None:
    """Combine FILES (FITS files or folders) into a master frame.

    With --scheduler, the files are read and the masters built and written by the workers of
    a Dask cluster (one task per master, or per band of rows of a big stack); they must see
    the files and the output folder at the same paths."""
    try:
        options = CombineOptions(method=Method(method), sigma_low=sigma_low, sigma_high=sigma_high,
                                 center=center, maxiters=None if maxiters == 0 else maxiters,
                                 clip=clip, percentile_low=percentile_low,
                                 percentile_high=percentile_high)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        precal_spec = PrecalSpec.parse(precal_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--precal") from None
    try:
        grouping = GroupingOptions.parse(group_text, min_group=min_group) if group_text else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--group") from None
    if ignore_type and kind is None:
        raise click.UsageError("--ignore-type needs --type")
    if (output is None) == (grouping is None):
        raise click.UsageError("give either -o OUT.fits (one master) or --group KEYS --out-dir DIR")
    if grouping is not None and out_dir is None:
        raise click.UsageError("--group needs --out-dir")
    if rows_per_task is not None and not scheduler:
        raise click.UsageError("--rows-per-task needs --scheduler")
    paths = list(find_fits(files))
    if scheduler:  # the workers' working folders are not ours: every path made absolute
        paths = [p.absolute() for p in paths]
        output, out_dir, rejection_map, move_inputs = (
            None if p is None else p.absolute()
            for p in (output, out_dir, rejection_map, move_inputs))
    if output is not None:
        _check_outputs(output, rejection_map, paths, force=force)
    else:
        check_output_folder(out_dir)
    if move_inputs is not None:
        check_output_folder(move_inputs)
        if output is not None:
            _check_free_names(paths, move_inputs)
    frame_type = _TYPES[kind] if kind else None
    library = open_library(library_path) if precal_spec.kind == "library" else None
    common = dict(kind=frame_type, options=options, precal_spec=precal_spec, library=library,
                  ignore_type=ignore_type, force=force, memory_limit=memory_mb * 2**20,
                  precal_exposure_tol=precal_exposure_tol,
                  flat_normalisation=flat_normalisation)
    try:
        with connect(scheduler) as cluster:
            if grouping is None:
                if cluster is None:
                    _build_one(paths, output, records=None, rejection_map=rejection_map,
                               **common)
                else:
                    from indical.calib.cluster import MasterOrder
                    common["inspect"] = lambda p: _cluster_ingest(cluster, p, frame_type)
                    order = MasterOrder(_master_spec(paths, output, records=None, **common),
                                        output, output.name, overwrite=force,
                                        rejection_map=rejection_map)
                    [(_, built)] = _build_on_cluster(cluster, [order], rows_per_task)
                    if isinstance(built, IndicalError):
                        raise built
                if move_inputs:
                    _move_inputs(paths, move_inputs)
                return
            inspect_type = frame_type if ignore_type else None
            report = (ingest_paths(paths, frame_type=inspect_type) if cluster is None else
                      _cluster_ingest(cluster, paths, inspect_type))
            _build_groups(report, grouping, frame_type, out_dir, move_inputs, common, cluster,
                          rows_per_task)
    finally:
        if library is not None:
            library.close()
