"""Metrics over every simulated path: income, return, risk, trading, withdrawals, paired comparison.

Input is the engine's `Result` (contract: `docs/semantics.md`, "Result tables"). Every number is
computed over all paths (never a sample). Conventions:

* Every mean carries its Monte Carlo standard error `se` (sample std / sqrt(n)).
* Quantiles p1, p5, p25, p50, p75, p95, p99 use numpy's default (linear) interpolation and carry a
  95% confidence interval from order statistics: ranks (l, u) chosen from the Binomial(n, p)
  distribution so that P(X_(l) <= q_p <= X_(u)) >= 0.95 (equal tails). A bound whose rank falls
  outside 1..n is `None` (too few paths for that quantile).
* Distributions over path-months (income) use full months only (a partial last month has fewer
  steps). Months of one path are correlated, so the standard error of their mean is clustered by
  path (std of per-path monthly means / sqrt(paths)), and the quantile intervals use the binomial
  ranks of the path count mapped onto the path-month sample: conservative, never too narrow.
  Quantiles over path-months are exact (numpy) when computed from the monthly rows; from a
  `Result` of `simulate` (which keeps only the first paths' rows) they come from the streamed
  fixed-bin histogram of every path-month (`mcsim/streaming.py`; |error| <= 2.0e-4 (|q| + scale),
  stated in the summary's conventions.income_quantiles).
* Fractions are decimals (0.25 = 25%); money is dollars; `max_drawdown_depth` = -max_drawdown,
  a positive fraction below the running peak.
* VaR/CVaR of the horizon return R = total_return over n paths, at level a (0.95, 0.99): with
  k = ceil(n (1 - a)), VaR = -R_(k) (the k-th worst return) and CVaR = -mean(R_(1..k)) (the mean
  of the k worst). Both are losses as positive fractions.
* Paired comparison (common random numbers): for strategies A, B run on the same paths, per-path
  differences d = x_A - x_B; mean(d) with se = std(d) / sqrt(n) and a normal 95% interval
  mean +- 1.96 se; the unpaired interval uses se = sqrt(var_A / n + var_B / n) for contrast.
* Per-regime breakdown: each path is assigned to its dominant regime (`dominant_regime`, the regime
  it spent most steps in, ties to the lower index); metrics are conditioned on that. Because a
  short-lived stressed regime is rarely dominant, the same metrics are also given by terciles of
  `stressed_share` (share of steps in the last regime), `per_regime.by_stressed_share`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from .kinds import kind_info
from .pathstore import strategy_groups
from .scenario import BASELINE_NAMES

__all__ = [
    "QUANTILES",
    "CONFIDENCE",
    "DRAWDOWN_THRESHOLDS",
    "VAR_LEVELS",
    "SummaryContext",
    "summarize",
    "summarize_tables",
    "strategy_metrics",
    "paired_comparison",
    "describe",
    "quantile_ci_ranks",
    "var_cvar",
    "summary_table",
    "format_table",
    "paired_table",
    "format_paired_table",
    "table_legend",
    "trade_warnings",
    "to_jsonable",
]

QUANTILES = (0.01, 0.05, 0.25, 0.50, 0.75, 0.95, 0.99)
CONFIDENCE = 0.95
Z95 = 1.959963984540054
DRAWDOWN_THRESHOLDS = (0.10, 0.20, 0.30, 0.50)
VAR_LEVELS = (0.95, 0.99)
from .kinds import BASELINE_NAMES as BASELINES  # noqa: E402  (the one registry)


def _qkey(p: float) -> str:
    return f"p{int(round(p * 100))}"


# --------------------------------------------------------------------------------------------
# building blocks


_LGAMMA1 = np.zeros(0)          # math.lgamma(k + 1.0) for k = 0, 1, ... (filled where _LGAMMA1_SET)
_LGAMMA1_SET = np.zeros(0, dtype=bool)


def _lgamma1(k0: int, k1: int) -> np.ndarray:
    """math.lgamma(k + 1.0) for k = k0..k1 (the exact values of math.lgamma, each computed once
    per process and kept: windows of nearby path counts overlap)."""
    global _LGAMMA1, _LGAMMA1_SET
    if k1 >= len(_LGAMMA1):
        size = max(k1 + 1, 2 * len(_LGAMMA1))
        _LGAMMA1 = np.concatenate([_LGAMMA1, np.zeros(size - len(_LGAMMA1))])
        _LGAMMA1_SET = np.concatenate([_LGAMMA1_SET, np.zeros(size - len(_LGAMMA1_SET), dtype=bool)])
    missing = k0 + np.flatnonzero(~_LGAMMA1_SET[k0:k1 + 1])
    if len(missing):
        lg = math.lgamma
        _LGAMMA1[missing] = [lg(float(k) + 1.0) for k in missing.tolist()]
        _LGAMMA1_SET[missing] = True
    return _LGAMMA1[k0:k1 + 1]


def _binom_cdf_window(n: int, p: float) -> tuple[int, np.ndarray]:
    """Binomial(n, p) CDF on a window of k covering all but ~1e-30 of the mass: (k0, F[k0..k1])."""
    sd = math.sqrt(n * p * (1.0 - p))
    k0 = max(0, int(math.floor(n * p - 14.0 * sd - 10)))
    k1 = min(n, int(math.ceil(n * p + 14.0 * sd + 10)))
    ks = np.arange(k0, k1 + 1)
    logpmf = (
        math.lgamma(n + 1)
        - _lgamma1(k0, k1)
        - _lgamma1(n - k1, n - k0)[::-1]
        + ks * math.log(p)
        + (n - ks) * math.log1p(-p)
    )
    return k0, np.cumsum(np.exp(logpmf))


@functools.lru_cache(maxsize=4096)
def quantile_ci_ranks(n: int, p: float, confidence: float = CONFIDENCE) -> tuple[int | None, int | None]:
    """1-based order-statistic ranks (l, u) of an equal-tailed CI for the p-quantile of n draws.

    l is the largest rank with F(l - 1) <= a/2 and u the smallest with F(u - 1) >= 1 - a/2, where
    F is the Binomial(n, p) CDF and a = 1 - confidence; then P(X_(l) <= q_p <= X_(u)) >= confidence.
    A rank outside 1..n is returned as None.
    """
    if n < 1 or not 0.0 < p < 1.0:
        return None, None
    a = 1.0 - confidence
    k0, cdf = _binom_cdf_window(int(n), float(p))
    # F(j) for j = k0 + i is cdf[i]; below the window F ~ 0, above it F ~ 1.
    below = np.nonzero(cdf <= a / 2.0)[0]
    if len(below):
        lo = k0 + int(below[-1]) + 1  # F(lo - 1) <= a/2
    else:
        lo = k0  # F(k0 - 1) ~ 0 <= a/2
    above = np.nonzero(cdf >= 1.0 - a / 2.0)[0]
    hi = (k0 + int(above[0]) + 1) if len(above) else n + 1
    return (lo if 1 <= lo <= n else None), (hi if 1 <= hi <= n else None)


def _finite(x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return a[np.isfinite(a)]


def _num(v) -> float | None:
    """A float for JSON, None for nan/inf/None."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _mean_se(x) -> tuple[float, float]:
    a = _finite(x)
    n = len(a)
    if n == 0:
        return math.nan, math.nan
    m = float(a.mean())
    se = float(a.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return m, se


def _prob(mask) -> dict:
    """P(event) over paths, with its standard error sqrt(p (1 - p) / n)."""
    b = np.asarray(mask, dtype=bool)
    n = len(b)
    if n == 0:
        return {"p": None, "se": None}
    p = float(b.mean())
    return {"p": p, "se": _num(math.sqrt(p * (1.0 - p) / n)) if n > 1 else None}


def _sorted_quantile(srt: np.ndarray, p: float) -> float:
    """numpy's default (linear) quantile of an ascending array: interpolate at h = (n - 1) p."""
    n = len(srt)
    h = (n - 1) * p
    lo = int(math.floor(h))
    hi = min(lo + 1, n - 1)
    t = h - lo
    a, b = float(srt[lo]), float(srt[hi])
    return a + (b - a) * t if t < 0.5 else b - (b - a) * (1.0 - t)


def describe(x, *, cluster_means=None, ci_n: int | None = None) -> dict:
    """Mean (se), std, quantiles with order-statistic CIs of the finite values of `x`.

    `cluster_means` (per-path means of `x`, for path-month samples) gives the clustered se;
    `ci_n` (the path count) the effective n of the quantile intervals.
    """
    a = _finite(x)
    n = len(a)
    out: dict[str, Any] = {"n": int(n)}
    if n == 0:
        out.update(mean=None, se=None, std=None, quantiles={_qkey(p): None for p in QUANTILES},
                   quantile_ci={_qkey(p): [None, None] for p in QUANTILES})
        return out
    if cluster_means is not None:
        cm = _finite(cluster_means)
        mean = float(a.mean())
        se = float(cm.std(ddof=1) / math.sqrt(len(cm))) if len(cm) > 1 else math.nan
    else:
        mean, se = _mean_se(a)
    out["mean"] = _num(mean)
    out["se"] = _num(se)
    out["std"] = _num(a.std(ddof=1)) if n > 1 else None
    srt = np.sort(a)
    out["quantiles"] = {_qkey(p): _num(_sorted_quantile(srt, p)) for p in QUANTILES}
    m = n if ci_n is None else int(ci_n)
    cis = {}
    for p in QUANTILES:
        lo, hi = quantile_ci_ranks(m, p)
        if ci_n is None:
            cis[_qkey(p)] = [_num(srt[lo - 1]) if lo else None, _num(srt[hi - 1]) if hi else None]
        else:
            # ranks of the path count mapped onto the path-month sample (conservative)
            cis[_qkey(p)] = [None if lo is None else _num(_sorted_quantile(srt, (lo - 1) / max(m - 1, 1))),
                             None if hi is None else _num(_sorted_quantile(srt, (hi - 1) / max(m - 1, 1)))]
    out["quantile_ci"] = cis
    return out


def var_cvar(total_return, level: float) -> dict:
    """Historical VaR/CVaR of the horizon return at `level` (losses as positive fractions).

    k = ceil(n (1 - level)); VaR = -R_(k), CVaR = -mean(R_(1..k)). `var_ci` is the order-statistic
    interval of the (1 - level)-quantile, negated; `cvar_se` the asymptotic standard error
    std((-R - VaR)^+) / ((1 - level) sqrt(n)).
    """
    r = np.sort(_finite(total_return))
    n = len(r)
    if n == 0:
        return {"level": level, "var": None, "var_ci": [None, None], "cvar": None, "cvar_se": None, "k": 0}
    k = max(1, int(math.ceil(n * (1.0 - level) - 1e-9)))
    var = -float(r[k - 1])
    cvar = -float(r[:k].mean())
    lo, hi = quantile_ci_ranks(n, 1.0 - level)
    # The quantile's CI [r_(lo), r_(hi)] negates into [-r_(hi), -r_(lo)].
    ci = [None if hi is None else _num(-r[hi - 1]), None if lo is None else _num(-r[lo - 1])]
    excess = np.maximum(-r - var, 0.0)
    cvar_se = float(excess.std(ddof=1) / ((1.0 - level) * math.sqrt(n))) if n > 1 else math.nan
    return {"level": level, "k": k, "var": _num(var), "var_ci": ci, "cvar": _num(cvar), "cvar_se": _num(cvar_se)}


def _ratio(num, den) -> dict:
    """Pooled rate sum(num) / sum(den) over paths with the ratio estimator's standard error."""
    y = np.asarray(num, dtype=np.float64)
    x = np.asarray(den, dtype=np.float64)
    n = len(x)
    sx = float(x.sum())
    if n == 0 or sx <= 0:
        return {"rate": None, "se": None}
    r = float(y.sum()) / sx
    if n > 1:
        resid = y - r * x
        se = math.sqrt(float((resid**2).sum()) / (n * (n - 1))) / (sx / n)
    else:
        se = math.nan
    return {"rate": _num(r), "se": _num(se)}


def _pooled_mean(per_path_avg, counts) -> dict:
    """Mean per trade ($) pooled over paths from per-path averages and trade counts, with se."""
    r = _ratio(np.nan_to_num(np.asarray(per_path_avg, dtype=np.float64)) * counts, counts)
    return {"mean": r["rate"], "se": r["se"]}


def _mean(x) -> dict:
    m, se = _mean_se(x)
    return {"mean": _num(m), "se": _num(se), "n": int(len(_finite(x)))}


# --------------------------------------------------------------------------------------------
# context


@dataclass(frozen=True)
class SummaryContext:
    """What metrics need besides the tables: money, horizon, ruin level, regimes, order."""

    initial_equity: float
    years: float
    ruin_level: float
    risk_free_rate: float
    steps_per_month: int
    strategies: tuple[str, ...]
    regime_names: tuple[str, ...] = ()

    @classmethod
    def from_result(cls, result) -> "SummaryContext":
        sc = result.scenario
        run = sc.run
        n_steps = int(getattr(result, "n_steps", None) or run.n_steps)
        names = getattr(result, "strategies", None)
        if not names:
            names = tuple(pd.unique(result.per_path["strategy"]))
        return cls(
            initial_equity=float(run.initial_equity),
            years=n_steps / float(run.steps_per_year),
            ruin_level=float(run.ruin_level),
            risk_free_rate=float(run.risk_free_rate),
            steps_per_month=int(run.month_steps),
            strategies=tuple(names),
            regime_names=tuple(sc.regimes.names),
        )


# --------------------------------------------------------------------------------------------
# per strategy


def _full_months(monthly: pd.DataFrame) -> pd.DataFrame:
    if "partial" in monthly.columns and monthly["partial"].any():
        return monthly[~monthly["partial"].to_numpy(dtype=bool)]
    return monthly


def _path_positions(paths: np.ndarray, pp: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Row of `pp` (its order) of each monthly path index, and the number of rows."""
    ids = pp["path"].to_numpy()
    n = len(ids)
    if n and np.array_equal(ids, np.arange(ids[0], ids[0] + n)):
        return paths - ids[0], n
    order = np.argsort(ids, kind="stable")
    return order[np.searchsorted(ids[order], paths)], n


def _path_means(pos: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Mean of `values` per path row (nan for a path without rows)."""
    s = np.bincount(pos, weights=values, minlength=n)
    c = np.bincount(pos, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return s / c


def _month_start_equity(mo: pd.DataFrame, initial: float) -> np.ndarray:
    """Equity at the start of each monthly row (in the rows' order): the previous month's end
    equity (after its withdrawal), `initial` in month 0."""
    eq = mo["equity"].to_numpy(dtype=np.float64)
    month = mo["month"].to_numpy()
    path = mo["path"].to_numpy()
    order = np.lexsort((month, path))  # path-major, months ascending (already so from the engine)
    e, m, p = eq[order], month[order], path[order]
    prev = np.empty(len(e))
    if len(e):
        prev[0] = initial
        prev[1:] = e[:-1]
        follows = np.r_[False, (m[1:] == m[:-1] + 1) & (p[1:] == p[:-1])]
        prev[~follows] = np.where(m[~follows] == 0, initial, np.nan)  # a missing month: unknown start
    start = np.empty(len(e))
    start[order] = prev
    return start


def _path_nanmeans(pos: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Mean of the finite `values` per path row (nan for a path without any)."""
    ok = np.isfinite(values)
    return _path_means(pos[ok], values[ok], n)


def _income_series(monthly: pd.DataFrame) -> tuple[str, ...]:
    """The monthly columns described in the income block: net_premium too when the result has it."""
    return tuple(c for c in ("premium", "net_premium", "realised_pnl", "mtm_return") if c in monthly.columns)


def _income_block(pp: pd.DataFrame, mo: pd.DataFrame, ctx: SummaryContext, stats=None) -> dict:
    if stats is not None:
        return _income_block_streamed(pp, stats)
    full = _full_months(mo)
    pos, n = _path_positions(full["path"].to_numpy(), pp)
    out: dict[str, Any] = {"full_months_per_path": int(len(full) // max(len(pp), 1))}
    for col in _income_series(full):
        v = full[col].to_numpy(dtype=np.float64)
        cm = _path_means(pos, v, n)
        d = describe(v, cluster_means=cm, ci_n=len(pp))
        neg = _path_means(pos, (v < 0).astype(np.float64), n)
        d["share_negative"] = _num((v < 0).mean()) if len(v) else None
        d["share_negative_se"] = _num(_finite(neg).std(ddof=1) / math.sqrt(len(_finite(neg)))) if len(_finite(neg)) > 1 else None
        out[col] = d
    # yields on the equity at work: per path, the mean over full months of income / month-start
    # equity, times 12 (not total / initial equity, which overstates once equity has fallen)
    start = _month_start_equity(mo, ctx.initial_equity)
    if len(full) != len(mo):
        start = start[~mo["partial"].to_numpy(dtype=bool)]
    for col, key in (("premium", "annual_premium_yield"), ("net_premium", "annual_net_premium_yield"),
                     ("realised_pnl", "annual_realised_yield")):
        if col not in full:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(start > 0.0, full[col].to_numpy(dtype=np.float64) / start, np.nan)
        out[key] = _mean(12.0 * _path_nanmeans(pos, ratio, n))
    out["annual_mtm_return"] = _mean(pp["cagr"].to_numpy(dtype=np.float64))
    return out


def describe_histogram(n: int, mean: float, std: float, hist, cluster_means, ci_n: int) -> dict:
    """`describe` of a path-month sample known by its moments and histogram (mcsim/streaming.py):
    mean, clustered se and std as `describe` (up to rounding), quantiles and their intervals read
    from the histogram (error bound: `streaming.bin_error_text`)."""
    out: dict[str, Any] = {"n": int(n)}
    if n == 0:
        out.update(mean=None, se=None, std=None, quantiles={_qkey(p): None for p in QUANTILES},
                   quantile_ci={_qkey(p): [None, None] for p in QUANTILES})
        return out
    cm = _finite(cluster_means)
    out["mean"] = _num(mean)
    out["se"] = _num(float(cm.std(ddof=1) / math.sqrt(len(cm))) if len(cm) > 1 else math.nan)
    out["std"] = _num(std) if n > 1 else None
    out["quantiles"] = {_qkey(p): _num(hist.quantile(p)) for p in QUANTILES}
    m = int(ci_n)
    cis = {}
    for p in QUANTILES:
        lo, hi = quantile_ci_ranks(m, p)
        cis[_qkey(p)] = [None if lo is None else _num(hist.quantile((lo - 1) / max(m - 1, 1))),
                         None if hi is None else _num(hist.quantile((hi - 1) / max(m - 1, 1)))]
    out["quantile_ci"] = cis
    out["out_of_range"] = hist.out_of_range
    return out


def _income_block_streamed(pp: pd.DataFrame, st) -> dict:
    """`_income_block` from a strategy's streamed path-month reductions (`streaming.MonthlyStats`)."""
    out: dict[str, Any] = {"full_months_per_path": int(st.n_full)}
    for col in (c for c in ("premium", "net_premium", "realised_pnl", "mtm_return") if c in st.sums):
        n, mean, std = st.moments(col)
        d = describe_histogram(n, mean, std, st.hist[col], st.cluster_means(col), len(pp))
        total = st.n_paths * st.n_full
        d["share_negative"] = _num(float(st.negative[col].sum()) / total) if total else None
        neg = _finite(st.negative_shares(col))
        d["share_negative_se"] = _num(neg.std(ddof=1) / math.sqrt(len(neg))) if len(neg) > 1 else None
        out[col] = d
    for key, v in st.yields.items():
        out[key] = _mean(v)
    out["annual_mtm_return"] = _mean(pp["cagr"].to_numpy(dtype=np.float64))
    return out


def _trading_block(pp: pd.DataFrame, ctx: SummaryContext) -> dict:
    g = lambda c: pp[c].to_numpy(dtype=np.float64)  # noqa: E731
    sold = g("options_sold")
    put_like = g("puts_sold") + g("spreads_sold")
    won, lost = g("trades_won"), g("trades_lost")
    out: dict[str, Any] = {
        "options_sold_per_year": _mean(sold / ctx.years),
        "assignment_rate": _ratio(g("assignments"), put_like),
        "called_away_rate": _ratio(g("called_away"), g("calls_sold")),
        "early_assignment_rate": _ratio(g("early_assignments"), sold),
        "roll_rate": _ratio(g("rolls"), sold),
        "profit_take_rate": _ratio(g("profit_takes"), sold),
        "stop_loss_rate": _ratio(g("stop_losses"), sold),
        "close_rate": _ratio(g("closes"), sold),
        "expired_worthless_rate": _ratio(g("expired_worthless"), sold),
        "win_rate": _ratio(won, won + lost),
        "avg_win": _pooled_mean(g("avg_win"), won),
        "avg_loss": _pooled_mean(g("avg_loss"), lost),
        "days_in_shares": _mean(g("days_in_shares")),
        "capital_used": _mean(g("capital_used")),
    }
    for c in ("options_sold", "puts_sold", "calls_sold", "spreads_sold", "assignments", "called_away",
              "early_assignments", "expired_worthless", "rolls", "profit_takes", "stop_losses", "closes",
              "close_dte_closes", "max_rolls_closes", "unable_to_roll_closes"):
        if c in pp:
            out[f"{c}_per_path"] = _mean(g(c))
    return out


def _withdrawal_block(pp: pd.DataFrame, ctx: SummaryContext) -> dict:
    short = pp["shortfalls"].to_numpy(dtype=np.float64)
    first = pp["first_shortfall_month"].to_numpy(dtype=np.float64)
    first = first[short > 0]
    years = np.floor(first / 12.0).astype(np.int64) if len(first) else np.zeros(0, np.int64)
    by_year = {str(int(y) + 1): int(c) for y, c in zip(*np.unique(years, return_counts=True))}
    return {
        "withdrawn": describe(pp["withdrawn"].to_numpy(dtype=np.float64)),
        "p_any_shortfall": _prob(short > 0),
        "shortfalls_per_path": _mean(short),
        "first_shortfall_month": describe(first),
        "first_shortfall_by_year": by_year,
    }


def _conditional(m: np.ndarray, prem, real, depth, cagr, ruined) -> dict:
    """Income and drawdown of the paths selected by mask `m` (keys always present)."""
    n = int(m.sum())
    d = describe(depth[m])
    c = describe(cagr[m])
    return {
        "n_paths": n,
        "share_of_paths": _num(m.mean()) if len(m) else None,
        "monthly_premium": _mean(prem[m]),
        "monthly_realised_pnl": _mean(real[m]),
        "cagr": {"mean": c.get("mean"), "se": c.get("se"), "p50": c["quantiles"]["p50"]},
        "max_drawdown_depth": {"mean": d.get("mean"), "se": d.get("se"), "p50": d["quantiles"]["p50"],
                               "p95": d["quantiles"]["p95"]},
        "p_max_drawdown_above_20pct": _prob(depth[m] > 0.20) if n else {"p": None, "se": None},
        "p_ruin": _prob(ruined[m]) if n else {"p": None, "se": None},
    }


def _regime_block(pp: pd.DataFrame, mo: pd.DataFrame, ctx: SummaryContext, stats=None) -> dict:
    """Conditioned on each path's dominant regime; beside it, on terciles of stressed_share."""
    regimes = pp["dominant_regime"].to_numpy()
    if stats is not None:
        means = (stats.cluster_means("premium"), stats.cluster_means("realised_pnl"))
    else:
        full = _full_months(mo)
        pos, n_rows = _path_positions(full["path"].to_numpy(), pp)
        means = (_path_means(pos, full["premium"].to_numpy(dtype=np.float64), n_rows),
                 _path_means(pos, full["realised_pnl"].to_numpy(dtype=np.float64), n_rows))
    cols = (
        *means,
        -pp["max_drawdown"].to_numpy(dtype=np.float64),
        pp["cagr"].to_numpy(dtype=np.float64),
        pp["ruined"].to_numpy(dtype=bool),
    )
    names = ctx.regime_names or tuple(str(r) for r in sorted(set(regimes.tolist())))
    out = {name: {"regime": k, **_conditional(regimes == k, *cols)} for k, name in enumerate(names)}
    share = pp["stressed_share"].to_numpy(dtype=np.float64)
    e1, e2 = (np.quantile(share, [1 / 3, 2 / 3]) if len(share) else (math.nan, math.nan))
    terciles = {
        "low": {"stressed_share": [0.0, _num(e1)], **_conditional(share <= e1, *cols)},
        "mid": {"stressed_share": [_num(e1), _num(e2)], **_conditional((share > e1) & (share <= e2), *cols)},
        "high": {"stressed_share": [_num(e2), 1.0], **_conditional(share > e2, *cols)},
    }
    return {"conditioned_on": "dominant_regime", "stressed_regime": names[-1] if names else None,
            "stressed_share": _mean(share), "regimes": out,
            "by_stressed_share": {"bins": "terciles of stressed_share over paths (low <= e1 < mid <= e2 < high)",
                                  **terciles},
            "n_paths": int(len(pp))}


def strategy_metrics(pp: pd.DataFrame, mo: pd.DataFrame, ctx: SummaryContext, *, regimes: bool = True,
                     stats=None) -> dict:
    """Every metric of one strategy from its per_path rows `pp` and monthly rows `mo`.

    `stats` (a `streaming.MonthlyStats` of the same paths, in `pp`'s row order: what `simulate`
    gives in `Result.monthly_stats`) replaces `mo` for the path-month metrics: `mo` may then hold
    only some paths' rows, or none."""
    f = lambda c: pp[c].to_numpy(dtype=np.float64)  # noqa: E731
    depth = -f("max_drawdown")
    tr = f("total_return")
    out: dict[str, Any] = {
        "n_paths": int(len(pp)),
        "income": _income_block(pp, mo, ctx, stats),
        "final_equity": describe(f("final_equity")),
        "total_return": describe(tr),
        "cagr": describe(f("cagr")),
        "ann_vol": describe(f("ann_vol")),
        "sharpe": describe(f("sharpe")),
        "sortino": describe(f("sortino")),
        "var": {f"{int(round(a * 100))}": var_cvar(tr, a) for a in VAR_LEVELS},
        "max_drawdown_depth": describe(depth),
        "p_max_drawdown_above": {f"{int(round(t * 100))}pct": _prob(depth > t) for t in DRAWDOWN_THRESHOLDS},
        "max_drawdown_days": describe(f("max_drawdown_days")),
        "min_equity": describe(f("min_equity")),
        "ruin": {"ruin_level": ctx.ruin_level, **_prob(pp["ruined"].to_numpy(dtype=bool))},
        "trading": _trading_block(pp, ctx),
        "withdrawals": _withdrawal_block(pp, ctx),
    }
    if regimes and len(ctx.regime_names) > 1 and "dominant_regime" in pp.columns:
        out["per_regime"] = _regime_block(pp, mo, ctx, stats)
    return out


# --------------------------------------------------------------------------------------------
# paired comparison


def _diff_stats(xa: np.ndarray, xb: np.ndarray) -> dict:
    ok = np.isfinite(xa) & np.isfinite(xb)
    a, b = xa[ok], xb[ok]
    n = len(a)
    d = a - b
    if n < 2:
        m = float(d.mean()) if n else math.nan
        return {"n": int(n), "mean_diff": _num(m), "se": None, "ci95": [None, None],
                "unpaired_se": None, "unpaired_ci95": [None, None]}
    m = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n))
    use = math.sqrt(float(a.var(ddof=1)) / n + float(b.var(ddof=1)) / n)
    return {
        "n": int(n),
        "mean_diff": _num(m),
        "se": _num(se),
        "ci95": [_num(m - Z95 * se), _num(m + Z95 * se)],
        "unpaired_se": _num(use),
        "unpaired_ci95": [_num(m - Z95 * use), _num(m + Z95 * use)],
    }


_PAIRED_COLUMNS = ["path", "final_equity", "cagr", "max_drawdown"]


def _aligned(per_path: pd.DataFrame, name: str) -> pd.DataFrame:
    """The columns the paired comparison reads of strategy `name`'s rows, indexed by path."""
    return _by_path(per_path.loc[per_path["strategy"] == name, _PAIRED_COLUMNS])


def _by_path(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows[_PAIRED_COLUMNS].set_index("path")
    return rows if rows.index.is_monotonic_increasing else rows.sort_index(kind="stable")


def paired_comparison(per_path: pd.DataFrame, a: str, b: str, aligned: dict | None = None) -> dict:
    """A vs B on common paths: mean differences of CAGR and max drawdown depth, P(final_A > final_B).

    `max_drawdown_depth` differences are depth_A - depth_B: positive means A fell further.
    `aligned` (optional) caches each strategy's rows indexed by path, for many pairs.
    """
    if aligned is None:
        aligned = {}
    for s in (a, b):
        if s not in aligned:
            aligned[s] = _aligned(per_path, s)
    ta, tb = aligned[a], aligned[b]
    if not ta.index.equals(tb.index):
        common = ta.index.intersection(tb.index)
        if len(common) != len(ta) or len(common) != len(tb):
            raise ValueError(f"paired comparison {a} vs {b}: strategies were not run on the same paths")
        ta, tb = ta.loc[common], tb.loc[common]
    else:
        common = ta.index
    fa = ta["final_equity"].to_numpy(dtype=np.float64)
    fb = tb["final_equity"].to_numpy(dtype=np.float64)
    return {
        "a": a,
        "b": b,
        "n_paths": int(len(common)),
        "cagr": _diff_stats(ta["cagr"].to_numpy(dtype=np.float64), tb["cagr"].to_numpy(dtype=np.float64)),
        "max_drawdown_depth": _diff_stats(-ta["max_drawdown"].to_numpy(dtype=np.float64),
                                          -tb["max_drawdown"].to_numpy(dtype=np.float64)),
        "final_equity": _diff_stats(fa, fb),
        "p_a_final_greater": _prob(fa > fb),
        "p_tie": _num(float((fa == fb).mean())) if len(fa) else None,
    }


# --------------------------------------------------------------------------------------------
# summary


MAX_ALL_PAIRS = 16  # up to this many strategies (baselines included) every pair is compared


def comparison_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """(a, b) pairs of the paired comparison: every pair of up to MAX_ALL_PAIRS strategies, above
    that each strategy against each baseline (so 1,000 strategies give 2,000 pairs, not 500,000)."""
    names = list(names)
    if len(names) <= MAX_ALL_PAIRS:
        return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    base = [b for b in BASELINE_NAMES if b in names]
    pairs = [(a, b) for a in names if a not in base for b in base]
    return pairs + [(a, b) for i, a in enumerate(base) for b in base[i + 1:]]


def summarize_tables(per_path: pd.DataFrame, monthly: pd.DataFrame, ctx: SummaryContext,
                     *, pairs: bool = True, monthly_stats: dict | None = None) -> dict:
    """Metrics of every strategy in `ctx.strategies` and the paired comparison of every pair.

    `monthly_stats` (strategy -> `streaming.MonthlyStats`, `Result.monthly_stats`): path-month
    metrics from the streamed reductions (quantiles from their histogram) instead of `monthly`."""
    by_p = strategy_groups(per_path)
    by_m = strategy_groups(monthly)
    empty_m = monthly.iloc[0:0]
    names = [s for s in ctx.strategies if s in by_p]
    out: dict[str, Any] = {
        "strategies": names,
        "conventions": {
            "quantiles": [_qkey(p) for p in QUANTILES],
            "quantile_ci": "95% order-statistic interval (binomial ranks); path-month samples use the path count",
            "mean_se": "Monte Carlo standard error; path-month means clustered by path",
            "income_months": "full months only",
            "var": "k = ceil(n (1 - level)); VaR = -k-th worst total_return, CVaR = -mean of the k worst",
            "paired": (f"per-path differences a - b on common paths; ci95 = mean +- 1.96 se; every pair of up to "
                       f"{MAX_ALL_PAIRS} strategies, above that each strategy against the baselines"),
            "regimes": "conditioned on each path's dominant_regime",
            "initial_equity": ctx.initial_equity,
            "years": ctx.years,
        },
        "metrics": {s: strategy_metrics(by_p[s], by_m.get(s, empty_m), ctx,
                                        stats=(monthly_stats or {}).get(s)) for s in names},
    }
    if monthly_stats:
        from .streaming import bin_error_text

        out["conventions"]["income_quantiles"] = bin_error_text()
    if pairs:
        out["paired"] = _all_pairs(per_path, by_p, comparison_pairs(names))
    return to_jsonable(out)


def _all_pairs(per_path, by_p: dict, pairs: list) -> list[dict]:
    """`paired_comparison` of every pair; each strategy's aligned columns are built once and
    dropped after its last pair (so a stored table holds a few strategies' columns at a time)."""
    last = {}
    for i, (a, b) in enumerate(pairs):
        last[a] = last[b] = i
    cache: dict = {}
    out = []
    for i, (a, b) in enumerate(pairs):
        for s in (a, b):
            if s not in cache:
                cache[s] = _by_path(by_p[s])
        out.append(paired_comparison(per_path, a, b, cache))
        for s in (a, b):
            if last[s] == i:
                del cache[s]
    return out


NO_TRADE_SHARE = 0.5  # warn when an option strategy sells nothing on more than this share of paths


def _no_trade_cause(rules, scenario) -> str:
    """The likely reason an option strategy sells nothing: one contract does not fit its size."""
    cash = rules.sizing.position_fraction * scenario.run.initial_equity
    spots = {u.name: u.spot for u in scenario.underlyings if u.name in rules.underlyings}
    if rules.sizing.contracts == "integer" and spots:
        name, spot = min(spots.items(), key=lambda kv: kv[1])
        if rules.kind == "bull_put_spread":
            width = rules.width if rules.width is not None else rules.width_pct * spot
            need, what = width * 100.0, f"one {width:g}-wide spread on {name} risks up to"
        else:
            need, what = spot * 100.0, f"one contract on {name} (spot {spot:,.2f}) secures about"
        if need > cash:
            return (f"{what} ${need:,.0f} but sizing.position_fraction x initial equity is ${cash:,.0f}: "
                    f'use sizing.contracts = "fractional", a larger position_fraction or a cheaper underlying')
    return "no listed strike met its rule on the entry days, or the credit after costs was not positive"


def trade_warnings(result) -> list[dict]:
    """Option strategies that opened no position on most paths, each with the likely cause."""
    sc = result.scenario
    rules = {s.name: s for s in sc.strategies}
    out = []
    for name, g in strategy_groups(result.per_path).items():
        r = rules.get(str(name)) or rules.get(str(name).split(":", 1)[-1])
        if r is None or not kind_info(r.kind).has_options or len(g) == 0:
            continue
        share = float((g["options_sold"] == 0).mean())
        if share > NO_TRADE_SHARE:
            out.append({"strategy": str(name), "share_of_paths_without_a_sale": share,
                        "message": f"{name} sold no option on {100 * share:.0f}% of paths ({_no_trade_cause(r, sc)})"})
    return out


def summarize(result) -> dict:
    """JSON-serialisable metrics of a `Result` (every path, every strategy, every pair)."""
    if not all(hasattr(result, a) for a in ("per_path", "monthly", "scenario")):
        raise TypeError(f"summarize: result must be a mcsim.Result (from mcsim.simulate; got {type(result).__name__})")
    ctx = SummaryContext.from_result(result)
    out = summarize_tables(result.per_path, result.monthly, ctx,
                           monthly_stats=getattr(result, "monthly_stats", None))
    out["warnings"] = trade_warnings(result)
    out["run"] = to_jsonable({
        "seed": getattr(result, "seed", None),
        "n_paths": getattr(result, "n_paths", None),
        "n_steps": getattr(result, "n_steps", None),
        "steps_per_year": result.scenario.run.steps_per_year,
        "initial_equity": ctx.initial_equity,
        "ruin_level": ctx.ruin_level,
        "regimes": list(ctx.regime_names),
        "monthly_withdrawal": result.scenario.run.monthly_withdrawal,
        "monthly_withdrawal_pct": result.scenario.run.monthly_withdrawal_pct,
    })
    return out


def to_jsonable(obj):
    """Replace numpy scalars by Python ones and nan/inf by None, recursively."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _num(obj)
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    return obj


# --------------------------------------------------------------------------------------------
# compact tables


def _pair_lookup(summary: dict, a: str, b: str) -> dict | None:
    for p in summary.get("paired", []):
        if p["a"] == a and p["b"] == b:
            return p
    return None


def _p_beats(summary: dict, name: str, other: str = "buy_and_hold") -> float | None:
    if name == other:
        return None
    p = _pair_lookup(summary, name, other)
    if p is not None:
        return p["p_a_final_greater"]["p"]
    p = _pair_lookup(summary, other, name)
    if p is not None and p["p_a_final_greater"]["p"] is not None:
        return 1.0 - p["p_a_final_greater"]["p"] - (p["p_tie"] or 0.0)
    return None


def summary_table(summary: dict) -> pd.DataFrame:
    """One row per strategy: monthly income p50/p5 (realised P&L, $), premium p50 ($/month),
    CAGR p50, max drawdown p95 (depth), P(ruin), assignment rate (per put sold), P(final equity >
    buy-and-hold's)."""
    rows = []
    for s in summary["strategies"]:
        m = summary["metrics"][s]
        inc = m["income"]
        rows.append({
            "strategy": s,
            "premium_p50": inc["premium"]["quantiles"]["p50"],
            "net_premium_p50": inc["net_premium"]["quantiles"]["p50"] if "net_premium" in inc else None,
            "income_p50": inc["realised_pnl"]["quantiles"]["p50"],
            "income_p5": inc["realised_pnl"]["quantiles"]["p5"],
            "cagr_p50": m["cagr"]["quantiles"]["p50"],
            "max_dd_p95": m["max_drawdown_depth"]["quantiles"]["p95"],
            "p_ruin": m["ruin"]["p"],
            "assignment_rate": m["trading"]["assignment_rate"]["rate"],
            "p_beats_bh": _p_beats(summary, s),
        })
    return pd.DataFrame(rows)


def _missing(v) -> bool:
    return v is None or not np.isfinite(v)


def _fmt_money(v) -> str:
    return "-" if _missing(v) else f"{v:,.0f}"


def _fmt_pct(v, digits=1) -> str:
    return "-" if _missing(v) else f"{100 * v:.{digits}f}%"


def _render(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    rows = [list(r) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))]
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def _table_extras(summary: dict) -> list[tuple[str, str, Any]]:
    """Columns of the printed table that depend on the result: net premium when the summary has
    it, P(shortfall) when withdrawals are on. (header, after which header, value of a metrics block)."""
    from .tables import withdrawals_on

    out = []
    first = summary["metrics"][summary["strategies"][0]] if summary.get("strategies") else {}
    if "net_premium" in first.get("income", {}):
        out.append(("net p50/mo", "prem p50/mo", lambda m: _fmt_money(m["income"]["net_premium"]["quantiles"]["p50"])))
    if withdrawals_on(summary):
        out.append(("P(shortfall)", "P(ruin)", lambda m: _fmt_pct(m["withdrawals"]["p_any_shortfall"]["p"], 2)))
    return out


def format_table(summary: dict) -> str:
    """The compact per-strategy table as text (income = monthly realised P&L in dollars), with
    net premium and P(shortfall) columns when they apply (see `table_legend`)."""
    df = summary_table(summary)
    headers = ["strategy", "prem p50/mo", "income p50/mo", "income p5/mo", "CAGR p50", "maxDD p95",
               "P(ruin)", "assigned/put", "P(>B&H)"]
    rows = [[r.strategy, _fmt_money(r.premium_p50), _fmt_money(r.income_p50), _fmt_money(r.income_p5),
             _fmt_pct(r.cagr_p50), _fmt_pct(r.max_dd_p95), _fmt_pct(r.p_ruin, 2), _fmt_pct(r.assignment_rate),
             _fmt_pct(r.p_beats_bh)] for r in df.itertuples(index=False)]
    for header, after, value in _table_extras(summary):
        at = headers.index(after) + 1
        headers.insert(at, header)
        for row, s in zip(rows, df["strategy"]):
            row.insert(at, value(summary["metrics"][s]))
    return _render(headers, rows)


def table_legend(summary: dict) -> str:
    """One line under the printed table saying what its columns are."""
    extras = {h for h, _, _ in _table_extras(summary)}
    cash = summary.get("metrics", {}).get("cash", {}).get("income", {}).get("realised_pnl", {})
    cash_p50 = (cash.get("quantiles") or {}).get("p50")
    parts = ["prem = gross option premium sold", *(["net = premium minus buy-backs"] if "net p50/mo" in extras else []),
             "income = realised P&L incl. interest on cash and dividends"
             + (f" (cash alone earns {_fmt_money(cash_p50)})" if not _missing(cash_p50) else ""),
             "p50/p5 over path-months, $/month",
             "CAGR = annual mark-to-market return", "maxDD = max drawdown of equity + withdrawals",
             f"P(ruin) = equity ever below {100 * summary.get('run', {}).get('ruin_level', 0.5):g}% of initial",
             *(["P(shortfall) = a withdrawal ever not paid in full"] if "P(shortfall)" in extras else []),
             "assigned/put = assignments per put sold", "P(>B&H) = final equity above buy-and-hold's on the same path"]
    return "legend: " + "; ".join(parts)


def paired_table(summary: dict) -> pd.DataFrame:
    """One row per pair (a, b): mean CAGR and max-drawdown differences with paired and unpaired
    95% CIs, and P(final_a > final_b)."""
    rows = []
    for p in summary.get("paired", []):
        c, d = p["cagr"], p["max_drawdown_depth"]
        rows.append({
            "a": p["a"], "b": p["b"], "n_paths": p["n_paths"],
            "d_cagr": c["mean_diff"], "d_cagr_lo": c["ci95"][0], "d_cagr_hi": c["ci95"][1],
            "d_cagr_unpaired_lo": c["unpaired_ci95"][0], "d_cagr_unpaired_hi": c["unpaired_ci95"][1],
            "d_maxdd": d["mean_diff"], "d_maxdd_lo": d["ci95"][0], "d_maxdd_hi": d["ci95"][1],
            "d_maxdd_unpaired_lo": d["unpaired_ci95"][0], "d_maxdd_unpaired_hi": d["unpaired_ci95"][1],
            "p_a_final_greater": p["p_a_final_greater"]["p"],
        })
    return pd.DataFrame(rows)


def _fmt_ci(m, lo, hi) -> str:
    if _missing(m):
        return "-"
    if _missing(lo) or _missing(hi):
        return f"{100 * m:+.2f}%"
    return f"{100 * m:+.2f}% [{100 * lo:+.2f}, {100 * hi:+.2f}]"


def _fmt_range(lo, hi) -> str:
    return "-" if _missing(lo) or _missing(hi) else f"[{100 * lo:+.2f}, {100 * hi:+.2f}]"


def format_paired_table(summary: dict) -> str:
    """The paired comparison as text: a - b, paired 95% CI in brackets, unpaired CI beside it."""
    df = paired_table(summary)
    headers = ["a - b", "dCAGR [paired 95% CI]", "unpaired CI", "dMaxDD [paired 95% CI]", "unpaired CI", "P(a>b)"]
    rows = []
    for r in df.itertuples(index=False):
        rows.append([
            f"{r.a} - {r.b}",
            _fmt_ci(r.d_cagr, r.d_cagr_lo, r.d_cagr_hi),
            _fmt_range(r.d_cagr_unpaired_lo, r.d_cagr_unpaired_hi),
            _fmt_ci(r.d_maxdd, r.d_maxdd_lo, r.d_maxdd_hi),
            _fmt_range(r.d_maxdd_unpaired_lo, r.d_maxdd_unpaired_hi),
            _fmt_pct(r.p_a_final_greater),
        ])
    return _render(headers, rows)
