"""What users look at: report.html in a real browser, the notebook API, the plots, the printed table.

* report.html of `mcsim run` on spy_wheel.toml and income_withdrawals.toml (small path counts) is
  opened in headless Chromium (tests/_chromium.py, the DevTools protocol on a pipe): no console
  error, no request leaving the file, every section present with its content, every image
  decoded, no script; the same from a copy of the file alone in another directory. Screenshots
  are kept in tests/artifacts/ (ignored by git).
* `Result.summary()` rows equal the values of summary.json; `_repr_html_` shows them; the
  README's notebook example runs.
* Plot fixes: overflow labels count exactly the values outside the drawn range (hypothesis); a
  series repeated on every path is a span, not a comb; every exit reason is plotted.
* Drawdowns with withdrawals: on a hand-made path, max_drawdown equals the drawdown of equity plus
  cumulative withdrawals computed here.
* The CLI: --json, --quiet, P(shortfall) and the legend, compare --set, mcsim report, shipped
  scenarios as package data of a built wheel.
"""

from __future__ import annotations

import html.parser
import json
import math
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mcsim
from mcsim import cli, io, plots, report, tables
from mcsim.market import MarketPaths
from mcsim.scenario import load_scenario, parse_scenario

sys.path.insert(0, str(Path(__file__).parent))
import _chromium  # noqa: E402
from test_cli import TINY, fake_engine, tiny  # noqa: E402,F401  (fixtures)
from test_metrics import INITIAL, monthly_frame, per_path_frame, synthetic_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


# --------------------------------------------------------------------------------------------
# report.html in headless Chromium


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """report.html of real `mcsim run`s of two shipped scenarios at 150 paths."""
    out = {}
    base = tmp_path_factory.mktemp("reports")
    for name in ("spy_wheel", "income_withdrawals"):
        target = base / name
        assert cli.main(["run", name, "--paths", "150", "--out", str(target), "--quiet"]) == 0
        out[name] = target
    return out


_EXPRESSIONS = {
    "sections": "Array.from(document.querySelectorAll('section[id]')).map(s => "
                "[s.id, (s.querySelector('h2') || {}).textContent || '', s.innerText.length])",
    "images": "Array.from(document.images).map(i => [i.id, i.complete, i.naturalWidth, i.naturalHeight])",
    "scripts": "document.scripts.length",
    "links": "Array.from(document.querySelectorAll('link,iframe,object,embed')).length",
    "title": "document.querySelector('h1').textContent",
    "text": "document.body.innerText",
}


def _check_visit(visit, name: str):
    assert visit.errors == [], visit.errors
    assert _chromium.external_requests(visit) == [], _chromium.external_requests(visit)
    assert visit.failed == []
    assert visit.values["scripts"] == 0 and visit.values["links"] == 0
    sections = {sid: (h2, n) for sid, h2, n in visit.values["sections"]}
    assert list(sections) == list(report.SECTIONS)
    for sid, title in report.SECTIONS.items():
        h2, n = sections[sid]
        assert h2 == title and n > len(title) + 3, (sid, h2, n)
    images = visit.values["images"]
    assert {i[0] for i in images} == {f"plot-{k}" for k in plots.PLOT_FILES}
    assert all(complete and w > 100 and h > 100 for _, complete, w, h in images), images
    assert len(visit.screenshot) > 10_000 and visit.screenshot[:8] == b"\x89PNG\r\n\x1a\n"
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"report_{name}.png").write_bytes(visit.screenshot)


