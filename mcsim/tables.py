"""Tidy tables of a summary (metrics.summarize) and what their columns mean, for people.

One catalogue, `METRICS`, says for each headline metric where it sits in the summary, its unit
and a one-line legend; `summary_frame` turns a summary into a tidy DataFrame (one row per
strategy and metric: value, standard error, 95% CI) that `Result.summary()`, the notebook view
and report.html all show, so the numbers on every surface are the same numbers as summary.json.
Metrics a summary does not hold (net premium before the accounting issue, withdrawals when none
are set) are left out, and columns added later to per_path or the summary (exit reasons, income
columns) are picked up by name (`event_columns`, `income_columns`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from .kinds import BASELINE_NAMES
from .pathstore import strategy_groups

__all__ = ["Metric", "METRICS", "summary_frame", "paired_frame", "event_columns", "event_label",
           "frequency_frame", "regime_frame", "income_columns", "withdrawals_on", "Z95"]

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Metric:
    """A headline metric: `path` into a strategy's summary block, how to read it, unit, legend."""

    name: str
    path: tuple[str, ...]
    stat: str          # "mean", "pNN" (a quantile), "p" (a probability), "rate", "var", "cvar"
    unit: str          # "$", "$/month", "fraction", "per year", "ratio"
    legend: str
    section: str       # where report.html shows it


def _q(name, path, q, unit, legend, section):
    return Metric(name, path, q, unit, legend, section)


METRICS: tuple[Metric, ...] = (
    Metric("final_equity_mean", ("final_equity",), "mean", "$", "mean equity at the horizon", "returns"),
    _q("final_equity_p50", ("final_equity",), "p50", "$", "median equity at the horizon", "returns"),
    _q("cagr_p50", ("cagr",), "p50", "fraction", "median annual mark-to-market return (CAGR) over paths", "returns"),
    Metric("cagr_mean", ("cagr",), "mean", "fraction", "mean CAGR over paths", "returns"),
    _q("cagr_p5", ("cagr",), "p5", "fraction", "5th percentile of CAGR: a bad path", "returns"),
    Metric("sharpe_mean", ("sharpe",), "mean", "ratio", "mean Sharpe ratio of monthly mark-to-market returns "
           "(annualised, excess over the risk-free rate)", "returns"),
    _q("premium_p50", ("income", "premium"), "p50", "$/month",
       "median gross option premium sold per month (rolls included), over path-months", "income"),
    Metric("premium_mean", ("income", "premium"), "mean", "$/month", "mean gross premium per month", "income"),
    _q("net_premium_p50", ("income", "net_premium"), "p50", "$/month",
       "median net premium per month: credits of sales minus debits paid to buy options back", "income"),
    Metric("net_premium_mean", ("income", "net_premium"), "mean", "$/month", "mean net premium per month", "income"),
    _q("income_p50", ("income", "realised_pnl"), "p50", "$/month",
       "median realised P&L per month: options when they end, shares when sold, plus interest on cash "
       "and dividends (at small position sizes mostly interest)", "income"),
    _q("income_p5", ("income", "realised_pnl"), "p5", "$/month", "5th percentile of monthly realised P&L", "income"),
    Metric("income_mean", ("income", "realised_pnl"), "mean", "$/month", "mean realised P&L per month", "income"),
    Metric("mtm_return_mean", ("income", "mtm_return"), "mean", "fraction",
           "mean monthly mark-to-market return (withdrawals added back): what income leaves out", "income"),
    Metric("annual_premium_yield", ("income", "annual_premium_yield"), "mean", "fraction",
           "premium per year on the equity at work (month-start equity)", "income"),
    Metric("annual_realised_yield", ("income", "annual_realised_yield"), "mean", "fraction",
           "realised P&L per year on month-start equity", "income"),
    Metric("annual_mtm_return", ("income", "annual_mtm_return"), "mean", "fraction",
           "mean CAGR: the mark-to-market return beside the income yields", "income"),
    _q("max_drawdown_p50", ("max_drawdown_depth",), "p50", "fraction",
       "median max drawdown: deepest fall below the running peak of equity plus withdrawals so far", "risk"),
    _q("max_drawdown_p95", ("max_drawdown_depth",), "p95", "fraction",
       "95th percentile of max drawdown (1 path in 20 falls further)", "risk"),
    Metric("p_drawdown_above_20pct", ("p_max_drawdown_above", "20pct"), "p", "fraction",
           "share of paths whose max drawdown exceeds 20%", "risk"),
    Metric("p_ruin", ("ruin",), "p", "fraction", "share of paths whose equity fell below run.ruin_level x initial "
           "equity at some close", "risk"),
    Metric("var_95", ("var", "95"), "var", "fraction", "95% value at risk of the horizon return (a loss)", "risk"),
    Metric("cvar_95", ("var", "95"), "cvar", "fraction", "95% CVaR: mean loss of the worst 5% of paths", "risk"),
    Metric("options_sold_per_year", ("trading", "options_sold_per_year"), "mean", "per year",
           "options sold per year (rolls included)", "trading"),
    Metric("assignment_rate", ("trading", "assignment_rate"), "rate", "fraction",
           "assignments per put (or spread) sold, pooled over paths", "trading"),
    Metric("win_rate", ("trading", "win_rate"), "rate", "fraction", "share of closed option trades with a "
           "positive P&L", "trading"),
    Metric("p_any_shortfall", ("withdrawals", "p_any_shortfall"), "p", "fraction",
           "share of paths on which some month-end withdrawal could not be paid in full", "withdrawals"),
    Metric("withdrawn_mean", ("withdrawals", "withdrawn"), "mean", "$", "mean total withdrawn over the horizon",
           "withdrawals"),
)


