"""The combine engine: typed options (`options`), the driver (`engine`, with `plan`), the C
kernel and its loader (`native.c`, `native`, run by `run_native`) and the numba kernels that
do what C doesn't or can't be built for (`kernels`, run by `run_numba`). See
docs/decisions/012-combine-engine.md."""

from indical.calib.combine.engine import CombineInput, CombineResult, combine_files
from indical.calib.combine.options import CombineOptions, Method

__all__ = ["CombineInput", "CombineOptions", "CombineResult", "Method", "combine_files"]
