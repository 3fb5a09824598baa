"""Hand-made paths through the strategy engine, checked against the formulas of docs/semantics.md.

Each test feeds a deterministic spot list (constant ATM IV, no skew) through
`mcsim.run_strategies`, reads the trade log of that path and compares every strike, expiry,
contract count, fill price and cash balance with a value computed here from Black-Scholes
(`mcsim.pricing`) and the fill, cost and sizing rules of the semantics. Nothing is compared with
earlier engine output.

Settings that keep the numbers derivable in a few lines: 252 steps per year, listed expiries every
5 steps, strike step 1, `dte = 7` calendar days (= round(7 * 252 / 365) = 5 steps, so an entry at
t lands on the expiry t + 5), strikes by `otm_pct` on a spot of 100.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import mcsim
from mcsim.engine import replay_market
from mcsim.market import MarketPaths
from mcsim.pricing import bs_price, implied_vol, round_strike_nb
from mcsim.scenario import load_scenario

SPY = 252
IV = 0.30  # constant ATM IV of every hand-made path
FLOOR = 0.01
COMM = 0.65  # commission per contract per leg
SPS = 0.02  # slippage per share
SPCT = 0.01  # slippage as a fraction of mid
FEE = 1.00  # assignment fee per contract
REL = 1e-9


# ------------------------------------------------------------------------------------------
# formulas of docs/semantics.md, written out independently of the engine


def cal_steps(days: float) -> int:
    """Calendar days -> steps, at least 1 (dte, roll_out_days)."""
    return max(1, int(round(days * SPY / 365)))


def nearest_expiry(t: int, target: int, after: int, every: int = 5) -> int:
    """Listed expiry (k * every, k >= 1) after `after` nearest `target`; ties go to the later one."""
    cands = [every * k for k in range(after // every + 1, target // every + 3) if every * k > after]
    return min(cands, key=lambda e: (abs(e - target), -e))


def mid(spot, strike, steps_left, is_call, r, q=0.0, atm=IV):
    """Black-Scholes mid per share at the smile IV (skew 0) with `steps_left` steps to expiry."""
    tau = steps_left / SPY
    iv = implied_vol(atm, spot, strike, tau, r, q, 0.0, FLOOR)
    return float(bs_price(spot, strike, tau, r, q, iv, is_call))


def slip(m):
    return SPS + SPCT * m


def sell_fill(m):
    return max(m - slip(m), 0.0)


def buy_fill(m):
    return m + slip(m)


def put_strike(spot, otm):
    return float(round_strike_nb(spot * (1.0 - otm), 1.0, False))


def call_strike(spot, otm):
    return float(round_strike_nb(spot * (1.0 + otm), 1.0, True))


def put_contracts(equity, free_cash, strike, fill, pf=1.0):
    """Cash-secured put sizing, integer contracts: floor(pf E / (100 K)), capped by free cash."""
    c = math.floor(pf * equity / (strike * 100.0))
    cap = math.floor(free_cash / (strike * 100.0 - fill * 100.0 + COMM))
    return min(c, cap)


class Book:
    """Cash with the carry of step 0 of the event order: interest on cash, dividends on shares."""

    def __init__(self, cash, spot, r=0.0, q=0.0):
        self.cash, self.spot, self.r, self.q = float(cash), spot, r, q
        self.t = 0
        self.shares = 0.0
        self.interest = [0.0] * len(spot)

    def to(self, t):
        while self.t < t:
            self.t += 1
            i = self.cash * (math.exp(self.r / SPY) - 1.0)
            d = self.shares * self.spot[self.t - 1] * (math.exp(self.q / SPY) - 1.0)
            self.interest[self.t] = i + d
            self.cash += i
            self.cash += d
        return self


# ------------------------------------------------------------------------------------------
# scenario, market, engine access


def scenario(tmp_path, n_steps, strategy, *, r=0.0, q=0.0, equity=20000.0, withdrawal=0.0,
             costs=True, name="s.toml"):
    comm, sps, spct, fee = (COMM, SPS, SPCT, FEE) if costs else (0.0, 0.0, 0.0, 0.0)
    text = f"""
[run]
horizon_years = {n_steps / SPY!r}
steps_per_year = {SPY}
paths = 1
seed = 1
initial_equity = {equity!r}
risk_free_rate = {r!r}
monthly_withdrawal = {withdrawal!r}

[[underlyings]]
name = "X"
spot = 100.0
dividend_yield = {q!r}
expected_return = 0.05
volatility = {IV!r}
strike_step = 1.0
expiry_every_days = 5
[underlyings.implied_vol]
premium = 0.0
skew = 0.0
floor = {FLOOR!r}

