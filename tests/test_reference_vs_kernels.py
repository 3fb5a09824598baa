"""The numba kernels against the plain-Python reference (tests/reference.py), path by path.

Scenarios are generated (a fixed, seeded, deliberately diverse set, then hypothesis on top):
random deltas or otm_pct, dte, entry spacing, management (profit take, stop loss, close_dte, rolls
on itm or delta, credit-only, max_rolls, close if unable), early assignment, high IV, integer or
fractional sizing, position fraction, spread ladders, costs, monthly withdrawals ($ and %), 1-2
underlyings, 1-3 regimes, scheduled shocks; 40-150 steps, a handful of paths. The market comes
from `mcsim.simulate_market`; each strategy and both baselines are run by the reference on every
path and compared with `mcsim.run_strategies(scenario, market)`: money to 1e-9 relative (plus a
tiny absolute tolerance), counts exactly, every monthly row; for some examples the trade log of
`mcsim.replay` is compared with the reference's. Across the generated set every trade-log action
must occur (checked by the last test of the module).

Issue 11 (`_issue11_draws`, drawn after the rest): `exercise` american/european per underlying,
dividend yields above r, crash and rally shocks (deep ITM puts, spreads, calls), `min_credit` of
put / call / short_put, `manage.roll_strike` credit/rule and `roll_min_credit`; compared besides
the above: `net_premium` (monthly, `net_premium_collected`), the close counters and the log's
`reason`, `long_strike`, `shares`, `cost_basis`. The coverage tests at the end require every
`reason` (with every action it goes with), rolls in both roll_strike modes and every branch of
the new rules (`BRANCHES`, as taken by the reference).

Issue 12 (`_issue12_draws`, then `_rebalance_draws`, drawn last): stochastic vol on some
underlyings; `sizing.rebalance` on some covered_call strategies (its buys and sells, reason
`rebalance`, are in the coverage sets).
"""

from __future__ import annotations

import math
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mcsim  # noqa: E402
from mcsim.scenario import parse_scenario  # noqa: E402
from mcsim.strategies.layout import REASON_NAMES  # noqa: E402
from reference import (  # noqa: E402
    COUNTERS,
    PER_PATH_FIELDS,
    REASONS,
    PathRun,
    nearest_expiry,
    run_reference,
)

ACTIONS = ("sell_put", "sell_call", "open_spread", "buy_to_close", "close_spread",
           "expire_worthless", "assigned", "called_away", "early_assigned", "roll", "withdraw", "end",
           "buy_shares", "sell_shares")
SEEN_ACTIONS: Counter = Counter()  # filled by every comparison, checked by the last test
SEEN_EVENTS: Counter = Counter()  # (strategy kind, action, option kind) of the reference logs
# every event of every strategy kind that the text defines
EVENTS = {
    ("wheel", "sell_put", "put"), ("wheel", "sell_call", "call"), ("wheel", "buy_to_close", "put"),
    ("wheel", "buy_to_close", "call"), ("wheel", "expire_worthless", "put"),
    ("wheel", "expire_worthless", "call"), ("wheel", "assigned", "put"),
    ("wheel", "called_away", "call"), ("wheel", "early_assigned", "put"),
    ("wheel", "early_assigned", "call"), ("wheel", "roll", "put"), ("wheel", "roll", "call"),
    ("put_write", "sell_put", "put"), ("put_write", "buy_to_close", "put"),
    ("put_write", "expire_worthless", "put"), ("put_write", "assigned", "put"),
    ("put_write", "roll", "put"),  # (put_write's options are European: never early_assigned)
    ("bull_put_spread", "open_spread", "spread"), ("bull_put_spread", "close_spread", "spread"),
    ("bull_put_spread", "expire_worthless", "spread"), ("bull_put_spread", "assigned", "spread"),
    ("bull_put_spread", "early_assigned", "spread"), ("bull_put_spread", "roll", "spread"),
    ("covered_call", "buy_shares", ""), ("covered_call", "sell_call", "call"),
    ("covered_call", "expire_worthless", "call"), ("covered_call", "assigned", "call"),
    ("covered_call", "called_away", "call"), ("covered_call", "early_assigned", "call"),
    ("covered_call", "buy_to_close", "call"), ("covered_call", "roll", "call"),
    ("covered_call", "sell_shares", ""),  # sizing.rebalance (issue 12)
}
# issue 11: every `reason` of the log occurs, with every action it can go with
SEEN_REASONS: Counter = Counter()
SEEN_ACTION_REASONS: Counter = Counter()
ACTION_REASONS = {
    ("sell_put", "entry"), ("sell_call", "entry"), ("open_spread", "entry"), ("buy_shares", "entry"),
    *((a, r) for a in ("buy_to_close", "close_spread")
      for r in ("profit_take", "stop_loss", "close_dte", "max_rolls", "unable_to_roll")),
    ("roll", "roll_itm"), ("roll", "roll_delta"),
    ("expire_worthless", "expiry"), ("assigned", "expiry"), ("called_away", "expiry"),
    ("early_assigned", "early_exercise"), ("withdraw", "withdrawal"), ("end", "end"),
    ("buy_shares", "rebalance"), ("sell_shares", "rebalance"),
}
# rolls per manage.roll_strike mode (both must roll), and the branches of the new rules that the
# reference took (PathRun.branches): each must be taken somewhere in the generated set
SEEN_ROLL_MODES: Counter = Counter()
SEEN_BRANCHES: Counter = Counter()
BRANCHES = (
    "early_put", "early_call", "early_spread", "early_call_q_above_r",
    "early_kept_by_american_price",            # mid's time value < threshold, BAW's is not
    "spread_long_exercised", "spread_long_sold",  # early-assigned spread: the long put's better exit
    "spread_debit_at_width",                   # a close (or roll, or cc) debit capped at the width
    "roll_credit_moved", "roll_credit_at_old_strike", "roll_credit_refused",
    "roll_rule_accepted", "roll_rule_refused",
    "put_below_min_credit", "call_below_min_credit", "spread_below_min_credit",
    "rebalance_buy", "rebalance_sell",         # covered_call sizing.rebalance (issue 12)
)
N_COMPARED: Counter = Counter()  # scenarios and (strategy, path) runs compared


def _observe(scenario, rules, ref: dict) -> None:
    """Fill the coverage counters from one reference run; check the reference's own invariants
    of issue 11 (European options are never assigned early; reasons go with their actions)."""
    log = ref["log"]
    kind = rules if isinstance(rules, str) else rules.kind
    SEEN_ACTIONS.update(row["action"] for row in log)
    SEEN_EVENTS.update((kind, row["action"], row["kind"]) for row in log)
    SEEN_REASONS.update(row["reason"] for row in log)
    SEEN_ACTION_REASONS.update((row["action"], row["reason"]) for row in log)
    SEEN_BRANCHES.update(ref.get("branches", {}))
    if not isinstance(rules, str):
        SEEN_ROLL_MODES[rules.manage.roll_strike] += sum(1 for row in log if row["action"] == "roll")
        cash_settled = kind == "put_write" or (kind == "covered_call" and (rules.call.settle or "cash") == "cash")
        for row in log:
            assert (row["action"], row["reason"]) in ACTION_REASONS, row
            if row["action"] == "early_assigned":
                und = scenario.underlyings[scenario.underlying_names.index(row["underlying"])]
                assert und.exercise == "american" and not cash_settled, (rules.name, row)


