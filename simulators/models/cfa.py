"""The colour filter array of a one-shot-colour sensor, and the colour of the light on it.

A Bayer sensor puts a red, green or blue filter over each pixel in a 2x2 pattern named by the
colours at (row 0, col 0), (0, 1), (1, 0), (1, 1): RGGB, GRBG, GBRG or BGGR. Cameras whose
pattern starts one pixel in (some read out an odd overscan row or column) say so with an offset:
the colour of image pixel (x, y) is the pattern's at ((y + y_offset) % 2, (x + x_offset) % 2),
the convention of the FITS keywords XBAYROFF and YBAYROFF.

The light's colour is the relative flux reaching each channel, `channel_flux = (r, g, b)`: a
panel is never quite white, a twilight sky is blue. It multiplies the light a pixel receives
before the sensor adds its response variations and noise."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from indical.frame import BAYER_PATTERNS, bayer_at

#: The channels in the order `channel_flux` lists them.
CHANNELS = "RGB"


def check_pattern(value: object) -> str | None:
    """Why `value` is not a Bayer pattern we simulate, or None."""
    if value in BAYER_PATTERNS:
        return None
    return (f"must be one of {', '.join(sorted(BAYER_PATTERNS))} (the colours of the top-left "
            f"2x2 pixels, row by row), got {value!r}")


def check_channel_flux(value: object) -> str | None:
    """Why `value` is not a usable [r, g, b] relative flux, or None."""
    if not (isinstance(value, (list, tuple)) and len(value) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        return f"must be three numbers [r, g, b] (relative flux per channel), got {value!r}"
    if any(not np.isfinite(v) or v < 0 for v in value):
        return f"each channel's flux must be 0 or more, got {list(value)}"
    if max(value) <= 0:
        return f"at least one channel must receive light, got {list(value)}"
    return None


@dataclass(frozen=True)
class Cfa:
    """A sensor's Bayer pattern and where it starts."""

    pattern: str
    x_offset: int = 0
    y_offset: int = 0

    def __post_init__(self) -> None:
        problem = check_pattern(self.pattern)
        if problem:
            raise ValueError(f"Bayer pattern {problem}")
        if self.x_offset not in (0, 1) or self.y_offset not in (0, 1):
            raise ValueError(f"Bayer offsets must be 0 or 1, got {self.x_offset}, "
                             f"{self.y_offset}")

    def colour(self, x: int, y: int) -> str:
        """The colour ("R", "G" or "B") over sensor pixel (x, y)."""
        return bayer_at(self.pattern, x + self.x_offset, y + self.y_offset)[0]

    def colours(self, height: int, width: int) -> np.ndarray:
        """Per pixel, the index into CHANNELS of its filter's colour (uint8)."""
        cell = np.array([[CHANNELS.index(self.colour(x, y)) for x in range(2)]
                         for y in range(2)], dtype=np.uint8)
        reps = ((height + 1) // 2, (width + 1) // 2)
        return np.tile(cell, reps)[:height, :width]

    def weights(self, height: int, width: int,
                channel_flux: tuple[float, float, float]) -> np.ndarray:
        """Per pixel, the relative flux its colour receives of a light of `channel_flux`.
        Read-only, cached."""
        return _weights(self, height, width, tuple(float(v) for v in channel_flux))


@lru_cache(maxsize=16)
def _weights(cfa: Cfa, height: int, width: int,
             channel_flux: tuple[float, float, float]) -> np.ndarray:
    out = np.asarray(channel_flux, dtype=np.float32)[cfa.colours(height, width)]
    out.setflags(write=False)
    return out
