"""`indical calibrate` locally and on Dask distributed (`--scheduler`), on this machine.

Writes N uint16 lights (BZERO 32768) of 6248 x 4176 (a 26-megapixel sensor) and a master dark
and flat into a temporary library, starts two real clusters on 127.0.0.1 (`dask scheduler`
with one `dask worker`, and another with two; one thread each, no nanny restarts needed), and
times, in the same run:
  - local, 1 thread and 2 threads (calibrate_paths, as `indical calibrate --workers N`);
  - Dask with 1 worker and with 2 workers (calibrate_paths with a Cluster, as
    `indical calibrate --scheduler ADDRESS`): a task per light, the library written here.
Library indexing, matching, status and HISTORY are in every figure; each method first
calibrates two lights untimed (the workers import indical and read the masters once). Methods take turns on
chunks of lights, outputs deleted after each turn (200 lights write 20 GB). Dask's overhead per
light: (Dask 1 worker - local 1 thread) / N, and the same for 2 against 2. Also measured: the
bytes a light's task and result take pickled (what crosses the network besides the files), and
the scheduler's round trip for an empty task, and what the checks before a run cost (the
workers' build, and whether they see the run's folders; decision 024, 2026-12-03) against a
`client.run` of a function that does nothing, in the same run.
Run: .venv/bin/python benchmarks/bench_dask.py [--count 200] [--width 6248 --height 4176]
     .venv/bin/python benchmarks/bench_dask.py --checks-only   (the checks alone, a minute)"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_calibrate import make_library, make_lights, settle  # noqa: E402

from indical.calib.calibrate import CalibrateOptions, calibrate_paths  # noqa: E402
from indical.calib.cluster import Cluster  # noqa: E402
from indical.calib.status import Status, StatusStore  # noqa: E402
from indical.simulators.indi.server import free_port  # noqa: E402

DASK = str(Path(sys.executable).with_name("dask"))


def start_cluster(folder: Path, workers: int) -> tuple[str, list[subprocess.Popen]]:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    folder.mkdir(parents=True)
    log = open(folder / "log", "wb")
    procs = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stdout=log, stderr=log,
                              start_new_session=True)]
    time.sleep(2)
    for n in range(workers):
        procs.append(subprocess.Popen(
            [DASK, "worker", address, "--host", "127.0.0.1", "--nworkers", "1", "--nthreads",
             "1", "--no-dashboard", "--local-directory", str(folder / f"w{n}")],
            stdout=log, stderr=log, start_new_session=True))
    with Cluster(address) as c:   # waits for the first worker
        deadline = time.monotonic() + 60
        while c.n_workers < workers and time.monotonic() < deadline:
            time.sleep(0.2)
    return address, procs


def stop(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def calibrate(lib, paths, out: Path, *, workers: int = 2, cluster=None) -> float:
    with StatusStore(lib.db_path) as store:
        settle()
        t0 = time.perf_counter()
        summary = calibrate_paths(lib, store, paths, CalibrateOptions(
            out_dir=out, workers=workers, force=True), cluster=cluster)
        elapsed = time.perf_counter() - t0
    bad = [o for o in summary.outcomes if o.status is not Status.CALIBRATED]
    if bad or len(summary.outcomes) != len(paths):
        raise SystemExit(f"calibration failed: {bad[0].path}: {bad[0].message}" if bad
                         else "calibration skipped lights")
    return elapsed


def round_trip(cluster: Cluster, n: int = 2000) -> float:
    """Seconds per empty task, submitted all at once and gathered (the scheduler's rate)."""
    t0 = time.perf_counter()
    futures = cluster.client.map(len, [[i] for i in range(n)], pure=False)
    cluster.client.gather(futures)
    return (time.perf_counter() - t0) / n


def _median_s(call, n: int = 7) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return sorted(times)[n // 2]


def checks(cluster: Cluster, work: Path, lights: list[Path]) -> None:
    """The checks a run makes before its first task, against a client.run that does nothing."""
    from indical.calib import cluster_tasks as tasks
    tasks.this_build.cache_clear()
    t0 = time.perf_counter()
    tasks.code_sha(Path(tasks.__file__).resolve().parent.parent)   # done at import
    tasks.this_build()
    print(f"this build's hash (code and kernel), once per process: "
          f"{1e3 * (time.perf_counter() - t0):.1f} ms")
    base = _median_s(lambda: cluster.client.run(int))
    rows = [("client.run of nothing (baseline)", base),
            ("build check on every worker", _median_s(lambda: cluster.client.run(
                tasks.worker_build)))]
    for folders in (1, 10, 100):
        outs = [work / "checks" / str(i) for i in range(folders)]
        rows.append((f"shared paths: 1 input folder, {folders} output folder(s)",
                     _median_s(lambda: cluster.check_shared(reads=lights, writes=outs))))
    for name, s in rows:
        print(f"  {name:<52}{1e3 * s:8.1f} ms{s / base:8.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--width", type=int, default=6248)
    ap.add_argument("--height", type=int, default=4176)
    ap.add_argument("--chunk", type=int, default=20, help="lights per turn of each method")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--checks-only", action="store_true",
                    help="only the checks before a run, on 2 workers and 20 small lights")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-dask-", dir=args.workdir))
    procs: list[subprocess.Popen] = []
    if args.checks_only:
        try:
            lights = make_lights(work / "lights", 20, 64, 48)
            address, procs = start_cluster(work / "dask", 2)
            with Cluster(address) as two:
                checks(two, work, lights)
        finally:
            stop(procs)
            shutil.rmtree(work, ignore_errors=True)
        return
    try:
        lights = make_lights(work / "lights", args.count, args.width, args.height)
        lib = make_library(work / "lib", args.width, args.height)
        mb = args.width * args.height * 2 / 1e6
        print(f"{args.count} lights of {args.width}x{args.height} uint16 ({mb:.0f} MB each)")
        address1, p1 = start_cluster(work / "dask1", 1)
        procs += p1
        address2, p2 = start_cluster(work / "dask2", 2)
        procs += p2
        with Cluster(address1) as one, Cluster(address2) as two:
            methods = {
                "local, 1 thread": lambda ch, o: calibrate(lib, ch, o, workers=1),
                "Dask, 1 worker": lambda ch, o: calibrate(lib, ch, o, cluster=one),
                "local, 2 threads": lambda ch, o: calibrate(lib, ch, o, workers=2),
                "Dask, 2 workers": lambda ch, o: calibrate(lib, ch, o, cluster=two),
            }
            for name, method in methods.items():   # workers import and load masters once
                method(lights[:2], work / "out")
                shutil.rmtree(work / "out")
            wall = dict.fromkeys(methods, 0.0)
            names = list(methods)
            for turn, start in enumerate(range(0, args.count, args.chunk)):
                chunk = lights[start:start + args.chunk]
                k = turn % len(names)
                for name in names[k:] + names[:k]:
                    out = work / "out"
                    wall[name] += methods[name](chunk, out)
                    shutil.rmtree(out)
                print(f"  {start + len(chunk)} lights done", flush=True)
            trip = round_trip(two)
            sizes = _pickled_sizes(lib, lights[0], work / "out")
            checks(two, work, lights)
        lib.close()
        print(f"{'':<20}{'wall s':>8}{'lights/s':>10}{'vs local':>10}{'overhead ms/light':>19}")
        for name in names:
            s = wall[name]
            ref = wall["local, 1 thread" if "1" in name else "local, 2 threads"]
            print(f"{name:<20}{s:8.1f}{args.count / s:10.2f}{ref / s:10.2f}"
                  f"{1000 * (s - ref) / args.count:19.0f}")
        print(f"empty task round trip on the 2-worker cluster: {1e3 * trip:.2f} ms "
              f"({1 / trip:.0f} tasks/s)")
        print("pickled per light: " + ", ".join(f"{k} {v} B" for k, v in sizes.items()))
        print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    finally:
        stop(procs)
        shutil.rmtree(work, ignore_errors=True)


def _pickled_sizes(lib, light: Path, out: Path) -> dict[str, int]:
    """What a task and its result weigh on the wire (the files themselves stay on storage)."""
    from datetime import datetime, timezone

    from indical.calib import cluster_tasks as tasks
    from indical.calib.catalogue import MasterCatalogue
    catalogue = MasterCatalogue.from_library(lib)
    job = tasks.CalibrateJob("x", tuple(catalogue.infos), CalibrateOptions(out_dir=out),
                             datetime.now(timezone.utc), tasks.this_build())
    outcome = tasks.calibrate_light(str(light), job)
    shutil.rmtree(out)
    return {"job (once per worker)": len(pickle.dumps(job)),
            "task argument": len(pickle.dumps(str(light))),
            "result": len(pickle.dumps(outcome))}


if __name__ == "__main__":
    main()
