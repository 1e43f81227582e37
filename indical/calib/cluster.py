"""`--scheduler ADDRESS`: indical's independent work run on a Dask distributed cluster that the
user started (`dask scheduler`, `dask worker`), instead of local threads.

One task per light (calibrate), one per file inspected and one survey, then a task per master
or per band of rows of a big stack (master, library sweep). Workers read and write files on
paths every machine sees and return small results; this client alone writes the calibration
library, prints and counts, exactly as a local run does. The tasks themselves are in
`cluster_tasks` (no Dask there). Dask is imported here only, and only when a scheduler is
given: a local run never loads it (decision 024)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from indical.atomic import remove_stale_temporaries
from indical.calib import cluster_tasks as tasks
from indical.calib.calibrate import CalibrateOptions, LightOutcome
from indical.calib.match import MasterInfo
from indical.calib.master import MasterSpec
from indical.errors import IndicalError

CONNECT_TIMEOUT_S = 10.0
WORKERS_TIMEOUT_S = 60.0
# A big stack is split so that each task reads about this much of the frames: what a local
# combine keeps in memory at most (DEFAULT_MEMORY_LIMIT), and a few seconds' reading.
BAND_INPUT_BYTES = 512 * 2**20


class ClusterError(IndicalError):
    """The scheduler can't be reached, has no workers, or its workers can't run indical."""


@dataclass(frozen=True)
class MasterOrder:
    """One master for the cluster to build and write at `out`."""

    spec: MasterSpec
    out: Path
    label: str
    overwrite: bool = False
    rejection_map: Path | None = None


@dataclass
class MasterProgress:
    """Rows of one master combined so far, for progress bars (total known after its survey)."""

    index: int
    done: int
    total: int | None


class Cluster:
    """A connection to a Dask scheduler, checked: reachable, with workers that run this build
    of indical (version, Python code and compiled kernel), which see the paths a run gives
    them (`check_shared`)."""

    def __init__(self, address: str, *, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        try:
            import distributed
        except ImportError:
            raise ClusterError("--scheduler needs Dask distributed; install it with "
                               "pip install 'indical[dask]'") from None
        self.address = address
        self._distributed = distributed
        try:
            self.client = distributed.Client(address, timeout=timeout_s, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(f"{address}: can't reach the Dask scheduler ({exc}); start it "
                               "with `dask scheduler` or check the address") from None
        try:
            self._check_workers()
        except BaseException:
            self.client.close()
            raise

    def _check_workers(self) -> None:
        try:
            self.client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except TimeoutError:
            raise ClusterError(f"{self.address}: the scheduler has no workers after "
                               f"{WORKERS_TIMEOUT_S:g} s; start some with `dask worker "
                               f"{self.address}`") from None
        self.build = tasks.this_build()
        try:
            builds = self.client.run(tasks.worker_build, on_error="return")
        except Exception as exc:  # noqa: BLE001 - anything a worker says, reported as it is
            raise ClusterError(f"{self.address}: the workers can't run indical ({exc}); "
                               f"install {self.build} where they run") from None
        wrong = []
        for worker, build in sorted(builds.items(), key=str):
            if isinstance(build, BaseException):   # no indical there, or one without this task
                wrong.append(f"worker {worker} can't run this indical "
                             f"({type(build).__name__}: {build})")
            elif build != self.build:
                wrong.append(f"worker {worker} runs {build}")
        if wrong:
            raise ClusterError(f"{self.address}: " + "; ".join(wrong) + f"; this client runs "
                               f"{self.build}. Install the client's indical where the workers "
                               f"run (a worker with other code may compute other results)")

    def check_shared(self, *, reads: Iterable[Path] = (), writes: Iterable[Path] = ()) -> None:
        """Refuse (ClusterError naming the path, the worker and why) unless every worker sees
        the files `reads` as this machine does (same size and modification time; one file per
        folder is looked at) and the folders `writes` as the same folders (this machine creates
        each, writes a file with a random token in it, and the workers read it back). Workers
        on other machines must see frames, masters and outputs on shared storage at the same
        paths (decision 024)."""
        samples: dict[Path, tuple[str, int, int]] = {}
        for path in reads:
            path = Path(path).absolute()
            if path.parent in samples:
                continue
            try:
                st = path.stat()
            except OSError:
                continue   # not there for this machine either: the run reports it as locally
            samples[path.parent] = (str(path), st.st_size, st.st_mtime_ns)
        markers: list[tuple[Path, str]] = []
        try:
            for folder in sorted({Path(f).absolute() for f in writes}):
                token = uuid.uuid4().hex
                marker = folder / f".indical-shared-{token}"
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                    marker.write_text(token)
                except OSError as exc:
                    raise ClusterError(f"{folder}: can't write there "
                                       f"({exc.strerror or exc}); nothing was run") from None
                markers.append((marker, token))
            if not samples and not markers:
                return
            seen = self.client.run(tasks.sees, list(samples.values()),
                                   [(str(m), t) for m, t in markers], on_error="return")
        finally:
            for marker, _ in markers:
                marker.unlink(missing_ok=True)
        problems = []
        for worker, said in sorted(seen.items(), key=str):
            if isinstance(said, BaseException):
                problems.append(f"worker {worker} could not look ({type(said).__name__}: {said})")
            else:
                problems += [f"worker {worker}: {p}" for p in said]
        if problems:
            raise ClusterError(f"{self.address}: " + "; ".join(problems) + ". Every worker must "
                               "see the frames, masters and output folders at the same paths "
                               "as this machine, on storage they share (NFS, SMB, CephFS...; "
                               "for a library's frames/ and masters/, INDICAL_LIBRARY_ROOT "
                               "must be such a folder); nothing was run")

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    @property
    def n_workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    # --- calibrate ---------------------------------------------------------------------------

    def calibrate(self, masters: Sequence[MasterInfo], options: CalibrateOptions, now: datetime,
                  paths: Sequence[Path]) -> Iterator[LightOutcome]:
        """Calibrate `paths` (absolute), one task per light; outcomes in input order."""
        options = _absolute_out_dir(options)
        folders = {_output_folder(p, options.out_dir) for p in paths}
        self.check_shared(reads=[*paths, *(m.path for m in masters)], writes=folders)
        job = tasks.CalibrateJob(uuid.uuid4().hex, tuple(masters), options, now, self.build)
        shared = self.client.scatter(job, broadcast=True, hash=False)
        keys = [f"indical-calibrate-{job.token}-{n}" for n in range(len(paths))]
        futures = self.client.map(tasks.calibrate_light, [str(p) for p in paths], job=shared,
                                  key=keys, pure=False)
        try:
            yield from self._in_order(futures)
        except BaseException:   # an error, Ctrl-C or a caller that stops: the rest not run
            self.client.cancel([f for f in futures if f is not None])
            raise
        finally:
            _remove_temporaries(folders)

    def _in_order(self, futures: list) -> Iterator:
        """Each future's result in input order, gathered in batches as tasks finish (one
        request per result would cost a round trip each); a result is forgotten once yielded
        (its future's last reference goes, and the scheduler releases it)."""
        index = {f.key: n for n, f in enumerate(futures)}
        ready: dict[int, object] = {}
        following = 0
        done = self._distributed.as_completed(futures, with_results=True, loop=self.client.loop)
        try:
            for future, result in done:
                ready[index.pop(future.key)] = result
                while following in ready:
                    futures[following] = None
                    yield ready.pop(following)
                    following += 1
        except IndicalError:
            raise
        except Exception as exc:  # noqa: BLE001 - Dask's own (KilledWorker, a lost scheduler)
            raise ClusterError(f"{self.address}: the cluster failed ({type(exc).__name__}: "
                               f"{exc}); what came back before is kept") from None

    # --- master ------------------------------------------------------------------------------

    def inspect(self, paths: Sequence[Path], frame_type) -> Iterator:
        """inspect_file on the workers, one task per file: a FrameRecord or the reason the
        file is skipped, in input order."""
        paths = [Path(p).resolve() for p in paths]
        self.check_shared(reads=paths)
        futures = self.client.map(tasks.inspect, [str(p) for p in paths],
                                  frame_type=frame_type, build=self.build, pure=False)
        try:
            yield from self._in_order(futures)
        except BaseException:
            self.client.cancel([f for f in futures if f is not None])
            raise

    def build_masters(self, orders: Sequence[MasterOrder], *, now: datetime,
                      rows_per_task: int | None = None,
                      progress: Callable[[MasterProgress], None] | None = None,
                      ) -> Iterator[tuple[MasterOrder, "tasks.MasterWritten | IndicalError"]]:
        """Build and write `orders`, all at once; yields each order with what was written or
        the error that stopped it, in the orders' order. `rows_per_task`: rows of the frames
        combined per task (default: bands reading about BAND_INPUT_BYTES each; 0: the whole
        master in one task)."""
        client = self.client
        as_completed = self._distributed.as_completed
        given, orders = list(orders), [_absolute(o) for o in orders]  # workers: other cwd
        self.check_shared(reads=[p for o in orders for p in o.spec.paths],
                          writes={o.out.parent for o in orders}
                          | {o.rejection_map.parent for o in orders if o.rejection_map})
        specs = [client.scatter(o.spec, hash=False) for o in orders]
        plans = [client.submit(tasks.survey_master, s, self.build, pure=False) for s in specs]
        sizes = [client.submit(tasks.plan_size, p, pure=False) for p in plans]
        bands: dict[object, tuple[int, int]] = {}   # band future -> (order, rows)
        done_rows = [0] * len(orders)
        results: dict[int, object] = {}
        size_of = {f: n for n, f in enumerate(sizes)}
        write_of: dict[object, int] = {}
        pending = as_completed(sizes, loop=client.loop)
        next_out = 0
        try:
            for future in pending:
                if future in size_of:
                    n = size_of.pop(future)
                    order = orders[n]
                    try:
                        height, width, frames, itemsize = future.result()
                    except Exception as exc:  # noqa: BLE001 - the survey's error, reported
                        results[n] = _as_error(exc)
                    else:
                        if progress is not None:
                            progress(MasterProgress(n, 0, height))
                        rows = _band_rows(height, width, frames, itemsize, rows_per_task)
                        kw = dict(overwrite=order.overwrite, rejection_map=None if
                                  order.rejection_map is None else str(order.rejection_map))
                        if rows >= height:
                            w = client.submit(tasks.write_master_whole, specs[n], plans[n],
                                              str(order.out), now, pure=False, **kw)
                        else:
                            parts = [client.submit(tasks.combine_band, plans[n], r0,
                                                   min(height, r0 + rows), pure=False)
                                     for r0 in range(0, height, rows)]
                            for r0, part in zip(range(0, height, rows), parts):
                                bands[part] = (n, min(height, r0 + rows) - r0)
                            pending.update(parts)
                            w = client.submit(tasks.write_master_from_bands, specs[n], plans[n],
                                              parts, str(order.out), now, pure=False, **kw)
                        write_of[w] = n
                        pending.add(w)
                elif future in bands:
                    n, rows = bands.pop(future)
                    if future.status == "finished" and progress is not None:
                        done_rows[n] += rows
                        progress(MasterProgress(n, done_rows[n], None))
                elif future in write_of:
                    n = write_of.pop(future)
                    try:
                        results[n] = future.result()
                    except Exception as exc:  # noqa: BLE001 - the build's error, reported
                        results[n] = _as_error(exc)
                    specs[n] = plans[n] = None   # the workers may forget its frames' plan
                while next_out < len(orders) and next_out in results:
                    yield given[next_out], results.pop(next_out)
                    next_out += 1
        except BaseException:
            client.cancel([f for f in [*plans, *size_of, *bands, *write_of]
                           if f is not None and not f.done()])
            raise
        finally:
            _remove_temporaries({o.out.parent for o in orders}
                                | {o.rejection_map.parent for o in orders if o.rejection_map})


def _absolute(order: MasterOrder) -> MasterOrder:
    from dataclasses import replace
    spec = replace(order.spec, paths=[Path(p).absolute() for p in order.spec.paths])
    return replace(order, spec=spec, out=order.out.absolute(), rejection_map=(
        None if order.rejection_map is None else order.rejection_map.absolute()))


def _band_rows(height: int, width: int, frames: int, itemsize: int,
               rows_per_task: int | None) -> int:
    if rows_per_task is not None:
        return height if rows_per_task <= 0 else rows_per_task
    per_row = max(1, width * frames * itemsize)
    bands = max(1, -(-height * per_row // BAND_INPUT_BYTES))
    return -(-height // bands)


def _as_error(exc: BaseException) -> IndicalError:
    if isinstance(exc, IndicalError):
        return exc
    return IndicalError(f"{type(exc).__name__}: {exc}")


def _absolute_out_dir(options: CalibrateOptions) -> CalibrateOptions:
    """Workers have their own working folders: a relative -o is made absolute here."""
    import dataclasses
    if options.out_dir is None or Path(options.out_dir).is_absolute():
        return options
    return dataclasses.replace(options, out_dir=Path(options.out_dir).resolve())


def _output_folder(light: Path, out_dir: Path | None) -> Path:
    return Path(out_dir) if out_dir is not None else Path(light).parent / "calibrated"


def _remove_temporaries(folders: Iterable[Path]) -> None:
    """A worker killed while writing leaves its temporary file (the task ran again elsewhere
    and wrote the output whole); once every task has ended, remove those nobody is writing."""
    for folder in sorted(set(folders)):
        remove_stale_temporaries(folder, recursive=False)
