"""Position bookkeeping of the strategy kernels: mids, marks, closes, expiries, rolls, the log.

Every function takes plain arrays in one fixed order (no tuples: unpacking a tuple of arrays
costs reference counting in every call), written ``MK, PR, ST, OUT`` in the docstrings:

* MK = ``spot, atm, reg``: one path's rows of the market: spot (n+1, n_u) $, ATM IV
  (n+1, n_u), regime (n+1,) int8;
* PR = ``ip, fp, uf``: flat parameters and per-underlying floats (see ``codes``);
* ST = ``pos_i, pos_f, hold, st, cnt``: open positions in opening order, holdings per
  underlying, cash ``st[ST_CASH]`` ($), counters ``cnt``;
* OUT = ``out_path, out_month, log``: the path's result row (N_F,), its monthly rows
  (n_months, N_M), the replay log.

Money in dollars, prices and strikes in $ per share, one contract = 100 shares; see
docs/semantics.md for every formula.
"""

from __future__ import annotations

import math

import numpy as np

from numba import njit

from mcsim.pricing import round_strike_nb

from .codes import (
    HIV_OFF, IP_HIV_MODE, NO,
    ACT_ASSIGNED, ACT_BUY_TO_CLOSE, ACT_CALLED_AWAY, ACT_CLOSE_SPREAD, ACT_EARLY_ASSIGNED,
    ACT_EXPIRE_WORTHLESS, ACT_ROLL, C_EPOCH, C_LOG, C_OPEN, F_ASSIGNMENTS, F_CALLED_AWAY, F_CALLS_SOLD,
    F_CLOSES, F_EARLY, F_EXPIRED, F_LOST, F_OPTIONS_SOLD, F_PREMIUM, F_PROFIT_TAKES, F_PUTS_SOLD,
    F_REALISED, F_ROLLS, F_SPREADS_SOLD, F_STOP_LOSSES, F_SUM_LOSS, F_SUM_WIN, F_WON, FP_COMM,
    FP_FEE, H_LOG_S, H_LOG_T, IP_TAB, IP_TAB_LEN,
    FP_PROFIT_TAKE, FP_RATE, FP_ROLL_DELTA, FP_STOP_LOSS, H_CYCLE, H_PRICE, H_SHARES,
    IP_CLOSE_DTE, IP_CLOSE_DTE_ON, IP_CLOSE_IF_UNABLE, IP_KIND, IP_LOG, IP_MAX_ROLLS,
    IP_MIN_STRIKE, IP_N_SU, IP_ROLL_CREDIT_ONLY, IP_ROLL_DTE, IP_ROLL_OUT, IP_ROLL_WHEN, IP_SPY,
    IP_SU0, KIND_WHEEL, L_ACTION, L_C, L_CASH, L_EQUITY, L_EXPIRY, L_IV, L_KIND, L_PRICE,
    L_SPOT, L_STEP, L_STRIKE, L_U, M_PREMIUM, M_REALISED, MIN_COST_BASIS, MIN_NONE, N_PF, N_PI,
    OPT_CALL, OPT_PUT, OPT_SPREAD, PF_C, PF_CREDIT, PF_KL, PF_KS, PF_MID_L, PF_MID_S,
    PF_LOG_KL, PF_LOG_KS, PF_OPEN_COST, PI_EXP, PI_KIND, PI_MID_T, PI_ROLLS, PI_U, ROLL_DELTA, ROLL_OFF, SHARE_DUST,
    ST_CASH, U_DIV, U_EVERY, U_FLOOR, U_SKEW0, U_STEP, WHY_CLOSE, WHY_PROFIT, WHY_STOP,
)
from .options_nb import (
    buy_fill, entry_rule, high_iv_active, leg_abs_delta, leg_iv, min_strike_grid,
    nearest_expiry, pair_from_terms, rule_strike, sell_fill,
)


