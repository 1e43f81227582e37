"""`--scheduler` on a real Dask cluster (a `dask scheduler` and two `dask worker` processes on
127.0.0.1): calibrate, master and library sweep give the files a local run gives, and a worker
killed (SIGKILL) in the middle of a run changes nothing in them.

Compared byte for byte, except for the one header card that records when the file was made
(CALIBRAT for calibrated lights, DATE for masters): two runs are seconds apart, and that card
says so. Everything else, pixels, every other card and the layout, must be the same bytes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from dask_helpers import (DaskCluster, bytes_without, hiding, other_indical, temporaries,
                          write_frames)

INDICAL = [str(Path(sys.executable).with_name("indical"))]


def indical(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run([*INDICAL, *args], capture_output=True, text=True, timeout=240,
                         stdin=subprocess.DEVNULL)
    if check:
        assert run.returncode == 0, f"indical {' '.join(args)}:\n{run.stdout}\n{run.stderr}"
    return run


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = DaskCluster(tmp_path_factory.mktemp("dask"))
    try:
        yield c.start(n_workers=2)
    finally:
        c.stop()


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Raw frames, 12 lights, and a library with masters built from the raw frames."""
    root = tmp_path_factory.mktemp("frames")
    write_frames(root, lights=12, shape=(120, 160))
    db = root / "lib" / "library.sqlite"
    indical("library", "--library", str(db), "ingest", str(root / "raw"), "--min-frames", "5")
    return root, db


def _same_files(local: Path, remote: Path, stamp: str, *, expected: int) -> None:
    names = sorted(p.name for p in local.iterdir())
    assert len(names) == expected, names
    assert sorted(p.name for p in remote.iterdir()) == names
    for name in names:
        if name.startswith("rej"):   # rejection maps carry no time stamp: all bytes
            assert (local / name).read_bytes() == (remote / name).read_bytes(), name
        else:
            assert bytes_without(local / name, stamp) == bytes_without(remote / name, stamp), name


def test_calibrate_on_dask_gives_the_local_files(cluster, frames, tmp_path):
    root, db = frames
    local = indical("calibrate", str(root / "lights"), "-o", str(tmp_path / "local"),
                    "--library", str(db))
    remote = indical("calibrate", str(root / "lights"), "-o", str(tmp_path / "dask"),
                     "--library", str(db), "--scheduler", cluster.address)
    _same_files(tmp_path / "local", tmp_path / "dask", "CALIBRAT", expected=12)
    # the same lines, light by light in the same order, and the same summary
    assert local.stdout.replace(str(tmp_path / "local"), "OUT") == \
        remote.stdout.replace(str(tmp_path / "dask"), "OUT")
    assert "12 calibrated, 0 without masters, 0 failed" in remote.stdout
    # the client recorded the outcomes: the lights are now calibrated into the dask folder
    again = indical("calibrate", str(root / "lights"), "-o", str(tmp_path / "dask"),
                    "--library", str(db), "--scheduler", cluster.address)
    assert "12 already calibrated" in again.stdout


def test_master_on_dask_gives_the_local_files(cluster, frames, tmp_path):
    root, _ = frames
    for name, extra in (("local", []), ("dask", ["--scheduler", cluster.address,
                                                 "--rows-per-task", "25"])):
        out = tmp_path / name
        out.mkdir()
        # grouped: bias, darks and flats, each in bands of 25 rows on the cluster
        indical("master", str(root / "raw"), "--group", "size,filter,exposure",
                "--out-dir", str(out), *extra)
        # one master with a rejection map and a pedestal subtracted
        flats = sorted(str(p) for p in (root / "raw").glob("flat_*.fits"))
        indical("master", *flats, "-o", str(out / "one_flat.fits"), "--precal",
                "pedestal:400", "--rejection-map", str(out / "rej_one_flat.fits"), *extra)
    _same_files(tmp_path / "local", tmp_path / "dask", "DATE", expected=5)


