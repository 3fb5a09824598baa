"""Per-kind entry logic (step 5 of docs/semantics.md): what each kind opens on an entry day.

`want` says what an underlying wants now (nothing, a sized entry, a covered call); `entries`
sizes on the equity marked now and dispatches by kind; the openers (`sell_put`, `sell_call`,
`open_spread`) price, size and book one trade through `positions`. `buy_and_hold` is the
baseline's step-0 purchase. Money in dollars, prices in $ per share.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from mcsim.pricing import round_strike_nb

from .layout import MIN_CONTRACTS, NO, NONE, SHARE_DUST, YES, Action, HighIV, Kind, Leg, Reason, Width
from .options_nb import (
    buy_fill, entry_rule, floor_if, grid_at_or_above, high_iv_active, leg_iv, min_strike_grid,
    nearest_expiry, rule_strike, sell_fill,
)
from .positions import (
    add_position, atm_for, book_realised, book_sale, log_event, mark, mark_fn, min_strike_level,
    reserved_cash, trade_mids,
)

WANT_NOTHING = 0
WANT_SIZED = 1      # a put (wheel, put_write), a spread, or shares (covered_call), sized on equity
WANT_CALL = 2       # a covered call on the shares held


@njit(cache=True, nogil=True, _nrt=False)
def _entry_expiry(t, u, is_call, mk, rules):
    """(expiry step, tau years) of a new option on u at step t (high IV applied)."""
    p = rules.p[0]
    active = p.hiv_mode != HighIV.OFF and high_iv_active(t, u, mk.atm, p)
    mode, value, dte = entry_rule(is_call, active, p)
    e = nearest_expiry(t + dte, t, rules.und[u].expiry_every)
    return e, (e - t) / p.steps_per_year


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _entry_terms(t, u, is_call, mk, rules):
    """(expiry step, tau years, rule strike $) of a new option on u at step t (high IV applied)."""
    p = rules.p[0]
    und = rules.und[u]
    active = p.hiv_mode != HighIV.OFF and high_iv_active(t, u, mk.atm, p)
    mode, value, dte = entry_rule(is_call, active, p)
    e = nearest_expiry(t + dte, t, und.expiry_every)
    tau = (e - t) / p.steps_per_year
    k = rule_strike(mk.spot[t, u], atm_for(t, u, e - t, mk, rules), tau, p.rate, und.div,
                    (rules.skew[u, mk.reg[t]], und.iv_floor), und.strike_step, (mode, value),
                    is_call)
    return e, tau, k


@njit(cache=True, nogil=True, _nrt=False)
def _leg_iv(t, u, k, e, mk, rules):
    """Smile IV of strike k on u at step t for expiry step e (for the log)."""
    und = rules.und[u]
    tau = (e - t) / rules.p[0].steps_per_year
    return leg_iv(mk.spot[t, u], atm_for(t, u, e - t, mk, rules), k, tau, rules.p[0].rate, und.div,
                  rules.skew[u, mk.reg[t]], und.iv_floor)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def sell_put(t, m, u, equity, mk, rules, book, out):
    """Cash-secured put on u (wheel, put_write), sized on `equity` ($), capped by free cash."""
    e, tau, k = _entry_terms(t, u, NO, mk, rules)
    if not (k > 0.0):
        return
    p = rules.p[0]
    log_k = math.log(k)
    mid, _ = trade_mids(t, u, e, (k, log_k, math.nan, 0.0), np.int64(Leg.PUT), mk, rules,
                        book.hold)
    fill = sell_fill(mid, p)
    comm = p.commission
    if fill * 100.0 - comm <= 0.0 or fill < p.put_min_credit:
        return
    integer = p.integer != 0
    c = floor_if(p.position_fraction * equity / (k * 100.0), integer)
    st = book.st[0]
    free = st.cash - reserved_cash(book)
    den = k * 100.0 - fill * 100.0 + comm
    if den > 0.0:
        c = min(c, floor_if(free / den, integer))
    if not (c >= MIN_CONTRACTS):
        return
    st.cash += fill * 100.0 * c - comm * c
    add_position(book, t, (u, np.int64(Leg.PUT), e), (k, log_k, math.nan, 0.0),
                 (c, fill, comm * c), (mid, 0.0))
    if p.tracks_cycle != 0:
        book.hold[u].cycle = fill      # a new cycle: no shares are held
    book_sale(fill, c, np.int64(Leg.PUT), m, out)
    if p.log != 0:
        iv = _leg_iv(t, u, k, e, mk, rules)
        log_event(t, (np.int64(Action.SELL_PUT), np.int64(Reason.ENTRY), u, np.int64(Leg.PUT), e),
                  (k, math.nan, c, fill, iv), mk, rules, book, out)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def sell_call(t, m, u, mk, rules, book, out):
    """Covered call on all shares of u, strike >= the min_strike level's grid strike."""
    p = rules.p[0]
    h = book.hold[u]
    c = floor_if(h.shares / 100.0, p.integer != 0)
    if not (c >= MIN_CONTRACTS):
        return
    sk = rules.skew[u, mk.reg[t]]
    step = rules.und[u].strike_step
    comm = p.commission
    level = min_strike_level(u, p, book.hold)
    if h.call_failed != 0 and level == level and sk >= 0.0:
        # Retry after a failed sale: with skew >= 0 the call's mid falls as the strike rises, so
        # if a call at the floor strike cannot be sold, neither can the one at max(K_rule, floor).
        # Same decision as the full rule below, without solving for the delta strike.
        k_floor = grid_at_or_above(level, step)
        if k_floor > 0.0:
            e, tau = _entry_expiry(t, u, YES, mk, rules)
            mid_floor, _ = trade_mids(t, u, e, (k_floor, math.log(k_floor), math.nan, 0.0),
                                      np.int64(Leg.CALL), mk, rules, book.hold)
            fill_floor = sell_fill(mid_floor, p)
            if not (fill_floor * 100.0 * c - comm * c > 0.0) or fill_floor < p.call_min_credit:
                return
    h.call_failed = 1
    e, tau, k = _entry_terms(t, u, YES, mk, rules)
    if not (k > 0.0):
        return
    k = min_strike_grid(k, level, step)
    log_k = math.log(k)
    mid, _ = trade_mids(t, u, e, (k, log_k, math.nan, 0.0), np.int64(Leg.CALL), mk, rules,
                        book.hold)
    fill = sell_fill(mid, p)
    if not (fill * 100.0 * c - comm * c > 0.0) or fill < p.call_min_credit:
        return
    h.call_failed = 0
    book.st[0].cash += fill * 100.0 * c - comm * c
    add_position(book, t, (u, np.int64(Leg.CALL), e), (k, log_k, math.nan, 0.0),
                 (c, fill, comm * c), (mid, 0.0))
    h.cycle += fill
    book_sale(fill, c, np.int64(Leg.CALL), m, out)
    if p.log != 0:
        iv = _leg_iv(t, u, k, e, mk, rules)
        log_event(t, (np.int64(Action.SELL_CALL), np.int64(Reason.ENTRY), u, np.int64(Leg.CALL),
                      e), (k, math.nan, c, fill, iv), mk, rules, book, out)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def open_spread(t, m, u, equity, mk, rules, book, out):
    """One bull put spread on u: max loss (Ks - Kl - credit) x 100 per contract sized on equity."""
    e, tau, ks = _entry_terms(t, u, NO, mk, rules)
    if not (ks > 0.0):
        return
    p = rules.p[0]
    s = mk.spot[t, u]
    w = p.width if p.width_mode == Width.ABS else p.width * s
    kl = round_strike_nb(ks - w, rules.und[u].strike_step, NO)
    if not (kl > 0.0):
        return
    log_ks = math.log(ks)
    log_kl = math.log(kl)
    ms, ml = trade_mids(t, u, e, (ks, log_ks, kl, log_kl), np.int64(Leg.SPREAD), mk, rules,
                        book.hold)
    credit = sell_fill(ms, p) - buy_fill(ml, p)
    if credit <= 0.0 or credit >= ks - kl or credit < p.put_min_credit:
        return
    comm = p.commission
    integer = p.integer != 0
    risk = (ks - kl - credit) * 100.0
    c = floor_if(p.position_fraction * equity / risk, integer)
    st = book.st[0]
    free = st.cash - reserved_cash(book)
    c = min(c, floor_if(free / (risk + 2.0 * comm), integer))
    if not (c >= MIN_CONTRACTS):
        return
    st.cash += credit * 100.0 * c - 2.0 * comm * c
    add_position(book, t, (u, np.int64(Leg.SPREAD), e), (ks, log_ks, kl, log_kl),
                 (c, credit, 2.0 * comm * c), (ms, ml))
    book_sale(credit, c, np.int64(Leg.SPREAD), m, out)
    if p.log != 0:
        iv = _leg_iv(t, u, ks, e, mk, rules)
        log_event(t, (np.int64(Action.OPEN_SPREAD), np.int64(Reason.ENTRY), u,
                      np.int64(Leg.SPREAD), e), (ks, kl, c, credit, iv), mk, rules, book, out)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _shares_for(dollars, price, p, book):
    """Shares a buy of `dollars` gets at `price` ($ per share), capped by free cash: lots of 100
    under integer sizing; 0.0 when that is below MIN_CONTRACTS contracts (no trade)."""
    budget = min(dollars, max(book.st[0].cash - reserved_cash(book), 0.0))
    if p.integer != 0:
        n = 100.0 * np.floor(budget / (100.0 * price))
    else:
        n = budget / price
    if not (n / 100.0 >= MIN_CONTRACTS):
        return 0.0
    return n


