"""The strategy kernel: one strategy over a range of paths, the step loop inside.

`run_paths` is the single compiled entry point for every kind (wheel, put_write,
bull_put_spread, buy_and_hold, cash). It releases the GIL, so the engine runs disjoint path
ranges on plain threads; each path is computed on its own, so results do not depend on how the
paths are split. Order of events at each close follows docs/semantics.md exactly. Argument
groups MK, PR, ST, OUT as in `positions`.

Units: money in dollars, prices in $ per share, time in trading steps (options: years).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from mcsim.pricing import round_strike_nb

from .codes import (
    HIV_OFF, IP_HIV_MODE, NO, NONE, YES,
    ACT_END, ACT_OPEN_SPREAD, ACT_SELL_CALL, ACT_SELL_PUT, ACT_WITHDRAW, C_EPOCH, C_LOG, C_OPEN,
    F_CAPITAL_USED, F_DAYS_SHARES, F_DD_DAYS, F_EQ0, F_FINAL, F_FIRST_SHORTFALL, F_MAX_DD,
    F_MIN_EQ, F_SHORTFALLS, F_WITHDRAWN, FP_COMM, FP_EA_TV, FP_ER, FP_INITIAL, FP_PF,
    FP_PROFIT_TAKE, FP_RATE, FP_STOP_LOSS, FP_WD, FP_WD_PCT, FP_WIDTH, H_CYCLE, H_PRICE,
    H_CALL_FAILED, H_LOG_T, H_SHARES, IP_CAP, IP_CLOSE_DTE_ON, IP_EARLY, IP_ENTRY_EVERY, IP_INTEGER, IP_KIND, IP_LOG,
    IP_MAX_OPEN, IP_MONTH, IP_N_MONTHS, IP_N_STEPS, IP_N_SU, IP_ROLL_WHEN, IP_SPY, IP_SU0,
    IP_WIDTH_MODE, KIND_BUY_HOLD, KIND_SPREAD, KIND_WHEEL, M_EQ_END, M_EQ_START, M_SHORTFALL,
    M_WITHDRAWN, MIN_CONTRACTS, N_C, N_H, N_PF, N_PI, N_ST, OPT_CALL, OPT_PUT, OPT_SPREAD, PF_KS,
    PI_EXP, PI_KIND, PI_U, ROLL_OFF, ST_CASH, U_DIV, U_EQDT, U_EQDT1, U_EVERY, U_FLOOR, U_SKEW0,
    U_STEP, WIDTH_ABS,
)
from .options_nb import (
    buy_fill, entry_rule, floor_if, grid_at_or_above, high_iv_active, leg_iv, min_strike_grid,
    nearest_expiry, rule_strike, sell_fill,
)
from .positions import (
    add_position, assign, book_realised, trade_mids, book_sale, log_event, manage_position, mark, mark_fn,
    cached_mids, min_strike_level, pos_mids, reserved_cash, settle_expiry,
)


# ------------------------------------------------------------------------------------------
# entries


@njit(cache=True, nogil=True, _nrt=False)
def _entry_expiry(t, u, is_call, atm, ip, fp, uf):
    """(expiry step, tau years) of a new option on u at step t (high IV applied)."""
    active = ip[IP_HIV_MODE] != HIV_OFF and high_iv_active(t, u, atm, ip, fp)
    mode, value, dte = entry_rule(is_call, active, ip, fp)
    e = nearest_expiry(t + dte, t, int(uf[u, U_EVERY]))
    return e, (e - t) / ip[IP_SPY]


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _entry_terms(t, u, is_call, spot, atm, reg, ip, fp, uf):
    """(expiry step, tau years, rule strike $) of a new option on u at step t (high IV applied)."""
    active = ip[IP_HIV_MODE] != HIV_OFF and high_iv_active(t, u, atm, ip, fp)
    mode, value, dte = entry_rule(is_call, active, ip, fp)
    e = nearest_expiry(t + dte, t, int(uf[u, U_EVERY]))
    tau = (e - t) / ip[IP_SPY]
    k = rule_strike(spot[t, u], atm[t, u], tau, fp[FP_RATE], uf[u, U_DIV],
                    uf[u, U_SKEW0 + reg[t]], uf[u, U_FLOOR], uf[u, U_STEP], mode, value, is_call)
    return e, tau, k


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _sell_put(t, m, u, equity,
              spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, out_path, out_month, log):
    """Cash-secured put on u (wheel, put_write), sized on `equity` ($), capped by free cash."""
    e, tau, k = _entry_terms(t, u, NO, spot, atm, reg, ip, fp, uf)
    if not (k > 0.0):
        return
    s = spot[t, u]
    a = atm[t, u]
    r = fp[FP_RATE]
    q = uf[u, U_DIV]
    sk = uf[u, U_SKEW0 + reg[t]]
    fl = uf[u, U_FLOOR]
    log_k = math.log(k)
    mid, _ = trade_mids(t, u, e, k, log_k, math.nan, 0.0, NO, NO, spot, atm, reg, ip, fp, uf, hold)
    fill = sell_fill(mid, fp)
    comm = fp[FP_COMM]
    if fill * 100.0 - comm <= 0.0:
        return
    integer = ip[IP_INTEGER] != 0
    c = floor_if(fp[FP_PF] * equity / (k * 100.0), integer)
    free = st[ST_CASH] - reserved_cash(pos_i, pos_f, cnt)
    den = k * 100.0 - fill * 100.0 + comm
    if den > 0.0:
        c = min(c, floor_if(free / den, integer))
    if not (c >= MIN_CONTRACTS):
        return
    st[ST_CASH] += fill * 100.0 * c - comm * c
    add_position(pos_i, pos_f, cnt, u, np.int64(OPT_PUT), e, k, log_k, math.nan, 0.0, c, fill, comm * c,
                 t, mid, 0.0)
    if ip[IP_KIND] == KIND_WHEEL:
        hold[u, H_CYCLE] = fill
    book_sale(fill, c, np.int64(OPT_PUT), m, out_path, out_month)
    if ip[IP_LOG] != 0:
        iv = leg_iv(s, a, k, tau, r, q, sk, fl)
        log_event(t, np.int64(ACT_SELL_PUT), u, np.int64(OPT_PUT), k, e, c, fill, iv,
                  spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, log)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _sell_call(t, m, u,
               spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, out_path, out_month, log):
    """Covered call on all shares of u, strike >= the min_strike level's grid strike."""
    c = floor_if(hold[u, H_SHARES] / 100.0, ip[IP_INTEGER] != 0)
    if not (c >= MIN_CONTRACTS):
        return
    s = spot[t, u]
    a = atm[t, u]
    r = fp[FP_RATE]
    q = uf[u, U_DIV]
    sk = uf[u, U_SKEW0 + reg[t]]
    fl = uf[u, U_FLOOR]
    comm = fp[FP_COMM]
    level = min_strike_level(u, ip, hold)
    if hold[u, H_CALL_FAILED] != 0.0 and level == level and sk >= 0.0:
        # Retry after a failed sale: with skew >= 0 the call's mid falls as the strike rises, so
        # if a call at the floor strike cannot be sold, neither can the one at max(K_rule, floor).
        # Same decision as the full rule below, without solving for the delta strike.
        k_floor = grid_at_or_above(level, uf[u, U_STEP])
        if k_floor > 0.0:
            e, tau = _entry_expiry(t, u, YES, atm, ip, fp, uf)
            mid_floor, _ = trade_mids(t, u, e, k_floor, math.log(k_floor), math.nan, 0.0, YES, NO,
                                      spot, atm, reg, ip, fp, uf, hold)
            if not (sell_fill(mid_floor, fp) * 100.0 * c - comm * c > 0.0):
                return
    hold[u, H_CALL_FAILED] = 1.0
    e, tau, k = _entry_terms(t, u, YES, spot, atm, reg, ip, fp, uf)
    if not (k > 0.0):
        return
    k = min_strike_grid(k, level, uf[u, U_STEP])
    log_k = math.log(k)
    mid, _ = trade_mids(t, u, e, k, log_k, math.nan, 0.0, YES, NO, spot, atm, reg, ip, fp, uf, hold)
    fill = sell_fill(mid, fp)
    if not (fill * 100.0 * c - comm * c > 0.0):
        return
    hold[u, H_CALL_FAILED] = 0.0
    st[ST_CASH] += fill * 100.0 * c - comm * c
    add_position(pos_i, pos_f, cnt, u, np.int64(OPT_CALL), e, k, log_k, math.nan, 0.0, c, fill, comm * c,
                 t, mid, 0.0)
    hold[u, H_CYCLE] += fill
    book_sale(fill, c, np.int64(OPT_CALL), m, out_path, out_month)
    if ip[IP_LOG] != 0:
        iv = leg_iv(s, a, k, tau, r, q, sk, fl)
        log_event(t, np.int64(ACT_SELL_CALL), u, np.int64(OPT_CALL), k, e, c, fill, iv,
                  spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, log)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _open_spread(t, m, u, equity,
                 spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, out_path, out_month, log):
    """One bull put spread on u: max loss (Ks - Kl - credit) x 100 per contract sized on equity."""
    e, tau, ks = _entry_terms(t, u, NO, spot, atm, reg, ip, fp, uf)
    if not (ks > 0.0):
        return
    s = spot[t, u]
    w = fp[FP_WIDTH] if ip[IP_WIDTH_MODE] == WIDTH_ABS else fp[FP_WIDTH] * s
    kl = round_strike_nb(ks - w, uf[u, U_STEP], NO)
    if not (kl > 0.0):
        return
    a = atm[t, u]
    r = fp[FP_RATE]
    q = uf[u, U_DIV]
    sk = uf[u, U_SKEW0 + reg[t]]
    fl = uf[u, U_FLOOR]
    log_ks = math.log(ks)
    log_kl = math.log(kl)
    ms, ml = trade_mids(t, u, e, ks, log_ks, kl, log_kl, NO, YES, spot, atm, reg, ip, fp, uf, hold)
    credit = sell_fill(ms, fp) - buy_fill(ml, fp)
    if credit <= 0.0 or credit >= ks - kl:
        return
    comm = fp[FP_COMM]
    integer = ip[IP_INTEGER] != 0
    risk = (ks - kl - credit) * 100.0
    c = floor_if(fp[FP_PF] * equity / risk, integer)
    free = st[ST_CASH] - reserved_cash(pos_i, pos_f, cnt)
    c = min(c, floor_if(free / (risk + 2.0 * comm), integer))
    if not (c >= MIN_CONTRACTS):
        return
    st[ST_CASH] += credit * 100.0 * c - 2.0 * comm * c
    add_position(pos_i, pos_f, cnt, u, np.int64(OPT_SPREAD), e, ks, log_ks, kl, log_kl, c, credit,
                 2.0 * comm * c, t, ms, ml)
    book_sale(credit, c, np.int64(OPT_SPREAD), m, out_path, out_month)
    if ip[IP_LOG] != 0:
        iv = leg_iv(s, a, ks, tau, r, q, sk, fl)
        log_event(t, np.int64(ACT_OPEN_SPREAD), u, np.int64(OPT_SPREAD), ks, e, c, credit, iv,
                  spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, log)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _want(u, ip, pos_i, hold, cnt):
    """What underlying u wants now: 0 nothing, 1 a sized entry (put or spread), 2 a covered call."""
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


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _entries(t, m, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, out_path, out_month, log):
    """Step 5: new positions per underlying in strategy order, sized on the equity marked now.

    A trade on one underlying never changes what another one wants, so `_want` is asked twice.
    """
    n_su = ip[IP_N_SU]
    sized = False
    for j in range(n_su):
        if _want(ip[IP_SU0 + j], ip, pos_i, hold, cnt) == 1:
            sized = True
    equity = math.nan
    if sized:
        equity = mark(t, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt)
    for j in range(n_su):
        u = ip[IP_SU0 + j]
        w = _want(u, ip, pos_i, hold, cnt)
        if w == 1:
            if ip[IP_KIND] == KIND_SPREAD:
                _open_spread(t, m, u, equity, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold,
                             st, cnt, out_path, out_month, log)
            else:
                _sell_put(t, m, u, equity, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold,
                          st, cnt, out_path, out_month, log)
        elif w == 2:
            _sell_call(t, m, u, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt,
                       out_path, out_month, log)