# Paths set aside because a "dust" position decided the difference (see `_dust`): the text allows
# fractional contracts of any size > 0, so a trade sized on a free cash of ~1e-11 $ (zero but for
# float rounding) opens in one implementation and not in the other. Reported, not failed.
DUST_PATHS: list[str] = []
DUST = 1e-6  # contracts


# --------------------------------------------------------------------------------------------
# tolerances

REL = 1e-9
INT_FIELDS = set(COUNTERS) | {"trades_won", "trades_lost", "days_in_shares", "max_drawdown_days",
                              "shortfalls", "first_shortfall_month", "dominant_regime"}
BOOL_FIELDS = {"ruined"}
MONEY_FIELDS = {"final_equity", "min_equity", "premium_collected", "net_premium_collected",
                "realised_pnl", "avg_win", "avg_loss", "withdrawn"}
# sharpe / sortino divide by a (downside) deviation that may be tiny: relative only, a bit looser
RATIO_REL = {"sharpe": 1e-7, "sortino": 1e-7}
EQUITY_RATIOS = {"capital_used", "ann_vol", "sharpe", "sortino"}


def _close(a, b, rel, abs_tol) -> bool:
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= abs_tol + rel * max(abs(a), abs(b))


def compare_path(ref: dict, row: dict, money_abs: float) -> list[str]:
    """Field-by-field differences between the reference's per-path dict and a kernel row.

    capital_used (and the monthly ratios) divide by equity: on a path wiped out to float dust
    (equity ~1e-10 $ where it is 0 in exact arithmetic) those ratios are rounding noise, so they
    are compared only while the path's minimum equity stays above `_wiped_out`'s level.
    """
    bad = []
    wiped = _wiped_out(ref, row, money_abs)
    for f in PER_PATH_FIELDS:
        if wiped and f in EQUITY_RATIOS:
            continue
        a, b = ref[f], row[f]
        if f in INT_FIELDS or f in BOOL_FIELDS:
            if int(a) != int(b):
                bad.append(f"{f}: reference {a} kernel {b}")
        elif f in MONEY_FIELDS:
            if not _close(a, b, REL, money_abs):
                bad.append(f"{f}: reference {a!r} kernel {b!r}")
        else:
            if not _close(a, b, RATIO_REL.get(f, REL), 1e-10):
                bad.append(f"{f}: reference {a!r} kernel {b!r}")
    return bad


def _wiped_out(ref: dict, row: dict, money_abs: float) -> bool:
    return min(ref["min_equity"], row["min_equity"]) <= 1e3 * money_abs


def compare_months(ref_rows: list[dict], rows: list[dict], money_abs: float, wiped: bool = False) -> list[str]:
    bad = []
    if len(ref_rows) != len(rows):
        return [f"months: reference {len(ref_rows)} kernel {len(rows)}"]
    for a, b in zip(ref_rows, rows):
        m = a["month"]
        if int(b["month"]) != m:
            bad.append(f"month index: reference {m} kernel {b['month']}")
        for f in ("premium", "net_premium", "realised_pnl", "withdrawn", "equity"):
            if not _close(a[f], b[f], REL, money_abs):
                bad.append(f"month {m} {f}: reference {a[f]!r} kernel {b[f]!r}")
        # a return is a ratio of equities each good to ~money_abs: 1e-9 absolute
        if not wiped and not _close(a["mtm_return"], b["mtm_return"], REL, 1e-9):
            bad.append(f"month {m} mtm_return: reference {a['mtm_return']!r} kernel {b['mtm_return']!r}")
        for f in ("shortfall", "partial"):
            if bool(a[f]) != bool(b[f]):
                bad.append(f"month {m} {f}: reference {a[f]} kernel {b[f]}")
    return bad


def compare_logs(ref_log: list[dict], df, money_abs: float) -> list[str]:
    """The reference trade log against `mcsim.replay`'s DataFrame, row by row, every column."""
    rows = df.to_dict("records")
    bad = []
    for i, (a, b) in enumerate(zip(ref_log, rows)):
        head = f"log row {i} (step {a['step']} {a['action']})"
        if int(b["step"]) != a["step"] or str(b["action"]) != a["action"]:
            bad.append(f"{head}: kernel has step {b['step']} {b['action']}")
            break
        for k in ("underlying", "kind"):
            if str(b[k]) != a[k]:
                bad.append(f"{head}: {k} reference {a[k]!r} kernel {b[k]!r}")
        if _reason_name(b["reason"]) != a["reason"]:
            bad.append(f"{head}: reason reference {a['reason']!r} kernel {_reason_name(b['reason'])!r}")
        if int(b["expiry"]) != a["expiry"]:
            bad.append(f"{head}: expiry reference {a['expiry']} kernel {b['expiry']}")
        for k in ("strike", "long_strike", "contracts", "price", "spot", "iv", "cash", "equity", "shares",
                  "cost_basis"):
            money = k in ("cash", "equity") or (k == "price" and a["action"] in ("withdraw", "end"))
            if not _close(a[k], b[k], REL, money_abs if money else 1e-9):
                bad.append(f"{head}: {k} reference {a[k]!r} kernel {b[k]!r}")
    if len(ref_log) != len(rows) and not bad:
        bad.append(f"log length: reference {len(ref_log)} kernel {len(rows)}")
    return bad


def _reason_name(value) -> str:
    """The kernel log's reason as a name (the frame may carry the Reason code or its name)."""
    if isinstance(value, str):
        return value
    return REASONS[int(value)]


# --------------------------------------------------------------------------------------------
# scenario generation: one builder, two sources of choices (a seeded Random, hypothesis data)


class RandomChooser:
    def __init__(self, seed):
        self.rng = random.Random(seed)

    def choice(self, seq):
        return self.rng.choice(list(seq))

    def uniform(self, lo, hi):
        return round(self.rng.uniform(lo, hi), 4)

    def integer(self, lo, hi):
        return self.rng.randint(lo, hi)

    def coin(self, p=0.5):
        return self.rng.random() < p


class DataChooser:
    def __init__(self, data):
        self.data = data

    def choice(self, seq):
        return self.data.draw(st.sampled_from(list(seq)))

    def uniform(self, lo, hi):
        return round(self.data.draw(st.floats(lo, hi, allow_nan=False, allow_infinity=False)), 4)

    def integer(self, lo, hi):
        return self.data.draw(st.integers(lo, hi))

    def coin(self, p=0.5):
        return self.data.draw(st.booleans())


