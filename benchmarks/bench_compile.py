"""numba compile cost: cold compile, then cached load, of every kernel a run uses.

    python benchmarks/bench_compile.py [--repeat 3]

Each measurement is a fresh Python process with its own empty `NUMBA_CACHE_DIR` (cold), then a
second process on the same directory (cached). The child imports mcsim, then times, in order:
the market kernels (`simulate_market` on spy_wheel.toml, 8 paths), the strategy kernels
(`run_strategies` on that market: every kind of the scenario plus the baselines), a replay (the
logging path) and the kernels of the other kinds (put_index.toml: put_write). The median of
--repeat cold/cached pairs is printed per phase, in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import mcsim
from mcsim.engine import replay_market
t1 = time.perf_counter()
root = sys.argv[1]
sc = mcsim.load_scenario(root + "/scenarios/spy_wheel.toml", ["run.horizon_years=0.25"])
m = mcsim.simulate_market(sc, n_paths=8, seed=1)
t2 = time.perf_counter()
mcsim.run_strategies(sc, m, threads=1)
t3 = time.perf_counter()
replay_market(sc, m, sc.strategies[0].name)
t4 = time.perf_counter()
extra = sorted(p for p in (root + "/scenarios/put_index.toml", root + "/scenarios/buy_write.toml")
               if __import__("os").path.exists(p))
for f in extra:
    s2 = mcsim.load_scenario(f, ["run.horizon_years=0.25"])
    mcsim.run_strategies(s2, mcsim.simulate_market(s2, n_paths=8, seed=1), threads=1)
t5 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "market": t2 - t1, "strategies": t3 - t2, "replay": t4 - t3,
                  "other kinds": t5 - t4, "total": t5 - t0}))
"""


def _child(cache_dir: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT)], env=env, check=True,
                         capture_output=True, text=True, cwd=str(ROOT))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    cold, cached = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="mcsim-numba-") as d:
            cold.append(_child(d))
            cached.append(_child(d))
    keys = list(cold[0])
    print(f"{'phase':12s} {'cold s':>8s} {'cached s':>9s}   (median of {args.repeat})")
    for k in keys:
        print(f"{k:12s} {statistics.median(r[k] for r in cold):8.2f} "
              f"{statistics.median(r[k] for r in cached):9.2f}")
    return {k: (statistics.median(r[k] for r in cold), statistics.median(r[k] for r in cached))
            for k in keys}


if __name__ == "__main__":
    main()
