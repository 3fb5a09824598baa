"""Pre-flight estimate of peak memory, and refusing runs that cannot fit.

Every entry point that allocates in proportion to paths, steps or positions asks this module
first (`engine.simulate`, `engine.run_strategies`, `engine.replay_market`, and the CLI's `run`,
`compare`, `sweep` and `replay` for what they keep and write afterwards). A run whose estimate exceeds the
budget is refused with `MemoryBudgetError` (a `ScenarioError`: the CLI prints it as one line and
exits 2) before anything is allocated or written.

What is estimated (bytes; P paths, R = min(chunk_paths, P) rows per chunk, n steps, U
underlyings, S strategies including the 2 baselines, NM months; see `_sizes` for the per-row
widths, read from the kernel's constants in one place):

* market chunk buffers: spot and ATM IV (R x (n+1) x U float64 each), regime (R x (n+1) int8),
  and the scheduled-shock tables of `market_params`;
* the run's output arrays (`engine._Plan`): per (strategy, path) N_F + 3 floats and the streamed
  path-month state (`streaming.MonthlyStats`: 4 columns x 24 bytes + 3 yields), per (strategy,
  kept path, month) 5 floats and a flag, where only the first K = min(P, MONTHLY_SUBSET_PATHS)
  paths keep monthly rows (`run_strategies` keeps every path), per path 2 floats, and the
  histograms (4 per strategy, fixed size);
* per chunk: the month buffer (R x NM x N_M floats) and the temporaries of the monthly and
  regime reductions;
* the result DataFrames built at the end (`_Plan.result`): pandas keeps the plan's monthly
  columns without copying (`copy=False`), and adds the per-path table, path/month/strategy/
  partial columns and their temporaries;
* `metrics.summarize` (grouping copies of both tables, one strategy's sorted path-month vectors);
* what `mcsim run` writes (`io.write_result_files`: Arrow copies of both tables; plots: the
  income histogram's grouping copy, the equity fan's pivot).

`replay`: the trade log (its rows bounded from the kernel's rules, `replay_log_rows`), the
market of the replayed rows and, for `--path worst|median|best`, a `simulate` of the whole run.
`sweep`: a strategy-only sweep simulates one combined scenario with one strategy per grid point;
a market sweep simulates the points one after another and keeps only their metric rows.

Measured against peak RSS (tests/test_memory.py; spy_wheel, 4 portfolios; RSS above the process
after imports and compilation, the peak reset through /proc/self/clear_refs): `simulate` +
`summarize` measured / estimate = 0.64-0.81 at 20k-60k paths x 63 steps, 0.88 at 10k paths x 504
steps in a fresh process (the test accepts [MEASURED_LO, MEASURED_HI] = [0.5, 1.5]; inside a
long pytest session a fixed 40-90 MB more was seen, 1.15 at 20k paths); the whole `mcsim run` 0.72-0.83
(20k and 50k paths x 1,260 steps, 200k x 252). Below ~20 MB the allocator reuses memory freed
during start-up and the estimate is only an upper bound. The estimate errs high on purpose.

Budget: `MCSIM_MEMORY_LIMIT` if set (bytes, or with a suffix K, M, G, T = KiB, MiB, GiB, TiB;
e.g. "512M"), else BUDGET_SHARE of the memory available: MemAvailable from /proc/meminfo, capped
by the cgroup limit minus its usage less reclaimable page cache (cgroup v2 memory.max /
memory.current / memory.stat inactive_file, v1 memory.limit_in_bytes / memory.usage_in_bytes /
total_inactive_file); when none is readable, half the physical memory
(os.sysconf), else FALLBACK_BYTES. Never more than MAX_BYTES (an absolute cap, so a wrong
reading cannot let an absurd run through; the environment variable overrides it too).
Hard caps independent of memory: run.paths <= MAX_PATHS, sweep grids <= MAX_GRID_POINTS.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from .errors import ScenarioError

__all__ = [
    "MemoryBudgetError", "MAX_PATHS", "MAX_GRID_POINTS", "MAX_BYTES", "FALLBACK_BYTES",
    "BUDGET_SHARE", "ENV_LIMIT", "available_bytes", "budget_bytes", "estimate_run_bytes",
    "estimate_replay_bytes", "estimate_sweep_bytes", "estimate_compare_bytes", "replay_log_rows",
    "check", "check_run", "check_compare", "check_replay_command", "sweep_strategies",
    "check_market_run", "check_replay", "check_sweep", "format_bytes", "parse_bytes",
]

MAX_PATHS = 10**9            # run.paths upper bound (validation), whatever the memory
MAX_GRID_POINTS = 1_000      # sweep grid points upper bound (e.g. 31 x 31), whatever the memory
MAX_BYTES = 1 << 40          # absolute cap of the budget: 1 TiB
FALLBACK_BYTES = 4 << 30     # budget base when neither /proc/meminfo, cgroups nor sysconf answer
BUDGET_SHARE = 0.85          # share of the available memory a run may plan to use
ENV_LIMIT = "MCSIM_MEMORY_LIMIT"
BASE_OVERHEAD = 16 << 20     # small per-run allocations (kernel tables, thread pools, pandas)
WRITE_OVERHEAD = 128 << 20   # matplotlib, Arrow / Parquet writers, rendering (measured ~100 MB)
MEASURED_LO, MEASURED_HI = 0.5, 1.5

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class MemoryBudgetError(ScenarioError):
    """A run, sweep or replay whose estimated peak memory exceeds the budget."""


# --------------------------------------------------------------------------------------------
# sizes read from the kernel's constants (the one place to change when they change)


def _sizes() -> dict:
    """Widths in bytes of the engine's rows (from the kernel's record dtypes and engine's column
    lists)."""
    from . import engine
    from .strategies.layout import LOG_DT, MONTH_DT, PATH_DT

    n_pp = len(engine.PER_PATH_COLUMNS)
    n_mo = len(engine.MONTHLY_COLUMNS)
    from .streaming import HIST_BYTES, PATH_BYTES

    return {
        "out_path": PATH_DT.itemsize + 8 * 3,  # _Plan.out_path + stats, per (strategy, path)
        "mstats_path": PATH_BYTES,             # streamed path-month state, per (strategy, path)
        "mstats_fixed": HIST_BYTES,            # its histograms, per strategy
        "month_buf": MONTH_DT.itemsize,        # run_chunk's months, per (row, month)
        "log_row": LOG_DT.itemsize,            # replay log, per row
        # per-path frame: strategy codes (1 byte), ruined (bool), every other column 8 bytes
        "pp_row": 8 * (n_pp - 2) + 2,
        # monthly frame: strategy (1), shortfall (1), partial (1), every other column 8 bytes
        "mo_row": 8 * (n_mo - 3) + 3,
        "plan_month": 8 * 5 + 1,            # _Plan.m_cols (5 floats) + m_short, kept by the frame
    }


# --------------------------------------------------------------------------------------------
# budget


def parse_bytes(text: str) -> int:
    """ "123", "512M", "2G", "1.5GiB", "4 GB" -> bytes (binary units)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([KMGT]?)(?:I?B)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise ScenarioError(f'{ENV_LIMIT}: "{text}" is not allowed (must be bytes, optionally with a '
                            f'suffix K, M, G or T, e.g. 512M or 8G)')
    v = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if not math.isfinite(v) or v < 1:
        raise ScenarioError(f'{ENV_LIMIT}: "{text}" is not allowed (must be at least 1 byte)')
    return int(v)


