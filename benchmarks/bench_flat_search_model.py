"""Exposures until the first accepted panel flat, on the panels of bench_flat_search.py over
many seeds, with the search decisions alone (no simulated camera): a fast check of a change to
`indical.sequence.brightness` or `exposure` before the full benchmark.

Each frame's level is the panel model's light at the centre of the field times the exposure,
saturated from 98 % of full scale (what `indical.level` calls saturated for a flat field);
the loop around the decisions is that of `indical.sequence.panel.find_settings` (a trim hands
over to the exposure search at its step; a trim too bright at the shortest exposure resumes the
brightness search there). Per seed and over all seeds: median / p95 / max per family, correct
refusals, flats kept outside the preferred window (0.5-2 s) although a step would serve within
it, and the probe log of every panel over `--show` exposures. On 2026-12-03 the nine seeds
below agreed with the full benchmark on seed 5 panel by panel (the 7 on its panel 1 included).

Run: .venv/bin/python benchmarks/bench_flat_search_model.py [--seeds 5 7 ...] [--show 7]"""

from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np

from bench_flat_search import (BIAS_ADU, T0_S, T_MAX_S, T_MIN_S, TARGET, TOL, WIDE_FAMILIES,
                               Panel, centre_illumination, random_panel, solvable, wide_panel)
from indical.level import Band
from indical.sequence.brightness import (ExposureWindow, Steps, Trim, at_floor, next_brightness,
                                         too_bright_at_edge)
from indical.sequence.exposure import (Accept, ExposureLimits, Measure, Observation, Refusal,
                                       Refuse, dark_floor_adu, next_exposure)
from indical.sequence.panel import _untried_below
from indical.simulators.models.panel import PanelParams

SEEDS = (5, 7, 11, 3, 13, 17, 19, 23, 29)
WINDOW = ExposureWindow(0.5 * T0_S, 2.0 * T0_S)


def params(p: Panel) -> PanelParams:
    return PanelParams(max_brightness=p.max_brightness,
                       response=tuple((a[0], a[1]) for a in p.response),
                       max_flux_e_per_s=p.max_flux_e_per_s)


def search(p: Panel, illumination: float) -> tuple[str, int, float | None, list]:
    """(outcome, exposures, accepted exposure, probe log) of one panel's first night."""
    model = params(p)
    full = (1 << p.bits) - 1 - BIAS_ADU
    target = TARGET * ((1 << p.bits) - 1) - BIAS_ADU
    band = Band(target * (1 - TOL), target, target * (1 + TOL))
    limits = ExposureLimits(T_MIN_S, T_MAX_S, max_exposures=10)
    steps = Steps(0, p.max_brightness)
    frames: list[Observation] = []
    log: list[tuple] = []

    def shoot(b: int, t: float) -> Observation:
        raw = model.flux_e_per_s(b) * illumination * t
        o = Observation(t, min(raw, full), raw >= 0.98 * full, b)
        frames.append(o)
        log.append((b, t, "sat" if o.saturated else round(o.level_adu)))
        return o

    def left(kept: int) -> ExposureLimits:
        return ExposureLimits(limits.min_exposure_s, limits.max_exposure_s,
                              limits.max_exposures - len(frames) + kept)

    def refused(r: Refuse) -> str:
        if r.kind is Refusal.GAVE_UP:
            r = too_bright_at_edge(frames, band, steps, limits) or r
        return r.kind.value

    work_s, obs = T0_S, []
    while True:
        d = next_brightness(band if obs else None, steps, work_s, left(len(obs)), obs, None,
                            WINDOW)
        if isinstance(d, Measure):
            obs.append(shoot(d.brightness, d.exposure_s))
            continue
        if isinstance(d, Accept):
            return "ok", len(frames), d.exposure_s, log
        if isinstance(d, Refuse):
            return refused(d), len(frames), None, log
        assert isinstance(d, Trim)
        seed = [o for o in obs if o.brightness == d.brightness]
        if not any(o.exposure_s == limits.clamp(d.exposure_s) for o in seed):
            seed.append(shoot(d.brightness, limits.clamp(d.exposure_s)))
        while True:
            e = next_exposure(band, left(len(seed)), seed, d.exposure_s)
            if not isinstance(e, Measure):
                break
            seed.append(shoot(d.brightness, e.exposure_s))
        if isinstance(e, Accept):
            return "ok", len(frames), e.exposure_s, log
        if not (e.kind is Refusal.TOO_BRIGHT and work_s > limits.min_exposure_s
                and _untried_below(obs, d.brightness, steps, dark_floor_adu(band))):
            return refused(e), len(frames), None, log
        work_s = limits.min_exposure_s
        obs = at_floor(obs, frames, work_s, dark_floor_adu(band))


def stats(values: list[int]) -> str:
    if not values:
        return "n/a"
    v = sorted(values)
    return f"{statistics.median(v):g}/{v[min(len(v) - 1, int(np.ceil(0.95 * len(v))) - 1)]}/{v[-1]}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--panels", type=int, default=60)
    ap.add_argument("--wide", type=int, default=25, help="panels per wider family")
    ap.add_argument("--show", type=int, default=7, help="print panels taking this many or more")
    args = ap.parse_args()
    illumination = centre_illumination()
    families = ("benchmark",) + WIDE_FAMILIES
    total: dict[str, list[int]] = {f: [] for f in families}
    misses, refusals, right, outside, kept, over, shown = 0, 0, 0, 0, 0, 0, []
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        panels = [random_panel(i, rng) for i in range(args.panels)]
        wrng = np.random.default_rng(seed + 1000)
        panels += [wide_panel(args.panels + k * args.wide + i, wrng, f)
                   for k, f in enumerate(WIDE_FAMILIES) for i in range(args.wide)]
        counts: dict[str, list[int]] = {f: [] for f in families}
        for p in panels:
            outcome, n, exposure_s, log = search(p, illumination)
            if p.truth != "ok":
                refusals += 1
                right += outcome == p.truth
                continue
            if outcome != "ok":
                misses += 1
                print(f"MISS seed {seed} panel {p.number} ({p.family}): {outcome} after {n}")
                continue
            counts[p.family].append(n)
            kept += 1
            outside += not WINDOW.min_s <= exposure_s <= WINDOW.max_s and solvable(
                params(p), p.bits, WINDOW.min_s, WINDOW.max_s)
            over += n > 6
            if n >= args.show:
                shown.append((seed, p, n, log))
        for f in families:
            total[f] += counts[f]
        wide = [n for f in WIDE_FAMILIES for n in counts[f]]
        print(f"seed {seed:3}: " + "  ".join(f"{f} {stats(counts[f])}" for f in families)
              + f"  all wide {stats(wide)}", flush=True)
    wide = [n for f in WIDE_FAMILIES for n in total[f]]
    print(f"all seeds: " + "  ".join(f"{f} {stats(total[f])}" for f in families)
          + f"  all wide {stats(wide)}  (median/p95/max)")
    print(f"solvable panels missed: {misses}; refusals right: {right}/{refusals}; flats outside "
          f"{WINDOW.min_s:g}-{WINDOW.max_s:g} s where a step serves within it: {outside}/{kept}")
    print(f"panels over 6 exposures: {over} of {kept}")
    for seed, p, n, log in shown:
        print(f"  seed {seed} panel {p.number} ({p.family}, 0-{p.max_brightness}, "
              f"{p.light_ratio:.0f}x): {n}: " + ", ".join(f"{b}@{t:g}s {lv}" for b, t, lv in log))
    return 0 if not misses and right == refusals else 1


if __name__ == "__main__":
    sys.exit(main())
