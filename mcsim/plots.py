"""PNG plots of a `Result` (matplotlib, Agg backend, no pyplot state).

File names are stable (`PLOT_FILES`). Each `*_figure` function returns a matplotlib `Figure` whose
plotted series carry legend labels, so `series_labels(fig)` lists them (tests count them):

* `income_hist.png`: monthly income per strategy, one panel each: realised P&L (all strategies),
  premium and, when the result has it, net premium (option strategies), full months over all
  paths, dollars per month. Values outside the central 99% are not drawn: a labelled count at
  each edge says how many path-months lie beyond it (`overflow_counts(fig)` reads them back).
  A series with few distinct values (cash's interest, the same on every path) gets fewer bins,
  so it shows as a block, not a comb; a constant one as a single line.
* `equity_fan.png`: equity by month over all paths, p5-p95 band and median, one panel per option
  strategy beside buy-and-hold's band and median (4 series a panel).
* `max_drawdown_cdf.png`: CDF of each strategy's max drawdown depth (one line each).
* `trade_frequencies.png`: one panel per option strategy, a bar for every exit-reason count
  column of per_path (`tables.event_columns`: assignments, called_away, early_assignments,
  expired_worthless, rolls, profit_takes, stop_losses, closes and any added later), events per
  path-year, each labelled with its share of options sold.
* `final_equity.png`: distribution of final equity per strategy (cash as a line at its median),
  tails as labelled overflow counts.
* `per_regime.png`: CAGR, monthly realised P&L (mean with 95% CI) and P(max drawdown > 20%) of
  every strategy by dominant regime and by tercile of the time spent in the stressed regime
  (needs the summary; one regime: a panel saying so).
* `paired_vs_buy_and_hold.png`: per strategy, the distribution over paths of its CAGR minus
  buy-and-hold's on the same path (percentage points), with the mean, its paired 95% CI and
  P(strategy ends above buy-and-hold).
* `sweep_heatmap.png` (`mcsim sweep`): a metric over a one- or two-key grid, one panel per
  strategy, P(ruin) annotated.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Sequence


def _matplotlib_config_dir() -> None:
    """A read-only $HOME: give matplotlib a writable config dir instead of a warning on stderr."""
    if os.environ.get("MPLCONFIGDIR"):
        return
    home = Path(os.path.expanduser("~")) / ".config" / "matplotlib"
    try:
        home.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=home).close()
    except OSError:
        d = Path(tempfile.gettempdir()) / f"mcsim-matplotlib-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
        try:
            d.mkdir(exist_ok=True)
            os.environ["MPLCONFIGDIR"] = str(d)
        except OSError:
            pass


_matplotlib_config_dir()

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

__all__ = [
    "PLOT_FILES",
    "income_hist_figure",
    "equity_fan_figure",
    "drawdown_cdf_figure",
    "frequencies_figure",
    "final_equity_figure",
    "sweep_heatmap_figure",
    "per_regime_figure",
    "paired_figure",
    "figure",
    "figures",
    "write_plots",
    "series_labels",
    "overflow_counts",
]

PLOT_FILES = {
    "income": "income_hist.png",
    "fan": "equity_fan.png",
    "drawdown": "max_drawdown_cdf.png",
    "frequencies": "trade_frequencies.png",
    "final": "final_equity.png",
    "regimes": "per_regime.png",
    "paired": "paired_vs_buy_and_hold.png",
}
SWEEP_FILE = "sweep_heatmap.png"
from .kinds import BASELINE_NAMES as BASELINES  # noqa: E402  (the one registry)
from .pathstore import strategy_groups  # noqa: E402
DPI = 110


def series_labels(fig: Figure) -> list[str]:
    """Legend labels of every plotted series in `fig`, panel by panel."""
    out = []
    for ax in fig.axes:
        _, labels = ax.get_legend_handles_labels()
        out += labels
    return out


def _option_strategies(strategies: Sequence[str]) -> list[str]:
    return [s for s in strategies if s not in BASELINES]


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return (n + cols - 1) // cols, cols


def _full(monthly: pd.DataFrame) -> pd.DataFrame:
    if "partial" in monthly.columns and monthly["partial"].any():
        return monthly[~monthly["partial"].to_numpy(dtype=bool)]
    return monthly


def _bins(values: list[np.ndarray], n: int = 60) -> np.ndarray:
    """Bin edges over the central 99% of the pooled finite values; fewer bins for a series with
    few distinct values (at least 4 distinct values a bin, so a deterministic series is no comb)."""
    allv = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(1)
    if len(allv) == 0:
        allv = np.zeros(1)
    lo, hi = np.quantile(allv, [0.005, 0.995])
    if hi <= lo:
        lo, hi = lo - 0.5 * max(abs(lo), 1.0), hi + 0.5 * max(abs(hi), 1.0)
    inside = allv[(allv >= lo) & (allv <= hi)]
    distinct = len(np.unique(np.round(inside, 6))) if len(inside) <= 5_000_000 else n * 4
    if distinct < 4 * n:
        n = max(5, distinct // 4)
    return np.linspace(lo, hi, n + 1)


def overflow_counts(fig: Figure) -> dict[str, tuple[int, int]]:
    """{series label: (count below the axis, count above)} of every overflow label in `fig`."""
    out: dict[str, list[int]] = {}
    for ax in fig.axes:
        for t in ax.texts:
            gid = t.get_gid() or ""
            if gid.startswith("overflow-"):
                side, _, label = gid[len("overflow-"):].partition(":")
                n = int(t.get_text().split()[1 if side == "below" else 0].replace(",", ""))
                out.setdefault(label, [0, 0])[0 if side == "below" else 1] = n
    return {k: (v[0], v[1]) for k, v in out.items()}


def _hist(ax, values: np.ndarray, bins: np.ndarray, label: str, color: str, row: int = 0, **kw) -> None:
    """A histogram of the values inside [bins[0], bins[-1]]; those outside are counted in a label
    at each edge ("<- 123 below", "45 above ->"), not piled into the edge bins. A constant series
    is drawn as one line."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    lo, hi = float(bins[0]), float(bins[-1])
    below, above = int((v < lo).sum()), int((v > hi).sum())
    inside = v[(v >= lo) & (v <= hi)]
    distinct = np.unique(inside) if 0 < len(inside) <= 5_000_000 else None
    if len(inside) and float(inside.max() - inside.min()) <= 1e-9 * max(abs(float(inside[0])), 1.0):
        ax.axvline(float(inside[0]), color=color, lw=2.0,
                   label=f"{label}: {float(inside[0]):,.0f} on all {len(inside):,}")
    elif distinct is not None and len(distinct) <= 1000 and 10 * len(distinct) <= len(inside):
        # a few values repeated on every path (cash's interest: one value per month): a histogram
        # would be a comb of equal spikes; show the range they span and their median instead
        lo_v, hi_v = float(distinct[0]), float(distinct[-1])
        ax.axvspan(lo_v, hi_v, color=color, alpha=0.35,
                   label=f"{label}\nthe same on every path: {lo_v:,.0f} to {hi_v:,.0f}")
        ax.axvline(float(np.median(inside)), color=color, lw=1.5)
        ax.set_yticks([])  # no counts to read: the span is the distribution
    else:
        ax.hist(inside, bins=bins, color=color, label=label, **kw)
    y = 0.97 - 0.07 * row
    style = dict(transform=ax.transAxes, fontsize=7.5, color=color, va="top",
                 bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
    if below:
        ax.text(0.01, y, f"\u2190 {below:,} below", ha="left", gid=f"overflow-below:{label.split(' (')[0]}", **style)
    if above:
        ax.text(0.99, y, f"{above:,} above \u2192", ha="right", gid=f"overflow-above:{label.split(' (')[0]}", **style)


def _median(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    return float(np.median(v)) if len(v) else 0.0


def income_hist_figure(monthly: pd.DataFrame, strategies: Sequence[str]) -> Figure:
    """Monthly income histograms, one panel per strategy (dollars per month, central 99%; the
    path-months beyond it are counted at the edges)."""
    full = _full(monthly)
    groups = {k: g for k, g in full.groupby("strategy", sort=False, observed=True)}
    rows, cols = _grid(len(strategies))
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, s in zip(axes, strategies):
        g = groups.get(s, full.iloc[0:0])
        series = [("realised P&L", "realised_pnl", "tab:blue", dict(alpha=0.55))]
        if s not in BASELINES:
            series.append(("premium", "premium", "tab:orange", dict(histtype="step", lw=1.6)))
            if "net_premium" in g.columns:
                series.append(("net premium", "net_premium", "tab:green", dict(histtype="step", lw=1.2, ls="--")))
        vals = [g[c].to_numpy(dtype=np.float64) for _, c, _, _ in series]
        bins = _bins(vals)
        for row, ((name, _, color, kw), v) in enumerate(zip(series, vals)):
            _hist(ax, v, bins, f"{name} (median {_median(v):,.0f})", color, row, **kw)
        ax.axvline(0.0, color="0.4", lw=0.8)
        ax.set_title(s)
        ax.set_xlabel("$ per month (central 99%; counts beyond at the edges)")
        ax.set_ylabel("path-months")
        ax.legend(fontsize=8, loc="center right")
    for ax in axes[len(strategies):]:
        ax.set_visible(False)
    fig.suptitle("Monthly income over all paths and full months")
    return fig


def _equity_matrix(monthly: pd.DataFrame, strategy: str, initial_equity: float) -> np.ndarray:
    g = monthly[monthly["strategy"] == strategy]
    wide = g.pivot(index="path", columns="month", values="equity").sort_index(axis=1)
    m = wide.to_numpy(dtype=np.float64)
    return np.hstack([np.full((m.shape[0], 1), initial_equity), m])


def equity_fan_figure(monthly: pd.DataFrame, strategies: Sequence[str], initial_equity: float) -> Figure:
    """Equity fan (p5-p95 band, median) per option strategy beside buy-and-hold, by month."""
    opts = _option_strategies(strategies) or ["buy_and_hold"]
    rows, cols = _grid(len(opts))
    fig = Figure(figsize=(5.2 * cols, 3.8 * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    qs = (0.05, 0.5, 0.95)
    bh = None
    if "buy_and_hold" in strategies:
        bh = np.quantile(_equity_matrix(monthly, "buy_and_hold", initial_equity), qs, axis=0)
    for ax, s in zip(axes, opts):
        q = np.quantile(_equity_matrix(monthly, s, initial_equity), qs, axis=0)
        x = np.arange(q.shape[1])
        if bh is not None and s != "buy_and_hold":
            ax.fill_between(x, bh[0], bh[2], color="0.6", alpha=0.25, label="buy_and_hold p5-p95")
            ax.plot(x, bh[1], color="0.3", lw=1.4, ls="--", label="buy_and_hold median")
        ax.fill_between(x, q[0], q[2], color="tab:blue", alpha=0.3, label=f"{s} p5-p95")
        ax.plot(x, q[1], color="tab:blue", lw=1.8, label=f"{s} median")
        ax.set_title(s)
        ax.set_xlabel("month")
        ax.set_ylabel("equity ($)")
        ax.legend(fontsize=8, loc="upper left")
    for ax in axes[len(opts):]:
        ax.set_visible(False)
    fig.suptitle("Equity over time, all paths (month-end, withdrawals taken out)")
    return fig


CDF_POINTS = 4000   # points of each drawn CDF at most


def _column(groups: dict, strategy: str, col: str) -> np.ndarray:
    """Strategy `strategy`'s column `col` as float64 (empty when the strategy has no rows)."""
    g = groups.get(strategy)
    return np.zeros(0) if g is None else g[col].to_numpy(dtype=np.float64)


def drawdown_cdf_figure(per_path: pd.DataFrame, strategies: Sequence[str]) -> Figure:
    """CDF of max drawdown depth per strategy (one line each); 10/20/30/50% marked. Drawdowns
    are measured on equity plus cumulative withdrawals (spending is not a loss)."""
    fig = Figure(figsize=(6.4, 4.2), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    groups = strategy_groups(per_path)
    for s in strategies:
        d = np.sort(-_column(groups, s, "max_drawdown"))
        y = np.arange(1, len(d) + 1) / max(len(d), 1)
        if len(d) > CDF_POINTS:
            # the step at CDF_POINTS evenly spaced ranks (and the last): off by at most
            # 1 / CDF_POINTS in y, invisible, and drawing no longer grows with the paths
            keep = np.unique(np.linspace(0, len(d) - 1, CDF_POINTS).astype(np.int64))
            d, y = d[keep], y[keep]
        ax.step(np.concatenate([[0.0], d]), np.concatenate([[0.0], y]), where="post", lw=1.6, label=s)
    for t in (0.1, 0.2, 0.3, 0.5):
        ax.axvline(t, color="0.75", lw=0.8, ls=":")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("max drawdown (depth below running peak of equity + withdrawals so far)")
    ax.set_ylabel("share of paths with drawdown <= x")
    ax.set_title("Max drawdown distribution")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def frequencies_figure(per_path: pd.DataFrame, strategies: Sequence[str], years: float) -> Figure:
    """How positions ended: every exit-reason count column of per_path (`tables.event_columns`),
    events per path-year, one horizontal-bar panel per option strategy, each bar labelled with
    the events per option sold (pooled over paths)."""
    from .tables import event_columns, event_label

    opts = _option_strategies(strategies)
    events = event_columns(per_path)
    n_panels = max(len(opts), 1)
    fig = Figure(figsize=(2.0 + 4.4 * n_panels, 1.4 + 0.36 * max(len(events), 3)), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, n_panels, squeeze=False, sharey=True).ravel()
    if not opts:
        axes[0].text(0.5, 0.5, "no option strategies", ha="center", va="center", transform=axes[0].transAxes)
        axes[0].set_axis_off()
        return fig
    y = np.arange(len(events))
    groups = strategy_groups(per_path)
    for ax, s in zip(axes, opts):
        g = groups[s] if s in groups else per_path.iloc[0:0]
        n = max(len(g), 1)
        sold = float(g["options_sold"].sum()) if "options_sold" in g.columns else 0.0
        per_year = np.array([float(g[c].sum()) / n / years for c in events])
        bars = ax.barh(y, per_year, color="tab:blue", label=f"{s}: events per path-year")
        top = float(per_year.max()) if len(per_year) and per_year.max() > 0 else 1.0
        for b, c, v in zip(bars, events, per_year):
            share = float(g[c].sum()) / sold if sold > 0 else math.nan
            txt = f"{v:.2f}/yr" + (f" ({share:.1%})" if math.isfinite(share) else "")
            ax.text(b.get_width() + 0.02 * top, b.get_y() + b.get_height() / 2, txt, va="center", fontsize=7.5)
        ax.set_yticks(y, [event_label(c, short=True) for c in events])
        ax.set_xlim(0, top * 1.45)
        ax.set_xlabel("events per path-year")
        ax.set_title(f"{s}\n{sold / n / years:.1f} options sold per year", fontsize=9)
    axes[0].invert_yaxis()
    fig.suptitle("How positions ended: every exit reason, per path-year (share of options sold)", fontsize=10)
    fig.supxlabel("closed = close_dte, max rolls reached or unable to roll; assigned early is also counted in "
                  "assigned / called away", fontsize=7.5, color="0.35")
    return fig


def final_equity_figure(per_path: pd.DataFrame, strategies: Sequence[str], initial_equity: float) -> Figure:
    """Final equity distribution per strategy (step histograms; cash at its median; the paths
    beyond the central 99% counted at the edges)."""
    fig = Figure(figsize=(6.8, 4.2), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    groups = strategy_groups(per_path)
    vals = {s: _column(groups, s, "final_equity") for s in strategies}
    hist = [s for s in strategies if s != "cash"]
    bins = _bins([vals[s] for s in hist] or [vals.get("cash", np.zeros(1))], 80)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, s in enumerate(hist):
        _hist(ax, vals[s], bins, f"{s} (median {_median(vals[s]):,.0f})", colors[i % len(colors)], i,
              histtype="step", lw=1.5)
    if "cash" in strategies:
        c = _median(vals["cash"])
        ax.axvline(c, color="k", ls="--", lw=1.0, label=f"cash (median {c:,.0f})")
    ax.axvline(initial_equity, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("final equity ($, central 99%; counts beyond at the edges)")
    ax.set_ylabel("paths")
    ax.set_title("Final equity distribution")
    ax.legend(fontsize=8, loc="center right")
    return fig


_REGIME_PANELS = (
    ("cagr", "CAGR (mean, 95% CI)", True),
    ("monthly_realised_pnl", "realised P&L $/month (mean, 95% CI)", False),
    ("p_max_drawdown_above_20pct", "P(max drawdown > 20%)", True),
)


def _regime_value(block: dict, key: str) -> tuple[float, float]:
    d = block.get(key) or {}
    v = d.get("mean", d.get("p"))
    se = d.get("se")
    return (math.nan if v is None else float(v)), (math.nan if se is None else float(se))


def per_regime_figure(summary: dict, strategies: Sequence[str]) -> Figure:
    """What each strategy did in calm and stressed stretches: by dominant regime (top row) and by
    tercile of the share of time in the stressed regime (bottom row), mean with 95% CI."""
    names = [s for s in strategies if "per_regime" in summary["metrics"].get(s, {})]
    if not names:
        fig = Figure(figsize=(6.4, 1.6), dpi=DPI, layout="constrained")
        ax = fig.subplots()
        ax.text(0.5, 0.5, "one regime: no per-regime breakdown", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    first = summary["metrics"][names[0]]["per_regime"]
    regimes = list(first["regimes"])
    stressed = first.get("stressed_regime") or "stressed"
    groups = [("dominant regime", regimes, lambda pr, g: pr["regimes"][g]),
              (f"time in {stressed} (terciles of paths)", ["low", "mid", "high"],
               lambda pr, g: pr["by_stressed_share"][g])]
    fig = Figure(figsize=(15.0, 7.2), dpi=DPI, layout="constrained")
    axes = fig.subplots(2, len(_REGIME_PANELS), squeeze=False)
    width = 0.8 / len(names)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for r, (title, keys, pick) in enumerate(groups):
        x = np.arange(len(keys))
        for c, (metric, label, pct) in enumerate(_REGIME_PANELS):
            ax = axes[r, c]
            for i, s in enumerate(names):
                pr = summary["metrics"][s]["per_regime"]
                vals = [_regime_value(pick(pr, g), metric) for g in keys]
                v = np.array([a for a, _ in vals])
                e = np.array([Z95 * b for _, b in vals])
                ax.bar(x + (i - (len(names) - 1) / 2) * width, v, width, yerr=np.nan_to_num(e),
                       capsize=2, color=colors[i % len(colors)], label=s if (r, c) == (0, 0) else None)
            tick = []
            for g in keys:
                b = pick(first, g)
                share = b.get("share_of_paths")
                tick.append(f"{g}\n{b.get('n_paths', 0):,} paths" + (f" ({share:.0%})" if share is not None else ""))
            ax.set_xticks(x, tick, fontsize=8)
            ax.axhline(0.0, color="0.4", lw=0.8)
            if pct:
                ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax.set_title(f"{label}\nby {title}", fontsize=9)
    fig.legend(loc="outside lower center", ncols=min(len(names), 6), fontsize=8)
    fig.suptitle("Per regime: what each strategy did in calm and stressed stretches", fontsize=10)
    return fig


Z95 = 1.959963984540054


def paired_figure(per_path: pd.DataFrame, strategies: Sequence[str], against: str = "buy_and_hold",
                  summary: dict | None = None) -> Figure:
    """Per strategy, the distribution over paths of its CAGR minus `against`'s on the same path
    (percentage points): mean, its paired 95% CI (shaded), zero, and P(strategy ends above).
    `summary` (metrics.summarize of the same result): its paired entries (strategy, against) are
    used instead of computing them again."""
    from .metrics import _by_path, paired_comparison

    done = {(p["a"], p["b"]): p for p in (summary or {}).get("paired", [])}

    others = [s for s in strategies if s != against]
    rows, cols = _grid(max(len(others), 1))
    fig = Figure(figsize=(4.8 * cols, 3.4 * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    groups = strategy_groups(per_path)
    if against not in {str(x) for x in groups} or not others:
        axes[0].text(0.5, 0.5, f"no {against} to compare with", ha="center", va="center",
                     transform=axes[0].transAxes)
        axes[0].set_axis_off()
        return fig
    aligned = {against: _by_path(groups[against])}
    base = aligned[against]["cagr"]
    for ax, s in zip(axes, others):
        aligned[s] = _by_path(groups[s])
        a = aligned[s]["cagr"]
        b = base if base.index.equals(a.index) else base.loc[a.index]
        d = 100.0 * (a.to_numpy(dtype=np.float64) - b.to_numpy(dtype=np.float64))
        pc = done.get((s, against)) or paired_comparison(per_path, s, against, aligned)
        st = pc["cagr"]
        bins = _bins([d], 50)
        _hist(ax, d, bins, f"{s} - {against}", "tab:purple", 0, alpha=0.6)
        m = st["mean_diff"]
        lo, hi = st["ci95"]
        if m is not None:
            ax.axvline(100 * m, color="k", lw=1.4, label=f"mean {100 * m:+.2f} pp")
        if lo is not None and hi is not None:
            ax.axvspan(100 * lo, 100 * hi, color="k", alpha=0.2, label=f"95% CI [{100 * lo:+.2f}, {100 * hi:+.2f}]")
        ax.axvline(0.0, color="0.4", lw=0.8, ls=":")
        p = pc["p_a_final_greater"]["p"]
        ax.set_title(f"{s} - {against}: P(ends above) {p:.0%}" if p is not None else s, fontsize=9)
        ax.set_xlabel("CAGR difference on the same path (percentage points)")
        ax.set_ylabel("paths")
        ax.legend(fontsize=7.5, loc="center right")
    for ax in axes[len(others):]:
        ax.set_visible(False)
    fig.suptitle(f"Paired difference against {against} (same paths)", fontsize=10)
    return fig


def sweep_heatmap_figure(df: pd.DataFrame, keys: Sequence[str], metric: str, strategies: Sequence[str],
                         annotate: str = "p_ruin") -> Figure:
    """`metric` over a one- or two-key grid, one panel per strategy, `annotate` written in each cell.

    `df` has one row per (grid point, strategy) with a column per grid key, `strategy`, `metric`
    and `annotate`. The first key runs down the rows, the second (if any) across the columns.
    """
    keys = list(keys)[:2]
    rows, cols = _grid(len(strategies))
    fig = Figure(figsize=(5.0 * cols, 4.0 * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    ykey = keys[0]
    xkey = keys[1] if len(keys) > 1 else None
    yv = list(pd.unique(df[ykey]))
    xv = list(pd.unique(df[xkey])) if xkey else [None]
    for ax, s in zip(axes, strategies):
        g = df[df["strategy"] == s]
        z = np.full((len(yv), len(xv)), np.nan)
        a = np.full((len(yv), len(xv)), np.nan)
        for _, r in g.iterrows():
            i = yv.index(r[ykey])
            j = xv.index(r[xkey]) if xkey else 0
            z[i, j] = r[metric]
            a[i, j] = r[annotate] if annotate in r else np.nan
        im = ax.imshow(z, aspect="auto", cmap="viridis", origin="lower")
        finite = z[np.isfinite(z)]
        lo, hi = (finite.min(), finite.max()) if len(finite) else (0.0, 1.0)
        for i in range(len(yv)):
            for j in range(len(xv)):
                if np.isfinite(z[i, j]):
                    txt = f"{z[i, j]:.4g}"
                    if np.isfinite(a[i, j]):
                        txt += f"\nruin {100 * a[i, j]:.1f}%"
                    bright = hi > lo and (z[i, j] - lo) / (hi - lo) > 0.6  # viridis is light at the top
                    ax.text(j, i, txt, ha="center", va="center", fontsize=8, color="k" if bright else "w")
        ax.set_yticks(range(len(yv)), [str(v) for v in yv])
        ax.set_ylabel(ykey.split(".")[-1] if "." in ykey else ykey)
        ax.set_xticks(range(len(xv)), [str(v) for v in xv] if xkey else [""])
        ax.set_xlabel(xkey.split(".")[-1] if xkey else "")
        ax.set_title(s)
        fig.colorbar(im, ax=ax, label=metric)
    for ax in axes[len(strategies):]:
        ax.set_visible(False)
    fig.suptitle(f"{metric} over the grid\nrows: {ykey}" + (f"\ncolumns: {xkey}" if xkey else ""), fontsize=8)
    return fig


FIGURE_KINDS = tuple(PLOT_FILES)


def figure(result, kind: str, summary: dict | None = None) -> Figure:
    """The figure `kind` (a key of PLOT_FILES) of `result`; `summary` (metrics.summarize) is
    needed by "regimes" and computed when not given."""
    run = result.scenario.run
    names = list(getattr(result, "strategies", ()) or pd.unique(result.per_path["strategy"]))
    n_steps = int(getattr(result, "n_steps", 0) or run.n_steps)
    if kind == "income":
        return income_hist_figure(result.monthly, names)
    if kind == "fan":
        return equity_fan_figure(result.monthly, names, run.initial_equity)
    if kind == "drawdown":
        return drawdown_cdf_figure(result.per_path, names)
    if kind == "frequencies":
        return frequencies_figure(result.per_path, names, n_steps / run.steps_per_year)
    if kind == "final":
        return final_equity_figure(result.per_path, names, run.initial_equity)
    if kind == "regimes":
        if summary is None:
            from .metrics import summarize

            summary = summarize(result)
        return per_regime_figure(summary, names)
    if kind == "paired":
        return paired_figure(result.per_path, names, summary=summary)
    from .errors import ScenarioError

    raise ScenarioError(f"plot: {kind!r} is not allowed (must be one of {', '.join(FIGURE_KINDS)})")


def figures(result, summary: dict | None = None) -> dict[str, Figure]:
    """Every figure of PLOT_FILES, by kind."""
    return {k: figure(result, k, summary) for k in FIGURE_KINDS}


PNG_COMPRESS_LEVEL = 1   # zlib level of the PNGs: files ~3% larger than level 6, encoded ~40% faster


def png_bytes(fig: Figure) -> bytes:
    """`fig` as PNG bytes at DPI: the same pixels as `fig.savefig(buf, format="png", dpi=DPI)`.

    savefig draws a figure with a layout engine twice: once to lay it out (constrained layout's
    two passes over every tick label) and once to render. Here the layout is computed once, then
    the figure is drawn once with the engine set aside (it is put back afterwards).
    """
    import io as _io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    engine = fig.get_layout_engine()
    buf = _io.BytesIO()
    kw = dict(format="png", dpi=DPI, pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
    if engine is None or not fig.axes or fig.dpi != DPI or not hasattr(fig, "_layout_engine"):
        fig.savefig(buf, **kw)
        return buf.getvalue()
    engine.execute(fig)
    fig._layout_engine = None    # savefig: no layout engine, no drawing to lay out
    try:
        fig.savefig(buf, **kw)
    finally:
        fig._layout_engine = engine
    return buf.getvalue()


def _render(result, kinds: Sequence[str], directory: Path, summary: dict | None) -> None:
    for key in kinds:
        (directory / PLOT_FILES[key]).write_bytes(png_bytes(figure(result, key, summary)))


# the plots drawn by the second process of `start_plots` (about half of the drawing time of
# spy_wheel's: the income histograms and the per-regime bars, the two largest; this process
# draws the five others beside the Parquet writer)
CHILD_KINDS = ("income", "regimes")
_CHILD = tuple(k for k in FIGURE_KINDS if k in CHILD_KINDS)      # in FIGURE_KINDS order
_PARENT = tuple(k for k in FIGURE_KINDS if k not in CHILD_KINDS)


class PlotJob:
    """The plots of PLOT_FILES being written into a directory, by this process and, where it
    may, a forked child (`start_plots`). `finish()` draws this process's share, waits for the
    child and returns the file names; `abort()` stops the child (idempotent)."""

    def __init__(self, result, directory: Path, summary: dict | None, pid: int | None):
        self.result, self.dir, self.summary, self.pid = result, directory, summary, pid

    def finish(self) -> list[str]:
        forked = self.pid is not None
        _render(self.result, _PARENT if forked else FIGURE_KINDS, self.dir, self.summary)
        if forked:
            ok = self._wait() == 0
            if not ok or not all((self.dir / PLOT_FILES[k]).is_file() for k in _CHILD):
                # the child failed: draw its plots here (an error in them is raised here, as
                # when drawing in one process)
                _render(self.result, _CHILD, self.dir, self.summary)
        return [PLOT_FILES[k] for k in FIGURE_KINDS]

    def _wait(self) -> int:
        pid, self.pid = self.pid, None
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                return os.waitstatus_to_exitcode(status)
            except InterruptedError:
                continue
            except ChildProcessError:
                return -1

    def abort(self) -> None:
        if self.pid is not None:
            import signal

            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
            self._wait()


def _may_fork() -> bool:
    import threading

    return (hasattr(os, "fork") and hasattr(os, "waitstatus_to_exitcode")
            and threading.active_count() == 1 and os.environ.get("MCSIM_PLOT_PROCESSES", "2") != "1")


def start_plots(result, directory: str | Path, summary: dict | None = None, *, fork: bool | None = None) -> PlotJob:
    """Start writing every plot of PLOT_FILES into `directory`: CHILD_KINDS in a forked child
    process (it shares the result's memory, copy on write, and exits when done), the others when
    `finish()` is called on the returned job, in this process. Each plot takes about a second of
    pure-Python matplotlib work; two processes draw them in about half the wall time.

    `fork` (default: when it is safe) forks only on POSIX, in a process whose only thread is this
    one (a fork beside other threads could inherit a lock they hold), unless MCSIM_PLOT_PROCESSES=1.
    The files are the same bytes either way. Call `abort()` on the job if anything fails
    before `finish()` returns.
    """
    d = Path(directory)
    if fork is None:
        fork = _may_fork()
    pid = None
    if fork:
        import gc
        import signal

        import matplotlib.backends.backend_agg  # noqa: F401  (imported once, before the fork)

        frozen = gc.get_freeze_count()
        gc.freeze()      # the child's collections skip (and do not copy) the pages of what exists now
        pid = os.fork()
        if pid == 0:     # the child: draw, write, exit; never return into the caller's code
            code = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                _render(result, _CHILD, d, summary)
                code = 0
            except BaseException:  # noqa: BLE001 - the parent draws these plots again and raises
                pass
            finally:
                os._exit(code)
        if not frozen:
            gc.unfreeze()    # this process collects as before (unless the command froze them itself)
    return PlotJob(result, d, summary, pid)


def write_plots(result, directory: str | Path, summary: dict | None = None) -> list[str]:
    """Write every plot of `PLOT_FILES` into `directory`; return the file names."""
    job = start_plots(result, directory, summary)
    try:
        return job.finish()
    finally:
        job.abort()
