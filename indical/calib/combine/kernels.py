"""Per-pixel combine kernels, compiled with numba and run in parallel over the rows of a chunk.

`combine_rows` takes a chunk cube (frames x rows x columns) of physical values, subtracts an
optional precalibration image and multiplies by a per-frame scale (flat normalisation), then
combines each pixel's stack in float64. Sigma clipping follows astropy's fast sigma_clip
exactly: centre (median or mean) and population standard deviation of the values still kept,
bounds centre - sigma_low*std and centre + sigma_high*std inclusive, repeat until nothing is
rejected or maxiters is reached. Winsorized and linear-fit clipping follow Siril's descriptions
and stop rejecting when fewer than 4 values would remain.

`native.c` does every method with the same arithmetic in the same order: a change here needs
the same change there, or the parity tests (tests/unit/test_calib_combine_native.py) fail."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# params layout: 0 sigma_low, 1 sigma_high, 2 use_median, 3 maxiters (-1: no limit), 4 clip,
# 5 percentile_low, 6 percentile_high
_MIN_KEEP = 4


@njit(cache=True, nogil=True)
def _sort(a, n):
    """Sort a[:n] in place (insertion sort for the small stacks of calibration frames)."""
    if n > 64:
        a[:n] = np.sort(a[:n])
        return
    for i in range(1, n):
        x = a[i]
        j = i - 1
        while j >= 0 and a[j] > x:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = x


@njit(cache=True, nogil=True)
def _median_sorted(a, n):
    if n % 2 == 1:
        return a[n // 2]
    return 0.5 * (a[n // 2 - 1] + a[n // 2])


@njit(cache=True, nogil=True)
def _select(a, n, k):
    """Wirth's selection: the k-th smallest of a[:n]; afterwards a[i] <= a[k] for i < k."""
    lo = 0
    hi = n - 1
    while lo < hi:
        x = a[k]
        i = lo
        j = hi
        while True:
            while a[i] < x:
                i += 1
            while x < a[j]:
                j -= 1
            if i <= j:
                t = a[i]
                a[i] = a[j]
                a[j] = t
                i += 1
                j -= 1
            if i > j:
                break
        if j < k:
            lo = i
        if k < i:
            hi = j
    return a[k]


@njit(cache=True, nogil=True)
def _median(v, n, work):
    """Median of v[:n] (mean of the two middle values when n is even); v is not changed."""
    for i in range(n):
        work[i] = v[i]
    k = n // 2
    upper = _select(work, n, k)
    if n % 2 == 1:
        return upper
    lower = work[0]
    for i in range(1, k):
        if work[i] > lower:
            lower = work[i]
    return 0.5 * (lower + upper)


@njit(cache=True, nogil=True)
def _mean(v, n):
    s = 0.0
    for i in range(n):
        s += v[i]
    return s / n


@njit(cache=True, nogil=True)
def _std(v, n, mean):
    s = 0.0
    for i in range(n):
        d = mean - v[i]
        s += d * d
    return math.sqrt(s / n)


@njit(cache=True, nogil=True)
def _sigma_clip(v, n, work, sigma_low, sigma_high, use_median, maxiters):
    """astropy's iteration; v[:count] holds the kept values (compacted in order). Returns count."""
    count = n
    iteration = 0
    while True:
        mean = _mean(v, count)
        std = _std(v, count, mean)
        cen = _median(v, count, work) if use_median else mean
        lo = cen - sigma_low * std
        hi = cen + sigma_high * std
        new = 0
        for i in range(count):
            x = v[i]
            if x >= lo and x <= hi:
                v[new] = x
                new += 1
        if new == count:
            return count
        count = new
        iteration += 1
        if count == 0 or (maxiters != -1 and iteration >= maxiters):
            return count