[costs]
commission_per_contract = {comm!r}
slippage_per_share = {sps!r}
slippage_pct = {spct!r}
assignment_fee = {fee!r}

{strategy}
"""
    p = tmp_path / name
    p.write_text(text)
    scn = load_scenario(p)
    assert scn.run.n_steps == n_steps
    return scn


def market(spot):
    return MarketPaths.from_arrays(np.asarray(spot, dtype=float), atm_iv=IV, underlyings=("X",),
                                   steps_per_year=SPY)


def trade_log(scn, mkt, strategy) -> pd.DataFrame:
    """Trade log of path 0 of the given market: the engine's replay on given paths."""
    return replay_market(scn, mkt, strategy).reset_index(drop=True)


def run(scn, spot, strategy):
    mkt = market(spot)
    res = mcsim.run_strategies(scn, mkt)
    pp = res.per_path
    row = pp[(pp["strategy"] == strategy) & (pp["path"] == 0)]
    assert len(row) == 1
    return trade_log(scn, mkt, strategy), row.iloc[0], res


def check(row, step, action, *, strike=None, expiry=None, contracts=None, price=None, cash=None,
          equity=None, iv=None):
    where = f"{action}@{step}"
    assert row["action"] == action, where
    assert int(row["step"]) == step, where
    if strike is not None:
        assert row["strike"] == pytest.approx(strike, rel=REL), where + " strike"
    if expiry is not None:
        assert int(row["expiry"]) == expiry, where + " expiry"
    if contracts is not None:
        assert row["contracts"] == pytest.approx(contracts, rel=REL), where + " contracts"
    if price is not None:
        assert row["price"] == pytest.approx(price, rel=REL, abs=1e-12), where + " price"
    if cash is not None:
        assert row["cash"] == pytest.approx(cash, rel=REL), where + " cash"
    if equity is not None:
        assert row["equity"] == pytest.approx(equity, rel=REL), where + " equity"
    if iv is not None:
        assert row["iv"] == pytest.approx(iv, rel=REL), where + " iv"


def actions(log):
    return [(int(s), a) for s, a in zip(log["step"], log["action"])]


# ------------------------------------------------------------------------------------------
# the wheel: assignment, covered call above min_strike, called away, puts again


WHEEL = """
[[strategies]]
name = "wheel"
kind = "wheel"
underlyings = ["X"]
entry_every_days = 5
[strategies.put]
otm_pct = 0.01
dte = 7
[strategies.call]
otm_pct = 0.0
dte = 7
min_strike = "{min_strike}"
[strategies.sizing]
position_fraction = 1.0
contracts = "integer"
"""


