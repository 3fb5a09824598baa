"""Engine properties: chunk/thread identity, replay == per_path, cash-secured wheel, spread bounds,
parameter errors. (Kernel-vs-reference and hand-made path tests live elsewhere.)"""

from __future__ import annotations

import dataclasses
import tomllib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

import mcsim
from mcsim import ScenarioError
from mcsim.engine import MONTHLY_COLUMNS, PER_PATH_COLUMNS, replay_market
from mcsim.market import simulate_market
from mcsim.scenario import parse_scenario

ROOT = Path(__file__).resolve().parents[1]
SPY = ROOT / "scenarios" / "spy_wheel.toml"


def _raw():
    return tomllib.loads(SPY.read_text())


@pytest.fixture(scope="module")
def short_scenario():
    """spy_wheel.toml (a wheel and a 4-open spread ladder, three regimes, jumps), 0.5 years."""
    return mcsim.load_scenario(SPY, ["run.horizon_years=0.5"])


@pytest.fixture(scope="module")
def big_result(short_scenario):
    return mcsim.simulate(short_scenario, n_paths=10007, seed=11, chunk_paths=4096)


def test_tables_have_the_contract_columns(big_result, short_scenario):
    r = big_result
    assert tuple(r.per_path.columns) == PER_PATH_COLUMNS
    assert tuple(r.monthly.columns) == MONTHLY_COLUMNS
    assert r.strategies == ("wheel_30d", "put_spread_45d", "buy_and_hold", "cash")
    assert len(r.per_path) == 4 * 10007
    n_months = -(-short_scenario.run.n_steps // short_scenario.run.month_steps)
    # monthly rows of the first 10,000 paths only (engine.MONTHLY_LIMIT); the summary streams them all
    assert r.monthly_paths == 10_000 and len(r.monthly) == 4 * 10_000 * n_months
    assert r.monthly.path.max() == 9_999
    assert all(st.n_paths == 10007 for st in r.monthly_stats.values())
    assert list(r.per_path.path[:3]) == [0, 1, 2]
    assert r.n_steps == 126 and r.block_paths == 1024 and r.chunk_paths == 4096
    wheel = r.per_path[r.per_path.strategy == "wheel_30d"]
    assert (wheel.options_sold == wheel.puts_sold + wheel.calls_sold).all()
    assert (wheel.options_sold > 0).all()
    cash = r.per_path[r.per_path.strategy == "cash"].final_equity
    expected = 100000.0 * np.exp(0.04 * 126 / 252)
    np.testing.assert_allclose(cash, expected, rtol=1e-12)


def test_chunk_size_identity(big_result, short_scenario):
    for chunk in (1000, 10007):
        other = mcsim.simulate(short_scenario, n_paths=10007, seed=11, chunk_paths=chunk)
        pd.testing.assert_frame_equal(big_result.per_path, other.per_path, check_exact=True)
        pd.testing.assert_frame_equal(big_result.monthly, other.monthly, check_exact=True)


def test_thread_count_identity(short_scenario):
    a = mcsim.simulate(short_scenario, n_paths=700, seed=5, chunk_paths=700, threads=1)
    b = mcsim.simulate(short_scenario, n_paths=700, seed=5, chunk_paths=300, threads=2)
    c = mcsim.simulate(short_scenario, n_paths=700, seed=5, chunk_paths=700, threads=3)
    pd.testing.assert_frame_equal(a.per_path, b.per_path, check_exact=True)
    pd.testing.assert_frame_equal(a.per_path, c.per_path, check_exact=True)
    pd.testing.assert_frame_equal(a.monthly, c.monthly, check_exact=True)


def test_replay_final_equity_is_per_path(big_result, short_scenario):
    pp = big_result.per_path
    for path in (0, 1023, 1024, 7777, 10006):
        for name in big_result.strategies:
            log = mcsim.replay(short_scenario, path, name, seed=11)
            row = pp[(pp.strategy == name) & (pp.path == path)].iloc[0]
            assert log.action.iloc[-1] == "end"
            assert log.equity.iloc[-1] == row.final_equity  # bit for bit
            sold = log.action.isin(["sell_put", "sell_call", "open_spread", "roll"]).sum()
            assert sold == row.options_sold
            assert (log.action == "roll").sum() == row.rolls


def test_run_strategies_matches_simulate(short_scenario):
    res = mcsim.simulate(short_scenario, n_paths=50, seed=3, chunk_paths=17)
    mk = simulate_market(short_scenario, 20, 3, first_path=30)
    res2 = mcsim.run_strategies(short_scenario, mk)
    a = res.per_path[res.per_path.path >= 30].reset_index(drop=True)
    b = res2.per_path.reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_unknown_strategy_in_replay(short_scenario):
    with pytest.raises(ScenarioError, match="strategy"):
        mcsim.replay(short_scenario, 0, "nope")


# --------------------------------------------------------------------------------------------
# cash-secured wheel: puts never borrow, equity never negative


def _wheel_raw(delta_put, delta_call, dte, pf, contracts, pt, roll, min_strike, every):
    raw = _raw()
    raw["run"].update(horizon_years=0.75, paths=8)
    raw["costs"]["assignment_fee"] = 0.0
    w = raw["strategies"][0]
    w["entry_every_days"] = every
    w["put"] = {"delta": delta_put, "dte": dte}
    w["call"] = {"delta": delta_call, "dte": dte, "min_strike": min_strike}
    w["manage"] = {"profit_take": pt, "roll_when": roll, "roll_dte": 7, "roll_out_days": 28,
                   "roll_credit_only": True, "max_rolls": 2}
    w["sizing"] = {"position_fraction": pf, "contracts": contracts}
    raw["strategies"] = [w]
    return raw


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    delta_put=st.floats(0.05, 0.6), delta_call=st.floats(0.05, 0.6), dte=st.integers(3, 60),
    pf=st.floats(0.05, 1.0), contracts=st.sampled_from(["integer", "fractional"]),
    pt=st.sampled_from([0.0, 0.5, 0.8]), roll=st.sampled_from(["off", "itm", "delta"]),
    min_strike=st.sampled_from(["cost_basis", "none", "purchase_price"]),
    every=st.integers(1, 5), seed=st.integers(0, 10_000),
)
def test_cash_secured_wheel_never_borrows(delta_put, delta_call, dte, pf, contracts, pt, roll,
                                          min_strike, every, seed):
    sc = parse_scenario(_wheel_raw(delta_put, delta_call, dte, pf, contracts, pt, roll, min_strike, every))
    mk = simulate_market(sc, 6, seed)
    res = mcsim.run_strategies(sc, mk, threads=1)
    wheel = res.per_path[res.per_path.strategy == "wheel_30d"]
    assert (wheel.min_equity >= 0.0).all()
    for row in range(mk.n_paths):
        log = replay_market(sc, mk, "wheel_30d", row)
        # puts are cash-secured: after a sale the cash covers the strike, and an assignment
        # never overdraws it. (A covered call bought back is paid from cash and may overdraw
        # it: the shares cover that call, not the cash.)
        puts = log[log.action == "sell_put"]
        assert (puts.cash >= puts.strike * 100.0 * puts.contracts - 1e-6).all(), puts
        assigned = log[log.action == "assigned"]
        assert (assigned.cash >= -1e-9).all(), assigned
        if (log.cash >= -1e-9).all():
            assert wheel.capital_used.iloc[row] <= 1.0 + 1e-9
        assert (log.equity >= 0.0).all()
        assert log.equity.iloc[-1] == wheel.final_equity.iloc[row]


