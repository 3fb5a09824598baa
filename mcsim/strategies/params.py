"""StrategyRules + Scenario -> the `layout.Rules` bundle the strategy kernel takes (`to_kernel`).

Only a mapping by field name: values were validated once, in the scenario layer
(`mcsim.scenario`, also for a Scenario built in Python). Calendar-day keys (dte, close_dte,
roll_dte, roll_out_days) become trading steps here with ``calendar_days_to_steps`` (dte and
roll_out_days at least 1); the kind's flags come from the registry (`mcsim.kinds`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from mcsim.kinds import KINDS
from mcsim.market.core import IV_TENOR_DAYS
from mcsim.scenario import Scenario, StrategyRules, baseline_rules, calendar_days_to_steps

from .layout import (
    RULES_DT, TAU_DT, UND_DT, HighIV, MinStrike, RollStrike, RollWhen, Rules, StrikeRule, Width, records,
)

__all__ = ["KernelParams", "to_kernel", "baseline_rules", "all_strategies", "underlying_tables", "term_b",
           "term_structure", "with_steps"]


class KernelParams(NamedTuple):
    """One strategy for the kernel: its name, kind and `layout.Rules` bundle."""

    name: str
    kind: str
    rules: Rules

    @property
    def p(self):
        """The RULES_DT record (read it as ``kp.p.n_months``)."""
        return self.rules.p.view(np.recarray)[0]


def all_strategies(scenario: Scenario) -> tuple[StrategyRules, ...]:
    """The scenario's strategies in order, then the baselines `buy_and_hold` and `cash`."""
    return tuple(scenario.strategies) + baseline_rules(scenario)


