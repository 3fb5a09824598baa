"""Where the wall time of `mcsim run` goes (issue 13, "profile first").

    python benchmarks/profile_run.py [--paths 200000] [--scenario scenarios/spy_wheel.toml]
                                     [--set run.horizon_years=1] [--chunk N] [--cprofile FILE]

Runs the command in-process (`mcsim.cli.main(["run", ...])`, results written to a temporary
directory, numba warmed up first) with timers wrapped around the engine's and the writers'
functions, and prints the wall split: market generation, each strategy kernel (wall span of its
threads per chunk), the per-chunk reductions (`MonthlyStats.add`, the rest of `_Plan._monthly`,
`_return_stats`, `_regimes`), the result tables (`_per_path`, `_monthly_frame`),
`metrics.summarize` (per strategy, the paired comparison, the warnings), the Parquet files, each
plot, report.html and summary.json. Time on other threads (the Parquet files are written beside
the plots) is listed below the table, outside the shares. Seconds and share of the command's wall time; "other" is
what no timer covers (scenario loading, staging, the table printed, ...). Kernel rows also show
path-steps per second.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mcsim  # noqa: E402
from mcsim import cli, engine, io, metrics, plots, report, streaming  # noqa: E402

T = collections.OrderedDict()          # label -> seconds (main thread, exclusive where nested)
BESIDE = collections.OrderedDict()     # label -> seconds spent on other threads (overlapping the main one)
_local = threading.local()             # per thread: a stack of [label, t0, child seconds]
_lock = threading.Lock()
_MAIN = threading.main_thread()


def _add(label, dt):
    T[label] = T.get(label, 0.0) + dt


def timed(label_fn, fn):
    """fn wrapped with an exclusive timer (time inside nested timers goes to them)."""
    def wrapper(*a, **k):
        label = label_fn(*a, **k) if callable(label_fn) else label_fn
        stack = _local.__dict__.setdefault("stack", [])
        frame = [label, time.perf_counter(), 0.0]
        stack.append(frame)
        try:
            return fn(*a, **k)
        finally:
            stack.pop()
            dt = time.perf_counter() - frame[1]
            if threading.current_thread() is _MAIN:
                _add(label, dt - frame[2])
            else:
                with _lock:
                    BESIDE[label] = BESIDE.get(label, 0.0) + dt - frame[2]
            if stack:
                stack[-1][2] += dt
    wrapper.__wrapped__ = fn
    return wrapper


def install(n_steps_holder):
    names = {}                 # id(rules.p) -> strategy name
    spans = {}                 # (chunk, name) -> [t0, t1]
    chunk = [0]

    orig_plan_init = engine._Plan.__init__

    def plan_init(self, *a, **k):
        orig_plan_init(self, *a, **k)
        for kp in self.kps:
            names[id(kp.rules.p)] = kp.name
        n_steps_holder[0] = self.n_steps
    engine._Plan.__init__ = plan_init

    orig_gen = engine.chunk_generator

    def chunk_generator(scenario):
        make = orig_gen(scenario)

        def timed_make(*a, **k):
            chunk[0] += 1
            return timed("market generation", make)(*a, **k)
        return timed_make
    engine.chunk_generator = chunk_generator

    orig_run_paths = engine.run_paths

    def run_paths(spot, iv, reg, p0, p1, rules, *rest):
        t0 = time.perf_counter()
        r = orig_run_paths(spot, iv, reg, p0, p1, rules, *rest)
        t1 = time.perf_counter()
        key = (chunk[0], names.get(id(rules.p), "?"))
        with _lock:
            s = spans.setdefault(key, [t0, t1, 0])
            s[0] = min(s[0], t0)
            s[1] = max(s[1], t1)
            s[2] += p1 - p0
        return r
    engine.run_paths = run_paths

    P = engine._Plan
    P._monthly = timed("reduce: _Plan._monthly (rest)", P._monthly)
    P._regimes = timed("reduce: _Plan._regimes", P._regimes)
    P._per_path = timed("tables: _per_path DataFrame", P._per_path)
    P._monthly_frame = timed("tables: _monthly_frame", P._monthly_frame)
    P.run_chunk = timed("engine: run_chunk (rest: thread pool, buffers)", P.run_chunk)
    engine._return_stats = timed("reduce: _return_stats", engine._return_stats)
    streaming.MonthlyStats.add = timed("reduce: MonthlyStats.add", streaming.MonthlyStats.add)

    metrics.summarize = timed("summarize (rest)", metrics.summarize)
    metrics.strategy_metrics = timed(lambda pp, *a, **k: "summarize: strategy_metrics", metrics.strategy_metrics)
    metrics.paired_comparison = timed("summarize: paired_comparison", metrics.paired_comparison)
    metrics.trade_warnings = timed("summarize: trade_warnings", metrics.trade_warnings)
    io.write_parquet = timed(lambda df, path, meta: f"write: {Path(path).name}", io.write_parquet)
    io.provenance = timed("write: provenance", io.provenance)
    io.write_json = timed(lambda obj, path: f"write: {Path(path).name}", io.write_json)
    plots.figure = timed(lambda result, kind, summary=None: f"plot: {kind} (figure)", plots.figure)
    plots.png_bytes = timed("plot: png encoding", plots.png_bytes)
    plots.write_plots = timed("plot: write_plots (rest)", plots.write_plots)
    report.write_report = timed("report.html", report.write_report)
    return spans


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--paths", type=int, default=200_000)
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "spy_wheel.toml"))
    ap.add_argument("--set", action="append", default=None)
    ap.add_argument("--chunk", type=int, default=None, help="chunk_paths (default: the scenario's)")
    ap.add_argument("--cprofile", default=None, help="also write a cProfile of the main thread here")
    a = ap.parse_args(argv)
    sets = a.set if a.set is not None else ["run.horizon_years=1"]
    if a.chunk:
        sets = [*sets, f"run.chunk_paths={a.chunk}"]
    # warm-up: compile or load every kernel, import matplotlib and pyarrow
    with tempfile.TemporaryDirectory() as d:
        cli.main(["run", a.scenario, "--paths", "200", "--set", "run.horizon_years=0.1", "--quiet",
                  "--out", str(Path(d) / "w")])
    n_steps = [0]
    spans = install(n_steps)
    with tempfile.TemporaryDirectory() as d:
        argv_run = ["run", a.scenario, "--paths", str(a.paths), "--quiet", "--out", str(Path(d) / "r")]
        for s in sets:
            argv_run += ["--set", s]
        prof = None
        if a.cprofile:
            import cProfile
            prof = cProfile.Profile()
            prof.enable()
        t0 = time.perf_counter()
        rc = cli.main(argv_run)
        wall = time.perf_counter() - t0
        if prof is not None:
            prof.disable()
            prof.dump_stats(a.cprofile)
        written = sum(f.stat().st_size for f in (Path(d) / "r").iterdir())
    if rc != 0:
        print(f"mcsim run failed with exit status {rc}")
        return rc
    kern = collections.OrderedDict()
    rows = collections.Counter()
    for (c, name), (s0, s1, n) in spans.items():
        kern[name] = kern.get(name, 0.0) + (s1 - s0)
        rows[name] += n
    ktotal = sum(kern.values())
    # the kernels run inside run_chunk: its exclusive time includes them; take them out
    rc_label = "engine: run_chunk (rest: thread pool, buffers)"
    T[rc_label] = T.get(rc_label, 0.0) - ktotal
    table = [(f"kernel: {k}", v, rows[k] * n_steps[0] / v if v > 0 else 0.0) for k, v in kern.items()]
    table += [(k, v, None) for k, v in T.items()]
    covered = sum(v for _, v, _ in table)
    table.append(("other (load, staging, printing, ...)", wall - covered, None))
    print(f"mcsim run {Path(a.scenario).name} --paths {a.paths:,} {' '.join('--set ' + s for s in sets)}: "
          f"{wall:.1f} s wall, wrote {written / 2**20:,.0f} MiB")
    print(f"{'part':<52}{'seconds':>9}{'share':>8}{'path-steps/s':>15}")
    for label, v, ps in sorted(table, key=lambda r: -r[1]):
        print(f"{label:<52}{v:>9.2f}{100 * v / wall:>7.1f}%{'' if ps is None else f'{ps / 1e6:>13.1f}M':>15}")
    print(f"{'kernels together':<52}{ktotal:>9.2f}{100 * ktotal / wall:>7.1f}%")
    for label, v in BESIDE.items():
        print(f"{label + ' (2nd thread, overlapped)':<52}{v:>9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
