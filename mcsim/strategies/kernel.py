"""The strategy kernel: one strategy over a range of paths, the step loop inside.

`run_paths` is the single compiled entry point for every kind (wheel, put_write,
bull_put_spread, buy_and_hold, cash). It releases the GIL, so the engine runs disjoint path
ranges on plain threads; each path is computed on its own, so results do not depend on how the
paths are split. Order of events at each close follows docs/semantics.md exactly.

Units: money in dollars, prices in $ per share, time in trading steps (options: years).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from mcsim.pricing import round_strike_nb

from .codes import (
    ACT_END, ACT_OPEN_SPREAD, ACT_SELL_CALL, ACT_SELL_PUT, ACT_WITHDRAW, C_LOG, C_OPEN,
    F_CAPITAL_USED, F_DAYS_SHARES, F_DD_DAYS, F_EQ0, F_FINAL, F_FIRST_SHORTFALL, F_MAX_DD,
    F_MIN_EQ, F_SHORTFALLS, F_WITHDRAWN, FP_COMM, FP_ER, FP_INITIAL, FP_PF, FP_RATE, FP_WD,
    FP_WD_PCT, FP_WIDTH, H_CYCLE, H_PRICE, H_SHARES, IP_CAP, IP_CLOSE_DTE_ON, IP_EARLY,
    IP_ENTRY_EVERY, IP_INTEGER, IP_KIND, IP_MAX_OPEN, IP_MONTH, IP_N_MONTHS, IP_N_STEPS,
    IP_ROLL_WHEN, IP_SPY, IP_WIDTH_MODE, FP_PROFIT_TAKE, FP_STOP_LOSS, KIND_BUY_HOLD,
    KIND_SPREAD, KIND_WHEEL, M_EQ_END, M_EQ_START, M_SHORTFALL, M_WITHDRAWN, N_C, N_H, N_PF,
    N_PI, N_ST, OPT_CALL, OPT_PUT, OPT_SPREAD, PI_EXP, PI_KIND, PI_U, ROLL_OFF, ST_CASH,
    U_DIV, U_EQDT, U_EQDT1, U_FLOOR, U_STEP, WIDTH_ABS,
)
from .options_nb import (
    buy_fill, entry_rule, floor_if, high_iv_active, leg_iv, leg_mid, min_strike_grid,
    nearest_expiry, rule_strike, sell_fill,
)
from .positions import (
    add_position, book_realised, book_sale, log_event, manage_position, mark, min_strike_level,
    reserved_cash, settle_expiry, try_early_assignment,
)


# ------------------------------------------------------------------------------------------
# entries


@njit(cache=True, nogil=True)
def _entry_terms(t, u, is_call, mkt, par):
    """(expiry step, tau years, rule strike $) of a new option on u at step t (high IV applied)."""
    S, A, g = mkt
    ip, fp, und_f, skew, su, every_u = par
    active = high_iv_active(t, u, A, ip, fp)
    mode, value, dte = entry_rule(is_call, active, ip, fp)
    e = nearest_expiry(t + dte, t, every_u[u])
    tau = (e - t) / ip[IP_SPY]
    k = rule_strike(S[t, u], A[t, u], tau, fp[FP_RATE], und_f[u, U_DIV], skew[u, g[t]],
                    und_f[u, U_FLOOR], und_f[u, U_STEP], mode, value, is_call)
    return e, tau, k


@njit(cache=True, nogil=True)
def _sell_put(t, m, u, equity, mkt, par, sta, out):
    """Cash-secured put on u (wheel, put_write), sized on `equity` ($), capped by free cash."""
    S, A, g = mkt
    ip, fp, und_f, skew, su, every_u = par
    pos_i, pos_f, hold, st, cnt = sta
    e, tau, k = _entry_terms(t, u, False, mkt, par)
    if not (k > 0.0):
        return
    s = S[t, u]
    r = fp[FP_RATE]
    q = und_f[u, U_DIV]
    sk = skew[u, g[t]]
    fl = und_f[u, U_FLOOR]
    mid = leg_mid(s, A[t, u], k, tau, r, q, sk, fl, False)
    fill = sell_fill(mid, fp)
    comm = fp[FP_COMM]
    if fill * 100.0 - comm <= 0.0:
        return
    integer = ip[IP_INTEGER] != 0
    c = floor_if(fp[FP_PF] * equity / (k * 100.0), integer)
    free = st[ST_CASH] - reserved_cash(sta)
    den = k * 100.0 - fill * 100.0 + comm
    if den > 0.0:
        c = min(c, floor_if(free / den, integer))
    if not (c > 0.0):
        return
    st[ST_CASH] += fill * 100.0 * c - comm * c
    add_position(sta, u, OPT_PUT, e, k, math.nan, c, fill, comm * c, t, mid, 0.0)
    if ip[IP_KIND] == KIND_WHEEL:
        hold[u, H_CYCLE] = fill
    book_sale(fill, c, OPT_PUT, m, out)
    iv = leg_iv(s, A[t, u], k, tau, r, q, sk, fl)
    log_event(t, ACT_SELL_PUT, u, OPT_PUT, k, e, c, fill, iv, mkt, par, sta, out)


@njit(cache=True, nogil=True)
def _sell_call(t, m, u, mkt, par, sta, out):
    """Covered call on all shares of u, strike >= the min_strike level's grid strike."""
    S, A, g = mkt
    ip, fp, und_f, skew, su, every_u = par
    pos_i, pos_f, hold, st, cnt = sta
    c = floor_if(hold[u, H_SHARES] / 100.0, ip[IP_INTEGER] != 0)
    if not (c > 0.0):
        return
    e, tau, k = _entry_terms(t, u, True, mkt, par)
    if not (k > 0.0):
        return
    k = min_strike_grid(k, min_strike_level(u, par, sta), und_f[u, U_STEP])
    s = S[t, u]
    r = fp[FP_RATE]
    q = und_f[u, U_DIV]
    sk = skew[u, g[t]]
    fl = und_f[u, U_FLOOR]
    mid = leg_mid(s, A[t, u], k, tau, r, q, sk, fl, True)
    fill = sell_fill(mid, fp)
    comm = fp[FP_COMM]
    if not (fill * 100.0 * c - comm * c > 0.0):
        return
    st[ST_CASH] += fill * 100.0 * c - comm * c
    add_position(sta, u, OPT_CALL, e, k, math.nan, c, fill, comm * c, t, mid, 0.0)
    hold[u, H_CYCLE] += fill
    book_sale(fill, c, OPT_CALL, m, out)
    iv = leg_iv(s, A[t, u], k, tau, r, q, sk, fl)
    log_event(t, ACT_SELL_CALL, u, OPT_CALL, k, e, c, fill, iv, mkt, par, sta, out)


