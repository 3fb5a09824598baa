"""The `mcsim` command: run, compare, sweep, replay, validate, scenarios, report.

Bad input (missing or unreadable file, unknown key, bad value, unknown strategy in `--set`,
an output that exists without `--force`, bad arguments) prints ONE line on stderr naming the
field, the value and what is allowed, and exits with status 2. Results are written into a
temporary directory beside the target and renamed at the end; an interrupted run (SIGINT,
SIGTERM) removes it and exits with status 130 (143 for SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import math
import os
import signal
import sys
import tempfile
import time
import tomllib
import types
from pathlib import Path
from typing import Sequence

from .errors import ScenarioError

__all__ = ["main", "scenario_dirs", "build_parser"]

EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 1
EXIT_INTERRUPTED = 130
from .kinds import BASELINE_NAMES as BASELINES  # noqa: E402  (the one registry)
MARKET_FIELDS = ("run", "regimes", "underlyings", "correlation", "shocks", "market")
SWEEP_METRICS = (
    "cagr_p50", "cagr_mean", "cagr_p5", "total_return_p50", "final_equity_p50", "max_dd_p50", "max_dd_p95",
    "p_dd_above_20pct", "p_ruin", "var_95", "cvar_95", "income_p50", "income_p5", "premium_p50",
    "net_premium_p50", "annual_premium_yield", "annual_net_premium_yield", "annual_realised_yield", "assignment_rate", "options_sold_per_year",
    "sharpe_mean", "p_any_shortfall", "p_beats_bh",
)


# --------------------------------------------------------------------------------------------
# argument parsing: one-line errors


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D401 - argparse API
        _fail(f"{self.prog}: error: {message}")


def printable(text) -> str:
    """`text` safe for a terminal: control characters and escapes shown as \\xNN / \\uNNNN."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _fail(line: str, code: int = EXIT_BAD_INPUT):
    sys.stderr.write(printable(" ".join(str(line).split())) + "\n")
    sys.stderr.flush()
    raise SystemExit(code)


def _int_at_least(lo: int, what: str):
    def conv(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'"{text}" is not allowed (must be an integer >= {lo})') from None
        if v < lo:
            raise argparse.ArgumentTypeError(f'{v} is not allowed (must be an integer >= {lo})')
        return v

    conv.__name__ = what
    return conv


def _path_choice(text: str):
    if text in ("worst", "median", "best"):
        return text
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'"{text}" is not allowed (must be a path index >= 0, worst, median or best)') from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{v} is not allowed (must be a path index >= 0, worst, median or best)")
    return v


def _add_run_options(p: argparse.ArgumentParser, *, sets: bool = True, out: bool = True) -> None:
    p.add_argument("--paths", type=_int_at_least(1, "paths"), help="number of paths (default: run.paths)")
    p.add_argument("--seed", type=_int_at_least(0, "seed"), help="random seed (default: run.seed)")
    if out:
        p.add_argument("--out", help="output directory")
        p.add_argument("--force", action="store_true", help="replace an existing output")
    if sets:
        p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                       help="override a scenario key (repeatable), e.g. strategies.wheel_30d.put.delta=0.2")
    p.add_argument("--chunk-paths", type=_int_at_least(1, "chunk-paths"), help="paths per chunk (memory bound)")
    p.add_argument("--engine", type=_engine_choice, default="local",
                   help="local (default: chunks in this process) or dask (chunks as Dask tasks; "
                        "pip install 'mcsim[dask]'); same results either way")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --engine dask: the address of a running Dask scheduler, e.g. tcp://host:8786 "
                        "(default: a LocalCluster of one worker process per CPU)")
    p.add_argument("--quiet", action="store_true", help="print nothing on stdout, no progress bar")


def _engine_choice(text: str) -> str:
    from .engine import ENGINES

    if text not in ENGINES:
        raise argparse.ArgumentTypeError(f'"{text}" is not allowed (must be one of {", ".join(ENGINES)})')
    return text


_engine_choice.__name__ = "engine"


def _monthly_mode(text: str) -> str:
    from .io import MONTHLY_MODES

    if text not in MONTHLY_MODES:
        raise argparse.ArgumentTypeError(f'"{text}" is not allowed (must be one of {", ".join(MONTHLY_MODES)})')
    return text


_monthly_mode.__name__ = "monthly"


def _add_output_options(p: argparse.ArgumentParser) -> None:
    """--json, --no-report and --monthly (run, compare)."""
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of the table")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.add_argument("--monthly", type=_monthly_mode, default="first",
                   help="monthly.parquet: first (default: the first 10,000 paths), all (every path, "
                        "written chunk by chunk) or none")


