"""PNG plots of a `Result` (matplotlib, Agg backend, no pyplot state).

File names are stable (`PLOT_FILES`). Each `*_figure` function returns a matplotlib `Figure` whose
plotted series carry legend labels, so `series_labels(fig)` lists them (tests count them):

* `income_hist.png`: monthly income per strategy, one panel each: realised P&L (all strategies)
  and premium (option strategies), full months over all paths, dollars per month.
* `equity_fan.png`: equity by month over all paths, p5-p95 band and median, one panel per option
  strategy beside buy-and-hold's band and median (4 series a panel).
* `max_drawdown_cdf.png`: CDF of each strategy's max drawdown depth (one line each).
* `trade_frequencies.png`: assignment (per put sold), called-away (per call sold) and roll (per
  option sold) rates, and the same events per path-year, for each option strategy (3 + 3 series).
* `final_equity.png`: distribution of final equity per strategy (cash as a line at its median).
* `sweep_heatmap.png` (`mcsim sweep`): a metric over a one- or two-key grid, one panel per
  strategy, P(ruin) annotated.
"""

from __future__ import annotations

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
    "write_plots",
    "series_labels",
]

PLOT_FILES = {
    "income": "income_hist.png",
    "fan": "equity_fan.png",
    "drawdown": "max_drawdown_cdf.png",
    "frequencies": "trade_frequencies.png",
    "final": "final_equity.png",
}
SWEEP_FILE = "sweep_heatmap.png"
from .kinds import BASELINE_NAMES as BASELINES  # noqa: E402  (the one registry)
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
    allv = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(1)
    if len(allv) == 0:
        allv = np.zeros(1)
    lo, hi = np.quantile(allv, [0.005, 0.995])
    if hi <= lo:
        lo, hi = lo - 0.5 * max(abs(lo), 1.0), hi + 0.5 * max(abs(hi), 1.0)
    return np.linspace(lo, hi, n + 1)


def income_hist_figure(monthly: pd.DataFrame, strategies: Sequence[str]) -> Figure:
    """Monthly income histograms, one panel per strategy (dollars per month, central 99%)."""
    full = _full(monthly)
    groups = {k: g for k, g in full.groupby("strategy", sort=False)}
    rows, cols = _grid(len(strategies))
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, s in zip(axes, strategies):
        g = groups.get(s, full.iloc[0:0])
        real = g["realised_pnl"].to_numpy(dtype=np.float64)
        prem = g["premium"].to_numpy(dtype=np.float64)
        is_opt = s not in BASELINES
        bins = _bins([real, prem] if is_opt else [real])
        ax.hist(np.clip(real, bins[0], bins[-1]), bins=bins, alpha=0.55, color="tab:blue",
                label=f"realised P&L (median {np.median(real) if len(real) else 0:,.0f})")
        if is_opt:
            ax.hist(np.clip(prem, bins[0], bins[-1]), bins=bins, histtype="step", lw=1.6, color="tab:orange",
                    label=f"premium (median {np.median(prem) if len(prem) else 0:,.0f})")
        ax.axvline(0.0, color="0.4", lw=0.8)
        ax.set_title(s)
        ax.set_xlabel("$ per month (tails clipped at 0.5% / 99.5%)")
        ax.set_ylabel("path-months")
        ax.legend(fontsize=8)
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


