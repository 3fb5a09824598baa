"""The path store (issue 13, bounded memory): `simulate(path_store=...)` gives the same bits as
the in-memory table for any chunking, the summary and plots read it per strategy, `mcsim run`
writes the same paths.parquet and leaves no store behind, and its memory estimate stays flat."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mcsim
from mcsim import cli, memory, metrics
from mcsim.pathstore import ColumnStore, StoredPaths, strategy_groups
from mcsim.streaming import MonthlyStats

ROOT = Path(__file__).resolve().parent.parent
SPY = ROOT / "scenarios" / "spy_wheel.toml"
N = 1300


@pytest.fixture(scope="module")
def scenario():
    return mcsim.load_scenario(SPY, ["run.horizon_years=0.5"])


@pytest.fixture(scope="module")
def pair(scenario, tmp_path_factory):
    d = tmp_path_factory.mktemp("store")
    mem = mcsim.simulate(scenario, n_paths=N, seed=5, chunk_paths=500, monthly_limit=300)
    sto = mcsim.simulate(scenario, n_paths=N, seed=5, chunk_paths=700, monthly_limit=300,
                         path_store=d / "st")
    yield mem, sto
    sto.per_path.close()


def _without_run(s):
    s = dict(s)
    s.pop("run", None)
    return json.dumps(s, sort_keys=True, default=str)


def test_store_gives_the_in_memory_table_bit_for_bit(pair):
    mem, sto = pair
    assert isinstance(sto.per_path, StoredPaths)
    assert len(sto.per_path) == len(mem.per_path)
    pd.testing.assert_frame_equal(sto.per_path.to_frame(), mem.per_path, check_exact=True)
    groups = strategy_groups(sto.per_path)
    assert list(groups) == list(mem.strategies)
    for s, rows in groups.items():
        ref = mem.per_path[mem.per_path["strategy"] == s]
        assert len(rows) == len(ref)
        for c in ("final_equity", "max_drawdown", "assignments", "ruined", "path"):
            np.testing.assert_array_equal(rows[c].to_numpy(), ref[c].to_numpy())


def test_store_monthly_stats_and_summary_identical(pair):
    mem, sto = pair
    for s in mem.strategies:
        a, b = mem.monthly_stats[s], sto.monthly_stats[s]
        assert isinstance(a, MonthlyStats) and b.n_paths == a.n_paths
        for name in ("sums", "counts", "m2", "negative", "yields"):
            assert list(getattr(a, name)) == list(getattr(b, name))
            for k in getattr(a, name):
                np.testing.assert_array_equal(getattr(a, name)[k], getattr(b, name)[k])
        for k in a.hist:
            np.testing.assert_array_equal(a.hist[k].counts, b.hist[k].counts)
    assert _without_run(metrics.summarize(mem)) == _without_run(metrics.summarize(sto))


def test_store_plots_and_frequencies_match(pair):
    from mcsim import plots, tables

    mem, sto = pair
    names = list(mem.strategies)
    pd.testing.assert_frame_equal(tables.frequency_frame(sto.per_path, names, 0.5),
                                  tables.frequency_frame(mem.per_path, names, 0.5))
    assert tables.event_columns(sto.per_path) == tables.event_columns(mem.per_path)
    for fig in (plots.final_equity_figure(sto.per_path, names, 100_000.0),
                plots.drawdown_cdf_figure(sto.per_path, names),
                plots.paired_figure(sto.per_path, names)):
        assert fig.axes


def test_path_store_refuses_an_existing_directory(scenario, tmp_path):
    with pytest.raises(ValueError, match=r"path_store = .* is not allowed \(it already exists"):
        mcsim.simulate(scenario, n_paths=10, path_store=tmp_path)


@settings(max_examples=30, deadline=None)
@given(n_s=st.integers(1, 4), n=st.integers(1, 300), cuts=st.lists(st.integers(1, 299), max_size=5),
       dtype=st.sampled_from(["f8", "i8", "i4", "?"]))
def test_column_store_round_trip(tmp_path_factory, n_s, n, cuts, dtype):
    rng = np.random.default_rng(n * 7 + n_s)
    full = (rng.normal(size=(n_s, n)) * 100).astype(dtype)
    store = ColumnStore(tmp_path_factory.mktemp("cs") / "s", n_s, n)
    try:
        edges = sorted({0, n, *[c for c in cuts if c < n]})
        for lo, hi in reversed(list(zip(edges[:-1], edges[1:]))):     # any order of chunks
            for s in range(n_s):
                store.write("x", s, lo, full[s, lo:hi])
        for s in range(n_s):
            np.testing.assert_array_equal(store.read("x", s), full[s])
        with pytest.raises(ValueError, match="outside"):
            store.write("x", 0, n, full[0, :1])
    finally:
        store.close()
    assert not store.dir.exists()


def test_cli_run_writes_the_same_paths_parquet_and_no_store(tmp_path, scenario, pair):
    mem, _ = pair
    out = tmp_path / "res"
    code = cli.main(["run", str(SPY), "--paths", str(N), "--seed", "5", "--set", "run.horizon_years=0.5",
                     "--set", "run.chunk_paths=400", "--quiet", "--no-report", "--out", str(out)])
    assert code == 0
    assert not (out / cli.STORE_DIR).exists()
    assert not any(p.name.startswith(".per-path") for p in out.iterdir())
    df = pd.read_parquet(out / "paths.parquet")
    pd.testing.assert_frame_equal(df, mem.per_path, check_exact=True, check_categorical=False)
    assert pq.ParquetFile(out / "paths.parquet").metadata.num_row_groups == len(mem.strategies)
    from mcsim.io import read_provenance

    assert read_provenance(out / "paths.parquet")["n_paths"] == N


def test_stored_estimate_is_flat_in_paths(scenario):
    one = memory.estimate_run_bytes(scenario, 1_000_000, summarize=True, write=True, stored=True)
    four = memory.estimate_run_bytes(scenario, 4_000_000, summarize=True, write=True, stored=True)
    held = memory.estimate_run_bytes(scenario, 1_000_000, summarize=True, write=True)
    assert one < held / 3
    assert four < 2 * one
