"""Keep a private indiserver on loopback. indiserver 1.9.9 always listens on every interface;
the small C library `loopback_bind.c`, loaded with LD_PRELOAD, turns its wildcard bind into a
bind to 127.0.0.1. It is compiled once per source version into the user's cache folder."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

SOURCE = Path(__file__).with_name("loopback_bind.c")


def cache_dir() -> Path:
    from indical.user_dirs import cache_dir as user_cache_dir
    return user_cache_dir()


def _build(target: Path) -> None:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise OSError("no C compiler (install Debian's gcc package)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        run = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(built), str(SOURCE),
                              "-ldl"], capture_output=True, text=True, timeout=120)
        if run.returncode != 0:
            raise OSError(f"{compiler} failed on {SOURCE}: {run.stderr.strip()}")
        os.replace(built, target)  # atomic: a concurrent build never sees half a library


@functools.cache
def loopback_shim() -> Path | None:
    """The compiled shim, built on first use; None, with a warning that the server will listen
    on all interfaces, when it can't be built."""
    tag = hashlib.sha256(SOURCE.read_bytes() + platform.machine().encode()).hexdigest()[:12]
    target = cache_dir() / f"loopback_bind-{tag}.so"
    if not target.is_file():
        try:
            _build(target)
        except (OSError, subprocess.SubprocessError) as exc:
            warnings.warn(f"could not build {SOURCE.name} into {target.parent} ({exc}); the "
                          "private indiserver will listen on all interfaces, not only 127.0.0.1",
                          RuntimeWarning, stacklevel=2)
            return None
    return target


def preload_env(env: dict[str, str]) -> dict[str, str]:
    """`env` with the shim added in front of any LD_PRELOAD it already has."""
    shim = loopback_shim()
    if shim is None:
        return env
    rest = env.get("LD_PRELOAD", "")
    return {**env, "LD_PRELOAD": f"{shim} {rest}".strip()}