def _option_rule(ch: RandomChooser | DataChooser, is_call=False, spread=False) -> dict:
    rule = {}
    if ch.coin(0.75):
        rule["delta"] = ch.uniform(0.05, 0.6) if not spread else ch.uniform(0.08, 0.45)
    else:
        rule["otm_pct"] = ch.choice([0.0, 0.01, 0.03, 0.05, 0.1])
    rule["dte"] = ch.choice([1, 3, 7, 14, 21, 30, 35, 45, 60, 365])
    if is_call:
        rule["min_strike"] = ch.choice(["cost_basis", "none", "purchase_price"])
    return rule


def _manage(ch) -> dict:
    m = {}
    if ch.coin(0.5):
        m["profit_take"] = ch.choice([0.25, 0.5, 0.75, 0.9])
    if ch.coin(0.3):
        m["stop_loss"] = ch.choice([1.5, 2.0, 3.0])
    if ch.coin(0.25):
        m["close_dte"] = ch.choice([1, 3, 7, 10])
    roll = ch.choice(["off", "itm", "itm", "delta"])
    m["roll_when"] = roll
    if roll != "off":
        m["roll_delta"] = ch.choice([0.3, 0.4, 0.5, 0.7])
        m["roll_dte"] = ch.choice([3, 7, 14, 30, 60])
        m["roll_out_days"] = ch.choice([7, 14, 28, 35])
        m["roll_credit_only"] = ch.coin(0.6)
        m["max_rolls"] = ch.choice([0, 1, 2, 3])
        m["close_if_unable_to_roll"] = ch.coin(0.5)
    m["early_assignment"] = ch.coin(0.6)
    m["early_assignment_time_value"] = ch.choice([0.0, 0.05, 0.2, 1.0])
    return m


def _strategy(ch, i: int, names: list[str]) -> dict:
    kind = ch.choice(["wheel", "wheel", "put_write", "bull_put_spread", "bull_put_spread", "buy_and_hold",
                      "covered_call"])
    unds = names if len(names) == 1 or ch.coin(0.5) else [ch.choice(names)]
    if len(unds) == 2 and ch.coin(0.5):
        unds = list(reversed(unds))
    s = {"name": f"s{i}_{kind}", "kind": kind, "underlyings": list(unds)}
    if kind == "buy_and_hold":
        return s
    s["entry_every_days"] = ch.choice([1, 1, 2, 5, 10])
    sizing = {"contracts": ch.choice(["integer", "fractional"])}
    if kind == "wheel":
        s["put"] = _option_rule(ch)
        s["call"] = _option_rule(ch, is_call=True)
        sizing["position_fraction"] = ch.choice([0.3, 0.5, 1.0])
    elif kind == "put_write":
        s["put"] = _option_rule(ch)
        sizing["position_fraction"] = ch.choice([0.3, 0.5, 1.0])
    elif kind == "covered_call":
        s["call"] = _option_rule(ch, is_call=True)
        s["call"]["settle"] = ch.choice(["cash", "shares"])
        sizing["position_fraction"] = ch.choice([0.3, 0.5, 1.0])
    else:
        s["short_put"] = _option_rule(ch, spread=True)
        if ch.coin(0.6):
            s["width"] = ch.choice([0.5, 1.0, 2.5, 5.0, 10.0, 25.0])
        else:
            s["width_pct"] = ch.choice([0.02, 0.05, 0.1])
        sizing["position_fraction"] = ch.choice([0.02, 0.05, 0.2, 1.0])
        sizing["max_open"] = ch.choice([1, 2, 4])
    s["sizing"] = sizing
    s["manage"] = _manage(ch)
    if ch.coin(0.3):
        h = {}
        if ch.coin(0.5):
            h["atm_iv_above"] = ch.choice([0.15, 0.25, 0.35])
        else:
            h["iv_rank_above"] = ch.choice([0.5, 0.8])
        if ch.coin(0.7):
            h["put_delta"] = ch.choice([0.1, 0.15, 0.2])
        if kind in ("wheel", "covered_call") and ch.coin(0.7):
            h["call_delta"] = ch.choice([0.1, 0.2])
        if ch.coin(0.5):
            h["dte"] = ch.choice([14, 45, 60])
        s["high_iv"] = h
    return s


def build_raw(ch, issue11: bool = True, issue12: bool = True) -> dict:
    """A random scenario table (what a TOML file would hold); `issue11=False` / `issue12=False`
    leave out the draws of issue 11 (`_issue11_draws`) / issue 12 (`_issue12_draws`)."""
    n_steps = ch.integer(40, 150)
    spy = ch.choice([252, 252, 252, 250, 365, 52])
    n_reg = ch.choice([1, 1, 2, 3])
    run = {"horizon_years": n_steps / spy, "steps_per_year": spy, "seed": ch.integer(0, 10**6),
           "initial_equity": ch.choice([50000.0, 100000.0, 1000000.0]),
           "risk_free_rate": ch.choice([-0.01, 0.0, 0.02, 0.05])}
    w = ch.choice(["none", "none", "dollars", "pct"])
    if w == "dollars":
        run["monthly_withdrawal"] = ch.choice([0.005, 0.01, 0.04]) * run["initial_equity"]
    elif w == "pct":
        run["monthly_withdrawal_pct"] = ch.choice([0.003, 0.01, 0.03])
    raw = {"run": run}
    if n_reg > 1:
        names = ["calm", "normal", "stress"][:n_reg]
        exit_p = [[0.0 if i == j else 1.0 / (n_reg - 1) for j in range(n_reg)] for i in range(n_reg)]
        raw["regimes"] = {"names": names, "exit_probabilities": exit_p,
                          "mean_duration_days": [float(ch.choice([5, 20, 60])) for _ in range(n_reg)]}
    und_names = ["AAA", "BBB"][: ch.choice([1, 1, 2])]
    unds = []
    for name in und_names:
        vol = [ch.choice([0.1, 0.2, 0.3, 0.5]) for _ in range(n_reg)]
        u = {"name": name, "spot": ch.choice([20.0, 55.5, 100.0, 250.0]),
             "dividend_yield": ch.choice([0.0, 0.0, 0.02]),
             "expected_return": [ch.choice([-0.3, 0.0, 0.08, 0.3]) for _ in range(n_reg)],
             "volatility": vol,
             "strike_step": ch.choice([0.5, 1.0, 2.5, 5.0, 10.0]),
             "expiry_every_days": ch.choice([1, 5, 5, 21, 63]),
             "implied_vol": {"premium": [ch.choice([-0.03, 0.0, 0.03]) for _ in range(n_reg)],
                             "skew": [ch.choice([-0.1, 0.0, 0.1, 0.3]) for _ in range(n_reg)],
                             "floor": ch.choice([0.01, 0.05, 0.15])}}
        if ch.coin(0.3):
            u["jump_intensity"] = [ch.choice([0.0, 2.0, 10.0]) for _ in range(n_reg)]
            u["jump_mean"] = -0.05
            u["jump_std"] = 0.05
        if ch.coin(0.3):
            u["implied_vol"]["shock_beta"] = 2.0
        unds.append(u)
    raw["underlyings"] = unds
    if len(unds) == 2 and ch.coin(0.5):
        raw["correlation"] = {"matrix": [[1.0, 0.6], [0.6, 1.0]]}
    shocks = []
    for _ in range(ch.choice([0, 0, 1, 2])):
        shocks.append({"day": ch.integer(1, n_steps), "underlyings": [ch.choice(und_names)],
                       "log_return": ch.choice([-0.3, -0.15, -0.05, 0.1]), "iv_add": ch.choice([0.0, 0.1])})
    if shocks:
        raw["shocks"] = shocks
    raw["costs"] = {"commission_per_contract": ch.choice([0.0, 0.65, 5.0]),
                    "slippage_per_share": ch.choice([0.0, 0.02, 0.1]),
                    "slippage_pct": ch.choice([0.0, 0.0, 0.01]),
                    "assignment_fee": ch.choice([0.0, 0.0, 2.0])}
    raw["strategies"] = [_strategy(ch, i, und_names) for i in range(ch.choice([1, 2, 3]))]
    if issue11:
        _issue11_draws(ch, raw, n_steps, und_names)
    if issue12:
        _issue12_draws(ch, raw)
        _rebalance_draws(ch, raw)
    return raw