# ------------------------------------------------------------------------------------------
# prices and marks


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def mids_at(t, u, k, ks, log_ks, kl, log_kl, is_call, two, spot, atm, reg, ip, fp, uf, hold):
    """Mids ($/share) of strike ks and (when `two`) kl on u at step t, k = expiry - t steps.

    Both legs share the terms: exponentials and roots come from the strategy's tau tables
    (computed beyond them), ln S is cached per step in `hold`; intrinsic at k <= 0.
    """
    s = spot[t, u]
    if k <= 0:
        if is_call:
            return max(s - ks, 0.0), 0.0
        return max(ks - s, 0.0), max(kl - s, 0.0) if two else 0.0
    if hold[u, H_LOG_T] != t:
        hold[u, H_LOG_S] = math.log(s)
        hold[u, H_LOG_T] = t
    if k < ip[IP_TAB_LEN]:
        o = ip[IP_TAB] + 5 * k      # the five tables interleave by k (params._with_tables)
        sqt = uf[u, o]
        df_r = uf[u, o + 1]
        df_q = uf[u, o + 2]
        drift = uf[u, o + 3]
        isqt = uf[u, o + 4]
    else:
        tau = k / ip[IP_SPY]
        sqt = math.sqrt(tau)
        isqt = 1.0 / sqt
        df_r = math.exp(-fp[FP_RATE] * tau)
        df_q = math.exp(-uf[u, U_DIV] * tau)
        drift = (fp[FP_RATE] - uf[u, U_DIV]) * tau
    return pair_from_terms(s, atm[t, u], ks, log_ks, kl, log_kl, sqt, isqt, df_r, df_q,
                           hold[u, H_LOG_S] + drift, uf[u, U_SKEW0 + reg[t]], uf[u, U_FLOOR],
                           is_call, two)


@njit(cache=True, nogil=True, _nrt=False)
def trade_mids(t, u, e, ks, log_ks, kl, log_kl, is_call, two, spot, atm, reg, ip, fp, uf, hold):
    """`mids_at` as a call, for new trades and rolls (expiry step e): a trade prices exactly as
    the daily marks do, so the mids cached at a trade are its fills' mids."""
    return mids_at(t, u, e - t, ks, log_ks, kl, log_kl, is_call, two, spot, atm, reg, ip, fp,
                   uf, hold)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def pos_mids(t, i, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold):
    """(short mid, long mid) of position i at step t, $ per share, cached per step (`mids_at`)."""
    if pos_i[i, PI_MID_T] == t:
        return pos_f[i, PF_MID_S], pos_f[i, PF_MID_L]
    kind = pos_i[i, PI_KIND]
    ms, ml = mids_at(t, pos_i[i, PI_U], pos_i[i, PI_EXP] - t, pos_f[i, PF_KS], pos_f[i, PF_LOG_KS],
                     pos_f[i, PF_KL], pos_f[i, PF_LOG_KL], kind == OPT_CALL, kind == OPT_SPREAD,
                     spot, atm, reg, ip, fp, uf, hold)
    pos_f[i, PF_MID_S] = ms
    pos_f[i, PF_MID_L] = ml
    pos_i[i, PI_MID_T] = t
    return ms, ml


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def mark(t, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt):
    """Equity ($) at step t: cash + shares x S - short mids x 100 c + long mids x 100 c."""
    eq = st[ST_CASH]
    for j in range(ip[IP_N_SU]):
        u = ip[IP_SU0 + j]
        sh = hold[u, H_SHARES]
        if sh != 0.0:
            eq += sh * spot[t, u]
    for i in range(cnt[C_OPEN]):
        ms, ml = cached_mids(t, i, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold)
        c100 = 100.0 * pos_f[i, PF_C]
        eq -= ms * c100
        if pos_i[i, PI_KIND] == OPT_SPREAD:
            eq += ml * c100
    return eq


