"""Plain-Python reference of every mcsim strategy: one path, one step, one event at a time.

This is the oracle the numba kernels are compared with (``tests/test_reference_vs_kernels.py``)
and the baseline of the benchmarks. It is written from ``docs/semantics.md`` alone: it shares
only the scalar pricing functions of ``mcsim.pricing`` and the scenario dataclasses with the
package, nothing of ``mcsim.strategies`` or ``mcsim.engine``.

Readability comes first: positions are small objects, the portfolio is one object, and every
event of the step order of docs/semantics.md ("Order of events at the close of step t") is one
method of ``PathRun``, called in that order by ``PathRun.step``.

Units: steps are trading days, ``tau`` is years, strikes, fills and credits are per share, cash
and P&L are dollars, one contract is 100 shares.

Entry point: ``run_reference(scenario, rules, spot, atm_iv, regime)`` with ``rules`` a
``StrategyRules`` or one of the baseline names ``"buy_and_hold"`` / ``"cash"``, and the arrays of
one path: ``spot`` and ``atm_iv`` of shape (n_steps + 1, n_underlyings) in the scenario's
underlying order, ``regime`` of shape (n_steps + 1,). Returns a dict with ``per_path`` (the
per-path fields of "Result tables"), ``monthly`` (a list of dicts, one per month) and ``log``
(the trade log, a list of dicts with the replay columns).
"""

from __future__ import annotations

# Readings of docs/semantics.md where the text of issue 11 leaves room (questions for the lead):
# - Credit roll scan, "(or a strike <= 0, or j = 1000)": the scan stops before a candidate whose
#   short strike, or for a spread whose long strike K - (Ks_old - Kl_old), is <= 0, and before
#   j = 1000 (j = 0..999 are tried). The spread's candidate long strike is not re-rounded (it is
#   on the grid already).
# - min_credit (put / call / short_put) applies to entries only; a roll's only floor is
#   roll_min_credit (and > 0 with roll_credit_only). A rolled spread's new credit is not checked
#   against 0 or its width as an entry's is.
# - roll_strike = "rule" keeps the behaviour before issue 11: only roll_credit_only is applied
#   (roll_min_credit is used by "credit" only), as docs/semantics.md step 3d says.
# - Early-assigned spread: the long put is exercised only when that pays strictly more than
#   selling it (equal proceeds: sold; the money is the same). Neither side is a buy-back, so an
#   early assignment does not move net_premium ("assignments are not in it").
# - Log `shares`: the underlying's share count after the event, 0.0 when none are held (only
#   cost_basis is nan then); both nan on withdraw and end rows.
# - net(K) is evaluated as (new credit - close debit) - 2 legs commission / 100; ties at exactly
#   roll_min_credit are acceptable (>=).

import math
from collections import Counter
from dataclasses import dataclass

from mcsim.american import baw_price_nb
from mcsim.pricing import bs_delta_nb, bs_price_nb, round_strike_nb, smile_iv_nb, strike_for_delta_nb
from mcsim.scenario import StrategyRules, calendar_days_to_steps

__all__ = ["run_reference", "Position", "PathRun", "PER_PATH_FIELDS", "MONTHLY_FIELDS", "LOG_FIELDS"]

SHARES_PER_CONTRACT = 100.0
PEAK_RTOL = 1e-12  # below the running peak by more than this (relative) is a drawdown day
MIN_CONTRACTS = 1e-6  # a new position smaller than this is no trade (semantics: fractional minimum)

PER_PATH_FIELDS = (
    "final_equity", "total_return", "cagr", "ann_vol", "sharpe", "sortino", "max_drawdown",
    "max_drawdown_days", "min_equity", "ruined", "premium_collected", "net_premium_collected",
    "realised_pnl", "options_sold", "puts_sold", "calls_sold", "spreads_sold", "assignments",
    "called_away", "early_assignments", "expired_worthless", "rolls", "profit_takes", "stop_losses",
    "closes", "close_dte_closes", "max_rolls_closes", "unable_to_roll_closes", "trades_won", "trades_lost", "avg_win", "avg_loss", "days_in_shares", "capital_used",
    "withdrawn", "shortfalls", "first_shortfall_month", "dominant_regime", "stressed_share",
)
MONTHLY_FIELDS = ("month", "premium", "net_premium", "realised_pnl", "mtm_return", "withdrawn", "shortfall",
                  "equity", "partial")
LOG_FIELDS = ("step", "action", "reason", "underlying", "kind", "strike", "long_strike", "expiry",
              "contracts", "price", "spot", "iv", "cash", "equity", "shares", "cost_basis")
COUNTERS = ("options_sold", "puts_sold", "calls_sold", "spreads_sold", "assignments",
            "called_away", "early_assignments", "expired_worthless", "rolls", "profit_takes",
            "stop_losses", "closes", "close_dte_closes", "max_rolls_closes", "unable_to_roll_closes")
# the trade log's `reason` values (docs/semantics.md, Clarifications: "Trade log `reason`")
REASONS = ("entry", "profit_take", "stop_loss", "close_dte", "roll_itm", "roll_delta", "max_rolls",
           "unable_to_roll", "expiry", "early_exercise", "withdrawal", "end", "rebalance")
# a close's reason -> the counters it bumps (Counting and income)
CLOSE_COUNTERS = {
    "stop_loss": ("stop_losses",),
    "profit_take": ("profit_takes",),
    "close_dte": ("closes", "close_dte_closes"),
    "max_rolls": ("closes", "max_rolls_closes"),
    "unable_to_roll": ("closes", "unable_to_roll_closes"),
}


@dataclass
class Position:
    """One open short option (put or covered call) or bull put spread.

    ``strike`` is the short strike; ``long_strike`` the spread's long strike (nan otherwise).
    ``credit`` is the gross credit per share of the opening fill (spread: short fill - long
    fill); ``open_cost`` the dollars of commission paid to open it.
    """

    u: int
    kind: str  # "put" | "call" | "spread"
    strike: float
    long_strike: float
    expiry: int
    contracts: float
    credit: float
    rolls: int
    open_cost: float

    @property
    def is_call(self) -> bool:
        return self.kind == "call"

    @property
    def legs(self) -> int:
        return 2 if self.kind == "spread" else 1


