"""Sweep cost of issue 13: 27 rule sets on one shared market against 27 separate simulations.

    python benchmarks/bench_sweep.py [--paths 100000] [--years 1] [--repeat 3] [--with-others]

The grid is 3 x 3 x 3 strategy keys of scenarios/spy_wheel.toml's wheel (`GRID`: put delta,
put DTE, profit take), 27 rule sets, applied as `--set` overrides exactly as `mcsim sweep` builds
its grid points (itertools.product in --grid order). Two ways of running them, same paths, same
seed:

* shared: what `mcsim sweep` does when every --grid key is a strategy key (mcsim/cli.py
  `cmd_sweep`): the 27 rule sets become 27 strategies `wheel_30d@i` of one combined scenario, and
  one `mcsim.simulate` generates each chunk's market once and runs all 27 (plus the baselines) on it;
* naive: 27 separate `mcsim.simulate` calls, one per rule set, each regenerating the same market
  from the same seed (what `mcsim sweep` does for a grid with a market key, one simulate per point).

By default each scenario holds only the wheel (spy_wheel's unvaried put_spread_45d is dropped, so
the saving is the market generation plus the baselines' and the per-call overhead, not a second
strategy run 26 extra times); --with-others keeps it (once in the shared run, as `mcsim sweep`
does, and in every naive run). Timed: `simulate` alone (the sweep's per-point metrics and files
cost the same both ways and are left out). Market generation alone is timed too: the scenario's
chunk generator over the same chunks, threads and buffers as the engine uses. Shared and naive
are timed alternately (shared first on even repeats, naive first on odd ones) and medians are
reported. Identity: the per-path final equity of every rule set in the shared run is compared
bit for bit (int64 view, so -0.0 and NaN count) with its naive run, and so is every numeric
per-path column.

`bench_sweep(n_paths, years, repeat)` returns the figures as a dict (for benchmarks/run.py).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mcsim  # noqa: E402
from mcsim.market import resolve_threads  # noqa: E402
from mcsim.market.source import chunk_generator  # noqa: E402
from mcsim.scenario import parse_scenario  # noqa: E402

SCENARIO = ROOT / "scenarios" / "spy_wheel.toml"
WHEEL = "wheel_30d"
# the 3 x 3 x 3 grid: strategy keys only, so `mcsim sweep` shares one market across the points
GRID = (
    (f"strategies.{WHEEL}.put.delta", ("0.20", "0.30", "0.40")),
    (f"strategies.{WHEEL}.put.dte", ("21", "35", "49")),
    (f"strategies.{WHEEL}.manage.profit_take", ("0.0", "0.5", "0.75")),
)


def grid_args() -> list[str]:
    """The grid as `mcsim sweep --grid` arguments."""
    out = []
    for k, vals in GRID:
        out += ["--grid", f"{k}={','.join(vals)}"]
    return out


def grid_points() -> list[tuple[str, ...]]:
    return list(itertools.product(*[v for _, v in GRID]))


def _keep_only(sc, names):
    raw = sc.to_dict()
    raw["strategies"] = [e for e in raw["strategies"] if e["name"] in names]
    return parse_scenario(raw, source=sc.source, max_strategies=None)


def point_scenarios(n_paths: int, years: float, with_others: bool = False) -> list:
    """One scenario per grid point, loaded the way `mcsim sweep` loads them (--set overrides)."""
    base = [f"run.horizon_years={years:g}", f"run.paths={n_paths}"]
    keys = [k for k, _ in GRID]
    out = []
    for pt in grid_points():
        sc = mcsim.load_scenario(SCENARIO, base + [f"{k}={v}" for k, v in zip(keys, pt)])
        out.append(sc if with_others else _keep_only(sc, {WHEEL}))
    return out


def combined_scenario(points: list):
    """What `cmd_sweep` simulates for a strategy-only grid: the unvaried strategies once, the
    varied one once per point, renamed `name@i`."""
    raw = points[0].to_dict()
    keep = [e for e in raw["strategies"] if e["name"] != WHEEL]
    extra = []
    for i, sc in enumerate(points):
        for e in sc.to_dict()["strategies"]:
            if e["name"] == WHEEL:
                extra.append({**e, "name": f"{WHEEL}@{i}"})
    raw["strategies"] = keep + extra
    return parse_scenario(raw, source=points[0].source, max_strategies=None)


def market_only(sc, n_paths: int, seed: int) -> float:
    """Seconds to generate the market of `n_paths` paths chunk by chunk, as `simulate` does."""
    run = sc.run
    chunk = run.chunk_paths
    threads = resolve_threads(None)
    gen = chunk_generator(sc)
    rows = min(chunk, n_paths)
    n_u = sc.n_underlyings
    buf = (np.empty((rows, run.n_steps + 1, n_u)), np.empty((rows, run.n_steps + 1, n_u)),
           np.empty((rows, run.n_steps + 1), dtype=np.int8))
    t0 = time.perf_counter()
    for first in range(0, n_paths, chunk):
        gen(seed, first, min(chunk, n_paths - first), out=buf, threads=threads)
    return time.perf_counter() - t0


def _final(res, name):
    pp = res.per_path
    return pp[pp["strategy"] == name]


def _bits(a) -> np.ndarray:
    a = np.ascontiguousarray(np.asarray(a))
    return a.view(np.int64) if a.dtype == np.float64 else a


def _same(a, b) -> bool:
    return a.shape == b.shape and bool(np.array_equal(_bits(a), _bits(b)))


def bench_sweep(n_paths: int = 100_000, years: float = 1.0, repeat: int = 3, with_others: bool = False,
                verbose: bool = False) -> dict:
    """Shared-market sweep against 27 separate simulations; medians of `repeat` alternating runs."""
    say = print if verbose else (lambda *a, **k: None)
    points = point_scenarios(n_paths, years, with_others)
    combined = combined_scenario(points)
    seed = combined.run.seed
    n_steps = combined.run.n_steps
    k = len(points)
    names = [f"{WHEEL}@{i}" for i in range(k)]
    # warm-up: compile or load every kernel, on a few paths
    mcsim.simulate(combined, n_paths=256, seed=seed)
    market_only(combined, 256, seed)

    shared_t, naive_t, naive_each, market_t = [], [], [], []
    identity = None

    def shared():
        r = mcsim.simulate(combined, n_paths=n_paths, seed=seed)
        shared_t.append(r.wall_time)
        say(f"  shared: {r.wall_time:.1f} s")
        return r

    def naive():
        t0 = time.perf_counter()
        out, each = [], []
        for sc in points:
            r = mcsim.simulate(sc, n_paths=n_paths, seed=seed)
            each.append(r.wall_time)
            out.append(r)
        naive_t.append(time.perf_counter() - t0)
        naive_each.append(statistics.median(each))
        say(f"  naive: {naive_t[-1]:.1f} s (27 simulate calls, median {naive_each[-1]:.2f} s each)")
        return out

    for rep in range(repeat):
        say(f"repeat {rep + 1}/{repeat}")
        market_t.append(market_only(combined, n_paths, seed))
        say(f"  market generation alone: {market_t[-1]:.2f} s")
        if rep % 2 == 0:
            a = shared()
            b = naive()
        else:
            b = naive()
            a = shared()
        if identity is None:   # checked on the first repeat, then the tables are dropped
            cols = [c for c in a.per_path.columns if c != "strategy"]
            fe_same, all_same, bad = 0, 0, []
            for i, (name, rb) in enumerate(zip(names, b)):
                pa, pb = _final(a, name), _final(rb, WHEEL)
                ok = _same(pa["final_equity"].to_numpy(), pb["final_equity"].to_numpy())
                fe_same += ok
                if not ok:
                    bad.append(i)
                all_same += all(_same(pa[c].to_numpy(), pb[c].to_numpy()) for c in cols)
            base_same = all(_same(_final(a, s)["final_equity"].to_numpy(), _final(rb, s)["final_equity"].to_numpy())
                            for s in ("buy_and_hold", "cash") for rb in b)
            identity = {"rule_sets": k, "final_equity_bit_identical": fe_same, "all_columns_bit_identical": all_same,
                        "baselines_bit_identical": base_same, "mismatched_points": bad,
                        "final_equity_p50": [float(np.median(_final(a, n)["final_equity"])) for n in names]}
            say(f"  identity: final equity bit-identical for {fe_same}/{k} rule sets, every per-path column "
                f"for {all_same}/{k}")
        del a, b

    ts, tn, tm = (statistics.median(x) for x in (shared_t, naive_t, market_t))
    rule_steps = k * n_paths * n_steps
    return {
        "paths": n_paths, "years": years, "steps": n_steps, "rule_sets": k, "repeat": repeat,
        "chunk_paths": combined.run.chunk_paths, "threads": resolve_threads(None), "seed": seed,
        "with_others": with_others, "grid": {key: list(v) for key, v in GRID},
        "strategies_shared": [s.name for s in combined.strategies],
        "shared_s": ts, "naive_s": tn, "market_s": tm, "naive_per_call_s": statistics.median(naive_each),
        "shared_runs_s": shared_t, "naive_runs_s": naive_t, "market_runs_s": market_t,
        "shared_rule_path_steps_per_s": rule_steps / ts, "naive_rule_path_steps_per_s": rule_steps / tn,
        "market_path_steps_per_s": n_paths * n_steps / tm,
        "saving_s": tn - ts, "saving_pct": (tn - ts) / tn * 100.0,
        "market_regenerations_avoided_s": (k - 1) * tm,
        "identity": identity,
    }


def _load() -> str:
    try:
        return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average n/a"


def table(r: dict) -> str:
    k, n, s = r["rule_sets"], r["paths"], r["steps"]
    lines = [f"{k} rule sets x {n:,} paths x {s} steps ({r['years']:g} y), chunk {r['chunk_paths']:,}, "
             f"{r['threads']} threads, median of {r['repeat']} alternating runs",
             f"{'case':<52}{'wall s':>9}{'rule path-steps/s':>19}",
             f"{'sweep: one market per chunk, shared by all 27':<52}{r['shared_s']:>9.1f}"
             f"{r['shared_rule_path_steps_per_s'] / 1e6:>18.1f}M",
             f"{'naive: 27 simulate calls, market regenerated':<52}{r['naive_s']:>9.1f}"
             f"{r['naive_rule_path_steps_per_s'] / 1e6:>18.1f}M",
             f"{'market generation alone (once, {:,} paths)'.format(n):<52}{r['market_s']:>9.2f}"
             f"{r['market_path_steps_per_s'] / 1e6:>18.1f}M (market path-steps/s)",
             f"saving: {r['saving_s']:.1f} s ({r['saving_pct']:.1f}% of naive); 26 market regenerations alone: "
             f"{r['market_regenerations_avoided_s']:.1f} s"]
    idn = r["identity"]
    lines.append(f"identity: per-path final equity bit-identical for {idn['final_equity_bit_identical']}/{k} rule "
                 f"sets (every numeric per-path column: {idn['all_columns_bit_identical']}/{k}; baselines: "
                 f"{'yes' if idn['baselines_bit_identical'] else 'NO'})")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--paths", type=int, default=100_000)
    ap.add_argument("--years", type=float, default=1.0, help="run.horizon_years (default 1)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--with-others", action="store_true",
                    help="keep spy_wheel's unvaried put_spread_45d (once shared, in every naive run)")
    ap.add_argument("--quiet", action="store_true", help="only the table")
    a = ap.parse_args(argv)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"commit {commit}; {os.cpu_count()} cores; {_load()} (start)")
    r = bench_sweep(a.paths, a.years, a.repeat, a.with_others, verbose=not a.quiet)
    print(table(r))
    print(f"{_load()} (end)")
    return 0 if r["identity"]["final_equity_bit_identical"] == r["rule_sets"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