# ------------------------------------------------------------------------------------------
# carry, withdrawals, buy-and-hold


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _carry(t, m, any_shares, spot, ip, fp, uf, hold, st, out_path, out_month):
    """Step 0: interest on cash and dividends on shares over (t-1, t] (buy-and-hold reinvests);
    `any_shares` False: no shares are held (dividends skipped)."""
    reinvest = ip[IP_KIND] == KIND_BUY_HOLD
    cash = st[ST_CASH]
    interest = cash * fp[FP_ER]
    div = 0.0
    for j in range(ip[IP_N_SU] if any_shares else 0):
        u = ip[IP_SU0 + j]
        sh = hold[u, H_SHARES]
        if sh != 0.0:
            d = sh * spot[t - 1, u] * uf[u, U_EQDT1]
            div += d
            if reinvest:
                new_sh = sh * uf[u, U_EQDT]
                hold[u, H_PRICE] = (hold[u, H_PRICE] * sh + d) / new_sh
                hold[u, H_SHARES] = new_sh
    if reinvest:
        st[ST_CASH] = cash + interest
    else:
        st[ST_CASH] = cash + interest + div
    book_realised(interest + div, m, out_path, out_month)


@njit(cache=True, nogil=True, _nrt=False)
def _withdraw(t, m, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, out_path, out_month, log):
    """Step 4 at a month end: pay the withdrawal from free cash (buy-and-hold: sell pro rata)."""
    amount = fp[FP_WD]
    if not (amount > 0.0):
        amount = fp[FP_WD_PCT] * mark_fn(t, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt)
    if not (amount > 0.0):
        return
    if ip[IP_KIND] == KIND_BUY_HOLD:
        value = 0.0
        for j in range(ip[IP_N_SU]):
            u = ip[IP_SU0 + j]
            value += hold[u, H_SHARES] * spot[t, u]
        pay = min(amount, max(value, 0.0))
        if pay > 0.0:
            f = pay / value
            gain = 0.0
            for j in range(ip[IP_N_SU]):
                u = ip[IP_SU0 + j]
                sold = hold[u, H_SHARES] * f
                gain += sold * (spot[t, u] - hold[u, H_PRICE])
                hold[u, H_SHARES] -= sold
            book_realised(gain, m, out_path, out_month)
    else:
        free = st[ST_CASH] - reserved_cash(pos_i, pos_f, cnt)
        pay = min(amount, max(free, 0.0))
        st[ST_CASH] -= pay
    out_path[F_WITHDRAWN] += pay
    out_month[m, M_WITHDRAWN] += pay
    if pay < amount:
        out_path[F_SHORTFALLS] += 1.0
        out_month[m, M_SHORTFALL] = 1.0
        if out_path[F_FIRST_SHORTFALL] < 0.0:
            out_path[F_FIRST_SHORTFALL] = m
    if ip[IP_LOG] != 0:
        log_event(t, np.int64(ACT_WITHDRAW), NONE, NONE, math.nan, NONE, 0.0, pay, math.nan,
                  spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, log)


