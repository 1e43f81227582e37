"""A camera configuration: the settings that make a master usable for a frame.

One value type for what grouping keys, needs, matching, library rows and precalibration all
compare: camera, readout mode, gain, offset, binning, image size, the Bayer pattern at pixel (0, 0)
(None: mono) and sensor temperature. Filter
and exposure are not part of it: what they mean depends on the frame type (a flat's filter, a
CMOS dark's exposure, a CCD dark scaled to any exposure), so each of those types says it itself.

A field added here (a Bayer pattern, a flat source) is compared, stored in a column of the same
name, read back and written to JSON without further changes; `from_meta` says where a frame's
value comes from, and the library needs a migration adding the column (indical/calib/db.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from indical.frame import Binning, FrameMeta

# Compared within a tolerance by the rules that use them, not for equality.
_TOLERANT = ("temperature_c",)


@dataclass(frozen=True)
class CameraConfig:
    """How a frame was taken, as far as calibration cares. None: unknown, or not part of this
    key (e.g. the size when grouping ignores it); width and height are in binned pixels."""

    camera: str = ""
    readout_mode: str | None = None
    gain: float | None = None
    offset: float | None = None
    binning: Binning = Binning()
    width: int | None = None
    height: int | None = None
    temperature_c: float | None = None
    bayer_pattern: str | None = None   # at pixel (0, 0), offsets applied; None: mono

    @classmethod
    def from_meta(cls, meta: FrameMeta, width: int | None = None,
                  height: int | None = None) -> "CameraConfig":
        """A frame's configuration: its temperature is the sensor's, else the set point."""
        temp = meta.sensor_temp_c if meta.sensor_temp_c is not None else meta.setpoint_temp_c
        try:
            bayer = meta.effective_bayer
        except ValueError:   # an unknown pattern: compared as written
            bayer = meta.bayer_pattern
        return cls(camera=meta.camera, readout_mode=meta.readout_mode, gain=meta.gain,
                   offset=meta.offset, binning=meta.binning, width=width, height=height,
                   temperature_c=temp, bayer_pattern=bayer)

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    def key(self) -> "CameraConfig":
        """The part compared for equality (the temperature is matched within a tolerance)."""
        return dataclasses.replace(self, **{name: None for name in _TOLERANT})

    def mismatch(self, wanted: "CameraConfig") -> str | None:
        """Why this configuration is not `wanted` (temperature aside), or None when it is.
        Numbers within 1e-6 are equal; None equals only None."""
        for name in self._exact_fields():
            if name == "height":
                continue
            if name == "width":
                if (self.width, self.height) != (wanted.width, wanted.height):
                    return f"size {self.size} is not {wanted.size}"
                continue
            mine, theirs = getattr(self, name), getattr(wanted, name)
            if name == "bayer_pattern":
                if mine != theirs:
                    return bayer_mismatch(mine, theirs)
                continue
            if not _same(mine, theirs):
                shown = (str(mine), str(theirs)) if name == "binning" else (repr(mine), repr(theirs))
                return f"{name} {shown[0]} is not {shown[1]}"
        return None

    def agrees(self, other: "CameraConfig") -> bool:
        """Equal wherever both sides know the value (None or '' is unknown), temperature aside:
        what a precalibration frame needs to share with the flats it is subtracted from."""
        for name in self._exact_fields():
            a, b = getattr(self, name), getattr(other, name)
            if a is None or b is None or a == "" or b == "":
                continue
            if a != b:
                return False
        return True

    def _exact_fields(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if f.name not in _TOLERANT]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (binning as '2x2'), one per field."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def columns(self) -> dict[str, Any]:
        """SQL column values: one column per field, named as the field; binning is xbin, ybin."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "binning":
                out["xbin"], out["ybin"] = value.x, value.y
            else:
                out[f.name] = value
        return out

    def key_columns(self) -> dict[str, Any]:
        """The columns compared for equality (`columns` without the temperature)."""
        return {k: v for k, v in self.columns().items() if k not in _TOLERANT}

    @classmethod
    def from_columns(cls, row: dict[str, Any]) -> "CameraConfig":
        """The inverse of `columns` (a row as a mapping; other columns are ignored)."""
        values = {f.name: row[f.name] for f in dataclasses.fields(cls)
                  if f.name != "binning" and f.name in row}
        return cls(binning=Binning(row["xbin"], row["ybin"]), **values)


def bayer_mismatch(mine: str | None, theirs: str | None) -> str:
    """Why a frame with Bayer pattern `mine` at its pixel (0, 0) can't serve one with `theirs`."""
    def show(p: str | None) -> str:
        return "mono" if p is None else f"colour ({p} at pixel 0,0)"
    if mine is None or theirs is None:
        return (f"{show(mine)} is not {show(theirs)}: a mono master never calibrates a colour "
                f"light, nor a colour master a mono one")
    return (f"Bayer phase {mine} is not {theirs} at pixel 0,0 (BAYERPAT shifted by XBAYROFF/"
            f"YBAYROFF or an odd region offset): each pixel would be divided by another "
            f"colour's flat; take the masters with the lights' region and offsets")


def column_names() -> tuple[str, ...]:
    """The SQL columns a CameraConfig is stored in, in field order."""
    return tuple(CameraConfig().columns())


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Binning) else value


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) < 1e-6
    return a == b
