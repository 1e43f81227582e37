"""Which twilight frames to keep. A rejected frame stays on disk, flagged with the reason.

Per frame, as it arrives: too many saturated pixels; level outside the band; stars or a
satellite trail (pixels far above the running median of the accepted frames, measured in MADs);
clouds or gradients (the smoothed ratio to that running median deviating by more than a
threshold). Across the stack once a filter is done: frames whose normalised zone medians differ
by more than 2 % from the others' (the all-sky practice of rejecting frames whose normalised
median strays from the stack's)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from indical.level import Band

SATURATED = "saturated"
LEVEL_LOW = "level below band"
LEVEL_HIGH = "level above band"
STARS = "stars"
TRAIL = "trail"
CLOUDS = "clouds or gradient"
STACK = "differs from stack"


@dataclass(frozen=True)
class RejectionSettings:
    max_saturated_fraction: float = 1e-4
    outlier_mads: float = 8.0            # a pixel this many robust sigmas above is an outlier
    max_outlier_fraction: float = 2e-3   # more outlying pixels than this: a star field
    min_trail_px: int = 150              # outlying pixels along one line: a satellite trail
    cloud_threshold: float = 0.05        # smoothed ratio to the running median, relative
    block_px: int = 32                   # smoothing scale for clouds and gradients
    running_frames: int = 5              # accepted frames in the running median
    min_reference_frames: int = 3        # below this, no running-median comparison yet
    stack_tolerance: float = 0.02        # across-stack rule
    zones: int = 3                       # zones per side for the across-stack rule
    max_analysis_pixels: int = 2_500_000  # larger frames are binned 2x2 for the checks


@dataclass(frozen=True)
class Judgement:
    """What rejection found out about one frame."""

    level_adu: float                      # central median above bias
    saturated_fraction: float
    outlier_fraction: float
    cloud_deviation: float | None         # None: no reference to compare with yet
    zone_levels: np.ndarray               # normalised zone medians, for the across-stack rule
    reasons: tuple[str, ...]
    clipped: bool = False                 # the level itself is at the clipping level

    @property
    def accepted(self) -> bool:
        return not self.reasons

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    @property
    def level_usable(self) -> bool:
        """True when the level measures the sky (not clipped, not spoiled by clouds): a frame
        rejected for saturated stars or for its level still tells how bright the sky is."""
        return not self.clipped and CLOUDS not in self.reasons and STACK not in self.reasons


def central_level(data: np.ndarray, bias_adu: float, fraction: float = 0.5) -> float:
    """Median of the central part of a frame, above the bias: robust to stars and trails."""
    h, w = data.shape
    dh, dw = int(h * (1 - fraction) / 2), int(w * (1 - fraction) / 2)
    return float(np.median(data[dh:h - dh, dw:w - dw])) - bias_adu


def saturated_fraction(data: np.ndarray, saturation_adu: float | None = None) -> float:
    """Fraction of pixels at the clipping level: `saturation_adu` when known, else a pile-up of
    pixels at the frame's maximum value (full well clips below the ADC range on many sensors)."""
    n = data.size
    if saturation_adu is not None:
        return float(np.count_nonzero(data >= saturation_adu)) / n
    top = data.max()
    count = int(np.count_nonzero(data == top))
    return count / n if count >= 3 else 0.0