def drawdown_cdf_figure(per_path: pd.DataFrame, strategies: Sequence[str]) -> Figure:
    """CDF of max drawdown depth per strategy (one line each); 10/20/30/50% marked."""
    fig = Figure(figsize=(6.4, 4.2), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    for s in strategies:
        d = np.sort(-per_path.loc[per_path["strategy"] == s, "max_drawdown"].to_numpy(dtype=np.float64))
        y = np.arange(1, len(d) + 1) / max(len(d), 1)
        ax.step(np.concatenate([[0.0], d]), np.concatenate([[0.0], y]), where="post", lw=1.6, label=s)
    for t in (0.1, 0.2, 0.3, 0.5):
        ax.axvline(t, color="0.75", lw=0.8, ls=":")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("max drawdown (depth below running peak)")
    ax.set_ylabel("share of paths with drawdown <= x")
    ax.set_title("Max drawdown distribution")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def frequencies_figure(per_path: pd.DataFrame, strategies: Sequence[str], years: float) -> Figure:
    """Assignment, called-away and roll frequencies of the option strategies: rates and per year."""
    opts = _option_strategies(strategies)
    fig = Figure(figsize=(11.0, 4.0), dpi=DPI, layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    if not opts:
        for ax in (ax1, ax2):
            ax.text(0.5, 0.5, "no option strategies", ha="center", va="center", transform=ax.transAxes)
        return fig
    sums = per_path[per_path["strategy"].isin(opts)].groupby("strategy", sort=False)[
        ["assignments", "called_away", "rolls", "puts_sold", "spreads_sold", "calls_sold", "options_sold"]
    ].sum().reindex(opts)
    n = per_path[per_path["strategy"].isin(opts)].groupby("strategy", sort=False).size().reindex(opts)

    def rate(a, b):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), 0.0)

    rates = {
        "assigned per put sold": rate(sums["assignments"], sums["puts_sold"] + sums["spreads_sold"]),
        "called away per call sold": rate(sums["called_away"], sums["calls_sold"]),
        "rolls per option sold": rate(sums["rolls"], sums["options_sold"]),
    }
    per_year = {
        "assignments / year": sums["assignments"] / n / years,
        "called away / year": sums["called_away"] / n / years,
        "rolls / year": sums["rolls"] / n / years,
    }
    x = np.arange(len(opts))
    w = 0.8 / 3
    for ax, data in ((ax1, rates), (ax2, per_year)):
        for i, (label, v) in enumerate(data.items()):
            ax.bar(x + (i - 1) * w, np.asarray(v, dtype=np.float64), width=w, label=label)
        ax.set_xticks(x, opts)
        ax.legend(fontsize=8)
    ax1.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax1.set_title("Rates (all paths pooled)")
    ax2.set_title("Events per path-year")
    return fig


def final_equity_figure(per_path: pd.DataFrame, strategies: Sequence[str], initial_equity: float) -> Figure:
    """Final equity distribution per strategy (step histograms; cash at its median)."""
    fig = Figure(figsize=(6.8, 4.2), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    vals = {s: per_path.loc[per_path["strategy"] == s, "final_equity"].to_numpy(dtype=np.float64) for s in strategies}
    hist = [s for s in strategies if s != "cash"]
    bins = _bins([vals[s] for s in hist] or [vals.get("cash", np.zeros(1))], 80)
    for s in hist:
        ax.hist(np.clip(vals[s], bins[0], bins[-1]), bins=bins, histtype="step", lw=1.5,
                label=f"{s} (median {np.median(vals[s]):,.0f})")
    if "cash" in strategies:
        c = float(np.median(vals["cash"]))
        ax.axvline(c, color="k", ls="--", lw=1.0, label=f"cash (median {c:,.0f})")
    ax.axvline(initial_equity, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("final equity ($, tails clipped at 0.5% / 99.5%)")
    ax.set_ylabel("paths")
    ax.set_title("Final equity distribution")
    ax.legend(fontsize=8)
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


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=DPI)


def write_plots(result, directory: str | Path, summary: dict | None = None) -> list[str]:
    """Write every plot of `PLOT_FILES` into `directory`; return the file names."""
    d = Path(directory)
    run = result.scenario.run
    names = list(getattr(result, "strategies", ()) or pd.unique(result.per_path["strategy"]))
    n_steps = int(getattr(result, "n_steps", 0) or run.n_steps)
    years = n_steps / run.steps_per_year
    figs = {
        "income": income_hist_figure(result.monthly, names),
        "fan": equity_fan_figure(result.monthly, names, run.initial_equity),
        "drawdown": drawdown_cdf_figure(result.per_path, names),
        "frequencies": frequencies_figure(result.per_path, names, years),
        "final": final_equity_figure(result.per_path, names, run.initial_equity),
    }
    out = []
    for key, fig in figs.items():
        _save(fig, d / PLOT_FILES[key])
        out.append(PLOT_FILES[key])
    return out
