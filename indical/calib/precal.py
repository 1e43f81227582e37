"""Precalibration of flats: what is subtracted from each flat before it is normalised.

Choices: none, a constant pedestal, a fixed bias/dark/dark-flat file, or the best match from
the library. The library match is a pure function: the same camera configuration where both
sides know a value (`CameraConfig.agrees`; masters always know their size and binning); then
dark flat before dark before bias; then the smallest 3 |d exposure| + |d temperature| (bias:
temperature only)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from indical.calib.config import CameraConfig
from indical.calib.library import MasterRecord
from indical.calib.rawio import open_raw
from indical.errors import FitsError
from indical.frame import FrameType

_TYPE_RANK = {FrameType.DARKFLAT: 0, FrameType.DARK: 1, FrameType.BIAS: 2}


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


def best_match(candidates: Sequence[MasterRecord], flats: PrecalTarget) -> MasterRecord | None:
    """The master to subtract from these flats, or None."""
    usable = [m for m in candidates
              if m.frame_type in _TYPE_RANK and m.config.agrees(flats.config)]

    def score(m: MasterRecord) -> tuple:
        mt, ft = m.config.temperature_c, flats.config.temperature_c
        d_temp = abs(mt - ft) if mt is not None and ft is not None else 0.0
        d_exp = 0.0 if m.frame_type is FrameType.BIAS else abs(m.exposure_s - flats.exposure_s)
        return (_TYPE_RANK[m.frame_type], 3.0 * d_exp + d_temp, -(m.id or 0))

    return min(usable, key=score, default=None)


def load_precal_image(path: Path) -> np.ndarray:
    """A bias, dark or dark-flat master (or single frame) as float32 ADU."""
    with open_raw(path) as image:
        out = np.empty((image.height, image.width), dtype=np.float32)
        image.rows(0, image.height, np.dtype(np.float32), out)
    if not np.all(np.isfinite(out)):
        raise FitsError(path, "precalibration image has NaN or infinite pixels")
    return out