def test_given_masters_on_dask_give_the_local_files(cluster, frames, tmp_path):
    """calibrate --bias/--dark/--flat: one task per light on the cluster, as with the library's
    masters; the files and lines of the local run (masters named by absolute path in both)."""
    root, db = frames
    given = []
    for kind in ("bias", "dark", "flat"):
        [master] = (db.parent / "masters").glob(f"*{kind}*.fits")
        given += [f"--{kind}", str(master)]
    runs = {}
    for name, extra in (("local", []), ("dask", ["--scheduler", cluster.address])):
        runs[name] = indical("calibrate", str(root / "lights"), "-o", str(tmp_path / name),
                             *given, *extra)
    _same_files(tmp_path / "local", tmp_path / "dask", "CALIBRAT", expected=12)
    assert runs["local"].stdout.replace(str(tmp_path / "local"), "OUT") == \
        runs["dask"].stdout.replace(str(tmp_path / "dask"), "OUT")
    assert "12 calibrated, 0 without masters, 0 failed" in runs["dask"].stdout
    assert runs["dask"].stdout.count("using ") == 3


def test_sweep_on_dask_gives_the_local_masters(cluster, frames, tmp_path):
    root, _ = frames
    masters = {}
    for name, extra in (("local", []), ("dask", ["--scheduler", cluster.address])):
        db = tmp_path / name / "library.sqlite"
        indical("library", "--library", str(db), "ingest", str(root / "raw"), "--no-build")
        run = indical("library", "--library", str(db), "sweep", "--min-frames", "5", *extra)
        assert run.stdout.count("built ") == 3, run.stdout
        # master file names carry the time they were built: compare them by group
        masters[name] = {p.name.rsplit("_", 1)[0]: p for p in (db.parent / "masters").iterdir()}
    _same_masters(masters)


def test_ingest_with_build_on_dask_gives_the_local_library(cluster, frames, tmp_path):
    """library ingest --scheduler: the workers read and hash the files and build the due
    masters; the client indexes the same frames and masters as a local ingest."""
    root, _ = frames
    masters, frames_indexed = {}, {}
    for name, extra in (("local", []), ("dask", ["--scheduler", cluster.address])):
        db = tmp_path / name / "library.sqlite"
        run = indical("library", "--library", str(db), "ingest", str(root / "raw"),
                      "--min-frames", "5", *extra)
        assert "15 frames added, 0 already known, 0 skipped" in run.stdout, run.stdout
        assert run.stdout.count("built ") == 3, run.stdout
        masters[name] = {p.name.rsplit("_", 1)[0]: p for p in (db.parent / "masters").iterdir()}
        from indical.calib.library import CalibrationLibrary
        with CalibrationLibrary(db) as lib:
            frames_indexed[name] = sorted((r.path, r.sha256) for r in lib.frames())
    assert frames_indexed["local"] == frames_indexed["dask"] and len(frames_indexed["dask"]) == 15
    _same_masters(masters)


def _same_masters(masters: dict[str, dict[str, Path]]) -> None:
    assert sorted(masters["local"]) == sorted(masters["dask"]) and len(masters["local"]) == 3
    for group, path in masters["local"].items():
        assert bytes_without(path, "DATE") != b""
        local_bytes = bytes_without(path, "DATE")
        remote_bytes = bytes_without(masters["dask"][group], "DATE")
        # the flat's PRECAL and HISTORY name the bias master, whose file name has its own time
        if "flat" not in group:
            assert local_bytes == remote_bytes, group
        else:
            assert len(local_bytes) == len(remote_bytes)
            _same_flat_pixels(path, masters["dask"][group])


def _same_flat_pixels(a: Path, b: Path) -> None:
    from astropy.io import fits
    with fits.open(a) as ha, fits.open(b) as hb:
        assert ha[0].data.tobytes() == hb[0].data.tobytes()
        skip = {"DATE", "PRECAL", "HISTORY", "CONTINUE"}
        cards = [[tuple(c) for c in h[0].header.cards if c.keyword not in skip] for h in (ha, hb)]
        assert cards[0] == cards[1] and len(cards[0]) > 20


def test_worker_killed_mid_run_changes_nothing(cluster, tmp_path):
    """SIGKILL to one worker's process while it reads a light (inside a task), once a few lights
    are done: Dask runs its tasks on the other worker; every output is complete and the same as the local run's, and no
    temporary file is left behind."""
    root = tmp_path / "frames"
    write_frames(root, lights=30, shape=(700, 1000), raw=3)
    db = root / "lib" / "library.sqlite"
    indical("library", "--library", str(db), "ingest", str(root / "raw"), "--min-frames", "3")
    indical("calibrate", str(root / "lights"), "-o", str(tmp_path / "local"), "--library", str(db))
    victim = cluster.worker_process(0)
    out = tmp_path / "dask"
    proc = subprocess.Popen([*INDICAL, "calibrate", str(root / "lights"), "-o", str(out),
                             "--library", str(db), "--scheduler", cluster.address],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out.is_dir() and len(list(out.glob("*_cal.fits"))) >= 3):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no outputs after 120 s"
            time.sleep(0.02)
        _kill_when_reading(victim, root / "lights", proc)   # inside a light's task
        written_before = len(list(out.glob("*_cal.fits")))
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
        if not proc.stdout.closed:   # a run that failed early: its pipes closed all the same
            proc.communicate()
    assert proc.returncode == 0, stdout + stderr
    assert written_before < 30   # it really was mid-run
    assert "30 calibrated, 0 without masters, 0 failed" in stdout
    assert not victim.is_running()
    assert "Remove worker" in cluster.scheduler_log.read_text()
    _same_files(tmp_path / "local", out, "CALIBRAT", expected=30)
    assert temporaries(out) == []


