"""The Dask engine (issue 13): the same bits as the local engine, on a real `LocalCluster`.

One cluster of 2 single-threaded worker processes is shared by the module. Local vs Dask:
per_path, monthly, the streamed path-month reductions and the summary identical, at any chunk
size and thread count; a worker killed mid-run (Dask re-runs its chunks) changes nothing; the
CLI's `--engine dask` writes the same tables; without `distributed` a one-line message says
what to install. The local engine's own chunk/thread identity is tests/test_engine.py
(`test_chunk_size_identity`, `test_thread_count_identity`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mcsim
from mcsim import cli, dask_engine, metrics

distributed = pytest.importorskip("distributed")   # the test extra installs it (.ci/run)

sys.path.insert(0, str(Path(__file__).parent))
from test_history import _replay_file  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPY = ROOT / "scenarios" / "spy_wheel.toml"
N, CHUNK, SEED = 400, 100, 7   # 4 chunks


@pytest.fixture(scope="module")
def scenario():
    return mcsim.load_scenario(SPY, ["run.horizon_years=1"])


@pytest.fixture(scope="module")
def local(scenario):
    """The local engine's result (run first: its compiled kernels fill numba's cache, which the
    workers then load instead of compiling)."""
    return mcsim.simulate(scenario, n_paths=N, seed=SEED, chunk_paths=CHUNK, threads=1)


@pytest.fixture(scope="module")
def client(local):
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        c.wait_for_workers(2)
        yield c


def _summary(result) -> str:
    return json.dumps(metrics.to_jsonable(metrics.summarize(result)), sort_keys=True, allow_nan=False)


def _assert_same(a, b):
    pd.testing.assert_frame_equal(a.per_path, b.per_path, check_exact=True)
    pd.testing.assert_frame_equal(a.monthly, b.monthly, check_exact=True)
    assert a.monthly_stats.keys() == b.monthly_stats.keys()
    for s, x in a.monthly_stats.items():
        y = b.monthly_stats[s]
        for name in ("sums", "counts", "m2", "negative", "yields"):
            for k, v in getattr(x, name).items():
                assert np.array_equal(v, getattr(y, name)[k], equal_nan=True), (s, name, k)
        for k, h in x.hist.items():
            assert np.array_equal(h.counts, y.hist[k].counts) and (h.lo, h.hi) == (y.hist[k].lo, y.hist[k].hi)


def test_dask_equals_local(scenario, local, client):
    """4 chunks on 2 workers, reached by address: identical tables, reductions and summary;
    progress is reported once per chunk, in path order."""
    done = []
    res = mcsim.simulate(scenario, n_paths=N, seed=SEED, chunk_paths=CHUNK, engine="dask",
                         scheduler=client.scheduler.address, progress=lambda d, n: done.append((d, n)))
    assert done == [(k, N) for k in (100, 200, 300, 400)]
    _assert_same(local, res)
    assert _summary(local) == _summary(res)


@pytest.mark.parametrize("threads, chunk", [(2, 400), (1, 97), (2, 256)])
def test_dask_any_threads_and_chunking(scenario, local, client, threads, chunk):
    """1 or 2 threads inside each task, one chunk or chunks that straddle random-stream blocks."""
    res = mcsim.simulate(scenario, n_paths=N, seed=SEED, chunk_paths=chunk, threads=threads,
                         engine="dask", scheduler=client)
    _assert_same(local, res)


def test_monthly_sink_in_path_order(scenario, client):
    """`--monthly all`'s sink receives every chunk's rows in path order, as locally."""
    got = {}
    for engine in ("local", "dask"):
        parts = []
        mcsim.simulate(scenario, n_paths=300, seed=3, chunk_paths=70, monthly_limit=0, monthly_sink=parts.append,
                       engine=engine, **({"scheduler": client} if engine == "dask" else {}))
        got[engine] = pd.concat(parts, ignore_index=True)
    pd.testing.assert_frame_equal(got["local"], got["dask"], check_exact=True)
    assert len(got["dask"]) == 300 * 12 * got["dask"]["strategy"].nunique()


def test_bootstrap_market_travels_with_the_task(tmp_path, client):
    """A bootstrap scenario: the price history is in the task, so workers read no files."""
    from test_bootstrap import _scenario

    sc, _, _ = _scenario(tmp_path, paths=200, years=0.5)
    a = mcsim.simulate(sc, n_paths=200, chunk_paths=50, threads=1)
    b = mcsim.simulate(sc, n_paths=200, chunk_paths=50, engine="dask", scheduler=client)
    _assert_same(a, b)


def test_cli_engine_dask_writes_the_same_tables(tmp_path, local, client):
    """`mcsim run --engine dask --monthly all`: paths.parquet is the local per_path, monthly.parquet
    (written chunk by chunk, strategy-major within a chunk) holds the local monthly rows, and
    summary.json has the local summary's metrics."""
    out = tmp_path / "dask"
    assert cli.main(["run", str(SPY), "--paths", str(N), "--seed", str(SEED), "--chunk-paths", str(CHUNK),
                     "--set", "run.horizon_years=1", "--monthly", "all", "--no-report", "--quiet",
                     "--out", str(out), "--engine", "dask", "--scheduler", client.scheduler.address]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out / "paths.parquet"), local.per_path, check_exact=True)
    mo = pd.read_parquet(out / "monthly.parquet").sort_values(["strategy", "path", "month"], kind="stable")
    pd.testing.assert_frame_equal(mo.reset_index(drop=True), local.monthly, check_exact=True)
    assert json.loads((out / "summary.json").read_text())["metrics"] == json.loads(_summary(local))["metrics"]


