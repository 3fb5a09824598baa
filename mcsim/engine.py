"""The engine: chunks of paths through market generation and every strategy kernel.

`simulate` generates each chunk's market once (``generate_market``) and runs every strategy of
the scenario plus the baselines ``buy_and_hold`` and ``cash`` on the same arrays (common random
numbers). Memory per step lives only inside a chunk; what leaves a chunk is per path, or is
reduced as the chunk finishes: path-month data goes into each strategy's
`streaming.MonthlyStats` (per-path moments, a fixed-bin histogram), and only the first
`monthly_limit` paths keep their monthly rows (`Result.monthly`; `monthly_sink` receives every
chunk's rows, for `--monthly all`). So memory grows with paths (the per_path table), never with
paths x months or paths x steps; with `path_store` (what `mcsim run` uses) the per-path rows go to
disk as chunks fold (`mcsim.pathstore`) and memory does not grow with paths either. Every path is computed on its own and reductions over paths run
in path order at the end, so results are bit-identical for any chunk size and thread count.
A chunk is one call of `run_chunk_task` (a `ChunkSpec` in, a `ChunkOut` out, picklable): the
local engine calls it in a loop, the Dask engine (`mcsim/dask_engine.py`) as one task per chunk,
and both fold the `ChunkOut`s in path order, so the engine changes no bit either.
Table columns: docs/semantics.md "Result tables". Money in dollars.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from .market import BLOCK, MarketPaths, resolve_threads
from .market.source import chunk_generator
from .memory import check_market_run, check_replay, check_run
from .pathstore import ColumnStore, StoredColumns, StoredPaths
from .scenario import Scenario
from .validation import check_instance_arg, check_int_arg
from .strategies.kernel import run_paths
from .strategies.layout import ACTION_NAMES, LEG_NAMES, LOG_DT, MONTH_DT, PATH_DT, REASON_NAMES, records
from .strategies.params import all_strategies, to_kernel, with_steps
from .streaming import MonthlyStats

ENGINES = ("local", "dask")
MONTHLY_LIMIT = 10_000   # paths whose monthly rows `simulate` keeps by default (io.MONTHLY_SUBSET_PATHS)

__all__ = ["Result", "simulate", "run_strategies", "replay", "run_chunk_task", "ChunkSpec", "ChunkOut",
           "PER_PATH_COLUMNS", "MONTHLY_COLUMNS", "ENGINES"]

PER_PATH_COLUMNS = (
    "strategy", "path", "final_equity", "total_return", "cagr", "ann_vol", "sharpe", "sortino",
    "max_drawdown", "max_drawdown_days", "min_equity", "ruined", "premium_collected",
    "net_premium_collected", "realised_pnl", "options_sold", "puts_sold", "calls_sold", "spreads_sold", "assignments",
    "called_away", "early_assignments", "expired_worthless", "rolls", "profit_takes",
    "stop_losses", "closes", "close_dte_closes", "max_rolls_closes", "unable_to_roll_closes",
    "trades_won", "trades_lost", "avg_win", "avg_loss",
    "days_in_shares", "capital_used", "withdrawn", "shortfalls", "first_shortfall_month",
    "dominant_regime", "stressed_share",
)
MONTHLY_COLUMNS = ("strategy", "path", "month", "premium", "net_premium", "realised_pnl", "mtm_return",
                   "withdrawn", "shortfall", "equity", "partial")
LOG_COLUMNS = ("step", "action", "reason", "underlying", "kind", "strike", "long_strike", "expiry",
               "contracts", "price", "spot", "iv", "cash", "equity", "shares", "cost_basis")

# per_path columns copied from the kernel's PATH_DT fields of the same name (its other fields,
# sum_win / sum_loss / equity0, feed derived columns); integer fields give int64 columns
_COPIED = tuple(f for f in PATH_DT.names if f in PER_PATH_COLUMNS)
_MIN_THREAD_PATHS = 64   # below this many paths per thread a chunk runs on one thread
_RANGES_PER_THREAD = 8   # row ranges per thread in a chunk (load balance)
_STD_TINY = 1e-12        # a monthly std below this makes sharpe / sortino undefined (nan)


@dataclass(frozen=True, eq=False)
class Result:
    """Outcome of `simulate` / `run_strategies`.

    per_path: one row per (strategy, path) (a `pathstore.StoredPaths` on disk with
    `simulate(path_store=...)`). monthly: one row per (strategy, path, month) of the
    first `monthly_paths` paths only (by default the first 10,000, `simulate(monthly_limit=...)`;
    every path for `run_strategies`, `replay` and backtests); columns as in docs/semantics.md
    "Result tables". monthly_stats: strategy -> `streaming.MonthlyStats`, the path-month
    reductions over every path that `metrics.summarize` uses (None when `monthly` holds every
    path-month the summary needs). `path_steps_per_second` counts strategy path-steps
    (n_paths x n_steps x len(strategies)) per second of wall time, market generation included.
    `block_paths` is the random-stream block size (None for user-supplied paths).
    """

    per_path: pd.DataFrame
    monthly: pd.DataFrame
    scenario: Scenario
    seed: int | None
    n_paths: int
    n_steps: int
    chunk_paths: int
    block_paths: int | None
    wall_time: float
    path_steps_per_second: float
    strategies: tuple[str, ...]
    monthly_stats: dict | None = None
    monthly_paths: int | None = None

    # what a notebook shows (mcsim/notebook.py); the metrics are computed once per Result
    def summary(self) -> pd.DataFrame:
        """Tidy DataFrame: one row per (strategy, metric) with value, se, ci_low, ci_high (95%),
        unit and a legend; the same numbers as summary.json (`metrics.summarize`)."""
        from . import notebook

        return notebook.summary(self)

    def compare(self, against: str | tuple[str, ...] | None = None) -> pd.DataFrame:
        """The paired comparison: one row per pair (a, b) on the same paths, mean differences of
        CAGR, max drawdown and final equity with 95% CIs, and P(a beats b). `against`
        (e.g. "buy_and_hold") keeps the pairs against that strategy, flipped to (other, against)."""
        from . import notebook

        return notebook.compare(self, against)

    def plot(self, kind: str):
        """A matplotlib Figure: "income", "fan", "drawdown", "frequencies", "final", "regimes" or
        "paired" (the PNGs of a result directory)."""
        from . import notebook

        return notebook.plot(self, kind)

    def _repr_html_(self) -> str:
        from . import notebook

        return notebook.repr_html(self)

    def __repr__(self) -> str:
        from . import notebook

        return notebook.text_repr(self)


_MONTH_VALUES = ("premium", "net_premium", "realised_pnl", "mtm_return", "withdrawn", "equity")


@dataclass(frozen=True, eq=False)
class ChunkSpec:
    """What every chunk of one run shares: picklable, so a Dask task carries it whole.

    `kps` are the strategies' kernel parameters (`strategies.params.KernelParams`), `make_market`
    the scenario's chunk generator (`market.source.chunk_generator`: its parameters, a bootstrap's
    price history included, travel with it, so a worker needs no scenario files), `kept` the
    number of leading paths whose monthly rows are kept, `streamed` whether each chunk's
    path-month data is reduced into `streaming.MonthlyStats`. Steps are trading days.
    """

    scenario: Scenario
    n_steps: int
    month: int          # steps per reporting month
    n_months: int       # reporting months (the last may be partial)
    n_full: int         # full months
    names: tuple[str, ...]
    kps: tuple
    make_market: Callable | None
    kept: int
    streamed: bool

    @classmethod
    def build(cls, scenario: Scenario, n_paths: int, n_steps: int, monthly_limit: int | None = None,
              streamed: bool = False, market: bool = False) -> "ChunkSpec":
        rules = all_strategies(scenario)
        month = scenario.run.month_steps
        nm = -(-n_steps // month)
        return cls(scenario=scenario, n_steps=n_steps, month=month, n_months=nm, n_full=n_steps // month,
                   names=tuple(r.name for r in rules),
                   kps=tuple(with_steps(to_kernel(r, scenario), n_steps, nm) for r in rules),
                   make_market=chunk_generator(scenario) if market else None,
                   kept=n_paths if monthly_limit is None else min(n_paths, int(monthly_limit)),
                   streamed=streamed)


@dataclass(frozen=True, eq=False)
class ChunkOut:
    """What leaves one chunk of paths [first, first + rows): per path, or reduced.

    path: PATH_DT[n_strategies, rows]; stats: f8[n_strategies, rows, 3] (ann_vol, sharpe,
    sortino); regime: f8[rows, 2] (dominant regime, stressed share); kept: monthly column ->
    [n_strategies, keep * n_months] for the chunk's paths among the first `ChunkSpec.kept`
    (None when there are none); mstats: one `MonthlyStats` per strategy over the chunk's rows
    (None unless streamed); frame: the chunk's monthly rows of every path and strategy (only
    when asked for: `--monthly all`). Money in dollars.
    """

    first: int
    rows: int
    path: np.ndarray
    stats: np.ndarray
    regime: np.ndarray
    kept: dict | None
    mstats: tuple | None
    frame: pd.DataFrame | None


def run_chunk_task(spec: ChunkSpec, seed: int, first: int, take: int, threads: int = 1,
                   with_rows: bool = False, *, buf=None, pool=None) -> ChunkOut:
    """Generate paths [first, first + take) of `seed` and run every strategy on them.

    The one unit of work of both engines: the local loop calls it in path order, the Dask
    engine submits it as a task; a pure function of its arguments (market streams are seeded
    per block of paths), so every engine and chunking gives the same bits. `threads` is the
    number of threads inside the chunk; `with_rows` adds the chunk's monthly DataFrame.
    `buf` (reused market buffers) and `pool` (a thread pool of `threads` workers) are the
    local engine's, to avoid re-allocating per chunk.
    """
    spot, iv, reg = spec.make_market(seed, first, take, out=buf, threads=threads)
    if pool is None and threads > 1:
        with ThreadPoolExecutor(threads) as own:
            return chunk_out(spec, first, spot, iv, reg, threads, own, with_rows)
    return chunk_out(spec, first, spot, iv, reg, threads, pool, with_rows)


def chunk_out(spec: ChunkSpec, first: int, spot, iv, regime, threads: int, pool,
              with_rows: bool = False) -> ChunkOut:
    """Run every strategy of `spec` on market rows for global paths [first, first + len(spot))."""
    rows = spot.shape[0]
    n_reg = spec.scenario.regimes.count
    if regime.shape[0] and int(regime.max()) >= n_reg:
        raise ValueError(f"market regime {int(regime.max())} >= the scenario's {n_reg} regimes")
    n_s, nm = len(spec.kps), spec.n_months
    run = spec.scenario.run
    out_path = records((n_s, rows), PATH_DT)
    stats = np.zeros((n_s, rows, 3))
    keep = max(0, min(rows, spec.kept - first))   # rows of this chunk among the first `kept` paths
    kept = ({k: np.zeros((n_s, keep * nm)) for k in _MONTH_VALUES}
            | {"shortfall": np.zeros((n_s, keep * nm), dtype=np.bool_)}) if keep else None
    mstats = [] if spec.streamed else None
    sink_cols = [] if with_rows else None
    months = records((rows, nm), MONTH_DT)
    dummy_log = records(1, LOG_DT)
    bounds = _split(rows, threads)
    rf = math.exp(run.risk_free_rate * spec.month * run.dt) - 1.0
    for s, kp in enumerate(spec.kps):
        out_p = out_path[s]

        def task(b, kp=kp, out_p=out_p):
            run_paths(spot, iv, regime, b[0], b[1], kp.rules, out_p, months, dummy_log)

        if pool is None or len(bounds) == 1:
            for b in bounds:
                task(b)
        else:
            list(pool.map(task, bounds))
        eq0 = months["eq_start"]
        eq1 = months["eq_end"]
        wd = months["withdrawn"]
        with np.errstate(divide="ignore", invalid="ignore"):
            mtm = np.where(eq0 > 0.0, (eq1 + wd) / eq0 - 1.0, np.nan)
        cols = {"premium": months["premium"], "net_premium": months["net_premium"],
                "realised_pnl": months["realised_pnl"], "mtm_return": mtm, "withdrawn": wd, "equity": eq1}
        if keep:
            for k, v in cols.items():
                kept[k][s] = v[:keep].ravel()
            kept["shortfall"][s] = months["shortfall"][:keep].ravel() > 0
        if mstats is not None:
            st = MonthlyStats.empty(rows, spec.n_full, run.initial_equity)
            st.add(0, cols, eq1)
            mstats.append(st)
        if sink_cols is not None:
            sink_cols.append({k: v.ravel().copy() for k, v in cols.items()}
                             | {"shortfall": months["shortfall"].ravel() > 0})
        stats[s] = _return_stats(mtm[:, :spec.n_full], rf)
    return ChunkOut(first=first, rows=rows, path=out_path, stats=stats, regime=_regimes(spec, regime),
                    kept=kept, mstats=None if mstats is None else tuple(mstats),
                    frame=None if sink_cols is None else _chunk_frame(spec, first, rows, sink_cols))


def _regimes(spec: ChunkSpec, regime) -> np.ndarray:
    """(dominant regime, share of steps in the last, most stressed regime) per row."""
    n_reg = spec.scenario.regimes.count
    body = regime[:, 1:]
    counts = np.stack([(body == r).sum(axis=1) for r in range(n_reg)], axis=1)
    out = np.zeros((regime.shape[0], 2))
    out[:, 0] = np.argmax(counts, axis=1)
    out[:, 1] = counts[:, n_reg - 1] / max(spec.n_steps, 1)
    return out


def _strategy_col(names, reps):
    codes = np.repeat(np.arange(len(names), dtype=np.min_scalar_type(-len(names))), reps)
    return pd.Categorical.from_codes(codes, categories=list(names))


def _chunk_frame(spec: ChunkSpec, first, rows, sink_cols):
    """Monthly rows of paths [first, first + rows) of every strategy (strategy, path, month order)."""
    n_s, nm = len(spec.names), spec.n_months
    month = np.tile(np.arange(nm, dtype=np.int64), n_s * rows)
    cols = {
        "strategy": _strategy_col(spec.names, rows * nm),
        "path": np.tile(np.repeat(np.arange(first, first + rows, dtype=np.int64), nm), n_s),
        "month": month,
        **{k: np.concatenate([c[k] for c in sink_cols]) for k in _MONTH_VALUES + ("shortfall",)},
        "partial": (spec.n_steps % spec.month != 0) & (month == nm - 1),
    }
    return pd.DataFrame({k: cols[k] for k in MONTHLY_COLUMNS}, copy=False)


class _Plan:
    """The run's accumulators: every chunk's `ChunkOut` is folded in, in path order."""

    def __init__(self, spec: ChunkSpec, n_paths: int, threads: int | None, path_store=None):
        self.spec = spec
        self.scenario = spec.scenario
        run = spec.scenario.run
        self.n_paths = n_paths
        self.n_steps = spec.n_steps
        self.month = spec.month
        self.n_months = spec.n_months
        self.names = spec.names
        self.threads = resolve_threads(threads)
        n_s = len(self.names)
        # with a path store, per-path rows go to disk as chunks fold (`mcsim.pathstore`);
        # otherwise they accumulate here
        self.store = None if path_store is None else _open_store(path_store, n_s, n_paths)
        held = 0 if self.store is not None else n_paths
        self.out_path = records((n_s, held), PATH_DT)
        self.stats = np.zeros((n_s, held, 3))                # ann_vol, sharpe, sortino
        self.regime = np.zeros((held, 2))                    # dominant, stressed share
        # monthly rows kept for the first `kept` paths; the rest are reduced into `mstats`
        # (with a store: only its histograms stay in memory, the per-path state goes to disk)
        self.kept = spec.kept
        self.mstats = ([MonthlyStats.empty(held, spec.n_full, run.initial_equity) for _ in range(n_s)]
                       if spec.streamed else None)
        rows = n_s * self.kept * self.n_months
        self.m_cols = {k: np.zeros(rows) for k in _MONTH_VALUES}
        self.m_short = np.zeros(rows, dtype=np.bool_)
        self.folded = 0

    def fold(self, c: ChunkOut, sink=None) -> None:
        """Take in the next chunk (chunks come in path order); `sink` gets its monthly rows."""
        if c.first != self.folded:
            raise RuntimeError(f"engine: chunk at path {c.first} folded out of order (expected {self.folded})")
        sl = slice(c.first, c.first + c.rows)
        if self.store is not None:
            self._store_chunk(c)
        else:
            self.out_path[:, sl] = c.path
            self.stats[:, sl] = c.stats
            self.regime[sl] = c.regime
        if c.kept is not None:
            nm = self.n_months
            for s in range(len(self.names)):
                lo = (s * self.kept + c.first) * nm
                hi = lo + c.kept["shortfall"].shape[1]
                for k in _MONTH_VALUES:
                    self.m_cols[k][lo:hi] = c.kept[k][s]
                self.m_short[lo:hi] = c.kept["shortfall"][s]
        if self.mstats is not None and self.store is None:
            for st, part in zip(self.mstats, c.mstats):
                st.put(c.first, part)
        if sink is not None:
            sink(c.frame)
        self.folded = c.first + c.rows

    def _store_chunk(self, c: ChunkOut) -> None:
        """Write chunk `c`'s per-path rows (and per-path monthly reductions) into the store."""
        n_s, rows = len(self.names), c.rows
        cols = _path_columns(self.scenario.run, self.n_steps, c.path.reshape(n_s * rows),
                             c.stats.reshape(n_s * rows, 3), np.tile(c.regime, (n_s, 1)))
        for k, v in cols.items():
            v = v.reshape(n_s, rows)
            for s in range(n_s):
                self.store.write(k, s, c.first, v[s])
        if self.mstats is not None:
            for s, (st, part) in enumerate(zip(self.mstats, c.mstats)):
                for name in _MSTATS_STATE:
                    for k, v in getattr(part, name).items():
                        self.store.write(f"ms.{name}.{k}", s, c.first, v)
                for k, h in part.hist.items():
                    st.hist[k].merge(h)

    def _stored_stats(self) -> dict:
        out = {}
        for s, (name, st) in enumerate(zip(self.names, self.mstats)):
            full = MonthlyStats(self.n_paths, st.n_full, st.initial_equity, hist=st.hist)
            for part in _MSTATS_STATE:
                setattr(full, part, StoredColumns(self.store.store, f"ms.{part}.", s, getattr(st, part).keys()))
            out[name] = full
        return out

    def result(self, first_path, seed, chunk_paths, block_paths, wall):
        if self.store is not None:
            self.store = StoredPaths(self.store, self.names, PER_PATH_COLUMNS, first_path,
                                     np.min_scalar_type(-len(self.names)))
            stats = None if self.mstats is None else self._stored_stats()
            per_path = self.store
        else:
            stats = None if self.mstats is None else dict(zip(self.names, self.mstats))
            per_path = self._per_path(first_path)
        return Result(
            per_path=per_path,
            monthly=self._monthly_frame(first_path),
            scenario=self.scenario,
            seed=seed,
            n_paths=self.n_paths,
            n_steps=self.n_steps,
            chunk_paths=chunk_paths,
            block_paths=block_paths,
            wall_time=wall,
            path_steps_per_second=(self.n_paths * self.n_steps * len(self.names) / wall
                                   if wall > 0 else math.inf),
            strategies=self.names,
            monthly_stats=stats,
            monthly_paths=self.kept,
        )

    def _per_path(self, first_path):
        n_s, P = len(self.names), self.n_paths
        cols = {
            "strategy": _strategy_col(self.names, P),
            "path": np.tile(np.arange(first_path, first_path + P, dtype=np.int64), n_s),
            **_path_columns(self.scenario.run, self.n_steps, self.out_path.reshape(n_s * P),
                            self.stats.reshape(n_s * P, 3), np.tile(self.regime, (n_s, 1))),
        }
        return pd.DataFrame({k: cols[k] for k in PER_PATH_COLUMNS}, copy=False)

    def _monthly_frame(self, first_path):
        n_s, P, nm = len(self.names), self.kept, self.n_months
        month = np.tile(np.arange(nm, dtype=np.int64), n_s * P)
        partial = (self.n_steps % self.month != 0) & (month == nm - 1)
        cols = {
            "strategy": _strategy_col(self.names, P * nm),
            "path": np.tile(np.repeat(np.arange(first_path, first_path + P, dtype=np.int64), nm), n_s),
            "month": month,
            **self.m_cols,
            "shortfall": self.m_short,
            "partial": partial,
        }
        return pd.DataFrame({k: cols[k] for k in MONTHLY_COLUMNS}, copy=False)


