"""A real Dask cluster for tests: `dask scheduler` and `dask worker` processes on 127.0.0.1,
free ports, no dashboard, each in its own folder; stopped (the whole process group) at the
end. Also small frames to calibrate and combine, and comparing outputs whose only difference
may be the card that records when they were written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from indical.fits.io import write_frame
from indical.frame import Frame, FrameType
from indical.simulators.indi.server import free_port
from indical.testing.frames import synthetic_data, synthetic_meta, write_synthetic

DASK = str(Path(sys.executable).with_name("dask"))


def _start(args: list[str], folder: Path, log_name: str, *, env: dict | None = None,
           wrap: tuple[str, ...] = ()) -> tuple[subprocess.Popen, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / log_name
    with open(log, "wb") as out:
        proc = subprocess.Popen([*wrap, DASK, *args], cwd=folder, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, **(env or {})})
    return proc, log


def _wait_for(log: Path, text: str, proc: subprocess.Popen, timeout_s: float = 60.0,
              count: int = 1) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.read_text(errors="replace").count(text) >= count:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{log}: exited with {proc.returncode}:\n{log.read_text()}")
        time.sleep(0.1)
    raise RuntimeError(f"{log}: no {text!r} after {timeout_s:g} s:\n{log.read_text()}")


@dataclass
class DaskCluster:
    folder: Path
    address: str = ""
    scheduler: subprocess.Popen | None = None
    scheduler_log: Path | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)
    worker_logs: list[Path] = field(default_factory=list)

    def start(self, n_workers: int = 2, *, env: dict | None = None,
              wrap: tuple[str, ...] = ()) -> "DaskCluster":
        """The scheduler and `n_workers` workers; `env` added to the workers' environment and
        `wrap` put before their command (another machine's view: see `hiding`)."""
        port = free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        self.scheduler, self.scheduler_log = _start(
            ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            self.folder / "scheduler", "scheduler.log")
        _wait_for(self.scheduler_log, "Scheduler at:", self.scheduler)
        for n in range(n_workers):
            self.add_worker(n, env=env, wrap=wrap)
        _wait_for(self.scheduler_log, "Register worker", self.scheduler, count=n_workers)
        return self

    def add_worker(self, n: int, *, env: dict | None = None, wrap: tuple[str, ...] = ()) -> None:
        folder = self.folder / f"worker{n}"
        proc, log = _start(["worker", self.address, "--host", "127.0.0.1", "--nworkers", "1",
                            "--nthreads", "1", "--no-dashboard", "--local-directory",
                            str(folder)], folder, "worker.log", env=env, wrap=wrap)
        self.workers.append(proc)
        self.worker_logs.append(log)
        _wait_for(log, "Registered to:", proc)

    def worker_address(self, n: int) -> str:
        """Worker n's address, as its log says it."""
        for line in self.worker_logs[n].read_text(errors="replace").splitlines():
            if "Start worker at:" in line:
                return line.split("Start worker at:")[1].strip()
        raise RuntimeError(f"{self.worker_logs[n]}: no 'Start worker at:' line")

    def worker_process(self, n: int) -> psutil.Process:
        """The process that runs worker n's tasks (the nanny's child, not the nanny)."""
        nanny = psutil.Process(self.workers[n].pid)
        for child in nanny.children():
            if "multiprocessing.spawn" in " ".join(child.cmdline()):
                return child
        raise RuntimeError(f"worker {n}: no worker process under the nanny {nanny.pid}")

    def stop(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc is None or proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for proc in [*self.workers, self.scheduler]:
            if proc is None:
                continue
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def hiding(folder: Path) -> tuple[str, ...]:
    """A command prefix that runs a command in a mount namespace of its own where an empty
    tmpfs covers `folder` (which must exist): the command sees another folder at that path, as
    a worker on another machine sees its own disk where the client's files are not. unshare(1)
    from util-linux; as root, or in a user namespace as a mapped root otherwise."""
    user = () if os.geteuid() == 0 else ("--user", "--map-root-user")
    return ("unshare", *user, "--mount", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs indical-test "$0" && shift && exec "$@"', str(folder), "--")


def other_indical(folder: Path, *, version: str | None = None, edit: bool = False) -> Path:
    """A copy of this indical, with its compiled kernel, in `folder` (a PYTHONPATH that a
    worker imports indical from before the installed one): another version, or the same
    version with one line of its code changed, as a machine left behind may have it."""
    import shutil

    import indical
    dst = folder / "indical"
    shutil.copytree(Path(indical.__file__).parent, dst,
                    ignore=shutil.ignore_patterns("__pycache__"))
    if version is not None:
        init = dst / "__init__.py"
        text = init.read_text()
        assert f'__version__ = "{indical.__version__}"' in text
        init.write_text(text.replace(f'__version__ = "{indical.__version__}"',
                                     f'__version__ = "{version}"'))
    if edit:
        apply = dst / "calib" / "apply.py"
        apply.write_text(apply.read_text() + "\n# an older build's line\n")
    return folder


def write_frames(root: Path, *, lights: int, shape: tuple[int, int], raw: int = 5) -> None:
    """root/raw: bias, 30 s darks and L flats (`raw` of each); root/lights: 30 s L lights."""
    for i in range(raw):
        write_synthetic(root / "raw" / f"bias_{i}.fits", FrameType.BIAS, level_adu=500, seed=i,
                        exposure_s=0.0, shape=shape)
        write_synthetic(root / "raw" / f"dark_{i}.fits", FrameType.DARK, level_adu=520,
                        seed=10 + i, exposure_s=30.0, shape=shape)
        write_synthetic(root / "raw" / f"flat_{i}.fits", FrameType.FLAT, level_adu=20000,
                        seed=20 + i, shape=shape, vignetting=True)
    for i in range(lights):
        meta = synthetic_meta(FrameType.LIGHT, exposure_s=30.0, index=i).replace(filter="L")
        write_frame(Frame(synthetic_data(3000, shape=shape, seed=100 + i, noise_adu=50), meta),
                    root / "lights" / f"light_{i:03d}.fits")


def bytes_without(path: Path, keyword: str) -> bytes:
    """The file's bytes with the one primary-header card `keyword` (a time stamp) blanked;
    fails if the card is not there exactly once."""
    data = bytearray(Path(path).read_bytes())
    key = f"{keyword:<8}=".encode()
    found = []
    for start in range(0, len(data), 80):
        card = bytes(data[start:start + 80])
        if card.startswith(key):
            found.append(start)
        if card.startswith(b"END     ") or card == b"END" + b" " * 77:
            break
    assert len(found) == 1, f"{path}: {keyword} appears {len(found)} times in the header"
    data[found[0]:found[0] + 80] = b" " * 80
    return bytes(data)


def temporaries(folder: Path) -> list[Path]:
    from indical.atomic import is_temporary_name
    return [p for p in Path(folder).rglob("*") if is_temporary_name(p.name)]
