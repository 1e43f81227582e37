"""Frames: pixel data plus normalised metadata, the one currency between devices, sequences and
the calibration core."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np


class FrameType(enum.Enum):
    LIGHT = "light"
    BIAS = "bias"
    DARK = "dark"
    FLAT = "flat"
    DARKFLAT = "darkflat"

    @property
    def needs_light(self) -> bool:
        """True for frames taken with light on the sensor."""
        return self in (FrameType.LIGHT, FrameType.FLAT)


# What lit a flat: a flat panel (or dome screen) or the twilight sky. Kept apart everywhere:
# their illumination differs (a panel's is not the sky's), so one never stands in for the other.
FLAT_SOURCES = ("PANEL", "SKY")


@dataclass(frozen=True)
class Binning:
    x: int = 1
    y: int = 1

    def __post_init__(self) -> None:
        if self.x < 1 or self.y < 1:
            raise ValueError(f"binning must be at least 1x1, got {self.x}x{self.y}")

    def __str__(self) -> str:
        return f"{self.x}x{self.y}"


@dataclass(frozen=True)
class Region:
    """A rectangle in unbinned sensor pixels; named fields so width and height never swap."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class FrameMeta:
    """Everything known about how a frame was taken. Units are in the field names."""

    frame_type: FrameType
    exposure_s: float
    camera: str = ""
    gain: float | None = None
    offset: float | None = None
    binning: Binning = Binning()
    readout_mode: str | None = None
    bit_depth: int | None = None
    sensor_temp_c: float | None = None
    setpoint_temp_c: float | None = None
    filter: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    panel_brightness: int | None = None
    sun_altitude_deg: float | None = None
    level_adu: float | None = None
    e_per_adu: float | None = None
    pixel_size_um: float | None = None
    bayer_pattern: str | None = None
    site_lat_deg: float | None = None
    site_lon_deg: float | None = None
    flat_source: str | None = None      # flats: what lit them, FLAT_SOURCES
    extra: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> "FrameMeta":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Frame:
    """A pixel array (rows = y, columns = x) and its metadata."""

    data: np.ndarray
    meta: FrameMeta

    @property
    def height(self) -> int:
        return int(self.data.shape[0])

    @property
    def width(self) -> int:
        return int(self.data.shape[1])

    def with_meta(self, **changes: Any) -> "Frame":
        """A copy sharing the pixels, with metadata fields changed."""
        return Frame(self.data, self.meta.replace(**changes))
