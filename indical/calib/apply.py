"""Applying masters to a light frame: the arithmetic, kept pure and separate from files.

CMOS sensors (amp glow, dark current not linear in time) take a dark of the light's own exposure:
    calibrated = (light - dark) / flat
CCD sensors take a bias and a dark current scaled by the exposure ratio:
    calibrated = (light - bias - (dark - bias) * t_light / t_dark) / flat
The flat is normalised to mean 1 over its finite pixels, the convention indical's master flats are
written with (so a master flat is used as it is, and a flat of any brightness gives the same flux
scale), and floored against tiny values (vignetted corners, dead pixels); floored pixels are
flagged so nobody mistakes them for real signal. A colour (Bayer) flat is normalised the same way
per CFA position (each of the four planes of the 2x2 cell to mean 1) unless its header says it was
normalised by one overall factor (FLATNORM = 'OVERALL'): the light keeps its own colour balance.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from indical.calib.flags import PixelFlag, from_bad_pixel_map
from indical.frame import cfa_planes


class DarkMode(enum.Enum):
    """How dark signal is removed: a dark of the same exposure (CMOS) or bias + scaled dark
    current (CCD)."""

    CMOS = "cmos"
    CCD = "ccd"


class CalibrationInputError(ValueError):
    """Masters and light don't fit together (size, missing pieces, a flat of zeros)."""


@dataclass(frozen=True)
class ApplyOptions:
    """How masters are applied.

    flat_floor: normalised flat values below this are raised to it and flagged.
    negative_warn_fraction: warn when more of the pixels than this go below zero after
    subtraction (usually a dark that does not match)."""

    flat_floor: float = 0.05
    negative_warn_fraction: float = 0.20


@dataclass(frozen=True)
class NormalisedFlat:
    """A master flat ready to divide by: its reciprocal (multiplying is cheaper) and which
    pixels were floored."""

    reciprocal: np.ndarray  # float32
    floored: np.ndarray     # bool
    level: float            # the mean the flat was divided by (1.0 for indical's masters)

    @property
    def floored_count(self) -> int:
        return int(np.count_nonzero(self.floored))


@dataclass(frozen=True)
class PreparedMasters:
    """Masters turned into what the per-light arithmetic needs, computed once per set.

    `pedestal` is subtracted as is (CMOS master dark, or CCD master bias); `dark_rate_per_s`
    is the CCD dark current per second, multiplied by the light's exposure."""

    mode: DarkMode
    shape: tuple[int, int]
    pedestal: np.ndarray | None = None
    dark_rate_per_s: np.ndarray | None = None
    flat: NormalisedFlat | None = None
    flags: np.ndarray | None = None  # uint8 PixelFlag bits every light of this set carries


@dataclass(frozen=True)
class CalibratedLight:
    data: np.ndarray            # float32
    flags: np.ndarray | None    # uint8 PixelFlag bits, or None when nothing is flagged
    negative_fraction: float    # after subtraction, before the flat

    def negative_warning(self, options: ApplyOptions) -> str | None:
        if self.negative_fraction > options.negative_warn_fraction:
            return (f"{self.negative_fraction:.0%} of the pixels are negative after dark "
                    f"subtraction (more than {options.negative_warn_fraction:.0%}): "
                    f"the dark or bias probably does not match this light")
        return None


def normalise_flat(flat: np.ndarray, floor: float = 0.05, *,
                   bayer: str | None = None) -> NormalisedFlat:
    """Divide a master flat by its mean (over finite pixels) and floor it; with `bayer` (the
    pattern at the flat's pixel (0, 0)) each CFA plane by its own mean.

    The mean, not the median: master flats are written with mean 1.0 (per channel for colour
    flats, see master.py), so dividing by the mean leaves them unchanged and the calibrated
    light keeps the light's own flux scale; a flat of any other brightness is brought to the
    same scale. `level` is the mean of the means divided by.
    Raises CalibrationInputError when the flat (or a channel of it) has no positive level (all
    zeros, negative, NaN) so it can't be used at all."""
    f = np.asarray(flat, dtype=np.float32)
    normalised = np.empty(f.shape, dtype=np.float32)
    levels = []
    for name, (dy, dx) in cfa_planes(bayer):
        plane = f[dy::2, dx::2] if name else f
        finite = np.isfinite(plane)
        level = float(np.mean(plane[finite], dtype=np.float64)) if finite.any() else float("nan")
        if not np.isfinite(level) or level <= 0:
            where = f"'s {name} channel" if name else ""
            raise CalibrationInputError(
                f"flat{where} has no positive level (mean {level:g}): it can't be divided by; "
                f"rebuild the master flat")
        np.divide(plane, np.float32(level), out=normalised[dy::2, dx::2] if name else normalised)
        levels.append(level)
    floored = ~(normalised >= floor)  # NaN counts as floored
    normalised[floored] = floor
    return NormalisedFlat(np.reciprocal(normalised), floored, float(np.mean(levels)))


def _check_shape(name: str, array: np.ndarray | None, shape: tuple[int, int]) -> None:
    if array is not None and tuple(array.shape) != tuple(shape):
        raise CalibrationInputError(
            f"master {name} is {array.shape[1]}x{array.shape[0]} pixels but the light is "
            f"{shape[1]}x{shape[0]}: it belongs to another camera, binning or region")