@pytest.mark.parametrize("min_strike", ["cost_basis", "none", "purchase_price"])
def test_wheel_assignment_covered_call_called_away(tmp_path, min_strike):
    r, q = 0.05, 0.02
    spot = [100.0] * 5 + [97.0] * 5 + [100.0] * 5 + [101.0]  # t = 0..15
    n = len(spot) - 1
    scn = scenario(tmp_path, n, WHEEL.format(min_strike=min_strike), r=r, q=q)
    log, pp, _ = run(scn, spot, "wheel")

    b = Book(20000.0, spot, r, q)
    # t = 0: cash-secured put, 1% below spot, at the listed expiry nearest 5 steps
    k0 = put_strike(100.0, 0.01)
    e0 = nearest_expiry(0, cal_steps(7), 0)
    assert (k0, e0) == (99.0, 5)
    p0 = sell_fill(mid(100.0, k0, e0, False, r, q))
    c0 = put_contracts(b.cash, b.cash, k0, p0)
    assert c0 == 2
    b.cash += p0 * 100 * c0 - COMM * c0
    cash_sell_put = b.cash

    # t = 5: expires in the money (97 < 99): assigned, shares bought at the strike
    b.to(5)
    b.cash -= k0 * 100 * c0 + FEE * c0
    b.shares = 100.0 * c0
    cash_assigned = b.cash
    cost_basis = k0 - p0  # strike minus the cycle's premium per share
    # covered call on all shares: at the money by the rule, never below the min_strike level
    k_rule = call_strike(97.0, 0.0)
    level = {"cost_basis": math.ceil(cost_basis), "none": 0.0, "purchase_price": k0}[min_strike]
    k1 = max(k_rule, level)
    assert k1 == {"cost_basis": 98.0, "none": 97.0, "purchase_price": 99.0}[min_strike]
    e1 = nearest_expiry(5, 5 + cal_steps(7), 5)
    assert e1 == 10
    f1 = sell_fill(mid(97.0, k1, e1 - 5, True, r, q))
    assert f1 * 100 * c0 - COMM * c0 > 0  # the call is worth selling
    b.cash += f1 * 100 * c0 - COMM * c0
    cash_sell_call = b.cash

    # t = 10: 100 > call strike: called away at the strike
    b.to(10)
    b.cash += k1 * 100 * c0 - FEE * c0
    b.shares = 0.0
    cash_called = b.cash
    # a new cycle: put at 99 expiring at 15, sized on the equity now (all cash)
    p2 = sell_fill(mid(100.0, k0, 5, False, r, q))
    c2 = put_contracts(b.cash, b.cash, k0, p2)
    b.cash += p2 * 100 * c2 - COMM * c2
    cash_sell_put2 = b.cash

    # t = 15 (last step): 101 >= 99, expires worthless
    b.to(15)
    final = b.cash

    assert actions(log) == [(0, "sell_put"), (5, "assigned"), (5, "sell_call"), (10, "called_away"),
                            (10, "sell_put"), (15, "expire_worthless"), (15, "end")]
    # price: the fill for sales, the short leg's intrinsic value at assignment / call-away, 0 when
    # worthless, the final equity on `end`; equity: marked at mid right after the event
    check(log.iloc[0], 0, "sell_put", strike=k0, expiry=e0, contracts=c0, price=p0, cash=cash_sell_put,
          equity=cash_sell_put - mid(100.0, k0, e0, False, r, q) * 100 * c0, iv=IV)
    check(log.iloc[1], 5, "assigned", strike=k0, expiry=e0, contracts=c0, price=k0 - 97.0,
          cash=cash_assigned, equity=cash_assigned + 100 * c0 * 97.0)
    check(log.iloc[2], 5, "sell_call", strike=k1, expiry=e1, contracts=c0, price=f1, cash=cash_sell_call,
          equity=cash_sell_call + 100 * c0 * 97.0 - mid(97.0, k1, e1 - 5, True, r, q) * 100 * c0, iv=IV)
    check(log.iloc[3], 10, "called_away", strike=k1, expiry=e1, contracts=c0, price=100.0 - k1,
          cash=cash_called, equity=cash_called)
    check(log.iloc[4], 10, "sell_put", strike=k0, expiry=15, contracts=c2, price=p2, cash=cash_sell_put2)
    check(log.iloc[5], 15, "expire_worthless", strike=k0, expiry=15, contracts=c2, price=0.0, cash=final)
    check(log.iloc[6], 15, "end", price=final, cash=final, equity=final)

    assert pp["final_equity"] == pytest.approx(final, rel=REL)
    assert pp["premium_collected"] == pytest.approx(100 * (p0 * c0 + f1 * c0 + p2 * c2), rel=REL)
    # everything is closed at the end, so all of the gain is realised
    assert pp["realised_pnl"] == pytest.approx(final - 20000.0, rel=1e-8)
    counts = dict(options_sold=3, puts_sold=2, calls_sold=1, assignments=1, called_away=1,
                  expired_worthless=1, early_assignments=0, rolls=0, profit_takes=0, stop_losses=0)
    assert {k: int(pp[k]) for k in counts} == counts
    assert int(pp["days_in_shares"]) == 5  # closes of steps 5..9 hold shares


# ------------------------------------------------------------------------------------------
# management: profit take, stop loss


PUT_WRITE = """
[[strategies]]
name = "pw"
kind = "put_write"
underlyings = ["X"]
entry_every_days = 5
[strategies.put]
otm_pct = {otm}
dte = 7
[strategies.manage]
profit_take = {profit_take}
stop_loss = {stop_loss}
roll_when = "{roll_when}"
roll_dte = 7
roll_out_days = {roll_out_days}
roll_credit_only = {credit_only}
roll_strike = "{roll_strike}"
roll_min_credit = {roll_min_credit}
close_if_unable_to_roll = {close_if_unable}
early_assignment = {early}
[strategies.sizing]
position_fraction = 1.0
contracts = "integer"
"""


def put_write(otm=0.01, profit_take=0.5, stop_loss=2.0, roll_when="off", roll_out_days=28,
              credit_only=True, close_if_unable=False, early=False, roll_strike="rule",
              roll_min_credit=0.0):
    b = lambda x: "true" if x else "false"  # noqa: E731
    return PUT_WRITE.format(otm=otm, profit_take=profit_take, stop_loss=stop_loss, roll_when=roll_when,
                            roll_out_days=roll_out_days, credit_only=b(credit_only),
                            close_if_unable=b(close_if_unable), early=b(early),
                            roll_strike=roll_strike, roll_min_credit=roll_min_credit)


