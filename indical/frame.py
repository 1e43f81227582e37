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


#: Bayer patterns, as the colours at (x, y) = (0, 0), (1, 0), (0, 1), (1, 1).
BAYER_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")


def bayer_at(pattern: str, x: int = 0, y: int = 0) -> str:
    """The Bayer pattern seen from pixel (x, y) of a grid whose pixel (0, 0) has `pattern`.

    A frame's effective pattern (the colour at its own pixel (0, 0)) is
    `bayer_at(BAYERPAT, XBAYROFF, YBAYROFF)`, as Siril and INDI read those keywords; a region of
    interest starting at sensor pixel (x, y) adds x and y: `bayer_at(BAYERPAT, XBAYROFF + x,
    YBAYROFF + y)`. Only the parity of x and y matters. Raises ValueError for an unknown
    pattern."""
    key = pattern.strip().upper()
    if key not in BAYER_PATTERNS:
        raise ValueError(f"unknown Bayer pattern {pattern!r}; known: {', '.join(BAYER_PATTERNS)}")
    dx, dy = x % 2, y % 2
    return "".join(key[2 * ((dy + row) % 2) + (dx + col) % 2]
                   for row in (0, 1) for col in (0, 1))


def cfa_planes(pattern: str | None) -> list[tuple[str, tuple[int, int]]]:
    """The four colour planes of a frame whose pixel (0, 0) has Bayer `pattern`, as
    (colour, (row, column) of the plane's first pixel): `data[row::2, column::2]` is that
    plane (the two greens are two planes). A mono frame (None) is one plane: [("", (0, 0))]
    for `data` itself."""
    if pattern is None:
        return [("", (0, 0))]
    key = bayer_at(pattern)
    return [(key[2 * dy + dx], (dy, dx)) for dy in (0, 1) for dx in (0, 1)]


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
    bayer_pattern: str | None = None    # BAYERPAT as written; None: a mono sensor
    bayer_offset_x: int = 0             # XBAYROFF: where the pattern starts, see `bayer_at`
    bayer_offset_y: int = 0             # YBAYROFF
    site_lat_deg: float | None = None
    site_lon_deg: float | None = None
    flat_source: str | None = None      # flats: what lit them, FLAT_SOURCES
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def effective_bayer(self) -> str | None:
        """The Bayer pattern at this frame's pixel (0, 0) (BAYERPAT shifted by XBAYROFF and
        YBAYROFF), None for a mono frame. Raises ValueError for an unknown pattern."""
        if self.bayer_pattern is None:
            return None
        return bayer_at(self.bayer_pattern, self.bayer_offset_x, self.bayer_offset_y)

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