def build_parser() -> argparse.ArgumentParser:
    """The `mcsim` argument parser."""
    p = _Parser(prog="mcsim", description="Monte Carlo simulator for options-income strategies")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    r = sub.add_parser("run", help="simulate a scenario and write results")
    r.add_argument("scenario", help="scenario TOML file (or the name of a shipped one)")
    _add_run_options(r)
    _add_output_options(r)
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("compare", help="run scenarios that share a market on the same paths")
    c.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    _add_run_options(c)
    _add_output_options(c)
    c.set_defaults(func=cmd_compare)

    s = sub.add_parser("sweep", help="every grid point on the same paths")
    s.add_argument("scenario")
    s.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...", required=True)
    s.add_argument("--metric", default="cagr_p50", help="heatmap metric: " + ", ".join(SWEEP_METRICS))
    _add_run_options(s)
    s.set_defaults(func=cmd_sweep)

    y = sub.add_parser("replay", help="trade log of one path")
    y.add_argument("scenario")
    y.add_argument("--path", type=_path_choice,
                   help="path index, or worst|median|best (required unless market.source = \"history\")")
    y.add_argument("--strategy", required=True)
    _add_run_options(y)
    y.set_defaults(func=cmd_replay)

    v = sub.add_parser("validate", help="check a scenario file")
    v.add_argument("scenario")
    v.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    v.set_defaults(func=cmd_validate)

    _add_calibrate_parser(sub)

    ls = sub.add_parser("scenarios", help="list the shipped scenarios")
    ls.set_defaults(func=cmd_scenarios)

    rp = sub.add_parser("report", help="rebuild report.html in a result directory")
    rp.add_argument("result_dir", metavar="RESULT_DIR", help="a directory written by mcsim run or compare --out")
    rp.add_argument("--quiet", action="store_true", help="print nothing on stdout")
    rp.set_defaults(func=cmd_report)
    return p


# --------------------------------------------------------------------------------------------
# helpers


def scenario_dirs() -> list[Path]:
    """Where scenarios named without a path are looked up: ./scenarios, then the shipped ones.

    The shipped scenarios are package data (`mcsim/scenarios`, in a clone a link to the
    repository's `scenarios/`), so `mcsim run spy_wheel` works after a plain install from any
    directory; the repository's `scenarios/` beside the package is a fallback for checkouts
    without symbolic links.
    """
    here = Path(__file__).resolve().parent
    out = []
    for d in (Path.cwd() / "scenarios", here / "scenarios", here.parent / "scenarios"):
        if d.is_dir() and all(d.resolve() != o.resolve() for o in out):
            out.append(d)
    return out


def _resolve_scenario(text: str) -> Path:
    p = Path(text)
    if p.is_file() or os.sep in text or "/" in text:
        return p
    for d in scenario_dirs():
        for cand in (d / text, d / f"{text}.toml"):
            if cand.is_file():
                return cand
    return p


def _load(text: str, sets: Sequence[str] = ()):
    from .scenario import load_scenario

    return load_scenario(_resolve_scenario(text), list(sets))


def _run_sets(args) -> list[str]:
    sets = list(getattr(args, "sets", []) or [])
    if args.paths is not None:
        sets.append(f"run.paths={args.paths}")
    if args.seed is not None:
        sets.append(f"run.seed={args.seed}")
    if getattr(args, "chunk_paths", None) is not None:
        sets.append(f"run.chunk_paths={args.chunk_paths}")
    return sets


class _Progress:
    """A one-line progress bar on stderr: paths (chunks) done, paths/s, ETA."""

    def __init__(self, total: int, chunk: int, enabled: bool, label: str = ""):
        self.total = max(int(total), 1)
        self.chunk = max(int(chunk), 1)
        self.enabled = enabled
        self.label = label
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.shown = False

    def __call__(self, done, total=None, *_, **__):
        if not self.enabled:
            return
        if total:
            self.total = max(int(total), 1)
        done = int(done)
        now = time.perf_counter()
        if done < self.total and now - self.last < 0.1:
            return
        self.last = now
        el = now - self.t0
        rate = done / el if el > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else math.nan
        frac = min(done / self.total, 1.0)
        bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
        chunks = f"{math.ceil(done / self.chunk)}/{math.ceil(self.total / self.chunk)} chunks"
        eta_s = "--" if not math.isfinite(eta) else f"{eta:.0f}s"
        sys.stderr.write(f"\r{self.label}[{bar}] {chunks} {done:,}/{self.total:,} paths {rate:,.0f} paths/s ETA {eta_s} ")
        sys.stderr.flush()
        self.shown = True

    def close(self):
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.shown = False


class _Engine:
    """--engine / --scheduler of one command: checked before any work, and one Dask client
    (a LocalCluster, or a connection to --scheduler) opened at the first simulation that needs
    it and shared by all of the command's simulations (compare, sweep), closed at the end."""

    def __init__(self, args):
        self.prog = f"mcsim {getattr(args, 'command', '')}".rstrip()
        self.name = getattr(args, "engine", None) or "local"
        self.scheduler = getattr(args, "scheduler", None)
        self.stack = contextlib.ExitStack()
        self.client = None
        self.noted = False
        if self.scheduler is not None and self.name != "dask":
            _fail(f'{self.prog}: error: --scheduler: "{self.scheduler}" is not allowed with --engine {self.name} '
                  "(it is the address of the Dask scheduler of --engine dask)")
        if self.name == "dask":
            from . import dask_engine

            try:
                dask_engine.require()
            except dask_engine.DaskUnavailableError:
                _fail(f"{self.prog}: error: --engine: dask needs the optional extra: pip install 'mcsim[dask]' "
                      "(dask[distributed] is not installed)", EXIT_ENVIRONMENT)

    def kwargs(self, scenario) -> dict:
        """What `simulate` needs for this engine (nothing for local)."""
        if self.name != "dask":
            return {}
        if scenario.market.source == "history":
            if not self.noted:
                sys.stderr.write('mcsim: note: market.source = "history" is one path: it runs locally, '
                                 "not on Dask\n")
                self.noted = True
            return {}
        if self.client is None:
            from . import dask_engine

            try:
                self.client = self.stack.enter_context(dask_engine.connect(self.scheduler))
            except ValueError as exc:
                _fail(f"{self.prog}: error: --{exc}")
            except OSError as exc:
                _fail(f"{self.prog}: error: --{exc}", EXIT_ENVIRONMENT)
        return {"engine": "dask", "scheduler": self.client}

    def close(self) -> None:
        self.stack.close()