@njit(cache=True, nogil=True)
def _winsorized_clip(v, n, work, work2, sigma_low, sigma_high, maxiters):
    count = n
    iteration = 0
    while count > _MIN_KEEP and (maxiters == -1 or iteration < maxiters):
        med = _median(v, count, work)
        # winsorize a copy until its (bias-corrected) sigma settles
        for i in range(count):
            work[i] = v[i]
        sigma = 1.134 * _std(work, count, _mean(work, count))
        for _ in range(50):
            wmed = _median(work, count, work2)
            lo = wmed - 1.5 * sigma
            hi = wmed + 1.5 * sigma
            for i in range(count):
                if work[i] < lo:
                    work[i] = lo
                elif work[i] > hi:
                    work[i] = hi
            new_sigma = 1.134 * _std(work, count, _mean(work, count))
            done = abs(new_sigma - sigma) <= 5e-4 * sigma
            sigma = new_sigma
            if done:
                break
        # count first: a rejection that would leave fewer than _MIN_KEEP values is not made,
        # and v[:count] must then still hold the values kept so far
        new = 0
        for i in range(count):
            x = v[i]
            if med - x <= sigma_low * sigma and x - med <= sigma_high * sigma:
                new += 1
        iteration += 1
        if new == count or new < _MIN_KEEP:
            break
        new = 0
        for i in range(count):
            x = v[i]
            if med - x <= sigma_low * sigma and x - med <= sigma_high * sigma:
                v[new] = x
                new += 1
        count = new
    return count


@njit(cache=True, nogil=True)
def _linear_fit_clip(v, n, sigma_low, sigma_high, maxiters):
    """Fit a line through the sorted kept values; reject those far from it. v is left sorted."""
    count = n
    iteration = 0
    _sort(v, count)
    while count > _MIN_KEEP and (maxiters == -1 or iteration < maxiters):
        # least squares y = a + b*i over i = 0..count-1
        sx = 0.0
        sy = 0.0
        sxx = 0.0
        sxy = 0.0
        for i in range(count):
            sx += i
            sy += v[i]
            sxx += i * i
            sxy += i * v[i]
        den = count * sxx - sx * sx
        b = (count * sxy - sx * sy) / den if den != 0 else 0.0
        a = (sy - b * sx) / count
        sigma = 0.0
        for i in range(count):
            sigma += abs(v[i] - (a + b * i))
        sigma /= count
        new = 0
        for i in range(count):
            r = v[i] - (a + b * i)
            if -r <= sigma_low * sigma and r <= sigma_high * sigma:
                new += 1
        iteration += 1
        if new == count or new < _MIN_KEEP:  # as in _winsorized_clip: v[:count] unchanged
            break
        new = 0
        for i in range(count):
            r = v[i] - (a + b * i)
            if -r <= sigma_low * sigma and r <= sigma_high * sigma:
                v[new] = v[i]
                new += 1
        count = new
    return count


@njit(cache=True, nogil=True)
def combine_pixel(v, n, work, work2, method, params):
    """Combine v[:n] (may be reordered); returns (value, number rejected)."""
    if method == 0:
        return _mean(v, n), 0
    if method == 1:
        return _median(v, n, work), 0
    if method == 2:
        k = int(params[4])
        _sort(v, n)
        s = 0.0
        for i in range(k, n - k):
            s += v[i]
        return s / (n - 2 * k), 2 * k
    if method == 3:
        count = _sigma_clip(v, n, work, params[0], params[1], params[2] != 0.0, int(params[3]))
        if count == 0:
            return math.nan, n
        return _mean(v, count), n - count
    if method == 4:
        count = _winsorized_clip(v, n, work, work2, params[0], params[1], int(params[3]))
        return _mean(v, count), n - count
    if method == 5:
        count = _linear_fit_clip(v, n, params[0], params[1], int(params[3]))
        return _mean(v, count), n - count
    # percentile: drop values more than a fraction of the median away from it
    med = _median(v, n, work)
    lo = med - params[5] * abs(med)
    hi = med + params[6] * abs(med)
    count = 0
    for i in range(n):
        x = v[i]
        if x >= lo and x <= hi:
            v[count] = x
            count += 1
    if count == 0:
        return med, n
    return _mean(v, count), n - count


@njit(cache=True, nogil=True)
def _window_median(v, lo, hi):
    cnt = hi - lo
    mid = lo + cnt // 2
    if cnt % 2 == 1:
        return v[mid]
    return 0.5 * (v[mid - 1] + v[mid])


