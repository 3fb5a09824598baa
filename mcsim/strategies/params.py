"""StrategyRules + Scenario -> the flat arrays the strategy kernel takes (`to_kernel`).

Calendar-day keys (dte, close_dte, roll_dte, roll_out_days) become trading steps here with
``calendar_days_to_steps`` (dte and roll_out_days at least 1). Parameters are validated again
(a Scenario may be built in Python without the TOML loader); a bad value raises ScenarioError
naming the dotted field.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from mcsim.errors import ScenarioError
from mcsim.scenario import Scenario, StrategyRules, calendar_days_to_steps

from . import codes as C

__all__ = ["KernelParams", "to_kernel", "baseline_rules", "all_strategies", "underlying_tables"]


class KernelParams(NamedTuple):
    """One strategy, flattened: `ip`/`fp` laid out by the IP_*/FP_* codes, `su` market indices."""

    name: str
    kind: str
    ip: np.ndarray     # int64 (N_IP + n_su,): ip[IP_SU0 + j] = su[j]
    fp: np.ndarray     # float64 (N_FP,)
    su: np.ndarray     # int64 (n_su,): the strategy's underlyings (market indices), in order
    uf: np.ndarray     # float64 (n_u, ...): `underlying_tables` + this strategy's tau tables


def baseline_rules(scenario: Scenario) -> tuple[StrategyRules, StrategyRules]:
    """The `buy_and_hold` (all underlyings, equal weights) and `cash` baselines."""
    names = scenario.underlying_names
    return (StrategyRules(name="buy_and_hold", kind="buy_and_hold", underlyings=names),
            StrategyRules(name="cash", kind="cash", underlyings=names))


def all_strategies(scenario: Scenario) -> tuple[StrategyRules, ...]:
    """The scenario's strategies in order, then the baselines `buy_and_hold` and `cash`."""
    return tuple(scenario.strategies) + baseline_rules(scenario)


def underlying_tables(scenario: Scenario) -> np.ndarray:
    """uf float64 (n_u, N_UF + n_regimes): dividend yield, exp(q dt) - 1, exp(q dt), strike step,
    IV floor, listed-expiry spacing (steps), then the smile skew of each regime."""
    run = scenario.run
    n_u = scenario.n_underlyings
    n_reg = scenario.regimes.count
    uf = np.zeros((n_u, C.N_UF + n_reg))
    for j, u in enumerate(scenario.underlyings):
        q = float(u.dividend_yield)
        uf[j, C.U_DIV] = q
        uf[j, C.U_EQDT1] = math.exp(q * run.dt) - 1.0
        uf[j, C.U_EQDT] = math.exp(q * run.dt)
        uf[j, C.U_STEP] = float(u.strike_step)
        uf[j, C.U_FLOOR] = float(u.implied_vol.floor)
        uf[j, C.U_EVERY] = float(int(u.expiry_every_days))
        uf[j, C.U_SKEW0:] = np.asarray(u.implied_vol.skew, dtype=np.float64)
    return uf


def _bad(field: str, value, allowed: str) -> ScenarioError:
    return ScenarioError(f"{field}: {value!r} is not allowed (must be {allowed})")


def _check(field, value, ok, allowed):
    if value is None or isinstance(value, bool) or not ok(value):
        raise _bad(field, value, allowed)


def _option_rule(rule, path, is_call):
    if rule is None:
        raise ScenarioError(f"{path}: missing (required)")
    if (rule.delta is None) == (rule.otm_pct is None):
        raise ScenarioError(f"{path}: needs exactly one of delta or otm_pct")
    if rule.delta is not None:
        _check(f"{path}.delta", rule.delta, lambda v: 0.0 < v < 1.0, "in (0, 1)")
        mode, value = C.RULE_DELTA, float(rule.delta)
    else:
        _check(f"{path}.otm_pct", rule.otm_pct, lambda v: 0.0 <= v < 1.0, "in [0, 1)")
        mode, value = C.RULE_OTM, float(rule.otm_pct)
    _check(f"{path}.dte", rule.dte, lambda v: v >= 1, ">= 1")
    return mode, value


