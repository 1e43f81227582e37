"""The per-light arithmetic of apply.py in one pass over memory, for 16-bit FITS lights.

FITS stores 16-bit pixels as big-endian signed integers plus BZERO. numpy needs several passes
(convert, subtract, count negatives, divide, swap bytes for writing), each streaming the whole
frame through memory; the C kernel (`ind_calibrate_be16` in combine/apply.c, part of the
compiled extension) reads each stored pixel once and writes the calibrated float once, without
the GIL, so two lights proceed on two cores. `apply.apply_masters` stays the reference: tests
check both give the same numbers."""

from __future__ import annotations

import numpy as np

from indical.calib.apply import CalibratedLight, CalibrationInputError, PreparedMasters
from indical.calib.combine import native


def _float32_pointer(array: np.ndarray | None) -> tuple[np.ndarray | None, int | None]:
    """A flat C-ordered float32 view (or copy) of `array` and its address (None: absent)."""
    if array is None:
        return None, None
    flat = np.ascontiguousarray(array, dtype=np.float32).reshape(-1)
    return flat, flat.ctypes.data


def apply_masters_be16(raw: np.ndarray, bzero: float, exposure_s: float,
                       masters: PreparedMasters) -> CalibratedLight:
    """Calibrate stored big-endian int16 pixels (`raw`, shape height x width, dtype >i2) with
    BZERO; returns big-endian float32 ready to write."""
    if tuple(raw.shape) != masters.shape:
        raise CalibrationInputError(
            f"light is {raw.shape[1]}x{raw.shape[0]} pixels but the masters are "
            f"{masters.shape[1]}x{masters.shape[0]}")
    stored = np.ascontiguousarray(raw).reshape(-1).view(np.uint16)
    out = np.empty(stored.size, dtype=np.uint32)
    pedestal, pedestal_p = _float32_pointer(masters.pedestal)
    rate, rate_p = _float32_pointer(masters.dark_rate_per_s)
    recip, recip_p = _float32_pointer(masters.flat.reciprocal if masters.flat is not None else None)
    negative = native.kernel().calibrate_be16(stored.ctypes.data, stored.size, float(np.float32(bzero)),
                                              pedestal_p, rate_p, float(np.float32(exposure_s)),
                                              recip_p, out.ctypes.data)
    subtracted = masters.pedestal is not None or masters.dark_rate_per_s is not None
    data = out.view(">f4").reshape(masters.shape)  # FITS byte order: written without a copy
    return CalibratedLight(data, masters.flags, negative / max(1, out.size) if subtracted else 0.0)