@njit(cache=True, nogil=True)
def _open_spread(t, m, u, equity, mkt, par, sta, out):
    """One bull put spread on u: max loss (Ks - Kl - credit) x 100 per contract sized on equity."""
    S, A, g = mkt
    ip, fp, und_f, skew, su, every_u = par
    pos_i, pos_f, hold, st, cnt = sta
    e, tau, ks = _entry_terms(t, u, False, mkt, par)
    if not (ks > 0.0):
        return
    s = S[t, u]
    w = fp[FP_WIDTH] if ip[IP_WIDTH_MODE] == WIDTH_ABS else fp[FP_WIDTH] * s
    kl = round_strike_nb(ks - w, und_f[u, U_STEP], False)
    if not (kl > 0.0):
        return
    r = fp[FP_RATE]
    q = und_f[u, U_DIV]
    sk = skew[u, g[t]]
    fl = und_f[u, U_FLOOR]
    a = A[t, u]
    ms = leg_mid(s, a, ks, tau, r, q, sk, fl, False)
    ml = leg_mid(s, a, kl, tau, r, q, sk, fl, False)
    credit = sell_fill(ms, fp) - buy_fill(ml, fp)
    if credit <= 0.0 or credit >= ks - kl:
        return
    comm = fp[FP_COMM]
    integer = ip[IP_INTEGER] != 0
    risk = (ks - kl - credit) * 100.0
    c = floor_if(fp[FP_PF] * equity / risk, integer)
    free = st[ST_CASH] - reserved_cash(sta)
    c = min(c, floor_if(free / (risk + 2.0 * comm), integer))
    if not (c > 0.0):
        return
    st[ST_CASH] += credit * 100.0 * c - 2.0 * comm * c
    add_position(sta, u, OPT_SPREAD, e, ks, kl, c, credit, 2.0 * comm * c, t, ms, ml)
    book_sale(credit, c, OPT_SPREAD, m, out)
    iv = leg_iv(s, a, ks, tau, r, q, sk, fl)
    log_event(t, ACT_OPEN_SPREAD, u, OPT_SPREAD, ks, e, c, credit, iv, mkt, par, sta, out)