def to_kernel(rules: StrategyRules, scenario: Scenario, log: bool = False) -> KernelParams:
    """Flatten one strategy (or baseline) of `scenario` for `kernel.run_paths`.

    Raises ScenarioError naming the field (`strategies.<name>.put.delta`, ...) on bad values.
    """
    run = scenario.run
    spy = run.steps_per_year
    name = rules.name
    path = f"strategies.{name}"
    kinds = {"wheel": C.KIND_WHEEL, "put_write": C.KIND_PUT_WRITE, "bull_put_spread": C.KIND_SPREAD,
             "buy_and_hold": C.KIND_BUY_HOLD, "cash": C.KIND_CASH}
    if rules.kind not in kinds:
        raise _bad(f"{path}.kind", rules.kind, "one of " + ", ".join(kinds))
    kind = kinds[rules.kind]
    names = scenario.underlying_names
    if not rules.underlyings:
        raise _bad(f"{path}.underlyings", list(rules.underlyings), "a non-empty list of underlying names")
    for u in rules.underlyings:
        if u not in names:
            raise _bad(f"{path}.underlyings", u, "one of the scenario's underlyings: " + ", ".join(names))
    if len(set(rules.underlyings)) != len(rules.underlyings):
        raise _bad(f"{path}.underlyings", list(rules.underlyings), "distinct names")
    su = np.array([names.index(u) for u in rules.underlyings], dtype=np.int64)
    ip = np.zeros(C.N_IP + len(su), dtype=np.int64)
    ip[C.IP_N_SU] = len(su)
    ip[C.IP_SU0:] = su
    fp = np.zeros(C.N_FP, dtype=np.float64)
    fp[C.FP_HIV_PUT_DELTA] = math.nan
    fp[C.FP_HIV_CALL_DELTA] = math.nan
    ip[C.IP_HIV_DTE] = -1

    n = run.n_steps
    month = run.month_steps
    ip[C.IP_KIND] = kind
    ip[C.IP_N_STEPS] = n
    ip[C.IP_SPY] = spy
    ip[C.IP_MONTH] = month
    ip[C.IP_N_MONTHS] = -(-n // month)
    _check(f"{path}.entry_every_days", rules.entry_every_days, lambda v: int(v) == v and v >= 1, "an integer >= 1")
    ip[C.IP_ENTRY_EVERY] = int(rules.entry_every_days)
    ip[C.IP_LOG] = 1 if log else 0

    costs = scenario.costs
    for key in ("commission_per_contract", "slippage_per_share", "slippage_pct", "assignment_fee"):
        _check(f"costs.{key}", getattr(costs, key), lambda v: v >= 0.0, ">= 0")
    fp[C.FP_COMM] = costs.commission_per_contract
    fp[C.FP_SLIP] = costs.slippage_per_share
    fp[C.FP_SLIP_PCT] = costs.slippage_pct
    fp[C.FP_FEE] = costs.assignment_fee
    fp[C.FP_RATE] = run.risk_free_rate
    fp[C.FP_ER] = math.exp(run.risk_free_rate * run.dt) - 1.0
    fp[C.FP_INITIAL] = run.initial_equity
    fp[C.FP_WD] = run.monthly_withdrawal
    fp[C.FP_WD_PCT] = run.monthly_withdrawal_pct

    sizing = rules.sizing
    _check(f"{path}.sizing.position_fraction", sizing.position_fraction, lambda v: 0.0 < v <= 1.0, "in (0, 1]")
    _check(f"{path}.sizing.max_open", sizing.max_open, lambda v: int(v) == v and v >= 1, "an integer >= 1")
    if sizing.contracts not in ("integer", "fractional"):
        raise _bad(f"{path}.sizing.contracts", sizing.contracts, 'one of "integer", "fractional"')
    fp[C.FP_PF] = sizing.position_fraction
    ip[C.IP_INTEGER] = 1 if sizing.contracts == "integer" else 0
    max_open = int(sizing.max_open) if kind == C.KIND_SPREAD else 1
    ip[C.IP_MAX_OPEN] = max_open
    ip[C.IP_CAP] = len(su) * max_open if kind <= C.KIND_SPREAD else 0

    if kind <= C.KIND_SPREAD:
        put_path = f"{path}.short_put" if kind == C.KIND_SPREAD else f"{path}.put"
        mode, value = _option_rule(rules.put, put_path, False)
        ip[C.IP_PUT_MODE] = mode
        fp[C.FP_PUT_VAL] = value
        ip[C.IP_PUT_DTE] = max(1, calendar_days_to_steps(rules.put.dte, spy))
        if kind == C.KIND_WHEEL:
            mode, value = _option_rule(rules.call, f"{path}.call", True)
            ip[C.IP_CALL_MODE] = mode
            fp[C.FP_CALL_VAL] = value
            ip[C.IP_CALL_DTE] = max(1, calendar_days_to_steps(rules.call.dte, spy))
            choices = {"cost_basis": C.MIN_COST_BASIS, "none": C.MIN_NONE, "purchase_price": C.MIN_PURCHASE}
            if rules.call.min_strike not in choices:
                raise _bad(f"{path}.call.min_strike", rules.call.min_strike, "one of " + ", ".join(choices))
            ip[C.IP_MIN_STRIKE] = choices[rules.call.min_strike]
        if kind == C.KIND_SPREAD:
            if (rules.width is None) == (rules.width_pct is None):
                raise ScenarioError(f"{path}.width: a bull_put_spread needs exactly one of width ($) or width_pct")
            if rules.width is not None:
                _check(f"{path}.width", rules.width, lambda v: v > 0.0, "> 0")
                ip[C.IP_WIDTH_MODE] = C.WIDTH_ABS
                fp[C.FP_WIDTH] = rules.width
            else:
                _check(f"{path}.width_pct", rules.width_pct, lambda v: 0.0 < v < 1.0, "in (0, 1)")
                ip[C.IP_WIDTH_MODE] = C.WIDTH_PCT
                fp[C.FP_WIDTH] = rules.width_pct
        _manage(rules, path, spy, ip, fp)
        _high_iv(rules, path, spy, ip, fp)
    uf = _with_tables(underlying_tables(scenario), scenario, ip)
    return KernelParams(name=name, kind=rules.kind, ip=ip, fp=fp, su=su, uf=uf)


def _with_tables(uf: np.ndarray, scenario: Scenario, ip: np.ndarray) -> np.ndarray:
    """Append per-underlying tables over k = 0..L-1 steps to expiry (see codes.IP_TAB).

    L covers every (expiry - step) an open position can have: the longest entry dte (or
    roll_dte + roll_out_days) plus one listed-expiry spacing. Values are computed exactly as the
    kernel would: tau = k / spy, sqrt(tau), exp(-r tau), exp(-q tau), (r - q) tau, 1 / sqrt(tau).
    """
    run = scenario.run
    spy = run.steps_per_year
    every = max(int(u.expiry_every_days) for u in scenario.underlyings)
    longest = max(int(ip[C.IP_PUT_DTE]), int(ip[C.IP_CALL_DTE]), int(ip[C.IP_HIV_DTE]),
                  int(ip[C.IP_ROLL_DTE]) + int(ip[C.IP_ROLL_OUT]))
    L = longest + every + 2
    n_u, base = uf.shape
    out = np.zeros((n_u, base + 5 * L))
    out[:, :base] = uf
    ip[C.IP_TAB_LEN] = L
    ip[C.IP_TAB] = base    # interleaved by k: the kernel's five loads for one k are adjacent
    r = float(run.risk_free_rate)
    for j, u in enumerate(scenario.underlyings):
        q = float(u.dividend_yield)
        for k in range(L):
            tau = k / spy
            o = base + 5 * k
            out[j, o] = math.sqrt(tau)
            out[j, o + 1] = math.exp(-r * tau)
            out[j, o + 2] = math.exp(-q * tau)
            out[j, o + 3] = (r - q) * tau
            out[j, o + 4] = 1.0 / math.sqrt(tau) if k > 0 else 0.0
    return np.ascontiguousarray(out)


def _manage(rules, path, spy, ip, fp):
    mg = rules.manage
    mp = f"{path}.manage"
    _check(f"{mp}.profit_take", mg.profit_take, lambda v: 0.0 <= v < 1.0, "in [0, 1)")
    _check(f"{mp}.stop_loss", mg.stop_loss, lambda v: v == 0.0 or v > 1.0, "0 (off) or > 1")
    _check(f"{mp}.close_dte", mg.close_dte, lambda v: v >= 0, ">= 0")
    _check(f"{mp}.roll_dte", mg.roll_dte, lambda v: v >= 0, ">= 0")
    _check(f"{mp}.roll_out_days", mg.roll_out_days, lambda v: v >= 1, ">= 1")
    _check(f"{mp}.roll_delta", mg.roll_delta, lambda v: 0.0 < v < 1.0, "in (0, 1)")
    _check(f"{mp}.max_rolls", mg.max_rolls, lambda v: v >= 0, ">= 0")
    _check(f"{mp}.early_assignment_time_value", mg.early_assignment_time_value, lambda v: v >= 0.0, ">= 0")
    rw = {"off": C.ROLL_OFF, "itm": C.ROLL_ITM, "delta": C.ROLL_DELTA}
    if mg.roll_when not in rw:
        raise _bad(f"{mp}.roll_when", mg.roll_when, 'one of "off", "itm", "delta"')
    fp[C.FP_PROFIT_TAKE] = mg.profit_take
    fp[C.FP_STOP_LOSS] = mg.stop_loss
    ip[C.IP_CLOSE_DTE_ON] = 1 if mg.close_dte > 0 else 0
    ip[C.IP_CLOSE_DTE] = calendar_days_to_steps(mg.close_dte, spy)
    ip[C.IP_ROLL_WHEN] = rw[mg.roll_when]
    fp[C.FP_ROLL_DELTA] = mg.roll_delta
    ip[C.IP_ROLL_DTE] = calendar_days_to_steps(mg.roll_dte, spy)
    ip[C.IP_ROLL_OUT] = max(1, calendar_days_to_steps(mg.roll_out_days, spy))
    ip[C.IP_ROLL_CREDIT_ONLY] = 1 if mg.roll_credit_only else 0
    ip[C.IP_MAX_ROLLS] = int(mg.max_rolls)
    ip[C.IP_CLOSE_IF_UNABLE] = 1 if mg.close_if_unable_to_roll else 0
    ip[C.IP_EARLY] = 1 if mg.early_assignment else 0
    fp[C.FP_EA_TV] = mg.early_assignment_time_value


def _high_iv(rules, path, spy, ip, fp):
    h = rules.high_iv
    if h is None:
        return
    hp = f"{path}.high_iv"
    if (h.atm_iv_above is None) == (h.iv_rank_above is None):
        raise ScenarioError(f"{hp}: needs exactly one of atm_iv_above or iv_rank_above")
    if h.atm_iv_above is not None:
        _check(f"{hp}.atm_iv_above", h.atm_iv_above, lambda v: v > 0.0, "> 0")
        ip[C.IP_HIV_MODE] = C.HIV_ATM
        fp[C.FP_HIV_THR] = h.atm_iv_above
    else:
        _check(f"{hp}.iv_rank_above", h.iv_rank_above, lambda v: 0.0 <= v < 1.0, "in [0, 1)")
        ip[C.IP_HIV_MODE] = C.HIV_RANK
        fp[C.FP_HIV_THR] = h.iv_rank_above
    if h.put_delta is not None:
        _check(f"{hp}.put_delta", h.put_delta, lambda v: 0.0 < v < 1.0, "in (0, 1)")
        fp[C.FP_HIV_PUT_DELTA] = h.put_delta
    if h.call_delta is not None:
        _check(f"{hp}.call_delta", h.call_delta, lambda v: 0.0 < v < 1.0, "in (0, 1)")
        fp[C.FP_HIV_CALL_DELTA] = h.call_delta
    if h.dte is not None:
        _check(f"{hp}.dte", h.dte, lambda v: v >= 1, ">= 1")
        ip[C.IP_HIV_DTE] = max(1, calendar_days_to_steps(h.dte, spy))
