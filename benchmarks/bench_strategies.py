"""Strategy-kernel speed: path-steps per second on pre-generated paths, and peak memory.

    python benchmarks/bench_strategies.py [--paths 100000] [--steps 252] [--threads N]

Cases, on spy_wheel.toml's market (one underlying, three regimes with jumps), 252 steps:
* wheel: the 30-delta wheel with daily entries, daily marking, profit take 0.5, roll itm;
* ladder: the shipped 16-delta bull put spread ladder, up to 4 open (a new spread every 5 steps
  while fewer are open), profit take 0.5, stop loss 2x, close at 21 DTE;
* ladder_daily: the same ladder with a new spread every step while fewer than 4 are open (four
  open nearly always, a stress case for the pricing).
With a stochastic-vol underlying every option is priced on the ATM IV term structure; each case
is also timed with the curve switched off (flat 30-day IV, `und.term = 0`, same paths) and the
ratio printed: the cost of the term structure (target: at most 10%).
Paths are generated once (not timed); kernels are compiled and warmed up first; each case is
timed over all paths with the engine's thread split, best of --repeat. Targets on 2 cores: wheel
>= 25M, ladder >= 8M path-steps/s. `bench_reference` times the plain-Python reference
(tests/reference.py) on the first --reference-paths paths for the ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mcsim  # noqa: E402
from mcsim.engine import _split  # noqa: E402
from mcsim.market import generate_market, market_params, resolve_threads  # noqa: E402
from mcsim.strategies import run_paths, to_kernel, underlying_tables  # noqa: E402
from mcsim.strategies.layout import LOG_DT, MONTH_DT, PATH_DT, records  # noqa: E402

CASES = ("wheel", "ladder", "ladder_daily")


def bench_scenario(steps: int = 252, stochastic_vol: bool = False):
    """spy_wheel.toml with a `steps`-step horizon and a daily-entry wheel (rules otherwise as
    shipped); `stochastic_vol`: its volatility levels become a Heston long_run_vol (kappa 4,
    xi 0.6, rho -0.7), so every option is priced on the ATM IV term structure."""
    over = [
        f"run.horizon_years={steps / 252}",
        "strategies.wheel_30d.entry_every_days=1",
        "strategies.wheel_30d.manage.profit_take=0.5",
    ]
    path = ROOT / "scenarios" / "spy_wheel.toml"
    if not stochastic_vol:
        return mcsim.load_scenario(path, over)
    import tomllib

    from mcsim.scenario import parse_scenario

    raw = tomllib.loads(path.read_text())
    u = raw["underlyings"][0]
    if "stochastic_vol" not in u:
        u["stochastic_vol"] = {"mean_reversion": 4.0, "long_run_vol": u.pop("volatility"), "vol_of_vol": 0.6,
                               "spot_vol_correlation": -0.7}
    for o in over:  # the same overrides, applied to the table
        key, value = o.split("=")
        parts = key.split(".")
        if parts[0] == "run":
            raw["run"][parts[1]] = float(value)
        else:
            st = next(x for x in raw["strategies"] if x["name"] == parts[1])
            node = st
            for k in parts[2:-1]:
                node = node.setdefault(k, {})
            node[parts[-1]] = float(value) if "." in value else int(value)
    return parse_scenario(raw)


def bench_rules(sc):
    """{case: StrategyRules} of the three cases."""
    wheel, ladder = sc.strategies[0], sc.strategies[1]
    daily = dataclasses.replace(ladder, name="ladder_daily", entry_every_days=1)
    return {"wheel": wheel, "ladder": ladder, "ladder_daily": daily}


def flat_twin(kp):
    """The same kernel parameters with the ATM IV term structure off (flat 30-day IV)."""
    und = kp.rules.und.copy()
    und["term"] = 0
    return kp._replace(rules=kp.rules._replace(und=und))


def _run(kp, tables, market, pool, threads):
    spot, iv, reg = market
    n = spot.shape[0]
    nm = int(kp.p.n_months)
    out_p = records(n, PATH_DT)
    out_m = records((n, nm), MONTH_DT)
    log = records(1, LOG_DT)

    def task(b):
        run_paths(spot, iv, reg, b[0], b[1], kp.rules, out_p, out_m, log)

    bounds = _split(n, threads)
    t0 = time.perf_counter()
    list(pool.map(task, bounds))
    return time.perf_counter() - t0, out_p


def bench_reference(n_paths: int = 1000, scenario=None, market=None):
    """Path-steps/s of the plain-Python reference (tests/reference.py) per strategy, or None.

    Runs `run_reference(scenario, rules, spot, atm_iv, regime)` on the first `n_paths` rows of
    `market` (a MarketPaths) for each strategy of `scenario`.
    """
    ref = ROOT / "tests" / "reference.py"
    if not ref.exists() or scenario is None or market is None or n_paths < 1:
        return None
    spec = importlib.util.spec_from_file_location("mcsim_reference", ref)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["mcsim_reference"] = mod
    spec.loader.exec_module(mod)
    fn = getattr(mod, "run_reference", None)
    if fn is None:
        return None
    n_paths = min(n_paths, market.n_paths)
    out = {}
    for case, rules in bench_rules(scenario).items():
        if case == "ladder_daily":
            continue
        t0 = time.perf_counter()
        for p in range(n_paths):
            fn(scenario, rules, market.spot[p], market.atm_iv[p], market.regime[p])
        out[case] = n_paths * market.n_steps / (time.perf_counter() - t0)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=252)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per case (best is reported)")
    ap.add_argument("--reference-paths", type=int, default=1000)
    ap.add_argument("--stochastic-vol", action="store_true",
                    help="Heston market: price on the ATM IV term structure (and time it flat too)")
    args = ap.parse_args(argv)

    threads = resolve_threads(args.threads)
    sc = bench_scenario(args.steps, args.stochastic_vol)
    tables = underlying_tables(sc)
    kps = {case: to_kernel(rules, sc) for case, rules in bench_rules(sc).items()}

    params = market_params(sc)
    t0 = time.perf_counter()
    market = generate_market(params, args.seed, 0, args.paths, threads=threads)
    gen = time.perf_counter() - t0
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"market: {args.paths} paths x {sc.run.n_steps} steps generated in {gen:.2f} s "
          f"({market[0].nbytes * 2 / 2**20 + market[2].nbytes / 2**20:.0f} MB); threads = {threads}")

    warm = tuple(a[: min(1000, args.paths)] for a in market)
    with ThreadPoolExecutor(threads) as pool:
        t0 = time.perf_counter()
        for kp in kps.values():
            _run(kp, tables, warm, pool, threads)
        print(f"warm-up (compile or cache load + 1000 paths): {time.perf_counter() - t0:.2f} s")
        path_steps = args.paths * sc.run.n_steps
        results = {}
        for name in CASES:
            best = min(_run(kps[name], tables, market, pool, threads)[0] for _ in range(args.repeat))
            results[name] = path_steps / best
            _, out = _run(kps[name], tables, market, pool, threads)
            sold = out["options_sold"].mean()
            print(f"{name:12s}: {results[name] / 1e6:7.1f} M path-steps/s  ({best:.2f} s; "
                  f"{sold:.1f} options sold per path)")
            if kps[name].rules.und["term"].any():
                flat = flat_twin(kps[name])
                _run(flat, tables, warm, pool, threads)
                # curve and flat timed alternately, the cost as the median of the pairs' ratios
                # (one timing per case moves by +-17% on a shared 2-core machine)
                pairs = [(_run(kps[name], tables, market, pool, threads)[0],
                          _run(flat, tables, market, pool, threads)[0]) for _ in range(max(args.repeat, 3))]
                best_flat = min(f for _, f in pairs)
                ratios = sorted(c / f - 1.0 for c, f in pairs)
                results[name + "_flat"] = path_steps / best_flat
                results[name + "_term_cost"] = float(np.median(ratios))
                print(f"{'':12s}  flat IV curve: {path_steps / best_flat / 1e6:7.1f} M path-steps/s; "
                      f"term structure costs {np.median(ratios):+.1%} (median of {len(pairs)} alternating "
                      f"pairs, range {ratios[0]:+.1%} to {ratios[-1]:+.1%})")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {rss:.0f} MB (after market generation: {rss0:.0f} MB; kernels add "
          f"{rss - rss0:.0f} MB of per-path outputs)")
    ref = bench_reference(args.reference_paths, sc, mcsim.MarketPaths(*market, params.underlyings,
                                                                        params.steps_per_year))
    if ref is None:
        print("reference: tests/reference.py not available (bench_reference hook returned None)")
    else:
        for case, speed in ref.items():
            print(f"reference {case}: {speed / 1e6:.3f} M path-steps/s on {args.reference_paths} paths; "
                  f"kernel ratio {results[case] / speed:.0f}x")
    return results


if __name__ == "__main__":
    main()