@njit(cache=True, nogil=True)
def _want(u, ip, sta):
    """What underlying u wants now: 0 nothing, 1 a sized entry (put or spread), 2 a covered call."""
    pos_i, pos_f, hold, st, cnt = sta
    kind = ip[IP_KIND]
    n_open = 0
    has_call = False
    for i in range(cnt[C_OPEN]):
        if pos_i[i, PI_U] == u:
            n_open += 1
            if pos_i[i, PI_KIND] == OPT_CALL:
                has_call = True
    if kind == KIND_SPREAD:
        return 1 if n_open < ip[IP_MAX_OPEN] else 0
    if n_open == 0 and hold[u, H_SHARES] == 0.0:
        return 1
    if kind == KIND_WHEEL and hold[u, H_SHARES] > 0.0 and not has_call:
        return 2
    return 0


@njit(cache=True, nogil=True)
def _entries(t, m, mkt, par, sta, out):
    """Step 5: new positions per underlying in strategy order, sized on the equity marked now.

    A trade on one underlying never changes what another one wants, so `_want` is asked twice.
    """
    ip, su = par[0], par[4]
    n_su = su.shape[0]
    sized = False
    for j in range(n_su):
        if _want(su[j], ip, sta) == 1:
            sized = True
    equity = mark(t, mkt, par, sta) if sized else math.nan
    for j in range(n_su):
        u = su[j]
        w = _want(u, ip, sta)
        if w == 1:
            if ip[IP_KIND] == KIND_SPREAD:
                _open_spread(t, m, u, equity, mkt, par, sta, out)
            else:
                _sell_put(t, m, u, equity, mkt, par, sta, out)
        elif w == 2:
            _sell_call(t, m, u, mkt, par, sta, out)


# ------------------------------------------------------------------------------------------
# carry, withdrawals, buy-and-hold


@njit(cache=True, nogil=True)
def _carry(t, m, mkt, par, sta, out):
    """Step 0: interest on cash and dividends on shares over (t-1, t] (buy-and-hold reinvests)."""
    S = mkt[0]
    ip, fp, und_f, skew, su, every_u = par
    hold, st = sta[2], sta[3]
    reinvest = ip[IP_KIND] == KIND_BUY_HOLD
    cash = st[ST_CASH]
    interest = cash * fp[FP_ER]
    div = 0.0
    for j in range(su.shape[0]):
        u = su[j]
        sh = hold[u, H_SHARES]
        if sh != 0.0:
            d = sh * S[t - 1, u] * und_f[u, U_EQDT1]
            div += d
            if reinvest:
                new_sh = sh * und_f[u, U_EQDT]
                hold[u, H_PRICE] = (hold[u, H_PRICE] * sh + d) / new_sh
                hold[u, H_SHARES] = new_sh
    if reinvest:
        st[ST_CASH] = cash + interest
    else:
        st[ST_CASH] = cash + interest + div
    book_realised(interest + div, m, out)