def _simulate(scenario, args, label: str = "", monthly_sink=None, path_store=None):
    from mcsim import simulate  # looked up on the package, so tests can substitute it
    n = scenario.run.paths
    chunk = scenario.run.chunk_paths
    kwargs = {"n_paths": n, "seed": scenario.run.seed, "chunk_paths": chunk}
    engine = getattr(args, "engine_session", None)
    if engine is not None:
        kwargs.update(engine.kwargs(scenario))
    if monthly_sink is not None:
        kwargs["monthly_sink"] = monthly_sink
    if path_store is not None:
        kwargs["path_store"] = path_store
    from . import io
    from .engine import MONTHLY_LIMIT

    if io.MONTHLY_SUBSET_PATHS != MONTHLY_LIMIT:   # a changed limit (tests) reaches the engine too
        kwargs["monthly_limit"] = io.MONTHLY_SUBSET_PATHS
    show = not getattr(args, "quiet", False) and sys.stderr.isatty()
    bar = _Progress(n, chunk, show, label)
    kwargs["progress"] = bar
    try:
        return simulate(scenario, **kwargs)
    finally:
        bar.close()


def _warn(summary: dict) -> None:
    """Each warning of the summary as one line on stderr (after the table, so it is seen)."""
    for w in summary.get("warnings", []):
        sys.stderr.write(printable(f"mcsim: warning: {w['message']}") + "\n")


def _default_out(scenario_text: str, suffix: str = "") -> Path:
    return Path("results") / (Path(scenario_text).stem + suffix)


# --------------------------------------------------------------------------------------------
# commands


def _say(args, text: str = "", *, table: bool = False) -> None:
    """A line (or, with `table`, a block of lines) on stdout unless --quiet or --json."""
    if getattr(args, "quiet", False) or getattr(args, "json", False):
        return
    print(text if table else printable(text))


def _print_json(args, summary: dict, path: Path | None = None) -> None:
    """--json: the summary as JSON on stdout (summary.json itself when one was written)."""
    if not getattr(args, "json", False) or getattr(args, "quiet", False):
        return
    import json

    from .metrics import to_jsonable

    if path is not None and path.is_file():
        sys.stdout.write(path.read_text(encoding="utf-8"))
    else:
        sys.stdout.write(json.dumps(to_jsonable(summary), indent=2, allow_nan=False) + "\n")


STORE_DIR = ".per-path"   # the run's path store inside its staging directory (removed before commit)


def cmd_run(args) -> int:
    from . import io, memory, metrics
    from .pathstore import StoredPaths

    sets = _run_sets(args)
    scenario = _load(args.scenario, sets)
    memory.check_run(scenario, summarize=True, write=True, stored=True)
    target = Path(args.out) if args.out else _default_out(args.scenario)
    io.check_target(target, args.force)
    memory.check_disk(scenario, scenario.run.paths, target.parent if str(target.parent) else Path("."))
    with io.staged_dir(target, force=args.force) as tmp:
        writer = io.MonthlyWriter(tmp / "monthly.parquet") if args.monthly == "all" else None
        # per-path rows go to disk chunk by chunk (mcsim.pathstore): memory does not grow with paths
        result = _simulate(scenario, args, monthly_sink=writer, path_store=tmp / STORE_DIR)
        summary = metrics.summarize(result)
        io.write_result_files(result, tmp, summary=summary, overrides=sets,
                              extra={"command": ["mcsim", *sys.argv[1:]]}, report=not args.no_report,
                              monthly=args.monthly, monthly_writer=writer)
        if isinstance(result.per_path, StoredPaths):
            result.per_path.close()     # the store is not a result file
    _say(args, f"{scenario.title or Path(args.scenario).stem}: {result.n_paths:,} paths x {result.n_steps} steps, "
               f"seed {result.seed}, {result.wall_time:.1f}s")
    _say(args, metrics.format_table(summary) + "\n" + metrics.table_legend(summary), table=True)
    _warn(summary)
    _say(args, f"wrote {target}" + ("" if args.no_report else f" (open {target / 'report.html'})"))
    _print_json(args, summary, target / "summary.json")
    return 0


def _market_view(sc) -> dict:
    run = dataclasses.replace(sc.run, paths=0, seed=0, chunk_paths=1)
    return {"run": run, "regimes": sc.regimes, "underlyings": sc.underlyings,
            "correlation": (sc.correlation, sc.common_jumps), "shocks": sc.shocks, "market": sc.market}


def _check_shared_market(scenarios: list, names: list[str]) -> None:
    base = _market_view(scenarios[0])
    for sc, name in zip(scenarios[1:], names[1:]):
        view = _market_view(sc)
        for f in MARKET_FIELDS:
            if view[f] != base[f]:
                _fail(f"mcsim: error: compare: {name} differs from {names[0]} in [{f}] (scenarios compared on "
                      f"the same paths must share a market: equal run (except paths, seed), regimes, "
                      f"underlyings, correlation and shocks)")