def underlying_tables(scenario: Scenario, cash_settle: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(UND_DT (n_u,), skew float64 (n_u, n_regimes)) of the scenario's underlyings.

    `american`: the underlying's `exercise` is "american" and the strategy does not settle its
    options in cash (`cash_settle`: index-style options are European)."""
    dt = scenario.run.dt
    und = records(scenario.n_underlyings, UND_DT)
    skew = np.zeros((scenario.n_underlyings, scenario.regimes.count))
    for j, u in enumerate(scenario.underlyings):
        q = float(u.dividend_yield)
        und[j]["div"] = q
        und[j]["eqdt1"] = math.exp(q * dt) - 1.0
        und[j]["eqdt"] = math.exp(q * dt)
        und[j]["strike_step"] = float(u.strike_step)
        und[j]["iv_floor"] = float(u.implied_vol.floor)
        und[j]["expiry_every"] = int(u.expiry_every_days)
        und[j]["american"] = u.exercise == "american" and not cash_settle
        skew[j] = np.asarray(u.implied_vol.skew, dtype=np.float64)
        sv = u.stochastic_vol
        if sv is not None:
            und[j]["term"] = 1
            und[j]["kappa"] = float(sv.mean_reversion)
            und[j]["b30"] = term_b(IV_TENOR_DAYS / 365.0, float(sv.mean_reversion))
    return und, skew


def term_b(tau: float, kappa: float) -> float:
    """B(tau) = (1 - exp(-kappa tau)) / (kappa tau), the weight of v_t - theta in the expected
    average variance over tau years (1 at tau = 0)."""
    x = kappa * tau
    return -math.expm1(-x) / x if x > 0.0 else 1.0


def term_structure(scenario: Scenario) -> np.ndarray:
    """float64 (n_u, n_regimes, 2): per underlying and regime (theta + lambda (mu_J^2 + s_J^2),
    IV premium) of the ATM IV term structure (zeros for constant-vol underlyings)."""
    ts = np.zeros((scenario.n_underlyings, scenario.regimes.count, 2))
    for j, u in enumerate(scenario.underlyings):
        if u.stochastic_vol is None:
            continue
        for r in range(scenario.regimes.count):
            jv = u.jump_intensity[r] * (u.jump_mean[r] ** 2 + u.jump_std[r] ** 2)
            ts[j, r] = (float(u.volatility[r]) ** 2 + jv, float(u.implied_vol.premium[r]))
    return ts


_STRIKE_RULE = {"delta": StrikeRule.DELTA, "otm_pct": StrikeRule.OTM}
_MIN_STRIKE = {"cost_basis": MinStrike.COST_BASIS, "none": MinStrike.NONE,
               "purchase_price": MinStrike.PURCHASE_PRICE}
_ROLL_WHEN = {"off": RollWhen.OFF, "itm": RollWhen.ITM, "delta": RollWhen.DELTA}
_ROLL_STRIKE = {"credit": RollStrike.CREDIT, "rule": RollStrike.RULE}


def _option_rule(p, side, rule, spy):
    if rule.delta is not None:
        p[f"{side}_rule"], p[f"{side}_value"] = _STRIKE_RULE["delta"], float(rule.delta)
    else:
        p[f"{side}_rule"], p[f"{side}_value"] = _STRIKE_RULE["otm_pct"], float(rule.otm_pct)
    p[f"{side}_dte"] = max(1, calendar_days_to_steps(rule.dte, spy))
    p[f"{side}_min_credit"] = float(rule.min_credit)


def to_kernel(rules: StrategyRules, scenario: Scenario, log: bool = False) -> KernelParams:
    """Map one strategy (or baseline) of `scenario` onto `layout.Rules` for `kernel.run_paths`."""
    run = scenario.run
    spy = run.steps_per_year
    info = KINDS[rules.kind]
    names = scenario.underlying_names
    su = np.array([names.index(u) for u in rules.underlyings], dtype=np.int64)
    arr = records(1, RULES_DT)
    p = arr[0]
    p["kind"] = info.code
    p["has_options"] = info.has_options
    p["holds_shares"] = info.holds_shares
    p["reinvest"] = rules.kind == "buy_and_hold"
    settle = (rules.call.settle or info.call_settle) if info.call_table is not None else None
    p["cash_settle"] = info.cash_settle or settle == "cash"
    p["tracks_cycle"] = info.tracks_cycle
    p["sells_calls"] = info.call_table is not None
    p["hiv_put_delta"] = math.nan
    p["hiv_call_delta"] = math.nan
    p["hiv_dte"] = -1
    p["n_steps"] = run.n_steps
    p["steps_per_year"] = spy
    p["month"] = run.month_steps
    p["n_months"] = -(-run.n_steps // run.month_steps)
    p["entry_every"] = int(rules.entry_every_days)
    p["log"] = log
    p["n_su"] = len(su)

    costs = scenario.costs
    p["commission"] = costs.commission_per_contract
    p["slippage"] = costs.slippage_per_share
    p["slippage_pct"] = costs.slippage_pct
    p["assignment_fee"] = costs.assignment_fee
    p["rate"] = run.risk_free_rate
    p["er"] = math.exp(run.risk_free_rate * run.dt) - 1.0
    p["initial_equity"] = run.initial_equity
    p["withdrawal"] = run.monthly_withdrawal
    p["withdrawal_pct"] = run.monthly_withdrawal_pct
    p["withdrawals"] = run.monthly_withdrawal > 0.0 or run.monthly_withdrawal_pct > 0.0

    sizing = rules.sizing
    p["position_fraction"] = sizing.position_fraction
    p["integer"] = sizing.contracts == "integer"
    p["rebalance"] = sizing.rebalance
    max_open = int(sizing.max_open) if rules.kind == "bull_put_spread" else 1
    p["max_open"] = max_open
    p["cap"] = len(su) * max_open if info.has_options else 0

    if info.put_table is not None:
        _option_rule(p, "put", rules.put, spy)
    if info.call_table is not None:
        _option_rule(p, "call", rules.call, spy)
        p["min_strike"] = _MIN_STRIKE[rules.call.min_strike]
    if rules.kind == "bull_put_spread":
        if rules.width is not None:
            p["width_mode"], p["width"] = Width.ABS, rules.width
        else:
            p["width_mode"], p["width"] = Width.PCT, rules.width_pct
    if info.has_options:
        _manage(p, rules.manage, spy)
        _high_iv(p, rules.high_iv, spy)
    und, skew = underlying_tables(scenario, bool(p["cash_settle"]))
    tab, p["tab_len"] = _tau_tables(scenario, p)
    bundle = Rules(p=arr, su=su, und=und, skew=np.ascontiguousarray(skew), tab=tab,
                   ts=term_structure(scenario))
    return KernelParams(name=rules.name, kind=rules.kind, rules=bundle)


def with_steps(kp: KernelParams, n_steps: int, n_months: int) -> KernelParams:
    """The same strategy over another horizon (the market's n_steps, its months)."""
    arr = kp.rules.p.copy()
    arr[0]["n_steps"] = n_steps
    arr[0]["n_months"] = n_months
    return kp._replace(rules=kp.rules._replace(p=arr))


def _tau_tables(scenario: Scenario, p) -> tuple[np.ndarray, int]:
    """TAU_DT (n_u, L) over k = 0..L-1 steps to expiry, and L.

    L covers every (expiry - step) an open position can have: the longest entry dte (or
    roll_dte + roll_out_days) plus one listed-expiry spacing. Values are computed exactly as the
    kernel would: tau = k / spy, sqrt(tau), exp(-r tau), exp(-q tau), (r - q) tau, 1 / sqrt(tau),
    and the term-structure weight B(tau) / B(30/365) (1 for constant-vol underlyings).
    """
    run = scenario.run
    spy = run.steps_per_year
    every = max(int(u.expiry_every_days) for u in scenario.underlyings)
    longest = max(int(p["put_dte"]), int(p["call_dte"]), int(p["hiv_dte"]),
                  int(p["roll_dte"]) + int(p["roll_out"]))
    L = longest + every + 2
    tab = records((scenario.n_underlyings, L), TAU_DT)
    r = float(run.risk_free_rate)
    for j, u in enumerate(scenario.underlyings):
        q = float(u.dividend_yield)
        sv = u.stochastic_vol
        kappa = float(sv.mean_reversion) if sv is not None else 0.0
        b30 = term_b(IV_TENOR_DAYS / 365.0, kappa)
        for k in range(L):
            tau = k / spy
            tab[j, k] = (math.sqrt(tau), math.exp(-r * tau), math.exp(-q * tau), (r - q) * tau,
                         1.0 / math.sqrt(tau) if k > 0 else 0.0,
                         term_b(tau, kappa) / b30 if sv is not None else 1.0)
    return tab, L


def _manage(p, mg, spy):
    p["profit_take"] = mg.profit_take
    p["stop_loss"] = mg.stop_loss
    p["close_dte_on"] = mg.close_dte > 0
    p["close_dte"] = calendar_days_to_steps(mg.close_dte, spy)
    p["roll_when"] = _ROLL_WHEN[mg.roll_when]
    p["roll_delta"] = mg.roll_delta
    p["roll_dte"] = calendar_days_to_steps(mg.roll_dte, spy)
    p["roll_out"] = max(1, calendar_days_to_steps(mg.roll_out_days, spy))
    p["roll_credit_only"] = mg.roll_credit_only
    p["roll_strike"] = _ROLL_STRIKE[mg.roll_strike]
    p["roll_min_credit"] = mg.roll_min_credit
    p["max_rolls"] = int(mg.max_rolls)
    p["close_if_unable"] = mg.close_if_unable_to_roll
    p["early"] = mg.early_assignment
    p["ea_time_value"] = mg.early_assignment_time_value
    # the step loop's gate: any rule of the management step is on
    p["manage"] = (mg.stop_loss > 0.0 or mg.profit_take > 0.0 or mg.close_dte > 0
                   or mg.roll_when != "off")


def _high_iv(p, h, spy):
    if h is None:
        return
    if h.atm_iv_above is not None:
        p["hiv_mode"], p["hiv_threshold"] = HighIV.ATM, h.atm_iv_above
    else:
        p["hiv_mode"], p["hiv_threshold"] = HighIV.RANK, h.iv_rank_above
    if h.put_delta is not None:
        p["hiv_put_delta"] = h.put_delta
    if h.call_delta is not None:
        p["hiv_call_delta"] = h.call_delta
    if h.dte is not None:
        p["hiv_dte"] = max(1, calendar_days_to_steps(h.dte, spy))