@njit(cache=True, nogil=True, _nrt=False)
def buy_shares(t, m, u, equity, mk, rules, book, out):
    """covered_call: buy shares of u with position_fraction x equity / n_su ($), capped by free
    cash, at the close plus slippage_per_share; lots of 100 under integer sizing."""
    p = rules.p[0]
    price = mk.spot[t, u] + p.slippage
    st = book.st[0]
    shares = _shares_for(p.position_fraction * equity / rules.su.shape[0], price, p, book)
    if shares == 0.0:
        return
    st.cash -= shares * price
    h = book.hold[u]
    h.shares += shares
    h.price = price
    h.cycle = 0.0
    h.call_failed = 0
    st.epoch += 1
    if p.log != 0:
        log_event(t, (np.int64(Action.BUY_SHARES), np.int64(Reason.ENTRY), u, NONE, NONE),
                  (math.nan, math.nan, shares / 100.0, price, math.nan), mk, rules, book, out)


@njit(cache=True, nogil=True, _nrt=False)
def rebalance_shares(t, m, u, equity, mk, rules, book, out):
    """covered_call with sizing.rebalance, shares of u held and no call open on u: trade them
    toward position_fraction x equity / n_su ($ at the close S). Short of it by `gap`: buy with
    min(gap, free cash) at S + slippage_per_share (as `buy_shares`); above it: sell shares worth
    the excess at S, filled at S - slippage_per_share, realising (fill - average cost) each.
    Under integer sizing both are rounded toward zero to lots of 100 (no trade inside a lot)."""
    p = rules.p[0]
    s = mk.spot[t, u]
    h = book.hold[u]
    st = book.st[0]
    gap = p.position_fraction * equity / rules.su.shape[0] - h.shares * s
    integer = p.integer != 0
    if gap > 0.0:
        price = s + p.slippage
        n = _shares_for(gap, price, p, book)
        if n == 0.0:
            return
        st.cash -= n * price
        total = h.shares + n
        # average cost; the cycle premium (per share) is spread over the larger holding
        h.price = (h.price * h.shares + price * n) / total
        h.cycle = h.cycle * (h.shares / total)
        h.shares = total
        act = Action.BUY_SHARES
    else:
        price = max(s - p.slippage, 0.0)
        if integer:
            n = 100.0 * np.floor(-gap / (100.0 * s))
        else:
            n = -gap / s
        n = min(n, h.shares)
        if not (n / 100.0 >= MIN_CONTRACTS):
            return
        st.cash += n * price
        book_realised((price - h.price) * n, m, out)
        h.shares -= n
        if h.shares < SHARE_DUST:
            h.shares = 0.0
        act = Action.SELL_SHARES
    st.epoch += 1
    if p.log != 0:
        log_event(t, (np.int64(act), np.int64(Reason.REBALANCE), u, NONE, NONE),
                  (math.nan, math.nan, n / 100.0, price, math.nan), mk, rules, book, out)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def want(u, p, book):
    """What underlying u wants now: WANT_NOTHING, WANT_SIZED or WANT_CALL (p: RULES_DT)."""
    kind = p.kind
    pos = book.pos
    n_open = 0
    has_call = False
    for i in range(book.st[0].n_open):
        if pos[i].u == u:
            n_open += 1
            if pos[i].leg == Leg.CALL:
                has_call = True
    if kind == Kind.SPREAD:
        return WANT_SIZED if n_open < p.max_open else WANT_NOTHING
    shares = book.hold[u].shares
    if n_open == 0 and shares == 0.0:
        return WANT_SIZED
    if p.sells_calls != 0 and shares > 0.0 and not has_call:
        return WANT_CALL
    return WANT_NOTHING


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def entries(t, m, mk, rules, book, out):
    """Step 5: new positions per underlying in strategy order, sized on the equity marked now.

    A trade on one underlying never changes what another one wants, so `want` is asked twice.
    """
    p = rules.p[0]
    su = rules.su
    sized = False
    for j in range(su.shape[0]):
        w = want(su[j], p, book)
        if w == WANT_SIZED or (w == WANT_CALL and p.rebalance != 0):
            sized = True
    equity = math.nan
    if sized:
        equity = mark(t, mk, rules, book)
    for j in range(su.shape[0]):
        u = su[j]
        w = want(u, p, book)
        if w == WANT_SIZED:
            if p.kind == Kind.SPREAD:
                open_spread(t, m, u, equity, mk, rules, book, out)
            elif p.kind == Kind.COVERED_CALL:
                buy_shares(t, m, u, equity, mk, rules, book, out)
                if want(u, p, book) == WANT_CALL:
                    sell_call(t, m, u, mk, rules, book, out)
            else:
                sell_put(t, m, u, equity, mk, rules, book, out)
        elif w == WANT_CALL:
            if p.rebalance != 0:
                rebalance_shares(t, m, u, equity, mk, rules, book, out)
                if want(u, p, book) != WANT_CALL:
                    continue
            sell_call(t, m, u, mk, rules, book, out)


@njit(cache=True, nogil=True, _nrt=False)
def buy_and_hold(t, mk, rules, book):
    """t = 0: equity split equally over the strategy's underlyings, fractional shares, no costs."""
    equity = mark_fn(t, mk, rules, book)
    su = rules.su
    alloc = equity / su.shape[0]
    st = book.st[0]
    for j in range(su.shape[0]):
        u = su[j]
        h = book.hold[u]
        h.shares += alloc / mk.spot[t, u]
        h.price = mk.spot[t, u]
        st.cash -= alloc