@pytest.mark.parametrize("rule,s2", [("profit_take", 106.0), ("stop_loss", 95.0)])
def test_profit_take_and_stop_loss(tmp_path, rule, s2):
    spot = [100.0, 100.0] + [s2] * 4  # t = 0..5
    scn = scenario(tmp_path, 5, put_write(profit_take=0.5, stop_loss=2.0))
    log, pp, _ = run(scn, spot, "pw")

    k, e = 99.0, 5
    p0 = sell_fill(mid(100.0, k, e, False, 0.0))
    c = put_contracts(20000.0, 20000.0, k, p0)
    cash0 = 20000.0 + p0 * 100 * c - COMM * c
    # t = 1: neither rule fires (the closing cost per share, buy-back fill plus commission, vs
    # the gross credit per share p0)
    m1 = mid(100.0, k, 4, False, 0.0)
    assert 0.5 * p0 < buy_fill(m1) + COMM / 100 < 2.0 * p0
    # t = 2: one of them does
    m2 = mid(s2, k, 3, False, 0.0)
    fb = buy_fill(m2)
    if rule == "profit_take":
        assert fb + COMM / 100 <= (1 - 0.5) * p0
    else:
        assert fb + COMM / 100 >= 2.0 * p0
    cash2 = cash0 - fb * 100 * c - COMM * c

    assert actions(log) == [(0, "sell_put"), (2, "buy_to_close"), (5, "end")]
    check(log.iloc[0], 0, "sell_put", strike=k, expiry=e, contracts=c, price=p0, cash=cash0)
    check(log.iloc[1], 2, "buy_to_close", strike=k, expiry=e, contracts=c, price=fb, cash=cash2)
    check(log.iloc[2], 5, "end", cash=cash2, equity=cash2)
    assert pp["final_equity"] == pytest.approx(cash2, rel=REL)
    assert pp["realised_pnl"] == pytest.approx((p0 - fb) * 100 * c - 2 * COMM * c, rel=1e-8)
    assert int(pp["profit_takes"]) == (rule == "profit_take")
    assert int(pp["stop_losses"]) == (rule == "stop_loss")
    assert int(pp["options_sold"]) == 1 and int(pp["expired_worthless"]) == 0
    # net premium: the credit minus the buy-back debit
    assert pp["net_premium_collected"] == pytest.approx((p0 - fb) * 100 * c, rel=REL)
    assert list(log["reason"]) == ["entry", rule, "end"]


def test_profit_take_decided_on_the_fill(tmp_path):
    """The mid has fallen to half the credit but the buy-back fill (mid + slippage + the closing
    commission per share) has not: no profit take, the put expires worthless."""
    spot = [100.0] * 6
    scn = scenario(tmp_path, 5, put_write(profit_take=0.5, stop_loss=0.0))
    k = 99.0
    p0 = sell_fill(mid(100.0, k, 5, False, 0.0))
    # find a spot path where step 2's mid is below half the credit but its fill is not
    for s2 in np.arange(100.0, 110.0, 0.01):
        m2 = mid(float(s2), k, 3, False, 0.0)
        if m2 <= 0.5 * p0 < buy_fill(m2) + COMM / 100:
            break
    else:
        pytest.fail("no such spot")
    spot = [100.0, 100.0] + [float(s2)] * 4
    log, pp, _ = run(scn, spot, "pw")
    # not at step 2; a later step's buy-back (more time decay) fills at or below half the credit
    assert (2, "buy_to_close") not in actions(log)
    for row in log[log["action"] == "buy_to_close"].itertuples():
        assert row.price + COMM / 100 <= 0.5 * p0
        assert row.price == pytest.approx(buy_fill(mid(float(s2), k, 5 - row.step, False, 0.0)), rel=REL)


# ------------------------------------------------------------------------------------------
# rolls: for a credit, refused for a debit (or closed instead, or allowed)


