"""`indical library`: ingest frames, list frames and masters, sweep (build what is due)."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import click
from rich.markup import escape
from rich import box
from rich.table import Table

from indical.calib.autobuild import MASTERS_BEING_WRITTEN, AutoBuildPolicy, build_group, due_groups
from indical.calib.combine.options import CombineOptions, Method
from indical.calib.grouping import GroupingOptions
from indical.calib.ingest import find_fits
from indical.calib.library import (DEFAULT_EXPIRY_DAYS, CalibrationLibrary, IngestResult,
                                   default_library_path)
from indical.calib.master import FLAT_NORMALISATIONS
from indical.cli import console
from indical.commands.library_target import LIBRARY, open_library
from indical.commands.progress import masters_on_cluster, progress_bar
from indical.commands.scheduler import SCHEDULER_OPTION, connect
from indical.errors import IndicalError
from indical.frame import FrameType

_TYPES = {t.value: t for t in FrameType}


@click.group()
@click.option("--library", "library_path", type=LIBRARY, default=None,
              help="Library database: a file or a postgresql://USER@HOST/DB URL (default: "
                   "$INDICAL_LIBRARY or $XDG_DATA_HOME/indical/library/library.sqlite).")
@click.pass_context
def library(ctx: click.Context, library_path: Path | None) -> None:
    """The calibration library: frames, masters and what is due. --library goes before the
    subcommand: indical library --library DB ls."""
    ctx.obj = library_path or default_library_path()


def _policy(min_frames: int, method: str, group_text: str,
            precal_exposure_tol: float = 0.05,
            flat_normalisation: str = "channel") -> AutoBuildPolicy:
    try:
        grouping = GroupingOptions.parse(group_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--group") from None
    try:
        return AutoBuildPolicy(min_frames_for_master=min_frames, grouping=grouping,
                               precal_exposure_tol=precal_exposure_tol,
                               combine=CombineOptions(method=Method(method)),
                               flat_normalisation=flat_normalisation)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


_BUILD_OPTIONS = [
    click.option("--min-frames", type=click.IntRange(2), default=10, show_default=True,
                 help="A group's master is built once it has this many frames."),
    click.option("--combine", "method", type=click.Choice([m.value for m in Method]),
                 default="sigma", show_default=True,
                 help="Combine method, as `indical master --combine` (its defaults)."),
    click.option("--group", "group_text", default="size,filter,exposure,temp:2",
                 show_default=True, help="Grouping keys and temperature width."),
    click.option("--precal-exposure-tol", type=click.FloatRange(0), default=0.05,
                 show_default=True,
                 help="Flat masters subtract a dark (flat) only within this fraction of the "
                      "flats' exposure; else the bias (CMOS) or bias plus scaled dark (CCD)."),
    click.option("--flat-normalisation", type=click.Choice(FLAT_NORMALISATIONS),
                 default="channel", show_default=True,
                 help="Colour (Bayer) master flats: each CFA channel to mean 1, or one "
                      "overall factor (mono flats always take one factor)."),
]


def _with_build_options(f):
    for option in reversed(_BUILD_OPTIONS):
        f = option(f)
    return f


def _build_due(lib: CalibrationLibrary, policy: AutoBuildPolicy, cluster=None) -> int:
    groups = due_groups(lib, policy)
    if cluster is not None:
        return _build_due_on_cluster(lib, policy, groups, cluster)
    failed = 0
    for g in groups:
        started = datetime.now(timezone.utc)
        with progress_bar() as bar:
            task = bar.add_task(f"master {escape(g.label())}", total=None)
            try:
                m = build_group(lib, g, policy,
                                progress=lambda d, t: bar.update(task, completed=d, total=t))
            except IndicalError as exc:
                failed += 1
                console.print(f"[red]group {escape(g.label())} failed[/]: {escape(str(exc))}",
                              soft_wrap=True, highlight=False)
                continue
        if m.created_at < started:  # another process sharing the library built it meanwhile
            console.print(f"{escape(Path(m.path).name)} holds group {escape(g.label())} "
                          "already (built by another process)", soft_wrap=True)
            continue
        console.print(f"[green]built[/] {escape(Path(m.path).name)} from {m.n_frames} frames "
                      f"({m.method}, precal {escape(m.precal)})")
    if not groups:
        console.print("no group is due for a master")
    return failed


def _build_due_on_cluster(lib: CalibrationLibrary, policy: AutoBuildPolicy, groups,
                          cluster) -> int:
    """The due groups' masters built and written by the cluster's workers, indexed here: bias,
    darks and dark flats first, then the flats, which subtract the masters just indexed. Each
    group's lock is held as build_group holds it (other processes sharing a PostgreSQL library
    wait, or find the master built), taken in the due order so two sweeps can't deadlock."""
    from contextlib import ExitStack

    from indical.calib.autobuild import built_meanwhile, group_key_json, index_group, plan_group
    from indical.calib.cluster import MasterOrder
    failed = 0

    def fail(g, exc: IndicalError) -> None:
        nonlocal failed
        failed += 1
        console.print(f"[red]group {escape(g.label())} failed[/]: {escape(str(exc))}",
                      soft_wrap=True, highlight=False)

    for phase in ([g for g in groups if g.key.frame_type is not FrameType.FLAT],
                  [g for g in groups if g.key.frame_type is FrameType.FLAT]):
        with ExitStack() as held:
            orders, of_group = [], {}
            for g in phase:
                held.enter_context(lib.db.held(f"build:{group_key_json(g.key)}"))
                built = built_meanwhile(lib, g)
                if built is not None:
                    console.print(f"{escape(Path(built.path).name)} holds group "
                                  f"{escape(g.label())} already (built by another process)",
                                  soft_wrap=True)
                    continue
                try:
                    spec, path = plan_group(lib, g, policy)
                except IndicalError as exc:
                    fail(g, exc)
                    continue
                orders.append(MasterOrder(spec, path, g.label()))
                of_group[path] = g
            held.enter_context(lib.db.held(MASTERS_BEING_WRITTEN, shared=True))
            for order, done in masters_on_cluster(cluster, orders):
                g = of_group[order.out]
                try:
                    if isinstance(done, IndicalError):
                        raise done
                    m = index_group(lib, g, policy, order.spec, order.out,
                                    exposure_s=done.meta.exposure_s, method=done.method,
                                    parameters=done.parameters)
                except IndicalError as exc:
                    fail(g, exc)
                    continue
                console.print(f"[green]built[/] {escape(Path(m.path).name)} from {m.n_frames} "
                              f"frames ({m.method}, precal {escape(m.precal)})")
    if not groups:
        console.print("no group is due for a master")
    return failed


