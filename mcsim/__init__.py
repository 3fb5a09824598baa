"""mcsim: vectorised Monte Carlo simulation of options-income strategies."""

from .errors import ScenarioError
from .scenario import Scenario, load_scenario
from .market import MarketPaths, simulate_market
from .engine import Result, replay, run_strategies, simulate
from .metrics import summarize

__version__ = "0.1.0"

__all__ = ["ScenarioError", "Scenario", "load_scenario", "MarketPaths", "simulate_market", "__version__",
           "simulate", "run_strategies", "replay", "Result", "summarize"]