def test_cli_history_runs_locally_with_a_note(tmp_path, client, capsys):
    _, sc = _replay_file(tmp_path)
    out = tmp_path / "h"
    assert cli.main(["run", str(sc), "--engine", "dask", "--scheduler", client.scheduler.address, "--quiet",
                     "--no-report", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert 'market.source = "history" is one path: it runs locally' in err
    assert (out / "paths.parquet").is_file()


def _one_line_exit(capsys, argv, code):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == code and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_missing_dask_one_line(monkeypatch, capsys, scenario):
    monkeypatch.setitem(sys.modules, "distributed", None)   # `import distributed` now fails
    err = _one_line_exit(capsys, ["run", "spy_wheel", "--engine", "dask", "--quiet"], 1)
    assert "--engine: dask needs the optional extra: pip install 'mcsim[dask]'" in err
    with pytest.raises(ImportError, match=r"pip install 'mcsim\[dask\]'"):
        mcsim.simulate(scenario, n_paths=10, engine="dask")


def test_bad_engine_and_scheduler_flags(monkeypatch, capsys, scenario, tmp_path):
    err = _one_line_exit(capsys, ["run", "spy_wheel", "--engine", "spark"], 2)
    assert '--engine: "spark" is not allowed (must be one of local, dask)' in err
    err = _one_line_exit(capsys, ["sweep", "spy_wheel", "--grid", "run.seed=1,2", "--scheduler", "tcp://h:1"], 2)
    assert '--scheduler: "tcp://h:1" is not allowed with --engine local' in err
    err = _one_line_exit(capsys, ["compare", "spy_wheel", "spy_wheel", "--paths", "10", "--engine", "dask",
                                  "--scheduler", "nope://x"], 2)
    assert "--scheduler: 'nope://x' is not allowed (must be a Dask scheduler address" in err
    monkeypatch.setattr(dask_engine, "CONNECT_TIMEOUT", "0.5s")
    err = _one_line_exit(capsys, ["run", "spy_wheel", "--paths", "10", "--engine", "dask", "--scheduler",
                                  "tcp://127.0.0.1:9", "--out", str(tmp_path / "never")], 1)
    assert "--scheduler: cannot connect to the Dask scheduler at tcp://127.0.0.1:9" in err
    assert not any(tmp_path.iterdir())
    with pytest.raises(ValueError, match="engine = 'spark' is not allowed"):
        mcsim.simulate(scenario, n_paths=10, engine="spark")
    with pytest.raises(ValueError, match="scheduler = 'tcp://h:1' is not allowed with engine = 'local'"):
        mcsim.simulate(scenario, n_paths=10, scheduler="tcp://h:1")


def test_worker_killed_mid_run_same_bits(scenario, local, client):
    """SIGKILL a worker that is running chunks right after the first chunk is folded: Dask re-runs
    its chunks on the other worker while the nanny restarts it, and the result is the same.
    Last in the module: it leaves a fresh worker process behind."""
    before = client.run(os.getpid)
    killed = []

    def kill_once(done, total):
        if killed:
            return
        busy = [w for w, keys in client.processing().items() if keys and w in before]
        if not busy and done < total // 2:   # between tasks: try at the next fold
            return
        victim = busy[0] if busy else next(iter(before))   # late in the run: kill one anyway
        os.kill(before[victim], signal.SIGKILL)
        killed.append(victim)

    # 20 chunks of 100 paths (tenths of a second each), so chunks are still running when the
    # first ones are folded, however fast the machine
    n = 2000
    want = mcsim.simulate(scenario, n_paths=n, seed=SEED, chunk_paths=n, threads=1)
    res = mcsim.simulate(scenario, n_paths=n, seed=SEED, chunk_paths=100, engine="dask", scheduler=client,
                         progress=kill_once)
    assert killed
    _assert_same(want, res)
    assert _summary(want) == _summary(res)
    client.wait_for_workers(2, timeout=120)
    assert before[killed[0]] not in client.run(os.getpid).values()