@njit(cache=True, nogil=True)
def _window_sigma(v, n, sigma_low, sigma_high, use_median, maxiters):
    """astropy's sigma_clip iteration on sorted values: the kept values are always a window
    v[lo:hi] of the sorted stack, so each iteration only moves the window's ends."""
    lo = 0
    hi = n
    iteration = 0
    while True:
        cnt = hi - lo
        s = 0.0
        for i in range(lo, hi):
            s += v[i]
        mean = s / cnt
        ss = 0.0
        for i in range(lo, hi):
            d = mean - v[i]
            ss += d * d
        std = math.sqrt(ss / cnt)
        cen = _window_median(v, lo, hi) if use_median else mean
        lower = cen - sigma_low * std
        upper = cen + sigma_high * std
        new_lo = lo
        while new_lo < hi and v[new_lo] < lower:
            new_lo += 1
        new_hi = hi
        while new_hi > new_lo and v[new_hi - 1] > upper:
            new_hi -= 1
        if new_lo == lo and new_hi == hi:
            return lo, hi
        lo = new_lo
        hi = new_hi
        iteration += 1
        if hi == lo or (maxiters != -1 and iteration >= maxiters):
            return lo, hi


@njit(cache=True, nogil=True)
def _window_mean(v, lo, hi):
    s = 0.0
    for i in range(lo, hi):
        s += v[i]
    return s / (hi - lo)


@njit(cache=True, nogil=True)
def combine_sorted(v, n, work, work2, method, params):
    """Combine a sorted stack v[:n]; returns (value, number rejected)."""
    if method == 1:
        return _window_median(v, 0, n), 0
    if method == 2:
        k = int(params[4])
        return _window_mean(v, k, n - k), 2 * k
    if method == 3:
        lo, hi = _window_sigma(v, n, params[0], params[1], params[2] != 0.0, int(params[3]))
        if hi == lo:
            return math.nan, n
        return _window_mean(v, lo, hi), n - (hi - lo)
    if method == 6:
        med = _window_median(v, 0, n)
        lower = med - params[5] * abs(med)
        upper = med + params[6] * abs(med)
        lo = 0
        while lo < n and v[lo] < lower:
            lo += 1
        hi = n
        while hi > lo and v[hi - 1] > upper:
            hi -= 1
        if hi == lo:
            return med, n
        return _window_mean(v, lo, hi), n - (hi - lo)
    return combine_pixel(v, n, work, work2, method, params)


@njit(cache=True, nogil=True)
def _exact_bounds(buf, c, lo, hi, sigma_low, sigma_high, use_median):
    """astropy's two-pass mean and population std over the window, and the clipping bounds."""
    cnt = hi - lo
    s = 0.0
    for k in range(lo, hi):
        s += buf[k, c]
    mean = s / cnt
    ss = 0.0
    for k in range(lo, hi):
        d = mean - buf[k, c]
        ss += d * d
    std = math.sqrt(ss / cnt)
    cen = _sorted_median(buf, c, lo, hi) if use_median else mean
    return cen - sigma_low * std, cen + sigma_high * std


@njit(cache=True, nogil=True)
def _sorted_median(buf, c, lo, hi):
    cnt = hi - lo
    mid = lo + cnt // 2
    if cnt % 2 == 1:
        return np.float64(buf[mid, c])
    return 0.5 * (np.float64(buf[mid - 1, c]) + buf[mid, c])


@njit(cache=True, nogil=True)
def _near(x, bound, tol):
    return abs(x - bound) <= tol


