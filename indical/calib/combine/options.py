"""Combine options: one typed object per combine, validated once, resolved for `auto`.

The `auto` rule (after PixInsight's guidance by frame count): 1-2 frames mean (nothing can be
rejected), 3-6 percentile clipping, 7-14 sigma clipping, 15 or more winsorized sigma clipping.
See docs/decisions/012-combine-engine.md."""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, replace
from typing import Any


class Method(enum.Enum):
    MEAN = "mean"
    MEDIAN = "median"
    MINMAX = "minmax"
    SIGMA = "sigma"
    WINSORIZED = "winsorized"
    LINEARFIT = "linearfit"
    PERCENTILE = "percentile"
    AUTO = "auto"


# Method codes of the C kernel (the enum at the top of native.c).
METHOD_CODE = {Method.MEAN: 0, Method.MEDIAN: 1, Method.MINMAX: 2, Method.SIGMA: 3,
               Method.WINSORIZED: 4, Method.LINEARFIT: 5, Method.PERCENTILE: 6}

_MIN_FRAMES = {Method.MEAN: 2, Method.MEDIAN: 2, Method.SIGMA: 3, Method.WINSORIZED: 5,
               Method.LINEARFIT: 5, Method.PERCENTILE: 3}


class TooFewFrames(ValueError):
    """The method needs more frames than were given."""


def auto_method(n_frames: int) -> Method:
    """The documented `auto` rule."""
    if n_frames <= 2:
        return Method.MEAN
    if n_frames <= 6:
        return Method.PERCENTILE
    if n_frames <= 14:
        return Method.SIGMA
    return Method.WINSORIZED


@dataclass(frozen=True)
class CombineOptions:
    """How to combine a stack, pixel by pixel.

    sigma, winsorized and linearfit reject below `sigma_low` and above `sigma_high` standard
    deviations, for at most `maxiters` iterations (None: until nothing changes); sigma centres
    on `center` ('median' or 'mean') exactly like astropy's sigma_clip with stdfunc='std'.
    minmax drops the `clip` lowest and highest values. percentile drops values more than
    `percentile_low` / `percentile_high` (fractions of the median) below / above the median.
    The result is the mean of the values kept (median: the median)."""

    method: Method = Method.SIGMA
    sigma_low: float = 3.0
    sigma_high: float = 3.0
    center: str = "median"
    maxiters: int | None = 5
    clip: int = 1
    percentile_low: float = 0.2
    percentile_high: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.method, str):
            object.__setattr__(self, "method", Method(self.method))
        if self.center not in ("median", "mean"):
            raise ValueError(f"center must be 'median' or 'mean', got {self.center!r}")
        for name in ("sigma_low", "sigma_high", "percentile_low", "percentile_high"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if self.maxiters is not None and self.maxiters < 1:
            raise ValueError(f"maxiters must be at least 1 (or None for no limit), got {self.maxiters}")
        if self.clip < 0:
            raise ValueError(f"clip must be 0 or more, got {self.clip}")

    def resolved(self, n_frames: int) -> "CombineOptions":
        """The concrete method for this many frames (only `auto` changes)."""
        if self.method is Method.AUTO:
            return replace(self, method=auto_method(n_frames))
        return self

    def check(self, n_frames: int) -> None:
        """Raise TooFewFrames when the (resolved) method can't work on n_frames."""
        method = self.resolved(n_frames).method
        need = 2 * self.clip + 1 if method is Method.MINMAX else _MIN_FRAMES[method]
        if n_frames < need:
            what = f"minmax with --clip {self.clip}" if method is Method.MINMAX else method.value
            raise TooFewFrames(f"{what} needs at least {need} frames, got {n_frames}")

    def parameters(self) -> dict[str, Any]:
        """The parameters that matter for the method (for headers and the library)."""
        m = self.method
        d = asdict(self)
        keep: tuple[str, ...] = ()
        if m is Method.SIGMA:
            keep = ("sigma_low", "sigma_high", "center", "maxiters")
        elif m in (Method.WINSORIZED, Method.LINEARFIT):
            keep = ("sigma_low", "sigma_high", "maxiters")
        elif m is Method.MINMAX:
            keep = ("clip",)
        elif m is Method.PERCENTILE:
            keep = ("percentile_low", "percentile_high")
        return {k: d[k] for k in keep}

    def kernel_params(self) -> tuple[int, list[float]]:
        """(method code, float parameters) in the layout native.c's
        read_params expects."""
        m = self.method
        if m is Method.AUTO:
            raise ValueError("resolve 'auto' for a frame count first")
        return METHOD_CODE[m], [self.sigma_low, self.sigma_high,
                                1.0 if self.center == "median" else 0.0,
                                -1.0 if self.maxiters is None else float(self.maxiters),
                                float(self.clip), self.percentile_low, self.percentile_high]
