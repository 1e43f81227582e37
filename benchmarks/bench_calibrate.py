"""Throughput of `indical calibrate` beside plain astropy read + write of the same files.

Writes N uint16 lights (BZERO 32768) of 3264 x 2448 (8 megapixels) and a master dark and flat
into a temporary library, then in the same run times:
  - baseline A: astropy read of each light and write of its pixels as they are (uint16);
  - baseline B: astropy read and write of the pixels as float32 (the bytes calibrate writes);
  - indical calibrate with 2 worker threads, with 1, and with 2 and --sync (each output
    flushed to disk); library indexing, matching, status and HISTORY all included.
Methods take turns on chunks of lights so load from others on a shared machine hits all alike.
Goal: calibrate with 2 workers at >= 80 % of the baseline B rate (the same bytes written).
Run once; the machine is shared.
Run: .venv/bin/python benchmarks/bench_calibrate.py [--count 100]"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from astropy.io import fits

from indical.calib.calibrate import CalibrateOptions, calibrate_paths
from indical.calib.config import CameraConfig
from indical.calib.library import CalibrationLibrary, MasterRecord
from indical.calib.status import Status, StatusStore
from indical.fits.keywords import meta_to_header
from indical.frame import Binning, FrameMeta, FrameType


def make_lights(folder: Path, n: int, w: int, h: int) -> list[Path]:
    rng = np.random.default_rng(1)
    base = rng.normal(1200, 30, (h, w)).clip(0, 65535).astype(np.uint16)
    folder.mkdir(parents=True)
    paths = []
    t0 = datetime(2026, 3, 20, 21, 0, tzinfo=timezone.utc)
    for i in range(n):
        meta = FrameMeta(frame_type=FrameType.LIGHT, exposure_s=60.0, camera="Bench Cam",
                         gain=100.0, offset=10.0, sensor_temp_c=-10.0, filter="L",
                         start=t0 + timedelta(minutes=i), bit_depth=16)
        data = base + np.uint16(i)  # distinct content, so each file is a distinct frame
        path = folder / f"light_{i:04d}.fits"
        fits.writeto(path, data, meta_to_header(meta))
        paths.append(path)
    return paths


def make_library(root: Path, w: int, h: int) -> CalibrationLibrary:
    lib = CalibrationLibrary(root / "library.sqlite")
    lib.masters_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    for kind, name, data, exp, filt in (
            (FrameType.DARK, "dark.fits", np.full((h, w), 1000, np.float32), 60.0, None),
            (FrameType.FLAT, "flat.fits", np.ones((h, w), np.float32), 0.0, "L")):
        path = lib.masters_dir / name
        fits.writeto(path, data)
        lib.add_master(MasterRecord(
            path=str(path), frame_type=kind,
            config=CameraConfig(camera="Bench Cam", gain=100.0, offset=10.0, binning=Binning(1, 1),
                                width=w, height=h, temperature_c=-10.0),
            filter=filt, exposure_s=exp, group_key=name, method="mean", n_frames=10, created_at=now), [])
    return lib


def settle() -> None:
    """Flush dirty pages so each timed phase starts with the disk idle, whatever ran before."""
    os.sync()
    time.sleep(0.5)


def baseline(paths: list[Path], out: Path, as_float: bool) -> tuple[float, float]:
    out.mkdir(exist_ok=True)
    settle()
    t0, c0 = time.perf_counter(), time.process_time()
    for p in paths:
        with fits.open(p, memmap=False) as hdul:
            data, header = hdul[0].data, hdul[0].header
            if as_float:
                data = data.astype(np.float32)
            fits.writeto(out / p.name, data, header)
    return time.perf_counter() - t0, time.process_time() - c0


def calibrate(lib: CalibrationLibrary, paths: list[Path], out: Path, workers: int,
              sync: bool = False) -> tuple[float, float]:
    with StatusStore(lib.db_path) as store:
        settle()
        t0, c0 = time.perf_counter(), time.process_time()
        summary = calibrate_paths(lib, store, paths, CalibrateOptions(
            out_dir=out, workers=workers, force=True, sync_outputs=sync))
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
    bad = [o for o in summary.outcomes if o.status is not Status.CALIBRATED]
    if bad:
        raise SystemExit(f"calibration failed: {bad[0].path}: {bad[0].message}")
    return elapsed, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--width", type=int, default=3264)
    ap.add_argument("--height", type=int, default=2448)
    ap.add_argument("--chunk", type=int, default=20, help="lights per turn of each method")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-calibrate-", dir=args.workdir))
    try:
        lights = make_lights(work / "lights", args.count, args.width, args.height)
        lib = make_library(work / "lib", args.width, args.height)
        mb = args.count * args.width * args.height * 2 / 1e6
        print(f"{args.count} lights of {args.width}x{args.height} uint16 ({mb:.0f} MB in)")
        # Methods take turns on chunks of lights, so a load change on this shared machine
        # hits them all alike; each method's outputs are deleted after its chunk.
        methods = {
            "baseline A: astropy read + write uint16": lambda ch, o: baseline(ch, o, False),
            "baseline B: astropy read + write float32": lambda ch, o: baseline(ch, o, True),
            "indical calibrate, 2 workers": lambda ch, o: calibrate(lib, ch, o, 2),
            "indical calibrate, 1 worker": lambda ch, o: calibrate(lib, ch, o, 1),
            "indical calibrate, 2 workers, --sync": lambda ch, o: calibrate(lib, ch, o, 2, True),
        }
        wall = dict.fromkeys(methods, 0.0)
        cpu = dict.fromkeys(methods, 0.0)
        names = list(methods)
        for turn, start in enumerate(range(0, args.count, args.chunk)):
            chunk = lights[start:start + args.chunk]
            k = turn % len(names)  # rotate the order: no method always goes first
            for name in names[k:] + names[:k]:
                out = work / "out"
                w, c = methods[name](chunk, out)
                wall[name] += w
                cpu[name] += c
                shutil.rmtree(out)
        lib.close()
        ref_a = wall["baseline A: astropy read + write uint16"]
        ref_b = wall["baseline B: astropy read + write float32"]
        print("rate = lights per wall-clock second; 'vs' = rate relative to the baseline; "
              "cpu = CPU seconds per light (all threads)")
        print(f"{'':<40}{'wall s':>8}{'lights/s':>10}{'vs A':>7}{'vs B':>7}{'cpu ms':>8}")
        for name in names:
            s = wall[name]
            print(f"{name:<40}{s:8.2f}{args.count / s:10.2f}{ref_a / s:7.2f}{ref_b / s:7.2f}"
                  f"{1000 * cpu[name] / args.count:8.0f}")
        print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
