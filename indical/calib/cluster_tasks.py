"""What Dask workers run for `--scheduler` (indical.calib.cluster submits it): one light, a
survey of a master's inputs, a band of a master's rows, the master put together and written.

Tasks read their inputs and write their outputs on paths every machine sees, and return small
results; they never touch the calibration library (the client writes it). Nothing here imports
Dask. Each task can run twice (Dask reruns a task whose worker died): outputs are renamed into
place whole, and a second run finds the file the first one wrote and leaves it, or writes the
same bytes again. The only state a worker keeps is a cache of prepared masters, so consecutive
lights don't read the same masters again."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import socket
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from indical import __version__
from indical.atomic import atomic_file
from indical.calib.calibrate import CalibrateOptions, Calibrator, LightOutcome
from indical.calib.catalogue import MasterCatalogue
from indical.calib.combine.engine import (CombineInput, CombineResult, combine_files,
                                          measure_cell_levels, measure_level)
from indical.calib.ingest import FrameRecord, inspect_file
from indical.calib.master import (MasterBuild, MasterSpec, SourceInfo, combine_job,
                                  finish_master, survey)
from indical.calib.match import MasterInfo
from indical.calib.rawio import open_raw
from indical.errors import FitsError, IndicalError
from indical.fits.header import Header, write_image
from indical.frame import FrameMeta, FrameType


class TaskError(IndicalError):
    """An IndicalError raised on a worker, carried back as its message (errors with several
    constructor arguments do not survive pickling)."""


# Folders of the package that a wheel installs and a checkout keeps elsewhere (drivers,
# simulators, sequences, examples: pyproject's package-dir; indical/ links to them, and rglob
# does not follow links); they compute no result here.
_NOT_HASHED = {"drivers", "simulators", "shipped_sequences", "examples", "__pycache__"}


@dataclass(frozen=True)
class Build:
    """What makes two installs of indical compute the same results: the version, a hash of its
    Python code and the hash of the C sources its kernel was compiled from (compiled into the
    kernel). The client and every worker must agree on all three (decision 024)."""

    version: str
    code: str
    kernel: str

    def __str__(self) -> str:
        return f"indical {self.version} (code {self.code}, kernel {self.kernel})"


@functools.cache
def this_build() -> Build:
    """This process's Build (its code hash as imported, its kernel's as loaded)."""
    from indical.calib.combine.native import KernelMissing, kernel
    try:
        source = kernel().source_sha
    except KernelMissing:
        source = "missing"
    return Build(__version__, _CODE_AT_IMPORT, source)


def code_sha(package: Path) -> str:
    """sha256 (16 hex digits) of the Python files of the indical package at `package`:
    relative paths and bytes, in order, leaving out what an editable install keeps elsewhere."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if _NOT_HASHED.isdisjoint(rel.parts[:-1]):
            digest.update(rel.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


#: The code hash taken when this module is imported (116 files, about 5 ms), with the modules
#: the tasks run, which it imports above: a worker whose files are edited or reinstalled while
#: it runs keeps reporting the code it runs, not the code on its disk (hashing on the first
#: check reported the files as they were then).
_CODE_AT_IMPORT = code_sha(Path(__file__).resolve().parent.parent)


def worker_build() -> Build:
    """The worker's Build (the client runs it on every worker when it connects)."""
    return this_build()


def check_build(expected: Build) -> None:
    """Refuse to compute on a worker whose build is not the client's (one that joined the
    cluster after the client checked them all)."""
    mine = this_build()
    if mine != expected:
        raise TaskError(f"worker {_where()} runs {mine}, the client {expected}: install the "
                        f"client's indical where the workers run")


def sees(files: list[tuple[str, int, int]], markers: list[tuple[str, str]]) -> list[str]:
    """What this worker does not see as the client does: files (path, size, mtime in ns) and
    marker files the client wrote (path, token). Empty when it sees them all."""
    problems = []
    for path, size, mtime_ns in files:
        try:
            st = os.stat(path)
        except OSError as exc:
            problems.append(f"{Path(path).parent}: can't see {Path(path).name} there "
                            f"({exc.strerror or exc})")
            continue
        if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
            problems.append(f"{path}: another file at this path (size or time differ from "
                            f"the client's)")
    for path, token in markers:
        folder = Path(path).parent
        try:
            found = Path(path).read_text()
        except OSError:
            found = None
        if found != token:
            why = ("no such folder there" if not folder.is_dir() else
                   "another folder at this path (a file the client wrote there is not in it)")
            problems.append(f"{folder}: {why}")
    return problems


def _where() -> str:
    try:
        from distributed import get_worker   # on a worker, Dask is loaded already
        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()} (pid {os.getpid()})"


