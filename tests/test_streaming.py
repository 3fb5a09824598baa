"""Streaming reductions (issue 13): path-month metrics from `streaming.MonthlyStats` against the
exact values computed from every monthly row, identity across chunkings, the kept subset, the
histogram's stated bin error, and `mcsim run --monthly`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import mcsim
from mcsim import cli, io, metrics
from mcsim.streaming import BIN_WIDTH, SCALE_RETURN, SCALE_SHARE, Histogram

ROOT = Path(__file__).resolve().parent.parent
SPY = ROOT / "scenarios" / "spy_wheel.toml"
BOUND = BIN_WIDTH * math.exp(BIN_WIDTH)   # |error| <= BOUND (|q| + scale), docs/semantics.md
N = 1500


@pytest.fixture(scope="module")
def scenario():
    return mcsim.load_scenario(SPY, ["run.horizon_years=1"])


@pytest.fixture(scope="module")
def full(scenario):
    """Every path's monthly rows kept: the old, exact path of the summary is available."""
    return mcsim.simulate(scenario, n_paths=N, seed=21, chunk_paths=600, monthly_limit=N)


def _pairs(a, b, path=""):
    if isinstance(a, dict):
        for k in a:
            yield from _pairs(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            yield from _pairs(x, y, f"{path}[{i}]")
    else:
        yield path, a, b


def test_streamed_summary_against_exact(full, scenario):
    ctx = metrics.SummaryContext.from_result(full)
    exact = metrics.summarize_tables(full.per_path, full.monthly, ctx)   # from every monthly row
    streamed = metrics.summarize(full)                                    # from monthly_stats
    assert "histogram" in streamed["conventions"]["income_quantiles"]
    init = scenario.run.initial_equity
    n_quant = 0
    for path, a, b in _pairs(exact["metrics"], streamed["metrics"]):
        if "/income/" in path and ("/quantiles/" in path or "/quantile_ci/" in path):
            if a is None:
                assert b is None, path
                continue
            scale = SCALE_RETURN if "/mtm_return/" in path else SCALE_SHARE * init
            assert abs(a - b) <= BOUND * (abs(a) + scale), (path, a, b)
            if a == 0.0:
                assert b == 0.0, path      # exact zeros have a bin of their own
            n_quant += 1
        elif "/income/" in path and path.rsplit("/", 1)[-1] in ("mean", "std") and isinstance(a, float):
            assert b == pytest.approx(a, rel=1e-12, abs=0.0), path
        else:
            assert a == b, (path, a, b)    # counts, clustered se, shares, yields, regimes: same bits
    assert n_quant > 300


def test_summary_identical_for_any_chunking(full, scenario):
    ref = metrics.summarize(full)
    for chunk, threads in ((N, 1), (257, 2)):
        other = mcsim.simulate(scenario, n_paths=N, seed=21, chunk_paths=chunk, threads=threads, monthly_limit=100)
        pd.testing.assert_frame_equal(full.per_path, other.per_path, check_exact=True)
        s = metrics.summarize(other)
        assert s["metrics"] == ref["metrics"] and s["paired"] == ref["paired"]
        # the kept rows are the first 100 paths' rows of the full table
        first = full.monthly[full.monthly.path < 100].reset_index(drop=True)
        pd.testing.assert_frame_equal(other.monthly.reset_index(drop=True), first, check_exact=True)
        assert other.monthly_paths == 100


def test_monthly_sink_gets_every_row_in_chunks(full, scenario):
    got = []
    r = mcsim.simulate(scenario, n_paths=N, seed=21, chunk_paths=700, monthly_limit=0, monthly_sink=got.append)
    assert len(r.monthly) == 0 and len(got) == 3
    rows = pd.concat(got, ignore_index=True)
    key = ["strategy", "path", "month"]
    a = rows.sort_values(key, kind="stable").reset_index(drop=True)
    b = full.monthly.sort_values(key, kind="stable").reset_index(drop=True)
    a["strategy"] = a["strategy"].astype(str)
    b["strategy"] = b["strategy"].astype(str)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_histogram_error_bound_and_range():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.lognormal(5, 2, 20_000) * rng.choice([-1, 1], 20_000), np.zeros(3000),
                        rng.normal(0, 1e-3, 2000)])
    h = Histogram(0.1, 1e8)
    for part in np.array_split(x, 7):
        h.add(part)
    h.add(np.array([np.nan, np.inf]))       # non-finite values are not counted
    assert h.n == len(x) and h.out_of_range == 0
    for p in np.linspace(0, 1, 101):
        q = np.quantile(x, p)
        assert abs(h.quantile(p) - q) <= BOUND * (abs(q) + 0.1), p
    assert h.quantile(0.0) == x.min() and h.quantile(1.0) == x.max()
    big = Histogram(0.1, 10.0)
    big.add(np.array([-1e6, 1.0, 2.0, 5e5]))
    assert big.out_of_range == 2 and big.quantile(0.0) == -1e6 and big.quantile(1.0) == 5e5


