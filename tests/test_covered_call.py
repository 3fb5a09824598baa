"""covered_call (buy-write, the Cboe BXM rule): analytic truths and hand-made trade logs.

* Under risk-neutral drift, implied vol = realised vol and no costs, a covered call and
  buy-and-hold on the same paths have the same expected final equity (selling a fairly priced
  option is a zero-mean trade; dividends into cash and reinvested are both martingales after
  discounting): their paired mean difference is 0 within 4 standard errors. With an IV premium
  of +0.04 the calls are sold rich, and the mean difference is positive beyond 4 SE.
* Cash-settled, a month's return is capped: (K - S_0 + premium) / S_0 plus the month's
  dividends and interest (the shares' upside above K is paid out).
* Hand-made paths walk the trade log through sell_call, expire_worthless, a cash-settled ITM
  expiry, and (settle = "shares") called_away followed by buying the shares back.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import mcsim
from mcsim.engine import replay_market
from mcsim.errors import ScenarioError
from mcsim.market import MarketPaths
from mcsim.pricing import bs_price_nb
from mcsim.scenario import parse_scenario


def _raw(premium=0.0, q=0.02, r=0.03, mu=None, settle="cash", contracts="fractional", years=1.0):
    return {
        "run": {"horizon_years": years, "seed": 7, "initial_equity": 1_000_000.0, "risk_free_rate": r},
        "underlyings": [{"name": "SPY", "spot": 100.0, "dividend_yield": q,
                         "expected_return": r if mu is None else mu, "volatility": 0.2,
                         "strike_step": 1.0, "expiry_every_days": 21,
                         "implied_vol": {"premium": premium}}],
        "strategies": [{"name": "bxm", "kind": "covered_call", "entry_every_days": 21,
                        "call": {"otm_pct": 0.0, "dte": 30, "settle": settle},
                        "sizing": {"contracts": contracts}}],
    }


def _paired(raw, n_paths):
    sc = parse_scenario(raw)
    pp = mcsim.simulate(sc, n_paths=n_paths, seed=11).per_path
    cc = pp[pp.strategy == "bxm"].sort_values("path").final_equity.to_numpy()
    bh = pp[pp.strategy == "buy_and_hold"].sort_values("path").final_equity.to_numpy()
    d = cc - bh
    return d.mean(), d.std(ddof=1) / math.sqrt(len(d)), pp


def test_fair_calls_are_a_martingale_against_buy_and_hold():
    mean, se, pp = _paired(_raw(), 6000)
    assert abs(mean) < 4.0 * se, (mean, se)
    cc = pp[pp.strategy == "bxm"]
    assert (cc.calls_sold == 12).all() and (cc.options_sold == 12).all()
    assert (cc.called_away == 0).all() and (cc.assignments > 0).any()  # cash-settled ITM


def test_rich_calls_beat_buy_and_hold():
    mean, se, _ = _paired(_raw(premium=0.04), 3000)
    assert mean > 4.0 * se, (mean, se)


# --------------------------------------------------------------------------------------------
# hand-made paths (21-step months and monthly expiries: each call lives exactly one month)


M = 21


def _path():
    """Six months: a rally (ITM), a drop (worthless), flat, a rally, a drop, a small rise."""
    ends = [100.0, 110.0, 96.0, 96.5, 108.0, 99.0, 100.5]
    spot = [ends[0]]
    for m in range(6):
        a, b = ends[m], ends[m + 1]
        for k in range(1, M + 1):
            wiggle = 0.6 * math.sin(k) if k < M else 0.0
            spot.append(a + (b - a) * k / M + wiggle)
    return np.array(spot)


def _market(sc, spot):
    return MarketPaths.from_arrays(spot, atm_iv=0.2, underlyings=sc.underlying_names,
                                   steps_per_year=sc.run.steps_per_year)


def _hand(settle, r=0.0, q=0.0, contracts="integer", fraction=1.0):
    raw = _raw(settle=settle, r=r, q=q, contracts=contracts, years=6 * M / 252)
    raw["run"]["initial_equity"] = 100_000.0
    raw["strategies"][0]["sizing"]["position_fraction"] = fraction
    raw["strategies"][0]["manage"] = {"early_assignment": False}
    sc = parse_scenario(raw)
    mk = _market(sc, _path())
    return sc, mk


@pytest.mark.parametrize("r, q", [(0.0, 0.0), (0.03, 0.02)])
def test_cash_settled_month_return_is_capped(r, q):
    """With a cash buffer (position_fraction 0.8: the ITM payouts never overdraw the cash),
    every month's return is at most (K - S_0 + premium) / S_0 plus its interest and dividends
    over the month's start equity."""
    sc, mk = _hand("cash", r=r, q=q, fraction=0.8)
    res = mcsim.run_strategies(sc, mk)
    mo = res.monthly[res.monthly.strategy == "bxm"].sort_values("month")
    log = replay_market(sc, mk, "bxm")
    sales = log[log.action == "sell_call"]
    settled = log[log.action == "assigned"]
    spot = mk.spot[0, :, 0]
    assert (log.cash >= 0.0).all()
    capped = 0
    for m, row in enumerate(mo.itertuples()):
        sale = sales[sales.step == m * M].iloc[0]
        k, prem, s0 = sale.strike, sale.price, spot[m * M]
        assert sale.expiry == (m + 1) * M
        # the month's interest and dividends: its realised P&L minus the P&L of its call
        # (credit - payout, booked at expiry; the month's `premium` is the next call's sale,
        # at the close that ends the month)
        payout = settled[settled.step == (m + 1) * M]
        paid = float((payout.price * 100.0 * payout.contracts).sum())
        carry = row.realised_pnl - (prem * 100.0 * sale.contracts - paid)
        if r == 0.0 and q == 0.0:
            assert carry == pytest.approx(0.0, abs=1e-6)
        else:
            assert carry > 0.0
        eq_start = row.equity / (1.0 + row.mtm_return)
        bound = (k - s0 + prem) / s0 + carry / eq_start
        assert row.mtm_return <= bound + 1e-12, (m, row.mtm_return, bound)
        if spot[(m + 1) * M] > k:
            capped += 1
            # ITM: the shares earn exactly the capped K - S_0 + premium (the idle cash only
            # dilutes the return below the bound)
            n_shares = 100.0 * sale.contracts
            assert row.mtm_return == pytest.approx((n_shares * (k - s0 + prem) + carry) / eq_start,
                                                   rel=1e-9)
    assert capped >= 2  # the cap was tested where it binds