def prepare_masters(
    shape: tuple[int, int],
    *,
    mode: DarkMode = DarkMode.CMOS,
    bias: np.ndarray | None = None,
    dark: np.ndarray | None = None,
    dark_exposure_s: float | None = None,
    dark_includes_bias: bool = True,
    flat: np.ndarray | None = None,
    bad_pixels: np.ndarray | None = None,
    flat_bayer: str | None = None,
    options: ApplyOptions = ApplyOptions(),
) -> PreparedMasters:
    """Check sizes and precompute the per-set arrays.

    CMOS: the dark is subtracted as is (it already holds the bias); a bias alone is used when
    no dark is given. CCD: dark current per second = (dark - bias) / t_dark, unless the dark
    was already bias-subtracted. `bad_pixels` is a uint8 map (PixelFlag HOT / COLD / DEAD bits)
    or bool. `flat_bayer`: normalise the flat per CFA plane of this pattern (None: overall)."""
    for name, array in (("bias", bias), ("dark", dark), ("flat", flat),
                        ("bad pixel map", bad_pixels)):
        _check_shape(name, array, shape)
    pedestal = None
    rate = None
    if mode is DarkMode.CMOS:
        source = dark if dark is not None else bias
        if source is not None:
            pedestal = np.asarray(source, dtype=np.float32)
    else:
        if bias is not None:
            pedestal = np.asarray(bias, dtype=np.float32)
        if dark is not None:
            if not dark_exposure_s or dark_exposure_s <= 0:
                raise CalibrationInputError(
                    "a CCD dark needs its exposure time to be scaled; the master dark has none")
            current = np.asarray(dark, dtype=np.float32)
            if dark_includes_bias:
                if pedestal is None:
                    raise CalibrationInputError(
                        "CCD calibration with a dark that holds the bias needs a master bias "
                        "to separate the dark current")
                current = current - pedestal
            rate = current / np.float32(dark_exposure_s)
    normalised = (normalise_flat(flat, options.flat_floor, bayer=flat_bayer)
                  if flat is not None else None)
    flags = None
    if normalised is not None and normalised.floored.any():
        flags = np.where(normalised.floored, np.uint8(PixelFlag.FLAT_FLOOR), np.uint8(0))
    if bad_pixels is not None:
        extra = from_bad_pixel_map(bad_pixels)
        if extra.any():
            flags = extra if flags is None else (flags | extra)
    return PreparedMasters(mode, tuple(shape), pedestal, rate, normalised, flags)


def apply_masters(light: np.ndarray, exposure_s: float, masters: PreparedMasters,
                  *, in_place: bool = False, big_endian: bool = False) -> CalibratedLight:
    """One calibrated light in float32. The input is not modified unless `in_place` is given
    with a float32 array the caller hands over (saves a copy of the frame). `big_endian` gives
    the result in FITS byte order, so writing it needs no extra byte-swapping pass."""
    if tuple(light.shape) != masters.shape:
        raise CalibrationInputError(
            f"light is {light.shape[1]}x{light.shape[0]} pixels but the masters are "
            f"{masters.shape[1]}x{masters.shape[0]}")
    if in_place and light.dtype == np.float32 and light.flags.writeable:
        out = light
    else:
        out = np.array(light, dtype=np.float32, copy=True)
    if masters.pedestal is not None:
        np.subtract(out, masters.pedestal, out=out)
    if masters.dark_rate_per_s is not None:
        # out -= rate * t without a temporary the size of the frame
        scaled = np.multiply(masters.dark_rate_per_s, np.float32(exposure_s))
        np.subtract(out, scaled, out=out)
    subtracted = masters.pedestal is not None or masters.dark_rate_per_s is not None
    negative = 0.0
    if subtracted and out.size:
        # every 4th row tells the fraction to well under 1 % at a quarter of the cost
        rows = out[::4] if out.shape[0] >= 64 else out
        negative = np.count_nonzero(rows < 0) / rows.size
    if big_endian:
        final = np.empty(out.shape, dtype=">f4")
        if masters.flat is not None:
            np.multiply(out, masters.flat.reciprocal, out=final)
        else:
            final[...] = out
        out = final
    elif masters.flat is not None:
        np.multiply(out, masters.flat.reciprocal, out=out)
    return CalibratedLight(out, masters.flags, float(negative))


def scale_to_bit_depth(data: np.ndarray, bit_depth: int, scale: float = 1.0) -> np.ndarray:
    """Calibrated values divided by `scale`, rounded and clipped to the camera's integer range
    (0 .. 2^bits - 1), for all-sky software that expects integer images. uint8 up to 8 bits,
    else uint16. `scale` is 2^(16 - bits) for cameras that deliver their bits shifted to the
    top of a 16-bit word (see `stored_shift`)."""
    if not 1 <= bit_depth <= 16:
        raise ValueError(f"bit depth must be 1..16, got {bit_depth}")
    top = float(2 ** bit_depth - 1)
    values = np.nan_to_num(np.asarray(data, dtype=np.float32), nan=0.0)
    if scale != 1.0:
        values = values / np.float32(scale)
    clipped = np.clip(values, 0.0, top)
    return np.rint(clipped).astype(np.uint8 if bit_depth <= 8 else np.uint16)


def stored_shift(sample_max: float, bit_depth: int) -> float:
    """2^(16 - bits) when a light's values go above what `bit_depth` bits can hold (the camera
    shifted its bits to the top of a 16-bit word), else 1."""
    if bit_depth < 16 and sample_max > 2 ** bit_depth - 1:
        return float(2 ** (16 - bit_depth))
    return 1.0