def _ingest(lib: CalibrationLibrary, paths: list[Path], kind: FrameType | None, *,
            empty_ok: bool = False, cluster=None):
    unreadable: list[tuple[Path, str]] = []
    files = list(find_fits(paths, unreadable=unreadable, empty_ok=empty_ok))
    with progress_bar() as bar:
        task = bar.add_task("ingesting", total=len(files))
        if cluster is None:
            result = lib.ingest(files, frame_type=kind, progress=lambda p: bar.advance(task))
        else:
            result = _ingest_on_cluster(lib, files, kind, cluster, lambda: bar.advance(task))
    result.skipped[:0] = unreadable
    for path, reason in result.skipped:
        console.print(f"[yellow]skipped[/] {escape(str(path))}: {escape(reason)}",
                      soft_wrap=True, highlight=False)
    console.print(f"{len(result.added)} frames added, {len(result.known)} already known, "
                  f"{len(result.skipped)} skipped")
    return result


def _ingest_on_cluster(lib: CalibrationLibrary, files: list[Path], kind: FrameType | None,
                       cluster, advance) -> IngestResult:
    """lib.ingest with the files read and hashed by the cluster's workers (one task per file);
    this process indexes the records they return, in the files' order."""
    result = IngestResult()
    for path, got in zip(files, cluster.inspect(files, kind)):
        if isinstance(got, str):
            result.skipped.append((path, got))
        else:
            stored, new = lib.add_frame(got)
            (result.added.append(stored) if new else result.known.append(path))
        advance()
    return result


@library.command("ingest", short_help="Index frames from folders; build masters that are due.")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--type", "kind", type=click.Choice(sorted(_TYPES)), default=None,
              help="Take this type over the headers' IMAGETYP.")
@click.option("--build/--no-build", default=True, show_default=True,
              help="Build the masters of groups that have enough frames.")