def format_bytes(n: float) -> str:
    n = float(n)
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}" if n / size < 1000 else f"{n / size:,.0f} {unit}"
    return f"{int(n)} B"


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except (OSError, ValueError):
        return None
    if not text or text == "max":
        return None
    try:
        v = int(text)
    except ValueError:
        return None
    return v if 0 < v < (1 << 60) else None   # cgroup v1 "unlimited" is ~2**63


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_free(root: str = "/sys/fs/cgroup", proc: str = "/proc/self/cgroup") -> int | None:
    """Limit minus usage of this process's memory cgroup (v2, then v1), None without a limit."""
    dirs = []
    try:
        for line in Path(proc).read_text().splitlines():
            parts = line.split(":", 2)
            if len(parts) == 3 and (parts[0] == "0" or "memory" in parts[1].split(",")):
                dirs.append(parts[2])
    except OSError:
        pass
    cands = []
    for rel in dirs + ["/"]:
        rel = rel.strip("/")
        for base in (Path(root) / rel, Path(root) / "memory" / rel):
            cands += [(base / "memory.max", base / "memory.current"),
                      (base / "memory.limit_in_bytes", base / "memory.usage_in_bytes")]
    for lim_p, use_p in cands:
        lim = _read_int(str(lim_p))
        if lim is not None:
            use = (_read_int(str(use_p)) or 0) - _inactive_file(str(use_p.parent / "memory.stat"))
            return max(lim - max(use, 0), 0)
    return None


