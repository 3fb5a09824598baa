"""report.html: one self-contained page per result directory, to read or to mail to someone.

Built from what the directory holds (summary.json, paths.parquet, monthly.parquet and the
scenario in their provenance) or from the `Result` that wrote it. Images are inline PNGs
(`data:` URIs), the style sheet is inline, and there is no script: the page opens from any
directory, offline. Sections (each an element with the id in `SECTIONS`): what each strategy
does, the summary with standard errors and 95% CIs and a legend for every row, the paired
comparison against buy-and-hold and cash, income beside mark-to-market return, drawdown and
ruin, trade frequencies with every exit reason, the per-regime breakdown, warnings, the full
scenario and the provenance.

`mcsim report RESULT_DIR` (`rebuild_report`) renders the plots again from the Parquet files and
replaces report.html atomically (io.replace_result_file).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import contextlib
import json
import types
from pathlib import Path

import numpy as np
import pandas as pd

from . import plots, tables
from .describe import describe_baseline, describe_scenario, describe_strategy
from .kinds import BASELINE_NAMES

__all__ = ["SECTIONS", "REPORT_FILE", "build_report", "write_report", "rebuild_report", "load_result_dir"]

REPORT_FILE = "report.html"
SECTIONS = {
    "strategies": "What each strategy does",
    "summary": "Summary",
    "paired": "Against buy-and-hold and cash",
    "income": "Income and mark-to-market return",
    "risk": "Drawdown and ruin",
    "trading": "Trade frequencies",
    "regimes": "Per regime",
    "warnings": "Warnings",
    "scenario": "Scenario",
    "provenance": "Provenance",
}

_CSS = """
body{font:14px/1.45 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1d232a;margin:0;background:#f6f7f9}
main{max-width:1280px;margin:0 auto;padding:12px 28px 48px;background:#fff}
h1{font-size:22px;margin:18px 0 4px}h2{font-size:18px;margin:30px 0 8px;border-bottom:2px solid #dfe3e8;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}.meta{color:#56606b;margin:0 0 8px}
nav{position:sticky;top:0;background:#fff;padding:6px 0;border-bottom:1px solid #e6e9ee;z-index:1}
nav a{margin-right:12px;color:#2457a6;text-decoration:none;font-size:13px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border-bottom:1px solid #e6e9ee;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f0f2f5;font-weight:600}td.l,th.l{text-align:left}td.legend{text-align:left;color:#56606b;max-width:420px}
.ci{color:#6b7580;font-size:12px;white-space:nowrap}.wrap{overflow-x:auto}
img{max-width:100%;height:auto;border:1px solid #eceff3;margin:6px 0}
pre{background:#f6f8fa;padding:10px;overflow-x:auto;font-size:12px;border:1px solid #e6e9ee}
.warn{background:#fff6e0;border-left:4px solid #e0a100;padding:6px 10px;margin:6px 0}
.note{color:#56606b;font-size:13px}dt{font-weight:600}dd{margin:0 0 8px 16px}
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _img(images: dict, kind: str, alt: str) -> str:
    data = images.get(kind)
    if not data:
        return ""
    return (f'<img id="plot-{kind}" alt="{_e(alt)}" '
            f'src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">')


def _fmt_ci(v, lo, hi, unit) -> str:
    if not np.isfinite(v):
        return "-"
    s = _e(tables.fmt(v, unit))
    if np.isfinite(lo) and np.isfinite(hi):
        s += f'<br><span class="ci">[{_e(tables.fmt(lo, unit))}, {_e(tables.fmt(hi, unit))}]</span>'
    return s


def _fmt_se(se, unit) -> str:
    return "" if not np.isfinite(se) else f'<span class="ci">se {_e(tables.fmt(se, unit))}</span>'


def _metric_table(frame: pd.DataFrame, strategies, sections=None) -> str:
    """Rows = metrics, columns = strategies; each cell value, 95% CI, se; a legend column."""
    f = frame if sections is None else frame[frame["section"].isin(sections)]
    if f.empty:
        return '<p class="note">none</p>'
    order = list(dict.fromkeys(f["metric"]))
    head = "".join(f"<th>{_e(s)}</th>" for s in strategies)
    out = [f'<div class="wrap"><table><tr><th class="l">metric</th>{head}<th class="l">what it is</th></tr>']
    for met in order:
        rows = f[f["metric"] == met].set_index("strategy")
        unit = rows["unit"].iloc[0]
        cells = []
        for s in strategies:
            if s in rows.index:
                r = rows.loc[s]
                se = _fmt_se(r["se"], unit)
                cells.append(f"<td>{_fmt_ci(r['value'], r['ci_low'], r['ci_high'], unit)}{'<br>' + se if se else ''}</td>")
            else:
                cells.append("<td>-</td>")
        out.append(f'<tr><td class="l">{_e(met)}</td>{"".join(cells)}'
                   f'<td class="legend">{_e(rows["legend"].iloc[0])} ({_e(unit)})</td></tr>')
    out.append("</table></div>")
    return "".join(out)


def _df_table(df: pd.DataFrame, formats: dict[str, str], left: tuple[str, ...] = ()) -> str:
    if df.empty:
        return '<p class="note">none</p>'
    head = "".join(f'<th class="{"l" if c in left else ""}">{_e(c)}</th>' for c in df.columns)
    body = []
    for _, r in df.iterrows():
        cells = []
        for c in df.columns:
            v = r[c]
            unit = formats.get(c)
            txt = tables.fmt(v, unit) if unit and isinstance(v, (int, float, np.floating, np.integer)) else str(v)
            cells.append(f'<td class="{"l" if c in left else ""}">{_e(txt)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="wrap"><table><tr>{head}</tr>{"".join(body)}</table></div>'


def _paired_section(summary: dict, images: dict) -> str:
    pf = tables.paired_frame(summary, against=tuple(BASELINE_NAMES))
    rows = []
    for r in pf.itertuples(index=False):
        rows.append({
            "a - b": f"{r.a} - {r.b}", "paths": f"{r.n_paths:,}",
            "dCAGR [95% CI]": f"{100 * r.d_cagr:+.2f} pp [{100 * r.d_cagr_ci_low:+.2f}, {100 * r.d_cagr_ci_high:+.2f}]",
            "dMaxDD [95% CI]": (f"{100 * r.d_max_drawdown:+.2f} pp [{100 * r.d_max_drawdown_ci_low:+.2f}, "
                                f"{100 * r.d_max_drawdown_ci_high:+.2f}]"),
            "dFinal equity [95% CI]": (f"{r.d_final_equity:+,.0f} [{r.d_final_equity_ci_low:+,.0f}, "
                                       f"{r.d_final_equity_ci_high:+,.0f}]"),
            "P(a beats b)": f"{100 * r.p_a_beats_b:.1f}% (se {100 * r.p_a_beats_b_se:.1f})"
            if np.isfinite(r.p_a_beats_b) else "-",
        })
    table = _df_table(pd.DataFrame(rows), {}, left=("a - b",))
    return (f'<p class="note">Every strategy ran on the same paths as the baselines, so differences are '
            f'measured path by path: mean of the per-path difference a - b with its paired 95% CI '
            f'(mean &plusmn; 1.96 se). dMaxDD is a\'s max drawdown depth minus b\'s (negative: a falls less). '
            f'P(a beats b) = share of paths on which a\'s final equity is above b\'s.</p>{table}'
            + _img(images, "paired", "paired difference against buy-and-hold"))


def _income_section(frame, strategies, images, result) -> str:
    cols = ", ".join(c.replace("_", " ") for c in tables.income_columns(result.monthly))
    return (f'<p class="note">Income columns: {_e(cols)}, in dollars per month over full path-months; '
            f'realised P&amp;L includes interest on cash and dividends (compare with cash\'s own income). '
            f'Mark-to-market return is shown beside it so income never hides a loss.</p>'
            + _metric_table(frame, strategies, ["income"]) + _img(images, "income", "monthly income histograms")
            + _img(images, "fan", "equity fan"))


def _trading_section(result, strategies, images) -> str:
    years = result.n_steps / result.scenario.run.steps_per_year
    ff = tables.frequency_frame(result.per_path, strategies, years)
    if ff.empty:
        return '<p class="note">no option strategies</p>'
    rows: dict[str, dict] = {}
    for r in ff.itertuples(index=False):
        row = rows.setdefault(r.label, {"exit reason": r.label})
        share = f" ({100 * r.per_option_sold:.1f}% of sold)" if np.isfinite(r.per_option_sold) else ""
        row[r.strategy] = f"{r.per_path_year:.2f}/yr{share}"
    rows = list(rows.values())
    note = ('<p class="note">Every exit-reason count of per_path: events per path-year, and per option sold '
            '(rolls count as options sold). Early assignments are also counted in assigned / called away.</p>')
    return note + _df_table(pd.DataFrame(rows), {}, left=("exit reason",)) + _img(images, "frequencies", "trade frequencies")


def _regime_section(summary, images) -> str:
    rf = tables.regime_frame(summary)
    if rf.empty:
        return '<p class="note">one regime: no per-regime breakdown</p>'
    rf = rf.assign(cagr=[f"{100 * m:.2f}% (se {100 * s:.2f})" if np.isfinite(m) else "-"
                         for m, s in zip(rf["cagr_mean"], rf["cagr_se"])]).drop(columns=["cagr_mean", "cagr_se"])
    fmts = {"share_of_paths": "fraction", "monthly_premium": "$/month", "monthly_realised_pnl": "$/month",
            "max_drawdown_p50": "fraction", "p_drawdown_above_20pct": "fraction", "p_ruin": "fraction"}
    note = ('<p class="note">Paths grouped by the regime they spent most days in, and by terciles of the share '
            'of days in the stressed regime (a short stressed regime is rarely dominant). Means with standard '
            'errors; monthly figures over full months.</p>')
    return note + _df_table(rf, fmts, left=("strategy", "grouping", "group")) + _img(images, "regimes", "per regime")


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return repr(v)


def to_toml(d: dict, prefix: str = "") -> str:
    """A scenario table as TOML text (scalars first, then tables, then arrays of tables)."""
    lines, subs = [], []
    for k, v in d.items():
        if isinstance(v, dict):
            subs.append((k, v, False))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            subs.append((k, v, True))
        else:
            lines.append(f"{k} = {_toml_value(v)}")
    out = "\n".join(lines)
    for k, v, many in subs:
        name = f"{prefix}{k}"
        for item in (v if many else [v]):
            head = f"[[{name}]]" if many else f"[{name}]"
            out += f"\n\n{head}\n" + to_toml(item, name + ".").lstrip("\n")
    return out


def _compare_scenarios(result, prov: dict) -> dict:
    """The scenarios of a `compare` run by file stem ({} for a single run)."""
    have = getattr(result, "compare_scenarios", None)
    if have:
        return have
    from .scenario import parse_scenario

    return {stem: parse_scenario(raw, source=stem, max_strategies=None)
            for stem, raw in (prov.get("compare") or {}).items()}


def _strategy_rules(result, name: str, compare: dict):
    """The rules behind a (possibly compare-prefixed, stem:name) strategy name, or None."""
    sc = result.scenario
    scenarios = [sc]
    stem = name.split(":", 1)[0] if ":" in name else None
    if stem and stem in compare:
        scenarios = [compare[stem]]
    elif compare:
        scenarios = [sc, *compare.values()]
    base = name.split(":", 1)[-1].rstrip("'")
    for s in scenarios:
        for r in s.strategies:
            if r.name == base:
                return r, s
    return None, sc


def build_report(summary: dict, result, images: dict[str, bytes]) -> str:
    """The report page as one HTML string (no script, inline style and images)."""
    prov = summary.get("provenance", {})
    sc = result.scenario
    strategies = list(summary.get("strategies", []))
    title = prov.get("scenario_title") or sc.title or Path(str(prov.get("scenario_source", "scenario"))).stem
    frame = tables.summary_frame(summary)
    n_paths = summary.get("run", {}).get("n_paths") or prov.get("n_paths")
    n_steps = summary.get("run", {}).get("n_steps") or prov.get("n_steps")
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
             f"<title>{_e(title)} - mcsim report</title><style>{_CSS}</style></head><body><main>",
             f"<h1>{_e(title)}</h1>",
             f'<p class="meta">{_e(prov.get("scenario_source", ""))} &middot; {int(n_paths or 0):,} paths x '
             f'{int(n_steps or 0):,} steps &middot; seed {_e(summary.get("run", {}).get("seed"))} &middot; '
             f'mcsim {_e(prov.get("mcsim_version", ""))} &middot; {_e(prov.get("created_utc", ""))}</p>',
             "<nav>" + "".join(f'<a href="#{k}">{_e(v)}</a>' for k, v in SECTIONS.items()) + "</nav>"]

    def section(key: str, body: str) -> None:
        parts.append(f'<section id="{key}"><h2>{_e(SECTIONS[key])}</h2>{body}</section>')

    items = []
    compare = _compare_scenarios(result, prov)
    for s in strategies:
        if s in BASELINE_NAMES:
            text = describe_baseline(s, sc)
        else:
            rules, owner = _strategy_rules(result, s, compare)
            text = describe_strategy(rules, owner) if rules is not None else "(rules not found in the scenario)"
        items.append(f"<dt>{_e(s)}</dt><dd>{_e(text)}</dd>")
    market = "".join(f"<li>{_e(line)}</li>" for line in describe_scenario(sc))
    section("strategies", f"<dl>{''.join(items)}</dl><h3>Market and run</h3><ul>{market}</ul>")
    section("summary", '<p class="note">Over every path. Each cell: the estimate, its 95% confidence interval in '
                       'brackets (quantiles: order-statistic interval; means and shares: &plusmn; 1.96 standard '
                       'errors) and the standard error where one applies.</p>'
            + _metric_table(frame, strategies, ["returns", "paired"]))
    section("paired", _paired_section(summary, images))
    section("income", _income_section(frame, strategies, images, result))
    section("risk", '<p class="note">Drawdowns are measured on equity plus the withdrawals taken so far: money '
                    'paid out to the owner is not a loss. Ruin: equity (after withdrawals) below the ruin level.</p>'
            + _metric_table(frame, strategies, ["risk", "withdrawals"]) + _img(images, "drawdown", "max drawdown CDF")
            + _img(images, "final", "final equity"))
    section("trading", _metric_table(frame, strategies, ["trading"]) + _trading_section(result, strategies, images))
    section("regimes", _regime_section(summary, images))
    warns = summary.get("warnings", [])
    section("warnings", "".join(f'<div class="warn">{_e(w.get("message", w))}</div>' for w in warns)
            or '<p class="note">none</p>')
    scen = prov.get("scenario") or sc.to_dict()
    compare = prov.get("compare")
    text = (to_toml(scen) if not compare else
            "\n\n".join(f"# {stem}\n{to_toml(d)}" for stem, d in compare.items()))
    section("scenario", f'<p class="note">The resolved scenario (file plus overrides {_e(prov.get("overrides", []))}).'
                        f'</p><pre>{_e(text)}</pre>')
    keep = {k: v for k, v in prov.items() if k not in ("scenario", "compare")}
    section("provenance", f"<pre>{_e(json.dumps(keep, indent=1, default=str))}</pre>"
            f'<p class="note">Report written {_e(_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))}'
            f" from summary.json, paths.parquet and monthly.parquet.</p>")
    parts.append("</main></body></html>\n")
    return "".join(parts)


def _images(result, summary: dict, directory: Path | None) -> dict[str, bytes]:
    out = {}
    for kind, name in plots.PLOT_FILES.items():
        f = directory / name if directory is not None else None
        if f is not None and f.is_file():
            out[kind] = f.read_bytes()
        else:
            out[kind] = plots.png_bytes(plots.figure(result, kind, summary))
    return out


def write_report(directory: str | Path, result=None, summary: dict | None = None) -> Path:
    """Write report.html into `directory` (a result directory being written: the staging one).

    Reads summary.json there unless `summary` is given, and the PNGs there (rendered when missing).
    """
    d = Path(directory)
    if summary is None:
        summary = json.loads((d / "summary.json").read_text(encoding="utf-8"))
    if result is None:
        result = load_result_dir(d)
    page = build_report(summary, result, _images(result, summary, d))
    (d / REPORT_FILE).write_text(page, encoding="utf-8")
    return d / REPORT_FILE


def load_result_dir(directory: str | Path):
    """A Result-like object (per_path, monthly, scenario, sizes) from a result directory."""
    from .errors import ScenarioError
    from .io import read_provenance
    from .scenario import parse_scenario

    d = Path(directory)
    need = [d / "summary.json", d / "paths.parquet", d / "monthly.parquet"]
    if (d / "paths.parquet").is_file() and not (d / "monthly.parquet").is_file():
        with contextlib.suppress(Exception):
            if read_provenance(d / "paths.parquet").get("monthly_paths") == 0:   # --monthly none
                need.pop()
    missing = [p.name for p in need if not p.is_file()]
    if missing:
        raise ScenarioError(f'RESULT_DIR: "{d}" is not allowed (must be a result directory of mcsim run or '
                            f'compare --out holding summary.json, paths.parquet and monthly.parquet; missing '
                            f'{", ".join(missing)})')
    prov = read_provenance(d / "paths.parquet")
    sc = parse_scenario(prov["scenario"], source=prov.get("scenario_source", ""), max_strategies=None)
    compare = {stem: parse_scenario(raw, source=stem, max_strategies=None)
               for stem, raw in (prov.get("compare") or {}).items()}
    per_path = pd.read_parquet(d / "paths.parquet")
    if (d / "monthly.parquet").is_file():
        monthly = pd.read_parquet(d / "monthly.parquet")
    else:
        from .engine import MONTHLY_COLUMNS

        monthly = pd.DataFrame({c: [] for c in MONTHLY_COLUMNS})
    return types.SimpleNamespace(
        per_path=per_path, monthly=monthly, scenario=sc, compare_scenarios=compare,
        seed=prov.get("seed"), n_paths=prov.get("n_paths"), n_steps=prov.get("n_steps") or sc.run.n_steps,
        chunk_paths=prov.get("chunk_paths"), block_paths=prov.get("block_paths"),
        wall_time=prov.get("wall_time_s"), path_steps_per_second=prov.get("path_steps_per_second"),
        strategies=tuple(prov.get("strategies") or pd.unique(per_path["strategy"])))


def rebuild_report(directory: str | Path) -> Path:
    """`mcsim report RESULT_DIR`: render the plots again from the Parquet files and replace
    report.html atomically (the directory must be an mcsim result directory)."""
    from .errors import ScenarioError
    from .io import read_marker, replace_result_file

    d = Path(directory)
    if not d.is_dir() or read_marker(d) is None:
        raise ScenarioError(f'RESULT_DIR: "{d}" is not allowed (must be a directory written by mcsim run or '
                            f'compare --out, marked by .mcsim-result)')
    result = load_result_dir(d)
    try:
        summary = json.loads((d / "summary.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ScenarioError(f'RESULT_DIR: "{d}/summary.json" is not valid JSON ({" ".join(str(exc).split())})') from None
    page = build_report(summary, result, _images(result, summary, None))
    return replace_result_file(d, REPORT_FILE, page.encode("utf-8"))