def _rebalance_draws(ch, raw: dict) -> None:
    """Drawn after everything else (a scenario without a covered_call draws nothing here, so its
    seed draws what it drew before): `sizing.rebalance` on some covered_call strategies."""
    for s in raw["strategies"]:
        if s["kind"] == "covered_call" and ch.coin(0.5):
            s["sizing"]["rebalance"] = True


def _issue12_draws(ch, raw: dict) -> None:
    """Drawn last: stochastic vol (its ATM IV term structure prices every option whose expiry is
    not 30 calendar days away) on some underlyings, `volatility` becoming its long_run_vol."""
    for u in raw["underlyings"]:
        if ch.coin(0.3):
            sv = {"mean_reversion": ch.choice([0.5, 4.0, 30.0]), "long_run_vol": u.pop("volatility"),
                  "vol_of_vol": ch.choice([0.3, 0.9]), "spot_vol_correlation": ch.choice([-0.7, 0.0])}
            if ch.coin(0.5):
                sv["initial_vol"] = ch.choice([0.1, 0.4])
            u["stochastic_vol"] = sv


def _issue11_draws(ch, raw: dict, n_steps: int, names: list[str]) -> None:
    """The keys and situations of issue 11, drawn after everything else (so the scenario drawn
    before them is the one earlier versions drew from the same seed): exercise style per
    underlying, dividend yields above r (early exercise of calls), crash and rally shocks (deep
    ITM puts, spreads and calls), min_credit per option rule, roll_strike and roll_min_credit."""
    for u in raw["underlyings"]:
        u["exercise"] = ch.choice(["american", "american", "european"])
        if ch.coin(0.25):
            u["dividend_yield"] = ch.choice([0.06, 0.12])  # q > r: deep ITM calls exercised early
    if ch.coin(0.4):
        shocks = raw.setdefault("shocks", [])
        for _ in range(ch.choice([1, 1, 2])):
            shocks.append({"day": ch.integer(1, n_steps), "underlyings": [ch.choice(names)],
                           "log_return": ch.choice([-0.6, -0.35, -0.2, 0.25, 0.45]),
                           "iv_add": ch.choice([0.0, 0.0, 0.15])})
    for s in raw["strategies"]:
        if s["kind"] == "buy_and_hold":
            continue
        for side in ("put", "call", "short_put"):
            if side in s and ch.coin(0.3):
                s[side]["min_credit"] = ch.choice([0.02, 0.1, 0.3, 1.0])
        m = s["manage"]
        m["roll_strike"] = ch.choice(["credit", "credit", "rule"])
        if ch.coin(0.4):
            m["roll_min_credit"] = ch.choice([0.01, 0.1, 0.5])


# --------------------------------------------------------------------------------------------
# the comparison


def _reference_for(scenario, name):
    if name in ("buy_and_hold", "cash") and name not in [s.name for s in scenario.strategies]:
        return name
    return scenario.strategy(name)


def check_scenario(raw: dict, n_paths: int = 3, replay_paths: int = 0, market=None) -> None:
    """Reference vs kernels on every path of `raw`; raises AssertionError with the differences.

    The market is simulated with the scenario's seed unless given (hand-made paths); the first
    `replay_paths` paths also compare the trade log (`mcsim.replay`, or `replay_market` for a
    given market).
    """
    scenario = parse_scenario(raw)
    seed = scenario.run.seed
    hand_made = market is not None
    if market is None:
        market = mcsim.simulate_market(scenario, n_paths=n_paths, seed=seed)
    n_paths = market.n_paths
    result = mcsim.run_strategies(scenario, market)
    pp = result.per_path
    mo = result.monthly
    money_abs = 1e-9 * scenario.run.initial_equity
    expected = [s.name for s in scenario.strategies] + ["buy_and_hold", "cash"]
    assert list(result.strategies) == expected
    assert len(pp) == n_paths * len(expected)
    failures = []
    for name in expected:
        rules = _reference_for(scenario, name)
        for p in range(n_paths):
            ref = run_reference(scenario, rules, market.spot[p], market.atm_iv[p], market.regime[p])
            _observe(scenario, rules, ref)
            N_COMPARED["runs"] += 1
            sel = pp[(pp["strategy"] == name) & (pp["path"] == p)]
            assert len(sel) == 1, f"{name} path {p}: {len(sel)} per_path rows"
            row = sel.iloc[0].to_dict()
            bad = compare_path(ref["per_path"], row, money_abs)
            msel = mo[(mo["strategy"] == name) & (mo["path"] == p)].sort_values("month")
            bad += compare_months(ref["monthly"], msel.to_dict("records"), money_abs,
                                  _wiped_out(ref["per_path"], row, money_abs))
            if p < replay_paths:
                if hand_made:
                    from mcsim.engine import replay_market

                    log = replay_market(scenario, market, name, row=p)
                else:
                    log = mcsim.replay(scenario, p, name, seed=seed)
                SEEN_ACTIONS.update(str(a) for a in log["action"])
                bad += compare_logs(ref["log"], log, money_abs)
            reason = _float_dust(ref, row, money_abs, scenario, market, name, p, bad) if bad else None
            if reason:
                DUST_PATHS.append(f"{reason} (run.seed {seed}, {name}, path {p}): {bad[0]}")
                continue
            if bad:
                failures.append(f"strategy {name} path {p}:\n    " + "\n    ".join(bad[:12]))
    N_COMPARED["scenarios"] += 1
    assert not failures, "reference and kernels differ:\n" + "\n".join(failures) + f"\nscenario: {raw!r}"


def _peak_tie(equity, withdrawn=None) -> bool:
    """Whether the drawdown series (equity plus the withdrawals paid so far) returns to its running
    peak within 1e-9 relative without exceeding it: then "below the peak" (drawdown days) is
    decided by a rounding error."""
    peak = -math.inf
    paid = 0.0
    for t, x in enumerate(equity):
        if withdrawn is not None:
            paid += withdrawn[t]
            x = x + paid
        if peak > 0 and x != peak and abs(x - peak) <= 1e-9 * peak:
            return True
        peak = max(peak, x)
    return False