def _fill(s, k, steps, r, q, vol=0.2):
    return bs_price_nb(s, k, steps / 252, r, q, vol, True)


def test_trade_log_cash_settled():
    sc, mk = _hand("cash")
    log = replay_market(sc, mk, "bxm")
    spot = mk.spot[0, :, 0]
    acts = list(zip(log.step, log.action))
    assert acts[:6] == [(0, "buy_shares"), (0, "sell_call"), (21, "assigned"), (21, "sell_call"),
                        (42, "expire_worthless"), (42, "sell_call")]
    buy, call0, itm = log.iloc[0], log.iloc[1], log.iloc[2]
    # 100,000 $ at 100 $/share: 10 lots of 100, no cash left over
    assert buy.contracts == 10.0 and buy.price == 100.0 and buy.cash == pytest.approx(0.0, abs=1e-9)
    assert call0.strike == 100.0 and call0.contracts == 10.0
    assert call0.price == pytest.approx(_fill(100.0, 100.0, 21, 0.0, 0.0), rel=1e-12)
    # month 1 ends at 110 > K: settled in cash at intrinsic, the shares are kept
    assert itm.kind == "call" and itm.price == pytest.approx(spot[21] - 100.0, rel=1e-12)
    assert itm.cash == pytest.approx(call0.cash - (spot[21] - 100.0) * 1000.0, rel=1e-12)
    assert itm.equity == pytest.approx(itm.cash + 1000.0 * spot[21], rel=1e-12)
    assert "called_away" not in set(log.action)
    assert (log[log.action == "buy_shares"].step == 0).all()  # bought once, held throughout