@njit(cache=True, nogil=True)
def _withdraw(t, m, mkt, par, sta, out):
    """Step 4 at a month end: pay the withdrawal from free cash (buy-and-hold: sell pro rata)."""
    S = mkt[0]
    ip, fp, und_f, skew, su, every_u = par
    hold, st = sta[2], sta[3]
    acc, mon = out[0], out[1]
    amount = fp[FP_WD]
    if not (amount > 0.0):
        amount = fp[FP_WD_PCT] * mark(t, mkt, par, sta)
    if not (amount > 0.0):
        return
    if ip[IP_KIND] == KIND_BUY_HOLD:
        value = 0.0
        for j in range(su.shape[0]):
            u = su[j]
            value += hold[u, H_SHARES] * S[t, u]
        pay = min(amount, max(value, 0.0))
        if pay > 0.0:
            f = pay / value
            gain = 0.0
            for j in range(su.shape[0]):
                u = su[j]
                sold = hold[u, H_SHARES] * f
                gain += sold * (S[t, u] - hold[u, H_PRICE])
                hold[u, H_SHARES] -= sold
            book_realised(gain, m, out)
    else:
        free = st[ST_CASH] - reserved_cash(sta)
        pay = min(amount, max(free, 0.0))
        st[ST_CASH] -= pay
    acc[F_WITHDRAWN] += pay
    mon[m, M_WITHDRAWN] += pay
    if pay < amount:
        acc[F_SHORTFALLS] += 1.0
        mon[m, M_SHORTFALL] = 1.0
        if acc[F_FIRST_SHORTFALL] < 0.0:
            acc[F_FIRST_SHORTFALL] = m
    log_event(t, ACT_WITHDRAW, -1, -1, math.nan, -1, 0.0, pay, math.nan, mkt, par, sta, out)


@njit(cache=True, nogil=True)
def _buy_and_hold(t, mkt, par, sta):
    """t = 0: equity split equally over the strategy's underlyings, fractional shares, no costs."""
    S = mkt[0]
    su = par[4]
    hold, st = sta[2], sta[3]
    equity = mark(t, mkt, par, sta)
    alloc = equity / su.shape[0]
    for j in range(su.shape[0]):
        u = su[j]
        hold[u, H_SHARES] += alloc / S[t, u]
        hold[u, H_PRICE] = S[t, u]
        st[ST_CASH] -= alloc


# ------------------------------------------------------------------------------------------
# the step loop


