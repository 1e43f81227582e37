"""The combine engine: typed options (`options`), the driver (`engine`, with `plan`), and the C
kernel (`native.c`, compiled by the package build; loaded by `native`, run by `run_native`).
See docs/decisions/012-combine-engine.md and 014-one-combine-kernel.md."""

from indical.calib.combine.engine import CombineInput, CombineResult, combine_files
from indical.calib.combine.options import CombineOptions, Method

__all__ = ["CombineInput", "CombineOptions", "CombineResult", "Method", "combine_files"]
