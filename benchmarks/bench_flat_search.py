"""Exposures until the first accepted panel flat: indical's search against plain integer
bisection of brightness (N.I.N.A.'s auto-brightness), on the same random simulated panels.

Each panel gets a random response curve (a dead zone at the bottom, then a power law between
concave and strongly convex), a random integer range (0-100, 0-255 or 0-4095), a random
brightness (maximum light from far too dim to far too bright), and a random ADC depth (12, 14 or
16 bits). The target is 50 % of full scale +/- 10 %, the search exposure 1 s, and indical may
trim the exposure within 0.05-10 s.

Ground truth comes from the panel model: a panel is solvable when some step and some exposure
within the limits put the centre of the field in band. Panels within 3 % of that boundary are
redrawn, so the truth is never a coin toss.

A second set of panels comes from wider families, as a new user's panels might be: convex,
concave and S-shaped curves through 5-8 knots above a dead zone (with the jump to the panel's
least light at its edge), ranges from 0-100 to 0-4095, coarse panels of 8-30 steps, and light
at full brightness from 0.5x to 500x what the target needs at the search exposure. Each of these
panels runs a second night from the trained settings the first stored.

indical runs the shipped sequences/panel_flats.py through the engine (one flat, one dark flat,
EXPOSURE_S 1 s and the default EXPOSURE_RANGE_S, 0.5-2 s) and the count is read from its
exposure log. The baseline runs on the same
simulated devices: brightness = middle of [lo, hi], measure the whole-frame raw mean against
50 % of 2^bits +/- 10 %, halve the interval, at most 21 frames.

Run: .venv/bin/python benchmarks/bench_flat_search.py [--panels 60] [--wide 25] [--seed 5]"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indical.frame import FrameType
from indical.rig import open_rig, parse_rig
from indical.sequence.engine import run_sequence
from indical.level import central_region
from indical.sequence.log import read_log
from indical.sequence.trained import TrainedStore
from indical.simulators.models.optics import OpticsParams, illumination_map
from indical.simulators.models.panel import PanelParams
from indical.sinks import FitsFolderSink

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 160, 120
BIAS_ADU = 500.0
T0_S, T_MIN_S, T_MAX_S = 1.0, 0.05, 10.0
TARGET, TOL = 0.5, 0.1
NINA_MAX_FRAMES = 21


@dataclass
class Panel:
    number: int
    max_brightness: int
    response: list[list[float]]
    max_flux_e_per_s: float
    bits: int
    solvable: bool          # with exposure trimming within the limits
    solvable_at_t0: bool    # brightness alone, at the search exposure
    truth: str              # "ok", "too dim", "too bright"
    light_ratio: float      # centre level at full brightness and the search exposure / target
    family: str = "benchmark"

    def rig(self) -> str:
        return f"""
