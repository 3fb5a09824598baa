"""Integer codes shared by the strategy kernels and the Python layer around them.

Module-level ints are compile-time constants for numba. Layouts:

* ``ip`` (int64) / ``fp`` (float64): the flat parameter vectors of one strategy (``IP_*``, ``FP_*``),
  built by :func:`mcsim.strategies.params.to_kernel`; ``uf[u, U_*]`` per-underlying floats.
* ``out_path[p, F_*]``: per-path scalars (money in dollars, counts as floats).
* ``out_month[p, m, M_*]``: per-(path, month) rows.
* ``log[i, L_*]``: the replay event log, one row per event.
"""

# strategy kinds
KIND_WHEEL = 0
KIND_PUT_WRITE = 1
KIND_SPREAD = 2
KIND_BUY_HOLD = 3
KIND_CASH = 4
KIND_NAMES = ("wheel", "put_write", "bull_put_spread", "buy_and_hold", "cash")

# option position kinds
OPT_PUT = 0
OPT_CALL = 1
OPT_SPREAD = 2
OPT_NAMES = ("put", "call", "spread")

# trade log actions
ACT_SELL_PUT = 0
ACT_SELL_CALL = 1
ACT_OPEN_SPREAD = 2
ACT_BUY_TO_CLOSE = 3
ACT_CLOSE_SPREAD = 4
ACT_EXPIRE_WORTHLESS = 5
ACT_ASSIGNED = 6
ACT_CALLED_AWAY = 7
ACT_EARLY_ASSIGNED = 8
ACT_ROLL = 9
ACT_WITHDRAW = 10
ACT_END = 11
ACTION_NAMES = (
    "sell_put", "sell_call", "open_spread", "buy_to_close", "close_spread", "expire_worthless",
    "assigned", "called_away", "early_assigned", "roll", "withdraw", "end",
)

# rule choices
RULE_DELTA = 0
RULE_OTM = 1
MIN_COST_BASIS = 0
MIN_NONE = 1
MIN_PURCHASE = 2
ROLL_OFF = 0
ROLL_ITM = 1
ROLL_DELTA = 2
HIV_OFF = 0
HIV_ATM = 1
HIV_RANK = 2
WIDTH_ABS = 0
WIDTH_PCT = 1

# why a position is closed (which counter it bumps)
WHY_STOP = 0
WHY_PROFIT = 1
WHY_CLOSE = 2

# ip: int parameters
IP_KIND = 0
IP_N_STEPS = 1
IP_SPY = 2            # steps per year
IP_MONTH = 3          # M, steps per month
IP_N_MONTHS = 4
IP_ENTRY_EVERY = 5    # trading steps
IP_PUT_MODE = 6       # RULE_*
IP_PUT_DTE = 7        # trading steps (>= 1)
IP_CALL_MODE = 8
IP_CALL_DTE = 9
IP_MIN_STRIKE = 10    # MIN_*
IP_WIDTH_MODE = 11    # WIDTH_*
IP_CLOSE_DTE_ON = 12
IP_CLOSE_DTE = 13     # trading steps
IP_ROLL_WHEN = 14     # ROLL_*
IP_ROLL_DTE = 15      # trading steps
IP_ROLL_OUT = 16      # trading steps (>= 1)
IP_ROLL_CREDIT_ONLY = 17
IP_MAX_ROLLS = 18
IP_CLOSE_IF_UNABLE = 19
IP_EARLY = 20
IP_HIV_MODE = 21      # HIV_*
IP_HIV_DTE = 22       # trading steps, -1 when not given
IP_INTEGER = 23       # 1: integer contracts
IP_MAX_OPEN = 24      # per underlying
IP_CAP = 25           # position slots
IP_LOG = 26           # 1: write the event log (replay)
IP_N_SU = 27          # number of the strategy's underlyings
IP_TAB_LEN = 28       # L: tables below hold k = e - t = 0..L-1 steps to expiry
IP_TAB = 29           # uf[u, ip[IP_TAB] + 5 k + j], the tables interleaved by k: j = 0 sqrt(k / spy),
                      # 1 exp(-r k / spy), 2 exp(-q_u k / spy), 3 (r - q_u) k / spy, 4 1 / sqrt(k / spy)
                      # (0 at k = 0)
IP_SU0 = 30           # ip[IP_SU0 + j]: market index of the strategy's j-th underlying
N_IP = 30             # fixed part; ip has N_IP + n_su entries

# fp: float parameters
FP_PUT_VAL = 0        # delta (absolute) or otm_pct
FP_CALL_VAL = 1
FP_WIDTH = 2          # dollars, or fraction of spot
FP_PROFIT_TAKE = 3
FP_STOP_LOSS = 4
FP_ROLL_DELTA = 5
FP_EA_TV = 6          # early assignment time value, $ per share
FP_HIV_THR = 7
FP_HIV_PUT_DELTA = 8  # nan when not given
FP_HIV_CALL_DELTA = 9
FP_PF = 10            # position_fraction
FP_COMM = 11          # $ per contract per leg
FP_SLIP = 12          # $ per share
FP_SLIP_PCT = 13      # fraction of mid
FP_FEE = 14           # assignment fee, $ per contract
FP_RATE = 15          # risk-free rate, annual continuous
FP_ER = 16            # exp(r dt) - 1
FP_INITIAL = 17       # initial equity, $
FP_WD = 18            # monthly withdrawal, $
FP_WD_PCT = 19        # monthly withdrawal, fraction of equity
N_FP = 20

