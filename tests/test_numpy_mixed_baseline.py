"""The plain-numpy twin of benchmarks/mixed.toml (benchmarks/numpy_mixed.py, the baseline of the
mixed benchmark) implements the same rules as the kernels: per-path final equity agrees with
`mcsim.run_strategies` to rounding on every path, and the counts agree exactly.

Besides the scenario as written (its spreads never reach expiry: close_dte 21 closes them),
variants reach the other branches of the twin: spreads held to expiry (cash settlement), a
wheel without rolls (more assignments and calls away), fractional contracts, an assignment fee,
European exercise. About 1 s per case once the kernels are compiled.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("scipy")

import mcsim  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def twin():
    spec = importlib.util.spec_from_file_location("numpy_mixed", ROOT / "benchmarks" / "numpy_mixed.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["numpy_mixed"] = mod
    spec.loader.exec_module(mod)
    return mod


CASES = {
    "as_written": [],
    "spreads_to_expiry": ["strategies.put_spread_ladder.manage.close_dte=0",
                          "strategies.put_spread_ladder.manage.stop_loss=0.0",
                          "strategies.put_spread_ladder.manage.profit_take=0.0",
                          "strategies.put_spread_ladder.entry_every_days=1"],
    "wheel_no_rolls_fractional": ['strategies.wheel_30d.manage.roll_when="off"',
                                  'strategies.wheel_30d.sizing.contracts="fractional"',
                                  'strategies.put_spread_ladder.sizing.contracts="fractional"',
                                  "costs.assignment_fee=5.0", "costs.slippage_pct=0.01"],
    "european_close_if_unable": ['underlyings.SPY.exercise="european"',
                                 "strategies.wheel_30d.manage.close_if_unable_to_roll=true",
                                 "strategies.wheel_30d.manage.roll_min_credit=0.5",
                                 "strategies.wheel_30d.manage.max_rolls=1"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_numpy_twin_matches_kernels(twin, case):
    sc = mcsim.load_scenario(twin.SCENARIO, CASES[case])
    res = twin.check(300, 5, scenario=sc)
    for name, r in res.items():
        assert r["max_rel_diff"] <= 1e-12, (case, name, r)
        assert r["share_above_1e-9"] == 0.0, (case, name, r)
        assert not any(r["count_mismatches"].values()), (case, name, r)
    # each case reaches the branches it is there for
    if case == "spreads_to_expiry":
        assert res["put_spread_ladder"]["totals"]["assignments"] > 0      # ITM at expiry, cash-settled
    if case == "wheel_no_rolls_fractional":
        assert res["wheel_30d"]["totals"]["called_away"] > 0
    assert res["wheel_30d"]["totals"]["assignments"] > 0