@njit(cache=True, nogil=True, _nrt=False)
def pos_mids_fn(t, i, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold):
    """`pos_mids` as a call (rare events), so its body is compiled once, not at every site."""
    return pos_mids(t, i, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def cached_mids(t, i, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold):
    """Position i's mids at step t from its cache (the step loop prices every open position
    once per step); priced by a call when the cache is stale."""
    if pos_i[i, PI_MID_T] == t:
        return pos_f[i, PF_MID_S], pos_f[i, PF_MID_L]
    return pos_mids_fn(t, i, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold)


@njit(cache=True, nogil=True, _nrt=False)
def mark_fn(t, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt):
    """`mark` as a call (rare events)."""
    return mark(t, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def reserved_cash(pos_i, pos_f, cnt):
    """Cash reserved ($): short puts K x 100 c, spreads (Ks - Kl) x 100 c, calls nothing."""
    res = 0.0
    for i in range(cnt[C_OPEN]):
        k = pos_i[i, PI_KIND]
        if k == OPT_PUT:
            res += pos_f[i, PF_KS] * 100.0 * pos_f[i, PF_C]
        elif k == OPT_SPREAD:
            res += (pos_f[i, PF_KS] - pos_f[i, PF_KL]) * 100.0 * pos_f[i, PF_C]
    return res


@njit(cache=True, nogil=True, _nrt=False)
def short_iv(t, i, spot, atm, reg, ip, fp, uf, pos_i, pos_f):
    """Smile IV of position i's short strike at step t (for the log)."""
    u = pos_i[i, PI_U]
    tau = (pos_i[i, PI_EXP] - t) / ip[IP_SPY]
    return leg_iv(spot[t, u], atm[t, u], pos_f[i, PF_KS], tau, fp[FP_RATE], uf[u, U_DIV],
                  uf[u, U_SKEW0 + reg[t]], uf[u, U_FLOOR])


# ------------------------------------------------------------------------------------------
# slots, log, books


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def add_position(pos_i, pos_f, cnt, u, kind, exp, ks, log_ks, kl, log_kl, c, credit, open_cost, t,
                 mid_s, mid_l):
    """Append an open position (opening order is position order); mids cached for step t;
    log_ks = ln ks, log_kl = ln kl (0 without a long leg)."""
    i = cnt[C_OPEN]
    pos_i[i, PI_U] = u
    pos_i[i, PI_KIND] = kind
    pos_i[i, PI_EXP] = exp
    pos_i[i, PI_ROLLS] = 0
    pos_i[i, PI_MID_T] = t
    pos_f[i, PF_KS] = ks
    pos_f[i, PF_KL] = kl
    pos_f[i, PF_C] = c
    pos_f[i, PF_CREDIT] = credit
    pos_f[i, PF_OPEN_COST] = open_cost
    pos_f[i, PF_MID_S] = mid_s
    pos_f[i, PF_MID_L] = mid_l
    pos_f[i, PF_LOG_KS] = log_ks
    pos_f[i, PF_LOG_KL] = log_kl
    cnt[C_OPEN] = i + 1
    cnt[C_EPOCH] += 1


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def remove_position(pos_i, pos_f, cnt, i):
    """Drop slot i, keeping the order of the others."""
    n = cnt[C_OPEN]
    for j in range(i, n - 1):
        for k in range(N_PI):
            pos_i[j, k] = pos_i[j + 1, k]
        for k in range(N_PF):
            pos_f[j, k] = pos_f[j + 1, k]
    cnt[C_OPEN] = n - 1
    cnt[C_EPOCH] += 1


@njit(cache=True, nogil=True, _nrt=False)
def log_event(t, act, u, kind, strike, exp, c, price, iv,
              spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, log):
    """Append a trade-log row (replay mode only); cash and equity are after the event."""
    if ip[IP_LOG] == 0:
        return
    row = cnt[C_LOG]
    if row >= log.shape[0]:
        return
    log[row, L_STEP] = t
    log[row, L_ACTION] = act
    log[row, L_U] = u
    log[row, L_KIND] = kind
    log[row, L_STRIKE] = strike
    log[row, L_EXPIRY] = exp
    log[row, L_C] = c
    log[row, L_PRICE] = price
    log[row, L_SPOT] = spot[t, u] if u >= 0 else math.nan
    log[row, L_IV] = iv
    log[row, L_CASH] = st[ST_CASH]
    log[row, L_EQUITY] = mark_fn(t, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt)
    cnt[C_LOG] = row + 1


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def book_realised(x, m, out_path, out_month):
    """Realised P&L x ($) in month m."""
    out_path[F_REALISED] += x
    out_month[m, M_REALISED] += x


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def book_sale(credit, c, kind, m, out_path, out_month):
    """An option sale (opening or roll): premium = credit x 100 c; counts by kind."""
    prem = credit * 100.0 * c
    out_path[F_PREMIUM] += prem
    out_month[m, M_PREMIUM] += prem
    out_path[F_OPTIONS_SOLD] += 1.0
    if kind == OPT_PUT:
        out_path[F_PUTS_SOLD] += 1.0
    elif kind == OPT_CALL:
        out_path[F_CALLS_SOLD] += 1.0
    else:
        out_path[F_SPREADS_SOLD] += 1.0


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def book_trade(pnl, out_path):
    """A finished option trade's P&L ($) for the win/loss statistics (0 counts as a loss)."""
    if pnl > 0.0:
        out_path[F_WON] += 1.0
        out_path[F_SUM_WIN] += pnl
    else:
        out_path[F_LOST] += 1.0
        out_path[F_SUM_LOSS] += pnl


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def book_end(t, m, i, act, price, realised, trade,
             spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, out_path, out_month, log):
    """Book an ending position i (realised P&L, trade P&L), drop it and log `act`."""
    u = pos_i[i, PI_U]
    kind = pos_i[i, PI_KIND]
    exp = pos_i[i, PI_EXP]
    k = pos_f[i, PF_KS]
    c = pos_f[i, PF_C]
    iv = math.nan
    if ip[IP_LOG] != 0:
        iv = short_iv(t, i, spot, atm, reg, ip, fp, uf, pos_i, pos_f)
    book_realised(realised, m, out_path, out_month)
    book_trade(trade, out_path)
    remove_position(pos_i, pos_f, cnt, i)
    if ip[IP_LOG] != 0:
        log_event(t, act, u, kind, k, exp, c, price, iv,
                  spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, log)


# ------------------------------------------------------------------------------------------
# endings


@njit(cache=True, nogil=True, _nrt=False)
def assign(t, m, i, early,
           spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, out_path, out_month, log):
    """Assignment (or called away) of position i's short leg at S[t] (expiry or early)."""
    u = pos_i[i, PI_U]
    kind = pos_i[i, PI_KIND]
    s = spot[t, u]
    k = pos_f[i, PF_KS]
    c = pos_f[i, PF_C]
    c100 = 100.0 * c
    credit100 = pos_f[i, PF_CREDIT] * c100
    oc = pos_f[i, PF_OPEN_COST]
    fee = fp[FP_FEE] * c
    share_gain = 0.0
    if kind == OPT_CALL:
        intrinsic = s - k
        st[ST_CASH] += k * c100 - fee
        hold[u, H_SHARES] -= c100
        if hold[u, H_SHARES] < SHARE_DUST:
            hold[u, H_SHARES] = 0.0
        share_gain = (k - hold[u, H_PRICE]) * c100
        realised = credit100 - oc - fee
        trade = credit100 - intrinsic * c100 - oc - fee
        out_path[F_CALLED_AWAY] += 1.0
        act = ACT_CALLED_AWAY
    elif kind == OPT_PUT and ip[IP_KIND] == KIND_WHEEL:
        intrinsic = k - s
        st[ST_CASH] -= k * c100 + fee
        hold[u, H_SHARES] += c100
        hold[u, H_PRICE] = k
        realised = credit100 - oc - fee
        trade = credit100 - intrinsic * c100 - oc - fee
        out_path[F_ASSIGNMENTS] += 1.0
        act = ACT_ASSIGNED
    elif kind == OPT_PUT:
        intrinsic = k - s
        debit = intrinsic * c100
        st[ST_CASH] -= debit + fee
        realised = credit100 - debit - oc - fee
        trade = realised
        out_path[F_ASSIGNMENTS] += 1.0
        act = ACT_ASSIGNED
    else:
        # a spread's short leg assigned early: shares bought at Ks and sold at S, long leg sold
        intrinsic = k - s
        ms, ml = pos_mids_fn(t, i, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold)
        fill_l = sell_fill(ml, fp)
        comm = fp[FP_COMM] * c
        st[ST_CASH] -= intrinsic * c100 + fee
        st[ST_CASH] += fill_l * c100 - comm
        debit = intrinsic * c100 - fill_l * c100
        realised = credit100 - debit - oc - fee - comm
        trade = realised
        out_path[F_ASSIGNMENTS] += 1.0
        act = ACT_ASSIGNED
    if early:
        out_path[F_EARLY] += 1.0
        act = ACT_EARLY_ASSIGNED
    book_end(t, m, i, act, intrinsic, realised + share_gain, trade,
             spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, out_path, out_month, log)


@njit(cache=True, nogil=True, _nrt=False)
def settle_expiry(t, m, i,
                  spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, out_path, out_month, log):
    """Position i expires at step t: settle at intrinsic on S[t] (docs/semantics.md step 1)."""
    u = pos_i[i, PI_U]
    kind = pos_i[i, PI_KIND]
    s = spot[t, u]
    k = pos_f[i, PF_KS]
    c = pos_f[i, PF_C]
    if kind == OPT_SPREAD:
        c100 = 100.0 * c
        per_share = max(k - s, 0.0) - max(pos_f[i, PF_KL] - s, 0.0)
        debit = per_share * c100
        st[ST_CASH] -= debit
        realised = pos_f[i, PF_CREDIT] * c100 - debit - pos_f[i, PF_OPEN_COST]
        if s < k:
            out_path[F_ASSIGNMENTS] += 1.0
            act = ACT_ASSIGNED
        else:
            out_path[F_EXPIRED] += 1.0
            act = ACT_EXPIRE_WORTHLESS
        book_end(t, m, i, act, per_share, realised, realised,
                 spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, out_path, out_month, log)
        return
    itm = (s > k) if kind == OPT_CALL else (s < k)
    if itm:
        assign(t, m, i, NO,
               spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, out_path, out_month, log)
        return
    realised = pos_f[i, PF_CREDIT] * 100.0 * c - pos_f[i, PF_OPEN_COST]
    out_path[F_EXPIRED] += 1.0
    book_end(t, m, i, np.int64(ACT_EXPIRE_WORTHLESS), 0.0, realised, realised,
             spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, out_path, out_month, log)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def close_position(t, m, i, why,
                   spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, out_path, out_month, log):
    """Buy back position i at its fill (spread: short at mid + slip, long sold at its fill)."""
    u = pos_i[i, PI_U]
    kind = pos_i[i, PI_KIND]
    c = pos_f[i, PF_C]
    c100 = 100.0 * c
    ms, ml = pos_mids_fn(t, i, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold)
    if kind == OPT_SPREAD:
        debit = buy_fill(ms, fp) - sell_fill(ml, fp)
        comm = fp[FP_COMM] * c * 2.0
        act = ACT_CLOSE_SPREAD
    else:
        debit = buy_fill(ms, fp)
        comm = fp[FP_COMM] * c
        act = ACT_BUY_TO_CLOSE
        if ip[IP_KIND] == KIND_WHEEL:
            hold[u, H_CYCLE] -= debit
    st[ST_CASH] -= debit * c100 + comm
    realised = pos_f[i, PF_CREDIT] * c100 - debit * c100 - pos_f[i, PF_OPEN_COST] - comm
    if why == WHY_STOP:
        out_path[F_STOP_LOSSES] += 1.0
    elif why == WHY_PROFIT:
        out_path[F_PROFIT_TAKES] += 1.0
    else:
        out_path[F_CLOSES] += 1.0
    book_end(t, m, i, act, debit, realised, realised,
             spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, out_path, out_month, log)


@njit(cache=True, nogil=True, _nrt=False)
def challenged(t, i, spot, atm, reg, ip, fp, uf, pos_i, pos_f):
    """Roll trigger: ITM (put S < K, call S > K, spread S < Ks) or |delta| >= roll_delta."""
    u = pos_i[i, PI_U]
    kind = pos_i[i, PI_KIND]
    s = spot[t, u]
    k = pos_f[i, PF_KS]
    if ip[IP_ROLL_WHEN] == ROLL_DELTA:
        tau = (pos_i[i, PI_EXP] - t) / ip[IP_SPY]
        d = leg_abs_delta(s, atm[t, u], k, tau, fp[FP_RATE], uf[u, U_DIV],
                          uf[u, U_SKEW0 + reg[t]], uf[u, U_FLOOR], kind == OPT_CALL)
        return d >= fp[FP_ROLL_DELTA]
    if kind == OPT_CALL:
        return s > k
    return s < k


@njit(cache=True, nogil=True, _nrt=False)
def min_strike_level(u, ip, hold):
    """Covered-call floor level ($ per share): cost basis, purchase price or nan (none)."""
    ms = ip[IP_MIN_STRIKE]
    if ms == MIN_NONE:
        return math.nan
    if ms == MIN_COST_BASIS:
        return hold[u, H_PRICE] - hold[u, H_CYCLE]
    return hold[u, H_PRICE]


@njit(cache=True, nogil=True, _nrt=False)
def roll_position(t, m, i,
                  spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, out_path, out_month, log):
    """Roll position i down/out (puts, spreads) or up/out (calls); docs/semantics.md step 3d.

    Returns True when it rolled, False when the roll was refused (the caller closes or keeps).
    """
    u = pos_i[i, PI_U]
    kind = pos_i[i, PI_KIND]
    is_call = kind == OPT_CALL
    e_old = pos_i[i, PI_EXP]
    ks_old = pos_f[i, PF_KS]
    c = pos_f[i, PF_C]
    c100 = 100.0 * c
    s = spot[t, u]
    a = atm[t, u]
    sk = uf[u, U_SKEW0 + reg[t]]
    q = uf[u, U_DIV]
    fl = uf[u, U_FLOOR]
    step = uf[u, U_STEP]
    r = fp[FP_RATE]
    e_new = nearest_expiry(e_old + ip[IP_ROLL_OUT], e_old, int(uf[u, U_EVERY]))
    tau = (e_new - t) / ip[IP_SPY]
    active = ip[IP_HIV_MODE] != HIV_OFF and high_iv_active(t, u, atm, ip, fp)
    mode, value, dte = entry_rule(is_call, active, ip, fp)
    k_rule = rule_strike(s, a, tau, r, q, sk, fl, step, mode, value, is_call)
    if not (k_rule > 0.0):
        return False
    kl_new = math.nan
    if is_call:
        k_new = min_strike_grid(max(k_rule, ks_old), min_strike_level(u, ip, hold), step)
    else:
        k_new = min(k_rule, ks_old)
        if kind == OPT_SPREAD:
            kl_new = round_strike_nb(k_new - (ks_old - pos_f[i, PF_KL]), step, NO)
            if not (kl_new > 0.0):
                return False
    ms_old, ml_old = pos_mids_fn(t, i, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold)
    log_k_new = math.log(k_new)
    log_kl_new = math.log(kl_new) if kind == OPT_SPREAD else 0.0
    ms_new, ml_new = trade_mids(t, u, e_new, k_new, log_k_new, kl_new, log_kl_new, is_call,
                                kind == OPT_SPREAD, spot, atm, reg, ip, fp, uf, hold)
    if kind == OPT_SPREAD:
        close_debit = buy_fill(ms_old, fp) - sell_fill(ml_old, fp)
        new_credit = sell_fill(ms_new, fp) - buy_fill(ml_new, fp)
        legs = 2.0
    else:
        close_debit = buy_fill(ms_old, fp)
        new_credit = sell_fill(ms_new, fp)
        legs = 1.0
    comm_leg = fp[FP_COMM] * c * legs
    net = (new_credit - close_debit) * c100 - 2.0 * comm_leg
    if ip[IP_ROLL_CREDIT_ONLY] != 0 and net <= 0.0:
        return False
    realised = pos_f[i, PF_CREDIT] * c100 - close_debit * c100 - pos_f[i, PF_OPEN_COST] - comm_leg
    book_realised(realised, m, out_path, out_month)
    book_trade(realised, out_path)
    st[ST_CASH] += net
    if ip[IP_KIND] == KIND_WHEEL:
        hold[u, H_CYCLE] += new_credit - close_debit
    pos_i[i, PI_EXP] = e_new
    pos_i[i, PI_ROLLS] += 1
    pos_i[i, PI_MID_T] = t
    pos_f[i, PF_KS] = k_new
    pos_f[i, PF_KL] = kl_new
    cnt[C_EPOCH] += 1
    pos_f[i, PF_CREDIT] = new_credit
    pos_f[i, PF_OPEN_COST] = comm_leg
    pos_f[i, PF_MID_S] = ms_new
    pos_f[i, PF_MID_L] = ml_new
    pos_f[i, PF_LOG_KS] = log_k_new
    pos_f[i, PF_LOG_KL] = log_kl_new
    out_path[F_ROLLS] += 1.0
    book_sale(new_credit, c, kind, m, out_path, out_month)
    if ip[IP_LOG] != 0:
        iv = short_iv(t, i, spot, atm, reg, ip, fp, uf, pos_i, pos_f)
        log_event(t, np.int64(ACT_ROLL), u, kind, k_new, e_new, c, new_credit, iv,
                  spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, log)
    return True


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def manage_position(t, m, i, n,
                    spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt, out_path, out_month, log):
    """Management of position i at step t: stop loss, profit take, close_dte, roll; first wins.

    Returns True when position i was removed (the caller then does not advance its index).
    """
    sl = fp[FP_STOP_LOSS]
    pt = fp[FP_PROFIT_TAKE]
    left = pos_i[i, PI_EXP] - t
    why = -1
    if sl > 0.0 or pt > 0.0:
        ms, ml = cached_mids(t, i, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold)
        mid = ms - ml
        credit = pos_f[i, PF_CREDIT]
        if sl > 0.0 and mid >= sl * credit:
            why = WHY_STOP
        elif pt > 0.0 and mid <= (1.0 - pt) * credit:
            why = WHY_PROFIT
    if why < 0 and ip[IP_CLOSE_DTE_ON] != 0 and left <= ip[IP_CLOSE_DTE]:
        why = WHY_CLOSE
    if why < 0 and ip[IP_ROLL_WHEN] != ROLL_OFF and left <= ip[IP_ROLL_DTE] and t < n:
        if challenged(t, i, spot, atm, reg, ip, fp, uf, pos_i, pos_f):
            if pos_i[i, PI_ROLLS] >= ip[IP_MAX_ROLLS]:
                why = WHY_CLOSE
            elif not roll_position(t, m, i, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st,
                                   cnt, out_path, out_month, log):
                if ip[IP_CLOSE_IF_UNABLE] != 0:
                    why = WHY_CLOSE
    if why < 0:
        return False
    close_position(t, m, i, why, spot, atm, reg, ip, fp, uf, pos_i, pos_f, hold, st, cnt,
                   out_path, out_month, log)
    return True
