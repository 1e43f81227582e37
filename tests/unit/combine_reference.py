"""A small, slow numpy reference of the combine kernel (native.c), one pixel at a time, for the
parity tests: what each method computes, written plainly. Sums are added one value after the
other from 0.0 (`seq_sum`), in the order the kernel adds them, so results agree bit for bit.

Per pixel the kernel sees each frame's value precalibrated and scaled (`kernel_values`), sorts
the stack with the comparator network (`network_sort`; for finite values that is plain sorting)
and reduces it in float64:
- mean: of the stack in frame order; median: of the sorted stack;
- minmax: the mean without the `clip` lowest and highest values;
- sigma: astropy's sigma_clip iteration (centre median or mean, population standard deviation,
  inclusive bounds, until nothing more is rejected or maxiters passes);
- percentile: the mean of the values within a fraction of the median from it;
- winsorized (Siril's winsorized sigma clipping): winsorize a copy at 1.5 sigma around its
  median until sigma (times 1.134) settles, then reject beyond sigma_low / sigma_high of it
  from the median; repeat on what is kept;
- linear fit (Siril's linear fit clipping): fit a line through the sorted kept values against
  their rank, reject those farther from it than sigma_low / sigma_high times the mean absolute
  deviation; repeat.
Winsorized and linear fit never make a rejection that would leave fewer than MIN_KEEP values,
and do nothing on MIN_KEEP values or fewer."""

from __future__ import annotations

import math

import numpy as np

MIN_KEEP = 4
MEAN, MEDIAN, MINMAX, SIGMA, WINSORIZED, LINEARFIT, PERCENTILE = range(7)


def seq_sum(values) -> float:
    """Values added one after the other from 0.0 (numpy's sum adds pairwise)."""
    total = 0.0
    for x in (values.tolist() if isinstance(values, np.ndarray) else values):
        total += x
    return total


def seq_mean(values) -> float:
    return seq_sum(values) / len(values)


def pop_std(values) -> float:
    """Two passes: the mean, then the mean squared deviation from it."""
    mean = seq_mean(values)
    return math.sqrt(seq_sum([(mean - x) ** 2 for x in values.tolist()]) / len(values))


def sorted_median(values) -> float:
    """Median of sorted values (mean of the two middle ones for an even count)."""
    n, mid = len(values), len(values) // 2
    return float(values[mid]) if n % 2 else 0.5 * (float(values[mid - 1]) + float(values[mid]))


def kernel_values(physical: np.ndarray, precal: float | None, scales: np.ndarray,
                  dtype: type) -> np.ndarray:
    """One pixel's stack as the kernel sees it: (value - precal) * scale in float64, rounded to
    the kernel's working type (float32 for 16-bit and float32 frames, float64 otherwise)."""
    x = physical.astype(np.float64)
    if precal is not None:
        x = x - precal
    return (x * scales).astype(dtype).astype(np.float64)


def network_sort(values: np.ndarray, network: np.ndarray) -> np.ndarray:
    """The stack after the comparator network, with the kernel's selects (a NaN stays where
    they leave it)."""
    v = [float(x) for x in values]
    for i, j in network:
        x, y = v[i], v[j]
        v[i] = y if y < x else x
        v[j] = y if y > x else x
    return np.asarray(v)


def sigma_window(v: np.ndarray, sigma_low: float, sigma_high: float, use_median: bool,
                 maxiters: int) -> tuple[int, int]:
    """astropy's iteration on sorted values: the kept values are always v[lo:hi]."""
    lo, hi, iteration = 0, len(v), 0
    while True:
        window = v[lo:hi]
        mean, std = seq_mean(window), pop_std(window)
        cen = sorted_median(window) if use_median else mean
        lower, upper = cen - sigma_low * std, cen + sigma_high * std
        new_lo, new_hi = lo, hi
        while new_lo < hi and v[new_lo] < lower:
            new_lo += 1
        while new_hi > new_lo and v[new_hi - 1] > upper:
            new_hi -= 1
        if (new_lo, new_hi) == (lo, hi):
            return lo, hi
        lo, hi, iteration = new_lo, new_hi, iteration + 1
        if hi == lo or (maxiters != -1 and iteration >= maxiters):
            return lo, hi