# --------------------------------------------------------------------------------------------
# bull put spread: P&L per spread within [-(width - credit) - costs, credit]


def _spread_trades(log, width):
    """(open row, end row) pairs per spread, FIFO by (strike, expiry, contracts)."""
    open_ = defaultdict(list)
    pairs = []
    for r in log.itertuples():
        key = (r.strike, r.expiry, r.contracts)
        if r.action == "open_spread":
            open_[key].append(r)
        elif r.action in ("close_spread", "expire_worthless", "assigned", "early_assigned"):
            pairs.append((open_[key].pop(0), r))
    return pairs


@pytest.mark.parametrize("manage", ["hold", "managed"])
def test_spread_pnl_bounds(manage):
    raw = _raw()
    raw["run"].update(horizon_years=1.0)
    raw["costs"].update(commission_per_contract=0.65, slippage_per_share=0.03)
    sp = raw["strategies"][1]
    sp["entry_every_days"] = 3
    if manage == "hold":
        sp["manage"] = {"early_assignment": False}
    else:
        sp["manage"] = {"profit_take": 0.5, "stop_loss": 2.0, "early_assignment": False}
    raw["strategies"] = [sp]
    sc = parse_scenario(raw)
    mk = simulate_market(sc, 24, 99)
    width = 10.0
    n_trades = 0
    for row in range(mk.n_paths):
        log = replay_market(sc, mk, "put_spread_45d", row)
        for o, e in _spread_trades(log, width):
            c = o.contracts
            credit = o.price
            comm = 0.65 * c * (2 if e.action == "expire_worthless" or e.action == "assigned" else 4)
            if e.action == "close_spread":
                debit = e.price
            else:
                debit = e.price
                assert 0.0 <= debit <= width + 1e-12
            pnl = (credit - debit) * 100 * c - comm
            slip = 0.0 if e.action != "close_spread" else 2 * 0.03 * 100 * c
            assert pnl <= credit * 100 * c + 1e-9
            assert pnl >= -(width - credit) * 100 * c - comm - slip - 1e-9
            n_trades += 1
    assert n_trades > 100


