"""Test-session configuration.

The suite runs on pytest-xdist workers (`addopts` in pyproject.toml: `-n auto --dist loadscope
--no-loadscope-reorder`, one module per worker at a time, so module-scoped fixtures run once).
xdist hands modules out in collection order (without `--no-loadscope-reorder` it would sort them
by test count, putting test_ci_smoke's two long tests last); the slowest modules are collected first (longest-first scheduling), so two
workers finish together instead of one waiting for a long module handed out last. The weights are
the modules' measured seconds (sum of their tests' durations, 2 xdist workers, warm numba cache,
2026-12-04; test_ci_smoke is first whatever its warm figure: with a cold cache its bounds-checked
child compiles every kernel, ~100 s of CPU, and its two children overlap the other worker); a
module not listed keeps its place after them. `python -m pytest -n0` runs everything in one process.
"""

from __future__ import annotations

SLOW_MODULES = (   # slowest first; seconds measured warm (cold: test_ci_smoke ~110 s of CPU more)
    "test_ci_smoke.py",               # 57  two child pytest runs (no JIT; bounds-checked kernels compiled cold)
    "test_report.py",                 # 242
    "test_reference_vs_kernels.py",   # 177
    "test_safety.py",                 # 156
    "test_cli.py",                    # 88
    "test_streaming.py",              # 67
    "test_reference_issue11.py",      # 60
    "test_memory.py",                 # 54
    "test_dask.py",                   # 48
    "test_calibrate.py",              # 38
    "test_strategy_analytics.py",     # 28
)


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(SLOW_MODULES)}
    # a stable sort keeps each module's own test order
    items.sort(key=lambda it: rank.get(it.path.name, len(SLOW_MODULES)))
