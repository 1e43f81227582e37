"""The compiled part of indical: one extension module holding the C kernels (combine and
apply), built by `pip install` (in place for `pip install -e`) as astropy builds its C
extensions. Everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

KERNEL_DIR = "indical/calib/combine"

setup(ext_modules=[Extension(
    "indical.calib.combine._native",
    sources=[f"{KERNEL_DIR}/{name}" for name in ("module.c", "native.c", "native_avx2.c", "apply.c")],
    depends=[f"{KERNEL_DIR}/native.c"],  # native_avx2.c includes it
    # -ffp-contract=off: no fused multiply-adds (their single rounding would make the last bits
    # depend on the CPU); no -ffast-math for the same reason; portable code (no -march), with an
    # AVX2 copy chosen at run time (native_avx2.c).
    extra_compile_args=["-O3", "-ffp-contract=off", "-fno-math-errno", "-std=gnu11"],
)])
