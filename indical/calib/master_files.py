"""Master files from anywhere: what a FITS master is, which program made it, and its scale.

indical's own masters say so (IMAGETYP 'Master Flat', CREATOR 'indical ...'). Others differ:
Siril's stacks carry STACKCNT and PROGRAM 'Siril ...' and often no IMAGETYP (Siril drops it when
its inputs had none), with 16-bit data scaled to 0..1; PixInsight/WBPP writes 'Master Flat' or
'MasterFlat' and HISTORY lines of ImageIntegration, also in 0..1; N.I.N.A. ('MASTERDARK',
SWCREATE 'N.I.N.A.'); ccdproc keeps the first frame's IMAGETYP and adds NCOMBINE (and BUNIT).
`read_master_file` recognises them, finds the kind (from IMAGETYP, else the file name), and
the factor that brings bias and dark values to ADU (65535 for data in 0..1). Flats need no
factor: they are divided by their mean when applied."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from indical.calib.config import CameraConfig
from indical.calib.match import MasterInfo, MasterKind
from indical.calib.output import master_pixels
from indical.calib.provenance import combines_frames, program_of
from indical.errors import FitsError
from indical.fits.keywords import header_frame_type, header_to_meta
from indical.frame import FrameMeta, FrameType

#: 16-bit data scaled to 0..1 by Siril and PixInsight: value * 65535 is the ADU.
UNIT_SCALE = 65535.0

_KIND_OF_TYPE = {FrameType.BIAS: MasterKind.BIAS, FrameType.DARK: MasterKind.DARK,
                 FrameType.DARKFLAT: MasterKind.DARKFLAT, FrameType.FLAT: MasterKind.FLAT}
TYPE_OF_KIND = {v: k for k, v in _KIND_OF_TYPE.items()}
# file-name words, most specific first (Siril: bias_stacked.fits, pp_flat_stacked.fits)
_NAME_HINTS = [(re.compile(r"dark[-_ ]?flat|flat[-_ ]?dark"), MasterKind.DARKFLAT),
               (re.compile(r"bias|offset|zero"), MasterKind.BIAS),
               (re.compile(r"dark"), MasterKind.DARK),
               (re.compile(r"flat"), MasterKind.FLAT)]


@dataclass(frozen=True)
class MasterFile:
    """A master file as indical uses it: kind, who made it, how to scale it, its configuration."""

    path: Path
    kind: MasterKind
    program: str
    scale: float          # pixels * scale = ADU (bias, darks); 1.0 for flats
    meta: FrameMeta
    width: int
    height: int
    n_frames: int
    is_master: bool       # the header says it combines frames (else: a single frame given)
    float_data: bool      # stored as floating point (raw frames from cameras are integers)

    def pixels(self) -> np.ndarray:
        data = master_pixels(self.path)
        if self.scale != 1.0:
            data = data * np.float32(self.scale)
        return data

    @property
    def config(self) -> CameraConfig:
        return CameraConfig.from_meta(self.meta, self.width, self.height)

    def info(self, master_id: int) -> MasterInfo:
        m = self.meta
        created = m.end or m.start or datetime.fromtimestamp(self.path.stat().st_mtime,
                                                               timezone.utc)
        return MasterInfo(
            id=master_id, kind=self.kind, path=self.path, config=self.config, created=created,
            filter=m.filter,
            exposure_s=m.exposure_s if self.kind in (MasterKind.DARK, MasterKind.DARKFLAT)
            else None, n_frames=self.n_frames,
            flat_source=m.flat_source if self.kind is MasterKind.FLAT else None,
            extra={"program": self.program, "scale": self.scale})


def _kind(header, path: Path, given: MasterKind | None) -> MasterKind:
    frame_type = header_frame_type(header)
    if frame_type in _KIND_OF_TYPE:
        found = _KIND_OF_TYPE[frame_type]
        if given is not None and found is not given:
            raise FitsError(path, f"the header says {found.value} (IMAGETYP "
                                  f"{header.get('IMAGETYP')!r}), not {given.value}")
        return found
    if frame_type is not None:
        raise FitsError(path, f"is a {frame_type.value} (IMAGETYP {header.get('IMAGETYP')!r}), "
                              "not a bias, dark, dark flat or flat master")
    if given is not None:
        return given
    name = path.name.lower()
    for pattern, kind in _NAME_HINTS:
        if pattern.search(name):
            return kind
    raise FitsError(path, "can't tell what kind of master this is (no IMAGETYP, and the name "
                          "says neither bias, dark nor flat); give --type")


def read_master_file(path: Path, kind: MasterKind | None = None) -> MasterFile:
    """Recognise one master file (FitsError naming it when it can't be used)."""
    from indical.calib.rawio import open_raw
    path = Path(path)
    if not path.is_file():
        raise FitsError(path, "no such file")
    with open_raw(path) as image:
        header = image.header
        width, height = image.width, image.height
        float_data = image.raw.dtype.kind == "f"
        if float_data:
            sample = np.asarray(image.raw[::4, ::4], dtype=np.float64)
            finite = sample[np.isfinite(sample)]
            top = float(finite.max()) if finite.size else float("nan")
        else:
            top = float("nan")
    if header.get("CALIBRAT") is not None:
        raise FitsError(path, "is a calibrated light (written by indical calibrate), not a master")
    the_kind = _kind(header, path, kind)
    try:
        meta = header_to_meta(header, frame_type=TYPE_OF_KIND[the_kind])
    except ValueError as exc:
        raise FitsError(path, f"unusable header: {exc}") from exc
    if not np.isfinite(meta.exposure_s) or meta.exposure_s < 0:
        raise FitsError(path, f"exposure {meta.exposure_s} s is not a usable exposure")
    scale = 1.0
    if the_kind is not MasterKind.FLAT and float_data and np.isfinite(top) and top <= 1.0:
        scale = UNIT_SCALE    # 0..1 data (Siril, PixInsight): back to ADU
    n = 0
    for key in ("NCOMBINE", "STACKCNT"):
        try:
            n = max(n, int(header.get(key, 0)))
        except (TypeError, ValueError):
            pass
    program = program_of(header)
    if program == "unknown" and float_data and "BUNIT" in header:
        program = "astropy/ccdproc"   # CCDData.write: float data with BUNIT, nothing else
    return MasterFile(path=path, kind=the_kind, program=program, scale=scale,
                      meta=meta, width=width, height=height, n_frames=n,
                      is_master=combines_frames(header), float_data=float_data)
