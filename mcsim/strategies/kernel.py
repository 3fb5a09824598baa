"""The strategy kernel: one strategy over a range of paths, the step loop inside.

`run_paths` is the single compiled entry point for every kind (`mcsim.kinds`). It releases the
GIL, so the engine runs disjoint path ranges on plain threads; each path is computed on its own,
so results do not depend on how the paths are split. Order of events at each close follows
docs/semantics.md exactly; the bundles (`mk, rules, book, out`) are those of `layout`, per-kind
entries live in `entries`, position bookkeeping in `positions`.

Units: money in dollars, prices in $ per share, time in trading steps (options: years).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .entries import WANT_NOTHING, buy_and_hold, entries, want
from .layout import (
    HOLD_DT, MONTH_DT, NONE, PATH_DT, POS_DT, STATE_DT, YES, Action, Book, Leg, Market, Out,
    Reason, records,
)
from .positions import (
    assign, book_realised, exercised_early, log_event, manage_position, mark, mark_fn, pos_mids,
    reserved_cash, settle_expiry,
)


# A step counts towards max_drawdown_days when equity + withdrawals so far is below its running
# peak by more than this (relative): a withdrawal leaves the sum level, up to a few ulps of rounding.
PEAK_RTOL = 1e-12

# ------------------------------------------------------------------------------------------
# carry, withdrawals, early assignment


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _carry(t, m, any_shares, mk, rules, book, out):
    """Step 0: interest on cash and dividends on shares over (t-1, t] (buy-and-hold reinvests);
    `any_shares` False: no shares are held (dividends skipped)."""
    p = rules.p[0]
    reinvest = p.reinvest != 0
    st = book.st[0]
    cash = st.cash
    interest = cash * p.er
    div = 0.0
    su = rules.su
    for j in range(su.shape[0] if any_shares else 0):
        u = su[j]
        h = book.hold[u]
        sh = h.shares
        if sh != 0.0:
            und = rules.und[u]
            d = sh * mk.spot[t - 1, u] * und.eqdt1
            div += d
            if reinvest:
                new_sh = sh * und.eqdt
                h.price = (h.price * sh + d) / new_sh
                h.shares = new_sh
    if reinvest:
        st.cash = cash + interest
    else:
        st.cash = cash + interest + div
    book_realised(interest + div, m, out)


@njit(cache=True, nogil=True, _nrt=False)
def _withdraw(t, m, mk, rules, book, out):
    """Step 4 at a month end: pay the withdrawal from free cash (buy-and-hold: sell pro rata)."""
    p = rules.p[0]
    amount = p.withdrawal
    if not (amount > 0.0):
        amount = p.withdrawal_pct * mark_fn(t, mk, rules, book)
    if not (amount > 0.0):
        return
    su = rules.su
    st = book.st[0]
    if p.reinvest != 0:
        # buy-and-hold holds no free cash: it sells its holdings pro rata
        value = 0.0
        for j in range(su.shape[0]):
            u = su[j]
            value += book.hold[u].shares * mk.spot[t, u]
        pay = min(amount, max(value, 0.0))
        if pay > 0.0:
            f = pay / value
            gain = 0.0
            for j in range(su.shape[0]):
                u = su[j]
                h = book.hold[u]
                sold = h.shares * f
                gain += sold * (mk.spot[t, u] - h.price)
                h.shares -= sold
            book_realised(gain, m, out)
    else:
        free = st.cash - reserved_cash(book)
        pay = min(amount, max(free, 0.0))
        st.cash -= pay
    o = out.path[0]
    o.withdrawn += pay
    out.month[m].withdrawn += pay
    if pay < amount:
        o.shortfalls += 1
        out.month[m].shortfall = 1
        if o.first_shortfall_month < 0:
            o.first_shortfall_month = m
    if p.log != 0:
        log_event(t, (np.int64(Action.WITHDRAW), np.int64(Reason.WITHDRAWAL), NONE, NONE, NONE),
                  (math.nan, math.nan, 0.0, pay, math.nan), mk, rules, book, out)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _early_assignments(t, m, mk, rules, book, out):
    """Step 2: ITM American short legs whose American time value is below the threshold are
    assigned, in position order (European options never are)."""
    pos = book.pos
    st = book.st[0]
    i = np.int64(0)
    while i < st.n_open:
        u = pos[i].u
        if rules.und[u].american != 0:
            s = mk.spot[t, u]
            k = pos[i].strike
            if pos[i].leg == Leg.CALL:
                intrinsic = s - k
            else:
                intrinsic = k - s
            if intrinsic > 0.0 and exercised_early(t, i, intrinsic, mk, rules, book):
                assign(t, m, i, YES, mk, rules, book, out)
                continue
        i += 1


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _options_close(t, m, mk, rules, book, out):
    """Steps 1-3 for the open positions: expiries settle and every other position is priced
    once at this close (marks, rules, fills; one pass, as a settlement never changes another
    position's price), then early assignment and management."""
    p = rules.p[0]
    st = book.st[0]
    pos = book.pos
    i = np.int64(0)
    while i < st.n_open:
        if pos[i].expiry == t:
            settle_expiry(t, m, i, mk, rules, book, out)
        else:
            pos_mids(t, i, mk, rules, book)
            i += 1
    if p.early != 0:
        _early_assignments(t, m, mk, rules, book, out)
    if p.manage != 0:
        i = np.int64(0)
        while i < st.n_open:
            if not manage_position(t, m, i, mk, rules, book, out):
                i += 1


# ------------------------------------------------------------------------------------------
# the step loop


@njit(cache=True, nogil=True, _nrt=False)
def run_path(mk, rules, book, out):
    """One path, steps 0..n (docs/semantics.md "Order of events"): mk holds the path's market
    rows; fills out.path[0] and out.month (and out.log when rules.p[0].log), zeroed by the
    caller, as are the holdings."""
    p = rules.p[0]
    o = out.path[0]
    st = book.st[0]
    hold = book.hold
    su = rules.su
    spot = mk.spot
    o.first_shortfall_month = -1
    st.cash = p.initial_equity
    st.n_open = 0
    st.n_log = 0
    st.epoch = 0
    n = p.n_steps
    month = p.month
    n_months = p.n_months
    every = p.entry_every
    n_su = su.shape[0]
    options = p.has_options != 0
    withdrawals = p.withdrawals != 0
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
            if st.epoch != shares_epoch:
                # an option strategy's shares change only when a position ends (epoch moves)
                any_shares = not options
                for j in range(n_su):
                    if hold[su[j]].shares != 0.0:
                        any_shares = True
                if options:
                    shares_epoch = st.epoch
            _carry(t, m, any_shares, mk, rules, book, out)
        if options and st.n_open > 0:
            _options_close(t, m, mk, rules, book, out)
        if withdrawals and t == month_end:
            _withdraw(t, m, mk, rules, book, out)
        if t == next_entry and t < n:
            next_entry += every
            if options:
                # what `want` answers depends only on the open positions and the shares held,
                # which change only with the epoch: an idle answer holds until the epoch moves
                if st.epoch != idle_epoch:
                    wanted = False
                    for j in range(n_su):
                        if want(su[j], p, book) != WANT_NOTHING:
                            wanted = True
                    if not wanted:
                        idle_epoch = st.epoch
                    else:
                        entries(t, m, mk, rules, book, out)
            elif p.reinvest != 0 and t == 0:
                buy_and_hold(t, mk, rules, book)
        # step 6: mark, then the path statistics of daily equity; drawdowns on equity plus the
        # withdrawals paid so far (money paid out to the owner is not a loss)
        eq = mark(t, mk, rules, book)
        dd_eq = eq + o.withdrawn
        if t == 0:
            peak = dd_eq
            trough = dd_eq
            o.equity0 = eq
        if dd_eq > peak:
            # a new peak closes the drawdown episode: its depth is trough / old peak - 1 (peak >
            # 0, so this is the min of dd_eq / peak - 1 over the episode, one division per episode)
            if trough < peak:
                dd = trough / peak - 1.0
                if dd < max_dd:
                    max_dd = dd
            peak = dd_eq
            trough = dd_eq
        if dd_eq < trough:
            trough = dd_eq
        if dd_eq < peak * (1.0 - PEAK_RTOL):
            # below the peak by more than the rounding of the withdrawals paid so far (a
            # withdrawal leaves equity + withdrawals level, up to a few ulps)
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
                u = su[j]
                sh = hold[u].shares
                if sh > 0.0:
                    in_shares = True
                    exposure += sh * spot[t, u]
            if in_shares:
                days_sh += 1
            if options:
                if st.epoch != epoch:
                    # the same sum, recomputed only when the open positions changed
                    reserved = reserved_cash(book)
                    epoch = st.epoch
                exposure += reserved
            if eq > 0.0:
                cap_sum += exposure / eq
        if t == 0:
            out.month[0].eq_start = eq
        elif t == month_end:
            out.month[m].eq_end = eq
            if m + 1 < n_months:
                out.month[m + 1].eq_start = eq
        if t == n:
            out.month[n_months - 1].eq_end = eq
    if p.log != 0:
        log_event(n, (np.int64(Action.END), np.int64(Reason.END), NONE, NONE, NONE),
                  (math.nan, math.nan, 0.0, eq, math.nan), mk, rules, book, out)
    if trough < peak:
        dd = trough / peak - 1.0
        if dd < max_dd:
            max_dd = dd
    o.final_equity = eq
    o.min_equity = min_eq
    o.max_drawdown = max_dd
    o.max_drawdown_days = max_run
    o.days_in_shares = days_sh
    o.capital_used = cap_sum / n


@njit(cache=True, nogil=True)
def run_paths(spot, atm_iv, regime, p0, p1, rules, out_path, out_month, log):
    """Run one strategy on market rows [p0, p1).

    Parameters
    ----------
    spot, atm_iv : float64 (n_paths, n_steps + 1, n_u)
        Spot ($) and ATM IV (annualised) per path, step, underlying.
    regime : int8 (n_paths, n_steps + 1)
    p0, p1 : int
        Row range to run (the engine gives disjoint ranges to its threads).
    rules : layout.Rules
        The strategy's parameters and tables (`params.to_kernel`).
    out_path : PATH_DT (n_paths,)
        Per-path results, row p for market row p (zeroed here).
    out_month : MONTH_DT (n_paths, n_months)
    log : LOG_DT (capacity,)
        Event log of row p0 when rules.p[0].log == 1 (replay of one path).

    Returns the number of log rows the last path wanted (rows past the capacity are not
    written: the caller sizes the log again from this count).
    """
    n_u = spot.shape[2]
    cap = max(rules.p[0].cap, 1)
    book = Book(records(cap, POS_DT), records(n_u, HOLD_DT),
                records(1, STATE_DT))
    zero_path = records(1, PATH_DT)
    zero_month = records(1, MONTH_DT)
    zero_hold = records(1, HOLD_DT)
    zero_hold[0].log_t = -1
    for p in range(p0, p1):
        out_path[p] = zero_path[0]
        months = out_month[p]
        for k in range(months.shape[0]):
            months[k] = zero_month[0]
        for u in range(n_u):
            book.hold[u] = zero_hold[0]
        # the path's rows as views: the step loop indexes [t, u], not [p, t, u]
        run_path(Market(spot[p], atm_iv[p], regime[p]), rules, book,
                 Out(out_path[p:p + 1], months, log))
    return book.st[0].n_log