def _float_dust(ref, row, money_abs, scenario, market, name, p, bad=()) -> str | None:
    """Why a differing path is float noise rather than a departure from the text, if it is.

    "dust contracts": the reference's or the kernel's log holds a trade of 0 < contracts < DUST
    (fractional sizing on a free cash that is 0 but for rounding). "wiped out": the equity fell
    to ~0 (<= 1e-6 of the initial), where a pct withdrawal of ~1e-13 $ or a ratio over equity
    depends on the sign of a rounding error. "peak tie": only max_drawdown_days differs and the
    equity comes back to its peak within 1e-9 relative, so one implementation counts a day below
    the peak where the other is level with it.
    """
    from mcsim.engine import replay_market

    if bad and all(b.startswith("max_drawdown_days") for b in bad) and _peak_tie(ref["equity"], ref.get("withdrawn")):
        return "peak tie"

    logs = [ref["log"], replay_market(scenario, market, name, row=p).to_dict("records")]
    if any(0.0 < float(r["contracts"]) < DUST for log in logs for r in log):
        return "dust contracts"
    if _wiped_out(ref["per_path"], row, money_abs):
        return "wiped out"
    return None


def hand_made_market(ch, scenario, n_paths: int):
    """Paths on a coarse price grid (spot lands exactly on strikes: S == K ties), jumpy ATM IV,
    random regimes: what a simulated market never produces."""
    from mcsim.market import MarketPaths

    n = scenario.n_steps
    n_u = scenario.n_underlyings
    spot = np.empty((n_paths, n + 1, n_u))
    iv = np.empty((n_paths, n + 1, n_u))
    for p in range(n_paths):
        for j, und in enumerate(scenario.underlyings):
            tick = und.strike_step * ch.choice([0.5, 1.0])
            s = und.spot
            for t in range(n + 1):
                if t > 0:
                    move = ch.choice([-3, -1, -1, 0, 0, 1, 1, 2]) if ch.coin(0.9) else ch.choice([-12, 8])
                    s = max(tick, round(s / tick) * tick + move * tick)
                spot[p, t, j] = s
                iv[p, t, j] = ch.choice([0.05, 0.15, 0.25, 0.4, 0.8]) if t % 7 == 0 or t == 0 else iv[p, t - 1, j]
    n_reg = scenario.regimes.count
    regime = np.array([[ch.integer(0, n_reg - 1) for _ in range(n + 1)] for _ in range(n_paths)], dtype=np.int8)
    return MarketPaths(spot, iv, regime, scenario.underlying_names, scenario.run.steps_per_year)


# --------------------------------------------------------------------------------------------
# hand-designed scenarios that make every action happen (then the seeded and hypothesis sets)


def _base(n_steps=120, **run) -> dict:
    return {
        "run": {"horizon_years": n_steps / 252, "seed": 11, "initial_equity": 100000.0,
                "risk_free_rate": 0.03, **run},
        "underlyings": [{"name": "AAA", "spot": 100.0, "volatility": 0.3, "expected_return": 0.0,
                         "dividend_yield": 0.01, "strike_step": 1.0, "expiry_every_days": 5,
                         "implied_vol": {"premium": 0.02, "skew": 0.1, "floor": 0.05}}],
        "costs": {"commission_per_contract": 0.65, "slippage_per_share": 0.02, "assignment_fee": 1.0},
    }


