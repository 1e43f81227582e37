"""Measuring how bright a flat is: a robust level above the bias, per colour channel on
one-shot-colour sensors, against a full scale taken from the bits the data really has.

Pure functions on arrays and small typed values, used by panel flats (indical.sequence) and
twilight flats (indical.twilight) alike; the sequences decide what to do with them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indical.frame import BAYER_PATTERNS  # noqa: F401  (re-exported: level.BAYER_PATTERNS)

#: Fraction of pixels piled up at the top that reveals the ADC's real maximum.
PILE_UP_FRACTION = 1e-3

#: Which channel a target applies to on a colour sensor: the brightest ("max", so no channel
#: saturates), the weakest ("min"), or one colour.
TARGET_CHANNELS = ("max", "min", "R", "G", "B")

#: Fraction of a channel's pixels clipped at full scale that makes a flat saturated (hot pixels
#: stay far below this; a flat whose bright parts clip reaches it).
CLIPPED_FRACTION = 0.01


@dataclass(frozen=True)
class Target:
    """Where a flat's level should be, with a relative tolerance.

    `Target.fraction(0.5, tolerance=0.1)` puts the raw level (bias included, as a histogram
    shows it) at 50 % of full scale +/- 10 % of that, i.e. 45-55 %. `Target.adu(25000, 0.1)`
    asks for 25000 ADU above the bias +/- 10 %. Full scale follows the real bit depth of each
    frame, so one target works in 12-bit and 16-bit readout modes alike.

    On a one-shot-colour sensor the target applies to one channel: the brightest by default
    (`channel="max"`, so no colour saturates), or `"min"`, `"R"`, `"G"`, `"B"`. `floor` is the
    level above bias, as a fraction of full scale, below which the weakest channel is too
    faint to be a good flat (default 10 %): the run says so, with what to change."""

    value: float
    tolerance: float = 0.1
    is_fraction: bool = True
    channel: str = "max"
    floor: float = 0.1

    def __post_init__(self) -> None:
        if self.channel not in TARGET_CHANNELS:
            raise ValueError(f"target channel must be one of {', '.join(TARGET_CHANNELS)}, got "
                             f"{self.channel!r}")
        if not 0 <= self.floor < 1:
            raise ValueError(f"channel floor must be a fraction of full scale from 0 to below 1, "
                             f"got {self.floor}")
        if not 0 < self.tolerance < 1:
            raise ValueError(f"target tolerance must be between 0 and 1, got {self.tolerance}")
        if self.is_fraction and not 0 < self.value * (1 + self.tolerance) < 1:
            raise ValueError(f"target fraction {self.value} +/- {self.tolerance:.0%} must stay "
                             "inside (0, 1) of full scale")
        if not self.is_fraction and self.value <= 0:
            raise ValueError(f"target level must be above 0 ADU, got {self.value}")

    @classmethod
    def fraction(cls, value: float, tolerance: float = 0.1, *, channel: str = "max",
                 floor: float = 0.1) -> "Target":
        return cls(value, tolerance, True, channel, floor)

    @classmethod
    def adu(cls, value: float, tolerance: float = 0.1, *, channel: str = "max",
            floor: float = 0.1) -> "Target":
        return cls(value, tolerance, False, channel, floor)

    def band(self, full_scale_adu: float, bias_adu: float) -> "Band":
        """The accepted range of the level above bias, for a frame with this full scale."""
        if self.is_fraction:
            centre = self.value * full_scale_adu - bias_adu
        else:
            centre = self.value
        if centre <= 0:
            raise ValueError(f"target {self.describe()} is below the bias ({bias_adu:.0f} ADU)")
        return Band(centre * (1 - self.tolerance), centre, centre * (1 + self.tolerance))

    def describe(self) -> str:
        if self.is_fraction:
            text = f"{self.value:.0%} of full scale +/- {self.tolerance:.0%}"
        else:
            text = f"{self.value:.0f} ADU above bias +/- {self.tolerance:.0%}"
        if self.channel != "max":
            text += (" in the weakest colour channel" if self.channel == "min"
                     else f" in the {self.channel} channel")
        return text


@dataclass(frozen=True)
class Band:
    """Accepted levels above bias, in ADU: a Target resolved for one camera and bias (panel
    flats), or the target the twilight ramp aims its exposures at."""

    low_adu: float
    target_adu: float
    high_adu: float

    @classmethod
    def around(cls, target_adu: float, tolerance: float = 0.1) -> "Band":
        """target_adu +/- tolerance of it."""
        if target_adu <= 0 or not 0 < tolerance < 1:
            raise ValueError(f"target {target_adu} ADU +/- {tolerance:.0%}: level must be "
                             "positive and tolerance between 0 and 1")
        return cls(target_adu * (1 - tolerance), target_adu, target_adu * (1 + tolerance))

    @property
    def tolerance(self) -> float:
        """Half the band's width relative to its target."""
        return (self.high_adu - self.low_adu) / (2 * self.target_adu)

    def contains(self, level_adu: float) -> bool:
        return self.low_adu <= level_adu <= self.high_adu

    def scaled(self, factor: float) -> "Band":
        return Band(self.low_adu * factor, self.target_adu * factor, self.high_adu * factor)