def test_trade_log_called_away_then_bought_back():
    sc, mk = _hand("shares")
    log = replay_market(sc, mk, "bxm")
    spot = mk.spot[0, :, 0]
    acts = list(zip(log.step, log.action))
    assert acts[:7] == [(0, "buy_shares"), (0, "sell_call"), (21, "called_away"),
                        (21, "buy_shares"), (21, "sell_call"), (42, "expire_worthless"),
                        (42, "sell_call")]
    call0, away, again = log.iloc[1], log.iloc[2], log.iloc[3]
    # called away at the strike: cash += K x 1000 shares, no shares left
    assert away.cash == pytest.approx(call0.cash + 100.0 * 1000.0, rel=1e-12)
    assert away.equity == pytest.approx(away.cash, rel=1e-12)
    # bought back at that close, whole lots the cash allows
    lots = math.floor(away.cash / (100.0 * spot[21]))
    assert again.price == spot[21] and again.contracts == lots
    assert again.cash == pytest.approx(away.cash - lots * 100.0 * spot[21], rel=1e-12)
    res = mcsim.run_strategies(sc, mk)
    row = res.per_path[res.per_path.strategy == "bxm"].iloc[0]
    assert row.called_away == (log.action == "called_away").sum() and row.assignments == 0
    assert row.final_equity == log.equity.iloc[-1]


def test_settle_is_validated():
    raw = _raw(settle="physical")
    with pytest.raises(ScenarioError, match=r"strategies\.bxm\.call\.settle"):
        parse_scenario(raw)
    raw = _raw()
    raw["strategies"][0]["kind"] = "wheel"  # a wheel's calls are always called away
    with pytest.raises(ScenarioError, match=r"settle"):
        parse_scenario(raw)


# --------------------------------------------------------------------------------------------
# sizing.rebalance (issue 12): the shares are traded back to position_fraction of equity on each
# entry day when no call is open, as the Cboe BXM index reinvests


def _rebalanced(contracts="fractional", slip=0.05):
    raw = _raw(settle="cash", r=0.0, q=0.0, contracts=contracts, years=6 * M / 252)
    raw["run"]["initial_equity"] = 100_000.0
    raw["costs"] = {"slippage_per_share": slip}
    raw["strategies"][0]["sizing"]["rebalance"] = True
    raw["strategies"][0]["manage"] = {"early_assignment": False}
    sc = parse_scenario(raw)
    return sc, _market(sc, _path())


