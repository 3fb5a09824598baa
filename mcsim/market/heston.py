"""Numba kernel of the stochastic-variance market: Heston variance with leverage, common jumps.

`simulate_block_sv` is the superset kernel: it runs every scenario with a Heston underlying
(`[underlyings.stochastic_vol]`) or with `correlation.common_jumps = true`; every other scenario
runs `mcsim.market.kernels.simulate_block`, whose draws and outputs this module leaves untouched.

Model, per Heston underlying u, in regime r (the regime in effect during the step):

    dv = kappa (theta_r - v) dt + xi sqrt(v) dW_v,   d ln S = (mu_r - q - lambda_r k_r - v/2) dt
         + sqrt(v) dW + jumps,  corr(dW, dW_v) = rho.

Discretised at the run's steps with Andersen's (2008) quadratic-exponential (QE) scheme,
psi_c = 1.5, central weights gamma1 = gamma2 = 1/2, and his martingale correction of K0, so
E[S_{t+dt} | v_t] = S_t exp((mu_r - q) dt) holds exactly per step and E[v_{t+dt} | v_t] equals
the exact conditional mean. One normal zv per underlying and step drives the variance (the
quadratic branch uses it directly, the exponential branch its uniform U = Phi(zv)), so QE's
uniform costs no extra draw.

Draws. The price stream `gen` (the block's generator of `mcsim.market.streams`) is consumed in
exactly the order of `simulate_block` (so the price normals of a Heston scenario equal those of
its constant-vol twin), except with common jumps: one hazard budget per path instead of one per
underlying, and when N > 0 jumps land in a step, one size normal per underlying in order. The
variance stream `vgen` (`variance_generator(seed, block)`) gives, per path in order and per step,
n_underlyings independent normals eta (only Heston underlyings use theirs). Both streams are
functions of (seed, block) only.

Shocks of a Heston underlying: the correlated price normal eps = (L_r z)[u] is the return shock,
as for constant vol; it is split into the variance normal zv = rho eps + sqrt(1 - rho^2) eta and
the QE price normal Z = sqrt(1 - rho^2) eps - rho eta, independent of zv. So returns keep the
correlation matrix across underlyings whether they have stochastic vol or not, and a Heston
scenario's returns move with the same normals as its constant-vol twin's.

ATM IV of a Heston underlying at step t (regime r = regime[p, t]): the 30-calendar-day ATM IV
sqrt(theta_r + (v_t - theta_r) B + lambda_r (jump_mean_r^2 + jump_std_r^2)) + premium_r + excess,
floored, with B = (1 - exp(-kappa tau)) / (kappa tau), tau = 30 / 365. The excess is the shock
response of `simulate_block`, demeaned by the step's exact conditional mean log return.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .kernels import _next_regime, _search

__all__ = ["simulate_block_sv", "PSI_C"]

PSI_C = 1.5  # Andersen's switch between the quadratic and the exponential branch


@njit(cache=True, nogil=True, inline="always")
def _qe_step(m, s2, zv, a_mgf):
    """One QE step: (v_next, k0) from the exact conditional mean m and variance s2 of v_next,
    the variance normal zv and A = K2 + K4 / 2; k0 is the martingale-corrected K0 (minus the
    (K1 + K3/2) v_t term), so E[exp(k0 + A v_next)] = 1."""
    if s2 <= PSI_C * m * m:  # psi = s2 / m^2 <= psi_c (m > 0 here)
        # b^2 = 2/psi - 1 + sqrt(2/psi) sqrt(2/psi - 1) = be (al + be), 1 + b^2 = al (al + be):
        # two independent square roots, a short dependency chain from v_t to v_next
        t2 = 2.0 * m * m / s2
        al = math.sqrt(t2)
        be = math.sqrt(t2 - 1.0)
        b2 = be * (al + be)
        aq = m / (al * (al + be))
        bz = math.sqrt(b2) + zv
        y = 2.0 * a_mgf * aq
        if y >= 1.0:  # E[exp(A v_next)] infinite (extreme rho > 0): first-order correction
            return aq * bz * bz, -a_mgf * m
        if abs(y) < 0.01:  # 0.5 log(1 - y) by its series (error < 1e-16): no log on most steps
            half_log = -0.5 * y * (1.0 + y * (0.5 + y * (1.0 / 3.0 + y * (0.25 + y * (0.2 + y * (1.0 / 6.0))))))
        else:
            half_log = 0.5 * math.log(1.0 - y)
        return aq * bz * bz, half_log - a_mgf * b2 * aq / (1.0 - y)
    psi = s2 / (m * m) if m > 0.0 else 1e300
    p0 = (psi - 1.0) / (psi + 1.0)
    beta = (1.0 - p0) / m
    uu = 0.5 * math.erfc(-zv * 0.7071067811865476)  # QE's uniform: U = Phi(zv)
    vn = 0.0 if uu <= p0 else math.log((1.0 - p0) / (1.0 - uu)) / beta
    if beta <= a_mgf:  # as above
        return vn, -a_mgf * m
    return vn, -math.log(p0 + beta * (1.0 - p0) / (beta - a_mgf))


@njit(cache=True, nogil=True)
def _one_sv(gen, vgen, n_skip, n_take, dst, s0, x0, lam_dt, jump_mean, jump_std, jumps, init_cdf,
            trans_cdf, iv_floor, iv_decay, iv_beta, shock_ret, shock_iv, has_shock, sv_drift,
            sv_exp, sv_c1, sv_c2, theta, sv_k2, sv_k3, sv_k4, sv_v0, sv_b, rho, rhobar, iv_jump_var,
            iv_premium, spot, atm_iv, regime, variance, write_var):
    """One Heston underlying: the draws of the general loop, per-path state in registers."""
    n_reg = init_cdf.shape[0]
    n_steps = spot.shape[1] - 1
    a_mgf = sv_k2 + 0.5 * sv_k4
    # per regime: IV level at v = 0 and its slope in v (the 30-day term structure)
    iv_a = np.empty(n_reg)
    xm_j = np.empty(n_reg)
    for r in range(n_reg):
        iv_a[r] = theta[r] * (1.0 - sv_b) + iv_jump_var[r]
        xm_j[r] = sv_drift[r] + lam_dt[r] * jump_mean[r]
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
        v = sv_v0 if sv_v0 >= 0.0 else theta[r]
        if write:
            regime[row, 0] = r
            spot[row, 0, 0] = s0
            atm_iv[row, 0, 0] = max(iv_floor, math.sqrt(max(iv_a[r] + v * sv_b, 0.0)) + iv_premium[r])
            if write_var:
                variance[row, 0, 0] = v
        for t in range(1, n_steps + 1):
            eps = gen.standard_normal()
            eta = vgen.standard_normal()
            zv = rho * eps + rhobar * eta
            z = rhobar * eps - rho * eta
            th = theta[r]
            m = th + (v - th) * sv_exp
            vn, k0 = _qe_step(m, v * sv_c1 + sv_c2[r], zv, a_mgf)
            base = sv_drift[r] + k0 - 0.5 * sv_k3 * v
            xr = base + sv_k2 * vn + math.sqrt(sv_k3 * v + sv_k4 * vn) * z
            mean_r = xm_j[r] - sv_drift[r] + base + sv_k2 * m
            v = vn
            if jumps:
                hr = lam_dt[r]
                if hr > 0.0 and budget <= hr:
                    nj = 0
                    while budget <= hr:
                        hr -= budget
                        nj += 1
                        budget = gen.standard_exponential()
                    xr += nj * jump_mean[r] + math.sqrt(nj) * jump_std[r] * gen.standard_normal()
                budget -= hr
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
                atm_iv[row, t, 0] = max(iv_floor, math.sqrt(max(iv_a[r] + v * sv_b, 0.0)) + iv_premium[r] + e)
                regime[row, t] = r
                if write_var:
                    variance[row, t, 0] = v


@njit(cache=True, nogil=True)
def simulate_block_sv(
    gen, vgen, n_skip, n_take, dst, spot0, log_spot0, drift, vol_sdt, chol, lam_dt, jump_mean,
    jump_std, init_cdf, trans_cdf, iv_base, iv_floor, iv_decay, iv_beta, ret_mean, shock_ret,
    shock_iv, common_jumps, has_sv, sv_drift, sv_exp, sv_c1, sv_c2, theta, sv_k2, sv_k3, sv_k4,
    sv_v0, sv_b, sv_rho, sv_rhobar, iv_jump_var, iv_premium, var_const, spot, atm_iv, regime,
    variance, write_var,
):
    """Simulate paths [0, n_skip + n_take) of a block; store the last n_take at rows dst...

    As `simulate_block`, plus: common_jumps (bool); per underlying has_sv (bool), sv_rho = rho,
    sv_rhobar = sqrt(1 - rho^2), sv_exp =
    exp(-kappa dt), sv_c1 = xi^2 e (1 - e) / kappa, sv_k2 = rho/xi + dt (kappa rho/xi - 1/2) / 2,
    sv_k3 = sv_k4 = dt (1 - rho^2) / 2, sv_v0 (< 0: theta of the path's initial regime), sv_b =
    B of the 30-day IV; per regime and underlying sv_drift = (mu - q - lambda k) dt, sv_c2 =
    theta xi^2 (1 - e)^2 / (2 kappa), theta, iv_jump_var, iv_premium, var_const = vol^2 (what
    `variance` holds for a constant-vol underlying). `variance` (rows, n_steps+1, n_u) is written
    only if write_var.
    """
    n_u = spot0.shape[0]
    n_reg = init_cdf.shape[0]
    n_steps = spot.shape[1] - 1

    has_jump = np.zeros(n_u, dtype=np.bool_)
    any_jump = False
    any_sv = False
    for u in range(n_u):
        if has_sv[u]:
            any_sv = True
        for r in range(n_reg):
            if lam_dt[r, u] > 0.0:
                has_jump[u] = True
                any_jump = True
    has_shock = np.zeros(n_steps + 1, dtype=np.bool_)
    for t in range(n_steps + 1):
        for u in range(n_u):
            if shock_ret[t, u] != 0.0 or shock_iv[t, u] != 0.0:
                has_shock[t] = True

    if n_u == 1 and has_sv[0]:
        _one_sv(gen, vgen, n_skip, n_take, dst, spot0[0], log_spot0[0], lam_dt[:, 0],
                jump_mean[:, 0], jump_std[:, 0], any_jump, init_cdf, trans_cdf, iv_floor[0],
                iv_decay[0], iv_beta[0], shock_ret[:, 0], shock_iv[:, 0], has_shock, sv_drift[:, 0],
                sv_exp[0], sv_c1[0], sv_c2[:, 0], theta[:, 0], sv_k2[0], sv_k3[0], sv_k4[0], sv_v0[0],
                sv_b[0], sv_rho[0], sv_rhobar[0], iv_jump_var[:, 0], iv_premium[:, 0], spot, atm_iv,
                regime, variance, write_var)
        return

    x = np.empty(n_u)
    exc = np.empty(n_u)
    budget = np.empty(n_u)
    z = np.empty(n_u)
    zv = np.empty(n_u)
    ret = np.empty(n_u)
    mean = np.empty(n_u)
    v = np.empty(n_u)

    for i in range(n_skip + n_take):
        write = i >= n_skip
        row = dst + i - n_skip
        r = 0
        if n_reg > 1:
            r = _search(init_cdf, gen.random())
        common_budget = 0.0
        if common_jumps:
            if any_jump:
                common_budget = gen.standard_exponential()
        for u in range(n_u):
            x[u] = log_spot0[u]
            exc[u] = 0.0
            if has_jump[u] and not common_jumps:
                budget[u] = gen.standard_exponential()
            if has_sv[u]:
                v[u] = sv_v0[u] if sv_v0[u] >= 0.0 else theta[r, u]
            else:
                v[u] = var_const[r, u]
        if write:
            regime[row, 0] = r
            for u in range(n_u):
                spot[row, 0, u] = spot0[u]
                if has_sv[u]:
                    iv0 = math.sqrt(max(theta[r, u] + (v[u] - theta[r, u]) * sv_b[u] + iv_jump_var[r, u], 0.0))
                    atm_iv[row, 0, u] = max(iv_floor[u], iv0 + iv_premium[r, u])
                else:
                    atm_iv[row, 0, u] = max(iv_floor[u], iv_base[r, u])
                if write_var:
                    variance[row, 0, u] = v[u]
        for t in range(1, n_steps + 1):
            for u in range(n_u):
                z[u] = gen.standard_normal()
            if any_sv:
                for u in range(n_u):
                    zv[u] = vgen.standard_normal()
            for u in range(n_u):
                w = 0.0
                for k in range(n_u):
                    w += chol[r, u, k] * z[k]
                if has_sv[u]:
                    # w is the return shock (correlated across underlyings as for constant vol);
                    # split it into the variance shock wv and the part orthogonal to it, wz
                    wv = sv_rho[u] * w + sv_rhobar[u] * zv[u]
                    w = sv_rhobar[u] * w - sv_rho[u] * zv[u]
                    vt = v[u]
                    th = theta[r, u]
                    m = th + (vt - th) * sv_exp[u]
                    vn, k0 = _qe_step(m, vt * sv_c1[u] + sv_c2[r, u], wv, sv_k2[u] + 0.5 * sv_k4[u])
                    base = sv_drift[r, u] + k0 - 0.5 * sv_k3[u] * vt
                    ret[u] = base + sv_k2[u] * vn + math.sqrt(sv_k3[u] * vt + sv_k4[u] * vn) * w
                    mean[u] = base + sv_k2[u] * m + lam_dt[r, u] * jump_mean[r, u]
                    v[u] = vn
                else:
                    ret[u] = drift[r, u] + vol_sdt[r, u] * w
                    mean[u] = ret_mean[r, u]
            if any_jump:
                if common_jumps:
                    h = lam_dt[r, 0]
                    if h > 0.0:
                        nj = 0
                        b = common_budget
                        while b <= h:
                            h -= b
                            nj += 1
                            b = gen.standard_exponential()
                        common_budget = b - h
                        if nj > 0:
                            for u in range(n_u):
                                ret[u] += nj * jump_mean[r, u] + math.sqrt(nj) * jump_std[r, u] * gen.standard_normal()
                else:
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
            if n_reg > 1:
                r = _next_regime(trans_cdf, r, gen.random())
            shocked = has_shock[t]
            for u in range(n_u):
                xr = ret[u]
                if shocked:
                    xr += shock_ret[t, u]
                x[u] += xr
                e = exc[u] * iv_decay[u] - iv_beta[u] * (xr - mean[u])
                if shocked:
                    e += shock_iv[t, u]
                exc[u] = e
                if not has_sv[u]:
                    v[u] = var_const[r, u]
                if write:
                    spot[row, t, u] = math.exp(x[u])
                    if has_sv[u]:
                        th = theta[r, u]
                        ivl = math.sqrt(max(th + (v[u] - th) * sv_b[u] + iv_jump_var[r, u], 0.0))
                        atm_iv[row, t, u] = max(iv_floor[u], ivl + iv_premium[r, u] + e)
                    else:
                        atm_iv[row, t, u] = max(iv_floor[u], iv_base[r, u] + e)
                    if write_var:
                        variance[row, t, u] = v[u]
            if write:
                regime[row, t] = r
