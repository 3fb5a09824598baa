"""Strategy kernels (numba) and their flat parameters.

`kernel.run_paths` runs one strategy of any kind over a range of paths; `params.to_kernel` turns
a `StrategyRules` + `Scenario` into its arguments. The pandas-facing layer is `mcsim.engine`.
"""

from . import codes
from .kernel import run_paths
from .params import KernelParams, all_strategies, baseline_rules, to_kernel, underlying_tables

__all__ = ["codes", "run_paths", "KernelParams", "to_kernel", "baseline_rules", "all_strategies",
           "underlying_tables"]