_MSTATS_STATE = ("sums", "counts", "m2", "negative", "yields")   # MonthlyStats' per-path dicts


def _open_store(path_store, n_s: int, n_paths: int) -> ColumnStore:
    try:
        return ColumnStore(path_store, n_s, n_paths)
    except FileExistsError:
        raise ValueError(f"simulate: path_store = {str(path_store)!r} is not allowed (it already exists; "
                         "give a directory that does not exist yet)") from None


def _path_columns(run, n_steps: int, o: np.ndarray, st: np.ndarray, regime: np.ndarray) -> dict:
    """per_path columns but strategy and path, from PATH_DT records `o`, (ann_vol, sharpe,
    sortino) rows `st` and (dominant, stressed share) rows `regime`, all row-aligned.
    Elementwise only, so a chunk's rows get the same bits as the whole table's."""
    init = run.initial_equity
    final = o["final_equity"]
    years = n_steps / run.steps_per_year
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        cagr = np.where(final > 0.0, np.power(np.maximum(final, 0.0) / init, 1.0 / years) - 1.0, -1.0)
        won, lost = o["trades_won"].astype(np.float64), o["trades_lost"].astype(np.float64)
        avg_win = np.where(won > 0, o["sum_win"] / np.maximum(won, 1.0), np.nan)
        avg_loss = np.where(lost > 0, o["sum_loss"] / np.maximum(lost, 1.0), np.nan)
    cols = {
        "total_return": final / init - 1.0,
        "cagr": cagr,
        "ann_vol": st[:, 0].copy(),
        "sharpe": st[:, 1].copy(),
        "sortino": st[:, 2].copy(),
        "ruined": o["min_equity"] < run.ruin_level * init,
        "avg_win": avg_win,
        "avg_loss": avg_loss,
        "dominant_regime": regime[:, 0].astype(np.int64),
        "stressed_share": regime[:, 1].copy(),
    }
    for k in _COPIED:
        cols[k] = o[k].copy()
    return cols


