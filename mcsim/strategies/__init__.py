"""Strategy kernels (numba) and their named layouts.

`kernel.run_paths` runs one strategy of any kind over a range of paths; `params.to_kernel` maps
a `StrategyRules` + `Scenario` onto its `layout.Rules` bundle. The pandas-facing layer is
`mcsim.engine`; docs/architecture.md says where each concept lives.
"""

from . import layout
from .kernel import run_paths
from .params import KernelParams, all_strategies, baseline_rules, to_kernel, underlying_tables, with_steps

__all__ = ["layout", "run_paths", "KernelParams", "to_kernel", "baseline_rules", "all_strategies",
           "underlying_tables", "with_steps"]