# --- calibrate: one task per light ------------------------------------------------------------

@dataclass(frozen=True)
class CalibrateJob:
    """What every light of one `indical calibrate` run shares: the masters that may be chosen,
    the options, and the client's clock (the same `now` for every light, as in a local run)."""

    token: str
    masters: tuple[MasterInfo, ...]
    options: CalibrateOptions
    now: datetime
    build: Build


_calibrators: OrderedDict[str, Calibrator] = OrderedDict()
_calibrators_lock = threading.Lock()


def _calibrator(job: CalibrateJob) -> Calibrator:
    with _calibrators_lock:
        calibrator = _calibrators.get(job.token)
        if calibrator is None:
            check_build(job.build)
            given = job.options.given   # calibrate --bias/--dark/--flat/--bpm: not the library's
            catalogue = (MasterCatalogue(list(job.masters)) if given is None else
                         MasterCatalogue(list(job.masters), loader=given.loader()))
            calibrator = Calibrator(catalogue, job.options, now=job.now)
            _calibrators[job.token] = calibrator
            while len(_calibrators) > 2:   # a run or two at a time; older masters freed
                _calibrators.popitem(last=False)
        return calibrator


def calibrate_light(path: str, job: CalibrateJob) -> LightOutcome:
    """Calibrate one light and write its output; the outcome goes back to the client."""
    return _calibrator(job).calibrate(Path(path))


def inspect(path: str, frame_type: FrameType | None, build: Build) -> FrameRecord | str:
    """inspect_file for `indical master --group` and `library ingest`: the record, or why the
    file is skipped."""
    check_build(build)
    try:
        return inspect_file(Path(path), frame_type=frame_type)
    except FitsError as exc:
        return exc.problem


# --- master: a survey, bands of rows, the master written ---------------------------------------

@dataclass(frozen=True)
class MasterPlan:
    """A master's inputs checked (by `survey_master`): their type, what each source is, and the
    combine job with every frame's level measured, so each band scales the frames alike."""

    kind: FrameType
    sources: tuple[SourceInfo, ...]
    job: CombineInput
    width: int
    height: int
    itemsize: int      # bytes per stored pixel of the first frame
    build: Build       # the client's: every task of the master checks its worker has it


def plan_size(plan: MasterPlan) -> tuple[int, int, int, int]:
    """Height, width, frames and bytes per pixel: how the client splits the combine."""
    return plan.height, plan.width, len(plan.sources), plan.itemsize


@dataclass(frozen=True)
class MasterWritten:
    """What the client prints and records in the library about a master a worker wrote."""

    path: Path
    imagetyp: str
    meta: FrameMeta
    method: str
    parameters: dict
    n_frames: int
    precal_description: str
    precal_reason: str


def survey_master(spec: MasterSpec, build: Build) -> MasterPlan:
    """master.survey on a worker, and the levels measured (after any precalibration image)."""
    check_build(build)
    try:
        kind, infos = survey(spec)
        job = combine_job(spec, kind, infos)
        with open_raw(infos[0].path) as image:
            itemsize = image.raw.dtype.itemsize
        if job.levels_adu is None:   # flats less a precalibration image: as combine_files does
            levels = []
            for info in infos:
                with open_raw(info.path) as image:
                    levels.append(measure_level(image, job.precal_image, job.pedestal_adu))
            job = replace(job, levels_adu=levels)
        if job.per_cell_position and job.cell_levels_adu is None:   # every band scales alike
            cells = []
            for info in infos:
                with open_raw(info.path) as image:
                    cells.append(measure_cell_levels(image, job.precal_image, job.pedestal_adu))
            job = replace(job, cell_levels_adu=cells)
    except IndicalError as exc:
        raise TaskError(str(exc)) from None
    return MasterPlan(kind, tuple(infos), job, infos[0].width, infos[0].height, itemsize, build)