def test_roll_down_and_out_for_credit(tmp_path):
    spot = [100.0] * 3 + [98.0] * 8  # t = 0..10
    n = 10
    scn = scenario(tmp_path, n, put_write(otm=0.0, profit_take=0.0, stop_loss=0.0, roll_when="itm",
                                          roll_out_days=35))
    log, pp, _ = run(scn, spot, "pw")

    k0, e0 = 100.0, 5
    p0 = sell_fill(mid(100.0, k0, e0, False, 0.0))
    c = put_contracts(20000.0, 20000.0, k0, p0)
    cash0 = 20000.0 + p0 * 100 * c - COMM * c
    # t = 1, 2: at the money, not challenged (S < K is needed). t = 3: 98 < 100 with 2 steps left
    assert 5 - 3 <= cal_steps(7)
    e1 = nearest_expiry(3, e0 + cal_steps(35), after=e0)
    assert (cal_steps(35), e1) == (24, 30)
    k1 = min(put_strike(98.0, 0.0), k0)
    assert k1 == 98.0
    close = buy_fill(mid(98.0, k0, e0 - 3, False, 0.0))
    new = sell_fill(mid(98.0, k1, e1 - 3, False, 0.0))
    net = (new - close) * 100 * c - 2 * COMM * c
    assert net > 0
    cash3 = cash0 + net
    # afterwards 27 steps are left: no more rolls; at t = 10 the put is marked at mid
    final = cash3 - mid(98.0, k1, e1 - n, False, 0.0) * 100 * c

    assert actions(log) == [(0, "sell_put"), (3, "roll"), (10, "end")]
    check(log.iloc[0], 0, "sell_put", strike=k0, expiry=e0, contracts=c, price=p0, cash=cash0)
    check(log.iloc[1], 3, "roll", strike=k1, expiry=e1, contracts=c, price=new, cash=cash3,
          equity=cash3 - mid(98.0, k1, e1 - 3, False, 0.0) * 100 * c)
    check(log.iloc[2], 10, "end", cash=cash3, equity=final)
    assert pp["final_equity"] == pytest.approx(final, rel=REL)
    assert int(pp["rolls"]) == 1 and int(pp["options_sold"]) == 2 and int(pp["puts_sold"]) == 2
    assert pp["premium_collected"] == pytest.approx((p0 + new) * 100 * c, rel=REL)
    # the first put's P&L is realised at the roll: credit - buy-back - both commissions of it
    assert pp["realised_pnl"] == pytest.approx((p0 - close) * 100 * c - 2 * COMM * c, rel=1e-8)


def credit_roll_strike(spot, k0, steps_old, steps_new, min_credit=0.0, step=1.0):
    """The credit roll of docs/semantics.md, written out: K_j = K_old - j step while the roll of
    K_j nets > 0 and >= min_credit per share after 4 commissions; (K, new fill, net) or None."""
    close = buy_fill(mid(spot, k0, steps_old, False, 0.0))
    best = None
    for j in range(1000):
        k = k0 - j * step
        if k <= 0:
            break
        new = sell_fill(mid(spot, k, steps_new, False, 0.0))
        net = new - close - 2 * COMM / 100
        if not (net >= min_credit and net > 0):
            break
        best = (k, new, net)
    return best, close


def test_credit_roll_down_and_out(tmp_path):
    """A put 1.4% in the money inside roll_dte is rolled down and out for a net credit to the
    lowest strike at or below the old one whose roll still nets a credit after costs."""
    spot = [100.0] * 3 + [98.6] * 8  # t = 0..10
    scn = scenario(tmp_path, 10, put_write(otm=0.0, profit_take=0.0, stop_loss=0.0, roll_when="itm",
                                           roll_out_days=35, roll_strike="credit"))
    log, pp, _ = run(scn, spot, "pw")
    k0, e0, e1 = 100.0, 5, 30
    p0 = sell_fill(mid(100.0, k0, e0, False, 0.0))
    c = put_contracts(20000.0, 20000.0, k0, p0)
    cash0 = 20000.0 + p0 * 100 * c - COMM * c
    (k1, new, net), close = credit_roll_strike(98.6, k0, e0 - 3, e1 - 3)
    assert k1 < k0 and net > 0          # rolled down, for a credit
    # the strike below it would have cost money
    assert sell_fill(mid(98.6, k1 - 1, e1 - 3, False, 0.0)) - close - 2 * COMM / 100 <= 0
    cash3 = cash0 + (new - close) * 100 * c - 2 * COMM * c
    assert actions(log) == [(0, "sell_put"), (3, "roll"), (10, "end")]
    check(log.iloc[1], 3, "roll", strike=k1, expiry=e1, contracts=c, price=new, cash=cash3)
    assert log.iloc[1]["reason"] == "roll_itm"
    assert int(pp["rolls"]) == 1
    assert pp["net_premium_collected"] == pytest.approx((p0 - close + new) * 100 * c, rel=REL)


@pytest.mark.parametrize("close_if_unable", [False, True])
def test_credit_roll_refused(tmp_path, close_if_unable):
    """No strike nets roll_min_credit: the roll is refused (kept to expiry, or closed with reason
    unable_to_roll)."""
    spot = [100.0] * 3 + [98.6] * 3  # t = 0..5
    scn = scenario(tmp_path, 5, put_write(otm=0.0, profit_take=0.0, stop_loss=0.0, roll_when="itm",
                                          roll_out_days=35, roll_strike="credit", roll_min_credit=3.0,
                                          close_if_unable=close_if_unable))
    log, pp, _ = run(scn, spot, "pw")
    best, close = credit_roll_strike(98.6, 100.0, 2, 27, min_credit=3.0)
    assert best is None
    if close_if_unable:
        assert actions(log) == [(0, "sell_put"), (3, "buy_to_close"), (5, "end")]
        assert log.iloc[1]["reason"] == "unable_to_roll"
        assert int(pp["unable_to_roll_closes"]) == 1 and int(pp["closes"]) == 1
        check(log.iloc[1], 3, "buy_to_close", strike=100.0, price=close)
    else:
        assert actions(log) == [(0, "sell_put"), (5, "assigned"), (5, "end")]
        assert log.iloc[1]["reason"] == "expiry"
    assert int(pp["rolls"]) == 0


