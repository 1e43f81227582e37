"""A one-shot-colour (Bayer) sensor in numbers: raw flats, darks and lights of a known sky,
written as FITS the way capture programs write them, for the colour calibration tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from indical.fits.io import write_frame
from indical.frame import Frame, FrameMeta, FrameType, cfa_planes

T0 = datetime(2026, 3, 20, 21, 0, tzinfo=timezone.utc)
BIAS_ADU = 500.0
#: Relative flux reaching R, G, B: a panel with a strong warm cast, and a bluish sky.
PANEL_RGB = (1.0, 0.55, 0.25)
SKY_RGB = (0.45, 1.0, 0.8)


def colour_map(pattern: str, shape: tuple[int, int]) -> np.ndarray:
    """The colour letter of each pixel of a frame whose pixel (0, 0) has `pattern`."""
    out = np.empty(shape, dtype="<U1")
    for name, (dy, dx) in cfa_planes(pattern):
        out[dy::2, dx::2] = name
    return out


def by_colour(pattern: str, shape: tuple[int, int], rgb) -> np.ndarray:
    """An image holding rgb[R], rgb[G] or rgb[B] at each pixel, by its colour."""
    colours = colour_map(pattern, shape)
    out = np.empty(shape, dtype=np.float64)
    for i, c in enumerate("RGB"):
        out[colours == c] = rgb[i]
    return out


@dataclass
class ColourSensor:
    """Pixel response (vignetting, dust, PRNU) and dark current of a Bayer sensor whose pixel
    (0, 0) has `pattern` in the frames written (BAYERPAT with XBAYROFF/YBAYROFF = offsets)."""

    pattern: str
    response: np.ndarray      # relative response, ~1 in the centre
    dark_rate: np.ndarray     # ADU per second
    bayerpat: str             # BAYERPAT written
    offsets: tuple[int, int]  # XBAYROFF, YBAYROFF written
    read_noise_adu: float = 3.0

    @property
    def shape(self) -> tuple[int, int]:
        return self.response.shape

    def meta(self, kind: FrameType, exposure_s: float, index: int = 0, **changes) -> FrameMeta:
        start = T0 + timedelta(seconds=60 * index)
        meta = FrameMeta(frame_type=kind, exposure_s=exposure_s, camera="Colour Cam", gain=100.0,
                         offset=10.0, sensor_temp_c=-10.0, setpoint_temp_c=-10.0,
                         filter="OSC" if kind in (FrameType.FLAT, FrameType.LIGHT) else None,
                         start=start, end=start + timedelta(seconds=exposure_s), bit_depth=16,
                         bayer_pattern=self.bayerpat, bayer_offset_x=self.offsets[0],
                         bayer_offset_y=self.offsets[1],
                         panel_brightness=100 if kind is FrameType.FLAT else None)
        return meta.replace(**changes) if changes else meta

    def raw(self, signal: np.ndarray, exposure_s: float, rng: np.random.Generator) -> np.ndarray:
        electrons = np.clip(signal + self.dark_rate * exposure_s, 0, None)
        values = BIAS_ADU + rng.poisson(electrons) + rng.normal(0, self.read_noise_adu, self.shape)
        return np.clip(np.rint(values), 0, 65535).astype(np.uint16)

    def write(self, folder: Path, name: str, kind: FrameType, exposure_s: float,
              signal: np.ndarray, rng: np.random.Generator, index: int = 0, **changes) -> Path:
        data = self.raw(signal, exposure_s, rng)
        return write_frame(Frame(data, self.meta(kind, exposure_s, index, **changes)),
                           folder / name)

    def flat_signal(self, level_adu: float, rgb=PANEL_RGB) -> np.ndarray:
        """What a flat of `level_adu` in its brightest channel receives, by colour."""
        return level_adu * by_colour(self.pattern, self.shape, rgb) * self.response

    def sky_signal(self, level_adu: float, rgb=SKY_RGB) -> np.ndarray:
        return level_adu * by_colour(self.pattern, self.shape, rgb) * self.response


def make_sensor(pattern: str = "RGGB", shape: tuple[int, int] = (96, 128), seed: int = 5,
                bayerpat: str | None = None, offsets: tuple[int, int] = (0, 0)) -> ColourSensor:
    rng = np.random.default_rng(seed)
    h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    r2 = ((x - w / 2) / w) ** 2 + ((y - h / 2) / h) ** 2
    response = (1.0 - 0.8 * r2) * (1 + 0.01 * rng.standard_normal(shape))
    response[30:40, 50:62] *= 0.85                                   # a dust shadow
    dark_rate = 0.2 + 0.05 * rng.random(shape)
    return ColourSensor(pattern, response, dark_rate, bayerpat or pattern, offsets)
