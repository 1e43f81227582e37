"""Twilight flats: indical's predictive ramp against two baselines on identical skies.

For sites at latitude 0, 35, 52 and 65 deg, on both solstices and the March equinox, at dusk
and at dawn, three filters (L, R, Ha) on the simulated observatory: the fraction of sky frames
within +/-10 % of the target level, and the flats accepted per twilight, for
  predictive  indical's ramp (rate fit against sun altitude with the twilight slope as prior,
              integrated counts from the exposure's real start),
  ratio       next = last x target / measured,
  tyson-gal   a fixed Tyson & Gal (1993) schedule from the first good frame of each filter.
All three share everything else (sun window, filter order, the first frame of a filter,
rejection, and the rule to wait or stop when a method's own prediction leaves the band). Each
case first runs one twilight a day earlier with the predictive ramp, as an observatory's
previous night; its learned filter sensitivities are copied for all three methods, so no method
pays for first-night probing. 20 flats per filter are asked for (the needs-driven count). A
second grid runs at 52 deg with a sky fading 15 % slower and faster than Patat's (the prior's)
twilight. A last section takes one filter with no count limit, until the sun's limit ends the
run. A first-run grid then starts with nothing learned, filters given in the order B, V, R,
OIII (OIII 25 times less sensitive than R), 10 flats each: indical ordering them (one short
probe per filter as the sky enters the window) under those names and under names that say
nothing ("Slot 1"-"Slot 4"), against the given order (the baseline); per twilight it reports
the flats kept against the most that fit in the sun window with the exposures used and the
measured overhead between frames, the aimed frames in band and the probes (which are not
flats). Exits non-zero when the predictive ramp misses 99 % in band, keeps fewer flats than a
baseline in the main grid, or a first run fills less than 90 % of what fits or has less than
99 % of its aimed frames in band.

On the simulated clock (speed 0) each twilight takes a few seconds of wall time. The whole
run (main grid, capacity and the first-run grid at every latitude) took 11 minutes (652 s) on
2026-12-02 on a shared 2-core machine under load; --quick (latitude 52 at the equinox only)
about 2 minutes.
Run: .venv/bin/python benchmarks/bench_twilight.py [--quick] [--first-run-full]"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from indical.rig import open_rig, parse_rig
from indical.sequence import Session
from indical.level import Target
from indical.sequence.log import ExposureLog
from indical.site import Site
from indical.sequence.twilight import TwilightOptions, take_twilight_flats
from indical.twilight.window import SunLimits, Twilight, from_unix, next_twilight, to_unix

RIG = """
[site]
latitude = {lat}
longitude = 0.0
elevation = 100.0
[clock]
start = "{start}"
[camera]
driver = "sim"
width = 256
height = 192
[filter_wheel]
driver = "sim"
names = ["L", "R", "Ha"]
throughput = [1.0, 0.45, 0.05]
[mount]
driver = "sim"
[sky]
star_flux_e_per_s = [100.0, 20000.0]
twilight_slope = {slope}
"""

LATITUDES = (0.0, 35.0, 52.0, 65.0)
DATES = ("2026-03-20", "2026-06-21", "2026-12-21")
METHODS = ("predictive", "ratio", "tyson-gal")
FILTERS = ["L", "R", "Ha"]
COUNT = 20
LIMITS = SunLimits(-2.0, -10.0)


FIRST_RIG_WHEEL = """
[filter_wheel]
driver = "sim"
names = ["B", "V", "R", "OIII"]
throughput = [0.3, 0.35, 0.45, 0.018]
"""
FIRST_FILTERS = ["B", "V", "R", "OIII"]
FIRST_COUNT = 10


class CountingSink:
    """Keeps frame metadata only: the benchmark measures the ramp, not FITS writing."""

    def __init__(self) -> None:
        self.kept: dict[Path, object] = {}
        self.rejected = 0

    def write(self, frame) -> Path:
        path = Path(f"frame-{len(self.kept) + self.rejected}")
        self.kept[path] = frame.meta
        return path

    def write_rejected(self, frame, reason: str) -> Path:
        self.rejected += 1
        return Path(f"rejected-{self.rejected}")

    def reject(self, path: Path, reason: str) -> Path:
        self.kept.pop(path, None)
        return self.write_rejected(None, reason)

    def count(self, query) -> int:
        return sum(1 for m in self.kept.values() if query.matches(m))


@dataclass
class Outcome:
    frames: int
    in_band: int
    accepted: int
    wall_s: float
    mean_level: float = float("nan")   # kept flats' level over the target

    @property
    def fraction(self) -> float:
        return self.in_band / self.frames if self.frames else float("nan")


def clock_start(lat: float, day: str, twilight: Twilight) -> datetime | None:
    """20 minutes before the sun window of that twilight opens (None: it never opens)."""
    noon = datetime.fromisoformat(day).replace(hour=12, tzinfo=timezone.utc)
    t = to_unix(noon if twilight is Twilight.DUSK else noon + timedelta(hours=12))
    for _ in range(3):
        found = next_twilight(Site(lat, 0.0, 100.0), t, LIMITS)
        if found is None:
            return None
        kind, window = found
        if kind is twilight:
            return from_unix(window.opens_unix - 1200.0)
        t = (window.closes_unix or window.opens_unix) + 120.0
    return None


def one_twilight(lat: float, start: datetime, twilight: Twilight, method: str, memory: Path,
                 work: Path, slope: float, filters: list[str] = FILTERS,
                 count: int = COUNT, rig_text: str = RIG, order: str = "learn",
                 keep: list | None = None) -> Outcome:
    spec = parse_rig(rig_text.format(lat=lat, start=start.isoformat(), slope=slope), "bench rig")
    t0 = time.perf_counter()
    with open_rig(spec) as rig:
        obs = Session(rig, CountingSink(), ExposureLog(None))
        result = take_twilight_flats(
            obs, filters, count=count, target=Target.fraction(0.4, 0.1),
            options=TwilightOptions(twilight=twilight.value, ramp=method, sky_memory=memory,
                                    bias_adu=500.0, filter_order=order))
    if keep is not None:
        keep.append(result)
    wall = time.perf_counter() - t0
    kept = [f.level_adu / f.target_adu for f in result.frames if f.accepted]
    return Outcome(len(result.frames), sum(f.in_band for f in result.frames),
                   result.accepted(), wall, sum(kept) / len(kept) if kept else float("nan"))


def run_case(lat: float, day: str, twilight: Twilight, work: Path, slope: float = 1.0,
             filters: list[str] = FILTERS, count: int = COUNT) -> dict[str, Outcome] | None:
    start = clock_start(lat, day, twilight)
    if start is None:
        return None
    memory = work / "warm.json"
    memory.unlink(missing_ok=True)
    # the previous night: same twilight a day earlier, predictive ramp, learns the filters
    one_twilight(lat, start - timedelta(days=1), twilight, "predictive", memory, work, slope,
                 filters, COUNT)
    out = {}
    for method in METHODS:
        copy = work / f"{method}.json"
        shutil.copy(memory, copy)
        out[method] = one_twilight(lat, start, twilight, method, copy, work, slope, filters,
                                   count)
    return out


def capacity(result) -> tuple[int, float, float]:
    """The most frames that fit in the sun window with the exposures used (their mean) and the
    measured overhead (median gap from one frame's end to the next one's start, waits
    excluded): (frames, mean exposure s, overhead s)."""
    frames = sorted(result.frames, key=lambda f: f.start_unix)
    gaps = [b.start_unix - (a.start_unix + a.exposure_s) for a, b in zip(frames, frames[1:])]
    gaps = sorted(g for g in gaps if 0 <= g < 30.0)
    overhead = gaps[len(gaps) // 2] if gaps else 0.0
    mean_exposure = sum(f.exposure_s for f in frames) / len(frames) if frames else 0.0
    window = result.window
    span = (window.closes_unix or frames[-1].start_unix) - window.opens_unix
    return int(span // (mean_exposure + overhead)) if frames else 0, mean_exposure, overhead


SLOT_FILTERS = [f"Slot {i + 1}" for i in range(len(FIRST_FILTERS))]
FIRST_VARIANTS = (("names", FIRST_FILTERS, "learn"), ("slots", SLOT_FILTERS, "learn"),
                  ("given", FIRST_FILTERS, "given"))


def first_runs(lats: tuple[float, ...], dates: tuple[str, ...]) -> tuple[float, float, int]:
    """Nothing learned, filters B, V, R, OIII in that order: indical ordering them (a probe
    per filter as the sky enters the window) with those names and with names that say nothing
    ("Slot 1"-"Slot 4", same filters), against the given order. Returns (worst fill of what
    fits, in-band fraction of the frames aimed at the target, twilights where a filter missed
    its count although the window could hold every frame), over both indical variants."""
    base = RIG.split("[filter_wheel]")[0] + FIRST_RIG_WHEEL + "[mount]" + RIG.split("[mount]")[1]
    rigs = {"names": base, "given": base,
            "slots": base.replace(repr(FIRST_FILTERS).replace("'", '"'),
                                  repr(SLOT_FILTERS).replace("'", '"'))}
    assert rigs["slots"] != base
    print(f"\nfirst run: nothing learned, filters given as {', '.join(FIRST_FILTERS)} "
          f"(OIII 25x less sensitive than R), {FIRST_COUNT} flats each; kept per filter, "
          f"kept / most that fit (window / (mean exposure + overhead)), aimed frames in band, "
          f"probes; 'slots' names them Slot 1-4")
    worst, short = 1.0, 0
    band_in, band_n, probes = 0, 0, 0
    given_in, given_n = 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for lat in lats:
            for day in dates:
                for tw in (Twilight.DUSK, Twilight.DAWN):
                    start = clock_start(lat, day, tw)
                    if start is None:
                        continue
                    cells = []
                    for label, filters, order in FIRST_VARIANTS:
                        memory = Path(tmp) / f"first-{label}.json"
                        memory.unlink(missing_ok=True)
                        results: list = []
                        one_twilight(lat, start, tw, "predictive", memory, Path(tmp), 1.0,
                                     filters, FIRST_COUNT, rigs[label], order, results)
                        r = results[0]
                        kept = [r.accepted(f) for f in filters]
                        fits, mean_e, overhead = capacity(r)
                        most = min(FIRST_COUNT * len(filters), fits)
                        fill = sum(kept) / most if most else 1.0
                        inband = sum(f.in_band for f in r.frames)
                        if order == "learn":
                            worst = min(worst, fill)
                            band_in += inband
                            band_n += len(r.frames)
                            probes += len(r.probes)
                            if fits >= FIRST_COUNT * len(filters) and min(kept) < FIRST_COUNT:
                                short += 1
                        else:
                            given_in += inband
                            given_n += len(r.frames)
                        cells.append(f"{label}: " + "/".join(str(k) for k in kept)
                                     + f" {sum(kept):2d}/{most:2d} ({100 * fill:3.0f} %,"
                                     f" fits {fits}, {mean_e:4.1f}+{overhead:.1f} s) "
                                     f"{inband}/{len(r.frames)} in band, {len(r.probes)} probes")
                    print(f"{lat:4.0f} {day:10} {tw.value:5} | " + " | ".join(cells), flush=True)
    fraction = band_in / band_n if band_n else 0.0
    print(f"names and slots: worst fill {100 * worst:.0f} % of what fits (goal >= 90 %); aimed "
          f"frames in band {band_in}/{band_n} ({100 * fraction:.1f} %; with the {probes} "
          f"probes counted as misses {100 * band_in / max(band_n + probes, 1):.1f} %); given "
          f"order {given_in}/{given_n} ({100 * given_in / max(given_n, 1):.1f} %); twilights "
          f"where a filter missed its count though the window held all frames: {short}")
    return worst, fraction, short


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="latitude 52 at the equinox only")
    ap.add_argument("--first-run-full", action="store_true",
                    help="the first-run grid at every latitude and date, even with --quick")
    args = ap.parse_args()
    lats, dates = ((52.0,), ("2026-03-20",)) if args.quick else (LATITUDES, DATES)
    cases = [(lat, day, tw, 1.0) for lat in lats for day in dates
             for tw in (Twilight.DUSK, Twilight.DAWN)]
    cases += [(52.0, "2026-03-20", tw, s) for s in (0.85, 1.15)
              for tw in (Twilight.DUSK, Twilight.DAWN)]
    print(f"{'lat':>4} {'date':10} {'twilight':8} {'slope':>5} | "
          + " | ".join(f"{m:>10}: in band  kept" for m in METHODS) + " | wall s")
    worst = 1.0
    fewer: list[str] = []
    totals = {m: [0, 0, 0] for m in METHODS}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for lat, day, tw, slope in cases:
            out = run_case(lat, day, tw, Path(tmp), slope)
            head = f"{lat:4.0f} {day:10} {tw.value:8} {slope:5.2f} | "
            if out is None:
                print(head + "no sun window (-2 to -10 deg) in this twilight")
                continue
            cells = []
            for m in METHODS:
                o = out[m]
                cells.append(f"{o.in_band:3d}/{o.frames:3d} {100 * o.fraction:5.1f}% {o.accepted:4d}")
                totals[m][0] += o.in_band
                totals[m][1] += o.frames
                totals[m][2] += o.accepted
            print(head + " | ".join(f"{c:>26}" for c in cells)
                  + f" | {sum(o.wall_s for o in out.values()):5.1f}", flush=True)
            p = out["predictive"]
            worst = min(worst, p.fraction)
            if p.accepted < max(out["ratio"].accepted, out["tyson-gal"].accepted):
                fewer.append(head.strip(" |"))
    print()
    for m in METHODS:
        ib, n, kept = totals[m]
        print(f"{m:>10}: {ib}/{n} frames in band ({100 * ib / max(n, 1):.1f} %), {kept} flats kept")
    pk = totals["predictive"][2]
    for m in METHODS[1:]:
        print(f"predictive / {m}: in-band fraction ratio "
              f"{(totals['predictive'][0] / totals['predictive'][1]) / (totals[m][0] / totals[m][1]):.2f}, "
              f"kept flats ratio {pk / max(totals[m][2], 1):.2f}")
    print(f"worst predictive in-band fraction over the cases: {100 * worst:.1f} % (goal >= 95 %)")
    # capacity: one filter with no count limit, flats kept until the sky runs out
    print("\ncapacity: filter L alone, as many flats as the twilight allows (no count limit);"
          "\nwhen only the sun's limit ends the run, shorter exposures mean more frames")
    capacity_fewer: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for lat, tw in [(lat, tw) for lat in ((0.0, 52.0) if not args.quick else (52.0,))
                        for tw in (Twilight.DUSK, Twilight.DAWN)]:
            out = run_case(lat, "2026-03-20", tw, Path(tmp), filters=["L"], count=1000)
            p = out["predictive"]
            line = " | ".join(f"{m}: {out[m].accepted} kept of {out[m].frames} "
                              f"({100 * out[m].fraction:.0f} % in band, mean level "
                              f"{out[m].mean_level:.3f} x target)" for m in METHODS)
            print(f"{lat:4.0f} 2026-03-20 {tw.value:5} | {line}", flush=True)
            if p.accepted < max(out["ratio"].accepted, out["tyson-gal"].accepted):
                capacity_fewer.append(f"{lat:.0f} {tw.value}")
    print("cases where predictive kept fewer flats than a baseline: "
          + (", ".join(fewer) if fewer else "none")
          + "; in the capacity runs: " + (", ".join(capacity_fewer) or "none"))
    full = args.first_run_full or not args.quick
    first_lats = (0.0, 35.0, 52.0, 65.0) if full else (52.0,)
    first_dates = ("2026-03-20", "2026-12-21") if full else ("2026-03-20",)
    fill, first_band, short = first_runs(first_lats, first_dates)
    total_band = (totals["predictive"][0] / max(totals["predictive"][1], 1))
    print(f"predictive in band over the main grid: {100 * total_band:.1f} % (goal >= 99 %)")
    print(f"wall time {time.perf_counter() - t_all:.0f} s")
    ok = worst >= 0.95 and total_band >= 0.99 and fill >= 0.90 \
        and short == 0 and first_band >= 0.99
    return 0 if ok and not fewer else 1


if __name__ == "__main__":
    sys.exit(main())