# --------------------------------------------------------------------------------------------
# bad parameters name the field


@pytest.mark.parametrize("where, key, value, field", [
    ("wheel", ("put", "delta"), 1.2, "strategies.wheel_30d.put.delta"),
    ("wheel", ("put", "delta"), 0.0, "strategies.wheel_30d.put.delta"),
    ("spread", ("width",), 0.0, "strategies.put_spread_45d.width"),
    ("spread", ("width",), -5.0, "strategies.put_spread_45d.width"),
    ("wheel", ("underlyings",), ["QQQ"], "strategies.wheel_30d.underlyings"),
    ("wheel", ("manage", "profit_take"), 1.0, "strategies.wheel_30d.manage.profit_take"),
    ("spread", ("manage", "profit_take"), -0.1, "strategies.put_spread_45d.manage.profit_take"),
    ("spread", ("short_put", "delta"), 1.0, "strategies.put_spread_45d.short_put.delta"),
])
def test_bad_parameters_name_the_field(where, key, value, field):
    raw = _raw()
    s = raw["strategies"][0 if where == "wheel" else 1]
    node = s
    for k in key[:-1]:
        node = node.setdefault(k, {})
    node[key[-1]] = value
    with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
        parse_scenario(raw)


@pytest.mark.parametrize("change, field", [
    (lambda s: dataclasses.replace(s, put=dataclasses.replace(s.put, delta=1.5)), "strategies.wheel_30d.put.delta"),
    (lambda s: dataclasses.replace(s, underlyings=("QQQ",)), "strategies.wheel_30d.underlyings"),
    (lambda s: dataclasses.replace(s, manage=dataclasses.replace(s.manage, profit_take=1.0)),
     "strategies.wheel_30d.manage.profit_take"),
])
def test_scenario_built_in_python_is_validated(change, field, short_scenario):
    """Validation lives in the scenario layer, also for dataclasses built in Python
    (`to_kernel` only maps fields): the bad Scenario cannot be built."""
    bad = change(short_scenario.strategies[0])
    with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
        dataclasses.replace(short_scenario, strategies=(bad,))


def test_bad_width_in_python(short_scenario):
    bad = dataclasses.replace(short_scenario.strategies[1], width=0.0)
    with pytest.raises(ScenarioError, match=r"strategies\.put_spread_45d\.width"):
        dataclasses.replace(short_scenario, strategies=(bad,))


def test_progress_callback_reports_every_chunk(tmp_path):
    """simulate(progress=...) is called once per chunk with (paths done, total), ending at total."""
    p = tmp_path / "s.toml"
    p.write_text(
        '[run]\nhorizon_years = 0.1\n[[underlyings]]\nname = "A"\nspot = 100.0\nvolatility = 0.2\n'
        '[[strategies]]\nname = "w"\nkind = "wheel"\n'
    )
    calls = []
    mcsim.simulate(mcsim.load_scenario(p), n_paths=250, seed=1, chunk_paths=100,
                   progress=lambda done, total: calls.append((done, total)))
    assert calls == [(100, 250), (200, 250), (250, 250)]


def test_replay_log_never_drops_rows(short_scenario):
    """A log too small for the path is not truncated silently: the kernel counts every row it
    wanted (writing what fits) and replay sizes the log from that count."""
    from mcsim.strategies import run_paths, to_kernel, with_steps
    from mcsim.strategies.layout import LOG_DT, MONTH_DT, PATH_DT, records

    sc = short_scenario
    rules = sc.strategies[1]   # the spread ladder: many rows
    m = simulate_market(sc, 1, 3)
    full = replay_market(sc, m, rules.name)
    nm = -(-m.n_steps // sc.run.month_steps)
    kp = with_steps(to_kernel(rules, sc, log=True), m.n_steps, nm)
    small = records(3, LOG_DT)
    wanted = run_paths(m.spot, m.atm_iv, m.regime, 0, 1, kp.rules, records(1, PATH_DT),
                       records((1, nm), MONTH_DT), small)
    assert wanted == len(full) > 3
    assert list(small["step"]) == list(full.step[:3])
    assert full.action.iloc[-1] == "end"
