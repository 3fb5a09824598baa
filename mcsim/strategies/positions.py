"""Position bookkeeping of the strategy kernels: mids, marks, closes, expiries, rolls, the log.

Every function takes the bundles of `layout` (``mk, rules, book, out``); what a position is
comes from its `Leg`: a call (shares cover it, S > K is in the money), a put, or a spread (a
long put below the short one); how it settles and what it books come from the strategy's flags
(`cash_settle`: an ITM short option is paid out at intrinsic in cash; `tracks_cycle`: sales and
buy-backs move the cycle premium behind the cost basis), never from the strategy kind.

Money in dollars, prices and strikes in $ per share, one contract = 100 shares; see
docs/semantics.md for every formula.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from mcsim.american import baw_price_nb
from mcsim.pricing import round_strike_nb

from .layout import NO, SHARE_DUST, Action, HighIV, Leg, MinStrike, Reason, RollStrike, RollWhen
from .options_nb import (
    buy_fill, close_debit, entry_rule, high_iv_active, leg_abs_delta, leg_iv, min_strike_grid,
    nearest_expiry, pair_from_terms, roll_acceptable, rule_strike, sell_fill, term_atm,
)

# a credit roll scans at most this many listed strikes away from the old one
ROLL_SCAN = 1000


# ------------------------------------------------------------------------------------------
# prices and marks


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def atm_for(t, u, k, mk, rules):
    """ATM IV of u at step t for an option k steps from expiry: the market's 30-day ATM IV, moved
    along the Heston term structure for a stochastic-vol underlying (`term_atm`), flat otherwise."""
    a = mk.atm[t, u]
    und = rules.und[u]
    if und.term == 0:
        return a
    p = rules.p[0]
    if k < p.tab_len:
        w = rules.tab[u, k].term
    else:
        x = und.kappa * (k / p.steps_per_year)
        w = (-math.expm1(-x) / x if x > 0.0 else 1.0) / und.b30
    r = mk.reg[t]
    return term_atm(a, rules.ts[u, r, 0], rules.ts[u, r, 1], w, und.iv_floor)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def mids_at(t, u, k, strikes, leg, mk, rules, hold):
    """Mids ($/share) of the short and (spread) long strike on u at step t, k = expiry - t steps;
    strikes = (ks, ln ks, kl, ln kl).

    Both legs share the terms: exponentials and roots come from the strategy's tau tables
    (computed beyond them), ln S is cached per step in `hold`; intrinsic at k <= 0. American
    options (`und.american`) are never below intrinsic.
    """
    ks, log_ks, kl, log_kl = strikes
    is_call = leg == Leg.CALL
    two = leg == Leg.SPREAD
    s = mk.spot[t, u]
    if k <= 0:
        if is_call:
            return max(s - ks, 0.0), 0.0
        return max(ks - s, 0.0), max(kl - s, 0.0) if two else 0.0
    h = hold[u]
    if h.log_t != t:
        h.log_s = math.log(s)
        h.log_t = t
    p = rules.p[0]
    und = rules.und[u]
    if k < p.tab_len:
        tb = rules.tab[u, k]
        sqt = tb.sqt
        df_r = tb.df_r
        df_q = tb.df_q
        drift = tb.drift
        isqt = tb.isqt
    else:
        tau = k / p.steps_per_year
        sqt = math.sqrt(tau)
        isqt = 1.0 / sqt
        df_r = math.exp(-p.rate * tau)
        df_q = math.exp(-und.div * tau)
        drift = (p.rate - und.div) * tau
    return pair_from_terms(s, atm_for(t, u, k, mk, rules), strikes, (sqt, isqt, df_r, df_q, h.log_s + drift),
                           rules.skew[u, mk.reg[t]], und.iv_floor, is_call, two,
                           und.american != 0)


@njit(cache=True, nogil=True, _nrt=False)
def trade_mids(t, u, e, strikes, leg, mk, rules, hold):
    """`mids_at` as a call, for new trades and rolls (expiry step e): a trade prices exactly as
    the daily marks do, so the mids cached at a trade are its fills' mids."""
    return mids_at(t, u, e - t, strikes, leg, mk, rules, hold)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def pos_mids(t, i, mk, rules, book):
    """(short mid, long mid) of position i at step t, $ per share, cached per step (`mids_at`)."""
    ps = book.pos[i]
    if ps.mid_t == t:
        return ps.mid_s, ps.mid_l
    ms, ml = mids_at(t, ps.u, ps.expiry - t, (ps.strike, ps.log_ks, ps.long_strike, ps.log_kl),
                     ps.leg, mk, rules, book.hold)
    ps.mid_s = ms
    ps.mid_l = ml
    ps.mid_t = t
    return ms, ml


