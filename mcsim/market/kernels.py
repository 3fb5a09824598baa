"""Numba kernels of market path generation (one block of paths per call).

One kernel, `simulate_block`, covers every model variant (GBM, Merton jumps, regimes, several
correlated underlyings, scheduled shocks, IV shock response), so the test suite and the engine
compile a single signature. It takes the block's `np.random.Generator` and releases the GIL, so
blocks run in parallel on plain Python threads.

Draw order inside a block (binding: changing it changes every path; bump STREAM_VERSION):

for each path of the block, in path order:
  1. if n_regimes > 1: one uniform -> initial regime (inverse CDF of `initial_probs`);
  2. for each underlying u (in order) with a positive jump intensity in some regime: one
     standard exponential, the path's jump "hazard budget" for u;
  3. for each step t = 1..n_steps, with r = regime[p, t-1]:
     a. n_underlyings standard normals z (correlated with the square root of regime r's
        correlation matrix);
     b. for each underlying u with lambda_r,u > 0: the hazard budget is reduced by
        lambda_r,u * dt; each time it runs out, a jump occurs and a fresh standard exponential is
        drawn (this yields N ~ Poisson(lambda_r,u dt) jumps per step, several allowed, exactly:
        unit-rate Poisson process run on the cumulative-hazard clock). If N > 0, one more normal
        z2 and the summed log jump is N * jump_mean + sqrt(N) * jump_std * z2;
     c. if n_regimes > 1: one uniform -> regime[p, t] (inverse CDF over row r of the per-step
        transition matrix).

Per step t, underlying u: x = drift[r,u] + vol_sdt[r,u] * (L_r z)[u] + jumps + shock_ret[t,u];
log spot += x; IV excess = excess * decay - beta * (x - ret_mean[r,u]) + shock_iv[t,u];
atm_iv = max(floor, iv_base[regime[p,t], u] + excess).

The shock response is symmetric in the demeaned log return (ret_mean[r,u] = E[x] in regime r,
jumps included): a down day adds beta * |x - E x|, an up day takes the same away, so the excess
has long-run mean zero (a transient); only the reported IV is floored.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["simulate_block"]


@njit(cache=True, nogil=True)
def _search(cdf, u):
    """Smallest j with u < cdf[j] (cdf non-decreasing, cdf[-1] == 1)."""
    n = cdf.shape[0]
    for j in range(n - 1):
        if u < cdf[j]:
            return j
    return n - 1


@njit(cache=True, nogil=True)
def simulate_block(
    gen,
    n_skip,
    n_take,
    dst,
    spot0,
    log_spot0,
    drift,
    vol_sdt,
    chol,
    lam_dt,
    jump_mean,
    jump_std,
    init_cdf,
    trans_cdf,
    iv_base,
    iv_floor,
    iv_decay,
    iv_beta,
    ret_mean,
    shock_ret,
    shock_iv,
    spot,
    atm_iv,
    regime,
):
    """Simulate paths [0, n_skip + n_take) of a block; store the last n_take at rows dst...

    Shapes: spot0, log_spot0, iv_floor, iv_decay, iv_beta (n_u,); drift, vol_sdt, lam_dt,
    jump_mean, jump_std, iv_base, ret_mean (n_reg, n_u); chol (n_reg, n_u, n_u); init_cdf (n_reg,);
    trans_cdf (n_reg, n_reg); shock_ret, shock_iv (n_steps+1, n_u); outputs spot, atm_iv
    (rows, n_steps+1, n_u) float64 and regime (rows, n_steps+1) int8.
    """
    n_u = spot0.shape[0]
    n_reg = init_cdf.shape[0]
    n_steps = spot.shape[1] - 1

    has_jump = np.zeros(n_u, dtype=np.bool_)
    any_jump = False
    for u in range(n_u):
        for r in range(n_reg):
            if lam_dt[r, u] > 0.0:
                has_jump[u] = True
                any_jump = True
    has_shock = np.zeros(n_steps + 1, dtype=np.bool_)
    for t in range(n_steps + 1):
        for u in range(n_u):
            if shock_ret[t, u] != 0.0 or shock_iv[t, u] != 0.0:
                has_shock[t] = True

    if n_u == 1:
        _one(gen, n_skip, n_take, dst, spot0[0], log_spot0[0], drift[:, 0], vol_sdt[:, 0],
             chol[:, 0, 0], lam_dt[:, 0], jump_mean[:, 0], jump_std[:, 0], any_jump, init_cdf,
             trans_cdf, iv_base[:, 0], iv_floor[0], iv_decay[0], iv_beta[0], ret_mean[:, 0], shock_ret[:, 0],
             shock_iv[:, 0], has_shock, spot, atm_iv, regime)
        return

    x = np.empty(n_u)
    exc = np.empty(n_u)
    budget = np.empty(n_u)
    z = np.empty(n_u)
    ret = np.empty(n_u)

    for i in range(n_skip + n_take):
        write = i >= n_skip
        row = dst + i - n_skip
        r = 0
        if n_reg > 1:
            r = _search(init_cdf, gen.random())
        for u in range(n_u):
            x[u] = log_spot0[u]
            exc[u] = 0.0
            if has_jump[u]:
                budget[u] = gen.standard_exponential()
        if write:
            regime[row, 0] = r
            for u in range(n_u):
                spot[row, 0, u] = spot0[u]
                atm_iv[row, 0, u] = max(iv_floor[u], iv_base[r, u])
        for t in range(1, n_steps + 1):
            for u in range(n_u):
                z[u] = gen.standard_normal()
            for u in range(n_u):
                w = 0.0
                for k in range(n_u):
                    w += chol[r, u, k] * z[k]
                ret[u] = drift[r, u] + vol_sdt[r, u] * w
            if any_jump:
                for u in range(n_u):
                    h = lam_dt[r, u]
                    if h > 0.0:
                        nj = 0
                        b = budget[u]
                        while b <= h:
                            h -= b
                            nj += 1
                            b = gen.standard_exponential()
                        budget[u] = b - h
                        if nj > 0:
                            ret[u] += nj * jump_mean[r, u] + math.sqrt(nj) * jump_std[r, u] * gen.standard_normal()
            r_step = r
            if n_reg > 1:
                r = _next_regime(trans_cdf, r, gen.random())
            shocked = has_shock[t]
            for u in range(n_u):
                xr = ret[u]
                if shocked:
                    xr += shock_ret[t, u]
                x[u] += xr
                e = exc[u] * iv_decay[u] - iv_beta[u] * (xr - ret_mean[r_step, u])
                if shocked:
                    e += shock_iv[t, u]
                exc[u] = e
                if write:
                    spot[row, t, u] = math.exp(x[u])
                    atm_iv[row, t, u] = max(iv_floor[u], iv_base[r, u] + e)
            if write:
                regime[row, t] = r


@njit(cache=True, nogil=True)
def _next_regime(trans_cdf, r, u):
    """Inverse CDF over row r of the per-step transition matrix."""
    n = trans_cdf.shape[1]
    for j in range(n - 1):
        if u < trans_cdf[r, j]:
            return j
    return n - 1


@njit(cache=True, nogil=True)
def _one(gen, n_skip, n_take, dst, s0, x0, drift, vol_sdt, c00, lam_dt, jump_mean, jump_std,
         jumps, init_cdf, trans_cdf, iv_base, iv_floor, iv_decay, iv_beta, ret_mean, shock_ret,
         shock_iv, has_shock, spot, atm_iv, regime):
    """One underlying: the same draws as the general loop, per-path state in registers."""
    n_reg = init_cdf.shape[0]
    n_steps = spot.shape[1] - 1
    a = np.empty(n_reg)
    sd = np.empty(n_reg)
    h = np.empty(n_reg)
    jm = np.empty(n_reg)
    js = np.empty(n_reg)
    base = np.empty(n_reg)
    xm = np.empty(n_reg)
    for r in range(n_reg):
        xm[r] = ret_mean[r]
        a[r] = drift[r]
        sd[r] = vol_sdt[r] * c00[r]
        h[r] = lam_dt[r]
        jm[r] = jump_mean[r]
        js[r] = jump_std[r]
        base[r] = iv_base[r]
    for i in range(n_skip + n_take):
        write = i >= n_skip
        row = dst + i - n_skip
        r = 0
        if n_reg > 1:
            r = _search(init_cdf, gen.random())
        budget = 0.0
        if jumps:
            budget = gen.standard_exponential()
        x = x0
        e = 0.0
        if write:
            regime[row, 0] = r
            spot[row, 0, 0] = s0
            atm_iv[row, 0, 0] = max(iv_floor, base[r])
        for t in range(1, n_steps + 1):
            xr = a[r] + sd[r] * gen.standard_normal()
            if jumps:
                hr = h[r]
                if hr > 0.0 and budget <= hr:
                    nj = 0
                    while budget <= hr:
                        hr -= budget
                        nj += 1
                        budget = gen.standard_exponential()
                    xr += nj * jm[r] + math.sqrt(nj) * js[r] * gen.standard_normal()
                budget -= hr
            mean_r = xm[r]
            if n_reg > 1:
                r = _next_regime(trans_cdf, r, gen.random())
            if has_shock[t]:
                xr += shock_ret[t]
                e = e * iv_decay - iv_beta * (xr - mean_r) + shock_iv[t]
            else:
                e = e * iv_decay - iv_beta * (xr - mean_r)
            x += xr
            if write:
                spot[row, t, 0] = math.exp(x)
                atm_iv[row, t, 0] = max(iv_floor, base[r] + e)
                regime[row, t] = r
