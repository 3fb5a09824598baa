"""The benchmark table of issue 13: throughput against baselines measured in the same run, and
the peak memory of the end-to-end 1M-path command.

    python benchmarks/run.py [--paths 100000] [--repeat 5] [--rss-paths 1000000,2000000,4000000]
                             [--no-rss] [--out benchmarks/results.json]

Everything is warmed up (numba compiled, caches loaded) first; each figure is the median of
--repeat runs. Rows:

* market: `mcsim.simulate_market` on a one-underlying GBM scenario against a plain-numpy GBM
  (`Generator.standard_normal` + `cumsum` + `exp`, same paths x 252 steps);
* strategies, on spy_wheel's market (three regimes with jumps, pre-generated, not timed): the
  daily-entry 30-delta wheel and the 4-open spread ladder through the kernels with the engine's
  thread split, against a plain-numpy put writer vectorised across paths with a Python loop over
  steps (`numpy_put_writer`: sells a 21-step put 5% OTM whenever flat, marks it daily with
  Black-Scholes, settles in cash at expiry; a simpler rule set than the wheel's, so the ratio
  flatters numpy);
* mixed (`benchmarks/numpy_mixed.py`, `benchmarks/mixed.toml`): `simulate` and each strategy
  kernel of the daily-entry wheel + weekly 4-open spread ladder scenario against its plain-numpy
  twin, the same rules vectorised across paths with a Python loop over steps (`--mixed-paths`);
* start-up (`benchmarks/bench_startup.py`): `mcsim run spy_wheel --paths 1000` in a new process;
* sweep (`benchmarks/bench_sweep.py`, with `--sweep-paths N`): 27 rule sets on one shared market
  against 27 simulate calls;
* end to end: `mcsim run scenarios/spy_wheel.toml --paths N --set run.horizon_years=1 --quiet`
  in a subprocess under `/usr/bin/time -v` (wall time, peak RSS), results written.

Ends with issue 13's targets, one line each: the target, this run's figure, met or not. Writes
the table, the targets and the machine's description to --out (JSON) so figures compare across
commits.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import mcsim  # noqa: E402
from mcsim.engine import _split  # noqa: E402
from mcsim.market import resolve_threads  # noqa: E402
from mcsim.market.source import chunk_generator  # noqa: E402
from mcsim.scenario import parse_scenario  # noqa: E402
from mcsim.strategies.kernel import run_paths  # noqa: E402
from mcsim.strategies.layout import LOG_DT, MONTH_DT, PATH_DT, records  # noqa: E402
from mcsim.strategies.params import to_kernel, with_steps  # noqa: E402

from bench_strategies import bench_rules, bench_scenario  # noqa: E402


def _run(kp, market, pool, threads, n_months):
    """One strategy kernel over every row of `market` with the engine's thread split: seconds."""
    spot, iv, reg = market
    n = spot.shape[0]
    out_p = records(n, PATH_DT)
    out_m = records((n, n_months), MONTH_DT)
    log = records(1, LOG_DT)

    def task(b):
        run_paths(spot, iv, reg, b[0], b[1], kp.rules, out_p, out_m, log)

    t0 = time.perf_counter()
    list(pool.map(task, _split(n, threads)))
    return time.perf_counter() - t0

GBM = {"run": {"horizon_years": 1.0},
       "underlyings": [{"name": "SPY", "spot": 100.0, "dividend_yield": 0.015, "expected_return": 0.07,
                        "volatility": 0.18}]}


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def numpy_gbm(n_paths: int, n_steps: int, seed: int = 1) -> np.ndarray:
    """Plain numpy GBM: one array of normals, cumsum of the log increments, exp."""
    rng = np.random.default_rng(seed)
    dt = 1.0 / 252
    z = rng.standard_normal((n_paths, n_steps))
    logp = np.cumsum((0.07 - 0.015 - 0.5 * 0.18 ** 2) * dt + 0.18 * math.sqrt(dt) * z, axis=1)
    return 100.0 * np.exp(logp)


