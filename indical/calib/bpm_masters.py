"""Bad pixel maps as masters: built from the library's current master dark and flat of each
camera configuration, written beside the other masters and recorded so calibration finds them
by matching like any master (the camera configuration, temperature aside)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from astropy.io import fits

from indical.calib.bpm import BadPixelOptions, build_bad_pixel_map
from indical.calib.config import CameraConfig
from indical.calib.flags import BAD_PIXEL, PixelFlag, flag_keywords
from indical.calib.match import MasterInfo, MasterKind
from indical.calib.output import master_pixels
from indical.filenames import path_inside, safe_name
from indical.fits.io import write_atomic
from indical.frame import FrameType


@dataclass(frozen=True)
class BuiltMap:
    info: MasterInfo
    hot: int
    cold: int
    dead: int
    dark: str | None
    flat: str | None


def build_bad_pixel_maps(library, store, options: BadPixelOptions = BadPixelOptions(),
                         now: datetime | None = None) -> list[BuiltMap]:
    """One map per camera configuration that has a current master dark or flat: hot pixels from
    the longest dark (they stand out most there), cold and dead from the newest flat."""
    now = now or datetime.now(timezone.utc)
    darks: dict[CameraConfig, object] = {}
    flats: dict[CameraConfig, object] = {}
    for m in library.masters():
        key = m.config.key()
        if m.frame_type is FrameType.DARK:
            if key not in darks or m.exposure_s > darks[key].exposure_s:
                darks[key] = m
        elif m.frame_type is FrameType.FLAT:
            if key not in flats or m.created_at > flats[key].created_at:
                flats[key] = m
    built: list[BuiltMap] = []
    for key in sorted(set(darks) | set(flats), key=str):
        dark, flat = darks.get(key), flats.get(key)
        bpm = build_bad_pixel_map(master_pixels(Path(dark.path)) if dark else None,
                                  master_pixels(Path(flat.path)) if flat else None, options,
                                  bayer=key.bayer_pattern)
        camera, mode, gain, offset, binning = (key.camera, key.readout_mode, key.gain,
                                               key.offset, key.binning)
        counts = tuple(int(np.count_nonzero(bpm & np.uint8(flag)))
                       for flag in (PixelFlag.HOT, PixelFlag.COLD, PixelFlag.DEAD))
        header = fits.Header()
        header["IMAGETYP"] = ("Bad Pixel Map", "bits: 1 hot, 2 cold, 4 dead")
        for keyword, meaning in flag_keywords(BAD_PIXEL):
            header[keyword] = meaning
        header["INSTRUME"] = camera
        if gain is not None:
            header["GAIN"] = gain
        if offset is not None:
            header["OFFSET"] = offset
        header["XBINNING"], header["YBINNING"] = binning.x, binning.y
        if mode:
            header["READOUTM"] = mode
        if key.bayer_pattern is not None:   # the phase of the masters, offsets applied
            header["BAYERPAT"] = (key.bayer_pattern, "Bayer pattern; hot/cold judged per channel")
            header["XBAYROFF"], header["YBAYROFF"] = 0, 0
        header["NHOT"], header["NCOLD"], header["NDEAD"] = counts
        header["HOTSIG"] = (options.hot_sigma, "hot: dark above median + HOTSIG sigma")
        header["COLDFRAC"] = (options.cold_fraction, "cold: flat below COLDFRAC x local level")
        header["DEADFRAC"] = (options.dead_fraction, "dead: flat below DEADFRAC x local level")
        for label, m in (("dark", dark), ("flat", flat)):
            if m is not None:
                header.add_history(f"indical: {label} {Path(m.path).name}")
        parts = [safe_name(camera), str(binning), f"g{gain}", f"o{offset}"] + (
            [safe_name(mode)] if mode else []) + (
            [key.bayer_pattern] if key.bayer_pattern else [])
        stem = f"bpm_{'_'.join(parts)}_{now.strftime('%Y%m%dT%H%M%S')}"
        hdul = fits.HDUList([fits.PrimaryHDU(bpm, header)])
        for n in range(1, 1000):  # never replace a map the library may already point at
            path = path_inside(library.masters_dir,
                               f"{stem}.fits" if n == 1 else f"{stem}_{n}.fits")
            try:
                write_atomic(hdul, path)
                break
            except FileExistsError:
                continue
        info = MasterInfo(id=0, kind=MasterKind.BPM, path=path, config=key, created=now)
        info = store.add_bad_pixel_map(info, dark_master_id=dark.id if dark else None,
                                       flat_master_id=flat.id if flat else None, counts=counts)
        built.append(BuiltMap(info, *counts, dark=dark.path if dark else None,
                              flat=flat.path if flat else None))
    return built
