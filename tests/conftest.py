"""Test-session configuration.

The suite runs on pytest-xdist workers (`addopts` in pyproject.toml: `-n auto --dist loadscope
--no-loadscope-reorder`, one module per worker at a time, so module-scoped fixtures run once).
xdist hands modules out in collection order (without `--no-loadscope-reorder` it would sort them
by test count, putting test_ci_smoke's two long tests last); the slowest modules are collected first (longest-first scheduling), so two
workers finish together instead of one waiting for a long module handed out last. The weights are
the modules' measured seconds (serial run, 2026-12-03); a module not listed keeps its place after
them. `python -m pytest -n0` runs everything in one process.
"""

from __future__ import annotations

SLOW_MODULES = (   # slowest first
    "test_ci_smoke.py",      # two child pytest runs (no JIT; bounds-checked kernels compiled cold)
    "test_report.py",
    "test_safety.py",
    "test_reference_vs_kernels.py",
    "test_reference_issue11.py",
    "test_cli.py",
    "test_memory.py",
    "test_streaming.py",
    "test_strategy_analytics.py",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(SLOW_MODULES)}
    # a stable sort keeps each module's own test order
    items.sort(key=lambda it: rank.get(it.path.name, len(SLOW_MODULES)))