@_with_build_options
@SCHEDULER_OPTION
@click.pass_obj
def ingest(db: Path, folders, kind, build, min_frames, method, group_text,
           precal_exposure_tol, flat_normalisation, scheduler) -> None:
    """Index the FITS files in FOLDERS (recursively); bad files are reported and skipped (exit
    status 1 when any was). With --scheduler, the files are read and hashed, and the masters
    built and written, by the workers of a Dask cluster, which must see FOLDERS and the
    library's folders at the same paths; this process indexes them."""
    policy = _policy(min_frames, method, group_text, precal_exposure_tol, flat_normalisation)
    with CalibrationLibrary(db) as lib, connect(scheduler) as cluster:
        result = _ingest(lib, list(folders), _TYPES[kind] if kind else None, cluster=cluster)
        if build and _build_due(lib, policy, cluster):
            raise IndicalError("some masters could not be built (see above)")
    if result.skipped:
        sys.exit(1)


@library.command("sweep", short_help="Index stray frames, clean up, build masters that are due.")
@click.argument("folders", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@_with_build_options
@SCHEDULER_OPTION
@click.pass_obj
def sweep(db: Path, folders, min_frames, method, group_text, precal_exposure_tol,
          flat_normalisation, scheduler) -> None:
    """Index frames written but not indexed (after a crash), remove masters written but never
    indexed and temporary files of interrupted writes (in the library and in FOLDERS, e.g.
    where `indical master -o` or `indical calibrate -o` write), build every due master, report
    files that went missing. With --scheduler, the masters are built and written by the
    workers of a Dask cluster, which must see the library's folders at the same paths; this
    process indexes them."""
    from indical.atomic import remove_stale_temporaries
    policy = _policy(min_frames, method, group_text, precal_exposure_tol, flat_normalisation)
    with CalibrationLibrary(db) as lib:
        stale = [p for folder in (lib.frames_dir, lib.masters_dir, *folders)
                 for p in remove_stale_temporaries(folder)]
        if stale:
            console.print(f"[yellow]removed[/] {len(stale)} temporary file(s) left by "
                          "interrupted writes", highlight=False)
        if lib.frames_dir.exists():
            _ingest(lib, [lib.frames_dir], None, empty_ok=True)
        with lib.db.held(MASTERS_BEING_WRITTEN, wait=False) as alone:
            # (on PostgreSQL, other processes may be writing masters right now: their files
            # are not indexed yet; left for a later sweep)
            for path in lib.unindexed_masters() if alone else []:
                path.unlink()
                console.print(f"[yellow]removed[/] {escape(str(path))} (a build interrupted "
                              "before it was indexed; it is rebuilt below if still due)",
                              soft_wrap=True)
            if not alone:
                console.print("other processes are writing masters: masters not indexed are "
                              "left for a later sweep", highlight=False)
        for path in lib.missing_files():
            console.print(f"[yellow]missing[/] {escape(path)} (indexed, but the file is gone)",
                          soft_wrap=True)
        with connect(scheduler) as cluster:
            if _build_due(lib, policy, cluster):
                raise IndicalError("some masters could not be built (see above)")


@library.command("import", short_help="Add masters made by other programs.")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--type", "kind", type=click.Choice(["bias", "dark", "darkflat", "flat"]),
              default=None, help="What the files are, when their headers and names don't say.")
@click.pass_obj
def import_(db: Path, files, kind) -> None:
    """Add masters made elsewhere (indical master -o, Siril, PixInsight/WBPP, N.I.N.A.,
    ccdproc): recognised, brought to indical's scale (ADU; flats mean 1.0), copied into the
    library's masters folder and matched like indical's own."""
    from indical.calib.master_import import import_master, known_shas
    from indical.calib.match import MasterKind
    from indical.errors import FitsError
    failed = 0
    with CalibrationLibrary(db) as lib:
        known = known_shas(lib)
        for path in files:
            try:
                done = import_master(lib, Path(path), kind=MasterKind(kind) if kind else None,
                                     known=known)
            except FitsError as exc:
                failed += 1
                console.print(f"[red]not imported[/] {escape(str(exc))}", highlight=False,
                              soft_wrap=True)
                continue
            if done.master is None:
                console.print(f"already in the library: {escape(str(path))}", soft_wrap=True)
                continue
            m = done.master
            scale = f", values x{done.scale:g}" if done.scale != 1.0 else ""
            console.print(f"[green]imported[/] {escape(str(path))} ({done.program}{scale}) as "
                          f"master {m.frame_type.value} -> {escape(m.path)}", highlight=False,
                          soft_wrap=True)
    if failed:
        raise IndicalError(f"{failed} of {len(files)} files not imported (see above)")