def _inactive_file(stat_path: str) -> int:
    """Reclaimable page cache charged to the cgroup (v2 inactive_file, v1 total_inactive_file)."""
    try:
        for line in Path(stat_path).read_text().splitlines():
            key, _, val = line.partition(" ")
            if key in ("inactive_file", "total_inactive_file"):
                return int(val)
    except (OSError, ValueError):
        pass
    return 0


def available_bytes() -> tuple[int, str]:
    """(bytes available to this process, where the figure comes from)."""
    avail = _meminfo_available()
    src = "MemAvailable"
    cg = _cgroup_free()
    if cg is not None and (avail is None or cg < avail):
        avail, src = cg, "cgroup limit"
    if avail is None:
        try:
            avail = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
            src = "half the physical memory"
        except (ValueError, OSError, AttributeError):
            avail, src = FALLBACK_BYTES, "fallback"
    return int(avail), src


def budget_bytes() -> tuple[int, str]:
    """(the memory a run may plan to use, a short description of it)."""
    env = os.environ.get(ENV_LIMIT, "").strip()
    if env:
        return parse_bytes(env), f"{ENV_LIMIT}={env}"
    avail, src = available_bytes()
    b = min(int(avail * BUDGET_SHARE), MAX_BYTES)
    return b, f"{format_bytes(b)} ({int(BUDGET_SHARE * 100)}% of {format_bytes(avail)} {src})"


# --------------------------------------------------------------------------------------------
# estimates