@pytest.mark.parametrize("variant", ["refused", "close_instead", "debit_allowed"])
def test_debit_roll(tmp_path, variant):
    spot = [100.0] * 3 + [90.0] * 3  # t = 0..5
    scn = scenario(tmp_path, 5, put_write(otm=0.0, profit_take=0.0, stop_loss=0.0, roll_when="itm",
                                          roll_out_days=7, credit_only=variant != "debit_allowed",
                                          close_if_unable=variant == "close_instead"))
    log, pp, _ = run(scn, spot, "pw")

    k0, e0 = 100.0, 5
    p0 = sell_fill(mid(100.0, k0, e0, False, 0.0))
    c = put_contracts(20000.0, 20000.0, k0, p0)
    cash0 = 20000.0 + p0 * 100 * c - COMM * c
    e1 = nearest_expiry(3, e0 + cal_steps(7), after=e0)
    assert e1 == 10
    k1 = min(put_strike(90.0, 0.0), k0)
    nets = {}
    for t in (3, 4):  # challenged and inside roll_dte on both steps; the roll costs money
        close = buy_fill(mid(90.0, k0, e0 - t, False, 0.0))
        new = sell_fill(mid(90.0, k1, e1 - t, False, 0.0))
        nets[t] = (new - close, (new - close) * 100 * c - 2 * COMM * c, new)
        assert nets[t][1] < 0

    check(log.iloc[0], 0, "sell_put", strike=k0, expiry=e0, contracts=c, price=p0, cash=cash0)
    if variant == "refused":
        # no event on t = 3, 4; cash-settled assignment at expiry
        final = cash0 - (k0 - 90.0) * 100 * c - FEE * c
        assert actions(log) == [(0, "sell_put"), (5, "assigned"), (5, "end")]
        check(log.iloc[1], 5, "assigned", strike=k0, expiry=e0, contracts=c, price=k0 - 90.0, cash=final)
        counts = dict(rolls=0, closes=0, assignments=1, options_sold=1)
    elif variant == "close_instead":
        fb = buy_fill(mid(90.0, k0, e0 - 3, False, 0.0))
        final = cash0 - fb * 100 * c - COMM * c
        assert actions(log) == [(0, "sell_put"), (3, "buy_to_close"), (5, "end")]
        check(log.iloc[1], 3, "buy_to_close", strike=k0, expiry=e0, contracts=c, price=fb, cash=final)
        counts = dict(rolls=0, closes=1, assignments=0, options_sold=1)
    else:
        cash3 = cash0 + nets[3][1]
        final = cash3 - mid(90.0, k1, e1 - 5, False, 0.0) * 100 * c  # marked at t = 5 = n
        assert actions(log) == [(0, "sell_put"), (3, "roll"), (5, "end")]
        check(log.iloc[1], 3, "roll", strike=k1, expiry=e1, contracts=c, price=nets[3][2], cash=cash3)
        counts = dict(rolls=1, closes=0, assignments=0, options_sold=2)
    check(log.iloc[-1], 5, "end", equity=final)
    assert pp["final_equity"] == pytest.approx(final, rel=REL)
    assert {k: int(pp[k]) for k in counts} == counts


# ------------------------------------------------------------------------------------------
# early assignment


