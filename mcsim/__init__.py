"""mcsim: vectorised Monte Carlo simulation of options-income strategies."""

import gc as _gc

# importing numba, pandas and the kernels' modules allocates some 150k objects, all kept: the
# collector would scan them over and over (~0.3 s of the import); it is paused meanwhile
_gc_enabled = _gc.isenabled()
_gc.disable()
try:
    from . import _jit_cache

    _jit_cache.refresh()  # before any kernel module is imported (see mcsim/_jit_cache.py)
    _jit_cache.ensure_writable_cache()  # a read-only install still imports

    from .errors import ScenarioError  # noqa: E402
    from .scenario import Scenario, load_scenario
    from .market import MarketPaths, simulate_market
    from .engine import Result, replay, run_strategies, simulate
    from .metrics import summarize
finally:
    if _gc_enabled:
        _gc.enable()
    del _gc_enabled

__version__ = "0.1.0"

__all__ = ["ScenarioError", "Scenario", "load_scenario", "MarketPaths", "simulate_market", "__version__",
           "simulate", "run_strategies", "replay", "Result", "summarize"]
