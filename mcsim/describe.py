"""What a strategy and a scenario do, in words, generated from their rules (for report.html).

"Sells 30-delta puts 35 days out, takes profit at 50% of the credit, ..." is built from the same
frozen dataclasses the kernels are built from, so the words cannot drift from the rules. Rule
fields these sentences do not cover (added later) are listed as `key = value` when they differ
from their defaults, so nothing a strategy does is left unsaid.
"""

from __future__ import annotations

import dataclasses

from .kinds import kind_info
from .scenario import Manage, Scenario, StrategyRules

__all__ = ["describe_strategy", "describe_baseline", "describe_scenario"]

_MANAGE_DESCRIBED = {"profit_take", "stop_loss", "close_dte", "roll_when", "roll_delta", "roll_dte",
                     "roll_out_days", "roll_credit_only", "max_rolls", "close_if_unable_to_roll",
                     "early_assignment", "early_assignment_time_value"}
_RULE_DESCRIBED = {"delta", "otm_pct", "dte", "min_strike", "settle"}


def _pct(x: float) -> str:
    return f"{100 * x:.4g}%"


def _strike(rule) -> str:
    if rule.otm_pct is not None:
        return f"{_pct(rule.otm_pct)} out of the money" if rule.otm_pct > 0 else "at the money"
    return f"{100 * rule.delta:.4g}-delta"


def _option(rule, what: str) -> str:
    return f"{_strike(rule)} {what} about {rule.dte} days out (the nearest listed expiry)"


def _extra_fields(obj, described: set[str], prefix: str) -> list[str]:
    """`prefix.key = value` for fields outside `described` that differ from their default."""
    out = []
    if obj is None:
        return out
    for f in dataclasses.fields(obj):
        if f.name in described:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        v = getattr(obj, f.name)
        if v != default and v is not None:
            out.append(f"{prefix}.{f.name} = {v!r}")
    return out


def _entries(r: StrategyRules) -> str:
    every = r.entry_every_days
    return "every trading day" if every == 1 else f"every {every} trading days"


def _manage(m: Manage, european: bool = False) -> list[str]:
    out = []
    if m.profit_take > 0:
        out.append(f"takes profit once {_pct(m.profit_take)} of the credit is earned")
    if m.stop_loss > 0:
        out.append(f"stops out when the option costs {m.stop_loss:g}x the credit")
    if m.close_dte > 0:
        out.append(f"closes positions with {m.close_dte} days left")
    if m.roll_when != "off":
        when = "in the money" if m.roll_when == "itm" else f"at |delta| >= {m.roll_delta:g}"
        tail = "for a net credit only" if m.roll_credit_only else "credit or debit"
        roll = (f"rolls a short option {when} within {m.roll_dte} days of expiry out by about "
                f"{m.roll_out_days} days, {tail}, at most {m.max_rolls} times")
        if m.close_if_unable_to_roll:
            roll += " (closing it when the roll is refused)"
        out.append(roll)
    if m.early_assignment and not european:
        out.append(f"is assigned early when an in-the-money option's time value falls below "
                   f"${m.early_assignment_time_value:g} a share")
    return out


def _sizing(r: StrategyRules) -> str:
    s = r.sizing
    whole = "whole contracts" if s.contracts == "integer" else "fractional contracts"
    if r.kind == "bull_put_spread":
        return (f"each new spread risks {_pct(s.position_fraction)} of equity (width minus credit), "
                f"up to {s.max_open} open per underlying, {whole}")
    if r.kind == "covered_call":
        lots = " (lots of 100 with whole contracts)"
        if s.rebalance:
            return (f"the shares are rebalanced to {_pct(s.position_fraction)} of equity on every entry day "
                    f"when no call is open, premiums reinvested (the Cboe BXM index){lots}")
        return f"{_pct(s.position_fraction)} of equity goes into shares{lots}"
    return f"each put is secured by up to {_pct(s.position_fraction)} of equity in cash, {whole}"