@njit(cache=True, nogil=True)
def _sigma_row(buf, sigma_low, sigma_high, use_median, maxiters, out_row, rej_row, p1, p2, lo, hi,
               settled):
    """Sigma clipping of one row of sorted stacks. Every pixel's kept values are a window
    buf[lo:hi, c] of its sorted stack, so prefix sums give each pass's mean and deviation in
    O(1). Where a value lies so close to a bound that rounding could decide its fate, the
    bounds are recomputed exactly as astropy does (two passes over the window), so the
    rejection is astropy's for every pixel. A pixel whose window stopped changing would not
    change in later passes: it is marked settled and skipped, exactly where astropy stops."""
    n, cols = buf.shape
    for c in range(cols):
        p1[0, c] = 0.0
        p2[0, c] = 0.0
        lo[c] = 0
        hi[c] = n
        settled[c] = False
    for k in range(n):
        for c in range(cols):
            x = np.float64(buf[k, c])
            p1[k + 1, c] = p1[k, c] + x
            p2[k + 1, c] = p2[k, c] + x * x
    iteration = 0
    while True:
        changed = False
        for c in range(cols):
            if settled[c]:
                continue
            a = lo[c]
            b = hi[c]
            cnt = b - a
            mean = (p1[b, c] - p1[a, c]) / cnt
            var = (p2[b, c] - p2[a, c]) / cnt - mean * mean
            std = math.sqrt(var) if var > 0.0 else 0.0
            cen = _sorted_median(buf, c, a, b) if use_median else mean
            lower = cen - sigma_low * std
            upper = cen + sigma_high * std
            # how far rounding of the one-pass formula could move a bound
            tol = 1e-9 * (abs(cen) + abs(mean) + std * (sigma_low + sigma_high) + 1.0)
            risky = (_near(buf[a, c], lower, tol) or _near(buf[b - 1, c], upper, tol))
            new_lo = a
            while new_lo < b and buf[new_lo, c] < lower:
                new_lo += 1
            new_hi = b
            while new_hi > new_lo and buf[new_hi - 1, c] > upper:
                new_hi -= 1
            if new_lo < b and _near(buf[new_lo, c], lower, tol):
                risky = True
            if new_lo > a and _near(buf[new_lo - 1, c], lower, tol):
                risky = True
            if new_hi > new_lo and _near(buf[new_hi - 1, c], upper, tol):
                risky = True
            if new_hi < b and _near(buf[new_hi, c], upper, tol):
                risky = True
            if risky:
                lower, upper = _exact_bounds(buf, c, a, b, sigma_low, sigma_high, use_median)
                new_lo = a
                while new_lo < b and buf[new_lo, c] < lower:
                    new_lo += 1
                new_hi = b
                while new_hi > new_lo and buf[new_hi - 1, c] > upper:
                    new_hi -= 1
            if new_lo != a or new_hi != b:
                changed = True
                lo[c] = new_lo
                hi[c] = new_hi
                if new_hi == new_lo:
                    settled[c] = True
            else:
                settled[c] = True
        iteration += 1
        if not changed or (maxiters != -1 and iteration >= maxiters):
            break
    # each window's sum, frame by frame across the row (contiguous loads, not one strided
    # column at a time), adding in the same order as a loop from lo to hi would
    total = p1[0]  # all zeros, no longer needed
    for k in range(n):
        for c in range(cols):
            if lo[c] <= k and k < hi[c]:
                total[c] += buf[k, c]
    for c in range(cols):
        cnt = hi[c] - lo[c]
        if cnt == 0:
            out_row[c] = math.nan
            rej_row[c] = n
        else:
            out_row[c] = total[c] / cnt
            rej_row[c] = n - cnt


@njit(cache=True, nogil=True)
def _fill_float(cube, r, precal, use_precal, scales, buf):
    """Row r of a cube of physical values, precalibrated and scaled, into buf (frames x cols)."""
    n, rows, cols = cube.shape
    for k in range(n):
        sk = scales[k]
        for c in range(cols):
            x = np.float64(cube[k, r, c])
            if use_precal:
                x -= precal[r, c]
            buf[k, c] = x * sk


@njit(cache=True, nogil=True)
def _fill_be16(raw, r, offsets, precal, use_precal, scales, buf):
    """Row r of a cube of big-endian 16-bit FITS integers (viewed as native uint16, as stored)
    into buf: byte swap, sign, plus offsets[k] (BZERO minus pedestal), then as _fill_float.
    Done here rather than in a separate pass so the conversion runs on every core and the
    cube holds 2 bytes per value instead of 4."""
    n, rows, cols = raw.shape
    for k in range(n):
        sk = scales[k]
        off = offsets[k]
        for c in range(cols):
            u = np.int32(raw[k, r, c])
            u = ((u & 0xFF) << 8) | (u >> 8)
            x = np.float64((u ^ 0x8000) - 0x8000) + off
            if use_precal:
                x -= precal[r, c]
            buf[k, c] = x * sk


