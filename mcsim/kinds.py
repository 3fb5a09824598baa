"""The one registry of strategy kinds and baselines (pure Python: no numba, no pandas).

Scenario parsing, the engine, metrics, plots and the CLI import their lists from here; the
strategy kernels see a kind as its `Kind` code (an IntEnum used as a global constant) plus the
flags computed from this table in `mcsim.strategies.params.to_kernel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["Kind", "KindInfo", "KINDS", "STRATEGY_KINDS", "BASELINE_NAMES", "kind_info"]


class Kind(IntEnum):
    """Strategy kinds, as the kernels see them."""

    WHEEL = 0
    PUT_WRITE = 1
    SPREAD = 2
    BUY_HOLD = 3
    CASH = 4
    COVERED_CALL = 5


@dataclass(frozen=True)
class KindInfo:
    """What a kind is: its kernel code and the properties the kernels branch on.

    `put_table` / `call_table`: the scenario tables holding its option rules (None: none);
    `has_options`: it trades options (open positions, expiries, management);
    `holds_shares`: it can hold shares (dividends are paid on them);
    `cash_settle`: its ITM short options settle in cash at expiry (no shares change hands);
    `tracks_cycle`: its option sales and buy-backs move the cycle premium behind `cost_basis`;
    `buys_shares`: it buys its shares itself (lots of 100 under integer sizing) on entry days
    when it holds none; `call_settle` / `min_strike`: defaults of its `call` table;
    `extra_keys`: strategy-level TOML keys of its own (besides the tables above);
    `sizing_keys`: keys of its own in `[strategies.sizing]` (covered_call: `rebalance`, trade
    the shares back to position_fraction of equity on entry days when no call is open);
    `user`: a `[[strategies]]` entry may name it; `baseline`: added to every scenario.
    """

    name: str
    code: Kind
    put_table: str | None = None
    call_table: str | None = None
    has_options: bool = False
    holds_shares: bool = False
    cash_settle: bool = False
    tracks_cycle: bool = False
    buys_shares: bool = False
    call_settle: str = "shares"
    min_strike: str = "cost_basis"
    extra_keys: tuple[str, ...] = ()
    sizing_keys: tuple[str, ...] = ()
    user: bool = True
    baseline: bool = False
    default_position_fraction: float = 1.0


KINDS: dict[str, KindInfo] = {k.name: k for k in (
    KindInfo("wheel", Kind.WHEEL, put_table="put", call_table="call", has_options=True,
             holds_shares=True, tracks_cycle=True),
    KindInfo("bull_put_spread", Kind.SPREAD, put_table="short_put", has_options=True,
             extra_keys=("width", "width_pct"), default_position_fraction=0.02),
    KindInfo("put_write", Kind.PUT_WRITE, put_table="put", has_options=True, cash_settle=True),
    KindInfo("covered_call", Kind.COVERED_CALL, call_table="call", has_options=True,
             holds_shares=True, tracks_cycle=True, buys_shares=True, call_settle="cash",
             min_strike="none", sizing_keys=("rebalance",)),
    KindInfo("buy_and_hold", Kind.BUY_HOLD, holds_shares=True, baseline=True),
    KindInfo("cash", Kind.CASH, user=False, baseline=True),
)}

STRATEGY_KINDS = tuple(k for k, v in KINDS.items() if v.user)
BASELINE_NAMES = tuple(k for k, v in KINDS.items() if v.baseline)


def kind_info(kind: str) -> KindInfo:
    return KINDS[kind]
