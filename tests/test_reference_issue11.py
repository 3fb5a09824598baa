"""Hand-made checks of the reference (tests/reference.py) on the rules of issue 11, worked out in
the test from docs/semantics.md and the pricing functions, then the same hand-made paths through
the kernels (the differential comparison of tests/test_reference_vs_kernels.py).

American exercise (marks floored at intrinsic, early assignment by the Barone-Adesi-Whaley time
value, checked against a 1,000-step binomial tree), the early-assigned spread's bounded loss,
rolls for a credit (the strike scan and a refused roll), min_credit, profit takes on the fill and
net premium.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mcsim  # noqa: E402
from mcsim.american import baw_price_nb, crr_price_nb  # noqa: E402
from mcsim.market import MarketPaths  # noqa: E402
from mcsim.pricing import bs_price_nb  # noqa: E402
from mcsim.scenario import calendar_days_to_steps, parse_scenario  # noqa: E402
from reference import run_reference  # noqa: E402

TREE_STEPS = 1000
COMMISSION, SLIP, FEE = 0.65, 0.02, 1.0


def _raw(n_steps, r, q, vol, strategy, exercise="american", spot=100.0, step=1.0, **run):
    return {"run": {"horizon_years": n_steps / 252, "risk_free_rate": r, "initial_equity": 100000.0, **run},
            "underlyings": [{"name": "X", "spot": spot, "volatility": vol, "dividend_yield": q,
                             "strike_step": step, "expiry_every_days": 5, "exercise": exercise,
                             "implied_vol": {"premium": 0.0, "skew": 0.0, "floor": 0.01}}],
            "costs": {"commission_per_contract": COMMISSION, "slippage_per_share": SLIP, "assignment_fee": FEE},
            "strategies": [strategy]}


def _path(n_steps, levels: dict, start=100.0):
    """Spot (n+1, 1): `start`, then levels[t0] from step t0 on (in step order)."""
    spot = np.full((n_steps + 1, 1), float(start))
    for t0 in sorted(levels):
        spot[t0:] = levels[t0]
    return spot


def _run(raw, spot, vol):
    sc = parse_scenario(raw)
    n = sc.n_steps
    assert spot.shape == (n + 1, 1)
    out = run_reference(sc, sc.strategies[0], spot, np.full((n + 1, 1), vol), np.zeros(n + 1, np.int8))
    return sc, out


def _rows(out, action=None, step=None):
    return [r for r in out["log"] if (action is None or r["action"] == action) and (step is None or r["step"] == step)]


def _american_mid(S, K, tau, r, q, vol, is_call):
    intrinsic = max(S - K, 0.0) if is_call else max(K - S, 0.0)
    return max(bs_price_nb(S, K, tau, r, q, vol, is_call), intrinsic)


# --------------------------------------------------------------------------------------------
# defect 1: the early-assigned spread never loses more than its defined maximum plus costs


def _defect1():
    raw = _raw(30, 0.04, 0.013, 0.21, {"name": "bps", "kind": "bull_put_spread",
                                       "short_put": {"otm_pct": 0.068, "dte": 35}, "width": 10.0,
                                       "sizing": {"position_fraction": 0.02}}, spot=450.0)
    return raw, _path(30, {3: 370.0}, start=450.0), 0.21


def test_defect1_spread_early_assignment_is_bounded():
    """SPY 450, a 419/409 spread, 2 contracts, spot 370 from step 3: the short put is assigned
    early (its American time value is gone), the long 409 put is worth its intrinsic value 39 and
    is exercised (39 x 100 - fee beats selling at 39 - slip less commission): the trade loses
    exactly (width - credit) x 200 + the opening commissions + two assignment fees."""
    raw, spot, vol = _defect1()
    _, out = _run(raw, spot, vol)
    opened, assigned = out["log"][0], out["log"][1]
    assert (opened["action"], opened["strike"], opened["long_strike"], opened["contracts"]) == \
        ("open_spread", 419.0, 409.0, 2.0)
    assert (assigned["step"], assigned["action"], assigned["reason"]) == (3, "early_assigned", "early_exercise")
    assert assigned["price"] == 49.0 and assigned["long_strike"] == 409.0
    credit, c, tau = opened["price"], 2.0, (opened["expiry"] - 3) / 252
    mid_l = _american_mid(370.0, 409.0, tau, 0.04, 0.013, vol, False)
    assert mid_l == 39.0  # deep ITM with r > q: the European mid is below intrinsic
    sold = (mid_l - SLIP) * 100 * c - COMMISSION * c
    exercised = 39.0 * 100 * c - FEE * c
    assert exercised > sold
    pnl = credit * 100 * c - 2 * COMMISSION * c - ((419.0 - 370.0) * 100 * c + FEE * c) + exercised
    trade = out["trades"][0]
    assert trade["pnl"] == pytest.approx(pnl, rel=1e-12)
    bound = (10.0 - credit) * 100 * c + 2 * COMMISSION * c + 2 * FEE * c
    assert -trade["pnl"] == pytest.approx(bound, rel=1e-12)
    carried = opened["cash"] * math.exp(0.04 * 3 / 252)  # interest over steps 1..3
    assert assigned["cash"] - carried == pytest.approx(pnl - credit * 100 * c + 2 * COMMISSION * c, rel=1e-9)


def _spread_bound_holds(out, costs) -> None:
    for tr in out["trades"]:
        if tr["kind"] != "spread":
            continue
        c = tr["contracts"]
        bound = ((tr["width"] - tr["credit"]) * 100 * c + tr["open_cost"]
                 + 2 * costs.commission_per_contract * c + 2 * costs.assignment_fee * c)
        assert tr["pnl"] >= -bound - 1e-9 * max(1.0, bound), tr


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_spread_never_loses_more_than_defined_risk(data):
    """Random crash paths with early assignment: every spread trade (closed, rolled, assigned
    early or at expiry) loses at most (width - credit) 100 c plus its commissions and fees."""
    d = data.draw
    r = d(st.sampled_from([0.0, 0.02, 0.05, 0.08]))
    raw = _raw(d(st.integers(30, 90)), r, d(st.sampled_from([0.0, 0.01, 0.03])), d(st.sampled_from([0.15, 0.3, 0.6])),
               {"name": "bps", "kind": "bull_put_spread",
                "short_put": {"delta": d(st.sampled_from([0.15, 0.3, 0.45])), "dte": d(st.sampled_from([14, 35, 60]))},
                "width": d(st.sampled_from([1.0, 5.0, 10.0, 25.0])), "entry_every_days": d(st.sampled_from([1, 5])),
                "sizing": {"max_open": d(st.sampled_from([1, 3])), "position_fraction": 0.05,
                           "contracts": d(st.sampled_from(["integer", "fractional"]))},
                "manage": {"early_assignment": True,
                           "early_assignment_time_value": d(st.sampled_from([0.05, 0.5, 2.0])),
                           "stop_loss": d(st.sampled_from([0.0, 2.0])),
                           "roll_when": d(st.sampled_from(["off", "itm", "delta"])),
                           "roll_credit_only": d(st.booleans()),
                           "roll_strike": d(st.sampled_from(["credit", "rule"]))}})
    n = round(raw["run"]["horizon_years"] * 252)
    raw["run"]["seed"] = d(st.integers(0, 10**6))
    raw["shocks"] = [{"day": d(st.integers(1, n)), "log_return": d(st.sampled_from([-0.6, -0.3, -0.15])),
                      "iv_add": d(st.sampled_from([0.0, 0.2]))}]
    raw["costs"] = {"commission_per_contract": d(st.sampled_from([0.0, 0.65, 5.0])),
                    "slippage_per_share": d(st.sampled_from([0.0, 0.02, 0.2])),
                    "slippage_pct": d(st.sampled_from([0.0, 0.01])),
                    "assignment_fee": d(st.sampled_from([0.0, 1.0, 20.0]))}
    sc = parse_scenario(raw)
    market = mcsim.simulate_market(sc, n_paths=2, seed=sc.run.seed)
    for p in range(2):
        out = run_reference(sc, sc.strategies[0], market.spot[p], market.atm_iv[p], market.regime[p])
        _spread_bound_holds(out, sc.costs)


# --------------------------------------------------------------------------------------------
# early exercise against a binomial tree

T1, EXPIRY, THRESHOLD = 10, 40, 0.25   # the spot moves at step 10; the option expires at step 40


def _tree_tv(S, K, tau, r, q, vol, is_call):
    intrinsic = max(S - K, 0.0) if is_call else max(K - S, 0.0)
    return crr_price_nb(S, K, tau, r, q, vol, is_call, TREE_STEPS) - intrinsic


def _region_spots(K, r, q, vol, is_call):
    """(a spot in the tree's continuation region, one in its exercise region) at step T1: the
    tree's time value at least THRESHOLD + 0.15 and exactly 0 (the American price is intrinsic)."""
    tau = (EXPIRY - T1) / 252
    grid = [K * (1 + x / 1000) if is_call else K * (1 - x / 1000) for x in range(1, 800)]  # moving ITM
    cont = next(S for S in reversed(grid) if _tree_tv(S, K, tau, r, q, vol, is_call) >= THRESHOLD + 0.15)
    ex = next(S for S in grid if _tree_tv(S, K, tau, r, q, vol, is_call) <= 1e-12)
    # ITM, the continuation spot nearer the money than the exercise spot
    assert (K < cont < ex) if is_call else (ex < cont < K)
    return cont, ex


def _early_case(is_call, exercise, S1):
    n = 30
    if is_call:
        r, q = 0.01, 0.12
        strat = {"name": "cc", "kind": "covered_call", "call": {"otm_pct": 0.0, "dte": 60, "settle": "shares"},
                 "manage": {"early_assignment_time_value": THRESHOLD}}
    else:
        r, q = 0.05, 0.0
        strat = {"name": "w", "kind": "wheel", "put": {"otm_pct": 0.0, "dte": 60}, "call": {"otm_pct": 0.0},
                 "manage": {"early_assignment_time_value": THRESHOLD}}
    return _raw(n, r, q, 0.25, strat, exercise=exercise), _path(n, {T1: S1}), 0.25


@pytest.mark.parametrize("is_call", [False, True], ids=["put_r_above_q", "call_q_above_r"])
def test_early_exercise_against_binomial_tree(is_call):
    """An ITM American short option inside the tree's continuation region is not assigned; one in
    the exercise region is (puts with r > q, calls with q > r); European ones never are."""
    r, q = (0.01, 0.12) if is_call else (0.05, 0.0)
    cont, ex = _region_spots(100.0, r, q, 0.25, is_call)
    # dte 60 -> 41 steps -> the listed expiry 40 (every 5 steps); strike 100 (otm_pct 0 at spot 100)
    assert calendar_days_to_steps(60, 252) == 41
    for S1, assigned in ((cont, False), (ex, True)):
        raw, spot, vol = _early_case(is_call, "american", S1)
        _, out = _run(raw, spot, vol)
        sale = _rows(out, "sell_call" if is_call else "sell_put")[0]
        assert (sale["strike"], sale["expiry"]) == (100.0, EXPIRY)
        early = _rows(out, "early_assigned", T1)
        assert bool(early) == assigned, (S1, out["log"])
        baw_tv = (baw_price_nb(S1, 100.0, (EXPIRY - T1) / 252, r, q, vol, is_call)
                  - (S1 - 100.0 if is_call else 100.0 - S1))
        assert (baw_tv < THRESHOLD) == assigned
        if assigned:
            row = early[0]
            assert row["reason"] == "early_exercise" and row["price"] == pytest.approx(abs(S1 - 100.0), rel=1e-12)
            if is_call:  # called away early: no shares left
                assert row["shares"] == 0.0 and math.isnan(row["cost_basis"])
            else:        # assigned early: 100 c shares at the strike, cost basis K - cycle premium
                c = sale["contracts"]
                assert row["shares"] == 100 * c
                assert row["cost_basis"] == pytest.approx(100.0 - sale["price"], rel=1e-12)
        # European: never assigned before expiry, whatever the spot
        raw, spot, vol = _early_case(is_call, "european", S1)
        _, out = _run(raw, spot, vol)
        assert not _rows(out, "early_assigned")


def test_cash_settled_strategies_are_european():
    """put_write (Cboe PUT) and a cash-settled covered_call (BXM) are never assigned early, on an
    American underlying, deep in the money; and their marks are not floored at intrinsic."""
    raw, spot, vol = _early_case(False, "american", 70.0)
    raw["strategies"] = [{"name": "pw", "kind": "put_write", "put": {"otm_pct": 0.0, "dte": 60},
                          "manage": {"early_assignment_time_value": 5.0}}]
    sc, out = _run(raw, spot, vol)
    assert not _rows(out, "early_assigned")
    # the mark at step T1: European mid, below intrinsic (r > q, deep ITM)
    row = _rows(out, "end")[0]
    tau = (EXPIRY - 30) / 252
    c = _rows(out, "sell_put")[0]["contracts"]
    bs = bs_price_nb(70.0, 100.0, tau, 0.05, 0.0, vol, False)
    assert bs < 30.0
    assert row["price"] == pytest.approx(_rows(out, "end")[0]["cash"] - bs * 100 * c, rel=1e-12)


# --------------------------------------------------------------------------------------------
# rolls for a credit


def _roll_case(S_roll, **manage):
    n = 30
    strat = {"name": "w", "kind": "wheel", "put": {"otm_pct": 0.0, "dte": 35}, "call": {"otm_pct": 0.0},
             "manage": {"roll_when": "itm", "roll_dte": 7, "roll_out_days": 28, "early_assignment": False, **manage}}
    return _raw(n, 0.05, 0.0, 0.25, strat), _path(n, {20: S_roll}), 0.25


def _net(S, K_new, debit, tau_new, r, q, vol):
    return (_american_mid(S, K_new, tau_new, r, q, vol, False) - SLIP) - debit - 2 * COMMISSION / 100


def test_roll_for_credit_down_and_out():
    """A put 1.4% ITM, 5 steps before expiry (inside roll_dte 7 -> 5 steps): rolled out to the
    expiry nearest 25 + 19 (-> 45) and down to the lowest strike whose roll still nets a credit,
    found by hand; the cash moves by the net; net premium = sale + (new credit - buy-back)."""
    raw, spot, vol = _roll_case(98.6)
    sc, out = _run(raw, spot, vol)
    sale = _rows(out, "sell_put")[0]
    assert (sale["strike"], sale["expiry"]) == (100.0, 25)  # dte 35 -> 24 steps -> listed 25
    roll = _rows(out, "roll")
    assert len(roll) == 1 and roll[0]["step"] == 20 and roll[0]["reason"] == "roll_itm"
    roll = roll[0]
    r, q, S = 0.05, 0.0, 98.6
    debit = _american_mid(S, 100.0, 5 / 252, r, q, vol, False) + SLIP
    assert roll["expiry"] == 45
    nets = {K: _net(S, K, debit, 25 / 252, r, q, vol) for K in np.arange(100.0, 60.0, -1.0)}
    assert nets[100.0] > 0  # rolling out at the old strike pays
    expected = next(K for K in nets if nets[K - 1.0] <= 0)  # last positive before the first not
    assert roll["strike"] == expected < 100.0
    assert roll["price"] == pytest.approx(nets[expected] + debit + 2 * COMMISSION / 100, rel=1e-12)
    c = sale["contracts"]
    before = _rows(out, step=0)[-1]["cash"] * math.exp(0.05 / 252) ** 20
    assert roll["cash"] == pytest.approx(before + nets[expected] * 100 * c, rel=1e-12)
    pp = out["per_path"]
    assert pp["rolls"] == 1 and pp["options_sold"] == 2
    assert pp["premium_collected"] == pytest.approx((sale["price"] + roll["price"]) * 100 * c, rel=1e-12)
    assert pp["net_premium_collected"] == pytest.approx((sale["price"] + roll["price"] - debit) * 100 * c, rel=1e-12)
    assert sum(m["net_premium"] for m in out["monthly"]) == pytest.approx(pp["net_premium_collected"], rel=1e-12)

    # roll_min_credit: the scan stops where the net falls below it (a strike nearer the old one)
    raw, spot, vol = _roll_case(98.6, roll_min_credit=1.0)
    _, out = _run(raw, spot, vol)
    k = _rows(out, "roll")[0]["strike"]
    assert k == next(K for K in nets if nets[K - 1.0] < 1.0) and k > expected and nets[k] >= 1.0

    # roll_strike = "rule": the 30-delta strike for the new expiry, capped at the old strike,
    # taken only when it nets a credit
    raw, spot, vol = _roll_case(98.6, roll_strike="rule")
    _, out = _run(raw, spot, vol)
    rolls = _rows(out, "roll")
    assert len(rolls) <= 1 and not rolls or rolls[0]["strike"] <= 100.0


@pytest.mark.parametrize("mode", ["credit", "rule"])
def test_roll_refused_when_no_strike_nets_a_credit(mode):
    """A put 20% ITM with r > q: its American mid is intrinsic now and for the new expiry, so
    rolling out at the old strike costs the slippage twice and commissions: refused (no event);
    with close_if_unable_to_roll it is bought back instead (reason unable_to_roll)."""
    raw, spot, vol = _roll_case(80.0, roll_strike=mode)
    _, out = _run(raw, spot, vol)
    assert not _rows(out, "roll")
    # held to its expiry (25) and assigned there
    assert [(r["step"], r["action"]) for r in out["log"]][:2] == [(0, "sell_put"), (25, "assigned")]
    assert _american_mid(80.0, 100.0, 25 / 252, 0.05, 0.0, vol, False) == 20.0
    raw, spot, vol = _roll_case(80.0, roll_strike=mode, close_if_unable_to_roll=True)
    _, out = _run(raw, spot, vol)
    close = _rows(out, "buy_to_close")
    assert len(close) == 1 and close[0]["step"] == 20 and close[0]["reason"] == "unable_to_roll"
    assert close[0]["price"] == pytest.approx(20.0 + SLIP, rel=1e-12)
    pp = out["per_path"]
    assert (pp["closes"], pp["unable_to_roll_closes"], pp["max_rolls_closes"], pp["close_dte_closes"]) == (1, 1, 0, 0)


def test_max_rolls_close():
    raw, spot, vol = _roll_case(98.6, max_rolls=0)
    _, out = _run(raw, spot, vol)
    close = _rows(out, "buy_to_close")
    assert len(close) == 1 and close[0]["reason"] == "max_rolls"
    assert (out["per_path"]["closes"], out["per_path"]["max_rolls_closes"]) == (1, 1)


# --------------------------------------------------------------------------------------------
# min_credit, profit take on the fill


def test_min_credit_on_sales():
    """No sale below min_credit; a sale at exactly min_credit happens (fill >= min_credit)."""
    n = 10
    put = {"name": "w", "kind": "wheel", "put": {"otm_pct": 0.05, "dte": 35}, "call": {"otm_pct": 0.0}}
    spread = {"name": "b", "kind": "bull_put_spread", "short_put": {"otm_pct": 0.03, "dte": 35}, "width": 5.0}
    call = {"name": "cc", "kind": "covered_call", "call": {"otm_pct": 0.05, "dte": 35, "settle": "shares"}}
    for strat, action, side in ((put, "sell_put", "put"), (spread, "open_spread", "short_put"),
                                (call, "sell_call", "call")):
        raw = _raw(n, 0.03, 0.0, 0.25, strat)
        _, out = _run(raw, _path(n, {}), 0.25)
        fill = _rows(out, action, 0)[0]["price"]
        for floor, sold in ((fill, True), (fill * (1 + 1e-9), False)):
            raw = _raw(n, 0.03, 0.0, 0.25, {**strat, side: {**strat[side], "min_credit": floor}})
            _, out = _run(raw, _path(n, {}), 0.25)
            assert bool(_rows(out, action, 0)) == sold, (action, floor)


def test_profit_take_compares_the_fill():
    """The mid has fallen to (1 - profit_take) x credit but the buy-back fill plus commission
    would cost more: no profit take; a bit lower, the fill qualifies and the close never pays
    more than the credit allows."""
    n = 12
    strat = {"name": "w", "kind": "wheel", "put": {"otm_pct": 0.0, "dte": 35}, "call": {"otm_pct": 0.0},
             "manage": {"profit_take": 0.5, "early_assignment": False}}
    raw = _raw(n, 0.03, 0.0, 0.25, strat)
    _, out = _run(raw, _path(n, {}), 0.25)
    credit = _rows(out, "sell_put")[0]["price"]
    tau = (25 - 5) / 252

    def mid(S):
        return _american_mid(S, 100.0, tau, 0.03, 0.0, 0.25, False)

    target = 0.5 * credit
    # the spot where the mid is the target, and where the fill + commission is (bisection)
    def solve(f):
        lo, hi = 100.0, 200.0
        for _ in range(200):
            m = 0.5 * (lo + hi)
            lo, hi = (m, hi) if f(m) > target else (lo, m)
        return hi
    s_mid = solve(mid)
    s_fill = solve(lambda S: mid(S) + SLIP + COMMISSION / 100)
    assert s_fill > s_mid
    for S, closes in ((0.5 * (s_mid + s_fill), False), (s_fill + 0.01, True)):
        _, out = _run(raw, _path(n, {5: S}), 0.25)
        pt = _rows(out, "buy_to_close", 5)
        assert bool(pt) == closes, S
        if closes:
            assert pt[0]["reason"] == "profit_take"
            assert pt[0]["price"] + COMMISSION / 100 <= target


def test_profit_takes_never_lose_on_generated_sets():
    """Across seeded generated scenarios: every profit-take buy-back (fill + closing commission
    per share, a spread's two legs) costs at most (1 - profit_take) x the position's credit."""
    from test_reference_vs_kernels import RandomChooser, build_raw

    checked = 0
    for seed in range(60):
        raw = build_raw(RandomChooser(1000 + seed))
        sc = parse_scenario(raw)
        market = mcsim.simulate_market(sc, n_paths=2, seed=sc.run.seed)
        for rules in sc.strategies:
            if rules.kind == "buy_and_hold" or rules.manage.profit_take <= 0:
                continue
            for p in range(2):
                out = run_reference(sc, rules, market.spot[p], market.atm_iv[p], market.regime[p])
                for tr in out["trades"]:
                    if tr.get("reason") == "profit_take":
                        legs = 2 if tr["kind"] == "spread" else 1
                        cost = tr["debit"] + legs * sc.costs.commission_per_contract / 100
                        assert cost <= (1 - rules.manage.profit_take) * tr["credit"] + 1e-12, (seed, rules.name, tr)
                        assert cost <= tr["credit"]
                        checked += 1
    assert checked > 50


# --------------------------------------------------------------------------------------------
# the same hand-made paths through the kernels


def _handmade_cases():
    cases = {"defect1": _defect1()}
    for is_call in (False, True):
        r, q = (0.01, 0.12) if is_call else (0.05, 0.0)
        cont, ex = _region_spots(100.0, r, q, 0.25, is_call)
        for name, S1 in (("cont", cont), ("ex", ex)):
            for exercise in ("american", "european"):
                cases[f"{'call' if is_call else 'put'}_{name}_{exercise}"] = _early_case(is_call, exercise, S1)
    for S in (98.6, 80.0):
        for mode in ("credit", "rule"):
            for unable in (False, True):
                cases[f"roll_{S}_{mode}_{unable}"] = _roll_case(S, roll_strike=mode, close_if_unable_to_roll=unable)
    cases["roll_min_credit"] = _roll_case(98.6, roll_min_credit=1.0)
    cases["max_rolls"] = _roll_case(98.6, max_rolls=0)
    return cases


@pytest.mark.parametrize("name", sorted(_handmade_cases()))
def test_handmade_paths_vs_kernels(name):
    from test_reference_vs_kernels import check_scenario

    raw, spot, vol = _handmade_cases()[name]
    sc = parse_scenario(raw)
    market = MarketPaths(spot[None].copy(), np.full((1,) + spot.shape, vol), np.zeros((1, spot.shape[0]), np.int8),
                         sc.underlying_names, sc.run.steps_per_year)
    check_scenario(raw, replay_paths=1, market=market)