def _dims(scenario, n_paths=None, chunk_paths=None, n_steps=None):
    run = scenario.run
    P = int(run.paths if n_paths is None else n_paths)
    chunk = int(run.chunk_paths if chunk_paths is None else chunk_paths)
    n = int(run.n_steps if n_steps is None else n_steps)
    month = run.month_steps
    return P, max(min(chunk, P), 1), n, -(-n // month), scenario.n_underlyings, scenario.regimes.count


def _n_strategies(scenario) -> int:
    return len(scenario.strategies) + 2


def _phases(scenario, n_paths=None, chunk_paths=None, *, n_steps=None, market_rows=None,
            summarize=False, write=False, n_strategies=None, stored=False) -> dict:
    """Live bytes at the peak of each phase of a simulate (+ summarize, + write); `stored`:
    with a path store (`simulate(path_store=...)`, what `mcsim run` does)."""
    from .io import MONTHLY_SUBSET_PATHS

    z = _sizes()
    P, R, n, nm, U, G = _dims(scenario, n_paths, chunk_paths, n_steps)
    streamed = market_rows is None
    if market_rows is not None:            # run_strategies: the caller's market, no chunk buffer
        R = int(market_rows)
    S = _n_strategies(scenario) if n_strategies is None else int(n_strategies)
    K = min(P, MONTHLY_SUBSET_PATHS) if streamed else P   # paths whose monthly rows are kept
    rows_p = S * P                          # per-path rows
    rows_m = S * K * nm                     # kept path-month rows
    market = R * (n + 1) * (16 * U + 1) + (2 * (n + 1) * U * 8 if market_rows is None else 0)
    plan = rows_p * z["out_path"] + 16 * P + rows_m * z["plan_month"]
    if streamed:
        plan += rows_p * z["mstats_path"] + S * z["mstats_fixed"]
    # per chunk: months buffer + mtm and its temporaries, stats temporaries (streamed reductions:
    # masks, deviations, histogram indices), regime masks
    chunk = R * nm * (z["month_buf"] + 8 * 7 + (8 * 6 if streamed else 0)) + 2 * R * (n + 1) + R * G * 8
    pp = rows_p * z["pp_row"]
    mo_new = rows_m * (z["mo_row"] - z["plan_month"])       # columns the frame adds to the plan's
    result_build = pp + mo_new + K * nm * 8 + rows_m * 2   # + np.repeat / mask temporaries
    frames = pp + rows_m * z["mo_row"]
    if stored and streamed:
        return _stored_phases(z, P, R, S, rows_m, market, chunk, summarize, write)
    out = {
        "market": market,
        "simulate": BASE_OVERHEAD + market + plan + max(chunk, result_build),
    }
    if summarize or write:
        # groupby copies of the per-path table and the strategies' monthly groups, one strategy's
        # path-month vectors (sort, masks, means): measured at most pp + 0.55 x the monthly table
        summ = pp + int(0.55 * rows_m * z["mo_row"]) + rows_p * 8 * 2
        out["summarize"] = BASE_OVERHEAD + frames + summ
    if write:
        kept = min(K, MONTHLY_SUBSET_PATHS)
        sub = S * kept * nm * z["mo_row"] if K > MONTHLY_SUBSET_PATHS else 0
        arrow = max(pp, S * kept * nm * z["mo_row"])          # Arrow table of the larger frame
        plots = rows_m * z["mo_row"] + K * nm * 8 * 4          # grouping copy; fan pivot
        out["write"] = BASE_OVERHEAD + WRITE_OVERHEAD + frames + sub + max(arrow, plots)
    return out


def _stored_phases(z, P, R, S, rows_m, market, chunk, summarize, write) -> dict:
    """`_phases` with a path store: per-path rows live on disk; memory holds the chunk (its
    per-path records and their columns on their way to the store), the kept monthly rows, the
    histograms, and at summary/plot time a few per-path columns of a few strategies."""
    from .pathstore import PARQUET_ROWS

    fixed = rows_m * z["plan_month"] + S * z["mstats_fixed"]
    per_chunk = S * R * (z["out_path"] + z["pp_row"] + z["mstats_path"] + 8 * 3) * 2
    out = {"market": market, "simulate": BASE_OVERHEAD + market + fixed + chunk + per_chunk}
    frames = rows_m * z["mo_row"]
    cols = P * 8 * (8 + 3 * 5)      # a strategy's columns in use, + the pairs' aligned frames (3 live)
    if summarize or write:
        out["summarize"] = BASE_OVERHEAD + fixed + frames + int(0.55 * frames) + cols
    if write:
        arrow = min(P, PARQUET_ROWS) * z["pp_row"] * 3          # one row group: frame, Arrow, encoded
        plots = frames + P * 8 * (S + 2)                          # the fan; final equity of every strategy
        out["write"] = BASE_OVERHEAD + WRITE_OVERHEAD + fixed + frames + max(arrow, plots)
    return out


def estimate_run_bytes(scenario, n_paths=None, chunk_paths=None, *, n_steps=None,
                       summarize=False, write=False, stored=False) -> int:
    """Peak bytes of `simulate(scenario, n_paths, chunk_paths=...)`; with `summarize`, also of
    `metrics.summarize` on its result; with `write`, also of `io.write_result_files` (plots);
    `stored`: with a path store (`mcsim run`), where per-path rows live on disk."""
    return max(_phases(scenario, n_paths, chunk_paths, n_steps=n_steps,
                       summarize=summarize, write=write, stored=stored).values())


def replay_log_rows(rules, n_steps: int, n_months: int) -> int:
    """Upper bound of the trade-log rows of one path of `rules` (a StrategyRules, baselines
    included): the buffer `replay_market` allocates.

    From the kernel's rules: at most one opening per underlying per entry day (steps t < n with
    t % entry_every_days == 0), one ending row per opened position, at most one roll per open
    position per step and max_rolls per position, one withdrawal per month end, the `end` row.
    """
    from .kinds import KINDS

    n = int(n_steps)
    options = KINDS[rules.kind].has_options
    n_su = len(rules.underlyings)
    opens = -(-n // max(int(rules.entry_every_days), 1)) * n_su if options else 0
    per_u = int(rules.sizing.max_open) if rules.kind == "bull_put_spread" else 1
    rolls = min(opens * int(rules.manage.max_rolls), (n + 1) * n_su * per_u) if options else 0
    # covered_call: one share trade (a buy, or a sizing.rebalance buy or sale), then a call
    buys = opens if KINDS[rules.kind].buys_shares else 0
    return 2 * opens + buys + rolls + int(n_months) + 2 + 8


def _rules_of(scenario, name: str):
    from .strategies.params import all_strategies

    for r in all_strategies(scenario):
        if r.name == name:
            return r
    raise ScenarioError(f"strategy: {name!r} is not allowed (must be one of "
                        f"{', '.join(r.name for r in all_strategies(scenario))})")


def estimate_replay_bytes(scenario, log_rows: int, market_rows: int = 1, *, n_steps=None,
                          simulate_paths: int | None = None, chunk_paths=None) -> int:
    """Peak bytes of a replay: the log, the replayed market rows and their month buffers; with
    `simulate_paths` (``--path worst|median|best``), the `simulate` that picks the path."""
    z = _sizes()
    run = scenario.run
    n = int(run.n_steps if n_steps is None else n_steps)
    nm = -(-n // run.month_steps)
    U = scenario.n_underlyings
    own = (int(log_rows) * z["log_row"] * 2          # the buffer + the trade-log frame
           + int(market_rows) * ((n + 1) * (16 * U + 1) + nm * z["month_buf"] + 8 * 28)
           + 2 * (n + 1) * U * 8 + BASE_OVERHEAD)
    if simulate_paths:
        sim = estimate_run_bytes(scenario, simulate_paths, chunk_paths, n_steps=n)
        return max(own, sim)
    return own


def _frames_bytes(scenario, n_strategies=None) -> int:
    """Bytes of the two result frames of a simulate of `scenario` (what a caller keeps)."""
    z = _sizes()
    P, R, n, nm, U, G = _dims(scenario)
    S = _n_strategies(scenario) if n_strategies is None else int(n_strategies)
    from .io import MONTHLY_SUBSET_PATHS

    return S * P * z["pp_row"] + S * min(P, MONTHLY_SUBSET_PATHS) * nm * z["mo_row"]


def sweep_strategies(scenarios, varied) -> int:
    """Strategies of a strategy-only sweep's combined scenario (baselines included): the base's
    unvaried strategies, one copy of each varied strategy per grid point, the 2 baselines."""
    base = scenarios[0]
    n_var = sum(1 for s in base.strategies if s.name in varied)
    return len(base.strategies) - n_var + n_var * len(scenarios) + 2


def estimate_sweep_bytes(scenarios, varied=None) -> int:
    """Peak bytes of `mcsim sweep`. `varied` (a strategy-only sweep: the names of the strategies
    the grid varies): one combined scenario with one copy of each varied strategy per grid point,
    simulated and summarised once. Else (a market sweep) each point's scenario is simulated one
    after another; the previous point's result is still alive while the next one runs."""
    keep = 4096 * len(scenarios)
    if varied is not None:
        n_s = sweep_strategies(scenarios, varied)
        return keep + max(_phases(scenarios[0], summarize=True, n_strategies=n_s).values())
    return keep + max(estimate_run_bytes(sc, summarize=True) for sc in scenarios) + max(
        _frames_bytes(sc) for sc in scenarios)


def estimate_compare_bytes(scenarios) -> int:
    """Peak bytes of `mcsim compare`: every scenario's result is kept, then combined (a copy) and
    summarised."""
    frames = sum(_frames_bytes(sc) for sc in scenarios)
    sim = max(estimate_run_bytes(sc) for sc in scenarios)
    n_s = sum(_n_strategies(sc) - 2 for sc in scenarios) + 2
    comb = max(_phases(scenarios[0], summarize=True, n_strategies=n_s).values())
    return max(frames + sim, frames + comb)


# --------------------------------------------------------------------------------------------
# checks


PARQUET_ROW_BYTES = 80      # paths.parquet bytes per row, compressed (measured 75 at 1M paths)


def disk_free(directory) -> int:
    """Free bytes on the filesystem of `directory` (its nearest existing ancestor)."""
    import shutil
    from pathlib import Path

    p = Path(directory).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return int(shutil.disk_usage(p).free)


def store_bytes(scenario, n_paths=None) -> int:
    """Disk bytes a `mcsim run` needs beside its result: the path store (every per-path column
    and per-path monthly reduction of every strategy) and paths.parquet written from it."""
    z = _sizes()
    P = int(scenario.run.paths if n_paths is None else n_paths)
    return _n_strategies(scenario) * P * (z["pp_row"] + z["mstats_path"] + PARQUET_ROW_BYTES)


def check_disk(scenario, n_paths, directory) -> int:
    """Refuse (one line) a `mcsim run` whose path store and paths.parquet do not fit on the
    disk of `directory` (where the staging directory goes); returns the bytes needed."""
    need = store_bytes(scenario, n_paths)
    free = disk_free(directory)
    if need > free:
        P = int(scenario.run.paths if n_paths is None else n_paths)
        fit = int(P * free / need)
        raise MemoryBudgetError(
            f"disk: a run of {P:,} paths x {_n_strategies(scenario)} strategies needs about {format_bytes(need)} "
            f"on disk while it runs (its per-path rows and paths.parquet), more than the "
            f"{format_bytes(free)} free under {directory}; reduce --paths (run.paths; about {fit:,} fit) "
            f"or choose an --out on a larger disk")
    return need


def check(estimate: int, what: str, advice: str) -> None:
    """Raise MemoryBudgetError (one line) if `estimate` bytes exceed the budget."""
    budget, desc = budget_bytes()
    if estimate > budget:
        env = (f"or raise {ENV_LIMIT}" if os.environ.get(ENV_LIMIT, "").strip()
               else f"or set {ENV_LIMIT}, e.g. {ENV_LIMIT}=8G, to plan with more")
        raise MemoryBudgetError(
            f"memory: {what} needs about {format_bytes(estimate)} at its peak, more than the "
            f"{desc} available; {advice} ({env})")


def _max_paths(scenario, budget: int, chunk_paths=None, n_steps=None, **kw) -> int:
    lo, hi = 0, MAX_PATHS
    if estimate_run_bytes(scenario, 1, chunk_paths, n_steps=n_steps, **kw) > budget:
        return 0
    lo = 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if estimate_run_bytes(scenario, mid, chunk_paths, n_steps=n_steps, **kw) <= budget:
            lo = mid
        else:
            hi = mid
    return lo


def _run_advice(scenario, n_paths, chunk_paths, n_steps=None, **kw) -> str:
    budget, _ = budget_bytes()
    P, R, n, nm, U, G = _dims(scenario, n_paths, chunk_paths, n_steps)
    fit = _max_paths(scenario, budget, chunk_paths, n_steps, **kw)
    parts = []
    if fit >= 1:
        parts.append(f"reduce --paths (run.paths; about {fit:,} fit)")
    else:
        parts.append("reduce --paths (run.paths)")
    ph = _phases(scenario, n_paths, chunk_paths, n_steps=n_steps, **kw)
    if R > 256 and ph["market"] * 4 >= max(ph.values()):     # the chunk buffers matter
        parts.append("--chunk-paths (run.chunk_paths)")
    parts.append(f"or the steps (run.horizon_years x run.steps_per_year = {n:,})")
    return ", ".join(parts)


def check_run(scenario, n_paths=None, chunk_paths=None, *, n_steps=None, summarize=False,
              write=False, what: str | None = None, stored=False) -> int:
    """Refuse a `simulate` (+ summarize, + write) that cannot fit; returns the estimate."""
    est = estimate_run_bytes(scenario, n_paths, chunk_paths, n_steps=n_steps, summarize=summarize,
                             write=write, stored=stored)
    budget, _ = budget_bytes()
    if est > budget:
        P, R, n, nm, U, G = _dims(scenario, n_paths, chunk_paths, n_steps)
        what = what or (f"a run of {P:,} paths x {n:,} steps x {_n_strategies(scenario)} strategies "
                        f"(chunks of {R:,} paths)")
        check(est, what, _run_advice(scenario, n_paths, chunk_paths, n_steps, summarize=summarize,
                                     write=write, stored=stored))
    return est


def check_market_run(scenario, market) -> int:
    """Refuse `run_strategies` on `market` when its outputs cannot fit; returns the estimate."""
    est = max(_phases(scenario, market.n_paths, market.n_paths, n_steps=market.n_steps,
                      market_rows=market.n_paths).values()) - market.n_paths * (market.n_steps + 1) * (
        16 * market.n_underlyings + 1)   # the market itself is already allocated
    check(est, f"run_strategies on {market.n_paths:,} paths x {market.n_steps:,} steps",
          "pass fewer paths (market rows) or fewer steps")
    return est


def check_replay(scenario, kp, n_steps: int, n_months: int, market_rows: int = 1,
                 simulate_paths: int | None = None, chunk_paths=None) -> int:
    """Refuse a replay whose log (and picking simulate) cannot fit; returns the log's rows (the
    capacity `replay_market` allocates)."""
    name = getattr(kp, "name", kp)           # KernelParams (engine) or a strategy name
    rules = _rules_of(scenario, name)
    rows = replay_log_rows(rules, n_steps, n_months)
    est = estimate_replay_bytes(scenario, rows, market_rows, n_steps=n_steps,
                                simulate_paths=simulate_paths, chunk_paths=chunk_paths)
    budget, _ = budget_bytes()
    if est > budget:
        own = estimate_replay_bytes(scenario, rows, market_rows, n_steps=n_steps)
        if simulate_paths and own < est:
            what = f"replay of {name} (picking the path simulates all {int(simulate_paths):,} paths)"
            advice = ("give a path index instead of worst|median|best, or " +
                      _run_advice(scenario, simulate_paths, chunk_paths, n_steps))
        else:
            what = f"replay of {name} (a trade log of up to {rows:,} rows)"
            advice = (f"reduce sizing.max_open (now {int(rules.sizing.max_open)}), raise "
                      f"entry_every_days, or shorten run.horizon_years / run.steps_per_year "
                      f"({int(n_steps):,} steps)")
        check(est, what, advice)
    return rows


def check_sweep(n_points: int, scenarios=None, varied=None) -> int:
    """Refuse a grid above MAX_GRID_POINTS, or a sweep whose simulate cannot fit (`varied`: the
    varied strategies' names of a strategy-only sweep, None for a market sweep)."""
    if n_points > MAX_GRID_POINTS:
        raise MemoryBudgetError(f"--grid: {n_points:,} grid points is not allowed (must be at most "
                                f"{MAX_GRID_POINTS:,}; use fewer values per key)")
    if not scenarios:
        return 0
    est = estimate_sweep_bytes(scenarios, varied)
    budget, _ = budget_bytes()
    if est > budget:
        sc = scenarios[0]
        if varied is not None:
            what = (f"a sweep of {n_points:,} grid points ({sweep_strategies(scenarios, varied):,} "
                    f"strategies simulated together on {sc.run.paths:,} paths x {sc.n_steps:,} steps)")
        else:
            what = f"a sweep of {n_points:,} grid points on {sc.run.paths:,} paths x {sc.n_steps:,} steps"
        check(est, what, "use fewer grid values, reduce --paths (run.paths) or the steps "
              "(run.horizon_years x run.steps_per_year)")
    return est


def check_compare(scenarios) -> int:
    """Refuse a `mcsim compare` whose kept results cannot fit."""
    est = estimate_compare_bytes(scenarios)
    budget, _ = budget_bytes()
    if est > budget:
        sc = scenarios[0]
        check(est, f"a comparison of {len(scenarios)} scenarios on {sc.run.paths:,} paths x "
                   f"{sc.n_steps:,} steps", "reduce --paths or the steps "
                   "(run.horizon_years x run.steps_per_year)")
    return est


def check_replay_command(scenario, strategy: str, pick: bool) -> int:
    """`mcsim replay`: refuse before simulating when the log of `strategy` (and, with `pick`, the
    simulate choosing worst|median|best) cannot fit."""
    run = scenario.run
    n = run.n_steps
    return check_replay(scenario, strategy, n, -(-n // run.month_steps), 1,
                        run.paths if pick else None, run.chunk_paths)
