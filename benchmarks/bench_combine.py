"""Benchmark: building a master from 32 frames of 3264 x 2448 uint16 FITS, indical against
ccdproc.combine on the same files, in the same run.

Each case runs in its own process: indical's as the `indical master` command users run,
ccdproc's as a Python process calling `ccdproc.combine`. We report the whole-process wall time
(start-up, imports and exit included) and the process's peak resident memory (ru_maxrss from
wait4, which counts the memory-mapped file pages it touched). Ratios are ccdproc / indical.

    .venv/bin/python benchmarks/bench_combine.py [--frames 32] [--keep DIR] [--skip-ccdproc] [--isa]

Before that: the first `indical master` run in a fresh home folder (nothing cached: it must be
as fast as the next runs), then combine_files alone (fresh process) for sigma, median,
winsorized and linear-fit clipping (ccdproc has no counterpart of the last two), with the
kernel copy this CPU gets and with the baseline x86-64 copy (`--isa`).

Goal (issue 4): at least 20x faster than ccdproc and at most 1 GB peak."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

WIDTH, HEIGHT = 3264, 2448

_CHILD = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import ccdproc
    case, out, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    t0 = time.perf_counter()
    kind, limit = case.split(":")
    kw = {} if limit == "default" else {"mem_limit": float(limit)}
    if kind == "ccdproc-sigma":
        kw.update(method="average", sigma_clip=True, sigma_clip_low_thresh=3,
                  sigma_clip_high_thresh=3)
    else:
        kw.update(method="median")
    ccdproc.combine(files, output_file=out, unit="adu", overwrite_output=True, **kw)
    print(json.dumps({"compute_s": time.perf_counter() - t0}))
""")

# combine_files alone, timed inside a fresh process (imports excluded, the kernel's loading
# included); isa "best" is the copy this CPU gets, "baseline" the portable x86-64 one
_ENGINE_CHILD = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from indical.calib.combine import CombineInput, CombineOptions, combine_files
    method, isa, files = sys.argv[1], sys.argv[2], [Path(p) for p in sys.argv[3:]]
    if isa == "baseline":
        from indical.calib.combine import native
        native.kernel().use_isa(0)
    t0 = time.perf_counter()
    combine_files(CombineInput(files, CombineOptions(method=method)))
    print(json.dumps({"combine_s": time.perf_counter() - t0}))
