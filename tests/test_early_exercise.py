"""Issue 11: American exercise and defined risk, checked against a binomial tree and exact bounds.

* Early exercise on hand-made paths against a 400-step Cox-Ross-Rubinstein tree computed here: an
  ITM American put in the tree's continuation region is not assigned, one in its exercise region
  is; the same for covered calls with a dividend yield above r; European options never are.
* A bull put spread never loses more than (width - credit) x 100 x contracts plus its commissions
  and fees: the spread of the issue's defect 1 (SPY 450, 419/409, 2 contracts, spot 370 from step
  3) and random crash paths (hypothesis).
* On every shipped scenario no profit-take buy-back costs more than its credit.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mcsim
from mcsim.american import crr_price_nb
from mcsim.engine import replay_market
from mcsim.market import MarketPaths
from mcsim.scenario import load_scenario

SPY = 252
IV = 0.30
TREE = 400
ROOT = Path(__file__).resolve().parents[1]


def _scenario(tmp_path, strategy, *, n, r, q, exercise="american", spot=100.0, step=1.0,
              costs=(0.0, 0.0, 0.0)):
    comm, sps, fee = costs
    text = f"""
[run]
horizon_years = {n / SPY!r}
steps_per_year = {SPY}
paths = 1
seed = 1
initial_equity = 100000.0
risk_free_rate = {r!r}

[[underlyings]]
name = "X"
spot = {spot!r}
dividend_yield = {q!r}
expected_return = 0.05
volatility = {IV!r}
strike_step = {step!r}
expiry_every_days = 5
exercise = "{exercise}"
[underlyings.implied_vol]
premium = 0.0
skew = 0.0
floor = 0.01

[costs]
commission_per_contract = {comm!r}
slippage_per_share = {sps!r}
assignment_fee = {fee!r}

