"""Option helpers of the strategy kernels: smile mids, fills, listed expiries, strike rules.

Scalar ``@njit`` functions only (numpy, numba and math). Units: spot, strikes, mids and fills in
$ per share; ``tau`` in years; steps are trading days; rates, yields and vols annualised decimals.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from mcsim.pricing import bs_delta_nb, bs_price_nb, round_strike_nb, smile_iv_nb, strike_for_delta_nb

from .layout import YES, HighIV, RollStrike, StrikeRule


_INV_SQRT2 = 0.7071067811865475244008443621048490


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _fused_leg(k, log_k, lf, sqt, a, sk_isqt, floor, df_r, sdf_q, is_call):
    """One leg of `pair_from_terms`: strike k ($), log_k = ln k, lf = ln F (F the forward)."""
    lfk = lf - log_k
    if a > 0.0:
        iv = max(floor, a + sk_isqt * lfk)
    else:
        iv = max(floor, a)
    sd = iv * sqt
    if iv <= 0.0 or sd == 0.0:
        fwd_pv = sdf_q - k * df_r
        if is_call:
            return max(fwd_pv, 0.0)
        return max(-fwd_pv, 0.0)
    d1 = lfk / sd + 0.5 * sd
    d2 = d1 - sd
    if is_call:
        return sdf_q * (0.5 * math.erfc(-d1 * _INV_SQRT2)) - k * df_r * (0.5 * math.erfc(-d2 * _INV_SQRT2))
    return k * df_r * (0.5 * math.erfc(d2 * _INV_SQRT2)) - sdf_q * (0.5 * math.erfc(d1 * _INV_SQRT2))


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def pair_from_terms(s, a, strikes, terms, skew, floor, is_call, two, american):
    """Mids ($/share) of strikes k1 and (when `two`) k2 from shared terms; strikes = (k1, ln k1,
    k2, ln k2), terms = (sqt, isqt, df_r, df_q, lf) with sqt = sqrt(tau), isqt = 1 / sqt,
    df_r = exp(-r tau), df_q = exp(-q tau), lf = ln S + (r - q) tau; tau > 0.

    The smile IV is `a + skew ln(F/K) / sqrt(tau)` floored (a > 0), `smile_iv_nb`'s
    `a (1 + skew ln(F/K) / (a sqrt(tau)))` without its division (equal up to rounding).
    `american`: each mid is at least its intrinsic value (an American option is never worth
    less than exercising it).
    """
    k1, log_k1, k2, log_k2 = strikes
    sqt, isqt, df_r, df_q, lf = terms
    sdf_q = s * df_q
    sk_isqt = skew * isqt
    m1 = _fused_leg(k1, log_k1, lf, sqt, a, sk_isqt, floor, df_r, sdf_q, is_call)
    m2 = 0.0
    if two:
        m2 = _fused_leg(k2, log_k2, lf, sqt, a, sk_isqt, floor, df_r, sdf_q, is_call)
    if american:
        if is_call:
            m1 = max(m1, s - k1)
        else:
            m1 = max(m1, k1 - s)
            if two:
                m2 = max(m2, k2 - s)
    return m1, m2


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def term_atm(a, base, premium, weight, floor):
    """ATM IV at another tenor from the 30-day ATM IV `a` of a stochastic-vol underlying.

    The market's a = sqrt(theta + jv + (v - theta) B30) + premium (+ shock excess), base =
    theta + jv (jump variance), weight = B(tau) / B30 with B(tau) = (1 - exp(-kappa tau)) /
    (kappa tau): the result is sqrt(base + ((a - premium)^2 - base) weight) + premium, floored,
    i.e. the Heston expected average variance over tau when a carries no shock excess (an
    excess is carried along the curve like variance above theta). weight = 1 returns a.
    """
    c = max(a - premium, 0.0)
    x = base + (c * c - base) * weight
    return max(floor, math.sqrt(max(x, 0.0)) + premium)


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


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def sell_fill(mid, p):
    """Selling fill per share: mid - slip, floored at 0 (slip = per-share + pct x mid); p the
    strategy's RULES_DT record."""
    slip = p.slippage + p.slippage_pct * mid
    return max(mid - slip, 0.0)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def buy_fill(mid, p):
    """Buying fill per share: mid + slip."""
    slip = p.slippage + p.slippage_pct * mid
    return mid + slip


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def close_debit(ms, ml, width, two, p):
    """Debit per share to buy a position back: the short leg's buying fill (a spread: minus the
    long leg's selling fill, capped at the width Ks - Kl, the most a vertical is quoted at)."""
    if two:
        return min(buy_fill(ms, p) - sell_fill(ml, p), width)
    return buy_fill(ms, p)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def roll_acceptable(net, p):
    """A roll netting `net` $ per share after costs is taken: with roll_credit_only, only for a
    credit (> 0); under roll_strike = "credit", also only for at least roll_min_credit."""
    if p.roll_credit_only != 0 and not (net > 0.0):
        return False
    return p.roll_strike != RollStrike.CREDIT or net >= p.roll_min_credit


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def nearest_expiry(target, after, every):
    """Listed expiry step (multiples k*every, k >= 1) > after nearest target; ties to the later."""
    lo = (target // every) * every
    hi = lo + every
    if lo > after and lo >= every:
        if target - lo < hi - target:
            return lo
    return hi


@njit(cache=True, nogil=True, _nrt=False)
def rule_strike(s, a, tau, rate, div, smile, step, rule, is_call):
    """Strike ($) by a delta (absolute) or otm_pct rule, rounded away from the money to the
    strike step ($); smile = (skew, IV floor), rule = (StrikeRule, delta or otm_pct).

    nan when the delta is unreachable.
    """
    skew, floor = smile
    mode, value = rule
    if mode == StrikeRule.DELTA:
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
    return round_strike_nb(level, step, YES)


@njit(cache=True, nogil=True, _nrt=False)
def min_strike_grid(k, level, step):
    """max(k, lowest grid strike >= level); k when level is nan (min_strike = "none")."""
    if level == level:
        return max(k, grid_at_or_above(level, step))
    return k


@njit(cache=True, nogil=True, _nrt=False)
def high_iv_active(t, u, atm, p):
    """Whether the high-IV rule is on at step t for underlying u (atm: the path's (n+1, n_u) rows)."""
    mode = p.hiv_mode
    if mode == HighIV.OFF:
        return False
    a = atm[t, u]
    if mode == HighIV.ATM:
        return a > p.hiv_threshold
    if t < 21:
        return False
    lo = max(0, t - 251)
    mn = atm[lo, u]
    mx = mn
    for j in range(lo + 1, t + 1):
        x = atm[j, u]
        if x < mn:
            mn = x
        if x > mx:
            mx = x
    rank = 0.0
    if mx != mn:
        rank = (a - mn) / (mx - mn)
    return rank > p.hiv_threshold


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def entry_rule(is_call, active, p):
    """(StrikeRule, value, dte steps) of the put (or short put) / call rule, high IV applied."""
    if is_call:
        mode = p.call_rule
        value = p.call_value
        dte = p.call_dte
        hd = p.hiv_call_delta
    else:
        mode = p.put_rule
        value = p.put_value
        dte = p.put_dte
        hd = p.hiv_put_delta
    if active:
        if hd == hd:
            mode = np.int64(StrikeRule.DELTA)
            value = hd
        if p.hiv_dte >= 1:
            dte = p.hiv_dte
    return mode, value, dte


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def floor_if(x, integer):
    """np.floor(x) under integer sizing, x otherwise."""
    if integer:
        return np.floor(x)
    return x