""")

_INDICAL = {
    "indical-sigma": ["--combine", "sigma", "--sigma-low", "3", "--sigma-high", "3",
                      "--center", "median", "--maxiters", "5"],
    "indical-sigma-1iter-mean": ["--combine", "sigma", "--sigma-low", "3", "--sigma-high", "3",
                                 "--center", "mean", "--maxiters", "1"],
    "indical-median": ["--combine", "median"],
    # what `--combine auto` picks for 15 frames or more (ccdproc has no winsorized clipping)
    "indical-winsorized": ["--combine", "winsorized", "--sigma-low", "3", "--sigma-high", "3",
                           "--maxiters", "5"],
}
_ENGINE_METHODS = ("sigma", "median", "winsorized", "linearfit")


def write_frames(folder: Path, n: int) -> list[Path]:
    """Bias-like frames: level 1000 ADU, read noise 8 ADU, a few hot pixels and cosmic rays."""
    import numpy as np
    from indical.fits.io import write_frame
    from indical.frame import Frame, FrameMeta, FrameType

    rng = np.random.default_rng(42)
    hot = rng.random((HEIGHT, WIDTH)) < 1e-4
    paths = []
    for i in range(n):
        path = folder / f"frame_{i:02d}.fits"
        if not path.exists():
            data = rng.normal(1000.0, 8.0, (HEIGHT, WIDTH)).astype(np.float32)
            data[hot] += 3000.0
            rays = rng.integers(0, HEIGHT * WIDTH, 2000)
            data.flat[rays] += rng.uniform(500, 30000, rays.size).astype(np.float32)
            pixels = np.clip(np.rint(data), 0, 65535).astype(np.uint16)
            meta = FrameMeta(frame_type=FrameType.DARK, exposure_s=60.0, camera="Bench Cam",
                             gain=100.0, offset=10.0, sensor_temp_c=-10.0, setpoint_temp_c=-10.0)
            write_frame(Frame(pixels, meta), path)
        paths.append(path)
    return paths


def warm_page_cache(files: list[Path]) -> None:
    """Read every file once so each case starts with the same (cached) disk state."""
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 22):
                pass


def indical_command() -> str:
    """The `indical` console script of the environment running this benchmark."""
    script = Path(sys.executable).with_name("indical")
    found = str(script) if script.exists() else shutil.which("indical")
    if not found:
        sys.exit("the indical command is not installed next to this Python; run ./bootstrap.sh install")
    return found


def run_case(case: str, files: list[Path], out: Path, env: dict | None = None) -> dict:
    warm_page_cache(files)
    if case in _INDICAL:
        cmd = [indical_command(), "master", *map(str, files), "-o", str(out), "--force",
               *_INDICAL[case]]
    else:
        cmd = [sys.executable, "-c", _CHILD, case, str(out), *map(str, files)]
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak memory
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        output, errors = stdout.read(), stderr.read()
    if proc.returncode != 0:
        return {"case": case, "error": errors.strip().splitlines()[-1:]}
    result = {"case": case, "wall_s": wall, "peak_mb": usage.ru_maxrss / 1024}
    if case not in _INDICAL:
        result.update(json.loads(output.strip().splitlines()[-1]))
    return result


def engine_time(method: str, files: list[Path], isa: str, repeat: int) -> float:
    """Median over `repeat` fresh processes of combine_files' own time."""
    times = []
    for _ in range(max(1, repeat)):
        warm_page_cache(files)
        run = subprocess.run([sys.executable, "-c", _ENGINE_CHILD, method, isa, *map(str, files)],
                             capture_output=True, text=True, check=True)
        times.append(json.loads(run.stdout.strip().splitlines()[-1])["combine_s"])
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--keep", type=Path, default=None, help="Keep the frames in this folder.")
    ap.add_argument("--skip-ccdproc", action="store_true")
    ap.add_argument("--isa", action="store_true",
                    help="Also time combine_files with the baseline x86-64 copy of the kernel.")
    ap.add_argument("--repeat", type=int, default=3,
                    help="Runs of each indical case (a few seconds each); the median is reported. "
                         "ccdproc's cases run once (minutes each).")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="indical-bench-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        files = write_frames(folder, args.frames)
        print(f"{len(files)} frames of {WIDTH}x{HEIGHT} uint16 in {folder} "
              f"({time.perf_counter() - t0:.1f} s to write)", flush=True)
        # the first run in a fresh home (no cache of any kind), then the same case again
        fresh = Path(tmp) / "fresh-home"
        fresh.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
        env["HOME"] = str(fresh)
        first = run_case("indical-sigma", files, Path(tmp) / "first.fits", env)
        again = run_case("indical-sigma", files, Path(tmp) / "again.fits", env)
        if "error" in first or "error" in again:
            print(f"first run in a fresh home failed: {first.get('error') or again.get('error')}")
        else:
            print(f"indical-sigma, first run in a fresh home: wall {first['wall_s']:.2f} s, "
                  f"peak {first['peak_mb']:.0f} MB; the next run {again['wall_s']:.2f} s",
                  flush=True)
        for method in _ENGINE_METHODS:
            best = engine_time(method, files, "best", args.repeat)
            portable = engine_time(method, files, "baseline", args.repeat) if args.isa else None
            line = f"combine_files {method:10s} in a fresh process: {best:5.2f} s"
            if portable is not None:
                line += f"; baseline x86-64 copy {portable:5.2f} s ({portable / best:.2f}x)"
            print(line, flush=True)
        cases = ["indical-sigma", "indical-sigma-1iter-mean", "indical-median", "indical-winsorized"]
        if not args.skip_ccdproc:
            cases += ["ccdproc-sigma:default", "ccdproc-sigma:2e9",
                      "ccdproc-median:default", "ccdproc-median:2e9"]
        results = {}
        for case in cases:
            out = Path(tmp) / f"{case.replace(':', '_')}.fits"
            runs = [run_case(case, files, out)
                    for _ in range(max(1, args.repeat) if case in _INDICAL else 1)]
            failed = [r for r in runs if "error" in r]
            r = failed[0] if failed else dict(sorted(runs, key=lambda x: x["wall_s"])[len(runs) // 2])
            results[case] = r
            if "error" in r:
                print(f"{case:28s} failed: {r['error']}", flush=True)
            else:
                r["peak_mb"] = max(x["peak_mb"] for x in runs)  # the worst run's memory
                compute = f"{r['compute_s']:7.2f} s" if "compute_s" in r else "      -  "
                walls = ", ".join(f"{x['wall_s']:.2f}" for x in runs)
                spread = f"  (median of runs {walls} s)" if len(runs) > 1 else ""
                print(f"{case:28s} wall {r['wall_s']:7.2f} s  compute {compute}  "
                      f"peak {r['peak_mb']:7.0f} MB{spread}", flush=True)

    def ratio(ours: str, theirs: str) -> None:
        a, b = results.get(ours), results.get(theirs)
        if a and b and "error" not in a and "error" not in b:
            print(f"  {theirs:24s} / {ours:26s}: {b['wall_s'] / a['wall_s']:6.1f}x time, "
                  f"{b['peak_mb'] / a['peak_mb']:5.1f}x memory")

    print("ratios (whole process, ccdproc / indical):")
    for theirs in ("ccdproc-sigma:default", "ccdproc-sigma:2e9"):
        ratio("indical-sigma", theirs)
        ratio("indical-sigma-1iter-mean", theirs)
    for theirs in ("ccdproc-median:default", "ccdproc-median:2e9"):
        ratio("indical-median", theirs)
    ours = [r for k, r in results.items() if k.startswith("indical") and "error" not in r]
    if ours:
        print(f"indical peak memory: max {max(r['peak_mb'] for r in ours):.0f} MB (goal <= 1024 MB)")


if __name__ == "__main__":
    main()
