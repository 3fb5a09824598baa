"""The `mcsim` command, result files and plots.

* In-process tests drive `mcsim.cli.main` with a stand-in engine (contract-conforming synthetic
  results) so the CLI, io and plots are tested without depending on the engine's numbers.
* Bad input: every case in process (exit 2, exactly one stderr line, no traceback); one case of
  each kind also as a subprocess, all started at once to share the start-up cost; SIGINT mid-run
  leaves no result directory.
* With the real engine: `mcsim run` end-to-end on a tiny scenario writes everything, and metrics
  recomputed from `paths.parquet` with pandas/numpy equal summary.json.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import mcsim
from mcsim import cli, io, plots, tables
from mcsim.scenario import load_scenario

sys.path.insert(0, str(Path(__file__).parent))
from test_metrics import INITIAL, monthly_frame, per_path_frame, synthetic_result  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RUN_FILES = {"summary.json", "paths.parquet", "monthly.parquet", "report.html", io.MARKER, *plots.PLOT_FILES.values()}

TINY = """\
# tiny: two regimes, a wheel and a spread ladder, a quarter of a year
title = "tiny test scenario"

[run]
horizon_years = 0.25
paths = 300
seed = 5
initial_equity = 100000.0

[regimes]
names = ["calm", "stressed"]
mean_duration_days = [40.0, 10.0]
exit_probabilities = [[0.0, 1.0], [1.0, 0.0]]

[[underlyings]]
name = "SPY"
spot = 100.0
volatility = [0.15, 0.40]
expiry_every_days = 5

[[strategies]]
name = "wheel"
kind = "wheel"
[strategies.put]
delta = 0.30
dte = 21
[strategies.call]
delta = 0.30
dte = 21