def _designed() -> list[dict]:
    out = []
    # wheel through a crash and a rally: assignment, covered calls, called away, early assignment
    raw = _base(monthly_withdrawal=1500.0)
    raw["shocks"] = [{"day": 15, "log_return": -0.25, "iv_add": 0.1},
                     {"day": 60, "log_return": 0.3, "iv_add": 0.0}]
    raw["strategies"] = [
        {"name": "wheel", "kind": "wheel", "put": {"delta": 0.4, "dte": 30},
         "call": {"delta": 0.4, "dte": 14, "min_strike": "none"},
         "manage": {"early_assignment": True, "early_assignment_time_value": 1.0}},
        {"name": "wheel_pt", "kind": "wheel", "put": {"otm_pct": 0.02, "dte": 21},
         "call": {"otm_pct": 0.0, "dte": 14}, "sizing": {"contracts": "fractional", "position_fraction": 0.5},
         "manage": {"profit_take": 0.5, "stop_loss": 2.0, "early_assignment": False}},
    ]
    out.append(raw)
    # put writing with rolls (credit only, max rolls, close if unable) and a withdrawal shortfall
    raw = _base(monthly_withdrawal_pct=0.02)
    raw["shocks"] = [{"day": 25, "log_return": -0.08, "iv_add": 0.0},
                     {"day": 55, "log_return": -0.08, "iv_add": 0.0}]
    raw["strategies"] = [
        {"name": "pw_roll", "kind": "put_write", "put": {"delta": 0.45, "dte": 21},
         "manage": {"roll_when": "itm", "roll_dte": 14, "roll_out_days": 21, "max_rolls": 1,
                    "roll_credit_only": True, "close_if_unable_to_roll": True, "early_assignment": False}},
        {"name": "pw_delta", "kind": "put_write", "put": {"delta": 0.3, "dte": 30},
         "manage": {"roll_when": "delta", "roll_delta": 0.4, "roll_dte": 30, "roll_out_days": 28,
                    "max_rolls": 3, "roll_credit_only": False, "close_dte": 2}},
    ]
    out.append(raw)
    # spread ladders: profit takes, stop losses, assignment at expiry, early assignment of the short leg
    raw = _base()
    raw["shocks"] = [{"day": 40, "log_return": -0.2, "iv_add": 0.05}]
    raw["strategies"] = [
        {"name": "ladder", "kind": "bull_put_spread", "short_put": {"delta": 0.3, "dte": 21},
         "width": 5.0, "entry_every_days": 5, "sizing": {"max_open": 4, "position_fraction": 0.05},
         "manage": {"profit_take": 0.5, "stop_loss": 2.0, "early_assignment": True,
                    "early_assignment_time_value": 0.5}},
        {"name": "spread_roll", "kind": "bull_put_spread", "short_put": {"otm_pct": 0.02, "dte": 30},
         "width_pct": 0.05, "sizing": {"max_open": 2, "contracts": "fractional"},
         "manage": {"roll_when": "itm", "roll_dte": 30, "roll_credit_only": False, "max_rolls": 2,
                    "early_assignment": False}},
    ]
    out.append(raw)
    # wheels assigned early by a crash, then covered calls challenged by a rally: call rolls
    # (credit only or not, each min_strike level), calls bought back, called away
    raw = _base(n_steps=150)
    # puts expire at step 10 (dte 14 -> 10 steps): the gap that day assigns them before any roll
    raw["shocks"] = [{"day": 10, "log_return": -0.2, "iv_add": 0.05},
                     {"day": 20, "log_return": 0.15, "iv_add": 0.0},
                     {"day": 70, "log_return": -0.2, "iv_add": 0.0},
                     {"day": 80, "log_return": 0.2, "iv_add": 0.0}]
    raw["strategies"] = [
        {"name": f"wheel_{level}_{credit}", "kind": "wheel", "put": {"delta": 0.45, "dte": 14},
         "call": {"delta": 0.35, "dte": 21, "min_strike": level},
         "sizing": {"contracts": "fractional" if credit else "integer", "position_fraction": 0.8},
         "manage": {"roll_when": "itm", "roll_dte": 14, "roll_out_days": 21, "max_rolls": 2,
                    "roll_credit_only": credit, "close_if_unable_to_roll": credit,
                    "stop_loss": 4.0 if credit else 0.0, "early_assignment": False}}
        for level in ("cost_basis", "purchase_price", "none") for credit in (True, False)
    ]
    out.append(raw)
    # covered calls (buy-write) through rallies and a drop: cash-settled ITM expiries, calls
    # called away and the shares bought back, rolls, buy-backs, early assignment, dividends
    raw = _base(n_steps=150, monthly_withdrawal=300.0)
    raw["shocks"] = [{"day": 12, "log_return": 0.12, "iv_add": 0.0},
                     {"day": 50, "log_return": -0.15, "iv_add": 0.1},
                     {"day": 90, "log_return": 0.15, "iv_add": 0.0}]
    raw["strategies"] = [
        {"name": "bxm", "kind": "covered_call", "call": {"otm_pct": 0.0, "dte": 30},
         "entry_every_days": 5},
        {"name": "cc_shares", "kind": "covered_call", "call": {"delta": 0.4, "dte": 14, "settle": "shares"},
         "manage": {"early_assignment": True, "early_assignment_time_value": 0.5}},
        {"name": "cc_managed", "kind": "covered_call",
         "call": {"delta": 0.3, "dte": 21, "settle": "shares", "min_strike": "cost_basis"},
         "sizing": {"contracts": "fractional", "position_fraction": 0.7},
         "manage": {"profit_take": 0.5, "roll_when": "itm", "roll_dte": 14, "roll_out_days": 21,
                    "max_rolls": 1, "roll_credit_only": False, "early_assignment": False}},
    ]
    out.append(raw)
    # issue 11: American exercise through crashes and rallies (puts with r > q, calls with q > r),
    # spreads assigned early (the long put sold or exercised), credit and rule rolls with credit
    # floors, min_credit on sales; a European underlying and the index-style put_write are never
    # assigned early
    raw = _base(n_steps=150, risk_free_rate=0.05, monthly_withdrawal=500.0)
    aaa = raw["underlyings"][0]
    aaa["dividend_yield"] = 0.0
    raw["underlyings"] += [
        {**aaa, "name": "IDX", "spot": 400.0, "volatility": 0.2, "strike_step": 5.0, "exercise": "european"},
        {**aaa, "name": "CCC", "spot": 50.0, "volatility": 0.35, "dividend_yield": 0.10, "strike_step": 0.5},
    ]
    raw["shocks"] = [{"day": 20, "underlyings": ["AAA"], "log_return": -0.35, "iv_add": 0.1},
                     {"day": 30, "underlyings": ["IDX"], "log_return": -0.3, "iv_add": 0.1},
                     {"day": 40, "underlyings": ["CCC"], "log_return": 0.3, "iv_add": 0.0},
                     {"day": 90, "underlyings": ["AAA"], "log_return": 0.25, "iv_add": 0.0},
                     {"day": 100, "underlyings": ["CCC"], "log_return": 0.25, "iv_add": 0.0}]
    roll = {"roll_when": "itm", "roll_dte": 14, "roll_out_days": 28, "max_rolls": 2}
    raw["strategies"] = [
        {"name": "wheel_credit", "kind": "wheel", "underlyings": ["AAA", "CCC", "IDX"],
         "put": {"delta": 0.4, "dte": 30, "min_credit": 0.1},
         "call": {"delta": 0.45, "dte": 21, "min_credit": 0.05, "min_strike": "none"},
         "sizing": {"contracts": "fractional", "position_fraction": 0.3},
         "manage": {**roll, "roll_strike": "credit", "roll_min_credit": 0.1, "close_if_unable_to_roll": True,
                    "early_assignment": True, "early_assignment_time_value": 0.1}},
        {"name": "spread_am", "kind": "bull_put_spread", "underlyings": ["AAA", "IDX"],
         "short_put": {"delta": 0.3, "dte": 30, "min_credit": 0.2}, "width": 10.0, "entry_every_days": 5,
         "sizing": {"max_open": 3, "position_fraction": 0.05},
         "manage": {"stop_loss": 3.0, "roll_when": "delta", "roll_delta": 0.5, "roll_dte": 14,
                    "roll_out_days": 28, "roll_strike": "credit", "roll_credit_only": False,
                    "close_if_unable_to_roll": True, "early_assignment": True,
                    "early_assignment_time_value": 0.2}},
        {"name": "pw_rule", "kind": "put_write", "underlyings": ["AAA"], "put": {"delta": 0.4, "dte": 30},
         "manage": {**roll, "roll_strike": "rule", "early_assignment": True,
                    "early_assignment_time_value": 1.0}},
        {"name": "cc_q", "kind": "covered_call", "underlyings": ["CCC"],
         "call": {"delta": 0.4, "dte": 30, "settle": "shares", "min_credit": 0.05},
         "manage": {**roll, "roll_strike": "rule", "roll_min_credit": 0.05, "early_assignment": True,
                    "early_assignment_time_value": 0.2}},
    ]
    out.append(raw)
    # issue 12: buy-writes that rebalance their shares to position_fraction of equity (BXM
    # reinvests): integer and fractional lots, cash- and share-settled calls, two underlyings,
    # rallies (cash-settled payouts force sales) and a drop (premiums and cash buy more shares)
    raw = _base(n_steps=150, monthly_withdrawal=200.0)
    raw["underlyings"].append({**raw["underlyings"][0], "name": "BBB", "spot": 40.0, "volatility": 0.4,
                               "strike_step": 0.5})
    raw["shocks"] = [{"day": 15, "log_return": 0.15, "iv_add": 0.0},
                     {"day": 60, "underlyings": ["AAA"], "log_return": -0.2, "iv_add": 0.1},
                     {"day": 100, "underlyings": ["BBB"], "log_return": 0.2, "iv_add": 0.0}]
    raw["strategies"] = [
        {"name": "bxm_rebal", "kind": "covered_call", "underlyings": ["AAA"], "entry_every_days": 5,
         "call": {"otm_pct": 0.0, "dte": 30}, "sizing": {"rebalance": True, "contracts": "fractional"}},
        {"name": "bxm_lots", "kind": "covered_call", "entry_every_days": 5,
         "call": {"delta": 0.5, "dte": 14}, "sizing": {"rebalance": True, "position_fraction": 0.9}},
        {"name": "cc_rebal_shares", "kind": "covered_call", "underlyings": ["BBB", "AAA"],
         "call": {"delta": 0.4, "dte": 14, "settle": "shares", "min_strike": "cost_basis"},
         "sizing": {"rebalance": True, "contracts": "fractional", "position_fraction": 0.6},
         "manage": {"profit_take": 0.5, "early_assignment": False}},
    ]
    out.append(raw)
    return out