[clock]
start = "2026-03-20T15:00:00+00:00"
[camera]
driver = "sim"
width = {WIDTH}
height = {HEIGHT}
bit_depth = {self.bits}
bias_adu = {BIAS_ADU}
full_well_e = 200000
min_exposure_s = 0.001
seed = {self.number + 1}
[panel]
driver = "sim"
max_brightness = {self.max_brightness}
response = {json.dumps(self.response)}
max_flux_e_per_s = {self.max_flux_e_per_s:.3f}
[flats]
min_exposure_s = {T_MIN_S}
max_exposure_s = {T_MAX_S}
max_search_exposures = 10
"""


def centre_illumination() -> float:
    return float(np.median(central_region(illumination_map(OpticsParams(), WIDTH, HEIGHT))))


def band(bits: int, widen: float = 0.0) -> tuple[float, float]:
    centre = TARGET * ((1 << bits) - 1) - BIAS_ADU
    return centre * (1 - TOL - widen), centre * (1 + TOL + widen)


def solvable(params: PanelParams, bits: int, t_lo: float, t_hi: float, widen: float = 0.0) -> bool:
    lo, hi = band(bits, widen)
    illum = centre_illumination()
    for b in range(params.max_brightness + 1):
        rate = params.flux_e_per_s(b) * illum
        if rate > 0 and rate * t_hi >= lo and rate * t_lo <= hi:
            return True
    return False


def random_panel(number: int, rng: np.random.Generator) -> Panel:
    while True:
        max_b = int(rng.choice([100, 255, 4095]))
        dead = rng.uniform(0.0, 0.15)
        gamma = rng.uniform(0.6, 2.6)
        # no light up to the dead zone's edge, then a jump to the panel's minimum light (as
        # electroluminescent and LED drivers do), then a power law up to full light
        edge = max(1, int(round(dead * max_b)))
        f_min = 10 ** rng.uniform(-3.5, -1.3)
        xs = np.unique(np.round(edge + 1 + (max_b - edge - 1) * np.linspace(0, 1, 8) ** 1.5))
        pts = [[0.0, 0.0], [float(edge), 0.0]] + [
            [float(x), round(f_min + (1 - f_min) * ((x - edge - 1) / (max_b - edge - 1)) ** gamma, 7)]
            for x in xs]
        pts[-1][1] = 1.0
        bits = int(rng.choice([12, 14, 16]))
        target = TARGET * ((1 << bits) - 1) - BIAS_ADU
        # light at full brightness in 1 s: from 1/30 of the target (too dim even at 10 s) to
        # 3000 times it (too bright even at 0.05 s unless the dead zone's edge is dim enough)
        flux = target * 10 ** rng.uniform(np.log10(1 / 30), np.log10(3000)) / centre_illumination()
        params = PanelParams(max_brightness=max_b,
                             response=tuple((p[0], p[1]) for p in pts), max_flux_e_per_s=flux)
        if params.check():
            continue
        verdicts = {solvable(params, bits, T_MIN_S, T_MAX_S, w) for w in (-0.03, 0.0, 0.03)}
        at_t0 = {solvable(params, bits, T0_S, T0_S, w) for w in (-0.03, 0.0, 0.03)}
        if len(verdicts) > 1 or len(at_t0) > 1:
            continue                      # too close to the boundary to call
        ok = verdicts.pop()
        illum = centre_illumination()
        top = params.flux_e_per_s(max_b) * illum * T_MAX_S
        truth = "ok" if ok else ("too dim" if top < band(bits)[0] else "too bright")
        ratio = params.flux_e_per_s(max_b) * illum * T0_S / band(bits)[0] * (1 - TOL)
        return Panel(number, max_b, pts, flux, bits, ok, at_t0.pop(), truth, ratio)


WIDE_FAMILIES = ("convex", "concave", "s-shaped", "coarse")


def wide_panel(number: int, rng: np.random.Generator, family: str) -> Panel:
    """A panel from the wider families: 5-8 knots on a convex, concave or S-shaped curve above
    a dead zone (coarse: the same curves over 8-30 steps), light at full brightness 0.5x-500x
    what the target needs at the search exposure."""
    while True:
        if family == "coarse":
            max_b = int(rng.integers(8, 31))
            shape = str(rng.choice(["convex", "concave", "s-shaped"]))
        else:
            max_b = int(round(10 ** rng.uniform(2.0, np.log10(4095))))
            shape = family
        knots = int(rng.integers(5, 9))
        edge = max(1, int(round(rng.uniform(0.0, 0.2) * max_b)))
        if edge >= max_b - knots:
            edge = 1
        f_min = 10 ** rng.uniform(-3.5, -1.0)
        x = np.unique(np.round(np.linspace(edge + 1, max_b, knots)))
        u = (x - x[0]) / (x[-1] - x[0])
        if shape == "convex":
            y = u ** rng.uniform(1.5, 3.5)
        elif shape == "concave":
            y = u ** rng.uniform(0.3, 0.7)
        else:
            k, c = rng.uniform(6, 14), rng.uniform(0.3, 0.7)
            sig = 1 / (1 + np.exp(-k * (u - c)))
            y = (sig - sig[0]) / (sig[-1] - sig[0])
        y = f_min + (1 - f_min) * y
        pts = [[0.0, 0.0], [float(edge), 0.0]] + [[float(a), round(float(b), 7)]
                                                  for a, b in zip(x, y)]
        pts[-1][1] = 1.0
        bits = int(rng.choice([12, 14, 16]))
        illum = centre_illumination()
        ratio = 10 ** rng.uniform(np.log10(0.5), np.log10(500))
        flux = ratio * band(bits)[0] / (1 - TOL) / illum / T0_S
        params = PanelParams(max_brightness=max_b, response=tuple((p[0], p[1]) for p in pts),
                             max_flux_e_per_s=flux)
        if params.check():
            continue
        verdicts = {solvable(params, bits, T_MIN_S, T_MAX_S, w) for w in (-0.03, 0.0, 0.03)}
        at_t0 = {solvable(params, bits, T0_S, T0_S, w) for w in (-0.03, 0.0, 0.03)}
        if len(verdicts) > 1 or len(at_t0) > 1 or not verdicts.pop():
            continue
        return Panel(number, max_b, pts, flux, bits, True, at_t0.pop(), "ok", ratio, family)


def run_indical(panel: Panel, tmp: Path, night: int = 1) -> tuple[int, str, str, int]:
    """(exposures until the first accepted flat or the refusal, outcome, message, bias
    frames taken besides). Night 2 starts from the settings night 1 stored."""
    spec = parse_rig(panel.rig(), f"panel {panel.number}")
    folder = tmp / f"indical-{panel.number}"
    night_folder = folder / f"night-{night}"
    with open_rig(spec) as rig:
        result = run_sequence(ROOT / "sequences" / "panel_flats.py", rig,
                              FitsFolderSink(night_folder), log_path=night_folder / "log.jsonl",
                              store=TrainedStore(folder / "trained.sqlite"),
                              overrides={"FLATS_PER_FILTER": 1, "DARK_FLATS_PER_EXPOSURE": 1,
                                         "EXPOSURE_S": T0_S})
    entries = list(read_log(night_folder / "log.jsonl"))
    searches = [e for e in entries if e["kind"] == "search"]
    biases = sum(e["kind"].startswith("bias") for e in entries)
    if result.error is None:
        assert searches and searches[-1]["accepted"]
        return len(searches), "ok", "", biases
    message = str(result.error)
    refusal = getattr(result.error, "refusal", None)
    outcome = refusal.kind.value if refusal is not None else f"error: {type(result.error).__name__}"
    return len(searches), outcome, message, biases


def run_bisection(panel: Panel) -> tuple[int, bool]:
    """N.I.N.A.-style: integer bisection, whole-frame raw mean vs fraction of 2^bits."""
    spec = parse_rig(panel.rig(), f"panel {panel.number}")
    full = float(1 << panel.bits)
    lo_adu, hi_adu = TARGET * full * (1 - TOL), TARGET * full * (1 + TOL)
    with open_rig(spec) as rig:
        panel_dev, camera = rig.panel, rig.camera
        panel_dev.on()
        lo, hi = 0, panel.max_brightness
        for n in range(1, NINA_MAX_FRAMES + 1):
            b = (lo + hi) // 2
            panel_dev.set_brightness(b)
            mean = float(camera.expose(T0_S, FrameType.FLAT).data.mean())
            if lo_adu <= mean <= hi_adu:
                return n, True
            if mean < lo_adu:
                lo = b
            else:
                hi = b
        return NINA_MAX_FRAMES, False


def summary(values: list[int]) -> tuple[float, int] | None:
    return (statistics.median(values), max(values)) if values else None


def stats(values: list[int]) -> str:
    if not values:
        return "n/a"
    v = sorted(values)
    p95 = v[min(len(v) - 1, int(np.ceil(0.95 * len(v))) - 1)]
    return f"median {statistics.median(v):g}, p95 {p95}, max {v[-1]} (n={len(v)})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--panels", type=int, default=60)
    ap.add_argument("--wide", type=int, default=25, help="panels per wider family")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None, help="write the per-panel results here")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    panels = [random_panel(i, rng) for i in range(args.panels)]
    rows = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="indical-bench-") as tmp:
        for p in panels:
            n, outcome, message, biases = run_indical(p, Path(tmp))
            nb, ok_b = run_bisection(p)
            rows.append(dict(panel=p.number, steps=f"0-{p.max_brightness}", bits=p.bits,
                             truth=p.truth, solvable_at_t0=p.solvable_at_t0,
                             light_ratio=p.light_ratio, bias_frames=biases,
                             indical_exposures=n, indical_outcome=outcome,
                             bisection_exposures=nb, bisection_ok=ok_b, message=message))
        wide_rows = []
        wrng = np.random.default_rng(args.seed + 1000)
        number = len(panels)
        for family in WIDE_FAMILIES:
            for _ in range(args.wide):
                p = wide_panel(number, wrng, family)
                number += 1
                n, outcome, message, _ = run_indical(p, Path(tmp))
                n2, outcome2, _, _ = run_indical(p, Path(tmp), night=2) if outcome == "ok" \
                    else (0, "", "", 0)
                nb, ok_b = run_bisection(p)
                wide_rows.append(dict(panel=p.number, family=family, steps=f"0-{p.max_brightness}",
                                      bits=p.bits, light_ratio=p.light_ratio,
                                      indical_exposures=n, indical_outcome=outcome,
                                      trained_exposures=n2, trained_outcome=outcome2,
                                      bisection_exposures=nb, bisection_ok=ok_b,
                                      message=message))
    elapsed = time.perf_counter() - t_start

    solv = [r for r in rows if r["truth"] == "ok"]
    unsolv = [r for r in rows if r["truth"] != "ok"]
    at_t0 = [r for r in rows if r["solvable_at_t0"]]
    ok_ind = [r for r in solv if r["indical_outcome"] == "ok"]
    right_refusals = [r for r in unsolv if r["indical_outcome"] == r["truth"]]
    ok_ind_t0 = [r for r in at_t0 if r["indical_outcome"] == "ok"]
    ok_bis_t0 = [r for r in at_t0 if r["bisection_ok"]]

    print(f"{len(rows)} random panels ({sum(r['steps'] == '0-100' for r in rows)} x 0-100, "
          f"{sum(r['steps'] == '0-255' for r in rows)} x 0-255, "
          f"{sum(r['steps'] == '0-4095' for r in rows)} x 0-4095; "
          f"bits 12/14/16: {[sum(r['bits'] == b for r in rows) for b in (12, 14, 16)]}); "
          f"{len(solv)} solvable within {T_MIN_S:g}-{T_MAX_S:g} s, {len(at_t0)} of them at "
          f"{T0_S:g} s by brightness alone, {len(unsolv)} not solvable "
          f"({sum(r['truth'] == 'too dim' for r in unsolv)} too dim, "
          f"{sum(r['truth'] == 'too bright' for r in unsolv)} too bright)")
    print(f"wall time for both methods on all panels: {elapsed:.1f} s")
    print()
    print("indical (sequences/panel_flats.py), exposures until the first accepted flat:")
    print(f"  all solvable panels:        {stats([r['indical_exposures'] for r in ok_ind])}; "
          f"success {len(ok_ind)}/{len(solv)}")
    print(f"  solvable at {T0_S:g} s:          {stats([r['indical_exposures'] for r in ok_ind_t0])}; "
          f"success {len(ok_ind_t0)}/{len(at_t0)}")
    print(f"  unsolvable panels: correct refusal {len(right_refusals)}/{len(unsolv)}, exposures "
          f"until refusal {stats([r['indical_exposures'] for r in unsolv])}")
    for label, rows_ in (("light at full brightness <= 100x target", [r for r in ok_ind if r["light_ratio"] <= 100]),
                         ("light at full brightness > 100x target", [r for r in ok_ind if r["light_ratio"] > 100])):
        print(f"  {label + ':':39} {stats([r['indical_exposures'] for r in rows_])}")
    print(f"  besides: bias frames per run (one per camera configuration, shared by all "
          f"filters): {stats([r['bias_frames'] for r in rows])}")
    print("baseline (integer bisection of brightness, whole-frame mean, <= 21 frames):")
    print(f"  solvable at {T0_S:g} s:          {stats([r['bisection_exposures'] for r in ok_bis_t0])}; "
          f"success {len(ok_bis_t0)}/{len(at_t0)}")
    print(f"  all solvable panels:        success {sum(r['bisection_ok'] for r in solv)}/{len(solv)}")
    print(f"  unsolvable panels:          frames spent before giving up "
          f"{stats([r['bisection_exposures'] for r in unsolv if not r['bisection_ok']])}")
    if ok_ind_t0 and ok_bis_t0:
        both = [r for r in at_t0 if r["indical_outcome"] == "ok" and r["bisection_ok"]]
        if both:
            ratio = statistics.median(r["indical_exposures"] for r in both) / \
                statistics.median(r["bisection_exposures"] for r in both)
            print(f"  median ratio indical/baseline on panels both solved: {ratio:.2f}")
    failures = [r for r in solv if r["indical_outcome"] != "ok"] + \
        [r for r in unsolv if r["indical_outcome"] != r["truth"]]
    for r in failures:
        print(f"  MISS panel {r['panel']} ({r['steps']}, {r['bits']} bit, truth {r['truth']}): "
              f"{r['indical_outcome']} after {r['indical_exposures']}: {r['message']}")
    print()
    print(f"wider families ({args.wide} solvable panels each; light at full brightness 0.5x-500x "
          f"the target's need at {T0_S:g} s), exposures until the first accepted flat:")
    print(f"  {'family':10} {'indical':38} {'bisection (panels it solved)':40} trained night 2")
    family_goals = {}
    for family in WIDE_FAMILIES + ("all wide",):
        fam = [r for r in wide_rows if family == "all wide" or r["family"] == family]
        ok = [r for r in fam if r["indical_outcome"] == "ok"]
        bis = [r["bisection_exposures"] for r in fam if r["bisection_ok"]]
        trained = [r["trained_exposures"] for r in ok if r["trained_outcome"] == "ok"]
        family_goals[family] = summary([r["indical_exposures"] for r in ok]) \
            if len(ok) == len(fam) else None
        print(f"  {family:10} {stats([r['indical_exposures'] for r in ok]):31} "
              f"{len(ok)}/{len(fam)}  {stats(bis):31} {len(bis)}/{len(fam)}  "
              f"{stats(trained)}")
    for r in wide_rows:
        if r["indical_outcome"] != "ok":
            print(f"  MISS panel {r['panel']} ({r['family']}, {r['steps']}, {r['bits']} bit, "
                  f"light {r['light_ratio']:.1f}x): {r['indical_outcome']} after "
                  f"{r['indical_exposures']}: {r['message']}")
    if args.json:
        args.json.write_text(json.dumps(rows + wide_rows, indent=1))
    family_goals["benchmark"] = summary([r["indical_exposures"] for r in ok_ind]) \
        if len(ok_ind) == len(solv) else None
    trained_one = all(r["trained_exposures"] == 1 for r in wide_rows
                      if r["indical_outcome"] == "ok")
    print()
    for family, got in family_goals.items():
        met = got is not None and got[0] <= 3 and got[1] <= 6
        print(f"goal {family}: median <= 3, max <= 6, 100 % success: "
              + ("met" if met else "NOT met")
              + (f" (median {got[0]:g}, max {got[1]})" if got else " (a solvable panel failed)"))
    print(f"goal: trained settings give the first flat in 1 exposure on night 2: "
          f"{'met' if trained_one else 'NOT met'}")
    goal = trained_one and all(g is not None and g[0] <= 3 and g[1] <= 6
                               for g in family_goals.values())
    return 0 if goal else 1


if __name__ == "__main__":
    sys.exit(main())
