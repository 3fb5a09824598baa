"""Random streams: fixed blocks of paths, one PCG64 generator per (seed, block).

Design (part of every result's provenance, see `stream_info()`):

* Paths are grouped in fixed blocks of `BLOCK` = 1024 consecutive path numbers: block b holds
  paths [b * BLOCK, (b + 1) * BLOCK).
* Block b draws from `np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, b])))`.
  No global seed is used anywhere.
* Within a block the generator is consumed path by path, in path order, and within a path in the
  fixed order documented in `mcsim.market.kernels` (step by step). A path's numbers therefore
  depend only on (seed, path number): any chunking, any `first_path`, any thread count gives the
  same bits. Producing path p costs simulating the paths before it in its block, so chunks that
  start on a multiple of BLOCK waste nothing.
* The stationary block bootstrap of a price history (mcsim.market.bootstrap) draws from its own
  generator per block, `bootstrap_generator(seed, b)` = PCG64(SeedSequence([seed, b, 2])),
  consumed path by path in the order documented there.
* Stochastic variance (mcsim.market.heston) draws its variance shocks from a second generator
  per block, `variance_generator(seed, b)` = PCG64(SeedSequence([seed, b, 1])), consumed in the
  same path-then-step order; the first stream is then consumed exactly as without it, so
  scenarios without stochastic vol see the same numbers as before it existed.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BLOCK",
    "BIT_GENERATOR",
    "KEYING",
    "STREAM_VERSION",
    "block_generator",
    "variance_generator",
    "bootstrap_generator",
    "covering_blocks",
    "stream_info",
]

BLOCK = 1024
BIT_GENERATOR = "PCG64"
KEYING = "numpy.random.SeedSequence([seed, block])"
VARIANCE_KEYING = "numpy.random.SeedSequence([seed, block, 1])"
BOOTSTRAP_KEYING = "numpy.random.SeedSequence([seed, block, 2])"
# Bump when the draw order inside the kernels changes (same seed would give different paths).
STREAM_VERSION = 1


def block_generator(seed: int, block: int) -> np.random.Generator:
    """The generator of block `block` (paths [block*BLOCK, (block+1)*BLOCK)) for `seed`."""
    seed = int(seed)
    block = int(block)
    if seed < 0 or block < 0:
        raise ValueError(f"seed and block must be >= 0 (got seed={seed}, block={block})")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, block])))


def variance_generator(seed: int, block: int) -> np.random.Generator:
    """The variance-shock generator of block `block` for `seed` (stochastic vol only)."""
    seed = int(seed)
    block = int(block)
    if seed < 0 or block < 0:
        raise ValueError(f"seed and block must be >= 0 (got seed={seed}, block={block})")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, block, 1])))


def bootstrap_generator(seed: int, block: int) -> np.random.Generator:
    """The generator of block `block` for `seed` in a bootstrap of a price history."""
    seed = int(seed)
    block = int(block)
    if seed < 0 or block < 0:
        raise ValueError(f"seed and block must be >= 0 (got seed={seed}, block={block})")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, block, 2])))


def covering_blocks(first_path: int, n_paths: int) -> list[tuple[int, int, int, int]]:
    """Blocks covering paths [first_path, first_path + n_paths).

    Returns (block, skip, take, dst) tuples: simulate the first `skip + take` paths of `block`,
    keep the last `take` of them, and store them at output rows [dst, dst + take).
    """
    first_path = int(first_path)
    n_paths = int(n_paths)
    if first_path < 0 or n_paths < 0:
        raise ValueError(f"first_path and n_paths must be >= 0 (got {first_path}, {n_paths})")
    out = []
    p = first_path
    end = first_path + n_paths
    while p < end:
        b = p // BLOCK
        skip = p - b * BLOCK
        take = min(end, (b + 1) * BLOCK) - p
        out.append((b, skip, take, p - first_path))
        p += take
    return out


def stream_info() -> dict:
    """Provenance of the random streams (record it beside results)."""
    return {
        "block_paths": BLOCK,
        "bit_generator": BIT_GENERATOR,
        "keying": KEYING,
        "variance_keying": VARIANCE_KEYING,
        "bootstrap_keying": BOOTSTRAP_KEYING,
        "stream_version": STREAM_VERSION,
        "numpy": np.__version__,
    }