@pytest.mark.parametrize("k", range(7))
def test_designed_scenarios(k):
    check_scenario(_designed()[k], n_paths=4, replay_paths=4 if k in (5, 6) else 2)


@pytest.mark.parametrize("seed", range(200))
def test_seeded_scenarios(seed):
    """Simulated markets (mcsim.simulate_market) of 200 seeded random scenarios."""
    check_scenario(build_raw(RandomChooser(1000 + seed)), n_paths=3, replay_paths=1 if seed % 2 == 0 else 0)


@pytest.mark.parametrize("seed", range(150))
def test_seeded_hand_made_markets(seed):
    """Hand-made paths on a price grid (S == K ties, IV jumps, random regimes) through run_strategies."""
    ch = RandomChooser(20000 + seed)
    raw = build_raw(ch)
    market = hand_made_market(ch, parse_scenario(raw), n_paths=3)
    check_scenario(raw, replay_paths=1 if seed % 2 == 0 else 0, market=market)


def test_drawdown_days_ignore_a_peak_tie_after_a_withdrawal():
    """Found by hypothesis: a withdrawal leaves equity + withdrawn at its peak; the kernel landed a few
    ulps below it and counted 2 drawdown days the reference did not (PEAK_RTOL)."""
    raw = (
    {'run': {'horizon_years': 0.7692307692307693,
             'steps_per_year': 52,
             'seed': 28087,
             'initial_equity': 50000.0,
             'risk_free_rate': 0.0,
             'monthly_withdrawal_pct': 0.003},
     'regimes': {'names': ['calm', 'normal', 'stress'],
                 'exit_probabilities': [[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]],
                 'mean_duration_days': [5.0, 5.0, 5.0]},
     'underlyings': [{'name': 'AAA',
                      'spot': 55.5,
                      'dividend_yield': 0.0,
                      'expected_return': [-0.3, -0.3, -0.3],
                      'volatility': [0.3, 0.1, 0.3],
                      'strike_step': 0.5,
                      'expiry_every_days': 21,
                      'implied_vol': {'premium': [-0.03, -0.03, 0.0],
                                      'skew': [-0.1, -0.1, 0.0],
                                      'floor': 0.01,
                                      'shock_beta': 2.0},
                      'exercise': 'american'}],
     'costs': {'commission_per_contract': 0.0,
               'slippage_per_share': 0.0,
               'slippage_pct': 0.01,
               'assignment_fee': 0.0},
     'strategies': [{'name': 's0_bull_put_spread',
                     'kind': 'bull_put_spread',
                     'underlyings': ['AAA'],
                     'entry_every_days': 1,
                     'short_put': {'otm_pct': 0.03, 'dte': 1, 'min_credit': 0.02},
                     'width_pct': 0.05,
                     'sizing': {'contracts': 'integer', 'position_fraction': 1.0, 'max_open': 1},
                     'manage': {'profit_take': 0.25,
                                'stop_loss': 1.5,
                                'roll_when': 'off',
                                'early_assignment': False,
                                'early_assignment_time_value': 0.0,
                                'roll_strike': 'credit'}}]}
    )
    check_scenario(raw, n_paths=2, replay_paths=1)


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_hypothesis_scenarios(data):
    check_scenario(build_raw(DataChooser(data)), n_paths=2, replay_paths=1)


@settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data(), st.integers(0, 2**32 - 1))
def test_hypothesis_hand_made_markets(data, market_seed):
    raw = build_raw(DataChooser(data))
    market = hand_made_market(RandomChooser(market_seed), parse_scenario(raw), n_paths=2)
    check_scenario(raw, replay_paths=1, market=market)


def _dust_case() -> dict:
    """Seeded scenario 931, its bull put spread only: fractional contracts, position_fraction 1,
    max_open 1 on each of two underlyings (BBB, AAA)."""
    raw = build_raw(RandomChooser(931), issue11=False)
    raw["strategies"] = [s for s in raw["strategies"] if s["name"] == "s1_bull_put_spread"]
    return raw


def test_fractional_dust_ambiguity():
    """Path 1, step 63: after BBB's spread takes all free cash, AAA's free cash is 0 but for
    rounding (~1e-10 $). Before the fractional minimum (1e-6 contracts, docs/semantics.md) one
    implementation opened ~1e-12 contracts there and the other nothing; now both agree."""
    raw = _dust_case()
    scenario = parse_scenario(raw)
    market = mcsim.simulate_market(scenario, n_paths=2, seed=scenario.run.seed)
    result = mcsim.run_strategies(scenario, market)
    pp = result.per_path
    kernel = pp[(pp["strategy"] == "s1_bull_put_spread") & (pp["path"] == 1)].iloc[0]
    ref = run_reference(scenario, scenario.strategies[0], market.spot[1], market.atm_iv[1], market.regime[1])
    assert ref["per_path"]["options_sold"] == kernel["options_sold"]
    assert ref["per_path"]["final_equity"] == pytest.approx(kernel["final_equity"], rel=1e-9)


# --------------------------------------------------------------------------------------------
# the reference on its own: accounting identities that hold whatever the rules


def _unrealised(run: PathRun) -> float:
    """Open P&L at the last close: options at mid against their credit and open cost, shares."""
    total = 0.0
    for p in run.positions:
        total += (p.credit - run.position_mid(p)) * 100.0 * p.contracts - p.open_cost
    for u, sh in enumerate(run.shares):
        total += sh * (run.S(u) - run.purchase_price[u])
    return total


@pytest.mark.parametrize("seed", range(12))
def test_reference_accounting_identity(seed):
    """final equity - initial + withdrawn == realised P&L + unrealised P&L, for every strategy."""
    raw = build_raw(RandomChooser(5000 + seed))
    scenario = parse_scenario(raw)
    market = mcsim.simulate_market(scenario, n_paths=2, seed=scenario.run.seed)
    for rules in list(scenario.strategies) + ["buy_and_hold", "cash"]:
        for p in range(2):
            run = PathRun(scenario, rules, market.spot[p], market.atm_iv[p], market.regime[p]).run()
            run.t = run.n
            months = run.months()
            out = run.per_path(months)
            lhs = out["final_equity"] - scenario.run.initial_equity + out["withdrawn"]
            rhs = out["realised_pnl"] + _unrealised(run)
            assert lhs == pytest.approx(rhs, rel=1e-9, abs=1e-6), (rules, p)
            assert sum(m["premium"] for m in months) == pytest.approx(out["premium_collected"], rel=1e-12, abs=1e-9)
            assert sum(m["net_premium"] for m in months) == pytest.approx(out["net_premium_collected"], rel=1e-12, abs=1e-9)
            # net premium = premium - buy-back debits (closes; the old side of rolls)
            assert out["net_premium_collected"] <= out["premium_collected"] + 1e-9
            closes = sum(tr["debit"] * 100.0 * tr["contracts"] for tr in run.trades if "debit" in tr)
            if out["rolls"] == 0:
                assert out["net_premium_collected"] == pytest.approx(out["premium_collected"] - closes, rel=1e-12, abs=1e-6)
            assert out["closes"] == out["close_dte_closes"] + out["max_rolls_closes"] + out["unable_to_roll_closes"]
            assert out["options_sold"] == out["puts_sold"] + out["calls_sold"] + out["spreads_sold"]