{strategy}
"""
    p = tmp_path / "s.toml"
    p.write_text(text)
    return load_scenario(p)


def _log(scn, spot, strategy):
    mkt = MarketPaths.from_arrays(np.asarray(spot, dtype=float), atm_iv=IV, underlyings=("X",),
                                  steps_per_year=SPY)
    return replay_market(scn, mkt, strategy)


PUT = """
[[strategies]]
name = "w"
kind = "wheel"
underlyings = ["X"]
entry_every_days = 1000
[strategies.put]
otm_pct = 0.0
dte = 35
[strategies.call]
otm_pct = 0.0
dte = 35
[strategies.manage]
early_assignment = true
early_assignment_time_value = 0.05
"""

CALL = """
[[strategies]]
name = "cc"
kind = "covered_call"
underlyings = ["X"]
entry_every_days = 1000
[strategies.call]
otm_pct = 0.0
dte = 35
settle = "shares"
[strategies.manage]
early_assignment = true
early_assignment_time_value = 0.05
"""


def _tree_tv(s, k, steps_left, r, q, is_call):
    intrinsic = (s - k) if is_call else (k - s)
    return crr_price_nb(s, k, steps_left / SPY, r, q, IV, is_call, TREE) - intrinsic


def _region_spots(k, steps_left, r, q, is_call):
    """(a spot in the tree's continuation region with time value > 0.15, one in its exercise
    region with time value < 0.01), both in the money."""
    grid = np.arange(1.0, 40.0, 0.25)
    cont = exer = None
    for d in grid:
        s = k + d if is_call else k - d
        tv = _tree_tv(s, k, steps_left, r, q, is_call)
        if cont is None and tv > 0.15 and d >= 1.0:
            cont = s
        if tv < 0.01:
            exer = s
            break
    assert cont is not None and exer is not None
    return cont, exer


@pytest.mark.parametrize("region", ["continuation", "exercise"])
def test_american_put_against_the_tree(tmp_path, region):
    r, q = 0.06, 0.0
    scn = _scenario(tmp_path, PUT, n=20, r=r, q=q)
    k, e, t = 100.0, 25, 5          # the put sold at t = 0 expires at step 25; spot moves at t = 5
    cont, exer = _region_spots(k, e - t, r, q, False)
    s = cont if region == "continuation" else exer
    log = _log(scn, [100.0] * t + [s] * (21 - t), "w")
    assert log.iloc[0]["action"] == "sell_put" and int(log.iloc[0]["expiry"]) == e
    early_at_t = ((log["action"] == "early_assigned") & (log["step"] == t)).any()
    assert early_at_t == (region == "exercise"), (s, _tree_tv(s, k, e - t, r, q, False))


@pytest.mark.parametrize("region", ["continuation", "exercise"])
def test_american_call_with_dividend_yield_above_r_against_the_tree(tmp_path, region):
    r, q = 0.01, 0.10
    scn = _scenario(tmp_path, CALL, n=20, r=r, q=q)
    k, e, t = 100.0, 25, 5
    cont, exer = _region_spots(k, e - t, r, q, True)
    s = cont if region == "continuation" else exer
    log = _log(scn, [100.0] * t + [s] * (21 - t), "cc")
    assert list(log["action"][:2]) == ["buy_shares", "sell_call"]
    early_at_t = ((log["action"] == "early_assigned") & (log["step"] == t)).any()
    assert early_at_t == (region == "exercise"), (s, _tree_tv(s, k, e - t, r, q, True))


def test_call_without_dividend_is_never_exercised_early(tmp_path):
    scn = _scenario(tmp_path, CALL, n=20, r=0.05, q=0.0)
    log = _log(scn, [100.0] * 5 + [160.0] * 16, "cc")
    assert not (log["action"] == "early_assigned").any()


@pytest.mark.parametrize("kind", ["put", "call"])
def test_european_options_are_never_assigned_early(tmp_path, kind):
    r, q = (0.06, 0.0) if kind == "put" else (0.01, 0.10)
    scn = _scenario(tmp_path, PUT if kind == "put" else CALL, n=20, r=r, q=q, exercise="european")
    s = 60.0 if kind == "put" else 160.0    # deep in the money from step 5 to the horizon
    log = _log(scn, [100.0] * 5 + [s] * 16, "w" if kind == "put" else "cc")
    assert not (log["action"] == "early_assigned").any()
    if kind == "put":
        # the same path with American exercise is assigned early
        amer = _scenario(tmp_path, PUT, n=20, r=r, q=q)
        assert (_log(amer, [100.0] * 5 + [s] * 16, "w")["action"] == "early_assigned").any()


SPREAD = """
[[strategies]]
name = "bps"
kind = "bull_put_spread"
underlyings = ["X"]
entry_every_days = 1000
width = {width!r}
[strategies.short_put]
otm_pct = {otm!r}
dte = {dte}
[strategies.manage]
early_assignment = true
early_assignment_time_value = 0.05
[strategies.sizing]
position_fraction = {pf!r}
contracts = "integer"
"""


def test_defect_1_spread_loses_at_most_its_defined_risk(tmp_path):
    """SPY 450, a 419/409 spread, 2 contracts; spot 370 from step 3, r 4% > q 1.3%: the short
    leg is assigned early, the long 409 put (worth only intrinsic) is exercised, not sold below
    it, and the loss is the width minus the credit plus commissions and fees."""
    comm, fee = 0.65, 1.0
    otm = 1 - 419.5 / 450.0
    text = SPREAD.format(width=10.0, otm=otm, dte=45, pf=2.5 * 881.0 / 100000.0)
    scn = _scenario(tmp_path, text, n=35, r=0.04, q=0.013, spot=450.0, costs=(comm, 0.02, fee))
    spot = [450.0] * 3 + [370.0] * 33
    log = _log(scn, spot, "bps")
    op = log[log["action"] == "open_spread"].iloc[0]
    assert (op["strike"], op["long_strike"], op["contracts"]) == (419.0, 409.0, 2.0)
    ea = log[log["action"] == "early_assigned"]
    assert len(ea) == 1 and 3 <= int(ea.iloc[0]["step"]) < int(op["expiry"])
    width, c, credit = 10.0, 2.0, op["price"]
    res = mcsim.run_strategies(scn, MarketPaths.from_arrays(np.asarray(spot), atm_iv=IV,
                                                            underlyings=("X",), steps_per_year=SPY))
    row = res.per_path[res.per_path["strategy"] == "bps"].iloc[0]
    assert int(row["early_assignments"]) == 1 and int(row["trades_lost"]) == 1
    # the trade loses at most the defined maximum plus commissions and fees (before the fix it
    # lost $1,938.56 against a defined maximum of $1,762.32)
    bound = (width - credit) * 100 * c + 2 * comm * c + 2 * fee * c
    assert -bound - 1e-9 * bound <= row["avg_loss"] < 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drop=st.floats(0.02, 0.6), day=st.integers(1, 20), bounce=st.floats(-0.2, 0.3),
       width=st.sampled_from([2.0, 5.0, 10.0]), otm=st.floats(0.0, 0.1), r=st.floats(0.0, 0.1),
       q=st.floats(0.0, 0.08), dte=st.sampled_from([7, 21, 35]))
def test_random_crash_paths_respect_the_spread_bound(tmp_path, drop, day, bounce, width, otm, r, q, dte):
    comm, fee = 0.65, 1.0
    text = SPREAD.format(width=width, otm=otm, dte=dte, pf=0.05)
    n = 30
    scn = _scenario(tmp_path, text, n=n, r=r, q=q, costs=(comm, 0.02, fee))
    s1 = 100.0 * (1 - drop)
    spot = [100.0] * day + [s1] * 3 + [s1 * (1 + bounce)] * (n + 1 - day - 3)
    spot = spot[:n + 1]
    mkt = MarketPaths.from_arrays(np.asarray(spot), atm_iv=IV, underlyings=("X",), steps_per_year=SPY)
    log = replay_market(scn, mkt, "bps")
    if not (log["action"] == "open_spread").any():
        return
    op = log[log["action"] == "open_spread"].iloc[0]
    c, credit = op["contracts"], op["price"]
    w = op["strike"] - op["long_strike"]
    res = mcsim.run_strategies(scn, mkt)
    row = res.per_path[res.per_path["strategy"] == "bps"].iloc[0]
    bound = (w - credit) * 100 * c + 2 * comm * c + 2 * fee * c
    # one trade: its P&L (avg_loss or avg_win of a single trade) is within the defined risk
    if int(row["trades_lost"]) + int(row["trades_won"]) == 1:
        trade = row["avg_loss"] if row["trades_lost"] else row["avg_win"]
        assert trade >= -bound - 1e-6 * bound
    # whatever happened, the realised option P&L never exceeds the bound (interest aside: it is
    # >= 0 here and only adds)
    assert row["final_equity"] - 100000.0 >= -bound - 1e-6 * bound


SHIPPED = sorted(p for p in (ROOT / "scenarios").glob("*.toml")
                 if "calibrated" not in p.name)


def _profit_takers(path: Path) -> list[str]:
    return [s.name for s in load_scenario(path).strategies if s.manage.profit_take > 0]


# only the shipped scenarios that have a profit take (the others have nothing to check here)
PROFIT_TAKE = [p for p in SHIPPED if _profit_takers(p)]


def test_some_shipped_scenarios_take_profits():
    assert PROFIT_TAKE, "no shipped scenario has a profit take: the test below checks nothing"


@pytest.mark.parametrize("path", PROFIT_TAKE, ids=[p.stem for p in PROFIT_TAKE])
def test_no_profit_take_costs_more_than_its_credit(path):
    scn = load_scenario(path, overrides=["run.horizon_years=1"])
    strategies = [s.name for s in scn.strategies if s.manage.profit_take > 0]
    assert strategies == _profit_takers(path)
    for name in strategies:
        for p in range(4):
            log = mcsim.replay(scn, p, name)
            credit = {}
            for row in log.itertuples():
                key = (row.underlying, row.strike, row.expiry)
                if row.action in ("sell_put", "sell_call", "open_spread", "roll"):
                    credit[key] = row.price
                elif row.reason == "profit_take":
                    assert row.price < credit[key], (path.name, name, p, row.step)