def _run(tmp_path, name, *extra):
    out = tmp_path / name
    code = cli.main(["run", str(SPY), "--paths", "40", "--chunk-paths", "16", "--set", "run.horizon_years=0.25",
                     "--quiet", "--no-report", "--out", str(out), *extra])
    assert code == 0
    return out


def test_cli_monthly_modes(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "MONTHLY_SUBSET_PATHS", 10)   # the engine is told (cli._simulate)
    first = _run(tmp_path, "first")
    mo = pd.read_parquet(first / "monthly.parquet")
    assert sorted(mo.path.unique()) == list(range(10))
    assert io.read_provenance(first / "monthly.parquet")["monthly_paths"] == 10
    every = _run(tmp_path, "all", "--monthly", "all")
    f = pq.ParquetFile(every / "monthly.parquet")
    assert f.num_row_groups == 3                       # one row group per chunk of 16 paths
    prov = io.read_provenance(every / "monthly.parquet")
    assert prov["monthly_paths"] == 40 and prov["n_paths"] == 40
    allrows = pd.read_parquet(every / "monthly.parquet")
    assert sorted(allrows.path.unique()) == list(range(40))
    merged = allrows.merge(mo, on=["strategy", "path", "month"], suffixes=("", "_first"))
    assert len(merged) == len(mo) and (merged.equity == merged.equity_first).all()
    none = _run(tmp_path, "none", "--monthly", "none")
    assert not (none / "monthly.parquet").exists()
    assert "monthly.parquet" not in io.read_marker(none)["files"]
    s = [json.loads((d / "summary.json").read_text()) for d in (first, every, none)]
    assert s[0]["metrics"] == s[1]["metrics"] == s[2]["metrics"]   # the summary uses every path


def test_cli_monthly_bad_value(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", str(SPY), "--monthly", "some", "--out", str(tmp_path / "x")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--monthly" in err[0] and '"some"' in err[0] and "first, all, none" in err[0]
    assert not (tmp_path / "x").exists()


def _random_cols(rng, rows, nm):
    cols = {}
    for c, scale in (("premium", 1e3), ("net_premium", 1e3), ("realised_pnl", 1e3), ("mtm_return", 1e-2)):
        v = rng.standard_normal((rows, nm)) * scale
        v[rng.random((rows, nm)) < 0.05] = 0.0
        v[rng.random((rows, nm)) < 0.01] = np.nan
        v[rng.random((rows, nm)) < 0.002] = np.inf
        v[rng.random((rows, nm)) < 0.002] = 1e12      # beyond the regular bins
        cols[c] = v
    eq = 1e5 + rng.standard_normal((rows, nm)) * 3e4
    eq[rng.random((rows, nm)) < 0.01] = 0.0
    eq[rng.random((rows, nm)) < 0.01] = np.nan
    cols["premium"][:3] = np.nan                        # rows without a finite month
    return cols, eq


@pytest.mark.parametrize("nm", [1, 2, 7, 8, 12, 13, 60, 61, 129, 300])
def test_compiled_add_is_the_numpy_reduction_bit_for_bit(nm):
    """`MonthlyStats.add` (compiled) leaves exactly the state of `_add_numpy`, its numpy
    formulation (month-order sums, numpy's pairwise sum), and so does `Histogram.add`."""
    from mcsim.streaming import MonthlyStats

    rng = np.random.default_rng(nm)
    rows = 700
    nf = max(nm - 1, 0) if nm % 2 else nm           # a partial last month sometimes
    a = MonthlyStats.empty(2 * rows, nf, 1e5)
    b = MonthlyStats.empty(2 * rows, nf, 1e5)
    for first in (0, rows):
        cols, eq = _random_cols(rng, rows, nm)
        a.add(first, cols, eq)
        b._add_numpy(first, cols, eq)
    for name in ("sums", "counts", "m2", "negative", "yields"):
        for k, x in getattr(a, name).items():
            y = getattr(b, name)[k]
            assert x.dtype == y.dtype
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), (name, k)
            assert np.array_equal(np.signbit(x), np.signbit(y)), (name, k)
    for k, h in a.hist.items():
        g = b.hist[k]
        assert np.array_equal(h.counts, g.counts), k
        assert (h.lo, h.hi) == (g.lo, g.hi), k