@njit(cache=True, nogil=True, _nrt=False)
def pos_mids_fn(t, i, mk, rules, book):
    """`pos_mids` as a call (rare events), so its body is compiled once, not at every site."""
    return pos_mids(t, i, mk, rules, book)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def cached_mids(t, i, mk, rules, book):
    """Position i's mids at step t from its cache (the step loop prices every open position
    once per step); priced by a call when the cache is stale."""
    ps = book.pos[i]
    if ps.mid_t == t:
        return ps.mid_s, ps.mid_l
    return pos_mids_fn(t, i, mk, rules, book)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def mark(t, mk, rules, book):
    """Equity ($) at step t: cash + shares x S - short mids x 100 c + long mids x 100 c."""
    eq = book.st[0].cash
    su = rules.su
    hold = book.hold
    for j in range(su.shape[0]):
        u = su[j]
        sh = hold[u].shares
        if sh != 0.0:
            eq += sh * mk.spot[t, u]
    pos = book.pos
    for i in range(book.st[0].n_open):
        ms, ml = cached_mids(t, i, mk, rules, book)
        c100 = 100.0 * pos[i].contracts
        eq -= ms * c100
        if pos[i].leg == Leg.SPREAD:
            eq += ml * c100
    return eq


@njit(cache=True, nogil=True, _nrt=False)
def mark_fn(t, mk, rules, book):
    """`mark` as a call (rare events)."""
    return mark(t, mk, rules, book)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def reserved_cash(book):
    """Cash reserved ($): short puts K x 100 c, spreads (Ks - Kl) x 100 c, calls nothing."""
    res = 0.0
    pos = book.pos
    for i in range(book.st[0].n_open):
        leg = pos[i].leg
        if leg == Leg.PUT:
            res += pos[i].strike * 100.0 * pos[i].contracts
        elif leg == Leg.SPREAD:
            res += (pos[i].strike - pos[i].long_strike) * 100.0 * pos[i].contracts
    return res


@njit(cache=True, nogil=True, _nrt=False)
def short_iv(t, i, mk, rules, book):
    """Smile IV of position i's short strike at step t (for the log)."""
    ps = book.pos[i]
    u = ps.u
    p = rules.p[0]
    und = rules.und[u]
    tau = (ps.expiry - t) / p.steps_per_year
    return leg_iv(mk.spot[t, u], atm_for(t, u, ps.expiry - t, mk, rules), ps.strike, tau, p.rate, und.div,
                  rules.skew[u, mk.reg[t]], und.iv_floor)


# ------------------------------------------------------------------------------------------
# slots, log, books


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def add_position(book, t, ids, strikes, money, mids):
    """Append an open position (opening order is position order), mids cached for step t:
    ids = (u, Leg, expiry), strikes = (ks, ln ks, kl, ln kl or 0), money = (contracts,
    credit per share, open cost $), mids = (short, long)."""
    st = book.st[0]
    ps = book.pos[st.n_open]
    ps.u, ps.leg, ps.expiry = ids
    ps.rolls = 0
    ps.mid_t = t
    ps.strike, ps.log_ks, ps.long_strike, ps.log_kl = strikes
    ps.contracts, ps.credit, ps.open_cost = money
    ps.mid_s, ps.mid_l = mids
    st.n_open += 1
    st.epoch += 1


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def remove_position(book, i):
    """Drop slot i, keeping the order of the others."""
    st = book.st[0]
    pos = book.pos
    n = st.n_open
    for j in range(i, n - 1):
        pos[j] = pos[j + 1]
    st.n_open = n - 1
    st.epoch += 1