def test_unreachable_scheduler_is_named(frames, tmp_path):
    """INDICAL_SCHEDULER pointing at a port where nothing listens: an error naming it, and
    nothing calibrated."""
    from indical.simulators.indi.server import free_port
    root, db = frames
    address = f"tcp://127.0.0.1:{free_port()}"
    run = subprocess.run([*INDICAL, "calibrate", str(root / "lights"), "-o", str(tmp_path / "out"),
                          "--library", str(db)], capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL, env={**os.environ, "INDICAL_SCHEDULER": address})
    assert run.returncode != 0
    assert address in run.stderr and "can't reach the Dask scheduler" in run.stderr, run.stderr
    assert not list(tmp_path.glob("out/*"))


def _kill_when_reading(victim, folder: Path, proc: subprocess.Popen, timeout_s: float = 120):
    """SIGKILL `victim` as soon as it has a file of `folder` open (it is inside a task)."""
    import psutil
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before the worker read anything"
        try:
            if any(Path(f.path).parent == folder for f in victim.open_files()):
                os.kill(victim.pid, signal.SIGKILL)
                return
        except psutil.NoSuchProcess:
            raise AssertionError("the worker ended by itself") from None
        time.sleep(0.005)
    raise AssertionError(f"the worker opened nothing in {folder} in {timeout_s:g} s")


