"""Speed of the plain-Python reference (tests/reference.py): the baseline of the kernel benchmarks.

Run: python benchmarks/bench_reference.py [--paths N]

Times the reference on N (default 1000) paths x 252 steps of two workloads, on paths from
`mcsim.simulate_market`:
- `wheel`: the wheel, 30-delta puts and calls, 35 dte, daily entries, profit take 50 %;
- `ladder`: a bull put spread ladder, 4 open per underlying, weekly entries, profit take 50 %.
Prints path-steps per second of each. `benchmarks/bench_strategies.py` imports
`bench_reference()` (and `WHEEL_TOML` / `LADDER_TOML`) to report the kernel-to-reference ratio
measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import tomllib  # noqa: E402

from mcsim import simulate_market  # noqa: E402
from mcsim.scenario import parse_scenario  # noqa: E402
from tests.reference import run_reference  # noqa: E402

_MARKET = """
[run]
horizon_years = 1.0
steps_per_year = 252
initial_equity = 100000.0
risk_free_rate = 0.04
[[underlyings]]
name = "SPY"
spot = 450.0
dividend_yield = 0.015
expected_return = 0.07
volatility = 0.18
strike_step = 1.0
expiry_every_days = 5
[underlyings.implied_vol]
premium = 0.02
skew = 0.1
[costs]
commission_per_contract = 0.65
slippage_per_share = 0.02
"""

WHEEL_TOML = _MARKET + """
[[strategies]]
name = "wheel"
kind = "wheel"
underlyings = ["SPY"]
entry_every_days = 1
[strategies.put]
delta = 0.30
dte = 35
[strategies.call]
delta = 0.30
dte = 35
min_strike = "cost_basis"
[strategies.manage]
profit_take = 0.5
"""

LADDER_TOML = _MARKET + """
[[strategies]]
name = "ladder"
kind = "bull_put_spread"
underlyings = ["SPY"]
entry_every_days = 5
width = 10.0
[strategies.short_put]
delta = 0.16
dte = 45
[strategies.manage]
profit_take = 0.5
[strategies.sizing]
position_fraction = 0.02
max_open = 4
"""


def _time_reference(toml_text: str, n_paths: int, seed: int = 7) -> dict:
    scenario = parse_scenario(tomllib.loads(toml_text))
    market = simulate_market(scenario, n_paths=n_paths, seed=seed)
    rules = scenario.strategies[0]
    # warm up the numba pricing functions (compile / load cache) outside the timing
    run_reference(scenario, rules, market.spot[0], market.atm_iv[0], market.regime[0])
    start = time.perf_counter()
    for p in range(n_paths):
        run_reference(scenario, rules, market.spot[p], market.atm_iv[p], market.regime[p])
    seconds = time.perf_counter() - start
    path_steps = n_paths * scenario.n_steps
    return {"name": rules.name, "paths": n_paths, "steps": scenario.n_steps, "seconds": seconds,
            "path_steps_per_second": path_steps / seconds}


def bench_reference(n_paths: int = 1000) -> dict:
    """Reference speed on `n_paths` x 252 steps: {"wheel": {...}, "ladder": {...}}.

    Each entry has name, paths, steps, seconds and path_steps_per_second.
    """
    return {"wheel": _time_reference(WHEEL_TOML, n_paths), "ladder": _time_reference(LADDER_TOML, n_paths)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=1000)
    args = ap.parse_args(argv)
    res = bench_reference(args.paths)
    for key, r in res.items():
        print(f"reference {key:6s}: {r['paths']} paths x {r['steps']} steps in {r['seconds']:.2f} s "
              f"= {r['path_steps_per_second']:,.0f} path-steps/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
