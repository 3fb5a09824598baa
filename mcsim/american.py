"""American-style option prices: the approximations a kernel can afford, and the tree they are
checked against.

Listed equity and ETF options are American: a holder exercises a put early once its time value
(American price minus intrinsic) is gone, which for r > q happens well before expiry when the put
is deep enough in the money. Three prices, all per share, `t` in years, `rate` (r), `div` (q) and
`vol` annualised continuous decimals:

* ``crr_price_nb``: Cox-Ross-Rubinstein binomial tree with `n` steps: exact as n grows (the
  reference in tests and benchmarks; O(n^2), too slow for a kernel's inner loop).
* ``baw_price_nb``: Barone-Adesi-Whaley (1987) quadratic approximation: one Newton solve for the
  critical price, then closed form.
* ``bs2002_price_nb``: Bjerksund-Stensland (2002) two-step flat-boundary approximation (uses the
  bivariate normal at the fixed correlation sqrt(t1/T) of the method).

Puts are priced through the American put-call symmetry P(S, K, r, q) = C(K, S, q, r) (exact for
American options), so each approximation is written once, for calls. A call with q <= 1e-10 (or a
put with r <= 1e-10) is never exercised early: its price is the European Black-Scholes price. Every
price is at least intrinsic. `benchmarks/bench_american.py` measures the accuracy of the two
approximations against a 2,000-step tree and their cost per evaluation.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from mcsim.pricing import bs_price_nb
from mcsim.special import norm_cdf

__all__ = ["crr_price_nb", "baw_price_nb", "bs2002_price_nb", "bivariate_norm_cdf_nb", "american_price",
           "exercise_boundary"]

# Gauss-Legendre nodes and weights on [-1, 1], 20 points (Genz's choice for |rho| > 0.75)
_GL_X, _GL_W = np.polynomial.legendre.leggauss(20)
_T1_SHARE = 0.5 * (math.sqrt(5.0) - 1.0)  # Bjerksund-Stensland 2002: t1 = T (sqrt 5 - 1) / 2
_RHO_BS2002 = math.sqrt(_T1_SHARE)        # correlation of the bivariate normals: sqrt(t1 / T)
_INV_2PI = 1.0 / (2.0 * math.pi)
_NO_CARRY = 1e-10  # a call's dividend yield (a put's rate) below this: no early exercise


@njit(cache=True)
def bivariate_norm_cdf_nb(a, b, rho):
    """P(X <= a, Y <= b) for standard normals with correlation |rho| < 0.95.

    Phi(a) Phi(b) + 1/(2 pi) * integral over theta in [0, asin rho] of
    exp(-(a^2 + b^2 - 2 a b sin theta) / (2 cos^2 theta)), by 20-point Gauss-Legendre (about
    1e-14 accurate for the |rho| = 0.786 of Bjerksund-Stensland).
    """
    half = 0.5 * math.asin(rho)
    s = 0.0
    for i in range(20):
        th = half * (_GL_X[i] + 1.0)
        sn = math.sin(th)
        c2 = 1.0 - sn * sn
        s += _GL_W[i] * math.exp(-(a * a + b * b - 2.0 * a * b * sn) / (2.0 * c2))
    return norm_cdf(a) * norm_cdf(b) + _INV_2PI * half * s


@njit(cache=True)
def crr_price_nb(spot, strike, t, rate, div, vol, is_call, n):
    """American option on a Cox-Ross-Rubinstein tree of `n` steps (per share)."""
    intrinsic = max(spot - strike, 0.0) if is_call else max(strike - spot, 0.0)
    if t <= 0.0 or vol <= 0.0:
        return max(intrinsic, bs_price_nb(spot, strike, t, rate, div, vol, is_call))
    dt = t / n
    u = math.exp(vol * math.sqrt(dt))
    d = 1.0 / u
    disc = math.exp(-rate * dt)
    p = (math.exp((rate - div) * dt) - d) / (u - d)
    p = min(max(p, 0.0), 1.0)
    u2 = u * u
    pu, pd = disc * p, disc * (1.0 - p)
    values = np.empty(n + 1)
    s = spot * d ** n
    for j in range(n + 1):
        values[j] = max(s - strike, 0.0) if is_call else max(strike - s, 0.0)
        s *= u2
    for i in range(n - 1, -1, -1):
        s = spot * d ** i  # lowest node of level i; node j is s * u^(2j)
        for j in range(i + 1):
            ex = s - strike if is_call else strike - s
            values[j] = max(pu * values[j + 1] + pd * values[j], ex)
            s *= u2
    return values[0]


@njit(cache=True)
def _baw_call(s, k, t, r, q, vol):
    """Barone-Adesi-Whaley American call (r may be 0 or negative)."""
    euro = bs_price_nb(s, k, t, r, q, vol, True)
    if q <= _NO_CARRY:
        return euro  # no dividend: never exercised early
    b = r - q
    v2 = vol * vol
    rt = r * t
    # M / (1 - exp(-r t)) with its r -> 0 limit 1 / t
    m_over_k = (2.0 / v2) * (r / -math.expm1(-rt) if abs(rt) > 1e-12 else 1.0 / t)
    n_ = 2.0 * b / v2
    q2 = 0.5 * (-(n_ - 1.0) + math.sqrt((n_ - 1.0) ** 2 + 4.0 * m_over_k))
    sq = vol * math.sqrt(t)
    ebrt = math.exp((b - r) * t)
    # critical price S*: S* - K = C(S*) + (1 - e^{(b-r)t} N(d1(S*))) S* / q2, by Newton from
    # Barone-Adesi-Whaley's seed between K and the perpetual boundary
    s_inf = k / (1.0 - 1.0 / q2)
    h2 = -(b * t + 2.0 * sq) * k / (s_inf - k)
    si = k + (s_inf - k) * (1.0 - math.exp(h2))
    for _ in range(100):
        d1 = (math.log(si / k) + (b + 0.5 * v2) * t) / sq
        nd1 = norm_cdf(d1)
        c = bs_price_nb(si, k, t, r, q, vol, True)
        lhs = si - k
        rhs = c + (1.0 - ebrt * nd1) * si / q2
        pdf = math.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi)
        slope = ebrt * nd1 * (1.0 - 1.0 / q2) + (1.0 - ebrt * pdf / sq) / q2
        if abs(1.0 - slope) < 1e-14:
            break
        nxt = (k + rhs - slope * si) / (1.0 - slope)
        if nxt <= 0.0:
            nxt = 0.5 * si
        if abs(nxt - si) < 1e-10 * k:
            si = nxt
            break
        si = nxt
    if s >= si:
        return max(s - k, euro)
    d1 = (math.log(si / k) + (b + 0.5 * v2) * t) / sq
    a2 = (si / q2) * (1.0 - ebrt * norm_cdf(d1))
    return max(euro + a2 * (s / si) ** q2, s - k)


@njit(cache=True)
def _phi(s, t, gamma, h, i, r, b, v2):
    sq = math.sqrt(v2 * t)
    lam = (-r + gamma * b + 0.5 * gamma * (gamma - 1.0) * v2) * t
    d = -(math.log(s / h) + (b + (gamma - 0.5) * v2) * t) / sq
    kappa = 2.0 * b / v2 + (2.0 * gamma - 1.0)
    return math.exp(lam) * s ** gamma * (norm_cdf(d) - (i / s) ** kappa * norm_cdf(d - 2.0 * math.log(i / s) / sq))


@njit(cache=True)
def _psi(s, t, gamma, h, i2, i1, t1, r, b, v2):
    sq1 = math.sqrt(v2 * t1)
    sq = math.sqrt(v2 * t)
    g = b + (gamma - 0.5) * v2
    e1 = (math.log(s / i1) + g * t1) / sq1
    e2 = (math.log(i2 * i2 / (s * i1)) + g * t1) / sq1
    e3 = (math.log(s / i1) - g * t1) / sq1
    e4 = (math.log(i2 * i2 / (s * i1)) - g * t1) / sq1
    f1 = (math.log(s / h) + g * t) / sq
    f2 = (math.log(i2 * i2 / (s * h)) + g * t) / sq
    f3 = (math.log(i1 * i1 / (s * h)) + g * t) / sq
    f4 = (math.log(s * i1 * i1 / (h * i2 * i2)) + g * t) / sq
    rho = _RHO_BS2002
    kappa = 2.0 * b / v2 + (2.0 * gamma - 1.0)
    lam = -r + gamma * b + 0.5 * gamma * (gamma - 1.0) * v2
    return math.exp(lam * t) * s ** gamma * (
        bivariate_norm_cdf_nb(-e1, -f1, rho)
        - (i2 / s) ** kappa * bivariate_norm_cdf_nb(-e2, -f2, rho)
        - (i1 / s) ** kappa * bivariate_norm_cdf_nb(-e3, -f3, -rho)
        + (i1 / i2) ** kappa * bivariate_norm_cdf_nb(-e4, -f4, -rho)
    )


@njit(cache=True)
def _bs2002_call(s, k, t, r, q, vol):
    """Bjerksund-Stensland (2002) American call."""
    euro = bs_price_nb(s, k, t, r, q, vol, True)
    if q <= _NO_CARRY:
        return euro
    b = r - q
    v2 = vol * vol
    t1 = _T1_SHARE * t
    beta = (0.5 - b / v2) + math.sqrt((b / v2 - 0.5) ** 2 + 2.0 * r / v2)
    if beta - 1.0 < 1e-9:
        return max(euro, s - k)  # r = 0 and a vanishing dividend: the boundary is at infinity
    b_inf = beta / (beta - 1.0) * k
    b0 = max(k, r / (r - b) * k) if r > 0.0 else k
    hh1 = -(b * t1 + 2.0 * vol * math.sqrt(t1)) * k * k / ((b_inf - b0) * b0)
    hh2 = -(b * t + 2.0 * vol * math.sqrt(t)) * k * k / ((b_inf - b0) * b0)
    i1 = b0 + (b_inf - b0) * (1.0 - math.exp(hh1))
    i2 = b0 + (b_inf - b0) * (1.0 - math.exp(hh2))
    if s >= i2:
        return max(s - k, euro)
    a1 = (i1 - k) * i1 ** (-beta)
    a2 = (i2 - k) * i2 ** (-beta)
    c = (a2 * s ** beta - a2 * _phi(s, t1, beta, i2, i2, r, b, v2)
         + _phi(s, t1, 1.0, i2, i2, r, b, v2) - _phi(s, t1, 1.0, i1, i2, r, b, v2)
         - k * _phi(s, t1, 0.0, i2, i2, r, b, v2) + k * _phi(s, t1, 0.0, i1, i2, r, b, v2)
         + a1 * _phi(s, t1, beta, i1, i2, r, b, v2) - a1 * _psi(s, t, beta, i1, i2, i1, t1, r, b, v2)
         + _psi(s, t, 1.0, i1, i2, i1, t1, r, b, v2) - _psi(s, t, 1.0, k, i2, i1, t1, r, b, v2)
         - k * _psi(s, t, 0.0, i1, i2, i1, t1, r, b, v2) + k * _psi(s, t, 0.0, k, i2, i1, t1, r, b, v2))
    return max(c, euro, s - k)


@njit(cache=True)
def _american(spot, strike, t, rate, div, vol, is_call, method):
    if t <= 0.0 or vol <= 0.0:
        intrinsic = max(spot - strike, 0.0) if is_call else max(strike - spot, 0.0)
        return max(intrinsic, bs_price_nb(spot, strike, t, rate, div, vol, is_call))
    # American put-call symmetry: P(S, K, r, q) = C(K, S, q, r)
    s, k, r, q = (spot, strike, rate, div) if is_call else (strike, spot, div, rate)
    if method == 0:
        price = _baw_call(s, k, t, r, q, vol)
    else:
        price = _bs2002_call(s, k, t, r, q, vol)
    # the approximations can land a hair below intrinsic (a negative rate, a deep ITM call
    # near expiry): an American option is never worth less than exercising it
    return max(price, s - k)


@njit(cache=True)
def baw_price_nb(spot, strike, t, rate, div, vol, is_call):
    """Barone-Adesi-Whaley American price per share (never below intrinsic or European)."""
    return _american(spot, strike, t, rate, div, vol, is_call, 0)


@njit(cache=True)
def bs2002_price_nb(spot, strike, t, rate, div, vol, is_call):
    """Bjerksund-Stensland (2002) American price per share (never below intrinsic or European)."""
    return _american(spot, strike, t, rate, div, vol, is_call, 1)


def american_price(spot, strike, t, rate, div, vol, is_call, method: str = "bs2002", tree_steps: int = 2000):
    """American price per share of each element (numpy broadcasting); method bs2002, baw or crr."""
    fn = {"bs2002": bs2002_price_nb, "baw": baw_price_nb}.get(method)
    if fn is None and method != "crr":
        raise ValueError(f'method: {method!r} is not allowed (must be "bs2002", "baw" or "crr")')
    args = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (spot, strike, t, rate, div, vol)),
                               np.asarray(is_call, dtype=np.bool_))
    out = np.empty(args[0].shape)
    for idx in np.ndindex(out.shape):
        vals = [float(a[idx]) for a in args[:6]]
        call = bool(args[6][idx])
        out[idx] = crr_price_nb(*vals, call, tree_steps) if fn is None else fn(*vals, call)
    return out if out.ndim else float(out)


def exercise_boundary(strike, t, rate, div, vol, is_call, method: str = "crr", time_value: float = 0.0,
                      tree_steps: int = 2000) -> float:
    """The spot where the American time value (price - intrinsic) falls to `time_value` ($/share):
    below it a put is exercised (above it a call), by bisection on the chosen method."""
    lo, hi = (strike * 1e-3, strike) if not is_call else (strike, strike * 20.0)

    def tv(s):
        p = american_price(s, strike, t, rate, div, vol, is_call, method, tree_steps)
        return p - (max(s - strike, 0.0) if is_call else max(strike - s, 0.0))

    for _ in range(60):
        mid = 0.5 * (lo + hi)
        inside = tv(mid) <= time_value
        if is_call:
            lo, hi = (lo, mid) if inside else (mid, hi)
        else:
            lo, hi = (mid, hi) if inside else (lo, mid)
    return 0.5 * (lo + hi)