def _get(block: dict, path: tuple[str, ...]):
    for k in path:
        if not isinstance(block, dict) or k not in block:
            return None
        block = block[k]
    return block


def _f(v) -> float:
    return np.nan if v is None else float(v)


def _read(d: dict, stat: str) -> tuple[float, float, float, float]:
    """(value, se, ci_low, ci_high) of one summary entry read as `stat`."""
    if stat == "mean":
        m, se = _f(d.get("mean")), _f(d.get("se"))
        return m, se, m - Z95 * se, m + Z95 * se
    if stat in ("p", "rate"):
        # normal interval, clipped to what a probability (a non-negative rate) can be
        m, se = _f(d.get(stat)), _f(d.get("se"))
        lo, hi = max(m - Z95 * se, 0.0), m + Z95 * se
        return m, se, lo, (min(hi, 1.0) if stat == "p" else hi)
    if stat == "var":
        lo, hi = (d.get("var_ci") or [None, None])
        return _f(d.get("var")), np.nan, _f(lo), _f(hi)
    if stat == "cvar":
        m, se = _f(d.get("cvar")), _f(d.get("cvar_se"))
        return m, se, m - Z95 * se, m + Z95 * se
    # a quantile pNN: order-statistic CI, no standard error
    q = (d.get("quantiles") or {}).get(stat)
    lo, hi = ((d.get("quantile_ci") or {}).get(stat) or [None, None])
    return _f(q), np.nan, _f(lo), _f(hi)


def withdrawals_on(summary: dict) -> bool:
    """Whether withdrawals are on: run.monthly_withdrawal or _pct set (a summary written before
    they were recorded there: whether any strategy withdrew money)."""
    run = summary.get("run", {})
    if "monthly_withdrawal" in run:
        return bool(run.get("monthly_withdrawal") or run.get("monthly_withdrawal_pct"))
    for m in summary.get("metrics", {}).values():
        w = (_get(m, ("withdrawals", "withdrawn")) or {}).get("mean")
        if w:
            return True
    return False


def _p_beats(summary: dict, a: str, b: str) -> dict | None:
    for p in summary.get("paired", []):
        if p["a"] == a and p["b"] == b:
            return {"p": p["p_a_final_greater"]["p"], "se": p["p_a_final_greater"]["se"]}
        if p["a"] == b and p["b"] == a and p["p_a_final_greater"]["p"] is not None:
            return {"p": 1.0 - p["p_a_final_greater"]["p"] - (p.get("p_tie") or 0.0), "se": p["p_a_final_greater"]["se"]}
    return None


