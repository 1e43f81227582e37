"""The C combine kernel (`native.c`): compiled on first use with the system C compiler into the
user's cache folder and loaded with ctypes. It does what the numba kernels do for every
method, bit for bit, without numba's import and cache loading (~0.4 s of a
short `indical master` process). When there is no compiler, or building or loading fails,
`kernel()` returns None (saying why once, at debug level) and the engine uses numba.
`INDICAL_NATIVE=0` forces numba.

    python -m indical.calib.combine.native     # build now (bootstrap.sh install does) and say where
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shlex
import shutil
import struct
import sys
from pathlib import Path

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("native.c")
ABI_VERSION = 2  # ABI_VERSION in native.c
# -ffp-contract=off: no fused multiply-adds, whose single rounding would change the last bits
# against the numba kernels. No -ffast-math for the same reason.
FLAGS = ("-O3", "-ffp-contract=off", "-fno-math-errno", "-fPIC", "-shared", "-std=gnu11")
# This CPU's vector instructions (AVX2/AVX-512 here: sigma clipping ~1.3x faster than the
# baseline x86-64 build). The library is then keyed by the CPU's feature flags, so a home
# folder shared with another machine never runs instructions its CPU lacks; a compiler that
# refuses the flag gets the portable build.
NATIVE_ARCH = ("-march=native",)
METHODS = frozenset(range(7))  # every method: options.METHOD_CODE


class NativeUnavailable(RuntimeError):
    """The C kernel can't be built or loaded here (the message says why)."""


def cache_dir() -> Path:
    try:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    except RuntimeError as exc:  # no HOME and no password entry (some service accounts)
        raise NativeUnavailable(f"no cache folder for the compiled kernel: {exc}") from exc
    return Path(base) / "indical"


def _compiler() -> list[str]:
    cc = os.environ.get("CC")
    command = shlex.split(cc) if cc else []
    if not command:
        found = shutil.which("cc") or shutil.which("gcc")
        if found is None:
            raise NativeUnavailable("no C compiler (cc or gcc) on PATH; install Debian's gcc")
        command = [found]
    resolved = shutil.which(command[0])
    if resolved is None:
        raise NativeUnavailable(f"C compiler {command[0]!r} (from CC) not found")
    return [resolved, *command[1:]]


def _machine() -> str:
    return os.uname().machine


@functools.cache
def _cpu_features() -> str:
    """The first CPU's feature flags as the kernel reports them (x86 'flags', ARM 'Features'),
    or '' where there is no /proc/cpuinfo. Only the start of the file is read (it is long on
    machines with many cores)."""
    try:
        with open("/proc/cpuinfo", "rb") as fh:
            text = fh.read(32768).decode("ascii", "replace")
    except OSError:
        return ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features", "isa"):
            return value.strip()
    return ""


def _library_path(compiler: list[str], arch: tuple[str, ...]) -> Path:
    """Where the library for this source, these flags, this compiler and this machine lives.
    The compiler counts by its real path, size and modification time (an upgrade changes
    them), which costs a stat instead of running it in every process."""
    real = os.path.realpath(compiler[0])
    try:
        st = os.stat(real)
    except OSError as exc:
        raise NativeUnavailable(f"C compiler {real} can't be read: {exc}") from exc
    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(FLAGS + arch), " ".join(compiler),
                 f"{real}:{st.st_size}:{st.st_mtime_ns}", _machine(), sys.platform,
                 _cpu_features() if arch else ""):
        key.update(part if isinstance(part, bytes) else part.encode())
        key.update(b"\0")
    return cache_dir() / f"combine-{_machine()}-{key.hexdigest()[:16]}.so"


def _build(compiler: list[str], arch: tuple[str, ...], target: Path) -> None:
    """Compile into a temporary file beside `target` and rename it into place: two processes
    building at once each rename a whole library, never half of one."""
    import subprocess
    import tempfile

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
            built = Path(tmp) / target.name
            run = subprocess.run([*compiler, *FLAGS, *arch, "-o", str(built), str(SOURCE), "-lm"],
                                 capture_output=True, text=True, timeout=300)
            if run.returncode != 0:
                raise NativeUnavailable(f"{compiler[0]} failed on {SOURCE}: {run.stderr.strip()}")
            os.replace(built, target)
    except (OSError, subprocess.SubprocessError) as exc:
        raise NativeUnavailable(f"could not build {SOURCE.name} into {target.parent}: {exc}") from exc