@njit(cache=True, nogil=True, _nrt=False)
def _buy_and_hold(t, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt):
    """t = 0: equity split equally over the strategy's underlyings, fractional shares, no costs."""
    equity = mark_fn(t, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt)
    alloc = equity / ip[IP_N_SU]
    for j in range(ip[IP_N_SU]):
        u = ip[IP_SU0 + j]
        hold[u, H_SHARES] += alloc / spot[t, u]
        hold[u, H_PRICE] = spot[t, u]
        st[ST_CASH] -= alloc


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _early_assignments(t, m, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt,
                       out_path, out_month, log):
    """Step 2: ITM short legs with mid - intrinsic < threshold are assigned, in position order."""
    tv = fp[FP_EA_TV]
    i = np.int64(0)
    while i < cnt[C_OPEN]:
        u = pos_i[i, PI_U]
        s = spot[t, u]
        k = pos_f[i, PF_KS]
        if pos_i[i, PI_KIND] == OPT_CALL:
            intrinsic = s - k
        else:
            intrinsic = k - s
        if intrinsic > 0.0:
            ms, ml = cached_mids(t, i, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold)
            if ms - intrinsic < tv:
                assign(t, m, i, YES, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt,
                       out_path, out_month, log)
                continue
        i += 1


# ------------------------------------------------------------------------------------------
# the step loop