@njit(cache=True, nogil=True, _nrt=False)
def log_event(t, ids, values, mk, rules, book, out):
    """Append a trade-log row (replay mode only); cash, equity, shares and cost basis are after
    the event.

    ids = (Action, Reason, underlying or -1, Leg or -1, expiry or -1), values = (strike, long
    strike, contracts, price, iv). Rows past the log's capacity are counted, not written: the
    caller sizes the log again from the count (`engine.replay_market`), so no row is ever
    dropped.
    """
    st = book.st[0]
    row = st.n_log
    st.n_log = row + 1
    if row >= out.log.shape[0]:
        return
    r = out.log[row]
    act, why, u, leg, exp = ids
    r.step = t
    r.action = act
    r.reason = why
    r.underlying = u
    r.kind = leg
    r.expiry = exp
    r.strike, r.long_strike, r.contracts, r.price, r.iv = values
    r.spot = mk.spot[t, u] if u >= 0 else math.nan
    r.shares = math.nan
    r.cost_basis = math.nan
    if u >= 0:
        h = book.hold[u]
        r.shares = h.shares
        if h.shares > 0.0:
            r.cost_basis = h.price - h.cycle if rules.p[0].tracks_cycle != 0 else h.price
    r.cash = st.cash
    r.equity = mark_fn(t, mk, rules, book)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def book_realised(x, m, out):
    """Realised P&L x ($) in month m."""
    out.path[0].realised_pnl += x
    out.month[m].realised_pnl += x


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def book_buyback(debit, m, out):
    """A buy-back debit ($, a close or a roll's old side) out of net premium in month m."""
    out.path[0].net_premium_collected -= debit
    out.month[m].net_premium -= debit


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def book_sale(credit, c, leg, m, out):
    """An option sale (opening or roll): premium (and net premium) += credit x 100 c; counts by
    leg."""
    prem = credit * 100.0 * c
    o = out.path[0]
    o.premium_collected += prem
    o.net_premium_collected += prem
    out.month[m].premium += prem
    out.month[m].net_premium += prem
    o.options_sold += 1
    if leg == Leg.PUT:
        o.puts_sold += 1
    elif leg == Leg.CALL:
        o.calls_sold += 1
    else:
        o.spreads_sold += 1


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def book_trade(pnl, out):
    """A finished option trade's P&L ($) for the win/loss statistics (0 counts as a loss)."""
    o = out.path[0]
    if pnl > 0.0:
        o.trades_won += 1
        o.sum_win += pnl
    else:
        o.trades_lost += 1
        o.sum_loss += pnl


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def book_end(t, m, i, act, why, amounts, mk, rules, book, out):
    """Book an ending position i (amounts = (log price $/share, realised $, trade P&L $)), drop
    it and log `act` for reason `why`."""
    price, realised, trade = amounts
    ps = book.pos[i]
    u = ps.u
    leg = ps.leg
    exp = ps.expiry
    k = ps.strike
    kl = ps.long_strike
    c = ps.contracts
    logging = rules.p[0].log != 0
    iv = math.nan
    if logging:
        iv = short_iv(t, i, mk, rules, book)
    book_realised(realised, m, out)
    book_trade(trade, out)
    remove_position(book, i)
    if logging:
        log_event(t, (act, why, u, leg, exp), (k, kl, c, price, iv), mk, rules, book, out)


# ------------------------------------------------------------------------------------------
# endings


@njit(cache=True, nogil=True, _nrt=False)
def assign(t, m, i, early, mk, rules, book, out):
    """Assignment (or called away) of position i's short leg at S[t] (expiry or early)."""
    p = rules.p[0]
    ps = book.pos[i]
    st = book.st[0]
    u = ps.u
    leg = ps.leg
    h = book.hold[u]
    o = out.path[0]
    s = mk.spot[t, u]
    k = ps.strike
    c = ps.contracts
    c100 = 100.0 * c
    credit100 = ps.credit * c100
    oc = ps.open_cost
    fee = p.assignment_fee * c
    share_gain = 0.0
    if leg != Leg.SPREAD and p.cash_settle != 0:
        intrinsic = (s - k) if leg == Leg.CALL else (k - s)
        debit = intrinsic * c100
        st.cash -= debit + fee
        realised = credit100 - debit - oc - fee
        trade = realised
        o.assignments += 1
        act = Action.ASSIGNED
    elif leg == Leg.CALL:
        intrinsic = s - k
        st.cash += k * c100 - fee
        h.shares -= c100
        if h.shares < SHARE_DUST:
            h.shares = 0.0
        share_gain = (k - h.price) * c100
        realised = credit100 - oc - fee
        trade = credit100 - intrinsic * c100 - oc - fee
        o.called_away += 1
        act = Action.CALLED_AWAY
    elif leg == Leg.PUT:
        intrinsic = k - s
        st.cash -= k * c100 + fee
        h.shares += c100
        h.price = k
        realised = credit100 - oc - fee
        trade = credit100 - intrinsic * c100 - oc - fee
        o.assignments += 1
        act = Action.ASSIGNED
    else:
        # a spread's short leg assigned early: shares bought at Ks and sold at S; the long put is
        # sold at its fill, or exercised (intrinsic, less the fee) when that pays more
        intrinsic = k - s
        ms, ml = pos_mids_fn(t, i, mk, rules, book)
        sale = sell_fill(ml, p) * c100 - p.commission * c
        exercise = max(ps.long_strike - s, 0.0) * c100 - fee
        proceeds = max(sale, exercise)
        st.cash -= intrinsic * c100 + fee
        st.cash += proceeds
        realised = credit100 - (intrinsic * c100 - proceeds) - oc - fee
        trade = realised
        o.assignments += 1
        act = Action.ASSIGNED
    why = Reason.EXPIRY
    if early:
        o.early_assignments += 1
        act = Action.EARLY_ASSIGNED
        why = Reason.EARLY_EXERCISE
    book_end(t, m, i, np.int64(act), np.int64(why), (intrinsic, realised + share_gain, trade),
             mk, rules, book, out)


