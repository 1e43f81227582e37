"""Precalibration of flats: what is subtracted from each flat before it is normalised.

Choices: none, a constant pedestal, a fixed bias/dark/dark-flat file, or the best match from
the library. The library match (`choose_precal`) is a pure function. A master is a candidate
only with the flats' camera configuration where both sides know a value
(`CameraConfig.agrees`; masters always know their size and binning). A dark flat or dark is a
candidate only when its exposure is the flats' within a tolerance (5 % by default): dark
current grows with exposure, and a 60 s dark subtracted from 2 s flats takes 58 s of dark
current (and its hot pixels) out of them. Among those, dark flat before dark, then the closest
temperature. Without one: on a CMOS sensor the bias; on a CCD sensor the bias plus the dark
current of the closest dark scaled by exposure, (dark - bias) x t_flat / t_dark, or the bias
alone. The choice carries its reason, which goes into the master's header and the library."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from indical.calib.config import CameraConfig
from indical.calib.library import MasterRecord
from indical.calib.rawio import open_raw
from indical.errors import FitsError
from indical.frame import FrameType

_TYPE_RANK = {FrameType.DARKFLAT: 0, FrameType.DARK: 1, FrameType.BIAS: 2}
DEFAULT_EXPOSURE_TOL = 0.05   # a dark's exposure may differ from the flats' by this fraction
SENSORS = ("cmos", "ccd")


@dataclass(frozen=True)
class PrecalSpec:
    """What to subtract from flats: kind is 'none', 'pedestal', 'file' or 'library'."""

    kind: str = "none"
    pedestal_adu: float = 0.0
    path: Path | None = None

    @classmethod
    def parse(cls, text: str) -> "PrecalSpec":
        """From the command line: none, pedestal:N, library, or a FITS file."""
        text = text.strip()
        if text in ("", "none"):
            return cls()
        if text == "library":
            return cls("library")
        if text.startswith("pedestal:"):
            try:
                value = float(text.split(":", 1)[1])
            except ValueError:
                raise ValueError(f"pedestal:N needs a number of ADU, got {text!r}") from None
            if not math.isfinite(value):
                raise ValueError(f"pedestal must be finite, got {text!r}")
            return cls("pedestal", pedestal_adu=value)
        return cls("file", path=Path(text))


@dataclass(frozen=True)
class PrecalTarget:
    """The flats a precalibration master is chosen for: their camera configuration (mean
    temperature) and mean exposure."""

    config: CameraConfig
    exposure_s: float


def _d_temp(m: MasterRecord, flats: PrecalTarget) -> float:
    mt, ft = m.config.temperature_c, flats.config.temperature_c
    return abs(mt - ft) if mt is not None and ft is not None else 0.0


def exposure_matches(dark_s: float, flat_s: float, tol: float = DEFAULT_EXPOSURE_TOL) -> bool:
    """A dark of `dark_s` may be subtracted from frames of `flat_s` as it is."""
    return abs(dark_s - flat_s) <= tol * max(flat_s, 0.0) + 1e-6


@dataclass(frozen=True)
class PrecalChoice:
    """What is subtracted from flats, chosen from the library, and why. `dark` alone: a dark
    flat or dark of the flats' exposure. `bias` alone: the bias. Both (CCD): the bias plus the
    dark's dark current scaled by `dark_scale` (flat exposure / dark exposure)."""

    bias: MasterRecord | None
    dark: MasterRecord | None
    dark_scale: float | None
    reason: str

    @property
    def description(self) -> str:
        """Short text for the PRECAL keyword and the library: what was subtracted."""
        parts = []
        if self.bias is not None:
            parts.append(f"master bias {Path(self.bias.path).name}")
        if self.dark is not None:
            scaled = f" x{self.dark_scale:.4g} (dark current)" if self.dark_scale is not None else ""
            parts.append(f"master {self.dark.frame_type.value} {Path(self.dark.path).name}"
                         f"{scaled}")
        return " + ".join(parts)

    def image(self, load: Callable[[Path], np.ndarray] | None = None) -> np.ndarray:
        """The image to subtract, in ADU."""
        load = load or load_precal_image
        if self.bias is None:
            return load(Path(self.dark.path))
        bias = load(Path(self.bias.path))
        if self.dark is None:
            return bias
        dark = load(Path(self.dark.path))
        if dark.shape != bias.shape:
            raise FitsError(self.dark.path, f"is {dark.shape[1]}x{dark.shape[0]} but the bias "
                                            f"{Path(self.bias.path).name} is "
                                            f"{bias.shape[1]}x{bias.shape[0]}")
        return bias + (dark - bias) * np.float32(self.dark_scale)