@njit(cache=True, nogil=True, _nrt=False)
def run_path(spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, out_path, out_month, log):
    """One path, steps 0..n (docs/semantics.md "Order of events"): spot, atm (n+1, n_u) and reg
    (n+1,) are the path's rows of the market; fills its rows out_path (N_F,) and out_month
    (n_months, N_M)."""
    out_path[:] = 0.0
    out_path[F_FIRST_SHORTFALL] = -1.0
    out_month[:, :] = 0.0
    hold[:, :] = 0.0
    hold[:, H_LOG_T] = -1.0
    cnt[:] = 0
    st[ST_CASH] = fp[FP_INITIAL]
    kind = ip[IP_KIND]
    n = ip[IP_N_STEPS]
    month = ip[IP_MONTH]
    n_months = ip[IP_N_MONTHS]
    every = ip[IP_ENTRY_EVERY]
    n_su = ip[IP_N_SU]
    options = kind <= KIND_SPREAD
    early = ip[IP_EARLY] != 0
    manage = (fp[FP_STOP_LOSS] > 0.0 or fp[FP_PROFIT_TAKE] > 0.0 or ip[IP_CLOSE_DTE_ON] != 0
              or ip[IP_ROLL_WHEN] != ROLL_OFF)
    withdrawals = fp[FP_WD] > 0.0 or fp[FP_WD_PCT] > 0.0
    peak = 0.0
    trough = 0.0
    reserved = 0.0
    epoch = np.int64(-1)
    idle_epoch = np.int64(-1)
    shares_epoch = np.int64(-1)
    any_shares = True
    max_dd = 0.0
    run = 0
    max_run = 0
    min_eq = math.inf
    cap_sum = 0.0
    days_sh = 0
    eq = 0.0
    # month m holds steps (m M, (m+1) M] (month 0 also step 0); counters avoid integer division
    m = 0
    month_end = month
    next_entry = 0
    for t in range(n + 1):
        if t > month_end:
            m += 1
            month_end += month
        if t >= 1:
            if cnt[C_EPOCH] != shares_epoch:
                # an option strategy's shares change only when a position ends (epoch moves)
                any_shares = not options
                for j in range(n_su):
                    if hold[ip[IP_SU0 + j], H_SHARES] != 0.0:
                        any_shares = True
                if options:
                    shares_epoch = cnt[C_EPOCH]
            _carry(t, m, any_shares, spot, ip, fp, uf, hold, st, out_path, out_month)
        if options and cnt[C_OPEN] > 0:
            # expiries settle; every position still open is priced once at this close (marks,
            # rules, fills); one pass, as a settlement never changes another position's price
            i = np.int64(0)
            while i < cnt[C_OPEN]:
                if pos_i[i, PI_EXP] == t:
                    settle_expiry(t, m, i, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st,
                                  cnt, out_path, out_month, log)
                else:
                    pos_mids(t, i, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold)
                    i += 1
            if early:
                _early_assignments(t, m, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st,
                                   cnt, out_path, out_month, log)
            if manage:
                i = np.int64(0)
                while i < cnt[C_OPEN]:
                    if not manage_position(t, m, i, n, spot, atm, reg, ip, fp, uf, pos_i, pos_f,
                                           hold, st, cnt, out_path, out_month, log):
                        i += 1
        if withdrawals and t == month_end:
            _withdraw(t, m, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt,
                      out_path, out_month, log)
        if t == next_entry and t < n:
            next_entry += every
            if options:
                # what `_want` answers depends only on the open positions and the shares held,
                # which change only with the epoch: an idle answer holds until the epoch moves
                if cnt[C_EPOCH] != idle_epoch:
                    wanted = False
                    for j in range(n_su):
                        if _want(ip[IP_SU0 + j], ip, pos_i, hold, cnt) != 0:
                            wanted = True
                    if not wanted:
                        idle_epoch = cnt[C_EPOCH]
                    else:
                        _entries(t, m, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt,
                                 out_path, out_month, log)
            elif kind == KIND_BUY_HOLD and t == 0:
                _buy_and_hold(t, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt)
        # step 6: mark, then the path statistics of daily equity
        eq = mark(t, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt)
        if t == 0:
            peak = eq
            trough = eq
            out_path[F_EQ0] = eq
        if eq > peak:
            # a new peak closes the drawdown episode: its depth is trough / old peak - 1 (peak >
            # 0, so this is the min of eq / peak - 1 over the episode, one division per episode)
            if trough < peak:
                dd = trough / peak - 1.0
                if dd < max_dd:
                    max_dd = dd
            peak = eq
            trough = eq
        if eq < peak:
            if eq < trough:
                trough = eq
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
            for j in range(n_su):
                u = ip[IP_SU0 + j]
                sh = hold[u, H_SHARES]
                if sh > 0.0:
                    in_shares = True
                    exposure += sh * spot[t, u]
            if in_shares:
                days_sh += 1
            if options:
                if cnt[C_EPOCH] != epoch:
                    # the same sum, recomputed only when the open positions changed
                    reserved = reserved_cash(pos_i, pos_f, cnt)
                    epoch = cnt[C_EPOCH]
                exposure += reserved
            if eq > 0.0:
                cap_sum += exposure / eq
        if t == 0:
            out_month[0, M_EQ_START] = eq
        elif t == month_end:
            out_month[m, M_EQ_END] = eq
            if m + 1 < n_months:
                out_month[m + 1, M_EQ_START] = eq
        if t == n:
            out_month[n_months - 1, M_EQ_END] = eq
    if ip[IP_LOG] != 0:
        log_event(n, np.int64(ACT_END), NONE, NONE, math.nan, NONE, 0.0, eq, math.nan,
                  spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, log)
    if trough < peak:
        dd = trough / peak - 1.0
        if dd < max_dd:
            max_dd = dd
    out_path[F_FINAL] = eq
    out_path[F_MIN_EQ] = min_eq
    out_path[F_MAX_DD] = max_dd
    out_path[F_DD_DAYS] = max_run
    out_path[F_DAYS_SHARES] = days_sh
    out_path[F_CAPITAL_USED] = cap_sum / n