@njit(cache=True, nogil=True, _nrt=False)
def settle_expiry(t, m, i, mk, rules, book, out):
    """Position i expires at step t: settle at intrinsic on S[t] (docs/semantics.md step 1)."""
    ps = book.pos[i]
    o = out.path[0]
    leg = ps.leg
    s = mk.spot[t, ps.u]
    k = ps.strike
    c = ps.contracts
    if leg == Leg.SPREAD:
        c100 = 100.0 * c
        per_share = max(k - s, 0.0) - max(ps.long_strike - s, 0.0)
        debit = per_share * c100
        book.st[0].cash -= debit
        realised = ps.credit * c100 - debit - ps.open_cost
        if s < k:
            o.assignments += 1
            act = Action.ASSIGNED
        else:
            o.expired_worthless += 1
            act = Action.EXPIRE_WORTHLESS
        book_end(t, m, i, np.int64(act), np.int64(Reason.EXPIRY), (per_share, realised, realised),
                 mk, rules, book, out)
        return
    itm = (s > k) if leg == Leg.CALL else (s < k)
    if itm:
        assign(t, m, i, NO, mk, rules, book, out)
        return
    realised = ps.credit * 100.0 * c - ps.open_cost
    o.expired_worthless += 1
    book_end(t, m, i, np.int64(Action.EXPIRE_WORTHLESS), np.int64(Reason.EXPIRY),
             (0.0, realised, realised), mk, rules, book, out)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def close_position(t, m, i, why, mk, rules, book, out):
    """Buy back position i at its fill for reason `why` (a Reason of the management step):
    spread: short at mid + slip, long sold at its fill, the pair capped at the width."""
    p = rules.p[0]
    ps = book.pos[i]
    o = out.path[0]
    c = ps.contracts
    c100 = 100.0 * c
    ms, ml = pos_mids_fn(t, i, mk, rules, book)
    two = ps.leg == Leg.SPREAD
    debit = close_debit(ms, ml, ps.strike - ps.long_strike, two, p)
    if two:
        comm = p.commission * c * 2.0
        act = Action.CLOSE_SPREAD
    else:
        comm = p.commission * c
        act = Action.BUY_TO_CLOSE
        if p.tracks_cycle != 0:
            book.hold[ps.u].cycle -= debit
    book.st[0].cash -= debit * c100 + comm
    book_buyback(debit * c100, m, out)
    realised = ps.credit * c100 - debit * c100 - ps.open_cost - comm
    if why == Reason.STOP_LOSS:
        o.stop_losses += 1
    elif why == Reason.PROFIT_TAKE:
        o.profit_takes += 1
    else:
        o.closes += 1
        if why == Reason.CLOSE_DTE:
            o.close_dte_closes += 1
        elif why == Reason.MAX_ROLLS:
            o.max_rolls_closes += 1
        else:
            o.unable_to_roll_closes += 1
    book_end(t, m, i, np.int64(act), why, (debit, realised, realised), mk, rules, book, out)