def _bs_put(s, k, t, vol, r=0.04):
    from scipy.special import ndtr

    sq = vol * np.sqrt(t)
    d1 = (np.log(s / k) + (r + 0.5 * vol * vol) * t) / sq
    d2 = d1 - sq
    return k * np.exp(-r * t) * ndtr(-d2) - s * ndtr(-d1)


def numpy_put_writer(spot: np.ndarray, iv: np.ndarray, dte: int = 21, otm: float = 0.05) -> np.ndarray:
    """Final equity of a cash-secured put writer, vectorised across paths, loop over steps."""
    n, m = spot.shape
    cash = np.full(n, 100_000.0)
    strike = np.zeros(n)
    expiry = np.full(n, -1)
    qty = np.zeros(n)
    equity = cash.copy()
    for t in range(m):
        s = spot[:, t]
        due = expiry == t
        if due.any():
            cash[due] -= qty[due] * 100.0 * np.maximum(strike[due] - s[due], 0.0)
            qty[due] = 0.0
            expiry[due] = -1
        flat = (expiry < 0) & (t + dte < m)
        if flat.any():
            k = np.floor(s[flat] * (1 - otm))
            prem = _bs_put(s[flat], k, dte / 252, iv[flat, t])
            qty[flat] = np.floor(cash[flat] / (k * 100.0))
            cash[flat] += qty[flat] * 100.0 * prem
            strike[flat], expiry[flat] = k, t + dte
        open_ = expiry > t
        mark = np.zeros(n)
        if open_.any():
            tl = (expiry[open_] - t) / 252
            mark[open_] = qty[open_] * 100.0 * _bs_put(s[open_], strike[open_], tl, iv[open_, t])
        equity = cash - mark
    return equity


def bench_market(n_paths: int, repeat: int) -> dict:
    sc = parse_scenario(GBM)
    n = sc.run.n_steps
    mcsim.simulate_market(sc, 1000, 1)
    numpy_gbm(1000, n)
    t_np = _median(lambda: numpy_gbm(n_paths, n), repeat)
    t_mc = _median(lambda: mcsim.simulate_market(sc, n_paths, 1), repeat)
    ps = n_paths * n
    return {"numpy_gbm": ps / t_np, "simulate_market_gbm": ps / t_mc, "ratio": t_np / t_mc}


