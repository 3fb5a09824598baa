"""Paths from a price history: the stationary block bootstrap and the history itself.

Bootstrap (`[market] source = "bootstrap"`): Politis and Romano's (1994) stationary bootstrap
of the joint daily log returns of all underlyings, r[j] = ln(S[j+1] / S[j]), j = 0..N-1, over
the rows of the price file: each path is a chain of return indices; the first is uniform on
0..N-1, and at each later step a new block starts with probability p = 1 / mean_block_days
(a uniform index), otherwise the chain moves to j + 1 (N - 1 wraps to 0: the circular version,
so every return is drawn equally often). Every underlying takes the return of the same day, so
cross-asset dependence survives, and blocks keep volatility clustering. Paths start at the
scenario's `spot` (by default the history's last close): S[t] = spot exp(r[j_1] + ... + r[j_t]).

ATM IV: an underlying with an IV column takes the IV of the sampled day, the IV at the close
of row j + 1 for the step whose return is r[j] (step 0: the IV of row j_1, the close before the
first return), so IV moves with its own returns; missing IV cells are forward-filled. One
without takes the trailing 21-day realised vol of its own path, sqrt(spy / 21 sum r^2) over the
21 returns ending at the step, plus `implied_vol.premium` of regime 0, floored at
`implied_vol.floor`. So that step 0 has 21 returns behind it, each path draws 21 warm-up
returns before step 0 (the chain runs on through them; they move no price).

Draw order per path (binding; the generator is `streams.bootstrap_generator(seed, block)`,
consumed path by path in path order): position 0 of the chain: one uniform -> the index;
each later position: one uniform u (a new block when u < p), and for a new block one more
uniform -> the index. Positions 0..W-1 are the warm-up (W = 21 when some underlying has no IV
column, else 0), position W + t - 1 gives step t. A path's numbers depend only on (seed, path),
so chunking and threads change nothing.

History (`source = "history"`): one path, the rows themselves. Without an IV column for some
underlying, the first 21 returns (rows 0..20) only warm up the realised vol: step 0 is row 21,
the first row with 21 returns behind it (no look-ahead); with IV columns for all, step 0 is row 0.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
from numba import njit

from ..history import RV_WINDOW, PriceHistory, log_returns, trailing_realised_vol
from ..validation import bad_value
from .streams import bootstrap_generator, covering_blocks

__all__ = ["BootstrapParams", "bootstrap_params", "generate_bootstrap", "bootstrap_block",
           "history_arrays", "prepared_iv"]


class BootstrapParams(NamedTuple):
    """What the bootstrap kernel needs (float64 C arrays)."""

    underlyings: tuple
    n_steps: int
    steps_per_year: int
    rets: np.ndarray      # (N, n_u) daily log returns of the history
    iv_src: np.ndarray    # (N + 1, n_u) IV at each row (decimal; 0 where use_iv is false)
    use_iv: np.ndarray    # (n_u,) bool: the underlying has an IV column
    p_new: float          # 1 / mean_block_days
    warm: int             # warm-up returns before step 0
    spot0: np.ndarray     # (n_u,)
    rv_scale: float       # steps_per_year / RV_WINDOW
    iv_add: np.ndarray    # (n_u,): implied_vol.premium of regime 0
    iv_floor: np.ndarray  # (n_u,)


def prepared_iv(h: PriceHistory, what: str = "market.history") -> np.ndarray:
    """The history's IV with interior gaps forward-filled; an IV column must have a value on the
    first row of the sample (else the one-line error names the first date that has one)."""
    iv = h.iv.copy()
    for j in range(iv.shape[1]):
        if not h.has_iv(j):
            iv[:, j] = 0.0
            continue
        x = iv[:, j]
        ok = ~np.isnan(x)
        if not ok[0]:
            first = h.dates[int(np.argmax(ok))]
            raise bad_value("market.start", str(h.dates[0]),
                            f"a date with an implied vol for {h.underlyings[j]} in {what}: its first "
                            f"IV quote is on {first} (set market.start = \"{first}\" or later)")
        idx = np.where(ok, np.arange(x.shape[0]), 0)
        np.maximum.accumulate(idx, out=idx)
        iv[:, j] = x[idx]
    return iv


def bootstrap_params(scenario, h: PriceHistory) -> BootstrapParams:
    run = scenario.run
    und = scenario.underlyings
    use_iv = np.array([h.has_iv(j) for j in range(len(und))], dtype=np.bool_)
    c = np.ascontiguousarray
    return BootstrapParams(
        underlyings=scenario.underlying_names,
        n_steps=int(run.n_steps),
        steps_per_year=int(run.steps_per_year),
        rets=c(log_returns(h.prices)),
        iv_src=c(prepared_iv(h)),
        use_iv=c(use_iv),
        p_new=1.0 / float(scenario.market.mean_block_days),
        warm=0 if use_iv.all() else RV_WINDOW,
        spot0=c(np.array([u.spot for u in und], dtype=np.float64)),
        rv_scale=run.steps_per_year / RV_WINDOW,
        iv_add=c(np.array([u.implied_vol.premium[0] for u in und], dtype=np.float64)),
        iv_floor=c(np.array([u.implied_vol.floor for u in und], dtype=np.float64)),
    )


@njit(cache=True, nogil=True)
def bootstrap_block(gen, n_skip, n_take, dst, rets, iv_src, use_iv, p_new, warm, spot0, rv_scale,
                    iv_add, iv_floor, spot, atm_iv, regime):
    """Bootstrap paths [0, n_skip + n_take) of a block; store the last n_take at rows dst...

    rets (N, n_u), iv_src (N + 1, n_u); outputs spot, atm_iv (rows, n_steps + 1, n_u) and
    regime (rows, n_steps + 1) int8 (all 0: a history has no regimes). Draw order: module doc.
    """
    n_ret = rets.shape[0]
    n_u = rets.shape[1]
    n_steps = spot.shape[1] - 1
    w = 21
    ring = np.zeros((w, n_u))
    logs = np.empty(n_u)
    total = warm + n_steps
    for i in range(n_skip + n_take):
        write = i >= n_skip
        row = dst + i - n_skip
        j = 0
        for u in range(n_u):
            ring[:, u] = 0.0
        sq = np.zeros(n_u)
        for k in range(total):
            if k == 0:
                j = int(gen.random() * n_ret)
                if j >= n_ret:
                    j = n_ret - 1
            elif gen.random() < p_new:
                j = int(gen.random() * n_ret)
                if j >= n_ret:
                    j = n_ret - 1
            else:
                j += 1
                if j == n_ret:
                    j = 0
            # the squared-return window (sum kept exactly by subtracting what leaves it)
            slot = k % w
            for u in range(n_u):
                r2 = rets[j, u] * rets[j, u]
                sq[u] += r2 - ring[slot, u]
                ring[slot, u] = r2
            if not write:
                continue
            t = k - warm + 1
            if t == 0:
                # the warm-up's last return: step 0's realised vol is complete
                for u in range(n_u):
                    spot[row, 0, u] = spot0[u]
                    logs[u] = math.log(spot0[u])
                    if not use_iv[u]:
                        atm_iv[row, 0, u] = max(iv_floor[u], math.sqrt(max(sq[u], 0.0) * rv_scale) + iv_add[u])
                regime[row, 0] = 0
                continue
            if t < 0:
                continue
            if t == 1:
                if warm == 0:
                    for u in range(n_u):
                        spot[row, 0, u] = spot0[u]
                        logs[u] = math.log(spot0[u])
                    regime[row, 0] = 0
                for u in range(n_u):
                    if use_iv[u]:
                        atm_iv[row, 0, u] = iv_src[j, u]
            for u in range(n_u):
                logs[u] += rets[j, u]
                spot[row, t, u] = math.exp(logs[u])
                if use_iv[u]:
                    atm_iv[row, t, u] = iv_src[j + 1, u]
                else:
                    atm_iv[row, t, u] = max(iv_floor[u], math.sqrt(max(sq[u], 0.0) * rv_scale) + iv_add[u])
            regime[row, t] = 0


def generate_bootstrap(bp: BootstrapParams, seed: int, first_path: int, n_paths: int, out=None,
                       threads: int | None = None):
    """Bootstrap paths [first_path, first_path + n_paths): (spot, atm_iv, regime), bit-identical
    to the same rows of any larger run with the same seed (as `generate_market`)."""
    from .core import _check_out, resolve_threads

    n_paths = int(n_paths)
    n_u = len(bp.underlyings)
    n_steps = bp.n_steps
    if out is None:
        spot = np.empty((n_paths, n_steps + 1, n_u))
        iv = np.empty((n_paths, n_steps + 1, n_u))
        reg = np.empty((n_paths, n_steps + 1), dtype=np.int8)
    else:
        spot, iv, reg = _check_out(out, n_paths, n_steps, n_u)
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0 (got {seed})")
    blocks = covering_blocks(first_path, n_paths)

    def run(task):
        b, skip, take, dst = task
        bootstrap_block(bootstrap_generator(seed, b), skip, take, dst, bp.rets, bp.iv_src, bp.use_iv,
                        bp.p_new, bp.warm, bp.spot0, bp.rv_scale, bp.iv_add, bp.iv_floor, spot, iv, reg)

    n_workers = min(resolve_threads(threads), len(blocks))
    if n_workers <= 1:
        for task in blocks:
            run(task)
    else:
        with ThreadPoolExecutor(max_workers=n_workers) as ex:
            list(ex.map(run, blocks))
    if out is not None:
        return spot[:n_paths], iv[:n_paths], reg[:n_paths]
    return spot, iv, reg


def history_arrays(scenario, h: PriceHistory):
    """The one historical path: (spot, atm_iv, regime) of shape (1, n+1, n_u) and its dates.

    Step t is row W + t of the sample (W = 21 when some underlying has no IV column: the
    realised vol's warm-up; else 0). IV: the column (forward-filled), or the trailing 21-day
    realised vol + implied_vol.premium of regime 0, floored.
    """
    spy = scenario.run.steps_per_year
    und = scenario.underlyings
    use_iv = [h.has_iv(j) for j in range(len(und))]
    warm = 0 if all(use_iv) else RV_WINDOW
    prices = h.prices[warm:]
    if prices.shape[0] < 2:
        raise bad_value("market.history", scenario.market.history, "a file with more rows")
    iv = prepared_iv(h)[warm:].copy()
    if warm:
        rv = trailing_realised_vol(log_returns(h.prices), spy)   # rv[i]: returns i-20..i
        for j, u in enumerate(und):
            if not use_iv[j]:
                iv[:, j] = np.maximum(u.implied_vol.floor, rv[warm - 1:, j] + u.implied_vol.premium[0])
    n = prices.shape[0]
    spot = np.ascontiguousarray(prices[None, :, :])
    atm = np.ascontiguousarray(iv[None, :, :])
    reg = np.zeros((1, n), dtype=np.int8)
    return spot, atm, reg, h.dates[warm:].copy()