def test_rebalance_trades_by_hand():
    """Month 1 ends ITM at 110 (K = 100): the cash-settled payout overdraws the cash, so the
    rebalance sells shares worth the overdraft at 110 (filled at 110 - 0.05); month 2 ends at
    96, the call worthless: the cash (premiums) buys shares at 96 + 0.05, average cost and cycle
    premium per share updated; each before the month's new call, which covers the new holding."""
    sc, mk = _rebalanced()
    log = replay_market(sc, mk, "bxm")
    spot = mk.spot[0, :, 0]
    acts = list(zip(log.step, log.action, log.reason))
    assert acts[:8] == [(0, "buy_shares", "entry"), (0, "sell_call", "entry"),
                        (21, "assigned", "expiry"), (21, "sell_shares", "rebalance"),
                        (21, "sell_call", "entry"), (42, "expire_worthless", "expiry"),
                        (42, "buy_shares", "rebalance"), (42, "sell_call", "entry")]
    buy0, call0, itm, sale, call1, _, buy2, call2 = (log.iloc[i] for i in range(8))
    h0 = 100_000.0 / 100.05                        # all equity at 100 + slippage
    assert buy0.contracts * 100.0 == pytest.approx(h0, rel=1e-12) and buy0.cash == pytest.approx(0.0, abs=1e-9)
    fill0 = _fill(100.0, 100.0, 21, 0.0, 0.0) - 0.05
    assert call0.price == pytest.approx(fill0, rel=1e-12) and call0.contracts == pytest.approx(h0 / 100.0)
    cash = h0 * fill0 - (spot[21] - 100.0) * h0    # premium in, intrinsic out
    assert cash < 0.0 and itm.cash == pytest.approx(cash, rel=1e-12)
    # equity = cash + h0 S: the holding exceeds equity by -cash, sold at S - slippage
    n = -cash / spot[21]
    assert sale.contracts * 100.0 == pytest.approx(n, rel=1e-12) and sale.price == spot[21] - 0.05
    assert sale.cash == pytest.approx(cash + n * (spot[21] - 0.05), abs=1e-6)
    assert sale.cash == pytest.approx(-0.05 * n, abs=1e-6)   # only the slippage is overdrawn
    assert sale.shares == pytest.approx(h0 - n, rel=1e-12)
    assert sale.cost_basis == pytest.approx(100.05 - fill0, rel=1e-12)   # per share, unchanged
    assert call1.contracts * 100.0 == pytest.approx(h0 - n, rel=1e-12)
    # month 2: the call expires worthless; all the cash buys shares at 96 + 0.05
    h1 = h0 - n
    cash2 = sale.cash + call1.price * 100.0 * call1.contracts
    m = cash2 / (spot[42] + 0.05)
    assert buy2.contracts * 100.0 == pytest.approx(m, rel=1e-12) and buy2.cash == pytest.approx(0.0, abs=1e-6)
    avg = (100.05 * h1 + (spot[42] + 0.05) * m) / (h1 + m)
    cycle = (fill0 + call1.price) * h1 / (h1 + m)
    assert buy2.shares == pytest.approx(h1 + m, rel=1e-12)
    assert buy2.cost_basis == pytest.approx(avg - cycle, rel=1e-12)
    assert call2.contracts * 100.0 == pytest.approx(h1 + m, rel=1e-12)
    res = mcsim.run_strategies(sc, mk)
    row = res.per_path[res.per_path.strategy == "bxm"].iloc[0]
    assert row.final_equity == log.equity.iloc[-1]
    # the sale realised (110 - 0.05 - 100.05) a share, booked in month 0 (steps 0..21) with the call's P&L
    mo = res.monthly[res.monthly.strategy == "bxm"].sort_values("month")
    call_pnl = (fill0 - (spot[21] - 100.0)) * h0
    assert mo.realised_pnl.iloc[0] == pytest.approx(call_pnl + (spot[21] - 0.05 - 100.05) * n, rel=1e-9)


def test_rebalance_whole_lots_and_default_off():
    """Integer sizing trades whole lots only, rounded toward zero (no trade inside one lot);
    without the key the shares are bought once and held (the result before issue 12)."""
    sc, mk = _rebalanced(contracts="integer", slip=0.0)
    log = replay_market(sc, mk, "bxm")
    trades = log[log.reason == "rebalance"]
    assert len(trades) > 0    # (both directions in whole lots: the differential test's bxm_lots)
    assert (trades.contracts == np.round(trades.contracts)).all()
    for row in log[log.action == "sell_call"].itertuples():
        # after each entry day's rebalance (no costs: the sale leaves equity unchanged) the
        # holding is within one lot of equity (position_fraction 1), and in whole lots
        assert abs(row.equity - row.shares * row.spot) < 100.0 * row.spot, row
        assert row.shares % 100.0 == 0.0 and row.contracts * 100.0 == row.shares
    raw = _raw(settle="cash", r=0.0, q=0.0, contracts="integer", years=6 * M / 252)
    raw["run"]["initial_equity"] = 100_000.0
    raw["strategies"][0]["manage"] = {"early_assignment": False}
    sc_off = parse_scenario(raw)
    log_off = replay_market(sc_off, _market(sc_off, _path()), "bxm")
    assert (log_off.reason != "rebalance").all()
    assert (log_off[log_off.action == "buy_shares"].step == 0).all()


def test_rebalance_is_validated():
    raw = _raw()
    raw["strategies"][0]["sizing"]["rebalance"] = "yes"
    with pytest.raises(ScenarioError, match=r"strategies\.bxm\.sizing\.rebalance"):
        parse_scenario(raw)
    raw = _raw()
    raw["strategies"][0]["kind"] = "put_write"
    raw["strategies"][0]["put"] = raw["strategies"][0].pop("call")
    raw["strategies"][0]["put"].pop("settle")
    raw["strategies"][0]["sizing"]["rebalance"] = True
    with pytest.raises(ScenarioError, match=r"unknown key \"rebalance\" for kind \"put_write\""):
        parse_scenario(raw)
