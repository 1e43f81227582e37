"""Sorting networks for the combine kernel (native.c): a fixed list of
compare-and-swap pairs that sorts every pixel's stack of n values without a branch."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def sorting_network(n: int) -> np.ndarray:
    """Comparator pairs (i, j), i < j, of Batcher's odd-even merge sort for n inputs. Applied
    in order with min/max they sort any n values without a single branch, so a whole row of
    pixel stacks is sorted with vector instructions."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


@lru_cache(maxsize=8)
def cached_network(n: int) -> np.ndarray:
    """sorting_network(n), computed once per process (callers must not change it)."""
    return np.ascontiguousarray(sorting_network(n))