@pytest.mark.parametrize("name", ["spy_wheel", "income_withdrawals"])
def test_report_renders_in_chromium_offline_with_every_section(reports, name, tmp_path):
    assert _chromium.find_browser(), "headless Chromium is needed (Debian: apt-get install chromium; .ci/run does)"
    page = reports[name] / "report.html"
    assert "report.html" in io.read_marker(reports[name])["files"]
    visit = _chromium.open_page(page, _EXPRESSIONS)
    _check_visit(visit, name)
    text = visit.values["text"]
    sc = load_scenario(name)
    assert visit.values["title"] == sc.title
    for s in [r.name for r in sc.strategies] + ["buy_and_hold", "cash"]:
        assert s in text
    if name == "spy_wheel":
        assert "sells cash-secured 30-delta puts about 35 days out" in text
        assert "takes profit once 50% of the credit is earned" in text
        for reason in ("profit take", "stop loss", "closed (close_dte, max rolls, unable to roll)", "assigned"):
            assert reason in text
    else:
        assert "p_any_shortfall" in text and "Withdraws $600 at every month end" in text
    # the same file alone, in another directory: nothing it needs is left behind
    elsewhere = tmp_path / "mailed" / "somewhere"
    elsewhere.mkdir(parents=True)
    copy = elsewhere / "copy.html"
    shutil.copyfile(page, copy)
    _check_visit(_chromium.open_page(copy, _EXPRESSIONS), f"{name}_copy")


def test_report_html_is_self_contained_text():
    """Parsed as HTML: no src or href leaves the page (only data: images and #anchors)."""
    res = synthetic_result(n_paths=60)
    summary = mcsim.summarize(res)
    page = report.build_report({"provenance": io.provenance(res), **summary}, res,
                               {k: plots.png_bytes(plots.figure(res, k, summary)) for k in plots.PLOT_FILES})

    class Refs(html.parser.HTMLParser):
        refs: list = []
        tags: list = []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self.refs += [v for k, v in attrs if k in ("src", "href", "srcset", "action", "data")]

    p = Refs()
    p.feed(page)
    assert "script" not in p.tags and "link" not in p.tags
    assert p.refs and all(r.startswith(("data:image/png;base64,", "#")) for r in p.refs), p.refs[:3]
    assert "@import" not in page and "url(" not in page


# --------------------------------------------------------------------------------------------
# notebook API


def test_summary_rows_equal_summary_json_and_repr_html(tiny, tmp_path):  # noqa: F811
    sc = load_scenario(tiny, ["run.paths=120", "run.monthly_withdrawal=300"])
    res = mcsim.simulate(sc)
    out = io.write_results(res, tmp_path / "r")
    js = json.loads((out / "summary.json").read_text())
    df = res.summary()
    assert list(df.columns) == ["strategy", "metric", "value", "se", "ci_low", "ci_high", "unit", "section", "legend"]
    assert set(df["strategy"]) == set(res.strategies)
    assert df.groupby(["strategy", "metric"]).size().max() == 1  # tidy: one row per (strategy, metric)
    m = js["metrics"]

    def row(s, metric):
        r = df[(df["strategy"] == s) & (df["metric"] == metric)]
        assert len(r) == 1, (s, metric)
        return r.iloc[0]

    for s in res.strategies:
        r = row(s, "cagr_p50")
        assert r["value"] == m[s]["cagr"]["quantiles"]["p50"]
        assert [r["ci_low"], r["ci_high"]] == m[s]["cagr"]["quantile_ci"]["p50"] and math.isnan(r["se"])
        r = row(s, "final_equity_mean")
        assert (r["value"], r["se"]) == (m[s]["final_equity"]["mean"], m[s]["final_equity"]["se"])
        assert r["ci_low"] == pytest.approx(r["value"] - 1.959963984540054 * r["se"], rel=1e-12)
        assert row(s, "income_p50")["value"] == m[s]["income"]["realised_pnl"]["quantiles"]["p50"]
        assert row(s, "max_drawdown_p95")["value"] == m[s]["max_drawdown_depth"]["quantiles"]["p95"]
        assert row(s, "p_ruin")["value"] == m[s]["ruin"]["p"]
        assert row(s, "p_any_shortfall")["value"] == m[s]["withdrawals"]["p_any_shortfall"]["p"]  # withdrawals on
    for s in ("wheel", "spread"):
        pair = next(p for p in js["paired"] if p["a"] == s and p["b"] == "buy_and_hold")
        assert row(s, "p_beats_buy_and_hold")["value"] == pair["p_a_final_greater"]["p"]
    # compare(): the paired table, flipped so the baseline is b
    cmp = res.compare("buy_and_hold")
    assert set(cmp["b"]) == {"buy_and_hold"} and set(cmp["a"]) == {"wheel", "spread", "cash"}
    pair = next(p for p in js["paired"] if p["a"] == "buy_and_hold" and p["b"] == "cash")
    r = cmp[cmp["a"] == "cash"].iloc[0]
    assert r["d_cagr"] == -pair["cagr"]["mean_diff"]
    assert r["p_a_beats_b"] == pytest.approx(1 - pair["p_a_final_greater"]["p"] - pair["p_tie"])
    # the notebook view: headline figures and the table, the same numbers
    page = res._repr_html_()
    for s in res.strategies:
        assert f">{s}<" in page
        assert tables.fmt(m[s]["cagr"]["quantiles"]["p50"], "fraction") in page
    assert "P(shortfall)" in page and "summary table" in page
    assert "strategies" in repr(res) and "120 paths" in repr(res)
    # plot(kind): a Figure for every kind, a one-line error for another
    for kind in plots.FIGURE_KINDS:
        assert res.plot(kind).axes
    with pytest.raises(ValueError, match="must be one of income, fan"):
        res.plot("pie")