@njit(cache=True, nogil=True)
def run_paths(spot, atm_iv, regime, p0, p1, ip, fp, uf, out_path, out_month, log):
    """Run one strategy on market rows [p0, p1).

    Parameters
    ----------
    spot, atm_iv : float64 (n_paths, n_steps + 1, n_u)
        Spot ($) and ATM IV (annualised) per path, step, underlying.
    regime : int8 (n_paths, n_steps + 1)
    p0, p1 : int
        Row range to run (the engine gives disjoint ranges to its threads).
    ip, fp : int64 (N_IP + n_su,), float64 (N_FP,)
        The strategy's flat parameters (`params.to_kernel`).
    uf : float64 (n_u, N_UF + n_regimes)
        Per-underlying table (`params.underlying_tables`).
    out_path : float64 (n_paths, N_F)
        Per-path results, row p for market row p.
    out_month : float64 (n_paths, n_months, N_M)
    log : float64 (n_rows, N_L)
        Event log of row p0 when ip[IP_LOG] == 1 (replay of one path).

    Returns the number of log rows written.
    """
    n_u = spot.shape[2]
    cap = max(ip[IP_CAP], 1)
    pos_i = np.zeros((cap, N_PI), dtype=np.int64)
    pos_f = np.zeros((cap, N_PF), dtype=np.float64)
    hold = np.zeros((n_u, N_H), dtype=np.float64)
    st = np.zeros(N_ST, dtype=np.float64)
    cnt = np.zeros(N_C, dtype=np.int64)
    for p in range(p0, p1):
        # the path's rows as views: the step loop indexes [t, u], not [p, t, u]
        run_path(spot[p], atm_iv[p], regime[p], ip, fp, uf, pos_i, pos_f, hold, st, cnt,
                 out_path[p], out_month[p], log)
    return cnt[C_LOG]
