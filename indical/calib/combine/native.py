"""indical's compiled kernels: `native.c` (combining, with an AVX2 copy in `native_avx2.c`) and
`apply.c` (applying masters to 16-bit lights), compiled by the package build (setup.py) into the
extension module `indical.calib.combine._native` and called through ctypes, which releases the
GIL, so row blocks and lights run on every core. See docs/decisions/014-one-combine-kernel.md."""

from __future__ import annotations

import ctypes
import functools
import importlib
from pathlib import Path

from indical.errors import IndicalError

ABI_VERSION = 4  # ABI_VERSION in native.c
ISA_NAMES = {0: "baseline", 1: "AVX2"}


class KernelMissing(IndicalError):
    """The compiled extension is not there or does not load (an install that did not build
    it, or one built from other sources)."""


_p = ctypes.c_void_p
_i = ctypes.c_int
_i64 = ctypes.c_int64
_f = ctypes.c_float


class NativeKernel:
    """The extension's entry points (see native.c and apply.c for what each argument means)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        lib = ctypes.CDLL(str(path), use_errno=True)
        version = lib.ind_abi_version()
        if version != ABI_VERSION:
            raise KernelMissing(f"{path} has kernel ABI {version}, this indical expects "
                                f"{ABI_VERSION}: it was built from other sources; {_REBUILD}")
        lib.ind_set_isa.argtypes = [_i]
        lib.ind_set_isa.restype = _i
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
        lib.ind_calibrate_be16.argtypes = [_p, _i64, _f, _p, _p, _f, _p, _p]
        lib.ind_calibrate_be16.restype = _i64
        try:   # sha256 of the C sources it was built from (setup.py), for Dask's workers
            lib.ind_source_sha.restype = ctypes.c_char_p
            self.source_sha = lib.ind_source_sha().decode()
        except AttributeError:
            self.source_sha = "unknown"
        self._set_isa = lib.ind_set_isa
        self.isa = self._set_isa(-1)  # the best copy this CPU runs
        self.work_bytes = lib.ind_work_bytes
        self.read_bytes = lib.ind_read_bytes
        self.combine_cube = lib.ind_combine_cube
        self.combine_be16_files = lib.ind_combine_be16_files
        self.level_be16 = lib.ind_level_be16
        self.calibrate_be16 = lib.ind_calibrate_be16

    def use_isa(self, want: int) -> int:
        """Run the baseline copy (0), the AVX2 one (1, where the CPU has it) or the best (-1);
        returns the one in use. Tests compare the copies; never while a combine runs."""
        self.isa = self._set_isa(want)
        return self.isa


_REBUILD = ("reinstall indical so that its C kernel is compiled: `./bootstrap.sh install` in a "
            "checkout (or `pip install -e .` there), `pip install --force-reinstall indical` "
            "otherwise (needs a C compiler and Python's headers: Debian's gcc and python3-dev)")


@functools.cache
def kernel() -> NativeKernel:
    """The loaded kernels. Raises KernelMissing, saying what to run, when the extension is not
    built or does not load."""
    try:
        _native = importlib.import_module("indical.calib.combine._native")
    except ImportError as exc:
        raise KernelMissing(f"indical's compiled kernel (indical.calib.combine._native) is "
                            f"missing: {exc}; {_REBUILD}") from exc
    try:
        return NativeKernel(Path(_native.__file__))
    except (OSError, AttributeError) as exc:
        raise KernelMissing(f"indical's compiled kernel {_native.__file__} does not load: {exc}; "
                            f"{_REBUILD}") from exc