def _readme_block(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- " + re.escape(marker) + r" -->\s*```python\n(.*?)```", text, re.S)
    assert m, f"README has no python block after <!-- {marker} -->"
    return m.group(1)


def test_readme_notebook_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # shipped scenarios resolve by name from any directory
    code = _readme_block("notebook-example")
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)  # noqa: S102 - the documented example
    assert isinstance(ns["table"], pd.DataFrame) and len(ns["table"]) > 20
    assert ns["fig"].axes


# --------------------------------------------------------------------------------------------
# plots


def _expected_overflow(v: np.ndarray) -> tuple[int, int]:
    """What the income histogram must count beyond its range: the central 99% of the values
    (numpy's default quantiles), widened when those coincide."""
    lo, hi = np.quantile(v, [0.005, 0.995])
    if hi <= lo:
        lo, hi = lo - 0.5 * max(abs(lo), 1.0), hi + 0.5 * max(abs(hi), 1.0)
    return int((v < lo).sum()), int((v > hi).sum())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e5, 1e5, allow_nan=False), min_size=12, max_size=400),
       st.floats(1.0, 1e6))
def test_overflow_labels_count_the_values_beyond_the_axis(values, tail):
    v = np.array(values)
    v[0], v[-1] = -tail * 50, tail * 50  # outliers at both ends
    n = len(v)
    mo = monthly_frame("buy_and_hold", n, 1, realised_pnl=v.reshape(n, 1))
    fig = plots.income_hist_figure(mo, ["buy_and_hold"])
    below, above = _expected_overflow(v)
    got = plots.overflow_counts(fig).get("realised P&L", (0, 0))
    assert got == (below, above)
    bars = [b for c in fig.axes[0].containers for b in c]
    if bars:  # the histogram holds exactly the values inside (none piled into the edge bins)
        assert sum(b.get_height() for b in bars) == n - below - above


def test_a_series_repeated_on_every_path_is_a_span_not_a_comb():
    n_paths, n_months = 300, 60
    interest = 300.0 * 1.003 ** np.arange(n_months)  # cash: one value per month, every path the same
    mo = monthly_frame("cash", n_paths, n_months, realised_pnl=np.tile(interest, (n_paths, 1)))
    fig = plots.income_hist_figure(mo, ["cash"])
    ax = fig.axes[0]
    assert ax.containers == []  # no histogram bars: a span over the values and a line at the median
    label = plots.series_labels(fig)[0]
    assert "the same on every path" in label and f"{interest[3]:,.0f}" not in label.split(":")[0]
    lo, hi = np.quantile(np.tile(interest, n_paths), [0.005, 0.995])
    inside = interest[(interest >= lo) & (interest <= hi)]
    assert f"{inside.min():,.0f} to {inside.max():,.0f}" in label
    # a continuous series of the same size is still a histogram
    rng = np.random.default_rng(1)
    mo = monthly_frame("cash", n_paths, n_months, realised_pnl=rng.normal(300, 20, (n_paths, n_months)))
    assert plots.income_hist_figure(mo, ["cash"]).axes[0].containers


