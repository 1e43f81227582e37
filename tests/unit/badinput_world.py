"""A small world of files for the bad-input corpus: raw frames, lights, a calibration library,
rig and sequence files, and ways to break each. Also how to run a command (in-process, or in a
subprocess without root's power to ignore permissions, or on a full disk) and how to see that
nothing previously written was changed."""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
from astropy.io import fits

from indical.fits.io import write_frame
from indical.frame import Binning, Frame, FrameMeta, FrameType
from indical.testing.frames import write_synthetic

SHAPE = (24, 32)
_T0 = datetime(2026, 3, 20, 21, 0, tzinfo=timezone.utc)


class World:
    """Files for one case, under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._library: Path | None = None
        self.fsize: int | None = None          # set: run in a subprocess with this file-size limit
        self.cleanups: list[Callable[[], None]] = []

    def full(self, rel: str) -> Path:
        """A folder on a full disk: as root a small tmpfs filled to the last byte; otherwise a
        plain folder, and the command runs with a small file-size limit (RLIMIT_FSIZE)."""
        path = self.folder(rel)
        if os.geteuid() == 0 and shutil.which("mount"):
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(path)],
                                  capture_output=True)
            if done.returncode == 0:
                self.cleanups.append(lambda: subprocess.run(["umount", "-l", str(path)],
                                                            check=False))
                fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT)
                try:
                    while os.write(fd, b"\0" * 4096):
                        pass
                except OSError:
                    pass
                finally:
                    os.close(fd)
                return path
        self.fsize = 8192
        return path

    def p(self, rel: str) -> Path:
        return self.root / rel

    def s(self, rel: str) -> str:
        return str(self.root / rel)

    # -- raw frames ---------------------------------------------------------------------------
    def frames(self, folder: str, kind: FrameType, n: int = 3, *, exposure_s: float = 1.0,
               level: float | None = None, filter: str = "L", start: int = 0,
               **changes) -> Path:
        out = self.p(folder)
        default = {FrameType.BIAS: 500.0, FrameType.DARK: 520.0, FrameType.DARKFLAT: 505.0,
                   FrameType.FLAT: 20000.0, FrameType.LIGHT: 1500.0}[kind]
        if kind is FrameType.BIAS:
            exposure_s = min(exposure_s, 0.001)
        for i in range(start, start + n):
            write_synthetic(out / f"{kind.value}_{exposure_s:g}s_{i}.fits", kind,
                            level_adu=level or default, seed=i, shape=SHAPE,
                            exposure_s=exposure_s, filter=filter, **changes)
        return out

    def one(self, rel: str, kind: FrameType = FrameType.DARK, *, exposure_s: float = 1.0,
            level: float | None = None, seed: int = 0, shape: tuple[int, int] = SHAPE,
            **changes) -> Path:
        default = {FrameType.BIAS: 500.0, FrameType.DARK: 520.0, FrameType.DARKFLAT: 505.0,
                   FrameType.FLAT: 20000.0, FrameType.LIGHT: 1500.0}[kind]
        return write_synthetic(self.p(rel), kind, level_adu=level or default, seed=seed,
                               shape=shape, exposure_s=exposure_s, **changes)

    def light(self, rel: str, *, exposure_s: float = 30.0, filter: str = "L", seed: int = 0,
              **changes) -> Path:
        meta = FrameMeta(frame_type=FrameType.LIGHT, exposure_s=exposure_s, camera="Sim Cam",
                         gain=100.0, offset=10.0, binning=Binning(1, 1), sensor_temp_c=-10.0,
                         setpoint_temp_c=-10.0, filter=filter, start=_T0, bit_depth=16)
        meta = meta.replace(**changes) if changes else meta
        rng = np.random.default_rng(seed)
        data = np.clip(rng.normal(1500, 10, SHAPE), 0, 65535).astype(np.uint16)
        path = self.p(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_frame(Frame(data, meta), path)

    def edit_header(self, path: Path, **cards) -> Path:
        """Set (value) or delete (None) header cards of a file written above."""
        with fits.open(path, mode="update") as hdul:
            for key, value in cards.items():
                key = key.replace("_", "-") if key in ("CCD_TEMP", "SET_TEMP") else key
                if value is None:
                    hdul[0].header.remove(key, ignore_missing=True)
                else:
                    hdul[0].header[key] = value
        return path

    def raw_header_card(self, path: Path, key: str, raw_value: bytes) -> Path:
        """Put bytes that astropy would refuse (non-ASCII) into a card's value, in place."""
        data = bytearray(path.read_bytes())
        key_b = key.encode().ljust(8)
        for pos in range(0, 2880 * 4, 80):
            if bytes(data[pos:pos + 8]) == key_b:
                card = (key_b + b"= " + raw_value).ljust(80)[:80]
                data[pos:pos + 80] = card
                break
        else:
            raise AssertionError(f"no {key} card in {path}")
        path.write_bytes(bytes(data))
        return path

    def text(self, rel: str, content: str | bytes) -> Path:
        path = self.p(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    def folder(self, rel: str) -> Path:
        path = self.p(rel)
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- a calibration library with masters -----------------------------------------------------
    def library(self) -> Path:
        """library/library.sqlite with bias, 30 s darks and L flats indexed and their masters
        built (3 frames each). Built once per session and copied, its paths rewritten."""
        if self._library is not None:
            return self._library
        template = _template_library()
        shutil.copytree(template, self.root, dirs_exist_ok=True)
        db = self.p("library/library.sqlite")
        con = sqlite3.connect(db)
        with con:
            for table in ("frames", "masters"):
                con.execute(f"UPDATE {table} SET path = replace(path, ?, ?)",
                            (str(template), str(self.root)))
        con.close()
        self._library = db
        return db


_TEMPLATE: Path | None = None


def _template_library() -> Path:
    global _TEMPLATE
    if _TEMPLATE is None:
        import atexit
        import tempfile
        from indical.calib.autobuild import AutoBuildPolicy, build_group, due_groups
        from indical.calib.library import CalibrationLibrary
        from indical.calib.status import StatusStore
        root = Path(tempfile.mkdtemp(prefix="indical-badinput-"))
        atexit.register(shutil.rmtree, root, True)
        w = World(root)
        db = w.p("library/library.sqlite")
        w.frames("libraw/bias", FrameType.BIAS)
        w.frames("libraw/dark", FrameType.DARK, exposure_s=30.0)
        w.frames("libraw/flat", FrameType.FLAT, exposure_s=1.0)
        policy = AutoBuildPolicy(min_frames_for_master=3)
        with CalibrationLibrary(db) as lib, StatusStore(db):
            lib.ingest([w.p("libraw")])
            for group in due_groups(lib, policy):
                build_group(lib, group, policy)
        _TEMPLATE = root.resolve()
    return _TEMPLATE


# -- running a command --------------------------------------------------------------------------
@dataclass
class Outcome:
    code: int
    output: str


def run_in_process(argv: list[str], env: dict[str, str] | None = None) -> Outcome:
    from click.testing import CliRunner
    from indical.cli import main
    result = CliRunner().invoke(main, argv, env=env, catch_exceptions=True)
    out = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback
        out += "".join(traceback.format_exception(result.exception))
    return Outcome(result.exit_code, out)


_RUN = "import sys; from indical.cli import main; sys.argv[0] = 'indical'; main()"


def _no_dac_override() -> list[str]:
    """As root, drop the capabilities that let root ignore file permissions (setpriv, from
    util-linux), so a read-only or unreadable folder is one for the command too."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to test permissions as root"
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


def run_subprocess(argv: list[str], *, unprivileged: bool = False, fsize: int | None = None,
                   env: dict[str, str] | None = None, timeout: float = 60) -> Outcome:
    def limits() -> None:
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    prefix = _no_dac_override() if unprivileged else []
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    proc = subprocess.run([*prefix, sys.executable, "-c", _RUN, *argv], capture_output=True,
                          text=True, env=full_env, timeout=timeout,
                          preexec_fn=limits if fsize is not None else None)
    return Outcome(proc.returncode, proc.stdout + proc.stderr)


# -- nothing changed ----------------------------------------------------------------------------
def _sqlite_dump(path: Path) -> bytes:
    """A database's rows (pages move about without changing them); other bytes as they are."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return "\n".join(con.iterdump()).encode()
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return path.read_bytes()


def snapshot(root: Path) -> dict[str, str]:
    """Every file under root by content (SQLite databases by their rows)."""
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name.endswith(("-wal", "-shm", "-journal")):
            continue
        rel = str(p.relative_to(root))
        if p.suffix == ".sqlite":
            out[rel] = hashlib.sha256(_sqlite_dump(p)).hexdigest()
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def temporary_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and p.name.startswith(".") and p.name.endswith(".tmp"))


@dataclass(frozen=True)
class Case:
    """One bad input: `setup` builds it in a World and returns the command's arguments; the
    command must exit with `code`, its output match `message` (whitespace runs count as one
    space), and leave no file other than those matching `may_write` (globs under the world)."""

    name: str
    setup: Callable[[World], list[str]]
    code: int
    message: str
    may_write: tuple[str, ...] = ()
    via: str = "in-process"          # or "unprivileged" (subprocess), "subprocess"
    env: dict[str, str] = field(default_factory=dict)
    may_change: tuple[str, ...] = ()  # files the command may add to (a library indexing lights)