def choose_precal(candidates: Sequence[MasterRecord], flats: PrecalTarget, *,
                  sensor: str = "cmos",
                  exposure_tol: float = DEFAULT_EXPOSURE_TOL) -> PrecalChoice | None:
    """What to subtract from these flats, with the reason; None when the library has nothing
    compatible."""
    if sensor not in SENSORS:
        raise ValueError(f"sensor must be one of {', '.join(SENSORS)}, got {sensor!r}")
    if not exposure_tol >= 0:
        raise ValueError(f"exposure tolerance must be 0 or more, got {exposure_tol}")
    usable = [m for m in candidates
              if m.frame_type in _TYPE_RANK and m.config.agrees(flats.config)]
    darks = [m for m in usable if m.frame_type in (FrameType.DARK, FrameType.DARKFLAT)]
    matching = [m for m in darks if exposure_matches(m.exposure_s, flats.exposure_s, exposure_tol)]
    tol_text = f"{exposure_tol * 100:g} %"
    if matching:
        best = min(matching, key=lambda m: (_TYPE_RANK[m.frame_type], _d_temp(m, flats),
                                            abs(m.exposure_s - flats.exposure_s), -(m.id or 0)))
        kind = "dark flat" if best.frame_type is FrameType.DARKFLAT else "dark"
        return PrecalChoice(None, best, None, f"{kind} of {best.exposure_s:g} s matches the "
                                              f"flats' {flats.exposure_s:g} s (within {tol_text})")
    others = sorted({m.exposure_s for m in darks})
    no_dark = (f"no dark flat or dark of {flats.exposure_s:g} s (within {tol_text})"
               + (f"; the library has {', '.join(f'{t:g} s' for t in others)}" if others else ""))
    biases = [m for m in usable if m.frame_type is FrameType.BIAS]
    bias = min(biases, key=lambda m: (_d_temp(m, flats), -(m.id or 0)), default=None)
    if bias is None:
        return None
    if sensor == "ccd":
        scalable = [m for m in darks if m.exposure_s > 0]
        dark = min(scalable, key=lambda m: (_d_temp(m, flats), _TYPE_RANK[m.frame_type],
                                            abs(m.exposure_s - flats.exposure_s), -(m.id or 0)),
                   default=None)
        if dark is not None:
            scale = flats.exposure_s / dark.exposure_s
            return PrecalChoice(bias, dark, scale,
                                f"{no_dark}; CCD: bias plus the {dark.exposure_s:g} s dark's "
                                f"dark current scaled x{scale:.4g}")
        return PrecalChoice(bias, None, None, f"{no_dark}; CCD without a dark to scale: bias")
    return PrecalChoice(bias, None, None, f"{no_dark}; CMOS: bias")


def best_match(candidates: Sequence[MasterRecord], flats: PrecalTarget, *,
               exposure_tol: float = DEFAULT_EXPOSURE_TOL) -> MasterRecord | None:
    """The one master `choose_precal` subtracts for a CMOS sensor, or None."""
    choice = choose_precal(candidates, flats, exposure_tol=exposure_tol)
    return None if choice is None else (choice.dark or choice.bias)


def load_precal_image(path: Path) -> np.ndarray:
    """A bias, dark or dark-flat master (or single frame) as float32 ADU."""
    with open_raw(path) as image:
        out = np.empty((image.height, image.width), dtype=np.float32)
        image.rows(0, image.height, np.dtype(np.float32), out)
    if not np.all(np.isfinite(out)):
        raise FitsError(path, "precalibration image has NaN or infinite pixels")
    return out