@pytest.mark.parametrize("early", [True, False])
def test_early_assignment_of_wheel_put(tmp_path, early):
    spot = [100.0, 100.0, 90.0, 90.0, 90.0, 90.0]
    strat = WHEEL.format(min_strike="cost_basis") + f"""
[strategies.manage]
early_assignment = {"true" if early else "false"}
early_assignment_time_value = 0.05
"""
    scn = scenario(tmp_path, 5, strat)
    log, pp, _ = run(scn, spot, "wheel")

    k, e = 99.0, 5
    p0 = sell_fill(mid(100.0, k, e, False, 0.0))
    c = put_contracts(20000.0, 20000.0, k, p0)
    cash0 = 20000.0 + p0 * 100 * c - COMM * c
    # t = 2: in the money with an American time value below the threshold (r = q = 0: the
    # American put is worth its European price, here within 0.05 of intrinsic)
    from mcsim.american import crr_price_nb
    assert crr_price_nb(90.0, k, 3 / SPY, 0.0, 0.0, IV, False, 400) - (k - 90.0) < 0.05
    cash_assigned = cash0 - k * 100 * c - FEE * c
    final = cash_assigned + 100 * c * 90.0

    check(log.iloc[0], 0, "sell_put", strike=k, expiry=e, contracts=c, price=p0, cash=cash0)
    if early:
        assert actions(log) == [(0, "sell_put"), (2, "early_assigned"), (5, "end")]
        check(log.iloc[1], 2, "early_assigned", strike=k, expiry=e, contracts=c, price=k - 90.0,
              cash=cash_assigned, equity=cash_assigned + 100 * c * 90.0)
        assert log.iloc[1]["reason"] == "early_exercise"
    else:
        assert actions(log) == [(0, "sell_put"), (5, "assigned"), (5, "end")]
        check(log.iloc[1], 5, "assigned", strike=k, expiry=e, contracts=c, price=k - 90.0, cash=cash_assigned)
        assert log.iloc[1]["reason"] == "expiry"
    # after the event: the shares and the cost basis (strike - the put's credit)
    assert log.iloc[1]["shares"] == 100 * c
    assert log.iloc[1]["cost_basis"] == pytest.approx(k - p0, rel=REL)
    check(log.iloc[-1], 5, "end", cash=cash_assigned, equity=final)
    assert pp["final_equity"] == pytest.approx(final, rel=REL)
    assert int(pp["assignments"]) == 1
    assert int(pp["early_assignments"]) == int(early)
    assert int(pp["days_in_shares"]) == (4 if early else 1)


SPREAD = """
[[strategies]]
name = "bps"
kind = "bull_put_spread"
underlyings = ["X"]
entry_every_days = 5
width = 5.0
[strategies.short_put]
otm_pct = 0.01
dte = 7
[strategies.manage]
early_assignment = true
early_assignment_time_value = 0.05
[strategies.sizing]
position_fraction = 0.2
contracts = "integer"
"""


def test_early_assignment_of_spread_short_leg(tmp_path):
    """r = 5%: the short 99 put, 14% in the money with 3 steps left, is exercised by its holder
    (its American time value, on a 400-step tree computed here, is far below the threshold);
    the long 94 put, worth no more than intrinsic, is exercised too rather than sold below it,
    so the spread loses exactly its width minus the credit plus commissions and fees."""
    from mcsim.american import crr_price_nb

    r = 0.05
    spot = [100.0, 100.0, 85.0, 85.0, 85.0, 85.0]
    scn = scenario(tmp_path, 5, SPREAD, equity=10000.0, r=r)
    log, pp, _ = run(scn, spot, "bps")

    ks, kl, e = 99.0, 94.0, 5
    credit = sell_fill(mid(100.0, ks, e, False, r)) - buy_fill(mid(100.0, kl, e, False, r))
    c = min(math.floor(0.2 * 10000.0 / ((ks - kl - credit) * 100)),
            math.floor(10000.0 / ((ks - kl - credit) * 100 + 2 * COMM)))
    assert c >= 1
    b = Book(10000.0, spot, r)
    b.cash += credit * 100 * c - 2 * COMM * c
    cash0 = b.cash
    tau = 3 / SPY
    assert crr_price_nb(85.0, ks, tau, r, 0.0, IV, False, 400) - (ks - 85.0) < 0.01
    b.to(2)
    # the long put: American mid = max(European mid, intrinsic); sold at its fill less one
    # commission, or exercised at intrinsic less the fee, whichever pays more
    m_long = max(mid(85.0, kl, 3, False, r), kl - 85.0)
    sale = sell_fill(m_long) * 100 * c - COMM * c
    exercise = (kl - 85.0) * 100 * c - FEE * c
    assert exercise > sale
    b.cash += -(ks - 85.0) * 100 * c - FEE * c + max(sale, exercise)
    cash2 = b.cash
    b.to(5)
    final = b.cash

    acts = actions(log)
    assert acts[0] == (0, "open_spread") and acts[-1] == (5, "end")
    assert (2, "early_assigned") in acts
    check(log.iloc[0], 0, "open_spread", strike=ks, expiry=e, contracts=c, price=credit, cash=cash0)
    assert log.iloc[0]["long_strike"] == kl
    ea = log[log["action"] == "early_assigned"].iloc[0]
    check(ea, 2, "early_assigned", strike=ks, expiry=e, contracts=c, price=ks - 85.0, cash=cash2)
    assert ea["reason"] == "early_exercise" and ea["long_strike"] == kl
    check(log.iloc[-1], 5, "end", cash=final, equity=final)
    assert pp["final_equity"] == pytest.approx(final, rel=REL)
    assert int(pp["assignments"]) == 1 and int(pp["early_assignments"]) == 1
    # the trade's loss is the defined maximum plus its commissions and fees, no more
    loss = cash2 - (10000.0 + sum(b.interest[1:3]))
    assert loss == pytest.approx(-((ks - kl - credit) * 100 * c + 2 * COMM * c + 2 * FEE * c), rel=1e-9)