def _combine(results: list, stems: list[str]):
    """One Result-like object from runs on the same paths; clashing names get the file stem."""
    import pandas as pd

    counts: dict[str, int] = {}
    for r in results:
        for s in r.strategies:
            if s not in BASELINES:
                counts[s] = counts.get(s, 0) + 1
    pps, mos, names = [], [], []
    stats: dict | None = {} if all(getattr(r, "monthly_stats", None) for r in results) else None
    for i, (r, stem) in enumerate(zip(results, stems)):
        keep = [s for s in r.strategies if s not in BASELINES or i == 0]
        rename = {s: (f"{stem}:{s}" if counts.get(s, 0) > 1 else s) for s in keep}
        for s in keep:
            new = rename[s]
            while new in names:
                new += "'"
            rename[s] = new
            names.append(new)
            if stats is not None:
                stats[new] = r.monthly_stats[s]
        for df, acc in ((r.per_path, pps), (r.monthly, mos)):
            sub = df[df["strategy"].isin(keep)].copy()
            sub["strategy"] = sub["strategy"].astype(str).map(rename)
            acc.append(sub)
    order = [n for n in names if n not in BASELINES] + [b for b in BASELINES if b in names]
    first = results[0]
    wall = sum(float(r.wall_time) for r in results)
    return types.SimpleNamespace(
        per_path=pd.concat(pps, ignore_index=True), monthly=pd.concat(mos, ignore_index=True),
        scenario=first.scenario, seed=first.seed, n_paths=first.n_paths, n_steps=first.n_steps,
        chunk_paths=getattr(first, "chunk_paths", None), block_paths=getattr(first, "block_paths", None),
        wall_time=wall, path_steps_per_second=sum(r.n_paths * r.n_steps for r in results) / wall if wall else None,
        strategies=tuple(order), monthly_stats=stats,
        monthly_paths=min((getattr(r, "monthly_paths", None) or r.n_paths) for r in results),
    )


def cmd_compare(args) -> int:
    from . import io, memory, metrics

    if len(args.scenarios) < 2:
        _fail("mcsim compare: error: SCENARIO: needs at least 2 scenario files (got 1)")
    stems = [Path(s).stem for s in args.scenarios]
    per_file = _compare_sets(args.scenarios, args.sets)
    first = _load(args.scenarios[0], per_file[0])
    paths = args.paths if args.paths is not None else first.run.paths
    seed = args.seed if args.seed is not None else first.run.seed
    sets = [f"run.paths={paths}", f"run.seed={seed}"]
    if args.chunk_paths is not None:
        sets.append(f"run.chunk_paths={args.chunk_paths}")
    scenarios = [_load(s, own + sets) for s, own in zip(args.scenarios, per_file)]
    sets = list(args.sets) + sets
    _check_shared_market(scenarios, [str(s) for s in args.scenarios])
    memory.check_compare(scenarios)
    target = Path(args.out) if args.out else None
    if target is not None:
        io.check_target(target, args.force)
    stage = io.staged_dir(target, force=args.force) if target is not None else contextlib.nullcontext(None)
    if args.monthly == "all":
        _fail('mcsim compare: error: --monthly: "all" is not allowed (must be first or none for compare; '
              "run mcsim run --monthly all on each scenario for every path's monthly rows)")
    with stage as tmp:
        results = [_simulate(sc, args, f"{stem} ") for sc, stem in zip(scenarios, stems)]
        combined = _combine(results, stems)
        summary = metrics.summarize(combined)
        if tmp is not None:
            io.write_result_files(combined, tmp, summary=summary, overrides=sets, extra={
                "command": ["mcsim", *sys.argv[1:]],
                "compare": {stem: sc.to_dict() for stem, sc in zip(stems, scenarios)}},
                report=not args.no_report, monthly=args.monthly)
    _say(args, f"compare: {', '.join(map(str, args.scenarios))} on the same {paths:,} paths (seed {seed})")
    _say(args, metrics.format_table(summary) + "\n" + metrics.table_legend(summary), table=True)
    _warn(summary)
    _say(args)
    _say(args, "paired differences a - b over common paths (95% CI from per-path differences; unpaired CI for contrast);")
    _say(args, "dCAGR in percentage points; dMaxDD = a's max drawdown depth minus b's (negative: a falls less)")
    _say(args, metrics.format_paired_table(summary), table=True)
    if target is not None:
        _say(args, f"wrote {target}")
    _print_json(args, summary, target / "summary.json" if target is not None else None)
    return 0


