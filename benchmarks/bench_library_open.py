"""What opening the calibration library costs through SQLAlchemy, against the bare sqlite3 module
the library used before, in the same run (every `indical library`, `calibrate`, `needs` ...
command opens it once).

Each case is a fresh Python process that imports indical.calib.library (as every library
command does), then runs the case, 7 times; median wall time from the import's start to the
end, the whole process's CPU time (steadier than wall time on a shared machine) and its peak
RSS (VmHWM):
1. imports only: the floor.
2. sqlite3 (before): connect, the PRAGMAs, read user_version (what indical did before).
3. sqlalchemy (now): `CalibrationLibrary(path)` and close (SQLAlchemy Core, schema checked).
4. sqlalchemy + alembic: case 3 plus importing Alembic's migration runtime, the price of
   keeping migrations with Alembic (measured only when Alembic is installed).
Run: .venv/bin/python benchmarks/bench_library_open.py"""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# every case first imports what a library command imports anyway (the module and numpy)
PRELUDE = "import indical.calib.library\n"
CASES = {
    "imports only": "pass",
    "sqlite3 (before)": """
import sqlite3
con = sqlite3.connect(PATH, timeout=30.0, isolation_level=None)
for p in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
    con.execute("PRAGMA " + p)
con.execute("PRAGMA user_version").fetchone()
con.close()""",
    "sqlalchemy (now)": """
indical.calib.library.CalibrationLibrary(PATH).close()""",
    "sqlalchemy + alembic": """
import alembic.runtime.migration, alembic.operations, alembic.script
indical.calib.library.CalibrationLibrary(PATH).close()""",
}

RUNNER = """
import json, resource, sys, time
PATH = sys.argv[1]
t0 = time.perf_counter()
exec(compile(sys.argv[2], "case", "exec"))  # the prelude, then the case's body
elapsed = time.perf_counter() - t0
# VmHWM, not ru_maxrss: the latter keeps the parent's size from before exec
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"s": elapsed, "cpu": ru.ru_utime + ru.ru_stime, "rss_mb": hwm / 1024}))
"""


def run(body: str, path: Path, repeats: int = 7) -> tuple[float, float, float]:
    times, cpu, rss = [], [], []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", RUNNER, str(path), PRELUDE + body], check=True,
                             capture_output=True, text=True).stdout
        r = json.loads(out)
        times.append(r["s"])
        cpu.append(r["cpu"])
        rss.append(r["rss_mb"])
    return statistics.median(times), statistics.median(cpu), statistics.median(rss)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "library.sqlite"
        from indical.calib.library import CalibrationLibrary
        CalibrationLibrary(path).close()  # an existing library, as commands usually find it
        results = {}
        for name, body in CASES.items():
            if "alembic" in name and importlib.util.find_spec("alembic") is None:
                print(f"{name:22s} (Alembic not installed: pip install alembic to measure)")
                continue
            results[name] = run(body, path)
        base_s, base_cpu, base_mb = results["sqlite3 (before)"]
        for name, (s, cpu, mb) in results.items():
            print(f"{name:22s} wall {1000 * s:7.1f} ms  process CPU {1000 * cpu:7.1f} ms  "
                  f"peak RSS {mb:6.1f} MB  (against sqlite3: CPU {1000 * (cpu - base_cpu):+7.1f} "
                  f"ms, RSS {mb - base_mb:+5.1f} MB)")


if __name__ == "__main__":
    main()
