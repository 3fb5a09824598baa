"""Market generation throughput: GBM, 3-regime Merton and 3-regime Heston, 200k paths x 252 steps.

Run: python benchmarks/bench_market.py [--paths N] [--chunk N] [--threads N] [--repeat N]

Generates chunk by chunk into preallocated buffers (as the engine does: `generate_market(...,
out=...)`), after a warm-up, and prints path-steps/s. A plain numpy GBM (per-chunk
`Generator.standard_normal`, cumsum, exp into the same buffers, one thread) is measured in the
same run for comparison. The stochastic-vol model (Heston, QE scheme, 3 regimes switching the
long-run variance, jumps, the 30-day ATM IV) is timed the same way, with its variance path kept
(one more float64 array per chunk, as `simulate_market` keeps it), on the given threads and on
one (the scaling), beside the draws alone (`rng_floor`: a price normal, a variance normal and a
regime uniform per path-step from the same block generators, no arithmetic): no kernel that keeps
mcsim's random streams can beat that figure. Also a one-shot `generate_market` of all paths
(allocating ~17 bytes per path-step). Peak memory: tracemalloc (numpy allocations) and ru_maxrss
(whole process).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

import mcsim
from mcsim.market import BLOCK, generate_market, market_params, resolve_threads
from mcsim.market.streams import block_generator, variance_generator

GBM = """
[run]
horizon_years = 1.0
[[underlyings]]
name = "SPY"
spot = 100.0
dividend_yield = 0.015
expected_return = 0.07
volatility = 0.18
"""

MERTON3 = """
[run]
horizon_years = 1.0
[regimes]
names = ["calm", "normal", "stress"]
mean_duration_days = [60, 40, 15]
exit_probabilities = [[0, 0.8, 0.2], [0.6, 0, 0.4], [0.2, 0.8, 0]]
[[underlyings]]
name = "SPY"
spot = 100.0
dividend_yield = 0.015
expected_return = [0.09, 0.06, -0.10]
volatility = [0.11, 0.17, 0.35]
jump_intensity = [0.5, 1.5, 6.0]
jump_mean = [-0.02, -0.03, -0.06]
jump_std = [0.03, 0.04, 0.08]
[underlyings.implied_vol]
premium = [0.02, 0.02, 0.04]
shock_beta = 1.5
shock_half_life_days = 10
"""


HESTON3 = MERTON3.replace("volatility = [0.11, 0.17, 0.35]\n", "") + """
[underlyings.stochastic_vol]
mean_reversion = 4.0
long_run_vol = [0.11, 0.17, 0.35]
vol_of_vol = 0.6
spot_vol_correlation = -0.7
"""


def load(text: str):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "s.toml"
        p.write_text(text)
        return mcsim.load_scenario(p)


def bench_chunked(params, n_paths, chunk, threads, repeat, seed=1):
    n_u = len(params.underlyings)
    out = (np.empty((chunk, params.n_steps + 1, n_u)), np.empty((chunk, params.n_steps + 1, n_u)),
           np.empty((chunk, params.n_steps + 1), dtype=np.int8))
    var = np.empty((chunk, params.n_steps + 1, n_u)) if params.any_sv else None
    generate_market(params, seed, 0, min(chunk, 2 * BLOCK), out=out, threads=threads, variance=var)  # warm-up
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        for first in range(0, n_paths, chunk):
            generate_market(params, seed, first, min(chunk, n_paths - first), out=out, threads=threads,
                            variance=var)
        best = min(best, time.perf_counter() - t0)
    return n_paths * params.n_steps / best, best


def bench_oneshot(params, n_paths, threads, seed=1):
    t0 = time.perf_counter()
    spot, iv, reg = generate_market(params, seed, 0, n_paths, threads=threads)
    dt = time.perf_counter() - t0
    nbytes = spot.nbytes + iv.nbytes + reg.nbytes
    del spot, iv, reg
    return n_paths * params.n_steps / dt, dt, nbytes


@njit(cache=True, nogil=True)
def _heston_draws(gen, vgen, n_steps):
    """The draws a 3-regime Heston path-step needs at least (price normal, variance normal,
    regime uniform; jumps draw only when one lands), and nothing else."""
    s = 0.0
    for _ in range(n_steps):
        s += gen.standard_normal() + vgen.standard_normal() + gen.random()
    return s


def rng_floor(n_paths, n_steps, threads, repeat, seed=1):
    """Path-steps/s of the Heston draws alone, block by block on `threads` threads: the
    ceiling of any kernel that keeps the random streams of mcsim.market.streams."""
    n_blocks = max(1, n_paths // BLOCK)
    _heston_draws(block_generator(seed, 0), variance_generator(seed, 0), 10)

    def run(b):
        _heston_draws(block_generator(seed, b), variance_generator(seed, b), BLOCK * n_steps)

    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=threads) as ex:
            list(ex.map(run, range(n_blocks)))
        best = min(best, time.perf_counter() - t0)
    return n_blocks * BLOCK * n_steps / best


def numpy_gbm(params, n_paths, chunk, repeat, seed=1):
    """Plain numpy GBM of the same model into the same kind of buffers (single thread)."""
    n = params.n_steps
    a = float(params.drift[0, 0])
    b = float(params.vol_sdt[0, 0])
    s0 = float(params.spot0[0])
    spot = np.empty((chunk, n + 1))
    best = np.inf
    for _ in range(repeat):
        rng = np.random.Generator(np.random.PCG64(seed))
        t0 = time.perf_counter()
        for first in range(0, n_paths, chunk):
            m = min(chunk, n_paths - first)
            z = rng.standard_normal((m, n))
            z *= b
            z += a
            np.cumsum(z, axis=1, out=z)
            np.exp(z, out=z)
            z *= s0
            spot[:m, 0] = s0
            spot[:m, 1:] = z
        best = min(best, time.perf_counter() - t0)
    return n_paths * n / best, best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=200_000)
    ap.add_argument("--chunk", type=int, default=16 * BLOCK)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    threads = resolve_threads(args.threads)
    gbm = market_params(load(GBM))
    mer = market_params(load(MERTON3))
    hes = market_params(load(HESTON3))
    assert hes.any_sv and not mer.any_sv
    print(f"market generation: {args.paths} paths x {gbm.n_steps} steps, 1 underlying, "
          f"chunk {args.chunk} paths, {threads} thread(s), best of {args.repeat}")
    tracemalloc.start()
    r_gbm, t_gbm = bench_chunked(gbm, args.paths, args.chunk, threads, args.repeat)
    r_mer, t_mer = bench_chunked(mer, args.paths, args.chunk, threads, args.repeat)
    r_hes, t_hes = bench_chunked(hes, args.paths, args.chunk, threads, args.repeat)
    r_hes1, _ = bench_chunked(hes, args.paths, args.chunk, 1, args.repeat)
    r_floor = rng_floor(args.paths, hes.n_steps, threads, args.repeat)
    r_floor1 = rng_floor(args.paths, hes.n_steps, 1, args.repeat)
    _, peak_chunked = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    r_np, t_np = numpy_gbm(gbm, args.paths, args.chunk, args.repeat)
    _, peak_np = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    r_one, t_one, nb = bench_oneshot(gbm, args.paths, threads)
    _, peak_one = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"  GBM (numba, chunked)          {r_gbm / 1e6:8.1f} M path-steps/s  ({t_gbm:.3f} s)   target >= 130")
    print(f"  3-regime Merton (chunked)     {r_mer / 1e6:8.1f} M path-steps/s  ({t_mer:.3f} s)   target >= 100")
    print(f"  3-regime Heston + jumps       {r_hes / 1e6:8.1f} M path-steps/s  ({t_hes:.3f} s)   target >= 80; "
          f"Heston/numpy-GBM = {r_hes / r_np:.2f}x, Heston/Merton = {r_hes / r_mer:.2f}x")
    print(f"  3-regime Heston, 1 thread     {r_hes1 / 1e6:8.1f} M path-steps/s                scaling "
          f"{r_hes / r_hes1:.2f}x on {threads} thread(s)")
    print(f"  Heston draws alone            {r_floor / 1e6:8.1f} M path-steps/s  ({threads} thread(s); "
          f"{r_floor1 / 1e6:.1f}M on 1): the ceiling with mcsim's random streams")
    print(f"  GBM plain numpy (1 thread)    {r_np / 1e6:8.1f} M path-steps/s  ({t_np:.3f} s)   "
          f"numba/numpy = {r_gbm / r_np:.2f}x")
    print(f"  GBM one-shot, all paths       {r_one / 1e6:8.1f} M path-steps/s  ({t_one:.3f} s, "
          f"{nb / 2**20:.0f} MiB of output incl. page faults)")
    print(f"  peak traced memory: chunked numba {peak_chunked / 2**20:.1f} MiB, numpy {peak_np / 2**20:.1f} MiB, "
          f"one-shot {peak_one / 2**20:.1f} MiB; process max RSS {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