def combine_band(plan: MasterPlan, start: int, stop: int) -> CombineResult:
    """Rows [start, stop) of the master, combined."""
    check_build(plan.build)
    try:
        return combine_files(plan.job, rows=(start, stop))
    except IndicalError as exc:
        raise TaskError(str(exc)) from None


def write_master_from_bands(spec: MasterSpec, plan: MasterPlan, bands: list[CombineResult],
                            out: str, now: datetime, *, overwrite: bool = False,
                            rejection_map: str | None = None) -> MasterWritten:
    """The bands put together (the whole image, as one combine makes it), finished like a local
    build (flats normalised over the whole image) and written."""
    check_build(plan.build)
    first = bands[0]
    result = CombineResult(data=np.concatenate([b.data for b in bands]),
                           rejected=np.concatenate([b.rejected for b in bands]),
                           options=first.options, levels_adu=first.levels_adu,
                           scales=first.scales, cell_scales=first.cell_scales)
    try:
        build = finish_master(spec, plan.kind, list(plan.sources), result, now=now)
        return _write(build, Path(out), overwrite, rejection_map)
    except IndicalError as exc:
        raise TaskError(str(exc)) from None


def write_master_whole(spec: MasterSpec, plan: MasterPlan, out: str, now: datetime, *,
                       overwrite: bool = False, rejection_map: str | None = None) -> MasterWritten:
    """A master small enough for one task: combined, finished and written."""
    check_build(plan.build)
    try:
        build = finish_master(spec, plan.kind, list(plan.sources), combine_files(plan.job),
                              now=now)
        return _write(build, Path(out), overwrite, rejection_map)
    except IndicalError as exc:
        raise TaskError(str(exc)) from None


def _write(build: MasterBuild, out: Path, overwrite: bool,
           rejection_map: str | None) -> MasterWritten:
    header = build.header.copy()
    for key in ("BZERO", "BSCALE"):
        header.pop(key, None)
    map_written: Path | None = None
    if rejection_map is not None and build.result.rejected is not None:
        rh = Header()
        rh["IMAGETYP"] = ("Rejection Map", "Values rejected per pixel")
        rh["MASTER"] = (out.name, "Master this map belongs to")
        existed = Path(rejection_map).exists()
        write_once(Path(rejection_map), build.result.rejected.astype(np.int16), rh, overwrite)
        map_written = None if existed else Path(rejection_map)
    try:
        write_once(out, build.data, header, overwrite)
    except BaseException:
        if map_written is not None:   # as write_master: a failure leaves neither file
            map_written.unlink(missing_ok=True)
        raise
    options = build.result.options
    return MasterWritten(path=out, imagetyp=str(build.header["IMAGETYP"]), meta=build.meta,
                         method=options.method.value, parameters=options.parameters(),
                         n_frames=len(build.sources), precal_description=build.precal.description,
                         precal_reason=build.precal.reason)


def write_once(path: Path, data: np.ndarray, header: Header, overwrite: bool) -> None:
    """Write an image atomically. Without `overwrite`, a file already there is an error unless
    it holds these very bytes: the same task's earlier run wrote it before its worker died."""
    if overwrite:
        with atomic_file(path, overwrite=True) as fh:
            write_image(fh, data, header)
        return
    try:
        with atomic_file(path) as fh:
            write_image(fh, data, header)
    except FileExistsError:
        buffer = io.BytesIO()
        write_image(buffer, data, header)
        if not _holds(path, buffer.getvalue()):
            raise FitsError(path, "already exists; use --force to overwrite") from None


def _holds(path: Path, payload: bytes) -> bool:
    try:
        if path.stat().st_size != len(payload):
            return False
        return path.read_bytes() == payload
    except OSError:
        return False
