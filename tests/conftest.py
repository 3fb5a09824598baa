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

import pytest

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


# Modules that check plots themselves (pixels, series, the page in Chromium, the forked child),
# and test_memory (it measures a run's peak RSS): their runs draw every PNG for real.
REAL_PLOT_MODULES = {"test_report.py", "test_startup.py", "test_cli.py", "test_memory.py"}

# a valid 1x1 grey PNG
_PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010800000000"
    "3a7e9b550000000a49444154789c63680000008200815b1d2b5a0000000049454e44ae426082")


@pytest.fixture(autouse=True)
def _figures_built_not_drawn(request, monkeypatch):
    """Elsewhere, a run in this process builds every figure from its result (`plots.figure`:
    the data, artists, labels and legends, so a result a plot cannot show still fails) but does
    not lay it out and rasterise it (`plots.png_bytes`, about 0.5 s a figure, seven a run):
    the PNG written is a 1x1 placeholder. Runs in child processes draw for real."""
    if request.node.path.name in REAL_PLOT_MODULES:
        return
    from mcsim import plots

    monkeypatch.setattr(plots, "png_bytes", lambda fig: _PNG_1X1)