def analysis_view(data: np.ndarray, bias_adu: float, level_adu: float,
                  max_pixels: int, bayer: bool = False) -> np.ndarray:
    """The frame above bias over its level (about 1 everywhere), binned 2x2 when large or
    when it is a colour (Bayer) frame, so each value covers one whole colour cell."""
    a = data.astype(np.float32)
    if a.size > max_pixels or bayer:
        h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
        a = a[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    a -= np.float32(bias_adu)
    a /= np.float32(max(level_adu, 1e-6))
    return a


def block_medians(a: np.ndarray, block: int) -> np.ndarray:
    """Median of each block x block tile (edges trimmed)."""
    bh, bw = max(1, a.shape[0] // block), max(1, a.shape[1] // block)
    b0 = a.shape[0] // bh
    b1 = a.shape[1] // bw
    tiles = a[:bh * b0, :bw * b1].reshape(bh, b0, bw, b1).transpose(0, 2, 1, 3)
    return np.median(tiles.reshape(bh, bw, -1), axis=2)


def _upsample(blocks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    ys = np.minimum((np.arange(shape[0]) * blocks.shape[0]) // shape[0], blocks.shape[0] - 1)
    xs = np.minimum((np.arange(shape[1]) * blocks.shape[1]) // shape[1], blocks.shape[1] - 1)
    return blocks[np.ix_(ys, xs)]


def zone_levels(view: np.ndarray, zones: int) -> np.ndarray:
    """Medians of zones x zones regions of a normalised frame, over their overall median."""
    h, w = view.shape
    out = np.empty((zones, zones))
    for i in range(zones):
        for j in range(zones):
            out[i, j] = np.median(view[i * h // zones:(i + 1) * h // zones,
                                       j * w // zones:(j + 1) * w // zones])
    return out / np.median(out)


def outliers(view: np.ndarray, reference: np.ndarray, block: int,
             mads: float) -> tuple[np.ndarray, float]:
    """Pixels far above the reference after removing large-scale differences, and the
    smoothed fractional deviation of the frame from the reference (clouds, gradients)."""
    ratio = view / np.maximum(reference, np.float32(1e-3))
    smooth = block_medians(ratio, block)
    smooth /= np.median(smooth)
    deviation = float(np.max(np.abs(smooth - 1.0)))
    resid = view - reference * _upsample(smooth, view.shape).astype(np.float32) \
        * np.float32(np.median(ratio))
    sample = resid[::4, ::4]
    mad = float(np.median(np.abs(sample - np.median(sample)))) * 1.4826
    mask = resid > mads * max(mad, 1e-6)
    return mask, deviation


def longest_line(mask: np.ndarray, max_points: int = 6000, rho_bin_px: float = 4.0,
                 angle_step_deg: float = 0.25) -> int:
    """Most outlying pixels on one straight band `rho_bin_px` wide (a coarse Hough transform):
    a satellite trail puts hundreds there, scattered stars a handful."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return 0
    if len(xs) > max_points:   # thin evenly; counts scale back below
        step = len(xs) / max_points
        keep = (np.arange(max_points) * step).astype(int)
        xs, ys, scale = xs[keep], ys[keep], step
    else:
        scale = 1.0
    theta = np.deg2rad(np.arange(0.0, 180.0, angle_step_deg))
    rho = np.outer(xs, np.cos(theta)) + np.outer(ys, np.sin(theta))   # points x angles
    bins = np.floor(rho / rho_bin_px).astype(np.int64)
    bins -= bins.min()
    best = 0
    for j in range(bins.shape[1]):
        best = max(best, int(np.bincount(bins[:, j]).max()))
    return int(best * scale)


@dataclass
class RunningReference:
    """Median of the last few accepted frames of one filter (normalised views)."""

    frames: int = 5
    _views: deque = field(default_factory=deque)
    _median: np.ndarray | None = None

    def add(self, view: np.ndarray) -> None:
        if self._views and self._views[0].shape != view.shape:
            self._views.clear()
        self._views.append(view)
        while len(self._views) > self.frames:
            self._views.popleft()
        self._median = None

    def __len__(self) -> int:
        return len(self._views)

    def median(self) -> np.ndarray:
        if self._median is None:
            self._median = np.median(np.stack(list(self._views)), axis=0).astype(np.float32)
        return self._median


def judge_frame(data: np.ndarray, *, bias_adu: float, target: Band,
                reference: RunningReference, settings: RejectionSettings = RejectionSettings(),
                saturation_adu: float | None = None, level_adu: float | None = None,
                bayer: bool = False) -> tuple[Judgement, np.ndarray]:
    """Judge one frame; returns the judgement and its normalised view (add it to the running
    reference when the frame is kept). `level_adu` is the level when measured already (e.g.
    the brightest colour channel); else the central median above bias."""
    level = central_level(data, bias_adu) if level_adu is None else level_adu
    sat = saturated_fraction(data, saturation_adu)
    reasons: list[str] = []
    if sat > settings.max_saturated_fraction:
        reasons.append(SATURATED)
    if level < target.low_adu:
        reasons.append(LEVEL_LOW)
    elif level > target.high_adu:
        reasons.append(LEVEL_HIGH)
    view = analysis_view(data, bias_adu, level, settings.max_analysis_pixels, bayer)
    cloud: float | None = None
    if len(reference) >= settings.min_reference_frames:
        ref = reference.median()
        mask, cloud = outliers(view, ref, settings.block_px, settings.outlier_mads)
        if cloud > settings.cloud_threshold:
            reasons.append(CLOUDS)
    else:
        # no running median yet: compare with the frame's own large-scale light
        smooth = _upsample(block_medians(view, settings.block_px), view.shape).astype(np.float32)
        mask, _ = outliers(view, smooth, settings.block_px, settings.outlier_mads)
    frac = float(mask.mean())
    if longest_line(mask) >= settings.min_trail_px:
        reasons.append(TRAIL)
    elif frac > settings.max_outlier_fraction:
        reasons.append(STARS)
    zones = zone_levels(view, settings.zones)
    top = float(saturation_adu if saturation_adu is not None else data.max())
    clipped = sat > settings.max_saturated_fraction and level >= 0.9 * (top - bias_adu)
    return Judgement(level, sat, frac, cloud, zones, tuple(reasons), clipped), view


def stack_outliers(zones: Sequence[np.ndarray], tolerance: float = 0.02) -> list[bool]:
    """For each frame, True when any of its normalised zone medians differs by more than
    `tolerance` from the median of the other frames' (needs three frames or more)."""
    n = len(zones)
    if n < 3:
        return [False] * n
    cube = np.stack(zones)
    out = []
    for i in range(n):
        others = np.median(np.delete(cube, i, axis=0), axis=0)
        out.append(bool(np.max(np.abs(cube[i] / others - 1.0)) > tolerance))
    return out
