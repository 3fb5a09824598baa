"""What a `Result` shows in a notebook: `summary()`, `compare()`, `plot(kind)`, `_repr_html_`.

The methods of `mcsim.Result` call these functions (they take any Result-like object: per_path,
monthly, scenario, n_paths, n_steps, seed, strategies). The metrics come from
`metrics.summarize`, computed once per Result and kept on it, so every view shows the numbers
summary.json would hold.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from . import tables
from .kinds import BASELINE_NAMES

__all__ = ["summary_dict", "summary", "compare", "plot", "repr_html", "HEADLINE"]

_CACHE = "_mcsim_summary"
# the headline figures of the notebook view: (metric of tables.METRICS or p_beats_*, column title)
HEADLINE = (("cagr_p50", "CAGR p50"), ("income_p50", "income p50 $/mo"), ("premium_p50", "premium p50 $/mo"),
            ("net_premium_p50", "net premium p50 $/mo"), ("max_drawdown_p95", "max DD p95"), ("p_ruin", "P(ruin)"),
            ("p_any_shortfall", "P(shortfall)"), ("p_beats_buy_and_hold", "P(> buy-and-hold)"))


def summary_dict(result) -> dict:
    """`metrics.summarize(result)`, computed once and kept on the result."""
    cached = getattr(result, "__dict__", {}).get(_CACHE)
    if cached is None:
        from .metrics import summarize

        cached = summarize(result)
        try:
            object.__setattr__(result, _CACHE, cached)  # a frozen dataclass: bypass its __setattr__
        except (AttributeError, TypeError):
            pass
    return cached


def summary(result) -> pd.DataFrame:
    """Tidy table: one row per (strategy, metric) with value, se, ci_low, ci_high (95%), unit,
    section and a one-line legend (`tables.summary_frame`)."""
    return tables.summary_frame(summary_dict(result))


def compare(result, against=None) -> pd.DataFrame:
    """The paired comparison (`tables.paired_frame`): every pair, or those against `against`
    (a name or a list of names; e.g. "buy_and_hold")."""
    if isinstance(against, str):
        against = (against,)
    return tables.paired_frame(summary_dict(result), tuple(against) if against is not None else None)


def plot(result, kind: str):
    """The matplotlib Figure of plot `kind` (one of mcsim.plots.FIGURE_KINDS)."""
    from . import plots

    if kind not in plots.FIGURE_KINDS:
        raise ValueError(f"plot: kind {kind!r} is not allowed (must be one of {', '.join(plots.FIGURE_KINDS)})")
    return plots.figure(result, kind, summary_dict(result) if kind == "regimes" else None)


def _cell(row) -> str:
    v = tables.fmt(row["value"], row["unit"])
    if np.isfinite(row["ci_low"]) and np.isfinite(row["ci_high"]):
        v += (f' <span style="color:#777;white-space:nowrap">[{tables.fmt(row["ci_low"], row["unit"])}, '
              f'{tables.fmt(row["ci_high"], row["unit"])}]</span>')
    return v


def repr_html(result) -> str:
    """The notebook view: headline figures per strategy, then the whole summary table (metrics as
    rows, strategies as columns, value with its 95% CI)."""
    e = html.escape
    frame = summary(result)
    names = list(dict.fromkeys(frame["strategy"]))
    sc = result.scenario
    title = sc.title or getattr(sc, "source", "") or "mcsim result"
    head = (f"<b>{e(title)}</b><br><span style='color:#555'>{int(result.n_paths):,} paths x "
            f"{int(result.n_steps):,} steps, seed {e(str(result.seed))}; strategies {e(', '.join(names))}. "
            f"Result.summary() / .compare() / .plot(kind) for the tables and figures.</span>")
    cols = [(m, t) for m, t in HEADLINE if (frame["metric"] == m).any()]
    rows = []
    for s in names:
        f = frame[frame["strategy"] == s].set_index("metric")
        cells = "".join(f"<td>{tables.fmt(f.loc[m, 'value'], f.loc[m, 'unit']) if m in f.index else '-'}</td>"
                        for m, _ in cols)
        rows.append(f"<tr><th style='text-align:left'>{e(s)}</th>{cells}</tr>")
    headline = ("<table><tr><th></th>" + "".join(f"<th>{e(t)}</th>" for _, t in cols) + "</tr>"
                + "".join(rows) + "</table>")
    full = ["<details><summary>summary table (value [95% CI])</summary><table><tr><th>metric</th>"
            + "".join(f"<th>{e(s)}</th>" for s in names) + "<th>what it is</th></tr>"]
    for met in dict.fromkeys(frame["metric"]):
        f = frame[frame["metric"] == met].set_index("strategy")
        cells = "".join(f"<td>{_cell(f.loc[s]) if s in f.index else '-'}</td>" for s in names)
        full.append(f"<tr><td style='text-align:left'>{e(met)}</td>{cells}"
                    f"<td style='text-align:left;color:#555'>{e(f['legend'].iloc[0])}</td></tr>")
    full.append("</table></details>")
    warn = "".join(f"<div style='color:#a60'>warning: {e(w['message'])}</div>"
                   for w in summary_dict(result).get("warnings", []))
    return f"<div class='mcsim-result'>{head}{headline}{warn}{''.join(full)}</div>"


def text_repr(result) -> str:
    names = list(getattr(result, "strategies", ()))
    opts = [s for s in names if s not in BASELINE_NAMES]
    sc = result.scenario
    return (f"<mcsim.Result {sc.title or getattr(sc, 'source', '')!r}: {len(names)} strategies "
            f"({', '.join(opts) or 'baselines only'} + baselines) x {int(result.n_paths):,} paths x "
            f"{int(result.n_steps):,} steps, seed {result.seed}>")
