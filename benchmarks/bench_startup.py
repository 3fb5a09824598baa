"""Start-up of issue 13: `mcsim run spy_wheel --paths 1000 --quiet` on a warm cache.

    python benchmarks/bench_startup.py [--repeat 5] [--paths 1000] [--scenario spy_wheel]

One run first (numba's cache and mcsim's bytecode written or loaded, nothing timed), then --repeat runs of the
command in a fresh process each (`python -m mcsim run ... --out TMP --force`): the wall time of
the process, median and all. Then --repeat runs of the same command with timers wrapped around
its phases (in a fresh process each, medians): the import of mcsim.cli, the simulation, the
summary, the result files (`io.write_result_files`: the Parquet files on a thread, the plots in
this process and a forked child, report.html, summary.json), and what the command does around
them (scenario loading, staging, the table printed). Used by benchmarks/run.py (`startup`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# the command with timers, run in a fresh process (argv: out_dir paths scenario); prints JSON
_PHASES = r"""
import json, sys, time
t0 = time.perf_counter()
import mcsim.cli as cli
T = {"import mcsim.cli": time.perf_counter() - t0}
from mcsim import io, metrics, report

def wrap(mod, name, label):
    f = getattr(mod, name)
    def g(*a, **k):
        s = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            T[label] = T.get(label, 0.0) + time.perf_counter() - s
    setattr(mod, name, g)

wrap(cli, "_simulate", "simulate")
wrap(metrics, "summarize", "summarize")
wrap(io, "write_result_files", "write files (total)")
wrap(report, "write_report", "  of which report.html")
s = time.perf_counter()
import mcsim.plots as plots  # imported by write_result_files; timed apart
T["import mcsim.plots"] = time.perf_counter() - s
wrap(plots.PlotJob, "finish", "  of which plots (both processes)")
out, paths, scenario = sys.argv[1:4]
t1 = time.perf_counter()
rc = cli.main(["run", scenario, "--paths", paths, "--quiet", "--out", out, "--force"])
T["command (after the import)"] = time.perf_counter() - t1
T["total in the process"] = time.perf_counter() - t0
print(json.dumps(T))
"""


def _env() -> dict:
    env = dict(os.environ)
    # as on a user's machine: the warm-up run writes mcsim's bytecode, later runs load it (this
    # sandbox sets PYTHONDONTWRITEBYTECODE, which would recompile every source on each run)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _run(out: Path, paths: int, scenario: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mcsim", "run", scenario, "--paths", str(paths), "--quiet",
                    "--out", str(out), "--force"], check=True, env=_env(), cwd=ROOT)
    return time.perf_counter() - t


def bench_startup(repeat: int = 5, paths: int = 1000, scenario: str = "spy_wheel") -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "r"
        _run(out, paths, scenario)          # warm-up: numba's cache, the OS's file cache
        walls = [_run(out, paths, scenario) for _ in range(repeat)]
        phases: dict[str, list[float]] = {}
        for _ in range(repeat):
            p = subprocess.run([sys.executable, "-c", _PHASES, str(out), str(paths), scenario], check=True,
                               env=_env(), cwd=ROOT, capture_output=True, text=True)
            for k, v in json.loads(p.stdout.strip().splitlines()[-1]).items():
                phases.setdefault(k, []).append(v)
    return {"command": f"mcsim run {scenario} --paths {paths} --quiet", "wall_s": round(statistics.median(walls), 2),
            "walls_s": [round(w, 2) for w in walls],
            "phases_s": {k: round(statistics.median(v), 2) for k, v in phases.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--paths", type=int, default=1000)
    ap.add_argument("--scenario", default="spy_wheel")
    a = ap.parse_args(argv)
    r = bench_startup(a.repeat, a.paths, a.scenario)
    print(f"{r['command']}: {r['wall_s']:.2f} s wall (median of {a.repeat}: {r['walls_s']}); target < 3 s")
    for k, v in r["phases_s"].items():
        print(f"  {k:<36}{v:6.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
