"""mcsim: vectorised Monte Carlo simulation of options-income strategies."""

from . import _jit_cache

_jit_cache.refresh()  # before any kernel module is imported (see mcsim/_jit_cache.py)
_jit_cache.ensure_writable_cache()  # a read-only install still imports

from .errors import ScenarioError  # noqa: E402
from .scenario import Scenario, load_scenario
from .market import MarketPaths, simulate_market
from .engine import Result, replay, run_strategies, simulate
from .metrics import summarize

__version__ = "0.1.0"

__all__ = ["ScenarioError", "Scenario", "load_scenario", "MarketPaths", "simulate_market", "__version__",
           "simulate", "run_strategies", "replay", "Result", "summarize"]