def test_per_regime_and_paired_plots_show_the_summary():
    res = synthetic_result(n_paths=200)
    summary = mcsim.summarize(res)
    fig = plots.per_regime_figure(summary, list(res.strategies))
    assert len(fig.axes) == 6 and fig.legends
    bars = fig.axes[0].patches  # CAGR by dominant regime: one bar per (strategy, regime)
    regimes = summary["metrics"]["wheel"]["per_regime"]["regimes"]
    assert len(bars) == len(res.strategies) * len(regimes)
    first = list(regimes)[0]
    assert bars[0].get_height() == pytest.approx(regimes[first]["cagr"]["mean"])
    fig = plots.paired_figure(res.per_path, list(res.strategies))
    pair = mcsim.metrics.paired_comparison(res.per_path, "wheel", "buy_and_hold")
    labels = plots.series_labels(fig)
    assert f"mean {100 * pair['cagr']['mean_diff']:+.2f} pp" in labels
    lo, hi = pair["cagr"]["ci95"]
    assert f"95% CI [{100 * lo:+.2f}, {100 * hi:+.2f}]" in labels


# --------------------------------------------------------------------------------------------
# drawdown with withdrawals


def test_drawdown_with_withdrawals_is_on_equity_plus_cumulative_withdrawals():
    raw = {"run": {"horizon_years": 0.25, "initial_equity": 10_000.0, "risk_free_rate": 0.0,
                   "monthly_withdrawal": 500.0, "paths": 1},
           "underlyings": [{"name": "X", "spot": 100.0, "volatility": 0.2}]}
    sc = parse_scenario(raw)
    n = sc.run.n_steps  # 63 steps, months of 21
    t = np.arange(n + 1)
    spot = 100.0 * (1 + 0.08 * np.sin(t / 9.0)) * (1 + 0.001 * t)  # up, down, up: drawdowns of its own
    res = mcsim.run_strategies(sc, MarketPaths.from_arrays(spot, underlyings="X"))
    pp = res.per_path.set_index("strategy")
    # by hand: buy-and-hold sells shares pro rata at each month end to pay the withdrawal
    shares, paid = 10_000.0 / spot[0], 0.0
    equity, plus = [], []
    for k in t:
        if k > 0 and k % sc.run.month_steps == 0:
            pay = min(500.0, shares * spot[k])
            shares -= pay / spot[k]
            paid += pay
        equity.append(shares * spot[k])
        plus.append(equity[-1] + paid)
    equity, plus = np.array(equity), np.array(plus)
    dd_plus = float((plus / np.maximum.accumulate(plus) - 1).min())
    dd_equity = float((equity / np.maximum.accumulate(equity) - 1).min())
    assert pp.loc["buy_and_hold", "final_equity"] == pytest.approx(equity[-1], rel=1e-12)
    assert pp.loc["buy_and_hold", "max_drawdown"] == pytest.approx(dd_plus, rel=1e-12, abs=1e-15)
    assert dd_equity < dd_plus - 0.02  # the old measure counted the 1,500 paid out as a loss
    under = plus < np.maximum.accumulate(plus)
    longest = max(len(r) for r in "".join("1" if u else "0" for u in under).split("0"))
    assert pp.loc["buy_and_hold", "max_drawdown_days"] == longest
    # cash at r = 0 only pays out: no drawdown at all, though its equity falls by 1,500
    assert pp.loc["cash", "max_drawdown"] == 0.0 and pp.loc["cash", "final_equity"] == pytest.approx(8_500.0)
    assert pp.loc["cash", "min_equity"] == pytest.approx(8_500.0)  # ruin still looks at equity


# --------------------------------------------------------------------------------------------
# the command line