@library.command("ls", short_help="List frames by configuration, and masters.")
@click.option("--all", "show_all", is_flag=True, help="Also list superseded masters.")
@click.pass_obj
def ls(db: Path, show_all: bool) -> None:
    """Frames by configuration, and masters with their state (current, superseded, expired)."""
    with open_library(db) as lib:     # a mistyped --library is refused, not created empty
        counts = Counter((r.meta.frame_type.value + (f" {r.meta.flat_source.lower()}"
                                                     if r.meta.flat_source else ""),
                          r.meta.camera, r.meta.filter or "",
                          f"{r.meta.exposure_s:g}", str(r.meta.binning), f"{r.width}x{r.height}")
                         for r in lib.frames())
        frames = Table("type", "camera", "filter", "exposure s", "binning", "size", "frames",
                       title=f"frames in {escape(lib.name)}")
        for key, n in sorted(counts.items()):
            frames.add_row(*map(escape, key), str(n))
        console.print(frames)
        masters = Table("id", "type", "filter", "exp s", "temp C", "n", "method", "created UTC",
                        "state", title="masters", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0))
        files = []
        for m in lib.masters(include_superseded=show_all):
            kind = m.frame_type.value + (f" {m.flat_source.lower()}" if m.flat_source else "")
            state = ("superseded" if not m.current else
                     "[yellow]expired[/]" if lib.is_expired(m) else "[green]current[/]")
            masters.add_row(str(m.id), kind, escape(m.filter or ""),
                            f"{m.exposure_s:g}",
                            "" if m.config.temperature_c is None
                            else f"{m.config.temperature_c:.1f}",
                            str(m.n_frames), m.method, m.created_at.strftime("%Y-%m-%d %H:%M"),
                            state)
            files.append((m.id, m.path, m.precal if m.frame_type is FrameType.FLAT else "",
                          m.precal_reason, str(m.parameters.get("upgraded", ""))))
        for column in masters.columns:
            column.no_wrap = True
        console.print(masters)
        # file names run long: each on a line of its own, whole, so it can be copied
        for master_id, path, precal, reason, upgraded in files:
            console.print(f"{master_id:>4}  {escape(str(path))}", soft_wrap=True, highlight=False)
            if precal:  # flats: what was subtracted first, and why that
                console.print(f"      precal: {escape(precal)}"
                              + (f" ({escape(reason)})" if reason else ""), soft_wrap=True,
                              highlight=False)
            if upgraded:  # what an upgrade of the library changed in this record
                console.print(f"      upgraded: {escape(upgraded)}", soft_wrap=True,
                              highlight=False)
        sensors = lib.sensors()
        if sensors:
            console.print("sensors: " + ", ".join(f"{escape(c)} {s}" for c, s in sensors.items()),
                          soft_wrap=True, highlight=False)


@library.command("sensor", short_help="Say whether a camera is CMOS or CCD.")
@click.argument("camera")
@click.argument("sensor", type=click.Choice(["cmos", "ccd"]))
@click.pass_obj
def sensor(db: Path, camera: str, sensor: str) -> None:
    """Say that CAMERA (as in INSTRUME) has a CMOS or a CCD SENSOR. CCD flats without a dark
    flat of their exposure are precalibrated with the bias plus a dark scaled by exposure, and
    `indical calibrate` scales the dark current of its lights."""
    with CalibrationLibrary(db) as lib:
        lib.set_sensor(camera, sensor)
    console.print(f"{escape(camera)}: {sensor}", highlight=False)


_EXPIRY_DEFAULTS = ", ".join(f"{t.value} {d:g}" for t, d in DEFAULT_EXPIRY_DAYS.items())


@library.command("expiry", short_help="Set the age at which masters of a type expire.", help=(
    "Masters of type KIND older than DAYS count as expired (until set, in days: "
    f"{_EXPIRY_DEFAULTS}). An expired master is still used when no fresh one matches, with a "
    "warning."))
@click.argument("kind", type=click.Choice([t.value for t in DEFAULT_EXPIRY_DAYS]))
@click.argument("days", type=float)
@click.pass_obj
def expiry(db: Path, kind: str, days: float) -> None:
    with CalibrationLibrary(db) as lib:
        try:
            lib.set_expiry(_TYPES[kind], days)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        console.print(f"{kind} masters expire after {days:g} days")