# ------------------------------------------------------------------------------------------
# withdrawals with a shortfall


def test_withdrawals_with_shortfall(tmp_path):
    r = 0.03
    spot = [100.0] * 43  # t = 0..42, M = 21: month ends at 21 and 42
    n = 42
    strat = """
[[strategies]]
name = "pw"
kind = "put_write"
underlyings = ["X"]
entry_every_days = 1000
[strategies.put]
otm_pct = 0.01
dte = 45
[strategies.sizing]
position_fraction = 1.0
contracts = "integer"
"""
    scn = scenario(tmp_path, n, strat, r=r, equity=10000.0, withdrawal=1000.0)
    assert scn.run.month_steps == 21
    log, pp, res = run(scn, spot, "pw")

    k = 99.0
    e = nearest_expiry(0, cal_steps(45), 0)
    assert (cal_steps(45), e) == (31, 30)
    b = Book(10000.0, spot, r)
    p0 = sell_fill(mid(100.0, k, e, False, r))
    c = put_contracts(b.cash, b.cash, k, p0)
    assert c == 1
    b.cash += p0 * 100 * c - COMM * c
    cash0 = b.cash
    eq0 = cash0 - mid(100.0, k, e, False, r) * 100 * c
    # t = 21: the put reserves K 100 c; only the free cash is paid out, a shortfall
    b.to(21)
    free = b.cash - k * 100 * c
    assert 0 < free < 1000.0
    b.cash -= free
    cash21 = b.cash
    eq21 = cash21 - mid(100.0, k, e - 21, False, r) * 100 * c
    # t = 30: expires worthless; t = 42: the full amount is paid
    b.to(42)
    b.cash -= 1000.0
    final = b.cash

    assert actions(log) == [(0, "sell_put"), (21, "withdraw"), (30, "expire_worthless"), (42, "withdraw"),
                            (42, "end")]
    check(log.iloc[0], 0, "sell_put", strike=k, expiry=e, contracts=c, price=p0, cash=cash0)
    check(log.iloc[1], 21, "withdraw", price=free, cash=cash21, equity=eq21)
    check(log.iloc[2], 30, "expire_worthless", strike=k, expiry=e, contracts=c, price=0.0)
    check(log.iloc[3], 42, "withdraw", price=1000.0, cash=final)
    check(log.iloc[4], 42, "end", cash=final, equity=final)
    assert pp["final_equity"] == pytest.approx(final, rel=REL)
    assert pp["withdrawn"] == pytest.approx(free + 1000.0, rel=REL)
    assert int(pp["shortfalls"]) == 1 and int(pp["first_shortfall_month"]) == 0

    mo = res.monthly
    mo = mo[(mo["strategy"] == "pw") & (mo["path"] == 0)].sort_values("month").reset_index(drop=True)
    assert list(mo["month"]) == [0, 1]
    assert list(mo["shortfall"]) == [True, False]
    assert list(mo["partial"]) == [False, False]
    assert mo["withdrawn"].tolist() == pytest.approx([free, 1000.0], rel=REL)
    assert mo["equity"].tolist() == pytest.approx([eq21, final], rel=REL)
    assert mo["premium"].tolist() == pytest.approx([p0 * 100 * c, 0.0], rel=REL, abs=1e-9)
    # taking income out is not a loss
    assert mo["mtm_return"].tolist() == pytest.approx(
        [(eq21 + free) / eq0 - 1, (final + 1000.0) / eq21 - 1], rel=1e-9, abs=1e-12)
    # interest is realised in its step's month; the put's P&L at its expiry (t = 30, month 1)
    realised0 = sum(b.interest[1:22])
    realised1 = sum(b.interest[22:43]) + p0 * 100 * c - COMM * c
    assert mo["realised_pnl"].tolist() == pytest.approx([realised0, realised1], rel=1e-8)

    cash_row = res.per_path[(res.per_path["strategy"] == "cash") & (res.per_path["path"] == 0)].iloc[0]
    cb = Book(10000.0, spot, r)
    cb.to(21)
    cb.cash -= 1000.0
    cb.to(42)
    cb.cash -= 1000.0
    assert cash_row["final_equity"] == pytest.approx(cb.cash, rel=REL)
    assert int(cash_row["shortfalls"]) == 0