def _split(rows: int, threads: int):
    """Contiguous row ranges for the thread pool: several per thread, so a thread that finishes
    early takes the next range (paths cost unequal time); one range on one thread or for a
    small chunk. Paths are independent, so the split never changes a result."""
    if threads <= 1:
        return [(0, rows)] if rows > 0 else [(0, 0)]
    k = max(1, min(threads * _RANGES_PER_THREAD, rows // _MIN_THREAD_PATHS))
    edges = np.linspace(0, rows, k + 1).astype(np.int64)
    return [(int(edges[i]), int(edges[i + 1])) for i in range(k) if edges[i + 1] > edges[i]] or [(0, 0)]


def _return_stats(ret: np.ndarray, rf: float) -> np.ndarray:
    """(ann_vol, sharpe, sortino) per row of full-month returns; nan when undefined."""
    out = np.full((ret.shape[0], 3), np.nan)
    k = ret.shape[1]
    if k < 2:
        return out
    with np.errstate(invalid="ignore", divide="ignore"):
        ex = ret - rf
        sd = np.std(ret, axis=1, ddof=1)
        sd_ex = np.std(ex, axis=1, ddof=1)
        mean_ex = np.mean(ex, axis=1)
        down = np.sqrt(np.mean(np.minimum(ex, 0.0) ** 2, axis=1))
        out[:, 0] = sd * math.sqrt(12.0)
        out[:, 1] = np.where(sd_ex > _STD_TINY, mean_ex / sd_ex * math.sqrt(12.0), np.nan)
        out[:, 2] = np.where(down > _STD_TINY, mean_ex / down * math.sqrt(12.0), np.nan)
    return out


def simulate(scenario: Scenario, n_paths: int | None = None, seed: int | None = None,
             chunk_paths: int | None = None, threads: int | None = None,
             progress: Callable[[int, int], None] | None = None, monthly_limit: int = MONTHLY_LIMIT,
             monthly_sink: Callable[[pd.DataFrame], None] | None = None, *, engine: str = "local",
             scheduler=None, path_store=None) -> Result:
    """Simulate every strategy of `scenario` (plus buy_and_hold and cash) on n_paths paths.

    Memory grows with n_paths (the per_path table), not with paths x months: the summary's
    path-month metrics come from `Result.monthly_stats`, reduced chunk by chunk. With
    `path_store` nothing grows with paths either: the per-path rows go to disk.

    Parameters
    ----------
    scenario : Scenario
    n_paths, seed, chunk_paths : int, optional
        Default to scenario.run.paths / seed / chunk_paths. Results do not depend on
        chunk_paths, threads or engine (bit-identical on one machine type).
    threads : int, optional
        Threads per chunk (default: numba's thread count for the local engine, 1 per Dask task).
    progress : callable, optional
        Called as ``progress(paths_done, n_paths)`` after each chunk (the CLI's progress bar).
    monthly_limit : int
        `Result.monthly` keeps the monthly rows of the first `monthly_limit` paths (default
        10,000; 0 keeps none). The summary uses every path whatever it is.
    monthly_sink : callable, optional
        Called with each chunk's monthly rows of every path and strategy (a DataFrame with the
        columns of `Result.monthly`), in path order: how `mcsim run --monthly all` writes them.
    engine : {"local", "dask"}
        "local" runs the chunks in this process; "dask" runs each chunk as a Dask task
        (`mcsim.dask_engine`, needs ``pip install 'mcsim[dask]'``) and folds the results in path
        order. A ``market.source = "history"`` backtest is one path and always runs locally.
    scheduler : str or distributed.Client, optional
        engine="dask" only: a scheduler address (``tcp://host:8786``) or a connected Client;
        default: a `LocalCluster` of one single-threaded worker process per CPU, for this call.
    path_store : path, optional
        A directory that does not exist yet: every chunk's per-path rows, and the per-path part
        of `Result.monthly_stats`, are written there as chunks finish (`mcsim.pathstore`), and
        `Result.per_path` is a `pathstore.StoredPaths` (columns read from disk on demand;
        `.to_frame()` gives the same DataFrame as without a store; `.close()` removes the
        directory). `mcsim run` uses one, so its memory does not grow with paths.
    """
    check_instance_arg("simulate", "scenario", scenario, Scenario, "a mcsim.Scenario (see mcsim.load_scenario)")
    run = scenario.run
    n_paths = check_int_arg("simulate", "n_paths", n_paths, lo=1, optional=True)
    seed = check_int_arg("simulate", "seed", seed, lo=0, hi=2**63 - 1, optional=True)
    chunk = check_int_arg("simulate", "chunk_paths", chunk_paths, lo=1, optional=True)
    check_int_arg("simulate", "threads", threads, lo=1, optional=True)
    monthly_limit = check_int_arg("simulate", "monthly_limit", monthly_limit, lo=0)
    if monthly_sink is not None and not callable(monthly_sink):
        raise TypeError(f"simulate: monthly_sink must be callable (got {type(monthly_sink).__name__})")
    if progress is not None and not callable(progress):
        raise TypeError(f"simulate: progress must be callable (got {type(progress).__name__})")
    if engine not in ENGINES:
        raise ValueError(f"simulate: engine = {engine!r} is not allowed (must be one of {', '.join(ENGINES)})")
    if scheduler is not None and engine != "dask":
        raise ValueError(f"simulate: scheduler = {scheduler!r} is not allowed with engine = {engine!r} "
                         "(it names the Dask scheduler of engine = \"dask\")")
    if scenario.market.source == "history":
        # a backtest: one path, the price history itself (mcsim/backtest.py)
        from .backtest import simulate_history

        return simulate_history(scenario, threads=threads)
    if engine == "dask":
        from . import dask_engine

        dask_engine.require()   # a missing extra fails before any work
    n_paths = run.paths if n_paths is None else n_paths
    seed = run.seed if seed is None else seed
    chunk = run.chunk_paths if chunk is None else chunk
    check_run(scenario, n_paths, chunk, stored=path_store is not None)
    t0 = time.perf_counter()
    # the model, or a bootstrap of a price history, travels with the spec
    spec = ChunkSpec.build(scenario, n_paths, run.n_steps, monthly_limit=monthly_limit, streamed=True,
                           market=True)
    if engine == "dask":
        plan = _Plan(spec, n_paths, 1, path_store)
        dask_engine.run_chunks(spec, seed, n_paths, chunk, threads or 1, monthly_sink is not None,
                               lambda c: _fold(plan, c, monthly_sink, progress), scheduler)
    else:
        plan = _Plan(spec, n_paths, threads, path_store)
        n_u = scenario.n_underlyings
        rows = min(chunk, n_paths)
        buf = (np.empty((rows, run.n_steps + 1, n_u)), np.empty((rows, run.n_steps + 1, n_u)),
               np.empty((rows, run.n_steps + 1), dtype=np.int8))
        pool = ThreadPoolExecutor(plan.threads) if plan.threads > 1 else None
        try:
            for first in range(0, n_paths, chunk):
                c = run_chunk_task(spec, seed, first, min(chunk, n_paths - first), plan.threads,
                                   monthly_sink is not None, buf=buf, pool=pool)
                _fold(plan, c, monthly_sink, progress)
        finally:
            if pool is not None:
                pool.shutdown()
    return plan.result(0, seed, chunk, BLOCK, time.perf_counter() - t0)


def _fold(plan: _Plan, c: ChunkOut, sink, progress) -> None:
    plan.fold(c, sink)
    if progress is not None:
        progress(plan.folded, plan.n_paths)


def _check_market(scenario: Scenario, market: MarketPaths, func: str):
    check_instance_arg(func, "scenario", scenario, Scenario, "a mcsim.Scenario (see mcsim.load_scenario)")
    check_instance_arg(func, "market", market, MarketPaths, "a mcsim.MarketPaths")
    if tuple(market.underlyings) != scenario.underlying_names:
        raise ValueError(f"market underlyings {market.underlyings} must equal the scenario's "
                         f"{scenario.underlying_names} (same names, same order)")
    if market.steps_per_year != scenario.run.steps_per_year:
        raise ValueError(f"market steps_per_year {market.steps_per_year} != scenario "
                         f"run.steps_per_year {scenario.run.steps_per_year}")
    if market.n_steps < 1:
        raise ValueError("market needs at least one step after step 0")


def run_strategies(scenario: Scenario, market: MarketPaths, threads: int | None = None) -> Result:
    """Run every strategy of `scenario` (plus the baselines) on the given paths.

    The horizon is the market's (market.n_steps steps); rows are paths market.first_path, ...
    """
    _check_market(scenario, market, "run_strategies")
    check_int_arg("run_strategies", "threads", threads, lo=1, optional=True)
    check_market_run(scenario, market)
    t0 = time.perf_counter()
    plan = _Plan(ChunkSpec.build(scenario, market.n_paths, market.n_steps), market.n_paths, threads)
    pool = ThreadPoolExecutor(plan.threads) if plan.threads > 1 else None
    try:
        plan.fold(chunk_out(plan.spec, 0, market.spot, market.atm_iv, market.regime, plan.threads, pool))
    finally:
        if pool is not None:
            pool.shutdown()
    return plan.result(market.first_path, None, market.n_paths, None, time.perf_counter() - t0)


def _strategy_rules(scenario: Scenario, strategy):
    for r in all_strategies(scenario):
        if r.name == strategy:
            return r
    names = ", ".join(r.name for r in all_strategies(scenario))
    from .errors import ScenarioError
    raise ScenarioError(f"strategy: {strategy!r} is not allowed (must be one of {names})")


def replay_market(scenario: Scenario, market: MarketPaths, strategy: str, row: int = 0) -> pd.DataFrame:
    """Trade log of one market row for one strategy (same kernel as `simulate`)."""
    _check_market(scenario, market, "replay_market")
    check_instance_arg("replay_market", "strategy", strategy, str, "a strategy name (str)")
    row = check_int_arg("replay_market", "row", row, lo=0, hi=market.n_paths - 1)
    rules = _strategy_rules(scenario, strategy)
    n = market.n_steps
    month = scenario.run.month_steps
    nm = -(-n // month)
    kp = with_steps(to_kernel(rules, scenario, log=True), n, nm)
    log = records(check_replay(scenario, kp, n, nm, market.n_paths), LOG_DT)
    out_p = records(market.n_paths, PATH_DT)
    months = records((market.n_paths, nm), MONTH_DT)
    rows = run_paths(market.spot, market.atm_iv, market.regime, row, row + 1, kp.rules, out_p,
                     months, log)
    if rows > log.shape[0]:
        # the kernel counts the rows it could not write: run again with a log of exactly that size
        log = records(rows, LOG_DT)
        run_paths(market.spot, market.atm_iv, market.regime, row, row + 1, kp.rules, out_p,
                  months, log)
    return _log_frame(log[:rows], market.underlyings)


def replay(scenario: Scenario, path: int, strategy: str, seed: int | None = None) -> pd.DataFrame:
    """Trade log of global path `path` for `strategy` (a scenario strategy or a baseline).

    The market of exactly that path is generated (same bits as in `simulate`), so the `end`
    row's equity equals that path's `final_equity` in `simulate(...).per_path`. Columns: step,
    action, underlying, kind, strike ($/share), expiry (step), contracts, price ($/share; withdraw:
    $ paid; end: final equity), spot ($), iv, cash ($), equity ($), cash and equity after the event.
    """
    check_instance_arg("replay", "scenario", scenario, Scenario, "a mcsim.Scenario (see mcsim.load_scenario)")
    path = check_int_arg("replay", "path", path, lo=0)
    check_instance_arg("replay", "strategy", strategy, str, "a strategy name (str)")
    seed = check_int_arg("replay", "seed", seed, lo=0, hi=2**63 - 1, optional=True)
    seed = scenario.run.seed if seed is None else seed
    if scenario.market.source == "history":
        from .backtest import replay_history

        if path != 0:
            raise ValueError(f"replay: path = {path} is not allowed (must be 0: market.source = \"history\" is one path)")
        return replay_history(scenario, strategy)
    spot, iv, reg = chunk_generator(scenario)(seed, path, 1)
    market = MarketPaths(spot, iv, reg, scenario.underlying_names, scenario.run.steps_per_year, int(path))
    return replay_market(scenario, market, strategy)


def _log_frame(log: np.ndarray, underlyings) -> pd.DataFrame:
    u = log["underlying"]
    k = log["kind"]
    names = np.array(list(underlyings) + [""], dtype=object)
    kinds = np.array(list(LEG_NAMES) + [""], dtype=object)
    acts = np.array(ACTION_NAMES, dtype=object)
    cols = {c: log[c].copy() for c in LOG_DT.names}
    cols["action"] = acts[log["action"]]
    cols["reason"] = np.array(REASON_NAMES, dtype=object)[log["reason"]]
    cols["underlying"] = names[np.where(u < 0, len(underlyings), u)]
    cols["kind"] = kinds[np.where(k < 0, len(LEG_NAMES), k)]
    return pd.DataFrame(cols, columns=list(LOG_COLUMNS))
