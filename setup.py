"""The compiled part of indical: one extension module holding the C kernels (combine and
apply), built by `pip install` (in place for `pip install -e`) as astropy builds its C
extensions. Everything else about the package is in pyproject.toml."""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

KERNEL_DIR = "indical/calib/combine"
KERNEL_SOURCES = ("module.c", "native.c", "native_avx2.c", "apply.c")


def source_sha() -> str:
    """sha256 (16 hex digits) of the kernel's sources, compiled into it (ind_source_sha): two
    installs whose kernels say the same were built from the same C, whatever the compiler, so
    a Dask client can tell a worker whose kernel was built from other sources (decision 024)."""
    digest = hashlib.sha256()
    for name in KERNEL_SOURCES:
        digest.update(name.encode() + b"\0" + Path(KERNEL_DIR, name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


setup(ext_modules=[Extension(
    "indical.calib.combine._native",
    sources=[f"{KERNEL_DIR}/{name}" for name in KERNEL_SOURCES],
    depends=[f"{KERNEL_DIR}/native.c"],  # native_avx2.c includes it
    # -ffp-contract=off: no fused multiply-adds (their single rounding would make the last bits
    # depend on the CPU); no -ffast-math for the same reason; portable code (no -march), with an
    # AVX2 copy chosen at run time (native_avx2.c).
    define_macros=[("IND_SOURCE_SHA", f'"{source_sha()}"')],
    extra_compile_args=["-O3", "-ffp-contract=off", "-fno-math-errno", "-std=gnu11"],
)])