def test_printed_table_has_shortfall_legend_and_json_quiet(tiny, tmp_path, fake_engine, capsys):  # noqa: F811
    out = tmp_path / "r"
    assert cli.main(["run", str(tiny), "--paths", "40", "--out", str(out), "--set", "run.monthly_withdrawal=100"]) == 0
    text = capsys.readouterr().out.splitlines()
    head = next(i for i, l in enumerate(text) if l.startswith("strategy"))
    assert "P(shortfall)" in text[head]
    legend = text[head + 5]  # under the 4 rows: wheel, spread, buy_and_hold, cash
    assert legend.startswith("legend: ") and "P(shortfall) = " in legend
    assert "maxDD = max drawdown of equity + withdrawals" in legend
    # without withdrawals: no P(shortfall) column; --no-report (one run for both): no report.html
    assert cli.main(["run", str(tiny), "--paths", "40", "--out", str(tmp_path / "x"), "--no-report"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("strategy") or "\nstrategy" in printed
    assert "P(shortfall)" not in printed.split("legend:")[0]
    assert not (tmp_path / "x" / "report.html").exists()
    assert "report.html" not in io.read_marker(tmp_path / "x")["files"]
    # --json: exactly summary.json on stdout; --quiet: nothing
    assert cli.main(["run", str(tiny), "--paths", "40", "--out", str(tmp_path / "j"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "j" / "summary.json").read_text())
    assert cli.main(["run", str(tiny), "--paths", "40", "--out", str(tmp_path / "q"), "--quiet"]) == 0
    assert capsys.readouterr().out == ""


def test_compare_set_routes_strategy_keys_and_applies_the_rest(tiny, tmp_path, fake_engine, capsys):  # noqa: F811
    b = tmp_path / "b.toml"
    b.write_text(TINY.replace('name = "wheel"', 'name = "wheel_b"'))
    out = tmp_path / "cmp"
    assert cli.main(["compare", str(tiny), str(b), "--paths", "30", "--out", str(out), "--json",
                     "--set", "strategies.wheel.put.delta=0.2", "--set", "costs.commission_per_contract=1.5"]) == 0
    printed = json.loads(capsys.readouterr().out)
    comp = printed["provenance"]["compare"]
    assert comp["tiny"]["strategies"][0]["put"]["delta"] == 0.2
    assert comp["b"]["strategies"][0]["put"]["delta"] == 0.3
    assert comp["tiny"]["costs"]["commission_per_contract"] == comp["b"]["costs"]["commission_per_contract"] == 1.5
    # a market key goes to both files, so they still share a market; an unknown strategy is one line
    with pytest.raises(SystemExit) as e:
        cli.main(["compare", str(tiny), str(b), "--set", "strategies.nope.put.delta=0.2"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'no scenario compared defines a strategy "nope"' in err[0] and "wheel_b" in err[0]


def test_mcsim_report_rebuilds_the_page_atomically(tiny, tmp_path, fake_engine, capsys):  # noqa: F811
    out = tmp_path / "r"
    assert cli.main(["run", str(tiny), "--paths", "40", "--out", str(out), "--no-report"]) == 0
    capsys.readouterr()
    assert not (out / "report.html").exists()
    assert cli.main(["report", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out / 'report.html'}"
    page = (out / "report.html").read_text()
    assert all(f'id="{k}"' in page for k in report.SECTIONS) and page.count('src="data:image/png;base64,') == len(plots.PLOT_FILES)
    assert "report.html" in io.read_marker(out)["files"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r", "tiny.toml"]  # no staging left beside it
    io.check_target(out, force=True)  # still a result directory --force may replace
    assert cli.main(["run", str(tiny), "--paths", "40", "--out", str(out), "--force", "--quiet"]) == 0
    # not a result directory: one line, exit 2, nothing written
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(SystemExit) as e:
        cli.main(["report", str(plain)])
    assert e.value.code == 2 and list(plain.iterdir()) == []
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "RESULT_DIR" in err[0] and ".mcsim-result" in err[0]


def test_shipped_scenarios_are_package_data_of_the_wheel(tmp_path):
    """A wheel built from the repository carries scenarios/*.toml as mcsim/scenarios; unpacked
    alone (no repository beside it) it lists them and resolves a name from an empty directory."""
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    whl = next(wheels.glob("mcsim-*.whl"))
    shipped = sorted(f.name for f in (ROOT / "scenarios").glob("*.toml"))
    with zipfile.ZipFile(whl) as z:
        assert sorted(Path(n).name for n in z.namelist() if n.startswith("mcsim/scenarios/")) == shipped
        z.extractall(tmp_path / "site")
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}  # found before the editable install
    for args, want in ((["scenarios"], "spy_wheel.toml"), (["validate", "spy_wheel"], "ok: ")):
        p = subprocess.run([sys.executable, "-m", "mcsim", *args], cwd=empty, env=env, capture_output=True,
                           text=True, timeout=300)
        assert p.returncode == 0 and want in p.stdout, (p.stdout, p.stderr)
        assert str(tmp_path / "site" / "mcsim" / "scenarios") in p.stdout, p.stdout
    assert list(empty.iterdir()) == []


def test_a_net_premium_column_shows_everywhere_when_the_result_has_it():
    """The accounting issue adds monthly `net_premium`: the summary, the tidy table, the printed
    table, the income histogram and the report pick it up by name."""
    res = synthetic_result(n_paths=80)
    mo = res.monthly.assign(net_premium=res.monthly["premium"] * 0.75)
    res.monthly = mo
    summary = mcsim.summarize(res)
    inc = summary["metrics"]["wheel"]["income"]
    assert inc["net_premium"]["quantiles"]["p50"] == pytest.approx(0.75 * inc["premium"]["quantiles"]["p50"])
    frame = tables.summary_frame(summary)
    assert (frame["metric"] == "net_premium_p50").sum() == len(res.strategies)
    text = mcsim.metrics.format_table(summary)
    assert "net p50/mo" in text.splitlines()[0] and "net = premium minus buy-backs" in mcsim.metrics.table_legend(summary)
    labels = plots.series_labels(plots.income_hist_figure(mo, list(res.strategies)))
    assert any(lab.startswith("net premium (median") for lab in labels)
    page = report.build_report({"provenance": io.provenance(res), **summary}, res, {})
    assert "net_premium_p50" in page and "net premium" in page
    # without the column: nothing about it
    plain = mcsim.summarize(synthetic_result(n_paths=80))
    assert "net_premium" not in plain["metrics"]["wheel"]["income"]
    assert "net p50/mo" not in mcsim.metrics.format_table(plain)


def test_compare_report_describes_every_strategy(tiny, tmp_path, fake_engine, capsys):  # noqa: F811
    b = tmp_path / "b.toml"
    b.write_text(TINY)  # the same names: prefixed with the file stem
    out = tmp_path / "cmp"
    assert cli.main(["compare", str(tiny), str(b), "--paths", "30", "--out", str(out), "--quiet"]) == 0
    page = (out / "report.html").read_text()
    assert "<dt>tiny:wheel</dt>" in page and "<dt>b:spread</dt>" in page
    assert "rules not found" not in page and page.count("The wheel on SPY") == 2
    assert "# tiny" in page and "# b" in page  # both scenarios in full


def test_replace_result_file_never_leaves_an_unlisted_file(tiny, tmp_path, fake_engine, monkeypatch):  # noqa: F811
    out = tmp_path / "r"
    assert cli.main(["run", str(tiny), "--paths", "20", "--out", str(out), "--no-report", "--quiet"]) == 0
    real = io.os.replace
    calls = []

    def fail_second(a, b):
        calls.append(Path(b).name)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(a, b)

    monkeypatch.setattr(io.os, "replace", fail_second)
    with pytest.raises(io.OutputWriteError, match="No space left"):
        io.replace_result_file(out, "report.html", b"<html></html>")
    assert calls == [io.MARKER, "report.html"]  # the marker first, then the file
    assert not (out / "report.html").exists() and "report.html" in io.read_marker(out)["files"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r", "tiny.toml"]  # staging removed
    io.check_target(out, force=True)  # a listed file may be missing: still replaceable


def test_docs_link_only_to_files_in_the_repository():
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)[^)]*\)", doc.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path = (doc.parent / target).resolve()
            assert path.exists() and ROOT in path.parents, f"{doc.name} links to {target}"