[[strategies]]
name = "spread"
kind = "bull_put_spread"
width = 5.0
[strategies.short_put]
delta = 0.20
dte = 30
[strategies.sizing]
position_fraction = 0.05
max_open = 2
"""


@pytest.fixture
def tiny(tmp_path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return p


# --------------------------------------------------------------------------------------------
# a stand-in engine: contract-conforming results for any scenario


def fake_simulate(scenario, n_paths=None, seed=None, chunk_paths=None, progress=None, path_store=None):
    n = int(n_paths or scenario.run.paths)
    seed = int(scenario.run.seed if seed is None else seed)
    rng = np.random.default_rng(seed)
    m_steps = scenario.run.month_steps
    n_steps = scenario.run.n_steps
    n_months = math.ceil(n_steps / m_steps)
    names = [s.name for s in scenario.strategies] + ["buy_and_hold", "cash"]
    common = rng.normal(0.005, 0.04, (n, n_months))
    pps, mos = [], []
    for k, s in enumerate(names):
        opt = s not in ("buy_and_hold", "cash")
        r = 0.5 * common + 0.001 * k if opt else (common if s == "buy_and_hold" else np.full((n, n_months), 0.003))
        eq = INITIAL * np.cumprod(1 + r, axis=1)
        full = np.hstack([np.full((n, 1), INITIAL), eq])
        fe = eq[:, -1]
        pps.append(per_path_frame(
            s, n, final_equity=fe, total_return=fe / INITIAL - 1,
            cagr=(fe / INITIAL) ** (1 / (n_steps / scenario.run.steps_per_year)) - 1,
            max_drawdown=(full / np.maximum.accumulate(full, axis=1) - 1).min(axis=1),
            min_equity=full.min(axis=1), options_sold=6 if opt else 0, puts_sold=4 if opt else 0,
            calls_sold=2 if opt else 0, assignments=rng.integers(0, 3, n) if opt else 0,
            called_away=1 if opt else 0, rolls=1 if opt else 0, dominant_regime=rng.integers(0, 2, n)))
        mos.append(monthly_frame(s, n, n_months, premium=400.0 if opt else 0.0,
                                 realised_pnl=rng.normal(200, 300, (n, n_months)), mtm_return=r,
                                 partial_last=n_steps % m_steps != 0))
    if progress is not None:
        progress(n, n)
    return types.SimpleNamespace(
        per_path=pd.concat(pps, ignore_index=True), monthly=pd.concat(mos, ignore_index=True), scenario=scenario,
        seed=seed, n_paths=n, n_steps=n_steps, chunk_paths=chunk_paths or scenario.run.chunk_paths,
        block_paths=1024, wall_time=0.25, path_steps_per_second=n * n_steps / 0.25, strategies=tuple(names))


def fake_replay(scenario, path, strategy, seed=None):
    return pd.DataFrame({"step": [0, scenario.run.n_steps], "action": ["sell_put", "end"],
                         "underlying": ["SPY", ""], "equity": [INITIAL, INITIAL + path]})


@pytest.fixture
def fake_engine(monkeypatch):
    monkeypatch.setattr(mcsim, "simulate", fake_simulate, raising=False)
    monkeypatch.setattr(mcsim, "replay", fake_replay, raising=False)


# --------------------------------------------------------------------------------------------
# plots


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == PNG_SIGNATURE


def test_plots_are_pngs_with_expected_series(tmp_path):
    res = synthetic_result(n_paths=120)
    names = list(res.strategies)  # wheel, buy_and_hold, cash
    files = plots.write_plots(res, tmp_path)
    assert sorted(files) == sorted(plots.PLOT_FILES.values())
    for f in files:
        assert _is_png(tmp_path / f), f
    # income: realised + premium for the option strategy, realised for each baseline
    f = plots.income_hist_figure(res.monthly, names)
    assert len(plots.series_labels(f)) == 2 + 1 + 1
    assert sum(ax.get_visible() for ax in f.axes) == len(names)
    # fan: per option strategy a band and a median, beside buy-and-hold's band and median
    assert len(plots.series_labels(plots.equity_fan_figure(res.monthly, names, INITIAL))) == 4
    assert plots.series_labels(plots.drawdown_cdf_figure(res.per_path, names)) == names
    # trade frequencies: one panel per option strategy, a bar for every exit-reason column
    f = plots.frequencies_figure(res.per_path, names, 0.5)
    reasons = ["expired_worthless", "profit_takes", "stop_losses", "closes", "rolls", "assignments", "called_away",
               "early_assignments"]
    assert tables.event_columns(res.per_path) == reasons
    assert [t.get_text() for t in f.axes[0].get_yticklabels()] == [tables.event_label(c, short=True) for c in reasons]
    assert len(f.axes[0].patches) == len(reasons)
    # a reason added later (an int64 per_path column) is picked up by name
    more = res.per_path.assign(unable_to_roll=np.int64(1), max_rolls_closes=np.int64(2))
    f = plots.frequencies_figure(more, names, 0.5)
    labels = [t.get_text() for t in f.axes[0].get_yticklabels()]
    assert labels[-1] == "unable to roll" and labels[labels.index("closed") + 1] == "- at max rolls"
    assert len(plots.series_labels(plots.final_equity_figure(res.per_path, names, INITIAL))) == 3
    df = pd.DataFrame({"k": [1, 1, 2, 2], "strategy": ["wheel", "spread"] * 2, "cagr_p50": [0.1, 0.2, 0.3, 0.4],
                       "p_ruin": [0.0, 0.01, 0.02, 0.03]})
    fig = plots.sweep_heatmap_figure(df, ["k"], "cagr_p50", ["wheel", "spread"])
    assert sum(len(ax.images) for ax in fig.axes) == 2


# --------------------------------------------------------------------------------------------
# io


def test_write_results_files_and_provenance(tmp_path):
    res = synthetic_result(n_paths=50)
    out = io.write_results(res, tmp_path / "r", overrides=["run.paths=50"])
    assert {p.name for p in out.iterdir()} == RUN_FILES
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # no temporary left beside it
    for f in ("paths.parquet", "monthly.parquet"):
        prov = io.read_provenance(out / f)
        assert prov["mcsim_version"] == mcsim.__version__
        assert prov["seed"] == 7 and prov["n_paths"] == 50 and prov["n_steps"] == 126
        assert prov["block_paths"] == 1024 and prov["wall_time_s"] == 0.5 and prov["path_steps_per_second"] > 0
        assert prov["scenario"]["run"]["paths"] == 4 and prov["overrides"] == ["run.paths=50"]
        assert prov["monthly_paths"] == 50
    summ = json.loads((out / "summary.json").read_text())
    assert summ["provenance"]["n_paths"] == 50 and summ["strategies"] == ["wheel", "buy_and_hold", "cash"]
    back = pd.read_parquet(out / "paths.parquet")
    pd.testing.assert_frame_equal(back, res.per_path, check_dtype=False)


def test_existing_output_needs_force_and_force_replaces_only_a_result(tmp_path):
    res = synthetic_result(n_paths=20)
    target = tmp_path / "r"
    io.write_results(res, target, plots=False)
    assert io.read_marker(target)["files"] == ["monthly.parquet", "paths.parquet", "summary.json"]
    with pytest.raises(io.OutputExistsError, match="--force"):
        io.write_results(res, target, plots=False)
    io.write_results(synthetic_result(n_paths=30), target, force=True, plots=False)
    assert json.loads((target / "summary.json").read_text())["provenance"]["n_paths"] == 30
    assert [p.name for p in tmp_path.iterdir()] == ["r"]
    (target / "notes.txt").write_text("mine")  # a file the user added: no longer only ours
    with pytest.raises(io.OutputExistsError, match="did not write"):
        io.write_results(res, target, force=True, plots=False)
    assert (target / "notes.txt").read_text() == "mine"


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    res = synthetic_result(n_paths=20)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(io, "write_json", boom)
    with pytest.raises(KeyboardInterrupt):
        io.write_results(res, tmp_path / "new" / "r", plots=False)
    assert list(tmp_path.iterdir()) == []  # neither the result, its temporary, nor the parent made for it


def test_monthly_subset_above_limit(tmp_path):
    res = synthetic_result(n_paths=30)
    io.write_result_files(res, tmp_path, plots=False, monthly_limit=10)
    mo = pd.read_parquet(tmp_path / "monthly.parquet")
    assert sorted(mo["path"].unique()) == list(range(10))
    prov = io.read_provenance(tmp_path / "monthly.parquet")
    assert prov["monthly_paths"] == 10 and "10 lowest path indices of 30" in prov["monthly_subset"]
    summ = json.loads((tmp_path / "summary.json").read_text())
    assert summ["metrics"]["wheel"]["n_paths"] == 30
    assert summ["metrics"]["wheel"]["income"]["premium"]["n"] == 30 * 5  # all paths, full months


# --------------------------------------------------------------------------------------------
# CLI in process, stand-in engine


def test_run_writes_results_and_prints_table(tiny, tmp_path, fake_engine, capsys):
    out = tmp_path / "res"
    assert cli.main(["run", str(tiny), "--paths", "40", "--seed", "9", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == RUN_FILES
    lines = text.splitlines()
    header = next(i for i, l in enumerate(lines) if l.startswith("strategy"))
    assert [l.split()[0] for l in lines[header + 1:header + 5]] == ["wheel", "spread", "buy_and_hold", "cash"]
    summ = json.loads((out / "summary.json").read_text())
    assert summ["provenance"]["seed"] == 9 and summ["provenance"]["n_paths"] == 40
    assert "run.paths=40" in summ["provenance"]["overrides"]
    assert summ["provenance"]["scenario"]["run"]["paths"] == 40
    with pytest.raises(SystemExit) as e:
        cli.main(["run", str(tiny), "--out", str(out)])
    assert e.value.code == 2


def test_compare_prefixes_clashing_names(tiny, tmp_path, fake_engine, capsys):
    b = tmp_path / "other.toml"
    b.write_text(TINY.replace("delta = 0.30\ndte = 21\n[strategies.call]", "delta = 0.20\ndte = 21\n[strategies.call]"))
    out = tmp_path / "cmp"
    assert cli.main(["compare", str(tiny), str(b), "--paths", "30", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    summ = json.loads((out / "summary.json").read_text())
    assert summ["strategies"] == ["tiny:wheel", "tiny:spread", "other:wheel", "other:spread", "buy_and_hold", "cash"]
    assert "tiny:wheel - buy_and_hold" in text and "paired" in text


def test_sweep_strategy_grid_runs_one_market(tiny, tmp_path, fake_engine, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(mcsim, "simulate", lambda sc, **k: calls.append(sc) or fake_simulate(sc, **k))
    out = tmp_path / "sw"
    assert cli.main(["sweep", str(tiny), "--grid", "strategies.wheel.put.delta=0.2,0.3",
                     "--grid", "strategies.wheel.sizing.position_fraction=0.5,1.0", "--paths", "30",
                     "--out", str(out)]) == 0
    assert len(calls) == 1  # every grid point on the same generated market
    assert [s.name for s in calls[0].strategies] == ["spread", "wheel@0", "wheel@1", "wheel@2", "wheel@3"]
    assert [s.put.delta for s in calls[0].strategies[1:]] == [0.2, 0.2, 0.3, 0.3]
    df = pd.read_parquet(out / "sweep.parquet")
    assert len(df) == 4 * 4 and set(df["strategy"]) == {"wheel", "spread", "buy_and_hold", "cash"}
    assert _is_png(out / plots.SWEEP_FILE)
    assert io.read_provenance(out / "sweep.parquet")["market_generated"] == "once for all grid points"


def test_sweep_market_grid_regenerates_with_same_seed(tiny, tmp_path, fake_engine, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(mcsim, "simulate", lambda sc, **k: calls.append(k) or fake_simulate(sc, **k))
    out = tmp_path / "sw"
    assert cli.main(["sweep", str(tiny), "--grid", "underlyings.SPY.spot=90,110", "--metric", "p_ruin",
                     "--paths", "30", "--out", str(out)]) == 0
    assert len(calls) == 2 and calls[0]["seed"] == calls[1]["seed"] == 5
    assert len(pd.read_parquet(out / "sweep.parquet")) == 2 * 4


def test_replay_picks_paths_and_writes_trades(tiny, tmp_path, fake_engine, capsys):
    out = tmp_path / "rp"
    assert cli.main(["replay", str(tiny), "--path", "worst", "--strategy", "wheel", "--paths", "30",
                     "--out", str(out)]) == 0
    res = fake_simulate(load_scenario(tiny, ["run.paths=30"]))
    w = res.per_path[res.per_path["strategy"] == "wheel"]
    worst = int(w.loc[w["final_equity"].idxmin(), "path"])
    log = pd.read_csv(out / "trades.csv")
    assert log["equity"].iloc[-1] == INITIAL + worst
    assert f"path {worst}" in capsys.readouterr().out


def test_scenarios_lists_shipped_files_and_validate_accepts_a_name(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # found beside the package, not only in the working directory
    assert cli.main(["scenarios"]) == 0
    out = capsys.readouterr().out
    shipped = sorted(p.name for p in (Path(cli.__file__).resolve().parent.parent / "scenarios").glob("*.toml"))
    assert shipped and all(name in out for name in shipped)
    assert "spy_wheel.toml" in out and "wheel" in out.lower()
    assert cli.main(["validate", "spy_wheel", "--set", "run.paths=10"]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


# --------------------------------------------------------------------------------------------
# CLI in subprocesses: bad input


def _mcsim(*args, cwd=None, **kw):
    return subprocess.Popen([sys.executable, "-m", "mcsim", *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _bad_input_cases(tmp_path: Path, tiny: Path) -> dict:
    """name -> (arguments, text the error line must contain, run it as a subprocess too)."""
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("title = 'x'\n[run\n")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(TINY.replace("seed = 5", "seed = 5\npathz = 3"))
    badval = tmp_path / "badval.toml"
    badval.write_text(TINY.replace("horizon_years = 0.25", "horizon_years = -1"))
    market = tmp_path / "market.toml"
    market.write_text(TINY.replace("spot = 100.0", "spot = 120.0"))
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep").write_text("x")
    return {
        # the cases of the issue; one of each kind of failure (file, TOML, scenario value, output,
        # argparse) also as a real subprocess, end to end
        "missing file": (["run", tmp_path / "nope.toml"], "nope.toml", True),
        "unreadable toml": (["run", bad_toml], "not valid TOML", True),
        "unknown key": (["run", unknown], "run.pathz", False),
        "bad value": (["run", tiny, "--set", "strategies.wheel.put.delta=1.5"], "strategies.wheel.put.delta", True),
        "unknown strategy in --set": (["run", tiny, "--set", "strategies.nope.put.delta=0.2"], "strategies.nope", False),
        "existing output": (["run", tiny, "--out", existing], "--force", True),
        "bad --paths": (["run", tiny, "--paths", "0"], "--paths", True),
        # the same handling on the other commands, in process
        "unknown key in --set": (["run", tiny, "--set", "run.foo=1"], "run.foo", False),
        "bad value in file": (["validate", badval], "run.horizon_years", False),
        "bad --set syntax": (["validate", tiny, "--set", "novalue"], "--set", False),
        "bad --grid": (["sweep", tiny, "--grid", "strategies.wheel.put.delta"], "--grid", False),
        "unknown --grid strategy": (["sweep", tiny, "--grid", "strategies.zz.put.delta=0.1,0.2"], "strategies.zz", False),
        "bad --metric": (["sweep", tiny, "--grid", "strategies.wheel.put.delta=0.1", "--metric", "zz"], "--metric", False),
        "unknown replay strategy": (["replay", tiny, "--path", "1", "--strategy", "zz"], "--strategy", False),
        "replay path out of range": (["replay", tiny, "--path", "300", "--strategy", "wheel"], "--path", False),
        "compare different markets": (["compare", tiny, market], "[underlyings]", False),
        "compare one file": (["compare", tiny], "at least 2", False),
        "unknown command": (["frobnicate"], "frobnicate", False),
    }


def _check_error(name, code, err, want) -> list[str]:
    lines = err.splitlines()
    if code != 2 or len(lines) != 1 or "Traceback" in err or want not in err:
        return [f"{name}: rc={code} stderr={err!r}"]
    return []


def test_bad_input_one_line_exit_2_in_process(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    failures = []
    for name, (args, want, _) in _bad_input_cases(tmp_path, tiny).items():
        with pytest.raises(SystemExit) as e:
            cli.main([str(a) for a in args])
        failures += _check_error(name, e.value.code, capsys.readouterr().err, want)
    assert not failures, "\n".join(failures)
    assert [p.name for p in (tmp_path / "existing").iterdir()] == ["keep"]
    assert not (tmp_path / "results").exists()


def test_bad_input_one_line_exit_2_subprocess(tiny, tmp_path):
    cases = {k: v for k, v in _bad_input_cases(tmp_path, tiny).items() if v[2]}
    procs = {name: _mcsim(*args, cwd=tmp_path) for name, (args, _, _) in cases.items()}  # all at once
    failures = []
    for name, p in procs.items():
        _, err = p.communicate(timeout=300)
        failures += _check_error(name, p.returncode, err, cases[name][1])
    assert not failures, "\n".join(failures)
    assert [p.name for p in (tmp_path / "existing").iterdir()] == ["keep"]
    assert not (tmp_path / "results").exists()


_SLOW_ENGINE = textwrap.dedent("""
    # A stand-in engine that never finishes; the last argument is a marker file it writes on entry.
    import pathlib, sys, time, mcsim, mcsim.cli
    marker = pathlib.Path(sys.argv[-1])
    def slow(scenario, n_paths=None, seed=None, chunk_paths=None, progress=None, path_store=None):
        marker.write_text("simulating")
        time.sleep(60)
    mcsim.simulate = slow
    sys.exit(mcsim.cli.main(sys.argv[1:-1]))
