"""mcsim: vectorised Monte Carlo simulation of options-income strategies."""

from .errors import ScenarioError
from .scenario import Scenario, load_scenario

__version__ = "0.1.0"

__all__ = ["ScenarioError", "Scenario", "load_scenario", "__version__"]