def summary_frame(summary: dict, metrics: tuple[Metric, ...] = METRICS) -> pd.DataFrame:
    """Tidy table: one row per (strategy, metric) with value, se, ci_low, ci_high (95%), unit,
    section and legend. Quantiles carry order-statistic CIs and no se; means and probabilities
    mean +- 1.96 se. Withdrawal rows appear only when withdrawals are on; metrics the summary
    does not hold are left out. `p_beats_buy_and_hold` and `p_beats_cash`: P(final equity above
    the baseline's on the same path), from the paired comparison."""
    rows = []
    wd = withdrawals_on(summary)
    for s in summary["strategies"]:
        m = summary["metrics"][s]
        for met in metrics:
            if met.section == "withdrawals" and not wd:
                continue
            d = _get(m, met.path)
            if not isinstance(d, dict):
                continue
            v, se, lo, hi = _read(d, met.stat)
            rows.append({"strategy": s, "metric": met.name, "value": v, "se": se, "ci_low": lo, "ci_high": hi,
                         "unit": met.unit, "section": met.section, "legend": met.legend})
        for base in BASELINE_NAMES:
            pb = _p_beats(summary, s, base) if s != base else None
            if pb is not None and pb["p"] is not None:
                v, se, lo, hi = _read(pb, "p")
                rows.append({"strategy": s, "metric": f"p_beats_{base}", "value": v, "se": se, "ci_low": lo,
                             "ci_high": hi, "unit": "fraction", "section": "paired",
                             "legend": f"share of paths on which final equity ends above {base}'s on the same path"})
    cols = ["strategy", "metric", "value", "se", "ci_low", "ci_high", "unit", "section", "legend"]
    return pd.DataFrame(rows, columns=cols)