@njit(cache=True, nogil=True, _nrt=False)
def exercised_early(t, i, intrinsic, mk, rules, book):
    """Whether the holder exercises position i's ITM short leg (intrinsic > 0, $/share) at step
    t: its American time value (Barone-Adesi-Whaley price at the smile IV minus intrinsic) is
    below early_assignment_time_value. The American price is at least the (floored) mid, so it
    is only evaluated when the mid is within the threshold of intrinsic."""
    p = rules.p[0]
    tv = p.ea_time_value
    ms, ml = cached_mids(t, i, mk, rules, book)
    if ms - intrinsic >= tv:
        return False
    ps = book.pos[i]
    u = ps.u
    und = rules.und[u]
    s = mk.spot[t, u]
    tau = (ps.expiry - t) / p.steps_per_year
    is_call = ps.leg == Leg.CALL
    iv = leg_iv(s, atm_for(t, u, ps.expiry - t, mk, rules), ps.strike, tau, p.rate, und.div, rules.skew[u, mk.reg[t]],
                und.iv_floor)
    am = baw_price_nb(s, ps.strike, tau, p.rate, und.div, iv, is_call)
    return am - intrinsic < tv


@njit(cache=True, nogil=True, _nrt=False)
def challenged(t, i, mk, rules, book):
    """Roll trigger: ITM (put S < K, call S > K, spread S < Ks) or |delta| >= roll_delta."""
    p = rules.p[0]
    ps = book.pos[i]
    u = ps.u
    s = mk.spot[t, u]
    k = ps.strike
    if p.roll_when == RollWhen.DELTA:
        und = rules.und[u]
        tau = (ps.expiry - t) / p.steps_per_year
        d = leg_abs_delta(s, atm_for(t, u, ps.expiry - t, mk, rules), k, tau, p.rate, und.div, rules.skew[u, mk.reg[t]],
                          und.iv_floor, ps.leg == Leg.CALL)
        return d >= p.roll_delta
    if ps.leg == Leg.CALL:
        return s > k
    return s < k


@njit(cache=True, nogil=True, _nrt=False)
def min_strike_level(u, p, hold):
    """Covered-call floor level ($ per share): cost basis, purchase price or nan (none)."""
    ms = p.min_strike
    if ms == MinStrike.NONE:
        return math.nan
    if ms == MinStrike.COST_BASIS:
        return hold[u].price - hold[u].cycle
    return hold[u].price


@njit(cache=True, nogil=True, _nrt=False)
def _roll_candidate(t, u, e_new, k, kl, leg, debit, comm_ps, mk, rules, hold):
    """(net $/share after costs, new credit $/share, short mid, long mid) of rolling into strike
    k (a spread: long strike kl) at expiry e_new, the old side bought back for `debit`."""
    p = rules.p[0]
    two = leg == Leg.SPREAD
    ms, ml = trade_mids(t, u, e_new, (k, math.log(k), kl, math.log(kl) if two else 0.0), leg,
                        mk, rules, hold)
    if two:
        credit = sell_fill(ms, p) - buy_fill(ml, p)
    else:
        credit = sell_fill(ms, p)
    return credit - debit - comm_ps, credit, ms, ml


