"""Market path generation: regimes, correlated jump-diffusions, ATM implied vol.

Public API: `MarketPaths`, `simulate_market`, and for the engine `market_params` +
`generate_market`. Random streams: fixed blocks of `BLOCK` paths keyed by (seed, block); see
`mcsim.market.streams`.
"""

from .core import (
    DEFAULT_ATM_IV,
    IV_TENOR_DAYS,
    MarketParams,
    MarketPaths,
    generate_market,
    market_params,
    matrix_sqrt,
    resolve_threads,
    simulate_market,
)
from .streams import BLOCK, block_generator, covering_blocks, stream_info, variance_generator

__all__ = [
    "MarketPaths",
    "MarketParams",
    "simulate_market",
    "market_params",
    "generate_market",
    "matrix_sqrt",
    "resolve_threads",
    "DEFAULT_ATM_IV",
    "IV_TENOR_DAYS",
    "BLOCK",
    "block_generator",
    "covering_blocks",
    "stream_info",
    "variance_generator",
]