def test_nearest_expiry():
    assert nearest_expiry(5, target=21, after=0) == 20
    assert nearest_expiry(5, target=22, after=0) == 20
    assert nearest_expiry(5, target=23, after=0) == 25
    assert nearest_expiry(10, target=15, after=0) == 20  # tie goes to the later one
    assert nearest_expiry(5, target=3, after=4) == 5
    assert nearest_expiry(5, target=12, after=20) == 25  # strictly after `after`
    assert nearest_expiry(21, target=1, after=0) == 21


def test_reference_hand_made_wheel_cycle():
    """A put assigned after a drop, a covered call at the cost-basis floor, called away: by hand."""
    from mcsim.pricing import bs_price_nb, smile_iv_nb

    raw = {"run": {"horizon_years": 60 / 252, "risk_free_rate": 0.0, "initial_equity": 100000.0},
           "underlyings": [{"name": "SPY", "spot": 100.0, "volatility": 0.2, "strike_step": 1.0,
                            "expiry_every_days": 5}],
           "costs": {"commission_per_contract": 0.65, "slippage_per_share": 0.02},
           "strategies": [{"name": "w", "kind": "wheel", "put": {"otm_pct": 0.05, "dte": 30},
                           "call": {"otm_pct": 0.0, "dte": 30}, "manage": {"early_assignment": False}}]}
    scenario = parse_scenario(raw)
    spot = np.full((61, 1), 100.0)
    spot[15:] = 90.0
    spot[35:] = 110.0
    out = run_reference(scenario, scenario.strategies[0], spot, np.full((61, 1), 0.2), np.zeros(61, np.int8))
    log = [(r["step"], r["action"], r["strike"], r["expiry"], r["contracts"]) for r in out["log"]]
    # dte 30 -> round(30 * 252 / 365) = 21 steps -> listed expiry 20 (nearest multiple of 5)
    assert log[:4] == [(0, "sell_put", 95.0, 20, 10.0), (20, "assigned", 95.0, 20, 10.0),
                       (20, "sell_call", 95.0, 40, 10.0), (40, "called_away", 95.0, 40, 10.0)]
    put_fill = bs_price_nb(100.0, 95.0, 20 / 252, 0.0, 0.0, smile_iv_nb(0.2, 100.0, 95.0, 20 / 252, 0.0, 0.0, 0.0, 0.01), False) - 0.02
    assert out["log"][0]["price"] == pytest.approx(put_fill, rel=1e-12)
    # call strike: otm 0 gives 90, floored at the cost basis 95 - put_fill, rounded up to 95
    call_fill = bs_price_nb(90.0, 95.0, 20 / 252, 0.0, 0.0, 0.2, True) - 0.02
    assert out["log"][2]["price"] == pytest.approx(call_fill, rel=1e-12)
    assert out["per_path"]["assignments"] == 1 and out["per_path"]["called_away"] == 1


def _gather_coverage() -> None:
    """Run alone (no comparison ran before): the reference over the designed, seeded and seeded
    hand-made sets, as the comparisons would, to fill the coverage counters."""
    if N_COMPARED["runs"]:
        return
    cases = [(raw, None) for raw in _designed()]
    cases += [(build_raw(RandomChooser(1000 + s)), None) for s in range(200)]
    for s in range(150):
        ch = RandomChooser(20000 + s)
        raw = build_raw(ch)
        cases.append((raw, hand_made_market(ch, parse_scenario(raw), n_paths=3)))
    for raw, market in cases:
        scenario = parse_scenario(raw)
        if market is None:
            market = mcsim.simulate_market(scenario, n_paths=4 if raw in cases[:5] else 3, seed=scenario.run.seed)
        for rules in list(scenario.strategies) + ["buy_and_hold", "cash"]:
            for p in range(market.n_paths):
                _observe(scenario, rules, run_reference(scenario, rules, market.spot[p], market.atm_iv[p],
                                                        market.regime[p]))
                N_COMPARED["runs"] += 1
        N_COMPARED["scenarios"] += 1


def test_every_action_occurs():
    """Across the generated set (reference and replay logs), every trade-log action occurs."""
    _gather_coverage()
    missing = [a for a in ACTIONS if SEEN_ACTIONS[a] == 0]
    assert not missing, f"never occurred: {missing}; seen {dict(SEEN_ACTIONS)}"
    missing = sorted(e for e in EVENTS if SEEN_EVENTS[e] == 0)
    assert not missing, f"(strategy kind, action, option kind) never seen: {missing}"


def test_every_reason_occurs():
    """issue 11: every `reason` of the trade log occurs, with every action it goes with."""
    _gather_coverage()
    assert set(REASONS) == set(REASON_NAMES)
    missing = [r for r in REASONS if SEEN_REASONS[r] == 0]
    assert not missing, f"reasons never seen: {missing}; seen {dict(SEEN_REASONS)}"
    missing = sorted(e for e in ACTION_REASONS if SEEN_ACTION_REASONS[e] == 0)
    assert not missing, f"(action, reason) never seen: {missing}"


def test_every_new_rule_is_exercised():
    """issue 11: both roll_strike modes roll, and every branch of the new rules is taken
    (early exercise of puts, calls with q > r and spreads, kept by the American price; the
    early-assigned spread's long put sold and exercised; debits capped at the width; credit
    scans that move, stay and refuse; rule rolls accepted and refused; min_credit refusals)."""
    _gather_coverage()
    print("compared:", dict(N_COMPARED))
    print("reasons:", dict(SEEN_REASONS))
    print("rolls by roll_strike:", dict(SEEN_ROLL_MODES))
    print("branches:", dict(SEEN_BRANCHES))
    assert SEEN_ROLL_MODES["credit"] > 0 and SEEN_ROLL_MODES["rule"] > 0, dict(SEEN_ROLL_MODES)
    missing = [b for b in BRANCHES if SEEN_BRANCHES[b] == 0]
    assert not missing, f"branches never taken: {missing}; seen {dict(SEEN_BRANCHES)}"


def test_float_dust_paths_are_rare():
    """Paths set aside as float dust (see DUST_PATHS) stay a small minority; they are listed."""
    if not SEEN_ACTIONS["end"]:
        pytest.skip("needs the comparisons above")
    compared = SEEN_ACTIONS["end"]  # one `end` row per compared (strategy, path), plus replays
    for line in DUST_PATHS:
        print("set aside:", line)
    assert len(DUST_PATHS) <= 0.02 * compared, DUST_PATHS
