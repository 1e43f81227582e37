"""Bad pixel maps: hot pixels from a master dark, cold and dead pixels from a master flat, and
correction of flagged pixels from their neighbours.

A map is a uint8 image of `PixelFlag` bits (HOT, COLD, DEAD) so one file says why each pixel
is bad; calibrated lights carry the same bits in their FLAGS extension. Flat
thresholds are taken against a block-median background, so vignetted corners and dust shadows
are not mistaken for cold pixels. On a colour (Bayer) sensor each of the four CFA planes is judged
on its own (its own dark statistics, its own flat background), since a flat's channels may differ
by a factor of two or more, and corrections take neighbours of the same colour only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indical.calib.flags import PixelFlag
from indical.frame import cfa_planes

_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class BadPixelOptions:
    """hot_sigma: a dark pixel above median + hot_sigma * robust sigma is hot.
    cold_fraction: a flat pixel below this fraction of its local level is cold. A fraction, not
    a number of sigmas: dust shadows dim pixels by 5-20 % and must stay, they are what the
    flat corrects; a pixel answering with less than 60 % of its neighbours' light is broken.
    dead_fraction: a flat pixel below this fraction of its local level is dead.
    block_px: size of the blocks whose medians give the flat's local level."""

    hot_sigma: float = 5.0
    cold_fraction: float = 0.6
    dead_fraction: float = 0.2
    block_px: int = 32


def robust_sigma(values: np.ndarray) -> tuple[float, float]:
    """Median and MAD-based sigma of the finite values."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return float("nan"), float("nan")
    med = float(np.median(v))
    return med, _MAD_TO_SIGMA * float(np.median(np.abs(v - med)))


def hot_pixels(dark: np.ndarray, hot_sigma: float = 5.0) -> np.ndarray:
    """Pixels of a master dark above median + hot_sigma robust sigmas (bool)."""
    d = np.asarray(dark, dtype=np.float32)
    med, sigma = robust_sigma(d)
    if not np.isfinite(med):
        return np.zeros(d.shape, dtype=bool)
    return d > med + hot_sigma * max(sigma, 1e-6)


def local_level(image: np.ndarray, block_px: int = 32) -> np.ndarray:
    """Median of each block_px square, spread back over its pixels: the slowly varying level."""
    h, w = image.shape
    by, bx = -(-h // block_px), -(-w // block_px)
    padded = np.full((by * block_px, bx * block_px), np.nan, dtype=np.float32)
    padded[:h, :w] = image
    blocks = padded.reshape(by, block_px, bx, block_px).transpose(0, 2, 1, 3).reshape(by, bx, -1)
    medians = np.nanmedian(blocks, axis=2).astype(np.float32)
    return np.repeat(np.repeat(medians, block_px, axis=0), block_px, axis=1)[:h, :w]


def cold_and_dead_pixels(flat: np.ndarray, options: BadPixelOptions = BadPixelOptions()
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(cold, dead) bool maps from a master flat, relative to its local level."""
    f = np.asarray(flat, dtype=np.float32)
    level = local_level(f, options.block_px)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(level > 0, f / level, 0.0).astype(np.float32)
    dead = ~(ratio >= options.dead_fraction)
    cold = (ratio < options.cold_fraction) & ~dead
    return cold, dead


def build_bad_pixel_map(dark: np.ndarray | None, flat: np.ndarray | None,
                        options: BadPixelOptions = BadPixelOptions(), *,
                        bayer: str | None = None) -> np.ndarray:
    """A uint8 map of PixelFlag HOT / COLD / DEAD bits from whichever masters are given;
    with `bayer` (the pattern at pixel (0, 0)) each CFA plane is judged on its own."""
    if dark is None and flat is None:
        raise ValueError("a bad pixel map needs a master dark, a master flat or both")
    shape = (dark if dark is not None else flat).shape
    if dark is not None and flat is not None and dark.shape != flat.shape:
        raise ValueError(f"master dark {dark.shape} and master flat {flat.shape} differ in size")
    bpm = np.zeros(shape, dtype=np.uint8)
    # a plane's blocks cover the same sensor area as the mono blocks
    plane_options = options if bayer is None else \
        BadPixelOptions(options.hot_sigma, options.cold_fraction, options.dead_fraction,
                        max(1, options.block_px // 2))
    for name, (dy, dx) in cfa_planes(bayer):
        view = (lambda a: a[dy::2, dx::2]) if name else (lambda a: a)
        out = view(bpm)
        if dark is not None:
            out[hot_pixels(view(dark), options.hot_sigma)] |= np.uint8(PixelFlag.HOT)
        if flat is not None:
            cold, dead = cold_and_dead_pixels(view(flat), plane_options)
            out[cold] |= np.uint8(PixelFlag.COLD)
            out[dead] |= np.uint8(PixelFlag.DEAD)
    return bpm


def correct_from_neighbours(image: np.ndarray, bad: np.ndarray, step: int = 1) -> np.ndarray:
    """A copy of `image` where each bad pixel is the median of its good neighbours.

    step=2 takes neighbours of the same colour on a Bayer sensor (the 8 pixels two away hold the
    pixel's own colour whatever the pattern and phase). A pixel with no good neighbour keeps its
    value."""
    out = np.array(image, dtype=np.float32, copy=True)
    mask = np.asarray(bad, dtype=bool)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return out
    h, w = mask.shape
    offsets = [(dy * step, dx * step) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    samples = np.full((ys.size, len(offsets)), np.nan, dtype=np.float32)
    for k, (dy, dx) in enumerate(offsets):
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        good = np.zeros(ys.size, dtype=bool)
        good[inside] = ~mask[ny[inside], nx[inside]]
        samples[good, k] = out[ny[good], nx[good]]
    has_good = np.isfinite(samples).any(axis=1)
    values = np.full(ys.size, np.nan, dtype=np.float32)
    if has_good.any():
        values[has_good] = np.nanmedian(samples[has_good], axis=1)
    out[ys[has_good], xs[has_good]] = values[has_good]
    return out