def bench_strategies(n_paths: int, repeat: int) -> dict:
    sc = bench_scenario(252)
    n = sc.run.n_steps
    threads = resolve_threads(None)
    spot, iv, reg = chunk_generator(sc)(7, 0, n_paths, threads=threads)
    market = (spot, iv, reg)
    nm = -(-n // sc.run.month_steps)
    out = {}
    with ThreadPoolExecutor(threads) as pool:
        for case in ("wheel", "ladder"):
            kp = with_steps(to_kernel(bench_rules(sc)[case], sc), n, nm)
            small = tuple(a[:256] for a in market)
            _run(kp, small, pool, threads, nm)                      # warm-up
            out[case] = n_paths * n / statistics.median(_run(kp, market, pool, threads, nm)
                                                        for _ in range(repeat))
    base_paths = min(n_paths, 20_000)
    numpy_put_writer(spot[:256, :, 0], iv[:256, :, 0])
    t = _median(lambda: numpy_put_writer(spot[:base_paths, :, 0], iv[:base_paths, :, 0]), max(1, repeat // 2))
    out["numpy_put_writer"] = base_paths * (n + 1) / t
    out["wheel_ratio"] = out["wheel"] / out["numpy_put_writer"]
    out["ladder_ratio"] = out["ladder"] / out["numpy_put_writer"]
    return out


def _time_v(cmd: list[str]) -> dict:
    """Wall seconds and peak RSS (bytes) of a subprocess under /usr/bin/time -v."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env, cwd=ROOT)
    if p.returncode != 0:
        return {"error": " ".join(p.stderr.split())[-300:]}
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1)) * 1024
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", p.stderr).group(1)
    secs = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall.split(":"))))
    return {"wall_s": secs, "peak_rss_bytes": rss}


def bench_end_to_end(paths: list[int]) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for n in paths:
            target = Path(d) / f"run{n}"
            out[str(n)] = _time_v([sys.executable, "-m", "mcsim", "run", "scenarios/spy_wheel.toml", "--paths",
                                   str(n), "--set", "run.horizon_years=1", "--quiet", "--out", str(target)])
            if target.is_dir():
                out[str(n)]["output_bytes"] = sum(f.stat().st_size for f in target.iterdir())
    return out


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "commit": commit,
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


def _fmt(v, unit=""):
    if v is None:
        return "-"
    if unit == "ps":
        return f"{v / 1e6:,.1f}M"
    if unit == "x":
        return f"{v:,.1f}x"
    if unit == "GB":
        return f"{v / 2**30:,.2f} GiB"
    return f"{v:,.1f}"


def targets(res: dict) -> list[dict]:
    """Issue 13's targets against this run's figures: one row each (target, measured, met)."""
    rows = []

    def row(name, measured, met):
        rows.append({"target": name, "measured": measured, "met": met})

    m = res["market"]
    row("market: simulate_market >= 1.5x plain numpy GBM", f"{m['ratio']:.2f}x", m["ratio"] >= 1.5)
    if "mixed" in res:
        x = res["mixed"]["ratio_simulate_vs_numpy"]
        row("mixed scenario: simulate >= 30x its plain-numpy twin", f"{x:.1f}x", x >= 30)
    if "startup" in res:
        t = res["startup"]["wall_s"]
        row("start-up: mcsim run spy_wheel --paths 1000 < 3 s", f"{t:.2f} s", t < 3.0)
    if "sweep" in res:
        w = res["sweep"]
        row("sweep: 27 rule sets share one market per chunk (saving reported)",
            f"{w['saving_pct']:.0f}% saved, {w['identity']['final_equity_bit_identical']}/{w['rule_sets']} identical"
            if w.get("identity") else f"{w['saving_pct']:.0f}% saved", True)
    e2e = {int(n): e for n, e in res.get("end_to_end", {}).items() if "error" not in e}
    if 1_000_000 in e2e:
        e = e2e[1_000_000]
        row("1M-path command < 60 s wall", f"{e['wall_s']:.0f} s", e["wall_s"] < 60)
        row("1M-path command peak RSS < 2 GB", _fmt(e["peak_rss_bytes"], "GB"), e["peak_rss_bytes"] < 2e9)
    big = sorted(e2e)
    if len(big) >= 2 and big[0] >= 1_000_000:
        r0, r1 = e2e[big[0]]["peak_rss_bytes"], e2e[big[-1]]["peak_rss_bytes"]
        row(f"peak RSS flat from {big[0]:,} to {big[-1]:,} paths",
            " / ".join(_fmt(e2e[n]["peak_rss_bytes"], "GB") for n in big), r1 < 2e9 and r1 < 2 * r0)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--paths", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rss-paths", default="1000000,2000000,4000000")
    ap.add_argument("--no-rss", action="store_true")
    ap.add_argument("--mixed-paths", type=int, default=20_000, help="paths of the mixed benchmark (0: skip)")
    ap.add_argument("--sweep-paths", type=int, default=0, help="paths of the 27-rule-set sweep (0: skip)")
    ap.add_argument("--no-startup", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"))
    a = ap.parse_args(argv)
    mcsim.simulate(mcsim.load_scenario(ROOT / "scenarios" / "spy_wheel.toml", ["run.horizon_years=0.1"]),
                   n_paths=200)   # warm-up: compile or load every kernel
    res = {"machine": machine(), "paths": a.paths, "repeat": a.repeat,
           "market": bench_market(a.paths, a.repeat), "strategies": bench_strategies(a.paths, a.repeat)}
    if a.mixed_paths:
        from numpy_mixed import bench_mixed

        res["mixed"] = bench_mixed(a.mixed_paths, max(1, min(a.repeat, 3)))
    if not a.no_startup:
        from bench_startup import bench_startup

        res["startup"] = bench_startup(a.repeat)
    if a.sweep_paths:
        from bench_sweep import bench_sweep

        res["sweep"] = bench_sweep(a.sweep_paths, 1.0, max(1, min(a.repeat, 3)))
    if not a.no_rss:
        res["end_to_end"] = bench_end_to_end([int(x) for x in a.rss_paths.split(",") if x])
    m, s = res["market"], res["strategies"]
    rows = [("market: numpy GBM (baseline)", _fmt(m["numpy_gbm"], "ps"), "1.0x"),
            ("market: simulate_market GBM", _fmt(m["simulate_market_gbm"], "ps"), _fmt(m["ratio"], "x")),
            ("strategy: numpy put writer (baseline)", _fmt(s["numpy_put_writer"], "ps"), "1.0x"),
            ("strategy: wheel kernel, daily entries", _fmt(s["wheel"], "ps"), _fmt(s["wheel_ratio"], "x")),
            ("strategy: 4-open spread ladder kernel", _fmt(s["ladder"], "ps"), _fmt(s["ladder_ratio"], "x"))]
    print(f"{res['machine']['cpu']}, {res['machine']['cores']} cores; {a.paths:,} paths x 252 steps, median of {a.repeat}")
    print(f"{'case':<42}{'path-steps/s':>14}{'ratio':>10}")
    for r in rows:
        print(f"{r[0]:<42}{r[1]:>14}{r[2]:>10}")
    if "mixed" in res:
        x = res["mixed"]
        print(f"mixed scenario ({x['n_paths']:,} paths; numpy twin on {x['numpy_paths']:,}):")
        print(f"{'  simulate, every strategy':<42}{_fmt(x['simulate_path_steps_per_s'], 'ps'):>14}"
              f"{_fmt(x['ratio_simulate_vs_numpy'], 'x'):>10}")
        for k in x["strategies"]:
            print(f"{'  kernel ' + k:<42}{_fmt(x['kernel_path_steps_per_s'][k], 'ps'):>14}"
                  f"{_fmt(x['ratio_kernel_vs_numpy'][k], 'x'):>10}")
        print(f"{'  numpy twin, every strategy (baseline)':<42}{_fmt(x['numpy_total_path_steps_per_s'], 'ps'):>14}"
              f"{'1.0x':>10}")
    if "startup" in res:
        print("start-up: " + ", ".join(f"{k} {v}" for k, v in res["startup"].items()
                                       if not isinstance(v, (list, dict))))
    if "sweep" in res:
        w = res["sweep"]
        print(f"sweep, {w['rule_sets']} rule sets x {w['paths']:,} paths: shared market {w['shared_s']:.1f} s, "
              f"27 simulate calls {w['naive_s']:.1f} s, saving {w['saving_pct']:.0f}%")
    for n, e in res.get("end_to_end", {}).items():
        if "error" in e:
            print(f"mcsim run spy_wheel --paths {int(n):,} (1 year): failed: {e['error']}")
        else:
            print(f"mcsim run spy_wheel --paths {int(n):,} (1 year): {e['wall_s']:.1f} s wall, peak RSS "
                  f"{_fmt(e['peak_rss_bytes'], 'GB')}, wrote {e.get('output_bytes', 0) / 2**20:,.0f} MiB")
    res["targets"] = targets(res)
    print(f"{'target':<66}{'measured':>30}  met")
    for t in res["targets"]:
        print(f"{t['target']:<66}{t['measured']:>30}  {'yes' if t['met'] else 'NO'}")
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