def test_worker_killed_while_building_masters_changes_nothing(cluster, tmp_path):
    """SIGKILL to a worker while it reads frames for a master (a survey or a band): the masters
    are the local run's, whole, and no temporary file is left."""
    root = tmp_path / "frames"
    write_frames(root, lights=0, shape=(600, 800), raw=7)
    for name in ("local", "dask"):
        (tmp_path / name).mkdir()
    indical("master", str(root / "raw"), "--group", "size,filter,exposure", "--out-dir",
            str(tmp_path / "local"))
    victim = cluster.worker_process(1)
    proc = subprocess.Popen([*INDICAL, "master", str(root / "raw"), "--group",
                             "size,filter,exposure", "--out-dir", str(tmp_path / "dask"),
                             "--scheduler", cluster.address, "--rows-per-task", "40"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        _kill_when_reading(victim, root / "raw", proc)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
        if not proc.stdout.closed:   # a run that failed early: its pipes closed all the same
            proc.communicate()
    assert proc.returncode == 0, stdout + stderr
    assert stdout.count("wrote ") == 3
    assert not victim.is_running()
    _same_files(tmp_path / "local", tmp_path / "dask", "DATE", expected=3)
    assert temporaries(tmp_path / "dask") == []


@pytest.mark.parametrize("other", ["version", "code"])
def test_workers_of_another_build_are_refused(frames, tmp_path, other):
    """A worker that imports another indical (a copy of this one with another version, or the
    same version with a line of code changed): calibrate refuses before any task, naming the
    worker and both builds, and writes nothing."""
    root, db = frames
    env = other_indical(tmp_path / "env", version="0.0.9" if other == "version" else None,
                        edit=other == "code")
    stale = DaskCluster(tmp_path / "dask")
    try:
        stale.start(n_workers=1, env={"PYTHONPATH": str(env)})
        run = indical("calibrate", str(root / "lights"), "-o", str(tmp_path / "out"),
                      "--library", str(db), "--scheduler", stale.address, check=False)
        worker = stale.worker_address(0)
    finally:
        stale.stop()
    from indical.calib.cluster_tasks import this_build
    mine = this_build()
    assert run.returncode != 0
    message = " ".join(run.stderr.split())
    assert f"worker {worker} runs indical" in message, run.stderr
    assert f"this client runs {mine}" in message, run.stderr
    if other == "version":
        assert "runs indical 0.0.9 (code" in message
    else:   # the same version: the code's hash tells them apart
        assert f"runs indical {mine.version} (code " in message
        assert f"code {mine.code}," not in message.split("this client")[0]
    assert f"kernel {mine.kernel})" in message.split("this client")[0]   # same kernel sources
    assert not list(tmp_path.glob("out/*.fits"))


def test_folders_the_workers_do_not_see_are_refused(postgres, tmp_path):
    """A worker that sees another folder where the client keeps the raw frames and
    INDICAL_LIBRARY_ROOT (its own disk, not shared storage; here an empty tmpfs over the
    folder in the worker's mount namespace): sweep and master refuse before any task, naming
    the folders and the worker, and build nothing."""
    here_only = tmp_path / "here_only"
    write_frames(here_only, lights=0, shape=(60, 80))
    url = postgres.new_database()
    env = {**os.environ, "INDICAL_LIBRARY": url,
           "INDICAL_LIBRARY_ROOT": str(here_only / "library")}
    ingest = subprocess.run([*INDICAL, "library", "ingest", str(here_only / "raw"), "--no-build"],
                            capture_output=True, text=True, timeout=120, env=env,
                            stdin=subprocess.DEVNULL)
    assert ingest.returncode == 0, ingest.stderr
    blind = DaskCluster(tmp_path / "dask")
    try:
        blind.start(n_workers=1, wrap=hiding(here_only))
        worker = blind.worker_address(0)
        sweep = subprocess.run([*INDICAL, "library", "sweep", "--min-frames", "5",
                                "--scheduler", blind.address], capture_output=True, text=True,
                               timeout=120, env=env, stdin=subprocess.DEVNULL)
        master = indical("master", str(here_only / "raw"), "--group", "size,filter,exposure",
                         "--out-dir", str(tmp_path / "masters"), "--scheduler", blind.address,
                         check=False)
    finally:
        blind.stop()
    said = " ".join(sweep.stderr.split())
    assert sweep.returncode != 0, sweep.stdout
    assert f"worker {worker}: {here_only / 'library' / 'masters'}: no such folder there" in said
    assert f"worker {worker}: {here_only / 'raw'}: can't see " in said
    assert "INDICAL_LIBRARY_ROOT" in said and "nothing was run" in said
    assert [p.name for p in (here_only / "library" / "masters").iterdir()] == []
    said = " ".join(master.stderr.split())
    assert master.returncode != 0 and f"{here_only / 'raw'}: can't see " in said, master.stderr
    assert not list((tmp_path / "masters").glob("*"))


def test_a_worker_of_another_build_that_joins_later_refuses_its_tasks(frames, tmp_path):
    """The client checked its one worker on connecting; that worker leaves and one of another
    build (same version, a line of code changed) joins: each task it is given refuses, naming
    it and both builds, and no light is written."""
    from indical.calib.calibrate import CalibrateOptions
    from indical.calib.catalogue import MasterCatalogue
    from indical.calib.cluster import Cluster
    from indical.calib.cluster_tasks import TaskError, this_build
    from indical.calib.library import CalibrationLibrary
    root, db = frames
    env = other_indical(tmp_path / "env", edit=True)
    dask = DaskCluster(tmp_path / "dask")
    try:
        dask.start(n_workers=1)
        with Cluster(dask.address) as cluster, CalibrationLibrary(db) as lib:
            first = dask.worker_address(0)
            os.killpg(dask.workers[0].pid, signal.SIGTERM)
            dask.workers[0].wait(timeout=30)
            dask.add_worker(1, env={"PYTHONPATH": str(env)})
            late = dask.worker_address(1)
            deadline = time.monotonic() + 30
            while set(cluster.client.scheduler_info()["workers"]) != {late}:
                assert time.monotonic() < deadline, cluster.client.scheduler_info()["workers"]
                time.sleep(0.1)
            lights = sorted((root / "lights").glob("*.fits"))
            with pytest.raises(TaskError) as refused:   # the run stops (the command says so)
                list(cluster.calibrate(MasterCatalogue.from_library(lib).infos,
                                       CalibrateOptions(out_dir=tmp_path / "out"),
                                       datetime.now(timezone.utc), lights))
    finally:
        dask.stop()
    said = str(refused.value)
    assert late != first and f"worker {late} runs indical" in said, said
    assert f"the client {this_build()}" in said
    assert not list(tmp_path.glob("out/*.fits"))
