"""What the sun's altitude costs a twilight sequence: ERFA without Earth-orientation tables
(`indical.twilight.sun`, now) against astroplan's `Observer.sun_altaz` (astropy's AltAz frame,
which reads the IERS tables: before), in the same run.

Each case is a fresh Python process, 5 times, alternating; per process: the import, the first
call (a 36-hour path at 60 s steps, as `next_twilight` asks; it reads the IERS table before),
then the median of 20 more such calls and of 20 single times (`twilight_at`, the flat spot's
azimuth). Figures are medians over the processes, in ms, and the largest altitude difference.
Run: .venv/bin/python benchmarks/bench_sun.py"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

CASE = """
import json, time
t0 = time.perf_counter()
import numpy as np
from indical.site import Site
site = Site(52.0, 5.0, 10.0)
path = 1774000000.0 + 60.0 * np.arange(2161)
if {before!r}:
    from astropy.time import Time
    from astroplan import Observer
    obs = Observer(location=site.earth_location())
    def alt(t):
        return obs.sun_altaz(Time(np.atleast_1d(t), format="unix")).alt.deg
else:
    from indical.twilight.sun import sun_altaz_deg
    def alt(t):
        return sun_altaz_deg(site, t)[0]
t1 = time.perf_counter()
first = alt(path)
t2 = time.perf_counter()
paths, singles = [], []
for i in range(20):
    a = time.perf_counter(); alt(path + i); paths.append(time.perf_counter() - a)
    a = time.perf_counter(); alt(path[i * 100]); singles.append(time.perf_counter() - a)
print(json.dumps(dict(imports=t1 - t0, first=t2 - t1, path=sorted(paths)[10],
                     single=sorted(singles)[10], alts=list(first))))
"""


def main() -> None:
    results: dict[str, list[dict]] = {"before: astroplan (IERS)": [], "now: ERFA": []}
    for _ in range(5):
        for name in results:
            out = subprocess.run([sys.executable, "-c", CASE.format(before=name.startswith("b"))],
                                 capture_output=True, text=True, check=True).stdout
            results[name].append(json.loads(out))
    print(f"{'case':<26}{'imports':>9}{'first call':>12}{'36 h path':>11}{'one time':>10}  (ms)")
    for name, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) * 1000
               for k in ("imports", "first", "path", "single")}
        print(f"{name:<26}{med['imports']:9.1f}{med['first']:12.1f}{med['path']:11.2f}"
              f"{med['single']:10.3f}")
    before, now = (runs[0]["alts"] for runs in results.values())
    print(f"largest altitude difference over the path: "
          f"{max(abs(a - b) for a, b in zip(before, now)):.5f} deg")


if __name__ == "__main__":
    main()