def nearest_expiry(every: int, target: int, after: int) -> int:
    """The listed expiry (a multiple k*every, k >= 1) after `after`, nearest `target`; ties later."""
    candidates = []
    k = 1
    while k * every <= max(target, after) + every:
        if k * every > after:
            candidates.append(k * every)
        k += 1
    return min(candidates, key=lambda e: (abs(e - target), -e))


class PathRun:
    """One strategy (or baseline) on one path: the portfolio state and the step events."""

    def __init__(self, scenario, rules, spot, atm_iv, regime):
        self.sc = scenario
        run = scenario.run
        self.n = len(spot) - 1  # run.n_steps for simulated paths; hand-made lists may differ
        self.spy = run.steps_per_year
        self.dt = 1.0 / self.spy
        self.r = run.risk_free_rate
        self.M = run.month_steps
        self.initial = run.initial_equity
        self.costs = scenario.costs
        self.spot = spot
        self.atm = atm_iv
        self.regime = regime
        names = scenario.underlying_names
        if isinstance(rules, StrategyRules):
            self.name = rules.name
            self.kind = rules.kind
            self.rules = rules
            self.unds = [names.index(u) for u in rules.underlyings]
        elif rules == "buy_and_hold":
            self.name, self.kind, self.rules = "buy_and_hold", "buy_and_hold", None
            self.unds = list(range(len(names)))
        elif rules == "cash":
            self.name, self.kind, self.rules = "cash", "cash", None
            self.unds = []
        else:
            raise ValueError(f"unknown strategy {rules!r}")
        n_all = len(names)
        self.names = names
        self.q = [u.dividend_yield for u in scenario.underlyings]
        self.skew = [u.implied_vol.skew for u in scenario.underlyings]
        self.floor = [u.implied_vol.floor for u in scenario.underlyings]
        # ATM IV term structure of a stochastic-vol underlying (Option prices): kappa, and per
        # regime theta + lambda (jump_mean^2 + jump_std^2) and the IV premium
        self.term = [None if u.stochastic_vol is None else
                     (u.stochastic_vol.mean_reversion,
                      [(u.volatility[g] ** 2 + u.jump_intensity[g] * (u.jump_mean[g] ** 2 + u.jump_std[g] ** 2),
                        u.implied_vol.premium[g]) for g in range(scenario.regimes.count)])
                     for u in scenario.underlyings]
        self.strike_step = [u.strike_step for u in scenario.underlyings]
        self.expiry_every = [u.expiry_every_days for u in scenario.underlyings]
        # covered_call: an ITM call at expiry is settled in cash ("cash", the default) or the
        # shares are called away ("shares")
        self.call_settle = None
        if self.kind == "covered_call":
            self.call_settle = self.rules.call.settle or "cash"
        # Exercise style (Option prices): American when the underlying's `exercise` is
        # "american" and the strategy does not settle in cash; put_write (Cboe PUT) and a
        # covered_call with call.settle = "cash" (BXM) trade European index options.
        cash_settled = self.kind == "put_write" or self.call_settle == "cash"
        self.american = [u.exercise == "american" and not cash_settled for u in scenario.underlyings]

        # money state
        self.cash = float(self.initial)
        self.shares = [0.0] * n_all
        self.purchase_price = [0.0] * n_all
        self.cost_basis = [0.0] * n_all
        self.cycle_premium = [0.0] * n_all
        self.positions: list[Position] = []

        # flows per step and counters
        n1 = self.n + 1
        self.premium_t = [0.0] * n1
        self.net_premium_t = [0.0] * n1
        self.realised_t = [0.0] * n1
        self.withdrawn_t = [0.0] * n1
        self.shortfall_t = [False] * n1
        self.equity_t = [0.0] * n1
        self.used_t = [0.0] * n1
        self.in_shares_t = [False] * n1
        self.count = {k: 0 for k in COUNTERS}
        # which branches of the text's rules were taken (coverage of the differential tests
        # only; no effect on any result)
        self.branches: Counter = Counter()
        self.trade_pnls: list[float] = []
        self.trades: list[dict] = []
        self.log: list[dict] = []
        self.t = 0

    # ------------------------------------------------------------------ market helpers
    def S(self, u):
        return float(self.spot[self.t, u])

    def tau(self, expiry):
        return (expiry - self.t) / self.spy

    def atm_at(self, u, expiry):
        """ATM IV for `expiry`: the market's 30-day ATM IV a, flat, or for a stochastic-vol
        underlying sqrt(theta + jv + (v - theta) B(tau)) + premium with v solved from a at 30
        calendar days, B(tau) = (1 - exp(-kappa tau)) / (kappa tau), floored."""
        a = float(self.atm[self.t, u])
        if self.term[u] is None:
            return a
        kappa, per_regime = self.term[u]
        base, prem = per_regime[int(self.regime[self.t])]

        def b(tau):
            return -math.expm1(-kappa * tau) / (kappa * tau) if kappa * tau > 0 else 1.0

        c = max(a - prem, 0.0)
        x = base + (c * c - base) * (b(self.tau(expiry)) / b(30.0 / 365.0))
        return max(self.floor[u], math.sqrt(max(x, 0.0)) + prem)

    def iv(self, u, strike, expiry):
        t = self.t
        g = int(self.regime[t])
        return smile_iv_nb(self.atm_at(u, expiry), self.S(u), float(strike), self.tau(expiry), self.r,
                           self.q[u], float(self.skew[u][g]), self.floor[u])

    def option_mid(self, u, strike, expiry, is_call):
        """Mid per share: Black-Scholes at the smile IV; an American option's is floored at its
        intrinsic value (at every mark, decision and fill)."""
        vol = self.iv(u, strike, expiry)
        mid = bs_price_nb(self.S(u), float(strike), self.tau(expiry), self.r, self.q[u], vol, is_call)
        if self.american[u]:
            mid = max(mid, self.intrinsic(u, strike, is_call))
        return mid

    def intrinsic(self, u, strike, is_call):
        S = self.S(u)
        return max(S - strike, 0.0) if is_call else max(strike - S, 0.0)

    def american_time_value(self, u, strike, expiry, is_call):
        """Barone-Adesi-Whaley price at the smile IV of the strike, minus intrinsic (per share)."""
        vol = self.iv(u, strike, expiry)
        price = baw_price_nb(self.S(u), float(strike), self.tau(expiry), self.r, self.q[u], vol, is_call)
        return price - self.intrinsic(u, strike, is_call)

    def option_delta(self, u, strike, expiry, is_call):
        vol = self.iv(u, strike, expiry)
        return bs_delta_nb(self.S(u), float(strike), self.tau(expiry), self.r, self.q[u], vol, is_call)

    def position_mid(self, p: Position):
        """Per-share mid; a spread's mid is short mid - long mid (a debit to close)."""
        if p.kind == "spread":
            return (self.option_mid(p.u, p.strike, p.expiry, False)
                    - self.option_mid(p.u, p.long_strike, p.expiry, False))
        return self.option_mid(p.u, p.strike, p.expiry, p.is_call)

    def slip(self, mid):
        return self.costs.slippage_per_share + self.costs.slippage_pct * mid

    def sell_fill(self, mid):
        return max(mid - self.slip(mid), 0.0)

    def buy_fill(self, mid):
        return mid + self.slip(mid)

    def cal_steps(self, days, at_least_one=False):
        s = calendar_days_to_steps(days, self.spy)
        return max(1, s) if at_least_one else s

    # ------------------------------------------------------------------ portfolio helpers
    def reserved(self):
        total = 0.0
        for p in self.positions:
            if p.kind == "put":
                total += p.strike * SHARES_PER_CONTRACT * p.contracts
            elif p.kind == "spread":
                total += (p.strike - p.long_strike) * SHARES_PER_CONTRACT * p.contracts
        return total

    def free_cash(self):
        return self.cash - self.reserved()

    def equity(self):
        eq = self.cash
        for u in range(len(self.shares)):
            eq += self.shares[u] * self.S(u)
        for p in self.positions:
            if p.kind == "spread":
                eq -= self.option_mid(p.u, p.strike, p.expiry, False) * SHARES_PER_CONTRACT * p.contracts
                eq += self.option_mid(p.u, p.long_strike, p.expiry, False) * SHARES_PER_CONTRACT * p.contracts
            else:
                eq -= self.option_mid(p.u, p.strike, p.expiry, p.is_call) * SHARES_PER_CONTRACT * p.contracts
        return eq

    def book_realised(self, amount):
        self.realised_t[self.t] += amount

    def book_premium(self, amount):
        """A sale's gross credit: premium and net premium."""
        self.premium_t[self.t] += amount
        self.net_premium_t[self.t] += amount

    def book_buy_back(self, amount):
        """Dollars paid to buy an option (a spread: its capped net debit) back: net premium only."""
        self.net_premium_t[self.t] -= amount

    def end_trade(self, pnl, p: Position):
        """Trade P&L for the win/loss statistics (and the ended trade, for the tests' bounds)."""
        self.trade_pnls.append(pnl)
        self.trades.append({"kind": p.kind, "credit": p.credit, "width": p.strike - p.long_strike,
                            "contracts": p.contracts, "open_cost": p.open_cost, "pnl": pnl})

    def record(self, action, reason, u=None, kind="", strike=math.nan, expiry=-1, contracts=0.0,
               price=math.nan, iv=math.nan, long_strike=math.nan):
        """One trade-log row; shares and cost_basis of u after the event (nan without u, and
        cost_basis nan while no shares are held)."""
        assert reason in REASONS, reason
        shares = self.shares[u] if u is not None else math.nan
        basis = math.nan
        if u is not None and self.shares[u] > 0:
            basis = self.purchase_price[u] - self.cycle_premium[u]
        self.log.append({
            "step": self.t, "action": action, "reason": reason,
            "underlying": self.names[u] if u is not None else "",
            "kind": kind, "strike": strike, "long_strike": long_strike if kind == "spread" else math.nan,
            "expiry": expiry, "contracts": contracts,
            "price": price, "spot": self.S(u) if u is not None else math.nan, "iv": iv,
            "cash": self.cash, "equity": self.equity(),  # after the event, marked at mid
            "shares": shares, "cost_basis": basis,
        })

    def set_cycle_premium(self, u, value):
        self.cycle_premium[u] = value
        if self.shares[u] > 0:
            self.cost_basis[u] = self.purchase_price[u] - value

    # ------------------------------------------------------------------ rule helpers
    def high_iv_active(self, u):
        h = self.rules.high_iv
        if h is None:
            return False
        a = float(self.atm[self.t, u])
        if h.atm_iv_above is not None:
            return a > h.atm_iv_above
        if self.t < 21:
            return False
        window = [float(x) for x in self.atm[max(0, self.t - 251): self.t + 1, u]]
        lo, hi = min(window), max(window)
        rank = 0.0 if hi == lo else (a - lo) / (hi - lo)
        return rank > h.iv_rank_above

    def option_rule(self, u, is_call):
        """(delta or None, otm_pct or None, dte) of the strategy's rule, with high IV applied."""
        base = self.rules.call if is_call else self.rules.put
        delta, otm, dte = base.delta, base.otm_pct, base.dte
        if self.high_iv_active(u):
            h = self.rules.high_iv
            hd = h.call_delta if is_call else h.put_delta
            if hd is not None:
                delta, otm = hd, None
            if h.dte is not None:
                dte = h.dte
        return delta, otm, dte

    def entry_expiry(self, u, dte):
        target = self.t + self.cal_steps(dte, at_least_one=True)
        return nearest_expiry(self.expiry_every[u], target, after=self.t)

    def rule_strike(self, u, is_call, expiry, delta, otm):
        """Strike of the entry rule at t for `expiry`, on the grid (puts down, calls up)."""
        S = self.S(u)
        if delta is not None:
            g = int(self.regime[self.t])
            k = strike_for_delta_nb(S, float(delta), self.tau(expiry), self.r, self.q[u],
                                    self.atm_at(u, expiry), is_call, float(self.skew[u][g]),
                                    self.floor[u])
        else:
            k = S * (1.0 + otm) if is_call else S * (1.0 - otm)
        return round_strike_nb(k, self.strike_step[u], is_call)

    def min_strike_level(self, u):
        """Lowest grid strike >= the call rule's min_strike level (None for "none")."""
        choice = self.rules.call.min_strike
        if choice == "none":
            return None
        level = self.cost_basis[u] if choice == "cost_basis" else self.purchase_price[u]
        return round_strike_nb(level, self.strike_step[u], True)

    def width(self, u):
        if self.rules.width is not None:
            return self.rules.width
        return self.rules.width_pct * self.S(u)

    # ------------------------------------------------------------------ the step
    def run(self):
        for t in range(self.n + 1):
            self.t = t
            self.step()
        self.t = self.n
        self.record("end", "end", price=self.equity_t[self.n])
        return self

    def step(self):
        t = self.t
        if t >= 1:
            self.carry_over()
        self.expire_positions()
        if self.rules is not None and self.rules.manage.early_assignment:
            self.early_assignments()  # American options only (checked per position)
        if self.rules is not None:
            self.manage_positions()
        if t >= 1 and t % self.M == 0:
            self.withdraw()
        if self.kind == "buy_and_hold":
            if t == 0:
                self.buy_and_hold_entry()
        elif self.rules is not None and t % self.rules.entry_every_days == 0 and t < self.n:
            self.entries()
        self.mark()

    # 0. carry over (t-1, t]
    def carry_over(self):
        prev = self.t - 1
        interest = self.cash * (math.exp(self.r * self.dt) - 1.0)
        self.cash += interest
        self.book_realised(interest)
        for u in range(len(self.shares)):
            if self.shares[u] == 0.0 or self.q[u] == 0.0:
                continue
            growth = math.exp(self.q[u] * self.dt)
            dividend = self.shares[u] * float(self.spot[prev, u]) * (growth - 1.0)
            self.book_realised(dividend)
            if self.kind == "buy_and_hold":
                # reinvested at S[t-1]: the new shares cost the dividend (average cost updated)
                old = self.shares[u]
                total_cost = self.purchase_price[u] * old + dividend
                self.shares[u] = old * growth
                self.purchase_price[u] = total_cost / self.shares[u]
            else:
                self.cash += dividend

    # 1. expiry
    def expire_positions(self):
        for p in list(self.positions):  # one by one: the log marks the others still open
            if p.expiry == self.t:
                self.positions.remove(p)
                self.settle(p, early=False)

    def settle(self, p: Position, early: bool):
        """Expiry (or early assignment) of `p` at S[t]: assignment / call-away / worthless."""
        S = self.S(p.u)
        c = p.contracts
        fee = self.costs.assignment_fee * c
        base = p.credit * SHARES_PER_CONTRACT * c - p.open_cost
        iv = self.iv(p.u, p.strike, p.expiry)
        reason = "early_exercise" if early else "expiry"
        if p.kind == "spread":
            if early:
                # short leg assigned: shares bought at Ks, sold at S at this close (fee c). The
                # long put is sold at its fill (commission c) or exercised (fee c), whichever
                # pays more: the trader never sells a long put for less than its exercise.
                short_cost = (p.strike - S) * SHARES_PER_CONTRACT * c + fee
                sold = (self.sell_fill(self.option_mid(p.u, p.long_strike, p.expiry, False))
                        * SHARES_PER_CONTRACT * c - self.costs.commission_per_contract * c)
                exercised = max(p.long_strike - S, 0.0) * SHARES_PER_CONTRACT * c - fee
                proceeds = max(sold, exercised)
                self.branches["spread_long_exercised" if exercised > sold else "spread_long_sold"] += 1
                self.cash += proceeds - short_cost
                pnl = base - short_cost + proceeds
                self.book_realised(pnl)
                self.end_trade(pnl, p)
                self.count["assignments"] += 1
                self.count["early_assignments"] += 1
                self.record("early_assigned", reason, p.u, p.kind, p.strike, p.expiry, c, p.strike - S, iv,
                            p.long_strike)
                return
            debit = (max(p.strike - S, 0.0) - max(p.long_strike - S, 0.0)) * SHARES_PER_CONTRACT * c
            self.cash -= debit
            pnl = base - debit
            self.book_realised(pnl)
            self.end_trade(pnl, p)
            if S < p.strike:
                self.count["assignments"] += 1
                self.record("assigned", reason, p.u, p.kind, p.strike, p.expiry, c,
                            debit / (SHARES_PER_CONTRACT * c), iv, p.long_strike)
            else:
                self.count["expired_worthless"] += 1
                self.record("expire_worthless", reason, p.u, p.kind, p.strike, p.expiry, c, 0.0, iv,
                            p.long_strike)
            return

        itm = S < p.strike if p.kind == "put" else S > p.strike
        if not itm:
            pnl = base
            self.book_realised(pnl)
            self.end_trade(pnl, p)
            self.count["expired_worthless"] += 1
            self.record("expire_worthless", reason, p.u, p.kind, p.strike, p.expiry, c, 0.0, iv)
            return

        action = "early_assigned" if early else None
        intrinsic = abs(p.strike - S)
        if (p.kind == "put" and self.kind == "put_write") or (p.kind == "call" and self.call_settle == "cash"):
            debit = intrinsic * SHARES_PER_CONTRACT * c
            self.cash -= debit + fee
            pnl = base - debit - fee
            self.book_realised(pnl)
            self.end_trade(pnl, p)
            self.count["assignments"] += 1
            price = intrinsic
            action = action or "assigned"
        elif p.kind == "put":  # wheel put: buy the shares at the strike
            self.cash -= p.strike * SHARES_PER_CONTRACT * c + fee
            self.shares[p.u] += SHARES_PER_CONTRACT * c
            self.purchase_price[p.u] = p.strike
            self.cost_basis[p.u] = p.strike - self.cycle_premium[p.u]
            self.book_realised(base - fee)
            self.end_trade(base - fee - intrinsic * SHARES_PER_CONTRACT * c, p)
            self.count["assignments"] += 1
            price = intrinsic
            action = action or "assigned"
        else:  # covered call: shares called away at the strike
            self.cash += p.strike * SHARES_PER_CONTRACT * c - fee
            self.shares[p.u] -= SHARES_PER_CONTRACT * c
            if self.shares[p.u] < 1e-6:  # a float remainder of "all shares" sold
                self.shares[p.u] = 0.0
            share_gain = (p.strike - self.purchase_price[p.u]) * SHARES_PER_CONTRACT * c
            self.book_realised(base - fee + share_gain)
            self.end_trade(base - fee - intrinsic * SHARES_PER_CONTRACT * c, p)
            self.count["called_away"] += 1
            price = intrinsic
            action = action or "called_away"
        if early:
            self.count["early_assignments"] += 1
        self.record(action, reason, p.u, p.kind, p.strike, p.expiry, c, price, iv)

    # 2. early assignment
    def early_assignments(self):
        """An ITM American short option (a spread's short put) is assigned when its American
        (BAW) time value is below the threshold; BAW only when the mid's time value is."""
        threshold = self.rules.manage.early_assignment_time_value
        for p in list(self.positions):
            if not self.american[p.u]:
                continue  # European: never assigned before expiry
            S = self.S(p.u)
            is_call = p.is_call  # a spread's short leg is a put
            itm = S > p.strike if is_call else S < p.strike
            if not itm:
                continue
            mid = self.option_mid(p.u, p.strike, p.expiry, is_call)
            intrinsic = (S - p.strike) if is_call else (p.strike - S)
            if not mid - intrinsic < threshold:
                continue  # the American price is at least the mid: the holder keeps it
            if self.american_time_value(p.u, p.strike, p.expiry, is_call) < threshold:
                self.branches[f"early_{p.kind}"] += 1
                if is_call and self.q[p.u] > self.r:
                    self.branches["early_call_q_above_r"] += 1
                self.positions.remove(p)
                self.settle(p, early=True)
            else:
                self.branches["early_kept_by_american_price"] += 1  # mid's time value < threshold

    # 3. management
    def manage_positions(self):
        m = self.rules.manage
        for p in list(self.positions):
            left = p.expiry - self.t
            cc = self.closing_cost(p)
            if m.stop_loss > 0 and cc >= m.stop_loss * p.credit:
                self.close(p, "stop_loss")
            elif m.profit_take > 0 and cc <= (1.0 - m.profit_take) * p.credit:
                self.close(p, "profit_take")
            elif m.close_dte > 0 and left <= self.cal_steps(m.close_dte):
                self.close(p, "close_dte")
            elif (m.roll_when != "off" and left <= self.cal_steps(m.roll_dte)
                  and self.challenged(p) and self.t < self.n):
                if p.rolls >= m.max_rolls:
                    self.close(p, "max_rolls")
                else:
                    self.roll(p)

    def challenged(self, p: Position):
        m = self.rules.manage
        S = self.S(p.u)
        if m.roll_when == "itm":
            return S > p.strike if p.is_call else S < p.strike
        delta = self.option_delta(p.u, p.strike, p.expiry, p.is_call)
        return abs(delta) >= m.roll_delta

    def close_debit(self, p: Position):
        """Per-share cost of buying `p` back: the short leg at mid + slip; a spread's long leg
        sold at its fill, the pair never bought back for more than its width."""
        if p.kind == "spread":
            pair = (self.buy_fill(self.option_mid(p.u, p.strike, p.expiry, False))
                    - self.sell_fill(self.option_mid(p.u, p.long_strike, p.expiry, False)))
            if pair > p.strike - p.long_strike:
                self.branches["spread_debit_at_width"] += 1
            return min(pair, p.strike - p.long_strike)
        return self.buy_fill(self.option_mid(p.u, p.strike, p.expiry, p.is_call))

    def closing_cost(self, p: Position):
        """cc: the buy-back debit plus the closing commission, per share (stop loss, profit take)."""
        return self.close_debit(p) + p.legs * self.costs.commission_per_contract / SHARES_PER_CONTRACT

    def close(self, p: Position, reason: str):
        c = p.contracts
        debit = self.close_debit(p)
        commission = self.costs.commission_per_contract * c * p.legs
        iv = self.iv(p.u, p.strike, p.expiry)
        self.cash -= debit * SHARES_PER_CONTRACT * c + commission
        pnl = p.credit * SHARES_PER_CONTRACT * c - debit * SHARES_PER_CONTRACT * c - p.open_cost - commission
        self.book_realised(pnl)
        self.book_buy_back(debit * SHARES_PER_CONTRACT * c)
        self.end_trade(pnl, p)
        self.trades[-1].update(reason=reason, debit=debit)
        if self.kind in ("wheel", "covered_call"):
            self.set_cycle_premium(p.u, self.cycle_premium[p.u] - debit)
        for counter in CLOSE_COUNTERS[reason]:
            self.count[counter] += 1
        self.positions.remove(p)
        action = "close_spread" if p.kind == "spread" else "buy_to_close"
        self.record(action, reason, p.u, p.kind, p.strike, p.expiry, c, debit, iv, p.long_strike)

    def new_credit(self, p: Position, strike, long_strike, expiry):
        """Gross credit per share of selling the roll's new option (a spread: short fill - long fill)."""
        u = p.u
        if p.kind == "spread":
            return (self.sell_fill(self.option_mid(u, strike, expiry, False))
                    - self.buy_fill(self.option_mid(u, long_strike, expiry, False)))
        return self.sell_fill(self.option_mid(u, strike, expiry, p.is_call))

    def roll_target(self, p: Position, expiry, debit):
        """(short strike, long strike, new credit) of the roll, or None when it is refused.

        net(K) = new credit(K) - close debit - 2 legs commission / 100 (per share); a candidate
        is acceptable when, with roll_credit_only, net > 0 and, under roll_strike = "credit",
        net >= roll_min_credit."""
        m = self.rules.manage
        u = p.u
        costs = 2 * p.legs * self.costs.commission_per_contract / SHARES_PER_CONTRACT
        width = p.strike - p.long_strike if p.kind == "spread" else math.nan

        def acceptable(credit):
            net = credit - debit - costs
            if m.roll_credit_only and not net > 0:
                return False
            return m.roll_strike != "credit" or net >= m.roll_min_credit

        if m.roll_strike == "credit":
            # linear scan away from the money from the old strike: puts and spreads down, calls
            # up from max(K_old, min_strike level); the last acceptable strike before the first
            # unacceptable one. Reading of "(or a strike <= 0, or j = 1000)": the scan stops
            # before a candidate whose short strike (a spread: or long strike) is <= 0 and
            # before j = 1000 (so j <= 999 are tried); that candidate is not tried.
            step = self.strike_step[u]
            if p.is_call:
                level = self.min_strike_level(u)
                k0 = p.strike if level is None else max(p.strike, level)
                sign = 1.0
            else:
                k0 = p.strike
                sign = -1.0
            best = None
            for j in range(1000):
                k = k0 + sign * j * step
                kl = k - width if p.kind == "spread" else math.nan
                if k <= 0 or (p.kind == "spread" and not kl > 0):
                    break
                credit = self.new_credit(p, k, kl, expiry)
                if not acceptable(credit):
                    break
                best = (k, kl, credit)
            if best is None:
                self.branches["roll_credit_refused"] += 1
            elif best[0] != k0:
                self.branches["roll_credit_moved"] += 1
            else:
                self.branches["roll_credit_at_old_strike"] += 1
            return best

        # "rule": the entry rule's strike at t for the new expiry, capped at the old strike
        delta, otm, _ = self.option_rule(u, p.is_call)
        k = self.rule_strike(u, p.is_call, expiry, delta, otm)
        if not (k == k and k > 0):
            return None
        kl = math.nan
        if p.is_call:
            level = self.min_strike_level(u)
            k = max(k, p.strike) if level is None else max(k, p.strike, level)
        else:
            k = min(k, p.strike)
        if p.kind == "spread":
            kl = round_strike_nb(k - width, self.strike_step[u], False)
            if not kl > 0:
                return None
        credit = self.new_credit(p, k, kl, expiry)
        self.branches["roll_rule_accepted" if acceptable(credit) else "roll_rule_refused"] += 1
        return (k, kl, credit) if acceptable(credit) else None

    def roll(self, p: Position):
        m = self.rules.manage
        u, c = p.u, p.contracts
        new_expiry = nearest_expiry(self.expiry_every[u],
                                    p.expiry + self.cal_steps(m.roll_out_days, at_least_one=True),
                                    after=p.expiry)
        debit = self.close_debit(p)  # the old side, a spread's capped at its width
        target = self.roll_target(p, new_expiry, debit)
        if target is None:
            if m.close_if_unable_to_roll:
                self.close(p, "unable_to_roll")
            return  # a refused roll is no event
        k_new, long_new, new_credit = target
        close_commission = self.costs.commission_per_contract * c * p.legs
        open_commission = self.costs.commission_per_contract * c * p.legs
        net = (new_credit - debit) * SHARES_PER_CONTRACT * c - close_commission - open_commission
        self.cash += net
        old_pnl = p.credit * SHARES_PER_CONTRACT * c - debit * SHARES_PER_CONTRACT * c - p.open_cost - close_commission
        self.book_realised(old_pnl)
        self.end_trade(old_pnl, p)
        self.book_premium(new_credit * SHARES_PER_CONTRACT * c)
        self.book_buy_back(debit * SHARES_PER_CONTRACT * c)
        if self.kind in ("wheel", "covered_call"):
            self.set_cycle_premium(u, self.cycle_premium[u] + new_credit - debit)
        p.strike, p.long_strike, p.expiry = k_new, long_new, new_expiry
        p.credit, p.open_cost, p.rolls = new_credit, open_commission, p.rolls + 1
        self.count["rolls"] += 1
        self.count["options_sold"] += 1
        self.count[{"put": "puts_sold", "call": "calls_sold", "spread": "spreads_sold"}[p.kind]] += 1
        reason = "roll_itm" if m.roll_when == "itm" else "roll_delta"
        self.record("roll", reason, u, p.kind, k_new, new_expiry, c, new_credit,
                    self.iv(u, k_new, new_expiry), long_new)

    # 4. withdrawal
    def withdraw(self):
        run = self.sc.run
        if run.monthly_withdrawal > 0:
            amount = run.monthly_withdrawal
        elif run.monthly_withdrawal_pct > 0:
            amount = run.monthly_withdrawal_pct * self.equity()
        else:
            return
        if not amount > 0:
            return
        if self.kind == "buy_and_hold":
            # no free cash: sell the fraction pay / value of every holding at S; cash untouched
            value = sum(self.shares[u] * self.S(u) for u in self.unds)
            paid = min(amount, value)
            if paid > 0:
                fraction = paid / value
                for u in self.unds:
                    sold = self.shares[u] * fraction
                    self.book_realised((self.S(u) - self.purchase_price[u]) * sold)
                    self.shares[u] -= sold
                    if self.shares[u] < 1e-6:
                        self.shares[u] = 0.0
            paid = max(paid, 0.0)
        else:
            paid = min(amount, max(self.free_cash(), 0.0))
            self.cash -= paid
        self.withdrawn_t[self.t] += paid
        if paid < amount:
            self.shortfall_t[self.t] = True
        self.record("withdraw", "withdrawal", price=paid)

    # 5. entries
    def entries(self):
        equity_now = self.equity()
        for u in self.unds:
            if self.kind in ("wheel", "put_write"):
                has_option = any(p.u == u for p in self.positions)
                if not has_option and self.shares[u] == 0.0:
                    self.enter_put(u, equity_now)
                elif self.kind == "wheel" and self.shares[u] > 0 and not has_option:
                    self.enter_call(u)
            elif self.kind == "bull_put_spread":
                n_open = sum(1 for p in self.positions if p.u == u)
                if n_open < self.rules.sizing.max_open:
                    self.enter_spread(u, equity_now)
            elif self.kind == "covered_call":
                no_call = not any(p.u == u for p in self.positions)
                if self.shares[u] == 0.0 and no_call:
                    self.buy_shares(u, equity_now)
                elif self.shares[u] > 0 and no_call and self.rules.sizing.rebalance:
                    self.rebalance(u, equity_now)
                if self.shares[u] > 0 and not any(p.u == u for p in self.positions):
                    self.enter_call(u)

    def buy_shares(self, u, equity_now):
        """covered_call: shares worth position_fraction x equity / (its underlyings), at most the
        free cash, bought at S + slippage_per_share; lots of 100 under integer sizing."""
        price = self.S(u) + self.costs.slippage_per_share
        budget = min(self.rules.sizing.position_fraction * equity_now / len(self.unds),
                     max(self.free_cash(), 0.0))
        if self.integer_sizing():
            shares = SHARES_PER_CONTRACT * math.floor(budget / (SHARES_PER_CONTRACT * price))
        else:
            shares = budget / price
        if not shares / SHARES_PER_CONTRACT >= MIN_CONTRACTS:
            return
        self.cash -= shares * price
        self.shares[u] += shares
        self.purchase_price[u] = price
        self.set_cycle_premium(u, 0.0)
        self.record("buy_shares", "entry", u, "", math.nan, -1, shares / SHARES_PER_CONTRACT, price, math.nan)

    def rebalance(self, u, equity_now):
        """covered_call with sizing.rebalance (shares held, no call open): the holding's value at
        the close is brought toward position_fraction x equity / (its underlyings). Below it:
        buy with the shortfall, at most the free cash, at S + slippage_per_share; above it: sell
        the excess (valued at S) at S - slippage_per_share. Whole lots of 100 under integer
        sizing, rounded toward zero; the purchase price is the average cost and the cycle
        premium per share is spread over the new holding; a sale realises fill - average cost."""
        S = self.S(u)
        slip = self.costs.slippage_per_share
        target = self.rules.sizing.position_fraction * equity_now / len(self.unds)
        held = self.shares[u]
        lot = SHARES_PER_CONTRACT
        if held * S < target:
            price = S + slip
            spend = min(target - held * S, max(self.free_cash(), 0.0))
            n = lot * math.floor(spend / (lot * price)) if self.integer_sizing() else spend / price
            if not n / lot >= MIN_CONTRACTS:
                return
            self.branches["rebalance_buy"] += 1
            self.cash -= n * price
            self.purchase_price[u] = (self.purchase_price[u] * held + price * n) / (held + n)
            self.shares[u] = held + n
            self.set_cycle_premium(u, self.cycle_premium[u] * held / (held + n))
            self.record("buy_shares", "rebalance", u, "", math.nan, -1, n / lot, price, math.nan)
        else:
            price = max(S - slip, 0.0)
            excess = held * S - target
            n = lot * math.floor(excess / (lot * S)) if self.integer_sizing() else excess / S
            n = min(n, held)
            if not n / lot >= MIN_CONTRACTS:
                return
            self.branches["rebalance_sell"] += 1
            self.cash += n * price
            self.book_realised((price - self.purchase_price[u]) * n)
            self.shares[u] = held - n
            if self.shares[u] < 1e-6:
                self.shares[u] = 0.0
            self.record("sell_shares", "rebalance", u, "", math.nan, -1, n / lot, price, math.nan)

    def integer_sizing(self):
        return self.rules.sizing.contracts == "integer"

    def enter_put(self, u, equity_now):
        delta, otm, dte = self.option_rule(u, False)
        expiry = self.entry_expiry(u, dte)
        K = self.rule_strike(u, False, expiry, delta, otm)
        if not (K == K and K > 0):
            return
        fill = self.sell_fill(self.option_mid(u, K, expiry, False))
        commission = self.costs.commission_per_contract
        if fill < self.rules.put.min_credit or fill * SHARES_PER_CONTRACT - commission <= 0:
            if fill < self.rules.put.min_credit:
                self.branches["put_below_min_credit"] += 1
            return
        c = self.rules.sizing.position_fraction * equity_now / (K * SHARES_PER_CONTRACT)
        cap = self.free_cash() / (K * SHARES_PER_CONTRACT - fill * SHARES_PER_CONTRACT + commission)
        if self.integer_sizing():
            c = math.floor(c)
            cap = math.floor(cap)
        c = min(c, cap)
        if not c >= MIN_CONTRACTS:  # includes c <= 0: fewer than 1e-6 contracts is no trade
            return
        self.cash += fill * SHARES_PER_CONTRACT * c - commission * c
        self.positions.append(Position(u, "put", K, math.nan, expiry, float(c), fill, 0, commission * c))
        self.book_premium(fill * SHARES_PER_CONTRACT * c)
        if self.kind == "wheel":
            self.set_cycle_premium(u, fill)  # a new cycle (no shares are held)
        self.count["options_sold"] += 1
        self.count["puts_sold"] += 1
        self.record("sell_put", "entry", u, "put", K, expiry, float(c), fill, self.iv(u, K, expiry))

    def enter_call(self, u):
        delta, otm, dte = self.option_rule(u, True)
        expiry = self.entry_expiry(u, dte)
        K = self.rule_strike(u, True, expiry, delta, otm)
        if not (K == K and K > 0):
            return
        level = self.min_strike_level(u)
        if level is not None:
            K = max(K, level)
        c = self.shares[u] / SHARES_PER_CONTRACT
        if self.integer_sizing():
            c = math.floor(c)
        if not c >= MIN_CONTRACTS:  # includes c <= 0: fewer than 1e-6 contracts is no trade
            return
        fill = self.sell_fill(self.option_mid(u, K, expiry, True))
        commission = self.costs.commission_per_contract * c
        if fill < self.rules.call.min_credit or fill * SHARES_PER_CONTRACT * c - commission <= 0:
            if fill < self.rules.call.min_credit:
                self.branches["call_below_min_credit"] += 1
            return
        self.cash += fill * SHARES_PER_CONTRACT * c - commission
        self.positions.append(Position(u, "call", K, math.nan, expiry, float(c), fill, 0, commission))
        self.book_premium(fill * SHARES_PER_CONTRACT * c)
        self.set_cycle_premium(u, self.cycle_premium[u] + fill)
        self.count["options_sold"] += 1
        self.count["calls_sold"] += 1
        self.record("sell_call", "entry", u, "call", K, expiry, float(c), fill, self.iv(u, K, expiry))

    def enter_spread(self, u, equity_now):
        delta, otm, dte = self.option_rule(u, False)
        expiry = self.entry_expiry(u, dte)
        Ks = self.rule_strike(u, False, expiry, delta, otm)
        if not (Ks == Ks and Ks > 0):
            return
        Kl = round_strike_nb(Ks - self.width(u), self.strike_step[u], False)
        if not (Kl > 0):
            return
        fill_s = self.sell_fill(self.option_mid(u, Ks, expiry, False))
        fill_l = self.buy_fill(self.option_mid(u, Kl, expiry, False))
        credit = fill_s - fill_l
        if credit <= 0 or credit < self.rules.put.min_credit or credit >= Ks - Kl:
            if 0 < credit < self.rules.put.min_credit:
                self.branches["spread_below_min_credit"] += 1
            return  # (short_put.min_credit is the spread's net credit floor)
        commission = self.costs.commission_per_contract
        risk = (Ks - Kl - credit) * SHARES_PER_CONTRACT
        c = self.rules.sizing.position_fraction * equity_now / risk
        cap = self.free_cash() / (risk + 2 * commission)
        if self.integer_sizing():
            c = math.floor(c)
            cap = math.floor(cap)
        c = min(c, cap)
        if not c >= MIN_CONTRACTS:  # includes c <= 0: fewer than 1e-6 contracts is no trade
            return
        self.cash += credit * SHARES_PER_CONTRACT * c - 2 * commission * c
        self.positions.append(Position(u, "spread", Ks, Kl, expiry, float(c), credit, 0, 2 * commission * c))
        self.book_premium(credit * SHARES_PER_CONTRACT * c)
        self.count["options_sold"] += 1
        self.count["spreads_sold"] += 1
        self.record("open_spread", "entry", u, "spread", Ks, expiry, float(c), credit, self.iv(u, Ks, expiry), Kl)

    def buy_and_hold_entry(self):
        equity_now = self.equity()
        amount = equity_now / len(self.unds)
        for u in self.unds:
            self.shares[u] = amount / self.S(u)
            self.purchase_price[u] = self.S(u)
            self.cash -= amount

    # 6. mark
    def mark(self):
        t = self.t
        eq = self.equity()
        self.equity_t[t] = eq
        held = sum(self.shares[u] * self.S(u) for u in range(len(self.shares)))
        self.used_t[t] = (self.reserved() + held) / eq if eq > 0 else 0.0
        self.in_shares_t[t] = any(s > 0 for s in self.shares)

    # ------------------------------------------------------------------ results
    def months(self):
        n, M = self.n, self.M
        n_months = -(-n // M)
        rows = []
        for m in range(n_months):
            start = m * M
            end = min((m + 1) * M, n)
            first = 0 if m == 0 else start + 1
            steps = range(first, end + 1)
            withdrawn = sum(self.withdrawn_t[t] for t in steps)
            rows.append({
                "month": m,
                "premium": sum(self.premium_t[t] for t in steps),
                "net_premium": sum(self.net_premium_t[t] for t in steps),
                "realised_pnl": sum(self.realised_t[t] for t in steps),
                "mtm_return": ((self.equity_t[end] + withdrawn) / self.equity_t[start] - 1.0
                               if self.equity_t[start] > 0 else math.nan),
                "withdrawn": withdrawn,
                "shortfall": any(self.shortfall_t[t] for t in steps),
                "equity": self.equity_t[end],
                "partial": (m == n_months - 1) and (n % M != 0),
            })
        return rows

    def per_path(self, monthly):
        n = self.n
        eq = self.equity_t
        final = eq[n]
        years = n / self.spy
        out = {"final_equity": final, "total_return": final / self.initial - 1.0}
        out["cagr"] = -1.0 if final <= 0 else (final / self.initial) ** (1.0 / years) - 1.0
        rets = [row["mtm_return"] for row in monthly if not row["partial"]]
        rf = math.exp(self.r * self.M * self.dt) - 1.0
        out.update(monthly_ratios(rets, rf))
        peak = -math.inf
        max_dd = 0.0
        run = longest = 0
        paid = 0.0
        for t, x in enumerate(eq):
            paid += self.withdrawn_t[t]
            x = x + paid  # drawdowns on equity plus the withdrawals paid so far
            peak = max(peak, x)
            max_dd = min(max_dd, x / peak - 1.0)
            run = run + 1 if x < peak * (1.0 - PEAK_RTOL) else 0  # level within rounding is level
            longest = max(longest, run)
        out["max_drawdown"] = max_dd
        out["max_drawdown_days"] = longest
        out["min_equity"] = min(eq)
        out["ruined"] = min(eq) < self.sc.run.ruin_level * self.initial
        out["premium_collected"] = sum(self.premium_t)
        out["net_premium_collected"] = sum(self.net_premium_t)
        out["realised_pnl"] = sum(self.realised_t)
        out.update(self.count)
        wins = [x for x in self.trade_pnls if x > 0]
        losses = [x for x in self.trade_pnls if x <= 0]
        out["trades_won"] = len(wins)
        out["trades_lost"] = len(losses)
        out["avg_win"] = sum(wins) / len(wins) if wins else math.nan
        out["avg_loss"] = sum(losses) / len(losses) if losses else math.nan
        out["days_in_shares"] = sum(1 for t in range(1, n + 1) if self.in_shares_t[t])
        out["capital_used"] = sum(self.used_t[1:]) / n
        out["withdrawn"] = sum(self.withdrawn_t)
        shortfall_months = [row["month"] for row in monthly if row["shortfall"]]
        out["shortfalls"] = sum(1 for t in range(n + 1) if self.shortfall_t[t])
        out["first_shortfall_month"] = shortfall_months[0] if shortfall_months else -1
        steps_in = [0] * self.sc.regimes.count
        for t in range(1, n + 1):
            steps_in[int(self.regime[t])] += 1
        out["dominant_regime"] = max(range(len(steps_in)), key=lambda g: (steps_in[g], -g))
        out["stressed_share"] = steps_in[-1] / n
        return out


def monthly_ratios(rets, rf):
    """ann_vol, sharpe, sortino of the full months' returns (sample std, ddof 1), times sqrt(12).

    sortino's downside deviation is sqrt(mean(min(excess, 0)^2)); nan with fewer than 2 months
    or a (downside) deviation below 1e-12.
    """
    nan = math.nan
    k = len(rets)
    if k < 2:
        return {"ann_vol": nan, "sharpe": nan, "sortino": nan}
    mean = sum(rets) / k
    var = sum((x - mean) ** 2 for x in rets) / (k - 1)
    sd = math.sqrt(var)
    excess = [x - rf for x in rets]
    mean_ex = sum(excess) / k
    sd_ex = math.sqrt(sum((x - mean_ex) ** 2 for x in excess) / (k - 1))
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in excess) / k)
    return {
        "ann_vol": sd * math.sqrt(12.0),
        "sharpe": mean_ex / sd_ex * math.sqrt(12.0) if sd_ex >= 1e-12 else nan,
        "sortino": mean_ex / downside * math.sqrt(12.0) if downside >= 1e-12 else nan,
    }


def run_reference(scenario, rules, spot, atm_iv, regime):
    """Run one strategy (a StrategyRules, or "buy_and_hold" / "cash") on one path.

    spot, atm_iv: (n_steps + 1, n_underlyings) arrays in the scenario's underlying order;
    regime: (n_steps + 1,). Returns {"per_path": dict, "monthly": [dict], "log": [dict]}.
    """
    pr = PathRun(scenario, rules, spot, atm_iv, regime).run()
    monthly = pr.months()
    return {"per_path": pr.per_path(monthly), "monthly": monthly, "log": pr.log, "equity": list(pr.equity_t),
            "withdrawn": list(pr.withdrawn_t), "branches": pr.branches, "trades": pr.trades}
