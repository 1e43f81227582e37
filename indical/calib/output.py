"""Writing a calibrated light: float32 pixels (or integers at the camera's bit depth), the
light's own header, HISTORY lines naming each master used and when it was made, and a FLAGS
extension when any pixel is flagged. Written atomically next to, never over, the light."""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from indical import __version__
from indical.calib.apply import CalibratedLight, scale_to_bit_depth
from indical.calib.flags import flag_keywords
from indical.calib.ingest import CALIBRATED_KEY
from indical.calib.match import MasterInfo, MasterKind
from indical.errors import FitsError
from indical.fits.io import write_atomic

_DROP = ("BZERO", "BSCALE", "BLANK", "CHECKSUM", "DATASUM", "DATAMIN", "DATAMAX")
_VERB = {MasterKind.BIAS: "subtracted", MasterKind.DARK: "subtracted",
         MasterKind.FLAT: "divided by", MasterKind.BPM: "flagged with"}
_KEY = {MasterKind.BIAS: "CALBIAS", MasterKind.DARK: "CALDARK", MasterKind.FLAT: "CALFLAT",
        MasterKind.BPM: "CALBPM"}


def output_path(light: Path, out_dir: Path | None) -> Path:
    """OUT_DIR/NAME_cal.fits, or LIGHT_FOLDER/calibrated/NAME_cal.fits without -o."""
    light = Path(light)
    name = light.name
    for suffix in (".fits.fz", ".fit.fz", ".fits.gz", ".fit.gz", ".fits", ".fit", ".fts", ".fz"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    folder = Path(out_dir) if out_dir is not None else light.parent / "calibrated"
    out = folder / f"{name}_cal.fits"
    if out.resolve() == light.resolve():
        raise FitsError(light, "the output would overwrite the light itself; choose another -o")
    return out


def _utc(t: datetime) -> str:
    t = t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def calibrated_header(light_header: fits.Header, used: list[MasterInfo], *, dark_scaled: bool,
                      light_exposure_s: float, warnings: list[str], now: datetime) -> fits.Header:
    """The light's header without integer scaling keywords, plus provenance."""
    h = fits.Header()
    for card in light_header.cards:
        if card.keyword in _DROP or card.keyword in ("SIMPLE", "BITPIX", "EXTEND") \
                or card.keyword.startswith("NAXIS"):
            continue
        h.append(card, end=True)
    h[CALIBRATED_KEY] = (_utc(now), f"calibrated by indical {__version__}")
    for m in used:
        name = m.path.name  # longer than 68 characters: astropy continues it (CONTINUE cards)
        h[_KEY[m.kind]] = (name, f"master {m.kind.value} used") if len(name) <= 45 else name
        created = m.created if m.created.tzinfo else m.created.replace(tzinfo=timezone.utc)
        detail = f"made {created.astimezone(timezone.utc).strftime('%Y-%m-%d %H:%M')}"
        if m.kind is MasterKind.DARK and m.exposure_s is not None:
            detail += f", {m.exposure_s:g} s"
            if dark_scaled:
                detail += f", dark current scaled x{light_exposure_s / m.exposure_s:.4g}"
        if m.config.temperature_c is not None and m.kind is not MasterKind.FLAT:
            detail += f", {m.config.temperature_c:.1f} C"
        if m.kind is MasterKind.FLAT and m.filter:
            detail += f", filter {m.filter}"
        if m.kind is MasterKind.FLAT and m.source is not None:
            detail += f", {m.source_name}s"   # what lit the flats: panel or twilight sky
        h.add_history(f"indical: {_VERB[m.kind]} master {m.kind.value} ({detail})")
        h.add_history(f"  {m.path.name}")  # the file on a line of its own: names run long
    for w in warnings:
        h.add_history(f"indical warning: {w}")
    return h


def write_calibrated(path: Path, result: CalibratedLight, header: fits.Header, *,
                     bit_depth: int | None = None, scale: float = 1.0,
                     sync: bool = False) -> Path:
    """Write to a temporary file in the same folder and rename it over `path`, so no reader ever
    sees half a file. `sync` also flushes it to disk first. With bit_depth, pixels are rounded
    and clipped to 0..2^bits-1."""
    data = result.data if bit_depth is None else scale_to_bit_depth(result.data, bit_depth, scale)
    h = header.copy()
    if bit_depth is not None:
        h["BITDEPTH"] = (bit_depth, "Bits per pixel the camera delivers")
        if scale != 1.0:
            h.add_history(f"indical: divided by {scale:g} (the camera stores {bit_depth} bits "
                          f"shifted to the top of 16)")
        h.add_history(f"indical: rounded and clipped to 0..{2 ** bit_depth - 1} ({bit_depth}-bit)")
    hdus = [fits.PrimaryHDU(data=data, header=h)]
    if result.flags is not None:
        flags = fits.ImageHDU(data=result.flags, name="FLAGS")
        for keyword, meaning in flag_keywords():
            flags.header[keyword] = meaning
        hdus.append(flags)
    hdul = fits.HDUList(hdus)
    # Without sync the file is renamed into place but not flushed to disk (decision 007).
    return write_atomic(hdul, path, overwrite=True, fsync=sync)


def output_complete(path: Path) -> bool:
    """True when `path` is a whole FITS file (a multiple of 2880 bytes, its header readable)."""
    try:
        size = Path(path).stat().st_size
        return size > 0 and size % 2880 == 0 and is_calibrated_output(fits.getheader(path))
    except (OSError, ValueError):
        return False


def is_calibrated_output(header: fits.Header) -> bool:
    return CALIBRATED_KEY in header


def master_pixels(path: Path) -> np.ndarray:
    """A master's pixels as float32, naming the file when it can't be read."""
    if not Path(path).exists():
        raise FitsError(path, "master file is gone (moved or deleted); rebuild it (indical "
                              "library sweep) or remove it from the library")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)  # the error below says it all
            with fits.open(path, memmap=False) as hdul:
                hdu = next((h for h in hdul if h.data is not None and h.data.ndim == 2), None)
                if hdu is None:
                    raise FitsError(path, "master has no 2-D image")
                return np.asarray(hdu.data, dtype=np.float32)
    except FitsError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise FitsError(path, f"master can't be read ({exc}); rebuild it or remove it from the "
                              f"library") from exc