@dataclass(frozen=True)
class BitDepth:
    """The bits the data really carries, and how far it is shifted up (left-justified)."""

    bits: int
    shift: int = 0

    @property
    def full_scale_adu(self) -> float:
        """The largest value the data can hold, in the data's own units."""
        return float(((1 << self.bits) - 1) << self.shift)


@dataclass(frozen=True)
class Level:
    """A measured level: the one that counts (the target's channel, the brightest by
    default) and each channel's."""

    level_adu: float                  # above bias, the channel that counts
    channels: dict[str, float]        # above bias, per channel ("mono" or R, G, B)
    saturated: bool                   # clipped pixels piled up at the top: level is a lower bound
    bit_depth: BitDepth
    bias_adu: float
    channel: str = "mono"             # which channel counted ("mono", "R", "G" or "B")

    @property
    def full_scale_adu(self) -> float:
        return self.bit_depth.full_scale_adu


def central_region(data: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    """The central part of a frame (a `fraction` of each side), away from vignetted corners.

    Keeps an even offset so Bayer cells stay aligned."""
    if not 0 < fraction <= 1:
        raise ValueError(f"central fraction must be in (0, 1], got {fraction}")
    h, w = data.shape[:2]
    dh = (int(h * (1 - fraction) / 2) // 2) * 2
    dw = (int(w * (1 - fraction) / 2) // 2) * 2
    return data[dh:h - dh, dw:w - dw]


def detect_bit_depth(data: np.ndarray, reported_bits: int | None) -> BitDepth:
    """The bit depth the data really has.

    Cameras often report 16 bits for 12- or 14-bit data. Two signs give it away: left-justified
    data has its low bits always zero; right-justified data that clips piles up at 2^bits - 1
    below the reported maximum. Without either sign the reported depth stands (a dim frame from
    a 16-bit camera looks like 12-bit data too, so the maximum alone proves nothing)."""
    reported = reported_bits or (16 if data.dtype.itemsize >= 2 else 8)
    sample = np.asarray(data).ravel()
    if sample.size > 200_000:
        sample = sample[:: sample.size // 200_000]
    if not np.issubdtype(sample.dtype, np.integer):
        sample = np.rint(sample).astype(np.int64)
    nonzero = sample[sample != 0]
    if nonzero.size >= 100:
        low = int(np.bitwise_or.reduce(nonzero.astype(np.int64)))
        shift = (low & -low).bit_length() - 1 if low else 0
        if shift >= 1 and reported - shift >= 8:
            return BitDepth(reported - shift, shift)
    top = int(sample.max()) if sample.size else 0
    for bits in (8, 10, 12, 14):
        if bits >= reported:
            break
        ceiling = (1 << bits) - 1
        if top == ceiling and np.count_nonzero(sample == ceiling) >= PILE_UP_FRACTION * sample.size:
            return BitDepth(bits)
    return BitDepth(reported)


#: Pixels a level is measured from at most: the central region of a 1-megapixel frame. Larger
#: frames are sampled on a regular grid (every Nth row and column of each colour plane), so the
#: time between a frame's arrival and the next exposure does not grow with the sensor: the
#: median of 262144 pixels is within a quarter of a percent of the pixel noise of the whole
#: region's, far inside any band, and a clipped area of 1 % of the region covers 1 % of the grid.
LEVEL_SAMPLE_PIXELS = 1 << 18

#: Columns of each row (of each colour plane) that row banding reads at most: every row is read,
#: since bands are rows, and a row median of 256 pixels is within 0.1 % of a 1 %-noise row's
#: level, far below BANDING_LIMIT.
BANDING_SAMPLE_COLUMNS = 256


def sample_step(region: np.ndarray, max_pixels: int = LEVEL_SAMPLE_PIXELS) -> int:
    """The grid step (in pixels of each colour plane) that leaves at most `max_pixels` of a
    region: 1 when the region is small enough to be read whole."""
    if region.size <= max_pixels:
        return 1
    return int(np.ceil(np.sqrt(region.size / max_pixels)))


def _channels(region: np.ndarray, bayer: str | None, step: int = 1) -> dict[str, np.ndarray]:
    """The region's pixels per colour ("mono" without a pattern), every `step`th row and column
    of each colour plane (views until the planes of one colour are joined)."""
    if not bayer:
        return {"mono": region[::step, ::step]}
    pattern = bayer.upper()
    if pattern not in BAYER_PATTERNS:
        raise ValueError(f"unknown Bayer pattern {bayer!r}; known: {', '.join(BAYER_PATTERNS)}")
    planes: dict[str, list[np.ndarray]] = {}
    for i, colour in enumerate(pattern):
        planes.setdefault(colour, []).append(region[i // 2::2, i % 2::2][::step, ::step])
    return {c: (p[0] if len(p) == 1 else np.concatenate([q.ravel() for q in p]))
            for c, p in planes.items()}


def _clipped(pixels: np.ndarray, full_scale_adu: float, bias_adu: float) -> bool:
    """Whether many pixels pile up at one top value: clipped by the ADC at full scale, or by
    the full well below it (a sensor that saturates before its ADC does)."""
    top = float(pixels.max())
    if top < bias_adu + 0.25 * (full_scale_adu - bias_adu):
        return False                    # a dim frame: its highest values are noise, not a wall
    return np.count_nonzero(pixels >= top) >= CLIPPED_FRACTION * pixels.size


def robust_level(pixels: np.ndarray) -> float:
    """Median of the pixels: hot pixels, dust and cosmic rays do not move it."""
    return float(np.median(pixels))


def measure_level(data: np.ndarray, *, bias_adu: float, reported_bits: int | None,
                  bayer: str | None = None, central_fraction: float = 0.5,
                  known_bits: BitDepth | None = None, channel: str = "max") -> Level:
    """Measure a flat: median of the central region per channel, minus the bias.

    `channel` (TARGET_CHANNELS) is the level that counts: the brightest by default, so no
    colour saturates. A frame is saturated when any channel sits within 2 % of full scale or
    clipped pixels pile up at the top. `bayer` is the pattern as seen from the data's first
    pixel (offsets already applied). `known_bits` is what earlier frames of the same
    configuration revealed. Frames above a megapixel are read on a grid of at most
    LEVEL_SAMPLE_PIXELS pixels."""
    depth = known_bits or detect_bit_depth(data, reported_bits)
    region = central_region(data, central_fraction)
    full = depth.full_scale_adu
    channels: dict[str, float] = {}
    saturated = False
    for name, pixels in _channels(region, bayer, sample_step(region)).items():
        raw = robust_level(pixels)
        channels[name] = raw - bias_adu
        if raw >= 0.98 * full or _clipped(pixels, full, bias_adu):
            saturated = True
    name = counted_channel(channels, channel)
    return Level(channels[name], channels, saturated, depth, bias_adu, name)


def counted_channel(channels: dict[str, float], channel: str = "max") -> str:
    """The channel a target applies to, of measured `channels`: the brightest ("max"), the
    weakest ("min") or the one named; a mono frame has only "mono"."""
    if channel not in TARGET_CHANNELS:
        raise ValueError(f"target channel must be one of {', '.join(TARGET_CHANNELS)}, got "
                         f"{channel!r}")
    if "mono" in channels:
        return "mono"
    if channel == "max":
        return max(channels, key=lambda c: channels[c])
    if channel == "min":
        return min(channels, key=lambda c: channels[c])
    return channel


def channel_floor_problem(level: Level, target: Target, band: Band) -> str | None:
    """On a colour sensor, whether the weakest channel of a flat at the target (the band's
    centre) ends below the target's floor; then the channel levels and what to change, in
    words. None when it is above the floor (or the frame is mono)."""
    ch = level.channels
    if "mono" in ch or not target.floor or level.level_adu <= 0:
        return None
    full = level.full_scale_adu
    scale = band.target_adu / level.level_adu       # from this frame to one at the target
    at_target = {c: v * scale for c, v in ch.items()}
    weakest = min(at_target, key=lambda c: at_target[c])
    floor_adu = target.floor * full
    if at_target[weakest] >= floor_adu:
        return None
    levels = ", ".join(f"{c} {v / full:.1%}" for c, v in at_target.items())
    factor = floor_adu / at_target[weakest]        # how much more light the weakest needs
    advice = []
    if max(at_target.values()) * factor + level.bias_adu <= 0.9 * full:
        value = (band.target_adu * factor + level.bias_adu) / full if target.is_fraction \
            else band.target_adu * factor
        advice.append(f"a higher target ({_spelled(target, value=round(value + 0.005, 2))} "
                      f"puts {weakest} at the floor and no channel above 90 %)")
    advice.append(f"a light with more {_COLOUR_NAMES[weakest]} in it (a whiter panel, or a "
                  f"colour-correction filter or sheet on it)")
    advice.append(f"a lower floor ({_spelled(target, floor=int(at_target[weakest] / full * 100) / 100)}"
                  f" accepts this)")
    return (f"channel {weakest} would end at {at_target[weakest] / full:.1%} of full scale, "
            f"below the floor of {target.floor:.0%} ({levels} above bias at the target "
            f"{target.describe()}): its flats will be noisy. Change to " + "; or ".join(advice))


def _spelled(target: Target, **changes: float) -> str:
    """How a sequence file writes `target` with some fields changed."""
    t = {"value": target.value, "tolerance": target.tolerance, "channel": target.channel,
         "floor": target.floor, **changes}
    args = [f"{t['value']:g}"]
    if t["tolerance"] != 0.1:
        args.append(f"tolerance={t['tolerance']:g}")
    if t["channel"] != "max":
        args.append(f"channel={t['channel']!r}")
    if t["floor"] != 0.1:
        args.append(f"floor={t['floor']:g}")
    return f"Target.{'fraction' if target.is_fraction else 'adu'}({', '.join(args)})"


_COLOUR_NAMES = {"R": "red", "G": "green", "B": "blue"}


def measure_bias(data: np.ndarray, *, bayer: str | None = None,
                 central_fraction: float = 0.5) -> float:
    """The bias (offset) level from a bias or dark frame: the median of the central region
    (on the grid measure_level reads), over all channels (the offset is the same for every
    colour)."""
    region = central_region(data, central_fraction)
    step = sample_step(region)
    return robust_level(region[::step, ::step])


#: Relative row-to-row ripple above which a flat counts as banded (PWM flicker on a rolling
#: shutter). Pixel noise and response variations averaged along a row stay far below it.
BANDING_LIMIT = 0.005


def row_banding(data: np.ndarray, *, bias_adu: float, central_fraction: float = 0.5,
                bayer: str | None = None) -> float:
    """Ripple of the row medians of the central region, relative to the level above bias,
    after removing a smooth (quadratic) trend such as vignetting and the scatter pixel noise
    alone would give: PWM-dimmed panels band exposures that span too few flicker periods.

    On a colour frame (`bayer` given) rows alternate between two colour pairs, which is no
    banding: each of the four positions of the Bayer cell is judged on its own, and the largest
    ripple counts.

    Every row is read, but of each row at most BANDING_SAMPLE_COLUMNS columns (pairs of
    neighbours, for the pixel scatter), spread evenly across the region: the time it takes does
    not grow with the sensor's width."""
    region = central_region(data, central_fraction)
    if bayer:
        return max(_row_ripple(region[y::2, x::2], bias_adu) for y in (0, 1) for x in (0, 1))
    return _row_ripple(region, bias_adu)


def _row_ripple(plane: np.ndarray, bias_adu: float) -> float:
    height, width = plane.shape
    if width < 8:
        return 0.0
    # the columns read (all of a narrow plane), each with its right-hand neighbour
    cols = slice(None) if width <= BANDING_SAMPLE_COLUMNS else \
        np.unique(np.linspace(0, width - 2, BANDING_SAMPLE_COLUMNS).astype(np.intp))
    rows = np.median(plane[:, cols], axis=1) - bias_adu    # in the data's own type: no float copy
    level = float(np.median(rows))
    if rows.size < 8 or level <= 0:
        return 0.0
    y = np.arange(rows.size, dtype=np.float64)
    trend = np.polyval(np.polyfit(y, rows, 2), y)
    # pixel scatter from neighbours along a row (bands are constant along a row), from at most
    # BANDING_SAMPLE_COLUMNS rows: a statistic of the noise, which is the same everywhere
    some = plane[::max(1, height // BANDING_SAMPLE_COLUMNS)]
    if isinstance(cols, slice):
        diffs = np.diff(some.astype(np.float64), axis=1)
    else:
        diffs = some[:, cols + 1].astype(np.float64) - some[:, cols]
    sigma = 1.4826 * float(np.median(np.abs(diffs - np.median(diffs)))) / np.sqrt(2)
    n = width if isinstance(cols, slice) else cols.size
    noise = 1.2533 * sigma / np.sqrt(n)      # of a row median
    excess = float(np.var(rows - trend)) - (3 * noise) ** 2
    return float(np.sqrt(excess) / level) if excess > 0 else 0.0