def winsorized_keep(v: np.ndarray, sigma_low: float, sigma_high: float,
                    maxiters: int) -> np.ndarray:
    """The values winsorized sigma clipping keeps, from sorted values."""
    iteration = 0
    while len(v) > MIN_KEEP and (maxiters == -1 or iteration < maxiters):
        med = sorted_median(v)
        work = v.copy()
        sigma = 1.134 * pop_std(work)
        for _ in range(50):
            wmed = sorted_median(work)  # clamping sorted values keeps them sorted
            work = np.clip(work, wmed - 1.5 * sigma, wmed + 1.5 * sigma)
            new_sigma = 1.134 * pop_std(work)
            done = abs(new_sigma - sigma) <= 5e-4 * sigma
            sigma = new_sigma
            if done:
                break
        keep = (med - v <= sigma_low * sigma) & (v - med <= sigma_high * sigma)
        iteration += 1
        if keep.all() or keep.sum() < MIN_KEEP:
            break
        v = v[keep]
    return v


def linear_fit_keep(v: np.ndarray, sigma_low: float, sigma_high: float,
                    maxiters: int) -> np.ndarray:
    """The values linear fit clipping keeps, from sorted values."""
    iteration = 0
    while len(v) > MIN_KEEP and (maxiters == -1 or iteration < maxiters):
        count = float(len(v))
        rank = np.arange(len(v), dtype=np.float64)
        sx, sxx = seq_sum(rank), seq_sum(rank * rank)
        sy, sxy = seq_sum(v), seq_sum(rank * v)
        den = count * sxx - sx * sx
        b = (count * sxy - sx * sy) / den if den != 0 else 0.0
        a = (sy - b * sx) / count
        residual = v - (a + b * rank)
        sigma = seq_sum(np.abs(residual)) / count
        keep = (-residual <= sigma_low * sigma) & (residual <= sigma_high * sigma)
        iteration += 1
        if keep.all() or keep.sum() < MIN_KEEP:
            break
        v = v[keep]
    return v


def combine_stack(values: np.ndarray, network: np.ndarray, method: int,
                  params) -> tuple[float, int]:
    """One pixel: (combined value as float32, number of values rejected)."""
    n = len(values)
    sigma_low, sigma_high, use_median, maxiters, clip, pct_low, pct_high = map(float, params)
    maxiters = int(maxiters)
    if method == MEAN:
        return np.float32(seq_mean(values)), 0
    v = network_sort(values, network)
    if method == MEDIAN:
        return np.float32(sorted_median(v)), 0
    if method == MINMAX:
        k = int(clip)
        return np.float32(seq_mean(v[k:n - k])), 2 * k
    if method == SIGMA:
        lo, hi = sigma_window(v, sigma_low, sigma_high, use_median != 0, maxiters)
        return (np.float32(np.nan) if hi == lo else np.float32(seq_mean(v[lo:hi]))), n - (hi - lo)
    if method in (WINSORIZED, LINEARFIT):
        keep = (winsorized_keep if method == WINSORIZED else linear_fit_keep)(
            v, sigma_low, sigma_high, maxiters)
        return np.float32(seq_mean(keep)), n - len(keep)
    med = sorted_median(v)  # percentile
    lower, upper = med - pct_low * abs(med), med + pct_high * abs(med)
    lo, hi = 0, n
    while lo < n and v[lo] < lower:
        lo += 1
    while hi > lo and v[hi - 1] > upper:
        hi -= 1
    return (np.float32(med) if hi == lo else np.float32(seq_mean(v[lo:hi]))), n - (hi - lo)


def combine_cube(physical: np.ndarray, precal: np.ndarray | None, scales: np.ndarray,
                 dtype: type, network: np.ndarray, method: int, params) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel of a cube (frames x rows x columns) of physical values. `scales`: one per
    frame, or frames x 2 x 2 (per colour cell position: [row parity, column parity])."""
    _, rows, width = physical.shape
    out = np.empty((rows, width), np.float32)
    rejected = np.empty((rows, width), np.uint16)
    with np.errstate(invalid="ignore", over="ignore"):  # NaNs and infinities are part of the test
        for r in range(rows):
            for c in range(width):
                s = scales if scales.ndim == 1 else scales[:, r % 2, c % 2]
                values = kernel_values(physical[:, r, c],
                                       None if precal is None else precal[r, c], s, dtype)
                out[r, c], rejected[r, c] = combine_stack(values, network, method, params)
    return out, rejected