@njit(cache=True, nogil=True, _nrt=False)
def roll_position(t, m, i, mk, rules, book, out):
    """Roll position i down/out (puts, spreads) or up/out (calls); docs/semantics.md step 3d.

    `roll_strike = "credit"`: the furthest listed strike from the old one (down for puts and
    spreads, up for calls) whose roll still nets `roll_min_credit` after costs; `"rule"`: the
    entry rule's strike, capped at the old one. Returns True when it rolled, False when the roll
    was refused (the caller closes or keeps).
    """
    p = rules.p[0]
    ps = book.pos[i]
    u = ps.u
    und = rules.und[u]
    leg = ps.leg
    is_call = leg == Leg.CALL
    two = leg == Leg.SPREAD
    e_old = ps.expiry
    ks_old = ps.strike
    w_old = ps.strike - ps.long_strike
    c = ps.contracts
    c100 = 100.0 * c
    step = und.strike_step
    legs = 2.0 if two else 1.0
    e_new = nearest_expiry(e_old + p.roll_out, e_old, und.expiry_every)
    ms_old, ml_old = pos_mids_fn(t, i, mk, rules, book)
    debit = close_debit(ms_old, ml_old, w_old, two, p)
    comm_ps = 2.0 * legs * p.commission / 100.0
    kl_new = math.nan
    if p.roll_strike == RollStrike.CREDIT:
        if is_call:
            k0 = min_strike_grid(ks_old, min_strike_level(u, p, book.hold), step)
        else:
            k0 = ks_old
        found = False
        k_new = k0
        new_credit = 0.0
        ms_new = 0.0
        ml_new = 0.0
        for j in range(ROLL_SCAN):
            k = k0 + j * step if is_call else k0 - j * step
            if not (k > 0.0):
                break
            kl = k - w_old if two else math.nan
            if two and not (kl > 0.0):
                break
            net, cr, ms, ml = _roll_candidate(t, u, e_new, k, kl, leg, debit, comm_ps, mk, rules,
                                              book.hold)
            if not roll_acceptable(net, p):
                break
            found = True
            k_new = k
            kl_new = kl
            new_credit = cr
            ms_new = ms
            ml_new = ml
        if not found:
            return False
    else:
        s = mk.spot[t, u]
        tau = (e_new - t) / p.steps_per_year
        active = p.hiv_mode != HighIV.OFF and high_iv_active(t, u, mk.atm, p)
        mode, value, dte = entry_rule(is_call, active, p)
        k_rule = rule_strike(s, atm_for(t, u, e_new - t, mk, rules), tau, p.rate, und.div,
                             (rules.skew[u, mk.reg[t]], und.iv_floor), step, (mode, value), is_call)
        if not (k_rule > 0.0):
            return False
        if is_call:
            k_new = min_strike_grid(max(k_rule, ks_old), min_strike_level(u, p, book.hold), step)
        else:
            k_new = min(k_rule, ks_old)
            if two:
                kl_new = round_strike_nb(k_new - w_old, step, NO)
                if not (kl_new > 0.0):
                    return False
        net, new_credit, ms_new, ml_new = _roll_candidate(t, u, e_new, k_new, kl_new, leg, debit,
                                                          comm_ps, mk, rules, book.hold)
        if not roll_acceptable(net, p):
            return False
    comm_leg = p.commission * c * legs
    realised = ps.credit * c100 - debit * c100 - ps.open_cost - comm_leg
    book_realised(realised, m, out)
    book_trade(realised, out)
    book_buyback(debit * c100, m, out)
    st = book.st[0]
    st.cash += (new_credit - debit) * c100 - 2.0 * comm_leg
    if p.tracks_cycle != 0:
        book.hold[u].cycle += new_credit - debit
    ps.expiry = e_new
    ps.rolls += 1
    ps.mid_t = t
    ps.strike = k_new
    ps.long_strike = kl_new
    st.epoch += 1
    ps.credit = new_credit
    ps.open_cost = comm_leg
    ps.mid_s = ms_new
    ps.mid_l = ml_new
    ps.log_ks = math.log(k_new)
    ps.log_kl = math.log(kl_new) if two else 0.0
    out.path[0].rolls += 1
    book_sale(new_credit, c, leg, m, out)
    if p.log != 0:
        iv = short_iv(t, i, mk, rules, book)
        why = Reason.ROLL_DELTA if p.roll_when == RollWhen.DELTA else Reason.ROLL_ITM
        log_event(t, (np.int64(Action.ROLL), np.int64(why), u, leg, e_new),
                  (k_new, kl_new, c, new_credit, iv), mk, rules, book, out)
    return True


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def manage_position(t, m, i, mk, rules, book, out):
    """Management of position i at step t: stop loss, profit take, close_dte, roll; first wins.

    Stop loss and profit take compare the closing cost per share (buy-back fill plus closing
    commissions) with the credit. Returns True when position i was removed (the caller then
    does not advance its index).
    """
    p = rules.p[0]
    ps = book.pos[i]
    sl = p.stop_loss
    pt = p.profit_take
    left = ps.expiry - t
    why = -1
    if sl > 0.0 or pt > 0.0:
        ms, ml = cached_mids(t, i, mk, rules, book)
        two = ps.leg == Leg.SPREAD
        cost = close_debit(ms, ml, ps.strike - ps.long_strike, two, p)
        cost += (2.0 if two else 1.0) * p.commission / 100.0
        credit = ps.credit
        if sl > 0.0 and cost >= sl * credit:
            why = Reason.STOP_LOSS
        elif pt > 0.0 and cost <= (1.0 - pt) * credit:
            why = Reason.PROFIT_TAKE
    if why < 0 and p.close_dte_on != 0 and left <= p.close_dte:
        why = Reason.CLOSE_DTE
    if why < 0 and p.roll_when != RollWhen.OFF and left <= p.roll_dte and t < p.n_steps:
        if challenged(t, i, mk, rules, book):
            if ps.rolls >= p.max_rolls:
                why = Reason.MAX_ROLLS
            elif not roll_position(t, m, i, mk, rules, book, out):
                if p.close_if_unable != 0:
                    why = Reason.UNABLE_TO_ROLL
    if why < 0:
        return False
    close_position(t, m, i, np.int64(why), mk, rules, book, out)
    return True