""")


def _as_from_a_terminal():
    """preexec_fn: SIGINT at its default in the child, as in a shell a user presses Ctrl-C in.
    A command started in the background of a non-interactive shell inherits SIGINT ignored
    (and then rightly ignores it); this suite may be started that way, the tests must not be."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt_when(proc, ready, timeout=60.0):
    t0 = time.time()
    while not ready():
        if proc.poll() is not None or time.time() - t0 > timeout:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"never got mid-run: rc={proc.returncode} {out!r} {err!r}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=60)


def test_sigint_mid_run_leaves_no_result(tiny, tmp_path):
    out = tmp_path / "results" / "tiny"
    marker = tmp_path / "simulating"
    p = subprocess.Popen([sys.executable, "-c", _SLOW_ENGINE, "run", str(tiny), "--out", str(out), str(marker)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_as_from_a_terminal)
    _, err = _interrupt_when(p, marker.exists)
    assert p.returncode == 130 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "results").exists()


# --------------------------------------------------------------------------------------------
# the real engine


def test_run_end_to_end_and_recompute_from_parquet(tiny, tmp_path):
    out = tmp_path / "res"
    p = _mcsim("run", tiny, "--out", out, cwd=tmp_path)
    stdout, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    assert {f.name for f in out.iterdir()} == RUN_FILES
    for f in plots.PLOT_FILES.values():
        assert _is_png(out / f)
    summ = json.loads((out / "summary.json").read_text())
    pp = pd.read_parquet(out / "paths.parquet")
    mo = pd.read_parquet(out / "monthly.parquet")
    prov = io.read_provenance(out / "paths.parquet")
    assert prov["n_paths"] == 300 and prov["seed"] == 5 and prov["n_steps"] == 63
    assert prov["scenario"]["title"] == "tiny test scenario" and prov["block_paths"]
    assert pq.read_schema(out / "monthly.parquet").metadata[b"mcsim"]
    names = ["wheel", "spread", "buy_and_hold", "cash"]
    assert summ["strategies"] == names and list(pd.unique(pp["strategy"])) == names
    assert len(pp) == 4 * 300 and pp.groupby("strategy")["path"].nunique().eq(300).all()
    years = 63 / 252
    for s in names:
        g = pp[pp["strategy"] == s].sort_values("path")
        m = summ["metrics"][s]
        # the engine's per-path CAGR follows its definition
        cagr = np.where(g["final_equity"] > 0, (g["final_equity"] / INITIAL) ** (1 / years) - 1, -1.0)
        np.testing.assert_allclose(g["cagr"], cagr, rtol=1e-9, atol=1e-12)
        assert m["cagr"]["mean"] == pytest.approx(g["cagr"].mean(), rel=1e-12)
        assert m["cagr"]["se"] == pytest.approx(g["cagr"].std() / math.sqrt(300), rel=1e-9, abs=1e-15)
        for q in ("p1", "p5", "p25", "p50", "p75", "p95", "p99"):
            assert m["cagr"]["quantiles"][q] == pytest.approx(g["cagr"].quantile(int(q[1:]) / 100), rel=1e-12, abs=1e-15)
            assert m["final_equity"]["quantiles"][q] == pytest.approx(g["final_equity"].quantile(int(q[1:]) / 100), rel=1e-12)
        depth = -g["max_drawdown"]
        assert m["max_drawdown_depth"]["quantiles"]["p95"] == pytest.approx(depth.quantile(0.95), abs=1e-15)
        for t in (10, 20, 30, 50):
            assert m["p_max_drawdown_above"][f"{t}pct"]["p"] == pytest.approx((depth > t / 100).mean())
        assert m["ruin"]["p"] == pytest.approx(g["ruined"].mean())
        r = np.sort(g["total_return"].to_numpy())
        assert m["var"]["95"]["var"] == pytest.approx(-r[math.ceil(300 * 0.05) - 1])
        assert m["var"]["95"]["cvar"] == pytest.approx(-r[:15].mean())
        full = mo[(mo["strategy"] == s) & ~mo["partial"]]
        assert m["income"]["premium"]["mean"] == pytest.approx(full["premium"].mean(), rel=1e-12, abs=1e-9)
        # path-month quantiles come from the streamed histogram: its stated bound (docs/semantics.md)
        from mcsim.streaming import BIN_WIDTH, SCALE_SHARE
        q5 = full["realised_pnl"].quantile(0.05)
        bound = BIN_WIDTH * math.exp(BIN_WIDTH) * (abs(q5) + SCALE_SHARE * INITIAL)
        assert abs(m["income"]["realised_pnl"]["quantiles"]["p5"] - q5) <= bound
        sold = g["puts_sold"].sum() + g["spreads_sold"].sum()
        rate = m["trading"]["assignment_rate"]["rate"]
        assert (rate is None and sold == 0) or rate == pytest.approx(g["assignments"].sum() / sold)
        dom = g["dominant_regime"].to_numpy()
        assert m["per_regime"]["regimes"]["stressed"]["n_paths"] == int((dom == 1).sum())
    bh = pp[pp["strategy"] == "buy_and_hold"].set_index("path").sort_index()
    for pair in summ["paired"]:
        a = pp[pp["strategy"] == pair["a"]].set_index("path").sort_index()
        b = pp[pp["strategy"] == pair["b"]].set_index("path").sort_index()
        d = a["cagr"] - b["cagr"]
        assert pair["cagr"]["mean_diff"] == pytest.approx(d.mean(), abs=1e-15)
        assert pair["cagr"]["se"] == pytest.approx(d.std() / math.sqrt(300), rel=1e-9, abs=1e-15)
        assert pair["p_a_final_greater"]["p"] == pytest.approx((a["final_equity"] > b["final_equity"]).mean())
    w = pp[pp["strategy"] == "wheel"].set_index("path").sort_index()
    assert w["options_sold"].gt(0).mean() > 0.5
    table = stdout.splitlines()
    row = next(l for l in table if l.startswith("wheel"))
    p_beats = (w["final_equity"] > bh["final_equity"]).mean()
    assert row.split()[-1] == f"{100 * p_beats:.1f}%"


def test_real_engine_sigint_mid_run_leaves_no_result(tiny, tmp_path):
    out = tmp_path / "results" / "big"
    p = _mcsim("run", tiny, "--paths", "60000", "--chunk-paths", "1024", "--set", "run.horizon_years=5",
               "--out", out, cwd=tmp_path, preexec_fn=_as_from_a_terminal)

    seen = []

    def ready():  # the temporary exists (scenario loaded, simulating), then one more second
        if not seen and any(c.name.startswith(".big.tmp-") for c in tmp_path.glob("results/.*")):
            seen.append(time.time())
        return bool(seen) and time.time() - seen[0] > 1.0

    _interrupt_when(p, ready)
    assert p.returncode == 130
    assert not out.exists() and not (tmp_path / "results").exists()
