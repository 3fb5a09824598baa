"""American pricing for early-exercise decisions: accuracy against a CRR tree, and cost.

    python benchmarks/bench_american.py [--tree-steps 2000]

Grid: puts and calls, K = 100, spot 70-130, 5-60 trading days, vol 0.1-0.6, r 0-6%, q 0-6%.
For each approximation (Barone-Adesi-Whaley 1987, Bjerksund-Stensland 2002) prints the max and
mean absolute error against the tree ($ per share), the share of grid points where the
early-exercise decision (time value < $0.05) differs from the tree's, and the exercise boundary
of the issue's example (K 437, vol 0.21, r 4%, q 1.3%) at 20/10/5 trading days; then ns per
evaluation beside Black-Scholes measured in the same run.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcsim.american import baw_price_nb, bs2002_price_nb, crr_price_nb, exercise_boundary  # noqa: E402
from mcsim.pricing import bs_price_nb  # noqa: E402

THRESHOLD = 0.05


@njit(cache=True)
def _loop_baw(n):
    s = 0.0
    for i in range(n):
        s += baw_price_nb(400.0 + (i % 50), 437.0, 0.02 + (i % 7) * 0.01, 0.04, 0.013, 0.21, (i & 1) == 1)
    return s


@njit(cache=True)
def _loop_bs2002(n):
    s = 0.0
    for i in range(n):
        s += bs2002_price_nb(400.0 + (i % 50), 437.0, 0.02 + (i % 7) * 0.01, 0.04, 0.013, 0.21, (i & 1) == 1)
    return s


@njit(cache=True)
def _loop_bs(n):
    s = 0.0
    for i in range(n):
        s += bs_price_nb(400.0 + (i % 50), 437.0, 0.02 + (i % 7) * 0.01, 0.04, 0.013, 0.21, (i & 1) == 1)
    return s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree-steps", type=int, default=2000)
    args = ap.parse_args(argv)
    grid = list(itertools.product((False, True), np.linspace(70, 130, 13), (5, 10, 20, 40, 60),
                                  (0.1, 0.2, 0.35, 0.6), (0.0, 0.03, 0.06), (0.0, 0.02, 0.06)))
    errs = {"baw": [], "bs2002": []}
    flips = {"baw": 0, "bs2002": 0}
    for is_call, s, days, vol, r, q in grid:
        t = days / 252
        ref = crr_price_nb(s, 100.0, t, r, q, vol, is_call, args.tree_steps)
        intrinsic = max(s - 100.0, 0.0) if is_call else max(100.0 - s, 0.0)
        for name, f in (("baw", baw_price_nb), ("bs2002", bs2002_price_nb)):
            p = f(s, 100.0, t, r, q, vol, is_call)
            errs[name].append(abs(p - ref))
            flips[name] += ((p - intrinsic) < THRESHOLD) != ((ref - intrinsic) < THRESHOLD)
    print(f"accuracy on {len(grid)} grid points against a {args.tree_steps}-step CRR tree (K = 100, $ per share)")
    for name in errs:
        e = np.array(errs[name])
        print(f"  {name:7s} max |err| {e.max():.4f}  mean {e.mean():.5f}  p99 {np.quantile(e, 0.99):.4f}  "
              f"early-exercise decision differs on {flips[name]} points ({100 * flips[name] / len(grid):.2f}%)")
    print("put exercise boundary (time value < $0.05), % in the money, K 437, vol 0.21, r 4%, q 1.3%:")
    for days in (20, 10, 5):
        row = [f"{m} {100 * (1 - exercise_boundary(437.0, days / 252, 0.04, 0.013, 0.21, False, m, THRESHOLD, args.tree_steps) / 437):.2f}%"
               for m in ("crr", "baw", "bs2002")]
        print(f"  {days:2d} trading days left: " + ", ".join(row))
    n = 400_000
    timings = {}
    for name, f in (("black_scholes", _loop_bs), ("baw", _loop_baw), ("bs2002", _loop_bs2002)):
        f(10)
        best = min(_timed(f, n) for _ in range(3))
        timings[name] = best / n * 1e9
    print("cost per evaluation (best of 3, one thread):")
    for name, ns in timings.items():
        print(f"  {name:13s} {ns:8.0f} ns  ({ns / timings['black_scholes']:.1f}x Black-Scholes)")
    return 0


def _timed(f, n) -> float:
    t0 = time.perf_counter()
    f(n)
    return time.perf_counter() - t0


if __name__ == "__main__":
    raise SystemExit(main())
