"""The compiled part of indical: one extension module holding the C kernels (combine and
apply), built by `pip install` (in place for `pip install -e`) as astropy builds its C
extensions. Everything else about the package is in pyproject.toml, but its licence: see
`LICENSE_SPDX`."""

import hashlib
from pathlib import Path

import setuptools
from setuptools import Extension, setup

# an SPDX expression: setuptools 77 and later write it as the License-Expression; older ones,
# such as Debian 12's 66 (pip install --no-build-isolation), reject it in pyproject.toml and
# know only the free-text License field, so it is given here in the form each reads
LICENSE_SPDX = "GPL-3.0-or-later"
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


def licence() -> dict[str, str]:
    major = int(setuptools.__version__.split(".")[0])
    return {"license_expression" if major >= 77 else "license": LICENSE_SPDX}


setup(**licence(), ext_modules=[Extension(
    "indical.calib.combine._native",
    sources=[f"{KERNEL_DIR}/{name}" for name in KERNEL_SOURCES],
    depends=[f"{KERNEL_DIR}/native.c"],  # native_avx2.c includes it
    # -ffp-contract=off: no fused multiply-adds (their single rounding would make the last bits
    # depend on the CPU); no -ffast-math for the same reason; portable code (no -march), with an
    # AVX2 copy chosen at run time (native_avx2.c).
    define_macros=[("IND_SOURCE_SHA", f'"{source_sha()}"')],
    extra_compile_args=["-O3", "-ffp-contract=off", "-fno-math-errno", "-std=gnu11"],
)])
