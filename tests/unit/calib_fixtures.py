"""A small calibration library on disk with known masters, for pipeline and command tests."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from astropy.io import fits

from calib_synthetic import Scene, make_scene
from indical.calib.config import CameraConfig
from indical.calib.library import CalibrationLibrary, MasterRecord
from indical.fits.io import write_frame
from indical.frame import Binning, Frame, FrameMeta, FrameType

CAMERA = "Sim Cam"
T0 = datetime(2026, 3, 20, 21, 0, tzinfo=timezone.utc)


def light_meta(**changes) -> FrameMeta:
    base = dict(frame_type=FrameType.LIGHT, exposure_s=30.0, camera=CAMERA, gain=100.0,
                offset=10.0, sensor_temp_c=-10.0, setpoint_temp_c=-10.0, filter="L", start=T0,
                bit_depth=16)
    base.update(changes)
    return FrameMeta(**base)


def write_light(folder: Path, name: str, scene: Scene, rng, **changes) -> Path:
    meta = light_meta(**changes)
    return write_frame(Frame(scene.light(meta.exposure_s, rng), meta), folder / name)


def add_master(lib: CalibrationLibrary, kind: FrameType, data: np.ndarray, *, name: str,
               created: datetime, exposure_s: float = 0.0, filter: str | None = None,
               gain: float = 100.0, temperature_c: float | None = -10.0,
               header: dict | None = None, width: int | None = None,
               height: int | None = None, sources: list[int] = ()) -> MasterRecord:
    path = lib.masters_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    h = fits.Header()
    h["IMAGETYP"] = f"Master {kind.value}"
    for k, v in (header or {}).items():
        h[k] = v
    fits.writeto(path, np.asarray(data, dtype=np.float32), h)
    key = json.dumps([kind.value, CAMERA, gain, filter, exposure_s])
    config = CameraConfig(camera=CAMERA, readout_mode=None, gain=gain, offset=10.0,
                          binning=Binning(1, 1), width=width or data.shape[1],
                          height=height or data.shape[0], temperature_c=temperature_c)
    rec = MasterRecord(path=str(path), frame_type=kind, config=config, filter=filter,
                       exposure_s=exposure_s, group_key=key, method="mean", n_frames=10, created_at=created)
    return lib.add_master(rec, list(sources))


def standard_library(root: Path, scene: Scene | None = None, *, target=None):
    """A library with: dark 30 s -10 C, flat L (the right ones) and decoys: dark at gain 200,
    dark 30 s at +5 C, flat R, an older superseded dark. `target`: its database (default
    root/library.sqlite); its files go under root."""
    scene = scene or make_scene(shape=(60, 80))
    lib = CalibrationLibrary(target or root / "library.sqlite", root=root)
    now = datetime.now(timezone.utc)
    dark = scene.bias + scene.dark_rate * 30.0
    add_master(lib, FrameType.DARK, dark + 40, name="dark_old.fits", exposure_s=30.0,
               created=now - timedelta(days=5))
    masters = {
        "dark": add_master(lib, FrameType.DARK, dark, name="dark_30s.fits", exposure_s=30.0,
                           created=now - timedelta(days=1)),
        "flat": add_master(lib, FrameType.FLAT, scene.flat, name="flat_L.fits", filter="L",
                           created=now - timedelta(days=1), temperature_c=None),
    }
    add_master(lib, FrameType.DARK, dark * 3, name="dark_g200.fits", exposure_s=30.0,
               gain=200.0, created=now)
    add_master(lib, FrameType.DARK, dark * 2, name="dark_warm.fits", exposure_s=30.0,
               temperature_c=5.0, created=now)
    add_master(lib, FrameType.FLAT, scene.flat[::-1], name="flat_R.fits", filter="R",
               created=now, temperature_c=None)
    return lib, scene, masters