def paired_frame(summary: dict, against: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The paired comparison, one row per pair (a, b): mean differences of CAGR, max drawdown
    depth and final equity with paired 95% CIs, and P(final_a > final_b). `against` keeps the
    pairs with b (or a, flipped into b) in it."""
    rows = []
    for p in summary.get("paired", []):
        a, b, sign = p["a"], p["b"], 1.0
        if against is not None:
            if b in against:
                pass
            elif a in against:
                a, b, sign = b, a, -1.0
            else:
                continue
        row = {"a": a, "b": b, "n_paths": p["n_paths"]}
        for key, col in (("cagr", "d_cagr"), ("max_drawdown_depth", "d_max_drawdown"), ("final_equity", "d_final_equity")):
            st = p[key]
            m = _f(st["mean_diff"]) * sign
            lo, hi = (_f(x) * sign for x in st["ci95"])
            row[col] = m
            row[f"{col}_se"] = _f(st["se"])
            row[f"{col}_ci_low"], row[f"{col}_ci_high"] = (min(lo, hi), max(lo, hi))
        pa = _f(p["p_a_final_greater"]["p"])
        row["p_a_beats_b"] = pa if sign > 0 else 1.0 - pa - _f(p.get("p_tie") or 0.0)
        row["p_a_beats_b_se"] = _f(p["p_a_final_greater"]["se"])
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# exit reasons and income columns, by name (new columns are picked up without edits here)

# integer per_path columns that count something other than how positions ended
_NOT_EVENTS = {"path", "max_drawdown_days", "days_in_shares", "shortfalls", "first_shortfall_month",
               "dominant_regime"}
_EVENT_ORDER = ("expired_worthless", "profit_takes", "stop_losses", "closes", "close_dte_closes",
                "max_rolls_closes", "unable_to_roll_closes", "rolls", "assignments", "called_away",
                "early_assignments")
_EVENT_LABELS = {"expired_worthless": "expired worthless", "profit_takes": "profit take",
                 "stop_losses": "stop loss", "closes": "closed (close_dte, max rolls, unable to roll)",
                 "rolls": "rolled", "assignments": "assigned", "called_away": "called away",
                 "early_assignments": "assigned early (also in assigned / called away)",
                 # the split of `closes` (issue 11), when the result has it
                 "close_dte_closes": "closed at close_dte (in closed)", "max_rolls_closes": "closed at max rolls (in closed)",
                 "unable_to_roll_closes": "closed, unable to roll (in closed)"}


def event_columns(per_path: pd.DataFrame) -> list[str]:
    """The exit-reason count columns of per_path: every integer column that is not a sale count
    (`*_sold`), a trade tally (`trades_*`) or one of the non-event integers (path, days, regime,
    shortfalls); known reasons first in a fixed order, new ones after them by name."""
    cols = []
    for c in per_path.columns:
        if c in _NOT_EVENTS or c.endswith("_sold") or c.startswith("trades_"):
            continue
        if pd.api.types.is_integer_dtype(per_path.dtypes[c]):
            cols.append(c)
    known = [c for c in _EVENT_ORDER if c in cols]
    return known + sorted(c for c in cols if c not in known)


_SHORT_LABELS = {"closes": "closed", "early_assignments": "assigned early", "close_dte_closes": "- at close_dte",
                 "max_rolls_closes": "- at max rolls", "unable_to_roll_closes": "- unable to roll"}


def event_label(col: str, short: bool = False) -> str:
    """How a person reads an exit-reason column (a new column: its name with spaces)."""
    if short and col in _SHORT_LABELS:
        return _SHORT_LABELS[col]
    return _EVENT_LABELS.get(col, col.replace("_", " "))


def income_columns(monthly: pd.DataFrame) -> list[str]:
    """Money-per-month columns of monthly: premium, net_premium (when present), realised_pnl."""
    return [c for c in ("premium", "net_premium", "realised_pnl") if c in monthly.columns]


def frequency_frame(per_path: pd.DataFrame, strategies, years: float) -> pd.DataFrame:
    """One row per (option strategy, exit reason): events per path-year and per option sold."""
    rows = []
    events = event_columns(per_path)
    groups = strategy_groups(per_path)
    for s in strategies:
        if s in BASELINE_NAMES:
            continue
        g = groups[s] if s in groups else per_path.iloc[0:0]
        n = max(len(g), 1)
        sold = float(g["options_sold"].sum())
        for c in events:
            tot = float(g[c].sum())
            rows.append({"strategy": s, "reason": c, "label": event_label(c), "per_path_year": tot / n / years,
                         "per_option_sold": tot / sold if sold > 0 else np.nan, "total": tot})
    return pd.DataFrame(rows, columns=["strategy", "reason", "label", "per_path_year", "per_option_sold", "total"])


def regime_frame(summary: dict) -> pd.DataFrame:
    """One row per (strategy, grouping, group) of the per-regime breakdown: share of paths, CAGR
    mean and se, monthly premium and realised P&L means, max drawdown p50, P(DD > 20%), P(ruin)."""
    rows = []
    for s in summary["strategies"]:
        pr = summary["metrics"][s].get("per_regime")
        if not pr:
            continue
        for grouping, blocks in (("dominant regime", pr["regimes"]),
                                 ("stressed-share tercile", {k: v for k, v in pr["by_stressed_share"].items()
                                                             if isinstance(v, dict)})):
            for g, b in blocks.items():
                rows.append({
                    "strategy": s, "grouping": grouping, "group": g, "n_paths": b["n_paths"],
                    "share_of_paths": _f(b["share_of_paths"]),
                    "cagr_mean": _f(b["cagr"]["mean"]), "cagr_se": _f(b["cagr"]["se"]),
                    "monthly_premium": _f(b["monthly_premium"]["mean"]),
                    "monthly_realised_pnl": _f(b["monthly_realised_pnl"]["mean"]),
                    "max_drawdown_p50": _f(b["max_drawdown_depth"]["p50"]),
                    "p_drawdown_above_20pct": _f(b["p_max_drawdown_above_20pct"]["p"]),
                    "p_ruin": _f(b["p_ruin"]["p"]),
                })
    return pd.DataFrame(rows)


FORMATTERS: dict[str, Callable[[float], str]] = {
    "$": lambda v: "-" if not np.isfinite(v) else f"{v:,.0f}",
    "$/month": lambda v: "-" if not np.isfinite(v) else f"{v:,.0f}",
    "fraction": lambda v: "-" if not np.isfinite(v) else f"{100 * v:.2f}%",
    "per year": lambda v: "-" if not np.isfinite(v) else f"{v:.2f}",
    "ratio": lambda v: "-" if not np.isfinite(v) else f"{v:.3f}",
}


def fmt(v: float, unit: str) -> str:
    """`v` for people, by unit ("-" when missing; a value that rounds to -0 shown as 0)."""
    text = FORMATTERS.get(unit, lambda x: "-" if not np.isfinite(x) else f"{x:.4g}")(float(v))
    if text.startswith("-") and len(text) > 1 and not any(c in "123456789" for c in text):
        text = text[1:]
    return text