@njit(cache=True, nogil=True)
def _reduce_row(buf, r, method, params, network, out, rejected, p1, p2, lo, hi, settled, v,
                work, work2):
    """Combine the stacks of one row held in buf (frames x cols) into out[r], rejected[r]."""
    n, cols = buf.shape
    if method == 0:
        for c in range(cols):
            s = 0.0
            for k in range(n):
                s += buf[k, c]
            out[r, c] = s / n
            rejected[r, c] = 0
        return
    for m in range(network.shape[0]):
        i = network[m, 0]
        j = network[m, 1]
        for c in range(cols):
            a = buf[i, c]
            b = buf[j, c]
            buf[i, c] = min(a, b)
            buf[j, c] = max(a, b)
    if method == 3:
        _sigma_row(buf, params[0], params[1], params[2] != 0.0, int(params[3]), out[r],
                   rejected[r], p1, p2, lo, hi, settled)
        return
    for c in range(cols):
        for k in range(n):
            v[k] = buf[k, c]
        value, nrej = combine_sorted(v, n, work, work2, method, params)
        out[r, c] = value
        rejected[r, c] = nrej


@njit(parallel=True, cache=True)
def combine_rows(cube, precal, use_precal, scales, method, params, network, out, rejected,
                 n_blocks):
    """Combine a chunk: cube[k, r, c] -> out[r, c]; rejected[r, c] counts values dropped.

    Rows are split into `n_blocks` blocks run in parallel, each with its own work buffers
    (allocated once per block: a fresh buffer per row would cost page faults and system calls).
    Each row's stacks are precalibrated and scaled into a buffer, sorted with the network
    (vectorised across the row) unless the method is the plain mean, then reduced per pixel in
    float64."""
    n, rows, cols = cube.shape
    per_block = (rows + n_blocks - 1) // n_blocks
    for b in prange(n_blocks):
        buf = np.empty((n, cols), dtype=cube.dtype)
        p1 = np.empty((n + 1, cols))
        p2 = np.empty((n + 1, cols))
        lo = np.empty(cols, np.int64)
        hi = np.empty(cols, np.int64)
        settled = np.empty(cols, np.bool_)
        v = np.empty(n)
        work = np.empty(n)
        work2 = np.empty(n)
        for r in range(b * per_block, min(rows, (b + 1) * per_block)):
            _fill_float(cube, r, precal, use_precal, scales, buf)
            _reduce_row(buf, r, method, params, network, out, rejected, p1, p2, lo, hi,
                        settled, v, work, work2)


@njit(parallel=True, cache=True)
def combine_rows_be16(raw, offsets, precal, use_precal, scales, method, params, network, out,
                      rejected, n_blocks):
    """combine_rows for a cube of big-endian 16-bit integers exactly as stored in the files,
    with offsets[k] = BZERO - pedestal of frame k. The values seen by the rejection are the
    same float32 values combine_rows would get from a converted cube (all are integers exact
    in float32), so results are identical."""
    n, rows, cols = raw.shape
    per_block = (rows + n_blocks - 1) // n_blocks
    for b in prange(n_blocks):
        buf = np.empty((n, cols), dtype=np.float32)
        p1 = np.empty((n + 1, cols))
        p2 = np.empty((n + 1, cols))
        lo = np.empty(cols, np.int64)
        hi = np.empty(cols, np.int64)
        settled = np.empty(cols, np.bool_)
        v = np.empty(n)
        work = np.empty(n)
        work2 = np.empty(n)
        for r in range(b * per_block, min(rows, (b + 1) * per_block)):
            _fill_be16(raw, r, offsets, precal, use_precal, scales, buf)
            _reduce_row(buf, r, method, params, network, out, rejected, p1, p2, lo, hi,
                        settled, v, work, work2)
