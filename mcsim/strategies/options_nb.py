"""Option helpers of the strategy kernels: smile mids, fills, listed expiries, strike rules.

Scalar ``@njit`` functions only (numpy, numba and math). Units: spot, strikes, mids and fills in
$ per share; ``tau`` in years; steps are trading days; rates, yields and vols annualised decimals.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from mcsim.pricing import bs_delta_nb, bs_price_nb, round_strike_nb, smile_iv_nb, strike_for_delta_nb

from .codes import (
    FP_CALL_VAL, FP_HIV_CALL_DELTA, FP_HIV_PUT_DELTA, FP_HIV_THR, FP_PUT_VAL, FP_SLIP,
    FP_SLIP_PCT, HIV_ATM, HIV_OFF, IP_CALL_DTE, IP_CALL_MODE, IP_HIV_DTE, IP_HIV_MODE,
    IP_PUT_DTE, IP_PUT_MODE, RULE_DELTA,
)


@njit(cache=True, nogil=True, _nrt=False)
def leg_iv(s, a, k, tau, rate, div, skew, floor):
    """Smile IV of strike k (per-share $) at time to expiry tau (years); a = ATM IV."""
    return smile_iv_nb(a, s, k, tau, rate, div, skew, floor)


@njit(cache=True, nogil=True, _nrt=False)
def leg_mid(s, a, k, tau, rate, div, skew, floor, is_call):
    """Black-Scholes mid ($ per share) of one option at its smile IV; intrinsic at tau = 0."""
    iv = smile_iv_nb(a, s, k, tau, rate, div, skew, floor)
    return bs_price_nb(s, k, tau, rate, div, iv, is_call)


@njit(cache=True, nogil=True, _nrt=False)
def leg_abs_delta(s, a, k, tau, rate, div, skew, floor, is_call):
    """|Black-Scholes delta| of one option at its smile IV."""
    iv = smile_iv_nb(a, s, k, tau, rate, div, skew, floor)
    return abs(bs_delta_nb(s, k, tau, rate, div, iv, is_call))


@njit(cache=True, nogil=True, _nrt=False)
def sell_fill(mid, fp):
    """Selling fill per share: mid - slip, floored at 0 (slip = per-share + pct x mid)."""
    slip = fp[FP_SLIP] + fp[FP_SLIP_PCT] * mid
    return max(mid - slip, 0.0)


@njit(cache=True, nogil=True, _nrt=False)
def buy_fill(mid, fp):
    """Buying fill per share: mid + slip."""
    slip = fp[FP_SLIP] + fp[FP_SLIP_PCT] * mid
    return mid + slip


@njit(cache=True, nogil=True, _nrt=False)
def nearest_expiry(target, after, every):
    """Listed expiry step (multiples k*every, k >= 1) > after nearest target; ties to the later."""
    lo = (target // every) * every
    hi = lo + every
    if lo > after and lo >= every:
        if target - lo < hi - target:
            return lo
    return hi


@njit(cache=True, nogil=True, _nrt=False)
def rule_strike(s, a, tau, rate, div, skew, floor, step, mode, value, is_call):
    """Strike ($) by a delta (absolute) or otm_pct rule, rounded away from the money.

    nan when the delta is unreachable.
    """
    if mode == RULE_DELTA:
        k = strike_for_delta_nb(s, value, tau, rate, div, a, is_call, skew, floor)
    elif is_call:
        k = s * (1.0 + value)
    else:
        k = s * (1.0 - value)
    if k != k:
        return math.nan
    return round_strike_nb(k, step, is_call)


@njit(cache=True, nogil=True, _nrt=False)
def grid_at_or_above(level, step):
    """Lowest listed strike >= level (the call rounding of round_strike_nb)."""
    return round_strike_nb(level, step, True)


@njit(cache=True, nogil=True, _nrt=False)
def min_strike_grid(k, level, step):
    """max(k, lowest grid strike >= level); k when level is nan (min_strike = "none")."""
    if level == level:
        return max(k, grid_at_or_above(level, step))
    return k


@njit(cache=True, nogil=True, _nrt=False)
def high_iv_active(t, u, atm, p, ip, fp):
    """Whether the high-IV rule is on at step t for underlying u of path row p (atm 3-D)."""
    mode = ip[IP_HIV_MODE]
    if mode == HIV_OFF:
        return False
    a = atm[p, t, u]
    if mode == HIV_ATM:
        return a > fp[FP_HIV_THR]
    if t < 21:
        return False
    lo = max(0, t - 251)
    mn = atm[p, lo, u]
    mx = mn
    for j in range(lo + 1, t + 1):
        x = atm[p, j, u]
        if x < mn:
            mn = x
        if x > mx:
            mx = x
    rank = 0.0
    if mx != mn:
        rank = (a - mn) / (mx - mn)
    return rank > fp[FP_HIV_THR]


@njit(cache=True, nogil=True, _nrt=False)
def entry_rule(is_call, active, ip, fp):
    """(mode, value, dte steps) of the put (or short put) / covered-call rule, high IV applied."""
    if is_call:
        mode = ip[IP_CALL_MODE]
        value = fp[FP_CALL_VAL]
        dte = ip[IP_CALL_DTE]
        hd = fp[FP_HIV_CALL_DELTA]
    else:
        mode = ip[IP_PUT_MODE]
        value = fp[FP_PUT_VAL]
        dte = ip[IP_PUT_DTE]
        hd = fp[FP_HIV_PUT_DELTA]
    if active:
        if hd == hd:
            mode = RULE_DELTA
            value = hd
        if ip[IP_HIV_DTE] >= 1:
            dte = ip[IP_HIV_DTE]
    return mode, value, dte


@njit(cache=True, nogil=True, _nrt=False)
def floor_if(x, integer):
    """np.floor(x) under integer sizing, x otherwise."""
    if integer:
        return np.floor(x)
    return x
