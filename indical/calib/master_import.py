"""`indical library import`: masters made elsewhere (indical master -o, Siril, PixInsight/WBPP,
N.I.N.A., ccdproc) added to the library, to be matched like indical's own.

Each file is recognised (`master_files.read_master_file`), brought to indical's conventions and
copied into the library's masters folder: float32, bias and darks in ADU (0..1 data times
65535), flats with mean 1.0, IMAGETYP 'Master ...'; the original header is kept, with IMPORTED
(the file it came from), IMPPROG (the program), IMPSCALE (the factor applied) and IMPSHA (the
original's SHA-256, so importing the same file again is harmless). The copy is complete before
the library refers to it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from indical.calib.library import CalibrationLibrary, MasterRecord
from indical.calib.master import FLAT_BUNIT, MASTER_IMAGETYP
from indical.calib.master_files import TYPE_OF_KIND, MasterFile, read_master_file
from indical.calib.match import MasterKind
from indical.errors import FitsError
from indical.filenames import path_inside, safe_name
from indical.frame import FrameType

_DROP = ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "BZERO", "BSCALE", "BLANK",
         "DATAMIN", "DATAMAX", "CHECKSUM", "DATASUM")


@dataclass(frozen=True)
class Imported:
    source: Path
    master: MasterRecord | None   # None: already in the library
    program: str
    scale: float


def _sha256(path: Path) -> str:
    from indical.calib.ingest import file_sha256
    return file_sha256(path)


def known_shas(library: CalibrationLibrary) -> dict[str, str]:
    from indical.fits.header import read_primary_header
    known = {}
    for m in library.masters(include_superseded=True):
        try:
            sha = read_primary_header(m.path).get("IMPSHA")
        except (OSError, ValueError):
            continue
        if sha:
            known[str(sha)] = m.path
    return known


def group_key(mf: MasterFile) -> str:
    """The same configuration text indical's own masters get from the default grouping, so an
    imported master supersedes (or is superseded by) one of the same configuration."""
    from indical.calib.autobuild import group_key_json
    from indical.calib.grouping import ConfigKey
    m = mf.meta
    kind = TYPE_OF_KIND[mf.kind]
    return group_key_json(ConfigKey(
        frame_type=kind, config=mf.config.key(),
        filter=(m.filter or "") if kind is FrameType.FLAT else None,
        exposure_s=m.exposure_s if kind in (FrameType.DARK, FrameType.DARKFLAT) else None))


def _normalised(mf: MasterFile) -> np.ndarray:
    data = mf.pixels()
    if mf.kind is MasterKind.FLAT:
        finite = np.isfinite(data)
        mean = float(np.mean(data[finite], dtype=np.float64)) if finite.any() else float("nan")
        if not (np.isfinite(mean) and mean > 0):
            raise FitsError(mf.path, f"flat has no positive level (mean {mean:g}); can't be used")
        data = data / np.float32(mean)
    return np.ascontiguousarray(data, dtype=np.float32)


def import_master(library: CalibrationLibrary, path: Path, *, kind: MasterKind | None = None,
                  known: dict[str, str] | None = None) -> Imported:
    """Import one master file (FitsError naming it when it can't be used)."""
    from indical.atomic import atomic_file
    from indical.fits.header import Card, Header, write_image
    from indical.calib.rawio import open_raw
    path = Path(path)
    mf = read_master_file(path, kind)
    if not (mf.is_master or mf.float_data) and kind is None:
        raise FitsError(path, "integer data that does not say it combines frames (no IMAGETYP "
                              "'Master ...', STACKCNT or NCOMBINE): a raw frame? Index raw "
                              "frames with `indical library ingest`; a master: give --type")
    sha = _sha256(path)
    known = known_shas(library) if known is None else known
    if sha in known:
        return Imported(path, None, mf.program, mf.scale)
    data = _normalised(mf)
    with open_raw(path) as image:
        original = image.header
    header = Header([c for c in original.cards if c.keyword not in _DROP
                     and not c.keyword.startswith("NAXIS")])
    frame_type = TYPE_OF_KIND[mf.kind]
    header["IMAGETYP"] = (MASTER_IMAGETYP[frame_type], "Type of image (imported)")
    header["BUNIT"] = (FLAT_BUNIT, "Pixel unit: a flat normalised to mean 1") \
        if mf.kind is MasterKind.FLAT else ("adu", "Pixel unit")
    header.append(Card("IMPPROG", mf.program[:68], "Program that made this master"))
    header.append(Card("IMPSCALE", float(mf.scale), "Values multiplied by this on import"))
    header.append(Card("IMPSHA", sha, "SHA-256 of the imported file"))
    header["IMPORTED"] = str(path.resolve())
    header.add_history(f"imported by indical from {path.resolve()} ({mf.program})")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    library.masters_dir.mkdir(parents=True, exist_ok=True)
    name = f"imported_{mf.kind.value}_{safe_name(path.name.split('.')[0])}_{stamp}.fits"
    target = path_inside(library.masters_dir, name)
    with atomic_file(target) as fh:
        write_image(fh, data, header)
    m = mf.meta
    record = MasterRecord(
        path=str(target.resolve()), frame_type=frame_type, config=mf.config,
        filter=m.filter if frame_type is FrameType.FLAT else None,
        exposure_s=m.exposure_s, group_key=group_key(mf),
        method=f"imported from {mf.program}"[:60],
        parameters={"source": str(path.resolve()), "scale": mf.scale},
        precal="as made by " + mf.program, n_frames=mf.n_frames)
    try:
        stored = library.add_master(record, [])
    except BaseException:
        target.unlink(missing_ok=True)   # never a file the library does not know
        raise
    known[sha] = stored.path
    return Imported(path, stored, mf.program, mf.scale)

