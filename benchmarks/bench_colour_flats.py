"""Benchmark: a master flat from 20 colour (RGGB) flats of 26 MP (6248 x 4176 uint16, an
ASI2600MC's frame), scaled per CFA position before rejection (`--flat-normalisation channel`,
the default: numpy precalibrates and scales each chunk, the kernel combines it) against one
factor per frame (`overall`: the kernel reads the 16-bit files itself and scales them), in the
same run.

Each build is a whole `indical master` process, as users run it; the two normalisations
alternate, `--repeat` times each, with the page cache warmed before each. We report the median
wall time, CPU time (user + system of the process) and peak resident memory, and the ratios
channel / overall. Cases: sigma clipping with a pedestal (the cheapest kernel, so the largest
share for numpy), sigma with a master dark flat subtracted (the precalibration image moves from
the kernel to numpy too), and winsorized (what `auto` picks for 20 frames).

    .venv/bin/python benchmarks/bench_colour_flats.py [--frames 20] [--repeat 3] [--keep DIR]"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WIDTH, HEIGHT = 6248, 4176


def write_flats(folder: Path, n: int) -> tuple[list[Path], Path]:
    """Twilight-like RGGB flats (level 12000-24000 ADU, the red rising and the blue falling 5 %
    across the stack, 20 % vignetting, shot noise) and a master dark flat."""
    import numpy as np
    from indical.fits.header import Header, write_image
    from indical.fits.io import write_frame
    from indical.frame import Frame, FrameMeta, FrameType

    rng = np.random.default_rng(7)
    yy, xx = np.ogrid[0:HEIGHT, 0:WIDTH]
    vignette = (1.0 - 0.2 * ((yy - HEIGHT / 2) ** 2 + (xx - WIDTH / 2) ** 2)
                / ((HEIGHT / 2) ** 2 + (WIDTH / 2) ** 2)).astype(np.float32)
    paths = []
    for k, t in enumerate(np.linspace(-1, 1, n)):
        path = folder / f"flat_{k:02d}.fits"
        if not path.exists():
            level = 12000.0 + 12000.0 * k / max(1, n - 1)
            cast = np.array([[0.55 * (1 + 0.05 * t), 0.8], [0.8, 1.0 - 0.05 * t]], np.float32)
            signal = level * np.tile(cast, (HEIGHT // 2, WIDTH // 2)) * vignette
            data = 1000.0 + signal + rng.standard_normal(signal.shape, np.float32) * np.sqrt(signal)
            meta = FrameMeta(frame_type=FrameType.FLAT, exposure_s=1.0, camera="Bench Cam",
                             gain=100.0, offset=10.0, filter="L", bayer_pattern="RGGB")
            write_frame(Frame(np.clip(np.rint(data), 0, 65535).astype(np.uint16), meta), path)
        paths.append(path)
    dark = folder / "master_darkflat.fits"
    if not dark.exists():
        with open(dark, "wb") as fh:
            header = Header()
            header["IMAGETYP"] = "Master Dark Flat"
            header["EXPTIME"] = 1.0
            write_image(fh, (1000.0 + rng.normal(0, 2, (HEIGHT, WIDTH))).astype(np.float32),
                        header)
    return paths, dark


def warm(files: list[Path]) -> None:
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 22):
                pass


def run(files: list[Path], out: Path, args: list[str]) -> dict:
    indical = Path(sys.executable).with_name("indical")
    cmd = [str(indical if indical.exists() else shutil.which("indical")), "master",
           *map(str, files), "-o", str(out), "--force", "--type", "flat", *args]
    warm(files)
    with tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            sys.exit(f"indical master {' '.join(args)} failed: {err.read()[-2000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "peak": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="folder for the frames (kept between runs)")
    a = parser.parse_args()
    folder = a.keep or Path(tempfile.mkdtemp(prefix="indical-bench-colour-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        files, dark = write_flats(folder, a.frames)
        print(f"{a.frames} RGGB flats of {WIDTH} x {HEIGHT} in {folder} "
              f"({time.perf_counter() - t0:.0f} s to write); {a.repeat} runs each, alternating")
        cases = {"sigma, pedestal": ["--combine", "sigma", "--precal", "pedestal:1000"],
                 "sigma, dark flat": ["--combine", "sigma", "--precal", str(dark)],
                 "winsorized, pedestal": ["--combine", "winsorized", "--precal", "pedestal:1000"]}
        for name, args in cases.items():
            got: dict[str, list[dict]] = {"channel": [], "overall": []}
            for _ in range(a.repeat):
                for norm in got:
                    got[norm].append(run(files, folder / f"master_{norm}.fits",
                                         [*args, "--flat-normalisation", norm]))
            med = {norm: {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "peak")}
                   for norm, runs in got.items()}
            c, o = med["channel"], med["overall"]
            print(f"{name}: channel {c['wall']:.2f} s wall / {c['cpu']:.2f} s CPU / "
                  f"{c['peak']:.0f} MB; overall {o['wall']:.2f} s / {o['cpu']:.2f} s / "
                  f"{o['peak']:.0f} MB; ratio channel/overall wall {c['wall'] / o['wall']:.2f}, "
                  f"CPU {c['cpu'] / o['cpu']:.2f}, peak {c['peak'] / o['peak']:.2f}", flush=True)
    finally:
        if a.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
