"""Named layouts of the strategy kernels: enums, record dtypes (units per field), bundles.

Kernels take a few NamedTuple bundles of record arrays, so a signature reads
``(t, m, i, mk, rules, book, out)`` and a field reads ``book.pos[i].strike``:

* ``Market`` (mk): one path's rows of the market;
* ``Rules``: the strategy's parameters ``p[0]`` (RULES_DT), its underlyings ``su``, the
  per-underlying table ``und`` (UND_DT), smile skews ``skew[u, regime]``, the tau tables
  ``tab[u, k]`` (TAU_DT) over k steps to expiry and the IV term structure ``ts[u, regime]``;
* ``Book``: open positions ``pos`` (POS_DT, opening order), holdings ``hold[u]`` (HOLD_DT) and
  the scalars ``st[0]`` (STATE_DT: cash, counters);
* ``Out``: the path's row ``path[0]`` (PATH_DT), its months ``month`` (MONTH_DT), the log
  (LOG_DT).

Enums are used inside kernels only as global constants (a member passed as an argument from
Python would miss numba's cache in every new process). Flags are int8 (records hold no bools).
Table sizes are the dtypes' own; nothing is counted by hand. Record arrays are made with
`records` (a zeroed `np.recarray` in Python, a plain record array in compiled code: numba types
both alike), so the kernels also run uncompiled (NUMBA_DISABLE_JIT=1) with `.field` access.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import numpy as np
from numba.extending import overload
from numba.np.numpy_support import as_dtype

from mcsim.kinds import Kind

__all__ = ["Kind", "Leg", "Action", "StrikeRule", "MinStrike", "RollWhen", "HighIV", "Width",
           "Reason", "RollStrike", "RULES_DT", "UND_DT", "TAU_DT", "POS_DT", "HOLD_DT", "STATE_DT", "PATH_DT",
           "MONTH_DT", "LOG_DT", "Market", "Rules", "Book", "Out", "SHARE_DUST", "MIN_CONTRACTS",
           "NO", "YES", "NONE", "records"]


class Leg(IntEnum):
    """What an open position is (the log's `kind`)."""

    PUT = 0
    CALL = 1
    SPREAD = 2


LEG_NAMES = tuple(x.name.lower() for x in Leg)


class Action(IntEnum):
    """Trade-log actions (docs/semantics.md); names as logged."""

    SELL_PUT = 0
    SELL_CALL = 1
    OPEN_SPREAD = 2
    BUY_TO_CLOSE = 3
    CLOSE_SPREAD = 4
    EXPIRE_WORTHLESS = 5
    ASSIGNED = 6
    CALLED_AWAY = 7
    EARLY_ASSIGNED = 8
    ROLL = 9
    WITHDRAW = 10
    END = 11
    BUY_SHARES = 12
    SELL_SHARES = 13


ACTION_NAMES = tuple(x.name.lower() for x in Action)


class StrikeRule(IntEnum):
    DELTA = 0
    OTM = 1


class MinStrike(IntEnum):
    COST_BASIS = 0
    NONE = 1
    PURCHASE_PRICE = 2


class RollWhen(IntEnum):
    OFF = 0
    ITM = 1
    DELTA = 2


class HighIV(IntEnum):
    OFF = 0
    ATM = 1
    RANK = 2


class Width(IntEnum):
    ABS = 0
    PCT = 1


class RollStrike(IntEnum):
    CREDIT = 0   # the furthest listed strike whose roll nets roll_min_credit
    RULE = 1     # the entry rule's strike, capped at the old strike


class Reason(IntEnum):
    """Why a trade-log event happened (the log's `reason`); closes bump the matching counter."""

    ENTRY = 0
    PROFIT_TAKE = 1
    STOP_LOSS = 2
    CLOSE_DTE = 3
    ROLL_ITM = 4
    ROLL_DELTA = 5
    MAX_ROLLS = 6
    UNABLE_TO_ROLL = 7
    EXPIRY = 8
    EARLY_EXERCISE = 9
    WITHDRAWAL = 10
    END = 11
    REBALANCE = 12   # covered_call with sizing.rebalance: shares traded back to position_fraction


REASON_NAMES = tuple(x.name.lower() for x in Reason)


# Strategy parameters, one record. Steps are trading steps; money $; $/share where noted.
RULES_DT = np.dtype([
    ("kind", np.int64),              # Kind
    ("has_options", np.int64),       # 1: trades options (positions, expiries)
    ("holds_shares", np.int64),      # 1: may hold shares (dividends paid)
    ("reinvest", np.int64),          # 1: dividends buy shares (buy-and-hold)
    ("cash_settle", np.int64),       # 1: an ITM short option is settled in cash at intrinsic
    ("tracks_cycle", np.int64),      # 1: sales and buy-backs move the cycle premium (cost basis)
    ("sells_calls", np.int64),       # 1: sells covered calls on the shares it holds
    ("manage", np.int64),            # 1: any management rule is on
    ("withdrawals", np.int64),       # 1: a monthly withdrawal is set
    ("n_steps", np.int64),
    ("steps_per_year", np.int64),
    ("month", np.int64),             # steps per month
    ("n_months", np.int64),
    ("entry_every", np.int64),       # steps
    ("put_rule", np.int64),          # StrikeRule
    ("put_dte", np.int64),           # steps (>= 1)
    ("call_rule", np.int64),         # StrikeRule
    ("call_dte", np.int64),          # steps (>= 1)
    ("min_strike", np.int64),        # MinStrike
    ("width_mode", np.int64),        # Width
    ("close_dte_on", np.int64),
    ("close_dte", np.int64),         # steps
    ("roll_when", np.int64),         # RollWhen
    ("roll_dte", np.int64),          # steps
    ("roll_out", np.int64),          # steps (>= 1)
    ("roll_credit_only", np.int64),
    ("roll_strike", np.int64),       # RollStrike
    ("max_rolls", np.int64),
    ("close_if_unable", np.int64),
    ("early", np.int64),             # early assignment on
    ("hiv_mode", np.int64),          # HighIV
    ("hiv_dte", np.int64),           # steps, -1 when not given
    ("integer", np.int64),           # 1: integer contracts
    ("max_open", np.int64),          # positions per underlying
    ("cap", np.int64),               # position slots
    ("log", np.int64),               # 1: write the event log (replay)
    ("n_su", np.int64),              # the strategy's underlyings
    ("tab_len", np.int64),           # tau tables hold k = 0..tab_len-1
    ("put_value", np.float64),       # delta (absolute) or otm_pct
    ("call_value", np.float64),
    ("width", np.float64),           # $, or fraction of spot
    ("profit_take", np.float64),     # fraction of credit
    ("stop_loss", np.float64),       # multiple of credit
    ("roll_delta", np.float64),
    ("roll_min_credit", np.float64), # $/share, after costs
    ("put_min_credit", np.float64),  # $/share: no put (spread: net credit) sold for less
    ("call_min_credit", np.float64), # $/share: no call sold for less
    ("ea_time_value", np.float64),   # early assignment threshold, $/share
    ("hiv_threshold", np.float64),
    ("hiv_put_delta", np.float64),   # nan when not given
    ("hiv_call_delta", np.float64),
    ("position_fraction", np.float64),
    ("commission", np.float64),      # $ per contract per leg
    ("slippage", np.float64),        # $ per share
    ("slippage_pct", np.float64),    # fraction of mid
    ("assignment_fee", np.float64),  # $ per contract
    ("rate", np.float64),            # risk-free, annual continuous
    ("er", np.float64),              # exp(r dt) - 1
    ("initial_equity", np.float64),  # $
    ("withdrawal", np.float64),      # $ per month
    ("withdrawal_pct", np.float64),  # fraction of equity per month
    ("rebalance", np.int64),         # 1: covered_call trades its shares to position_fraction x
                                     # equity ($ at the close) on entry days with no call open
], align=True)

# Per market underlying.
UND_DT = np.dtype([
    ("div", np.float64),             # dividend yield q
    ("eqdt1", np.float64),           # exp(q dt) - 1
    ("eqdt", np.float64),            # exp(q dt)
    ("strike_step", np.float64),     # $
    ("iv_floor", np.float64),
    ("expiry_every", np.int64),      # steps between listed expiries
    ("american", np.int64),          # 1: American-style (marks >= intrinsic, early exercise)
    ("term", np.int64),              # 1: stochastic vol: ATM IV has a term structure (ts, tab.term)
    ("kappa", np.float64),           # variance mean reversion, per year (term only)
    ("b30", np.float64),             # B(30/365) = (1 - exp(-kappa tau)) / (kappa tau) (term only)
], align=True)

# Per (underlying, k steps to expiry), tau = k / steps_per_year years.
TAU_DT = np.dtype([
    ("sqt", np.float64),             # sqrt(tau)
    ("df_r", np.float64),            # exp(-r tau)
    ("df_q", np.float64),            # exp(-q tau)
    ("drift", np.float64),           # (r - q) tau
    ("isqt", np.float64),            # 1 / sqrt(tau), 0 at k = 0
    ("term", np.float64),            # B(tau) / B(30/365): the term-structure weight (1: flat)
], align=True)

# An open position (slot), in opening order.
POS_DT = np.dtype([
    ("u", np.int64),                 # market underlying index
    ("leg", np.int64),               # Leg
    ("expiry", np.int64),            # step
    ("rolls", np.int64),
    ("mid_t", np.int64),             # step of the cached mids, -1 none
    ("strike", np.float64),          # short strike, $/share
    ("long_strike", np.float64),     # spread's long strike, nan otherwise
    ("contracts", np.float64),
    ("credit", np.float64),          # gross credit per share (spread: net)
    ("open_cost", np.float64),       # commissions paid to open, $
    ("mid_s", np.float64),           # cached short-leg mid, $/share
    ("mid_l", np.float64),           # cached long-leg mid (spread)
    ("log_ks", np.float64),          # ln strike
    ("log_kl", np.float64),          # ln long_strike, 0 when none
], align=True)

# Holdings per market underlying.
HOLD_DT = np.dtype([
    ("shares", np.float64),
    ("price", np.float64),           # purchase price / average cost, $/share
    ("cycle", np.float64),           # wheel cycle premium, $/share
    ("log_s", np.float64),           # ln S[log_t, u]
    ("log_t", np.int64),             # step of log_s, -1 none
    ("call_failed", np.int8),        # 1 after a covered call could not be sold
], align=True)

# Scalars of the book.
STATE_DT = np.dtype([
    ("cash", np.float64),            # $, collateral included
    ("n_open", np.int64),            # open positions
    ("n_log", np.int64),             # log rows wanted (written while < capacity)
    ("epoch", np.int64),             # bumped whenever a position opens, ends or rolls
], align=True)

# Per-path outputs; a field named like a per_path column is copied to it (engine).
PATH_DT = np.dtype([
    ("final_equity", np.float64),
    ("min_equity", np.float64),
    ("max_drawdown", np.float64),          # <= 0, fraction
    ("max_drawdown_days", np.int64),
    ("premium_collected", np.float64),     # $
    ("net_premium_collected", np.float64), # $: sale credits - buy-back debits
    ("realised_pnl", np.float64),          # $
    ("options_sold", np.int64),
    ("puts_sold", np.int64),
    ("calls_sold", np.int64),
    ("spreads_sold", np.int64),
    ("assignments", np.int64),
    ("called_away", np.int64),
    ("early_assignments", np.int64),
    ("expired_worthless", np.int64),
    ("rolls", np.int64),
    ("profit_takes", np.int64),
    ("stop_losses", np.int64),
    ("closes", np.int64),                  # close_dte + max_rolls + unable_to_roll closes
    ("close_dte_closes", np.int64),
    ("max_rolls_closes", np.int64),
    ("unable_to_roll_closes", np.int64),
    ("trades_won", np.int64),
    ("trades_lost", np.int64),
    ("sum_win", np.float64),               # $ over won trades
    ("sum_loss", np.float64),              # $ over lost trades
    ("days_in_shares", np.int64),
    ("capital_used", np.float64),          # mean share of equity over steps 1..n
    ("withdrawn", np.float64),             # $
    ("shortfalls", np.int64),
    ("first_shortfall_month", np.int64),   # -1 none
    ("equity0", np.float64),               # equity at step 0 after its entries, $
], align=True)

# Per (path, month).
MONTH_DT = np.dtype([
    ("premium", np.float64),         # $
    ("net_premium", np.float64),     # $: sale credits - buy-back debits
    ("realised_pnl", np.float64),    # $
    ("withdrawn", np.float64),       # $
    ("shortfall", np.int8),
    ("eq_start", np.float64),        # $
    ("eq_end", np.float64),          # $
], align=True)

# Replay log rows.
LOG_DT = np.dtype([
    ("step", np.int64),
    ("action", np.int64),            # Action
    ("reason", np.int64),            # Reason
    ("underlying", np.int64),        # market index, -1 none
    ("kind", np.int64),              # Leg, -1 none
    ("strike", np.float64),          # short strike, $/share
    ("long_strike", np.float64),     # spread's long strike, nan otherwise
    ("expiry", np.int64),            # step, -1 none
    ("contracts", np.float64),
    ("price", np.float64),           # $/share (withdraw: $ paid; end: final equity)
    ("spot", np.float64),
    ("iv", np.float64),
    ("cash", np.float64),            # $ after the event
    ("equity", np.float64),          # $ after the event, marked at mid
    ("shares", np.float64),          # shares of the underlying after the event (nan: none)
    ("cost_basis", np.float64),      # $/share after the event (nan: no shares)
], align=True)


def records(shape, dt):
    """Zeroed record array of dtype dt (a recarray, so ``a[i].field`` works in plain Python)."""
    return np.zeros(shape, dt).view(np.recarray)


@overload(records)
def _records_nb(shape, dt):
    d = as_dtype(dt.dtype)

    def impl(shape, dt):
        return np.zeros(shape, d)
    return impl


class Market(NamedTuple):
    """One path's market rows: spot (n+1, n_u) $, atm (n+1, n_u) ATM IV, reg (n+1,) int8."""

    spot: np.ndarray
    atm: np.ndarray
    reg: np.ndarray


class Rules(NamedTuple):
    p: np.ndarray        # RULES_DT (1,)
    su: np.ndarray       # int64 (n_su,): market index of the strategy's j-th underlying
    und: np.ndarray      # UND_DT (n_u,)
    skew: np.ndarray     # float64 (n_u, n_regimes)
    tab: np.ndarray      # TAU_DT (n_u, tab_len)
    ts: np.ndarray       # float64 (n_u, n_regimes, 2): term structure (theta + jump var, premium)


class Book(NamedTuple):
    pos: np.ndarray      # POS_DT (cap,)
    hold: np.ndarray     # HOLD_DT (n_u,)
    st: np.ndarray       # STATE_DT (1,)


class Out(NamedTuple):
    path: np.ndarray     # PATH_DT (1,): this path's row
    month: np.ndarray    # MONTH_DT (n_months,)
    log: np.ndarray      # LOG_DT (capacity,)


# a remainder of shares below this (after a sale of all of them) is set to 0
SHARE_DUST = 1e-6
# a new position of fewer contracts is no trade (fractional sizing dust)
MIN_CONTRACTS = 1e-6

# Non-literal constants for call arguments: numba compiles a separate specialisation of the
# callee for every literal argument value; numpy scalars are typed as plain bool / int64.
NO = np.bool_(False)
YES = np.bool_(True)
NONE = np.int64(-1)