# per-underlying float table und_f[u, U_*] (market underlying index u)
U_DIV = 0             # dividend yield q
U_EQDT1 = 1           # exp(q dt) - 1
U_EQDT = 2            # exp(q dt)
U_STEP = 3            # strike grid step, $
U_FLOOR = 4           # IV floor
U_EVERY = 5           # listed-expiry spacing, trading steps (integral)
U_SKEW0 = 6           # uf[u, U_SKEW0 + g]: smile skew of regime g
N_UF = 6              # fixed part; uf has N_UF + n_regimes columns, then the IP_TAB_* tables

# per-path outputs
F_FINAL = 0
F_MIN_EQ = 1
F_MAX_DD = 2
F_DD_DAYS = 3
F_PREMIUM = 4
F_REALISED = 5
F_OPTIONS_SOLD = 6
F_PUTS_SOLD = 7
F_CALLS_SOLD = 8
F_SPREADS_SOLD = 9
F_ASSIGNMENTS = 10
F_CALLED_AWAY = 11
F_EARLY = 12
F_EXPIRED = 13
F_ROLLS = 14
F_PROFIT_TAKES = 15
F_STOP_LOSSES = 16
F_CLOSES = 17
F_WON = 18
F_LOST = 19
F_SUM_WIN = 20
F_SUM_LOSS = 21
F_DAYS_SHARES = 22
F_CAPITAL_USED = 23   # mean over steps 1..n
F_WITHDRAWN = 24
F_SHORTFALLS = 25
F_FIRST_SHORTFALL = 26
F_EQ0 = 27            # equity at step 0 (after its entries)
N_F = 28

# per-(path, month) outputs
M_PREMIUM = 0
M_REALISED = 1
M_WITHDRAWN = 2
M_SHORTFALL = 3
M_EQ_START = 4
M_EQ_END = 5
N_M = 6

# replay log columns
L_STEP = 0
L_ACTION = 1
L_U = 2               # market underlying index, -1 for none
L_KIND = 3            # OPT_*, -1 for none
L_STRIKE = 4          # short strike, $ per share
L_EXPIRY = 5          # step, -1 for none
L_C = 6               # contracts
L_PRICE = 7           # $ per share (withdraw: $ paid; end: final equity)
L_SPOT = 8
L_IV = 9
L_CASH = 10
L_EQUITY = 11
N_L = 12

# position slots: int table pos_i[k, PI_*], float table pos_f[k, PF_*]
PI_U = 0
PI_KIND = 1
PI_EXP = 2
PI_ROLLS = 3
PI_MID_T = 4          # step at which the cached mids were computed, -1: none
N_PI = 5
PF_KS = 0             # short strike
PF_KL = 1             # long strike (spreads), nan otherwise
PF_C = 2              # contracts
PF_CREDIT = 3         # gross credit per share (spreads: net)
PF_OPEN_COST = 4      # commissions paid to open, $
PF_MID_S = 5          # cached mid of the short leg, $ per share
PF_MID_L = 6          # cached mid of the long leg (spreads)
PF_LOG_KS = 7         # ln(short strike)
PF_LOG_KL = 8         # ln(long strike), 0 when none
N_PF = 9

# holdings per market underlying hold[u, H_*]
H_SHARES = 0
H_PRICE = 1           # purchase price (wheel) or average cost (buy-and-hold), $ per share
H_CYCLE = 2           # wheel cycle premium, $ per share
H_LOG_S = 3           # ln S[t, u] cached for step H_LOG_T
H_LOG_T = 4
H_CALL_FAILED = 5     # 1 after a covered call could not be sold (the retry may pre-screen)
N_H = 6

# scalar state st[ST_*] (float) and cnt[C_*] (int)
ST_CASH = 0
N_ST = 1
C_OPEN = 0            # open positions
C_LOG = 1             # log rows written
C_EPOCH = 2           # bumped whenever a position opens, ends or rolls (strikes, sizes change)
N_C = 3

# a remainder of shares below this (after a sale of all of them) is set to 0
SHARE_DUST = 1e-6
# a new position of fewer contracts is no trade (fractional sizing dust)
MIN_CONTRACTS = 1e-6


# Non-literal constants for call arguments: numba compiles a separate specialisation of the
# callee for every literal argument value (True/False, each ACT_* code); numpy scalars are
# typed as plain bool / int64, so each callee is compiled once.
import numpy as _np  # noqa: E402

NO = _np.bool_(False)
YES = _np.bool_(True)
NONE = _np.int64(-1)