def describe_strategy(r: StrategyRules, scenario: Scenario) -> str:
    """One paragraph saying what strategy `r` does, from its rules."""
    unds = ", ".join(r.underlyings)
    info = kind_info(r.kind)
    parts: list[str] = []
    if r.kind == "wheel":
        parts.append(f"The wheel on {unds}: sells cash-secured {_option(r.put, 'puts')}, {_entries(r)} when "
                     f"no put or shares are held")
        floor = {"cost_basis": ", never below the cost basis", "purchase_price": ", never below the purchase price",
                 "none": ""}[r.call.min_strike]
        parts.append(f"after an assignment sells covered {_option(r.call, 'calls')} on all shares{floor}")
    elif r.kind == "put_write":
        parts.append(f"Put writing on {unds} (the Cboe PUT rule): sells cash-secured {_option(r.put, 'puts')}, "
                     f"{_entries(r)} when none is open, settled in cash at expiry (no shares)")
    elif r.kind == "bull_put_spread":
        width = f"${r.width:g}" if r.width is not None else f"{_pct(r.width_pct)} of spot"
        parts.append(f"Bull put spreads on {unds}: sells {_option(r.put, 'puts')} and buys the put {width} lower, "
                     f"a new spread {_entries(r)}")
    elif r.kind == "covered_call":
        settle = r.call.settle or info.call_settle
        how = ("settled in cash at expiry, the shares kept (the Cboe BXM rule)" if settle == "cash"
               else "shares called away at the strike and bought back at the next entry")
        parts.append(f"Buy-write on {unds}: buys shares, then sells covered {_option(r.call, 'calls')} on them, "
                     f"{how}")
    elif r.kind == "buy_and_hold":
        return describe_baseline("buy_and_hold", scenario, unds)
    else:
        parts.append(f"{r.kind} on {unds}")
    if info.has_options:
        if r.high_iv is not None:
            h = r.high_iv
            trig = (f"ATM IV above {_pct(h.atm_iv_above)}" if h.atm_iv_above is not None
                    else f"IV rank above {_pct(h.iv_rank_above)}")
            what = ", ".join(x for x in (f"put delta {h.put_delta:g}" if h.put_delta else "",
                                         f"call delta {h.call_delta:g}" if h.call_delta else "",
                                         f"{h.dte} days out" if h.dte else "") if x)
            parts.append(f"when {trig}, new positions use {what or 'the same rule'}")
        # index-style (cash-settled) options are European: never assigned early
        european = info.cash_settle or (info.buys_shares and (r.call.settle or info.call_settle) == "cash")
        parts += _manage(r.manage, european)
        parts.append(_sizing(r))
        extra = (_extra_fields(r.manage, _MANAGE_DESCRIBED, "manage")
                 + _extra_fields(r.put, _RULE_DESCRIBED, "put") + _extra_fields(r.call, _RULE_DESCRIBED, "call"))
        if extra:
            parts.append("also " + ", ".join(extra))
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def describe_baseline(name: str, scenario: Scenario, unds: str | None = None) -> str:
    unds = unds or ", ".join(scenario.underlying_names)
    if name == "buy_and_hold":
        return (f"Buys {unds} in equal weights at the start and holds, dividends reinvested (the baseline every "
                f"strategy is compared with on the same paths).")
    if name == "cash":
        return f"Holds everything in cash earning the risk-free rate, {_pct(scenario.run.risk_free_rate)} a year."
    return name


def describe_scenario(sc: Scenario) -> list[str]:
    """Short lines about the market and the run: horizon, money, regimes, underlyings, shocks."""
    run = sc.run
    lines = [f"{run.horizon_years:g} years of {run.steps_per_year} trading days; ${run.initial_equity:,.0f} "
             f"initial equity per strategy; risk-free rate {_pct(run.risk_free_rate)}; ruin = equity below "
             f"{_pct(run.ruin_level)} of initial."]
    if run.monthly_withdrawal > 0:
        lines.append(f"Withdraws ${run.monthly_withdrawal:,.0f} at every month end from free cash "
                     f"(a shortfall when the cash is not there).")
    elif run.monthly_withdrawal_pct > 0:
        lines.append(f"Withdraws {_pct(run.monthly_withdrawal_pct)} of equity at every month end.")
    if sc.regimes.count > 1:
        mean_stay = []
        for i, name in enumerate(sc.regimes.names):
            stay = sc.regimes.transition[i][i]
            mean_stay.append(f"{name} (~{1 / max(1 - stay, 1e-12):.0f} days)")
        share = sc.regimes.stationary()
        lines.append("Regimes: " + ", ".join(mean_stay) + "; long-run shares "
                     + ", ".join(f"{n} {100 * p:.0f}%" for n, p in zip(sc.regimes.names, share)) + ".")
    for u in sc.underlyings:
        vol = "/".join(f"{v:g}" for v in u.volatility)
        lines.append(f"{u.name}: spot {u.spot:g}, volatility {vol} by regime"
                     + (" (stochastic)" if u.stochastic_vol is not None else "")
                     + (f", jumps {'/'.join(f'{j:g}' for j in u.jump_intensity)} a year" if any(u.jump_intensity) else "")
                     + f", dividend yield {_pct(u.dividend_yield)}, expiries every {u.expiry_every_days} days.")
    for s in sc.shocks:
        lines.append(f"Shock on day {s.day}: log return {s.log_return:+g}, ATM IV {s.iv_add:+g} "
                     f"({', '.join(s.underlyings)}).")
    c = sc.costs
    lines.append(f"Costs: ${c.commission_per_contract:g} per contract per leg, slippage ${c.slippage_per_share:g} "
                 f"a share + {_pct(c.slippage_pct)} of mid, assignment fee ${c.assignment_fee:g}.")
    return lines