def _elf_complete(path: Path) -> bool:
    """True when every loadable segment and the section table of the ELF file lie within the
    file. A truncated library must never reach dlopen: mapping it succeeds, and touching a
    page past the end kills the process with SIGBUS."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            size = os.fstat(fh.fileno()).st_size
            if len(head) < 52 or head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
                return False
            wide = head[4] == 2
            e = "<" if head[5] == 1 else ">"
            if wide:
                phoff, shoff = struct.unpack_from(e + "QQ", head, 32)
                phentsize, phnum, shentsize, shnum = struct.unpack_from(e + "HHHH", head, 54)
            else:
                phoff, shoff = struct.unpack_from(e + "II", head, 28)
                phentsize, phnum, shentsize, shnum = struct.unpack_from(e + "HHHH", head, 42)
            if shoff + shentsize * shnum > size or phoff + phentsize * phnum > size:
                return False
            fh.seek(phoff)
            table = fh.read(phentsize * phnum)
    except OSError:
        return False
    for i in range(phnum):
        entry = table[i * phentsize:(i + 1) * phentsize]
        if wide:
            kind, _, offset, _, _, filesz = struct.unpack_from(e + "IIQQQQ", entry)
        else:
            kind, offset, _, _, filesz = struct.unpack_from(e + "IIIII", entry)
        if kind == 1 and offset + filesz > size:  # PT_LOAD
            return False
    return True


_p = ctypes.c_void_p
_i = ctypes.c_int
_i64 = ctypes.c_int64


class NativeKernel:
    """The loaded library's entry points (see native.c for what each argument means)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not _elf_complete(path):
            raise OSError(f"{path} is not a complete shared library")
        lib = ctypes.CDLL(str(path), use_errno=True)
        version = lib.ind_abi_version()
        if version != ABI_VERSION:
            raise OSError(f"{path} has ABI {version}, expected {ABI_VERSION}")
        lib.ind_work_bytes.argtypes = [_i]
        lib.ind_work_bytes.restype = _i64
        lib.ind_read_bytes.argtypes = [_i, _i]
        lib.ind_read_bytes.restype = _i64
        lib.ind_combine_cube.argtypes = [_p, _i, _i, _i, _i, _i, _i, _i, _p, _i, _p, _i, _p, _p,
                                         _i, _p, _p, _p]
        lib.ind_combine_cube.restype = _i
        lib.ind_combine_be16_files.argtypes = [_p, _p, _p, _i, _i, _i, _i, _p, _i, _p, _i, _p,
                                               _p, _i, _p, _p, _p]
        lib.ind_combine_be16_files.restype = _i
        lib.ind_level_be16.argtypes = [_i, _i64, _i, _p, _i, _i, ctypes.c_double]
        lib.ind_level_be16.restype = ctypes.c_double
        self.work_bytes = lib.ind_work_bytes
        self.read_bytes = lib.ind_read_bytes
        self.combine_cube = lib.ind_combine_cube
        self.combine_be16_files = lib.ind_combine_be16_files
        self.level_be16 = lib.ind_level_be16


def _load_or_build(compiler: list[str], arch: tuple[str, ...]) -> NativeKernel:
    target = _library_path(compiler, arch)
    if target.is_file():
        try:
            return NativeKernel(target)
        except (OSError, AttributeError) as exc:  # damaged or foreign file: build it again
            log.debug("cached combine kernel %s unusable (%s); rebuilding", target, exc)
    _build(compiler, arch, target)
    try:
        return NativeKernel(target)
    except (OSError, AttributeError) as exc:
        raise NativeUnavailable(f"built {target} but can't load it: {exc}") from exc


def load() -> NativeKernel:
    """The C kernel, built now if it is not in the cache (for this CPU; portable if the
    compiler refuses that). Raises NativeUnavailable saying why it can't be had."""
    compiler = _compiler()
    refused = _library_path(compiler, NATIVE_ARCH).with_suffix(".refused")
    if not refused.exists():
        try:
            return _load_or_build(compiler, NATIVE_ARCH)
        except NativeUnavailable as exc:
            log.debug("%s; trying a portable build", exc)
            try:  # don't try this CPU's build again in every process
                refused.parent.mkdir(parents=True, exist_ok=True)
                refused.write_text(f"{exc}\n")
            except OSError:
                pass
    return _load_or_build(compiler, ())


@functools.cache
def kernel() -> NativeKernel | None:
    """The C kernel, or None (said once, at debug level) when INDICAL_NATIVE=0 or it can't
    be built or loaded here: the engine then uses the numba kernels."""
    if os.environ.get("INDICAL_NATIVE", "1").strip() == "0":
        log.debug("INDICAL_NATIVE=0: combining with the numba kernels")
        return None
    try:
        return load()
    except NativeUnavailable as exc:
        log.debug("C combine kernel unavailable, combining with numba: %s", exc)
        return None


def main() -> int:
    try:
        path = load().path
    except NativeUnavailable as exc:
        print(f"indical: C combine kernel not built ({exc}); masters will use numba (slower)",
              file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
