"""Synthetic calibration frames on disk, for tests and benchmarks of the calibration core."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from indical.fits.io import write_frame
from indical.frame import Binning, Frame, FrameMeta, FrameType


def synthetic_meta(kind: FrameType = FrameType.FLAT, *, exposure_s: float = 1.0,
                   filter: str | None = "L", temperature_c: float | None = -10.0,
                   index: int = 0, **changes) -> FrameMeta:
    start = datetime(2026, 3, 20, 18, 0, tzinfo=timezone.utc) + timedelta(seconds=10 * index)
    meta = FrameMeta(frame_type=kind, exposure_s=exposure_s, camera="Sim Cam", gain=100.0,
                     offset=10.0, binning=Binning(1, 1), sensor_temp_c=temperature_c,
                     setpoint_temp_c=None if temperature_c is None else round(temperature_c),
                     filter=filter if kind is FrameType.FLAT else None, start=start,
                     end=start + timedelta(seconds=exposure_s))
    return meta.replace(**changes) if changes else meta


def synthetic_data(level_adu: float, *, shape: tuple[int, int] = (48, 64), noise_adu: float = 5.0,
                   seed: int = 0, vignetting: bool = False) -> np.ndarray:
    """uint16 pixels around a level, optionally with a radial fall-off like a real flat."""
    rng = np.random.default_rng(seed)
    h, w = shape
    base = np.full(shape, float(level_adu))
    if vignetting:
        y, x = np.mgrid[0:h, 0:w]
        r2 = ((x - w / 2) / w) ** 2 + ((y - h / 2) / h) ** 2
        base *= 1.0 - 0.6 * r2
    data = base + rng.normal(0.0, noise_adu, shape)
    return np.clip(np.rint(data), 0, 65535).astype(np.uint16)


def write_synthetic(path: Path, kind: FrameType = FrameType.FLAT, *, level_adu: float = 20000.0,
                    shape: tuple[int, int] = (48, 64), seed: int = 0, noise_adu: float = 5.0,
                    vignetting: bool = False, data: np.ndarray | None = None, **meta_changes) -> Path:
    """Write one synthetic uint16 frame (stored as int16 + BZERO 32768, like cameras do)."""
    pixels = data if data is not None else synthetic_data(level_adu, shape=shape, seed=seed,
                                                          noise_adu=noise_adu, vignetting=vignetting)
    meta = synthetic_meta(kind, index=seed, **meta_changes)
    return write_frame(Frame(pixels, meta), Path(path))