def _strategy_names(text: str) -> list[str]:
    """Names of the [[strategies]] of a scenario file (for routing compare --set; [] if unreadable:
    loading it reports the error)."""
    try:
        raw = tomllib.loads(_resolve_scenario(text).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return []
    entries = raw.get("strategies", [])
    return [str(e.get("name")) for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _compare_sets(files: Sequence[str], sets: Sequence[str]) -> list[list[str]]:
    """`compare --set`, per scenario file: a strategies.NAME... key goes to the files that define
    NAME (it must exist in one); every other key to every file, so they still share a market."""
    names = [_strategy_names(f) for f in files]
    out: list[list[str]] = [[] for _ in files]
    for text in sets:
        parts = text.split("=", 1)[0].strip().split(".")
        if len(parts) >= 3 and parts[0] == "strategies":
            hit = [i for i, ns in enumerate(names) if parts[1] in ns]
            if not hit:
                known = sorted({n for ns in names for n in ns})
                _fail(f'mcsim compare: error: --set: "{text}" is not allowed (no scenario compared defines a '
                      f'strategy "{parts[1]}"; strategies: {", ".join(known) or "none"})')
            for i in hit:
                out[i].append(text)
        else:
            for o in out:
                o.append(text)
    return out


def _parse_grid(items: Sequence[str]) -> list[tuple[str, list[str]]]:
    grid: list[tuple[str, list[str]]] = []
    for text in items:
        key, sep, vals = text.partition("=")
        key = key.strip()
        values = [v.strip() for v in vals.split(",")] if sep else []
        if not key or not values or any(v == "" for v in values):
            _fail(f'mcsim sweep: error: --grid: "{text}" is not allowed (must be dotted.key=v1,v2,...)')
        if any(k == key for k, _ in grid):
            _fail(f'mcsim sweep: error: --grid: "{key}" is not allowed (each key once)')
        grid.append((key, values))
    return grid


def _grid_value(text: str):
    from .scenario import parse_override_value

    return parse_override_value(text, "--grid")


def _strategy_of_key(key: str, raw: dict) -> str | None:
    parts = key.split(".")
    if len(parts) < 3 or parts[0] != "strategies":
        return None
    ident = parts[1]
    entries = raw.get("strategies", [])
    for e in entries:
        if isinstance(e, dict) and e.get("name") == ident:
            return ident
    if ident.isdigit() and int(ident) < len(entries):
        return entries[int(ident)].get("name")
    return ident


def _sweep_row(m: dict, p_beats) -> dict:
    inc = m["income"]
    q = lambda d, k: d["quantiles"][k]  # noqa: E731
    return {
        "cagr_p50": q(m["cagr"], "p50"), "cagr_mean": m["cagr"]["mean"], "cagr_mean_se": m["cagr"]["se"],
        "cagr_p5": q(m["cagr"], "p5"), "total_return_p50": q(m["total_return"], "p50"),
        "final_equity_p50": q(m["final_equity"], "p50"),
        "max_dd_p50": q(m["max_drawdown_depth"], "p50"), "max_dd_p95": q(m["max_drawdown_depth"], "p95"),
        "p_dd_above_20pct": m["p_max_drawdown_above"]["20pct"]["p"], "p_ruin": m["ruin"]["p"],
        "var_95": m["var"]["95"]["var"], "cvar_95": m["var"]["95"]["cvar"],
        "income_p50": q(inc["realised_pnl"], "p50"), "income_p5": q(inc["realised_pnl"], "p5"),
        "premium_p50": q(inc["premium"], "p50"),
        "net_premium_p50": q(inc["net_premium"], "p50") if "net_premium" in inc else None,
        "annual_premium_yield": inc["annual_premium_yield"]["mean"],
        "annual_net_premium_yield": inc.get("annual_net_premium_yield", {}).get("mean"),
        "annual_realised_yield": inc["annual_realised_yield"]["mean"],
        "assignment_rate": m["trading"]["assignment_rate"]["rate"],
        "options_sold_per_year": m["trading"]["options_sold_per_year"]["mean"],
        "sharpe_mean": m["sharpe"]["mean"], "p_any_shortfall": m["withdrawals"]["p_any_shortfall"]["p"],
        "p_beats_bh": p_beats,
    }


def _p_beats_bh(pp, name: str):
    import numpy as np

    if name == "buy_and_hold":
        return None
    a = pp[pp["strategy"] == name].set_index("path")["final_equity"].sort_index()
    b = pp[pp["strategy"] == "buy_and_hold"].set_index("path")["final_equity"].sort_index()
    if len(b) == 0:
        return None
    return float(np.mean(a.to_numpy() > b.loc[a.index].to_numpy()))


def _metrics_rows(result, names_map: dict[str, str], point_cols: dict) -> list[dict]:
    """Rows for one grid point: `names_map` maps the result's strategy name to the reported one."""
    from . import metrics

    ctx = metrics.SummaryContext.from_result(result)
    pp, mo = result.per_path, result.monthly
    stats = getattr(result, "monthly_stats", None) or {}
    rows = []
    for src, shown in names_map.items():
        m = metrics.to_jsonable(metrics.strategy_metrics(pp[pp["strategy"] == src], mo[mo["strategy"] == src],
                                                         ctx, regimes=False, stats=stats.get(src)))
        rows.append({**point_cols, "strategy": shown, **_sweep_row(m, _p_beats_bh(pp, src))})
    return rows


def cmd_sweep(args) -> int:
    import pandas as pd

    from . import io, memory, plots
    from .scenario import parse_scenario

    if args.metric not in SWEEP_METRICS:
        _fail(f'mcsim sweep: error: --metric: "{args.metric}" is not allowed (must be one of {", ".join(SWEEP_METRICS)})')
    grid = _parse_grid(args.grid)
    sets = _run_sets(args)
    keys = [k for k, _ in grid]
    memory.check_sweep(math.prod(len(v) for _, v in grid))
    points = list(itertools.product(*[v for _, v in grid]))
    scenarios = [_load(args.scenario, sets + [f"{k}={v}" for k, v in zip(keys, pt)]) for pt in points]
    base = scenarios[0]
    target = Path(args.out) if args.out else _default_out(args.scenario, "-sweep")
    io.check_target(target, args.force)
    point_cols = [{"point": i, **{k: _grid_value(v) for k, v in zip(keys, pt)}} for i, pt in enumerate(points)]
    names = [s.name for s in base.strategies] + list(BASELINES)
    varied = {_strategy_of_key(k, base.to_dict()) for k in keys}
    strategy_only = all(k.startswith("strategies.") for k in keys) and None not in varied
    memory.check_sweep(len(points), scenarios, varied if strategy_only else None)
    t0 = time.perf_counter()
    with io.staged_dir(target, force=args.force) as tmp:
        rows: list[dict] = []
        if strategy_only:
            # One market for every grid point: the varied strategies run once per point, renamed.
            raw = base.to_dict()
            keep = [e for e in raw["strategies"] if e["name"] not in varied]
            extra = []
            for i, sc in enumerate(scenarios):
                for e in sc.to_dict()["strategies"]:
                    if e["name"] in varied:
                        extra.append({**e, "name": f"{e['name']}@{i}"})
            raw["strategies"] = keep + extra
            combined = parse_scenario(raw, source=base.source, max_strategies=None)
            result = _simulate(combined, args)
            n_paths, n_steps = result.n_paths, result.n_steps
            fixed = _metrics_rows(result, {s: s for s in names if s not in varied}, {})
            for i, cols in enumerate(point_cols):
                vrows = _metrics_rows(result, {f"{s}@{i}": s for s in names if s in varied}, {})
                by = {r["strategy"]: r for r in fixed + vrows}
                rows += [{**cols, **by[s]} for s in names]
        else:
            for i, (sc, cols) in enumerate(zip(scenarios, point_cols)):
                result = _simulate(sc, args, f"point {i + 1}/{len(points)} ")
                n_paths, n_steps = result.n_paths, result.n_steps
                rows += _metrics_rows(result, {s: s for s in names}, cols)
        df = pd.DataFrame(rows)
        for k in keys:
            vals = df[k].tolist()
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
                df[k] = [str(v) for v in vals]
        wall = time.perf_counter() - t0
        res_like = types.SimpleNamespace(scenario=base, seed=base.run.seed, n_paths=n_paths, n_steps=n_steps,
                                         chunk_paths=base.run.chunk_paths, block_paths=getattr(result, "block_paths", None),
                                         wall_time=wall, path_steps_per_second=None, per_path=result.per_path,
                                         strategies=tuple(names))
        prov = io.provenance(res_like, overrides=sets, extra={
            "command": ["mcsim", *sys.argv[1:]], "grid": {k: v for k, v in grid}, "metric": args.metric,
            "same_market_for_all_points": True,
            "market_generated": "once for all grid points" if strategy_only else "once per grid point, same seed"})
        io.write_parquet(df, tmp / "sweep.parquet", prov)
        shown = sorted(varied - {None}, key=names.index) if strategy_only else [s for s in names if s not in BASELINES]
        shown = shown or names
        files = ["sweep.parquet"]
        if len(keys) <= 2:
            fig = plots.sweep_heatmap_figure(df, keys, args.metric, shown)
            fig.savefig(tmp / plots.SWEEP_FILE)
            files.append(plots.SWEEP_FILE)
    cols = ["point", *keys, "strategy", args.metric, "p_ruin"]
    view = df[df["strategy"].isin(shown)][list(dict.fromkeys(cols))]
    with pd.option_context("display.width", 200, "display.max_rows", 500, "display.float_format", "{:.4g}".format):
        print(view.to_string(index=False))
    if len(keys) > 2:
        print("no heatmap: it needs one or two --grid keys")
    print(printable(f"wrote {target} ({', '.join(files)})"))
    return 0


def _pick_path(result, strategy: str, which: str) -> int:
    import numpy as np

    pp = result.per_path[result.per_path["strategy"] == strategy].sort_values(["final_equity", "path"], kind="stable")
    paths = pp["path"].to_numpy()
    idx = {"worst": 0, "median": (len(paths) - 1) // 2, "best": len(paths) - 1}[which]
    return int(np.asarray(paths)[idx])


def cmd_replay(args) -> int:
    import pandas as pd

    from . import io

    sets = _run_sets(args)
    scenario = _load(args.scenario, sets)
    allowed = [s.name for s in scenario.strategies] + list(BASELINES)
    if args.strategy not in allowed:
        _fail(f'mcsim replay: error: --strategy: "{args.strategy}" is not allowed (must be one of {", ".join(allowed)})')
    if scenario.market.source == "history":
        return _replay_history(args, scenario)
    if args.path is None:
        _fail("mcsim replay: error: the following arguments are required: --path")
    n = scenario.run.paths
    if isinstance(args.path, int) and args.path >= n:
        _fail(f"mcsim replay: error: --path: {args.path} is not allowed (must be a path index in 0..{n - 1}, "
              f"worst, median or best)")
    out = Path(args.out) if args.out else _default_out(args.scenario, f"-replay-{args.strategy}-{args.path}")
    io.check_target(out, args.force)
    from . import memory

    memory.check_replay_command(scenario, args.strategy, pick=not isinstance(args.path, int))
    path = args.path
    with io.staged_dir(out, force=args.force) as tmp:
        if not isinstance(path, int):
            path = _pick_path(_simulate(scenario, args), args.strategy, path)
        from mcsim import replay

        log = replay(scenario, path, args.strategy, seed=scenario.run.seed)
        log.to_csv(tmp / "trades.csv", index=False)
    dest = out / "trades.csv"
    print(printable(f"{args.strategy}, path {path}" + (f" ({args.path} final equity)" if path != args.path else "")))
    with pd.option_context("display.width", 250, "display.max_rows", None, "display.max_columns", None):
        print(log.to_string(index=False))
    print(printable(f"wrote {dest}"))
    return 0


def cmd_validate(args) -> int:
    sc = _load(args.scenario, args.sets)
    strategies = ", ".join(f"{s.name} ({s.kind})" for s in sc.strategies) or "none"
    print(printable(f"ok: {_resolve_scenario(args.scenario)}: {sc.title or '(no title)'}"))
    print(f"  {sc.run.paths:,} paths x {sc.n_steps} steps ({sc.run.horizon_years:g} years), seed {sc.run.seed}; "
          f"underlyings {', '.join(sc.underlying_names)}; regimes {', '.join(sc.regimes.names)}")
    print(f"  strategies: {strategies}; baselines buy_and_hold, cash")
    return 0


def cmd_report(args) -> int:
    """Rebuild report.html in a result directory from its summary.json and Parquet files."""
    from . import report

    path = report.rebuild_report(Path(args.result_dir))
    _say(args, f"wrote {path}")
    return 0


def cmd_scenarios(args) -> int:
    dirs = scenario_dirs()
    files = {}
    for d in dirs:
        for f in sorted(d.glob("*.toml")):
            files.setdefault(f.name, f)
    if not files:
        print("no shipped scenarios found (looked in ./scenarios and beside the mcsim package)")
        return 0
    width = max(len(n) for n in files)
    for name, f in sorted(files.items()):
        try:
            title = tomllib.loads(f.read_text(encoding="utf-8")).get("title", "") or "(no title)"
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            title = f"(unreadable: {' '.join(str(exc).split())})"
        print(printable(f"{name.ljust(width)}  {title}"))
    print(f"({', '.join(str(d) for d in dirs)})")
    return 0


# --------------------------------------------------------------------------------------------
# price histories: calibrate, and replay of a backtest (issue 14)


def _add_calibrate_parser(sub) -> None:
    c = sub.add_parser("calibrate", help="estimate a scenario's market from a price file")
    c.add_argument("prices", help="CSV or Parquet file: a date column and one column of daily closes per underlying")
    c.add_argument("--underlyings", help="comma-separated price columns (default: every column but date and *_iv)")
    c.add_argument("--regimes", type=_int_at_least(1, "regimes"), default=1, help="Markov regimes (default 1)")
    c.add_argument("--regime-from", dest="regime_from", help="the series the regimes are fitted on (default: the first underlying)")
    c.add_argument("--model", default="merton", help="gbm, merton (default) or heston")
    c.add_argument("--iv", dest="iv_file", help="a second file with implied-vol columns (e.g. VIX)")
    c.add_argument("--iv-columns", dest="iv_columns", help="UNDERLYING=COLUMN,... (default <underlying>_iv)")
    c.add_argument("--start", help="first date used (YYYY-MM-DD)")
    c.add_argument("--end", help="last date used (YYYY-MM-DD)")
    c.add_argument("--steps-per-year", dest="steps_per_year", type=_int_at_least(1, "steps-per-year"), default=252)
    c.add_argument("--out", required=True, help="the scenario file to write (.toml)")
    c.add_argument("--force", action="store_true", help="replace a file that mcsim calibrate wrote")
    c.set_defaults(func=cmd_calibrate)


def _iv_columns(text: str | None) -> dict:
    out = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        k, sep, v = part.partition("=")
        if not sep or not k.strip() or not v.strip():
            _fail(f'mcsim calibrate: error: --iv-columns: "{text}" is not allowed (must be UNDERLYING=COLUMN,...)')
        out[k.strip()] = v.strip()
    return out


def cmd_calibrate(args) -> int:
    import numpy as np

    from . import __version__, io
    from .calibrate import MODELS, calibrate
    from .calibrate_toml import OWNER_MARK, scenario_text
    from .history import MIN_ROWS, load_history

    if args.model not in MODELS:
        _fail(f'mcsim calibrate: error: --model: "{args.model}" is not allowed (must be one of {", ".join(MODELS)})')
    names = [x.strip() for x in args.underlyings.split(",")] if args.underlyings else None
    if names is not None and (not all(names) or len(set(names)) != len(names)):
        _fail(f'mcsim calibrate: error: --underlyings: "{args.underlyings}" is not allowed (must be distinct '
              "comma-separated column names)")
    out = Path(args.out)
    if out.suffix.lower() != ".toml":
        _fail(f'mcsim calibrate: error: --out: "{out}" is not allowed (must be a .toml file)')
    dates = []
    for flag, v in (("--start", args.start), ("--end", args.end)):
        try:
            dates.append(None if v is None else np.datetime64(v, "D"))
        except ValueError:
            _fail(f'mcsim calibrate: error: {flag}: "{v}" is not allowed (must be a date YYYY-MM-DD)')
    h = load_history(args.prices, names, iv_path=args.iv_file, iv_columns=_iv_columns(args.iv_columns))
    if dates[0] is not None or dates[1] is not None:
        h = h.between(None if dates[0] is None else str(dates[0]), None if dates[1] is None else str(dates[1]))
        if h.n_rows < MIN_ROWS:
            _fail(f'mcsim calibrate: error: --start/--end: leave {h.n_rows} rows of "{args.prices}" (must leave at '
                  f"least {MIN_ROWS})")
    if args.regime_from is not None and args.regime_from not in h.underlyings:
        _fail(f'mcsim calibrate: error: --regime-from: "{args.regime_from}" is not allowed (must be one of '
              f'{", ".join(h.underlyings)})')
    io.check_text_target(out, args.force, OWNER_MARK)   # before the fit: refuse early
    cal = calibrate(h, regimes=args.regimes, regime_from=args.regime_from, model=args.model,
                    steps_per_year=args.steps_per_year)
    command = "mcsim calibrate " + " ".join(sys.argv[2:] if len(sys.argv) > 2 and sys.argv[1] == "calibrate"
                                            else [args.prices])
    text = scenario_text(cal, source=Path(args.prices).name, command=printable(command), version=__version__)
    io.write_text_file(out, text, force=args.force, owner_mark=OWNER_MARK)
    print(printable(f"calibrated {', '.join(h.underlyings)} on {h.dates[0]} to {h.dates[-1]} ({h.n_rows} rows), "
                    f"model {args.model}, {args.regimes} regime(s)"))
    for line in text.splitlines():
        if " # se " in line and not line.startswith("#"):
            print("  " + printable(line))
    print(printable(f"wrote {out}"))
    return 0


def _replay_history(args, scenario) -> int:
    """`mcsim replay` of a backtest: the one historical path, its trade log with dates."""
    import pandas as pd

    from . import io
    from .backtest import replay_history

    if args.path not in (None, 0):
        _fail(f"mcsim replay: error: --path: {args.path} is not allowed (must be 0 or absent: "
              'market.source = "history" is one path)')
    out = Path(args.out) if args.out else _default_out(args.scenario, f"-replay-{args.strategy}-history")
    io.check_target(out, args.force)
    with io.staged_dir(out, force=args.force) as tmp:
        log = replay_history(scenario, args.strategy)
        log.to_csv(tmp / "trades.csv", index=False)
    print(printable(f"{args.strategy}, the history {log['date'].iloc[0]} to {log['date'].iloc[-1]}"))
    with pd.option_context("display.width", 250, "display.max_rows", None, "display.max_columns", None):
        print(log.to_string(index=False))
    print(printable(f"wrote {out / 'trades.csv'}"))
    return 0


# --------------------------------------------------------------------------------------------
# entry point


def _on_sigterm(signum, frame):
    raise SystemExit(143)


def _save_traceback(exc: BaseException) -> str:
    """Write the full traceback of an unexpected error to a file; return where (or why not)."""
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    for d in (Path.home() / ".cache" / "mcsim", Path(tempfile.gettempdir())):
        try:
            d.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix="mcsim-traceback-", suffix=".txt", dir=d)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(f"mcsim {' '.join(sys.argv[1:])}\n{text}")
            return f"full traceback in {name}"
        except OSError:
            continue
    return "the traceback could not be saved"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `mcsim` console script; returns the exit status.

    Exit status: 0 success, 2 bad input (one line naming field, value and what is allowed),
    1 the environment failed (memory, disk, permissions; one line naming the user's path),
    130 interrupted (SIGINT), 143 SIGTERM. An unexpected error prints one line and saves the
    full traceback to a file named in that line. Never a traceback on the terminal.
    """
    if argv is None:
        # the `mcsim` process itself (not a caller's): what the imports built lives to the end,
        # so the collector stops rescanning it (~0.3 s of a short run). A caller passing argv
        # keeps its collector as it is.
        import gc

        gc.freeze()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        with contextlib.suppress(ValueError):  # not in the main thread: keep the default
            signal.signal(signal.SIGTERM, _on_sigterm)
        args.engine_session = _Engine(args)
        try:
            return int(args.func(args) or 0)
        finally:
            args.engine_session.close()
    except SystemExit:
        raise
    except ScenarioError as exc:
        _fail(f"mcsim: error: {exc}")
    except KeyboardInterrupt:
        _fail("mcsim: interrupted; no result written", EXIT_INTERRUPTED)
    except BrokenPipeError:
        with contextlib.suppress(Exception):
            sys.stdout = open(os.devnull, "w")
        return 1
    except MemoryError:
        _fail("mcsim: error: out of memory (reduce --paths, --chunk-paths or run.horizon_years)", EXIT_ENVIRONMENT)
    except RecursionError:
        _fail("mcsim: error: input nested too deeply (a scenario or --set value with deeply nested "
              "lists or tables)", EXIT_BAD_INPUT)
    except OSError as exc:
        _fail(f"mcsim: error: {_os_error_line(exc)}", EXIT_ENVIRONMENT)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, no traceback
        where = _save_traceback(exc)
        _fail(f"mcsim: internal error: {type(exc).__name__}: {exc} ({where}; please report it)", EXIT_ENVIRONMENT)
    return 0


def _os_error_line(exc: OSError) -> str:
    from .io import OutputWriteError

    if isinstance(exc, OutputWriteError) or not exc.strerror:
        return str(exc)
    name = f' "{exc.filename}"' if exc.filename else ""
    return f"{exc.strerror}{name} (errno {exc.errno})"


if __name__ == "__main__":
    raise SystemExit(main())