@njit(cache=True, nogil=True)
def run_path(mkt, par, sta, out):
    """One path, steps 0..n (docs/semantics.md "Order of events"); fills out = (acc, mon, log)."""
    S, A, g = mkt
    ip, fp, und_f, skew, su, every_u = par
    pos_i, pos_f, hold, st, cnt = sta
    acc, mon = out[0], out[1]
    acc[:] = 0.0
    acc[F_FIRST_SHORTFALL] = -1.0
    mon[:, :] = 0.0
    hold[:, :] = 0.0
    cnt[:] = 0
    st[ST_CASH] = fp[FP_INITIAL]
    kind = ip[IP_KIND]
    n = ip[IP_N_STEPS]
    month = ip[IP_MONTH]
    n_months = ip[IP_N_MONTHS]
    every = ip[IP_ENTRY_EVERY]
    options = kind <= KIND_SPREAD
    early = ip[IP_EARLY] != 0
    manage = (fp[FP_STOP_LOSS] > 0.0 or fp[FP_PROFIT_TAKE] > 0.0 or ip[IP_CLOSE_DTE_ON] != 0
              or ip[IP_ROLL_WHEN] != ROLL_OFF)
    withdrawals = fp[FP_WD] > 0.0 or fp[FP_WD_PCT] > 0.0
    peak = 0.0
    max_dd = 0.0
    run = 0
    max_run = 0
    min_eq = math.inf
    cap_sum = 0.0
    days_sh = 0
    eq = 0.0
    for t in range(n + 1):
        m = 0 if t == 0 else (t - 1) // month
        if t >= 1:
            _carry(t, m, mkt, par, sta, out)
        if options:
            i = 0
            while i < cnt[C_OPEN]:
                if pos_i[i, PI_EXP] == t:
                    settle_expiry(t, m, i, mkt, par, sta, out)
                else:
                    i += 1
            if early:
                i = 0
                while i < cnt[C_OPEN]:
                    if not try_early_assignment(t, m, i, mkt, par, sta, out):
                        i += 1
            if manage:
                i = 0
                while i < cnt[C_OPEN]:
                    if not manage_position(t, m, i, n, mkt, par, sta, out):
                        i += 1
        if withdrawals and t >= month and t % month == 0:
            _withdraw(t, m, mkt, par, sta, out)
        if t < n and t % every == 0:
            if options:
                _entries(t, m, mkt, par, sta, out)
            elif kind == KIND_BUY_HOLD and t == 0:
                _buy_and_hold(t, mkt, par, sta)
        # step 6: mark, then the path statistics of daily equity
        eq = mark(t, mkt, par, sta)
        if t == 0:
            peak = eq
            acc[F_EQ0] = eq
        if eq > peak:
            peak = eq
        dd = eq / peak - 1.0
        if dd < max_dd:
            max_dd = dd
        if eq < peak:
            run += 1
            if run > max_run:
                max_run = run
        else:
            run = 0
        if eq < min_eq:
            min_eq = eq
        if t >= 1:
            exposure = 0.0
            in_shares = False
            for j in range(su.shape[0]):
                u = su[j]
                sh = hold[u, H_SHARES]
                if sh > 0.0:
                    in_shares = True
                    exposure += sh * S[t, u]
            if in_shares:
                days_sh += 1
            if options:
                exposure += reserved_cash(sta)
            if eq > 0.0:
                cap_sum += exposure / eq
        if t % month == 0:
            k = t // month
            if k < n_months:
                mon[k, M_EQ_START] = eq
            if k >= 1:
                mon[k - 1, M_EQ_END] = eq
        if t == n:
            mon[n_months - 1, M_EQ_END] = eq
    log_event(n, ACT_END, -1, -1, math.nan, -1, 0.0, eq, math.nan, mkt, par, sta, out)
    acc[F_FINAL] = eq
    acc[F_MIN_EQ] = min_eq
    acc[F_MAX_DD] = max_dd
    acc[F_DD_DAYS] = max_run
    acc[F_DAYS_SHARES] = days_sh
    acc[F_CAPITAL_USED] = cap_sum / n


@njit(cache=True, nogil=True)
def run_paths(spot, atm_iv, regime, p0, p1, ip, fp, su, und_f, every_u, skew, out_path,
              out_month, log):
    """Run one strategy on market rows [p0, p1).

    Parameters
    ----------
    spot, atm_iv : float64 (n_paths, n_steps + 1, n_u)
        Spot ($) and ATM IV (annualised) per path, step, underlying.
    regime : int8 (n_paths, n_steps + 1)
    p0, p1 : int
        Row range to run (the engine gives disjoint ranges to its threads).
    ip, fp : int64 (N_IP,), float64 (N_FP,)
        The strategy's flat parameters (`params.to_kernel`).
    su : int64 (n_su,)
        The strategy's underlyings (market indices) in strategy order.
    und_f : float64 (n_u, N_UF); every_u : int64 (n_u,); skew : float64 (n_u, n_regimes)
    out_path : float64 (n_paths, N_F)
        Per-path results, row p for market row p.
    out_month : float64 (n_paths, n_months, N_M)
    log : float64 (n_rows, N_L)
        Event log of row p0 when ip[IP_LOG] == 1 (replay of one path); returns rows written.
    """
    n_u = spot.shape[2]
    cap = max(ip[IP_CAP], 1)
    pos_i = np.zeros((cap, N_PI), dtype=np.int64)
    pos_f = np.zeros((cap, N_PF), dtype=np.float64)
    hold = np.zeros((n_u, N_H), dtype=np.float64)
    st = np.zeros(N_ST, dtype=np.float64)
    cnt = np.zeros(N_C, dtype=np.int64)
    par = (ip, fp, und_f, skew, su, every_u)
    sta = (pos_i, pos_f, hold, st, cnt)
    for p in range(p0, p1):
        mkt = (spot[p], atm_iv[p], regime[p])
        out = (out_path[p], out_month[p], log)
        run_path(mkt, par, sta, out)
    return cnt[C_LOG]
