"""Scenario files: TOML -> frozen, validated dataclasses.

A scenario is loaded once, validated once, and then only read. Every bad value raises
`ScenarioError` with a one-line message naming the dotted field (the same path `--set` takes),
the value and what is allowed. Units follow SPEC: rates, yields and vols are annualised
continuous decimals; `dte`-like keys are calendar days; every other `*_days` key counts trading
steps; money is dollars, option quantities per share.
"""

from __future__ import annotations

import copy
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from collections.abc import Iterable
from typing import Any

import numpy as np

from .errors import ScenarioError
from .market.source import (
    MarketSource, check_market_source, history_defaults, load_market_history, parse_market,
)
from .memory import MAX_PATHS
from .validation import (
    REQUIRED, Table, bad_value, check_correlation, check_matrix, check_stochastic, fmt_value, is_irreducible,
    stationary_distribution,
)

__all__ = [
    "Scenario",
    "RunConfig",
    "Regimes",
    "ImpliedVolModel",
    "StochasticVol",
    "Underlying",
    "Shock",
    "Costs",
    "OptionRule",
    "CallRule",
    "Manage",
    "HighIV",
    "Sizing",
    "StrategyRules",
    "load_scenario",
    "shipped_scenario",
    "parse_scenario",
    "apply_overrides",
    "calendar_days_to_steps",
    "is_valid_name",
    "parse_override_value",
    "MAX_STRATEGIES",
    "STRATEGY_KINDS",
    "BASELINE_NAMES",
]

from .kinds import BASELINE_NAMES, KINDS, STRATEGY_KINDS  # noqa: E402  (the one registry)
MIN_STRIKE_CHOICES = ("cost_basis", "none", "purchase_price")
ROLL_WHEN_CHOICES = ("off", "itm", "delta")
SETTLE_CHOICES = ("cash", "shares")
EXERCISE_CHOICES = ("american", "european")
ROLL_STRIKE_CHOICES = ("credit", "rule")
CONTRACTS_CHOICES = ("integer", "fractional")
_ARRAY_TABLES = ("underlyings", "strategies", "shocks")
TOP_KEYS = ("title", "run", "regimes", "market", "underlyings", "shocks", "correlation", "costs", "strategies")
_COMMON_STRATEGY_KEYS = ("name", "kind", "underlyings", "entry_every_days")
_OPTION_STRATEGY_KEYS = ("manage", "high_iv", "sizing")
# sizing keys only some kinds accept (`KindInfo.sizing_keys`)
_KIND_SIZING_KEYS = frozenset(k for v in KINDS.values() for k in v.sizing_keys)
STRATEGY_KEYS = {  # the keys a [[strategies]] entry may hold, by kind (from the registry)
    k: _COMMON_STRATEGY_KEYS + tuple(t for t in (v.put_table, v.call_table) if t) + v.extra_keys
    + (_OPTION_STRATEGY_KEYS if v.has_options else ("sizing",))
    for k, v in KINDS.items() if v.user
}


NAME_MAX = 64
NAME_RULE = (f"a name of 1-{NAME_MAX} printable characters without dots, slashes or backslashes, "
             "not starting or ending with a space")


def is_valid_name(name) -> bool:
    """Names of underlyings, strategies and regimes: printed, used in --set paths and file names."""
    return (isinstance(name, str) and 0 < len(name) <= NAME_MAX and name.isprintable()
            and not any(c in name for c in "./\\") and name == name.strip())


def _keys(cls) -> tuple[str, ...]:
    """The TOML keys of a table: the fields of the dataclass it loads into."""
    return tuple(f.name for f in fields(cls))


def calendar_days_to_steps(days: float, steps_per_year: int) -> int:
    """Calendar days (as traders quote `dte`) -> trading steps: round(days * steps_per_year / 365)."""
    return int(round(days * steps_per_year / 365.0))


# --------------------------------------------------------------------------------------------
# dataclasses


@dataclass(frozen=True)
class RunConfig:
    """`[run]`: horizon, path count, seed, money."""

    horizon_years: float = 5.0
    steps_per_year: int = 252
    paths: int = 20000
    seed: int = 2026
    initial_equity: float = 100000.0
    risk_free_rate: float = 0.04
    ruin_level: float = 0.5
    monthly_withdrawal: float = 0.0
    monthly_withdrawal_pct: float = 0.0
    chunk_paths: int = 8192

    @property
    def n_steps(self) -> int:
        """Number of trading steps simulated (step 0 = today is not counted)."""
        return max(1, int(round(self.horizon_years * self.steps_per_year)))

    @property
    def dt(self) -> float:
        """Years per step."""
        return 1.0 / self.steps_per_year

    @property
    def month_steps(self) -> int:
        """Steps per reporting month, M = round(steps_per_year / 12) (at least 1)."""
        return max(1, int(round(self.steps_per_year / 12)))


@dataclass(frozen=True)
class Regimes:
    """Market-wide Markov regimes, a discrete chain with one transition per trading step.

    `transition[i][j]` is the per-step probability of moving from regime i to j.
    """

    names: tuple[str, ...] = ("single",)
    transition: tuple[tuple[float, ...], ...] = ((1.0,),)
    initial_probs: tuple[float, ...] = (1.0,)
    initial: str = "stationary"

    @property
    def count(self) -> int:
        return len(self.names)

    def transition_matrix(self) -> np.ndarray:
        return np.array(self.transition, dtype=np.float64)

    def stationary(self) -> np.ndarray:
        """Stationary distribution of the per-step chain."""
        return stationary_distribution(self.transition_matrix())


@dataclass(frozen=True)
class ImpliedVolModel:
    """`[underlyings.implied_vol]`: ATM IV = total model vol + premium (+ shock response); smile skew."""

    premium: tuple[float, ...]
    skew: tuple[float, ...]
    floor: float = 0.01
    shock_beta: float = 0.0
    shock_half_life_days: float = 10.0


@dataclass(frozen=True)
class StochasticVol:
    """`[underlyings.stochastic_vol]`: Heston variance with leverage (annualised decimals).

    dv = mean_reversion (long_run_vol_r^2 - v) dt + vol_of_vol sqrt(v) dW_v, corr(dW_S, dW_v) =
    spot_vol_correlation; regimes switch the long-run level. `initial_vol` = sqrt(v_0); None:
    long_run_vol of each path's initial regime (drawn from the stationary distribution when
    regimes.initial = "stationary").
    """

    mean_reversion: float
    long_run_vol: tuple[float, ...]
    vol_of_vol: float
    spot_vol_correlation: float
    initial_vol: float | None = None

    def long_run_var(self) -> np.ndarray:
        return np.array(self.long_run_vol, dtype=np.float64) ** 2


@dataclass(frozen=True)
class Underlying:
    """One `[[underlyings]]` entry. Per-regime tuples have one value per regime.

    With `stochastic_vol`, `volatility` holds its long_run_vol (the level variance reverts to).
    """

    name: str
    spot: float
    dividend_yield: float
    expected_return: tuple[float, ...]
    volatility: tuple[float, ...]
    jump_intensity: tuple[float, ...]
    jump_mean: tuple[float, ...]
    jump_std: tuple[float, ...]
    strike_step: float
    expiry_every_days: int
    implied_vol: ImpliedVolModel
    stochastic_vol: StochasticVol | None = None
    exercise: str = "american"       # listed equity/ETF options; "european": index options

    def atm_iv_base(self) -> np.ndarray:
        """Per-regime ATM IV before shocks: sqrt(vol^2 + lambda (mu_J^2 + s_J^2)) + premium.

        With stochastic vol: the 30-day ATM IV when the variance sits at its long-run level."""
        vol = np.array(self.volatility)
        lam = np.array(self.jump_intensity)
        jm = np.array(self.jump_mean)
        js = np.array(self.jump_std)
        return np.hypot(vol, np.sqrt(lam * (jm**2 + js**2))) + np.array(self.implied_vol.premium)


@dataclass(frozen=True)
class Shock:
    """A deterministic stress at step `day` on every path: a log-return gap and an ATM IV add."""

    day: int
    underlyings: tuple[str, ...]
    log_return: float
    iv_add: float


@dataclass(frozen=True)
class Costs:
    """Scenario-wide trading costs. Commission per contract per leg; slippage per share."""

    commission_per_contract: float = 0.0
    slippage_per_share: float = 0.0
    slippage_pct: float = 0.0
    assignment_fee: float = 0.0


@dataclass(frozen=True)
class OptionRule:
    """Strike and expiry rule of a short option: `delta` (absolute) or `otm_pct`; `dte` calendar
    days; `min_credit` ($ per share): no sale whose fill (a spread: net credit) is below it."""

    delta: float | None = 0.30
    otm_pct: float | None = None
    dte: int = 35
    min_credit: float = 0.0


@dataclass(frozen=True)
class CallRule(OptionRule):
    """Covered-call rule (wheel, covered_call); `min_strike` = cost_basis | none |
    purchase_price; `settle` (covered_call) = cash | shares, None: the kind's default."""

    min_strike: str = "cost_basis"
    settle: str | None = None


@dataclass(frozen=True)
class Manage:
    """`[strategies.manage]`: rules for open short options (calendar days for *_dte, roll_out_days)."""

    profit_take: float = 0.0
    stop_loss: float = 0.0
    close_dte: int = 0
    roll_when: str = "off"
    roll_delta: float = 0.5
    roll_dte: int = 7
    roll_out_days: int = 28
    roll_credit_only: bool = True
    roll_strike: str = "credit"      # "credit": the furthest strike netting roll_min_credit; "rule"
    roll_min_credit: float = 0.0     # $ per share, after costs
    max_rolls: int = 3
    close_if_unable_to_roll: bool = False
    early_assignment: bool = True
    early_assignment_time_value: float = 0.05


@dataclass(frozen=True)
class HighIV:
    """`[strategies.high_iv]`: when IV is high, new positions use these deltas and dte."""

    atm_iv_above: float | None = None
    iv_rank_above: float | None = None
    put_delta: float | None = None
    call_delta: float | None = None
    dte: int | None = None


@dataclass(frozen=True)
class Sizing:
    """`[strategies.sizing]`: position_fraction of current equity per new position.

    `rebalance` (covered_call only, `KindInfo.sizing_keys`): on every entry day when no call is
    open on an underlying, buy or sell its shares so that they are worth position_fraction of
    equity (divided over the strategy's underlyings), as the Cboe BXM index reinvests."""

    position_fraction: float = 1.0
    contracts: str = "integer"
    max_open: int = 1
    rebalance: bool = False


@dataclass(frozen=True)
class StrategyRules:
    """One `[[strategies]]` entry: a portfolio starting at `run.initial_equity`."""

    name: str
    kind: str
    underlyings: tuple[str, ...]
    entry_every_days: int = 1
    put: OptionRule | None = None
    call: CallRule | None = None
    width: float | None = None
    width_pct: float | None = None
    manage: Manage = field(default_factory=Manage)
    high_iv: HighIV | None = None
    sizing: Sizing = field(default_factory=Sizing)


@dataclass(frozen=True)
class Scenario:
    """A validated scenario. `resolved` is the raw table after overrides (for provenance)."""

    title: str
    run: RunConfig
    regimes: Regimes
    underlyings: tuple[Underlying, ...]
    shocks: tuple[Shock, ...]
    correlation: tuple[tuple[tuple[float, ...], ...], ...]  # (n_regimes, n_u, n_u)
    costs: Costs
    strategies: tuple[StrategyRules, ...]
    common_jumps: bool = False  # correlation.common_jumps: jumps on the same steps everywhere
    market: MarketSource = field(default_factory=MarketSource)  # [market]: model, bootstrap, history
    resolved: dict = field(compare=False, repr=False, hash=False, default_factory=dict)
    source: str = field(compare=False, default="")

    def __post_init__(self):
        # also for a Scenario built (or `dataclasses.replace`d) in Python: the kernels' input
        # is checked here, once, and `to_kernel` only maps it
        for u in self.underlyings:
            if u.exercise not in EXERCISE_CHOICES:
                raise bad_value(f"underlyings.{u.name}.exercise", u.exercise, 'one of "american", "european"')
        for rules in self.strategies:
            check_strategy(rules, self)

    @property
    def n_steps(self) -> int:
        return self.run.n_steps

    @property
    def n_underlyings(self) -> int:
        return len(self.underlyings)

    @property
    def underlying_names(self) -> tuple[str, ...]:
        return tuple(u.name for u in self.underlyings)

    def underlying_index(self, name: str) -> int:
        return self.underlying_names.index(name)

    def strategy(self, name: str) -> StrategyRules:
        for s in self.strategies:
            if s.name == name:
                return s
        raise ScenarioError(
            f"strategy: {fmt_value(name)} is not allowed (must be one of {', '.join(s.name for s in self.strategies)})"
        )

    def correlation_array(self) -> np.ndarray:
        return np.array(self.correlation, dtype=np.float64)

    def to_dict(self) -> dict:
        """The resolved scenario table (file + overrides), JSON-serialisable."""
        return copy.deepcopy(self.resolved)


# --------------------------------------------------------------------------------------------
# loading


MAX_NESTING = 32       # tables and lists inside each other in a scenario file or a --set value
MAX_STRATEGIES = 1000  # [[strategies]] entries in one scenario (the baselines come on top)


def load_scenario(path: str | Path, overrides: Iterable[str] = ()) -> Scenario:
    """Read a TOML scenario, apply `"dotted.key=value"` overrides, validate.

    Parameters
    ----------
    path : str or Path
        The TOML file, or the name of a shipped scenario (`"spy_wheel"`, see `mcsim scenarios`)
        when no such file exists.
    overrides : iterable of str
        One assignment per item, e.g. ``["run.paths=5000", "underlyings.SPY.volatility=0.2"]``.

    Raises `ScenarioError` (one line: field, value, what is allowed) on any bad input,
    including a missing or unreadable file; `TypeError` for arguments of the wrong type.
    """
    if not isinstance(path, (str, Path)) or isinstance(path, bool):
        raise TypeError(f"load_scenario: path must be a str or pathlib.Path (got {type(path).__name__})")
    overrides = _override_list(overrides, "load_scenario")
    p = Path(path)
    if not p.is_file():
        p = shipped_scenario(path) or p
    if not p.is_file():
        raise ScenarioError(f"scenario: {fmt_value(str(path))} is not allowed (must be an existing TOML file "
                            f"or the name of a shipped scenario: `mcsim scenarios` lists them)")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"scenario: {fmt_value(str(path))} is not valid TOML ({_one_line(exc)})") from None
    except RecursionError:
        raise ScenarioError(f"scenario: {fmt_value(str(path))} is not allowed (nested deeper than "
                            f"{MAX_NESTING} tables or lists)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"scenario: {fmt_value(str(path))} cannot be read ({_one_line(exc)})") from None
    _check_depth(raw, f"scenario: {fmt_value(str(path))}")
    raw = apply_overrides(raw, overrides)
    return parse_scenario(raw, source=str(p))


def shipped_scenario(name: str | Path) -> Path | None:
    """The scenario file shipped with mcsim (package data, `mcsim/scenarios`) named `name`, with
    or without `.toml` (`"spy_wheel"`), or None; a name with a directory part is never looked up."""
    text = str(name)
    if not text or "/" in text or "\\" in text:
        return None
    d = Path(__file__).resolve().parent / "scenarios"
    for cand in (d / text, d / f"{text}.toml"):
        if cand.is_file():
            return cand
    return None


def _override_list(overrides, who: str) -> list[str]:
    if isinstance(overrides, (str, bytes)) or not isinstance(overrides, Iterable):
        raise TypeError(f"{who}: overrides must be a list of \"key=value\" strings, not a "
                        f"{type(overrides).__name__} (write [\"run.paths=5\"], not \"run.paths=5\")")
    out = list(overrides)
    for o in out:
        if not isinstance(o, str):
            raise TypeError(f"{who}: overrides must be strings (got {type(o).__name__}: {o!r})")
    return out


def _depth(v, limit: int, level: int = 0) -> int:
    """Nesting depth of lists and tables in `v` (stops counting past `limit`; no recursion)."""
    deepest = level
    stack = [(v, level)]
    while stack:
        x, d = stack.pop()
        if d > limit:
            return d
        deepest = max(deepest, d)
        if isinstance(x, dict):
            stack.extend((c, d + 1) for c in x.values())
        elif isinstance(x, list):
            stack.extend((c, d + 1) for c in x)
    return deepest


def _check_depth(v, what: str) -> None:
    if _depth(v, MAX_NESTING) > MAX_NESTING:
        raise ScenarioError(f"{what} is not allowed (nested deeper than {MAX_NESTING} tables or lists)")


def parse_override_value(text: str, flag: str = "--set") -> Any:
    """One `--set`/`--grid` value: TOML (`0.2`, `[0.1, 0.2]`, `"calm"`, `true`), or a bare word.

    Exactly one value: text that would make TOML read a second assignment (a newline, `#`
    comments hiding the rest) or any control character is refused with a one-line error.
    """
    if any(not c.isprintable() for c in text):
        raise ScenarioError(f"{flag}: {fmt_value(text)} is not allowed (must be one value on one line, "
                            f"without control characters)")
    try:
        table = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text  # a bare word: regimes.initial=calm
    except RecursionError:
        raise ScenarioError(f"{flag}: {fmt_value(text[:40] + '...')} is not allowed (nested deeper than "
                            f"{MAX_NESTING} lists)") from None
    if list(table) != ["v"]:
        raise ScenarioError(f"{flag}: {fmt_value(text)} is not allowed (one assignment per {flag})")
    _check_depth(table["v"], f"{flag}: {fmt_value(text[:40])}")
    return table["v"]


def apply_overrides(raw: dict, overrides: Iterable[str]) -> dict:
    """Return a copy of `raw` with `"dotted.key=value"` overrides applied.

    Entries of a table array are addressed by `name` (`underlyings.SPY.volatility=0.2`), or by
    index where they have none (`shocks.0.day=30`). Values are parsed as TOML; a bare word that is
    not valid TOML is taken as a string (`regimes.initial=calm`). One assignment per item.
    """
    overrides = _override_list(overrides, "apply_overrides")
    raw = copy.deepcopy(raw)
    for text in overrides:
        if "=" not in text:
            raise ScenarioError(f"--set: {fmt_value(text)} is not allowed (must be dotted.key=value)")
        key, value_text = text.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        if not key or any(not p for p in parts) or any(not c.isprintable() or c.isspace() for c in key):
            raise ScenarioError(f"--set: {fmt_value(text)} is not allowed (must be dotted.key=value)")
        value = parse_override_value(value_text.strip())
        node: Any = raw
        i = 0
        trail: list[str] = []
        while i < len(parts) - 1:
            part = parts[i]
            trail.append(part)
            if isinstance(node, dict) and part in _ARRAY_TABLES and node is raw:
                entries = node.get(part, [])
                if not isinstance(entries, list):
                    raise ScenarioError(f"{part}: must be an array of tables ([[{part}]])")
                ident = parts[i + 1]
                node = _find_entry(entries, ident, part)
                trail.append(ident)
                i += 2
                continue
            if not isinstance(node, dict):
                raise ScenarioError(f"{'.'.join(trail[:-1])}: {fmt_value(node)} is not a table; cannot set {key}")
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ScenarioError(f"{'.'.join(trail)}: {fmt_value(child)} is a value, not a table; cannot set {key}")
            node = child
            i += 1
        if i != len(parts) - 1 or not isinstance(node, dict):
            raise ScenarioError(f"--set: {fmt_value(key)} is not allowed (must name a key, not a table entry)")
        node[parts[-1]] = value
    return raw


def _find_entry(entries: list, ident: str, table: str) -> dict:
    for e in entries:
        if isinstance(e, dict) and e.get("name") == ident:
            return e
    if ident.isdigit() and int(ident) < len(entries) and isinstance(entries[int(ident)], dict):
        return entries[int(ident)]
    names = [str(e.get("name")) for e in entries if isinstance(e, dict) and "name" in e]
    allowed = ", ".join(names) if names else f"an index 0..{len(entries) - 1}" if entries else "none defined"
    raise ScenarioError(f"{table}.{ident}: no such entry (must be one of: {allowed})")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


# --------------------------------------------------------------------------------------------
# parsing


def parse_scenario(raw: dict, source: str = "", max_strategies: int | None = MAX_STRATEGIES) -> Scenario:
    """Validate a raw scenario table (as read from TOML) into a `Scenario`.

    `max_strategies` (None: no limit) bounds the [[strategies]] entries; a sweep's internal
    combined scenario is bounded by the memory estimate instead.
    """
    top = Table(raw, "")
    top.expect(TOP_KEYS)
    title = top.string("title", "")
    if len(title) > 500 or not title.isprintable():
        raise bad_value("title", title, "at most 500 printable characters on one line")
    run = _parse_run(Table(top.raw("run", {}), "run"))
    regimes = _parse_regimes(top.raw("regimes", None))
    n_reg = regimes.count
    market = parse_market(top.raw("market", None), source)

    ulist = top.raw("underlyings")
    if not isinstance(ulist, list) or not ulist:
        raise bad_value("underlyings", ulist, "a non-empty array of tables ([[underlyings]])")
    defaults = _market_defaults(market, ulist, run)
    underlyings: list[Underlying] = []
    for i, u in enumerate(ulist):
        und = _parse_underlying(u, i, n_reg, [x.name for x in underlyings], defaults)
        underlyings.append(und)
    names = tuple(u.name for u in underlyings)
    n_u = len(underlyings)

    shocks = tuple(_parse_shock(s, i, names, run.n_steps) for i, s in enumerate(_array(top, "shocks")))
    correlation, common_jumps = _parse_correlation(top.raw("correlation", None), n_u, n_reg, underlyings)
    check_market_source(market, run, shocks)
    costs = _parse_costs(Table(top.raw("costs", {}), "costs"))
    strategies: list[StrategyRules] = []
    entries = _array(top, "strategies")
    if max_strategies is not None and len(entries) > max_strategies:
        raise bad_value("strategies", f"{len(entries)} entries", f"at most {max_strategies} [[strategies]] entries")
    for i, s in enumerate(entries):
        strategies.append(_parse_strategy(s, i, names, [x.name for x in strategies], run))
    top.finish()
    return Scenario(
        title=title,
        run=run,
        regimes=regimes,
        underlyings=tuple(underlyings),
        shocks=shocks,
        correlation=correlation,
        costs=costs,
        strategies=tuple(strategies),
        common_jumps=common_jumps,
        market=market,
        resolved=copy.deepcopy(raw),
        source=source,
    )


def _array(top: Table, key: str) -> list:
    v = top.raw(key, [])
    if not isinstance(v, list):
        raise bad_value(key, v, f"an array of tables ([[{key}]])")
    return v


def _parse_run(t: Table) -> RunConfig:
    t.expect(_keys(RunConfig))
    d = RunConfig()
    run = RunConfig(
        horizon_years=t.number("horizon_years", d.horizon_years, lo=0.0, hi=100.0, lo_open=True),
        steps_per_year=t.integer("steps_per_year", d.steps_per_year, lo=1, hi=100000),
        paths=t.integer("paths", d.paths, lo=1, hi=MAX_PATHS),
        seed=t.integer("seed", d.seed, lo=0, hi=2**63 - 1),
        initial_equity=t.number("initial_equity", d.initial_equity, lo=0.0, lo_open=True),
        risk_free_rate=t.number("risk_free_rate", d.risk_free_rate, lo=-0.2, hi=1.0),
        ruin_level=t.number("ruin_level", d.ruin_level, lo=0.0, hi=1.0, lo_open=True, hi_open=True),
        monthly_withdrawal=t.number("monthly_withdrawal", d.monthly_withdrawal, lo=0.0),
        monthly_withdrawal_pct=t.number("monthly_withdrawal_pct", d.monthly_withdrawal_pct, lo=0.0, hi=1.0, hi_open=True),
        chunk_paths=t.integer("chunk_paths", d.chunk_paths, lo=1),
    )
    t.finish()
    if run.monthly_withdrawal > 0 and run.monthly_withdrawal_pct > 0:
        raise bad_value("run.monthly_withdrawal_pct", run.monthly_withdrawal_pct, "0 when run.monthly_withdrawal is set (choose one)")
    return run


def _parse_regimes(raw) -> Regimes:
    if raw is None:
        return Regimes()
    t = Table(raw, "regimes")
    t.expect(("names", "mean_duration_days", "exit_probabilities", "transition", "initial"))
    names = t.raw("names")
    if (
        not isinstance(names, list)
        or not names
        or any(not is_valid_name(x) for x in names)
        or len(set(names)) != len(names)
    ):
        raise bad_value("regimes.names", names, f"a non-empty list of distinct names, each {NAME_RULE}")
    n = len(names)
    has_dur = t.has("mean_duration_days")
    has_tr = t.has("transition")
    if has_dur and has_tr:
        raise bad_value("regimes.transition", t.data["transition"], "absent when regimes.mean_duration_days is set (choose one)")
    if has_tr:
        tr = t.matrix("transition", n)
        check_stochastic(tr, "regimes.transition")
        if t.has("exit_probabilities"):
            raise bad_value("regimes.exit_probabilities", t.data["exit_probabilities"], "absent when regimes.transition is set")
    else:
        if n == 1:
            dur = t.per_regime("mean_duration_days", 1, 1.0, lo=0.0, lo_open=True)
            tr = ((1.0,),)
            t.has("exit_probabilities")
        else:
            dur = t.per_regime("mean_duration_days", n, lo=0.0, lo_open=True)
            ex = t.matrix("exit_probabilities", n)
            check_stochastic(ex, "regimes.exit_probabilities", zero_diagonal=True)
            rows = []
            for i in range(n):
                leave = -math.expm1(-1.0 / dur[i])
                rows.append(tuple((1.0 - leave) if j == i else leave * ex[i][j] for j in range(n)))
            tr = tuple(rows)
    p = np.array(tr)
    initial = t.string("initial", "stationary")
    if initial == "stationary":
        if not is_irreducible(p):
            raise bad_value("regimes.initial", initial, "a regime name: the chain is not irreducible, so it has no unique stationary distribution")
        init = tuple(float(x) for x in stationary_distribution(p))
    elif initial in names:
        init = tuple(1.0 if x == initial else 0.0 for x in names)
    else:
        raise bad_value("regimes.initial", initial, '"stationary" or one of ' + ", ".join(f'"{x}"' for x in names))
    t.finish()
    return Regimes(names=tuple(names), transition=tr, initial_probs=init, initial=initial)


def _market_defaults(market: MarketSource, ulist: list, run: RunConfig) -> dict:
    """With a price file: validate it (one line naming file, row, column) and return the
    `spot` / `volatility` defaults it gives each underlying (see mcsim.market.source)."""
    if not market.uses_history:
        return {}
    names = [u.get("name") for u in ulist if isinstance(u, dict) and is_valid_name(u.get("name"))]
    if len(names) != len(ulist) or len(set(names)) != len(names):
        return {}  # _parse_underlying reports the bad name
    return history_defaults(load_market_history(market, names), run.steps_per_year)


def _parse_underlying(raw, i, n_reg, seen, defaults=None) -> Underlying:
    name = raw.get("name") if isinstance(raw, dict) else None
    if not is_valid_name(name):
        raise bad_value(f"underlyings.{i}.name", name, NAME_RULE)
    if name in seen:
        raise bad_value(f"underlyings.{name}.name", name, "unique among underlyings")
    t = Table(raw, f"underlyings.{name}")
    t.expect(_keys(Underlying))
    t.has("name")
    given = (defaults or {}).get(name, {})
    spot = t.number("spot", given.get("spot", REQUIRED), lo=0.0, lo_open=True)
    div = t.number("dividend_yield", 0.0, lo=0.0, hi=1.0, hi_open=True)
    mu = t.per_regime("expected_return", n_reg, 0.07, lo=-5.0, hi=5.0)
    sv = None
    if t.has("stochastic_vol"):
        if t.has("volatility"):
            raise bad_value(f"underlyings.{name}.volatility", t.data["volatility"],
                            f"absent when underlyings.{name}.stochastic_vol is set (choose one)")
        sv = _parse_stochastic_vol(t.raw("stochastic_vol"), f"underlyings.{name}.stochastic_vol", n_reg)
        vol = sv.long_run_vol
    else:
        vol = t.per_regime("volatility", n_reg, given.get("volatility", REQUIRED), lo=0.0, hi=5.0, lo_open=True)
    lam = t.per_regime("jump_intensity", n_reg, 0.0, lo=0.0, hi=252.0)
    jm = t.per_regime("jump_mean", n_reg, 0.0, lo=-5.0, hi=5.0)
    js = t.per_regime("jump_std", n_reg, 0.0, lo=0.0, hi=5.0)
    step = t.number("strike_step", 1.0, lo=0.0, lo_open=True)
    every = t.integer("expiry_every_days", 5, lo=1)
    exercise = t.string("exercise", "american", choices=EXERCISE_CHOICES)
    ivt = Table(t.raw("implied_vol", {}), f"underlyings.{name}.implied_vol")
    ivt.expect(_keys(ImpliedVolModel))
    ivm = ImpliedVolModel(
        premium=ivt.per_regime("premium", n_reg, 0.0, lo=-5.0, hi=5.0),
        skew=ivt.per_regime("skew", n_reg, 0.0, lo=-5.0, hi=5.0),
        floor=ivt.number("floor", 0.01, lo=0.0, hi=5.0),
        shock_beta=ivt.number("shock_beta", 0.0, lo=0.0, hi=100.0),
        shock_half_life_days=ivt.number("shock_half_life_days", 10.0, lo=0.0, lo_open=True),
    )
    ivt.finish()
    t.finish()
    und = Underlying(name, spot, div, mu, vol, lam, jm, js, step, every, ivm, sv, exercise)
    base = und.atm_iv_base()
    for r in range(n_reg):
        if base[r] <= 0:
            raise bad_value(
                f"underlyings.{name}.implied_vol.premium", list(ivm.premium),
                f"> -{base[r] - ivm.premium[r]:.6g} in regime {r} (ATM IV must stay > 0)",
            )
    return und


def _parse_stochastic_vol(raw, path, n_reg) -> StochasticVol:
    t = Table(raw, path)
    t.expect(_keys(StochasticVol))
    sv = StochasticVol(
        mean_reversion=t.number("mean_reversion", lo=0.0, hi=1000.0, lo_open=True),
        long_run_vol=t.per_regime("long_run_vol", n_reg, lo=0.0, hi=5.0, lo_open=True),
        vol_of_vol=t.number("vol_of_vol", lo=0.0, hi=20.0, lo_open=True),
        spot_vol_correlation=t.number("spot_vol_correlation", lo=-1.0, hi=1.0),
        initial_vol=t.number("initial_vol", None, lo=0.0, hi=5.0),
    )
    t.finish()
    return sv


def _parse_shock(raw, i, names, n_steps) -> Shock:
    t = Table(raw, f"shocks.{i}")
    t.expect(_keys(Shock))
    day = t.integer("day", lo=1, hi=n_steps)
    unds = t.raw("underlyings", list(names))
    if not isinstance(unds, list) or not unds or any(u not in names for u in unds):
        raise bad_value(f"shocks.{i}.underlyings", unds, "a non-empty list of underlying names: " + ", ".join(names))
    sh = Shock(
        day=day,
        underlyings=tuple(unds),
        log_return=t.number("log_return", 0.0, lo=-10.0, hi=10.0),
        iv_add=t.number("iv_add", 0.0, lo=-5.0, hi=5.0),
    )
    t.finish()
    return sh


def _parse_correlation(raw, n_u, n_reg, underlyings=()):
    """(per-regime correlation matrices, common_jumps)."""
    eye = tuple(tuple(1.0 if i == j else 0.0 for j in range(n_u)) for i in range(n_u))
    if raw is None:
        return tuple([eye] * n_reg), False
    t = Table(raw, "correlation")
    t.expect(("matrix", "per_regime", "common_jumps"))
    common = t.boolean("common_jumps", False)
    if common:
        for u in underlyings[1:]:
            if u.jump_intensity != underlyings[0].jump_intensity:
                raise bad_value(f"underlyings.{u.name}.jump_intensity", list(u.jump_intensity),
                                f"{list(underlyings[0].jump_intensity)} per regime, as for "
                                f"{underlyings[0].name} (correlation.common_jumps = true)")
    has_m, has_p = t.has("matrix"), t.has("per_regime")
    if has_m and has_p:
        raise bad_value("correlation.per_regime", t.data["per_regime"], "absent when correlation.matrix is set (choose one)")
    if has_p:
        pr = t.raw("per_regime")
        if not isinstance(pr, list) or len(pr) != n_reg:
            raise bad_value("correlation.per_regime", pr, f"a list of {n_reg} matrices, one per regime")
        mats = []
        for r, m in enumerate(pr):
            mm = check_matrix(m, f"correlation.per_regime[{r}]", n_u)
            check_correlation(mm, f"correlation.per_regime[{r}]")
            mats.append(mm)
        out = tuple(mats)
    else:
        mm = t.matrix("matrix", n_u, [list(r) for r in eye])
        check_correlation(mm, "correlation.matrix")
        out = tuple([mm] * n_reg)
    t.finish()
    return out, common


def _parse_costs(t: Table) -> Costs:
    t.expect(_keys(Costs))
    c = Costs(
        commission_per_contract=t.number("commission_per_contract", 0.0, lo=0.0),
        slippage_per_share=t.number("slippage_per_share", 0.0, lo=0.0),
        slippage_pct=t.number("slippage_pct", 0.0, lo=0.0, hi=1.0, hi_open=True),
        assignment_fee=t.number("assignment_fee", 0.0, lo=0.0),
    )
    t.finish()
    return c


def _parse_option_rule(raw, path, is_call, default_dte=35, default_delta=0.30, kind="wheel"):
    t = Table(raw, path)
    keys = _keys(CallRule if is_call else OptionRule)
    if is_call and not KINDS[kind].buys_shares:
        keys = [k for k in keys if k != "settle"]   # a wheel's calls are always called away
    t.expect(keys)
    has_d, has_o = t.has("delta"), t.has("otm_pct")
    if has_d and has_o:
        raise bad_value(f"{path}.otm_pct", t.data["otm_pct"], f"absent when {path}.delta is set (choose one)")
    delta = t.number("delta", None if has_o else default_delta, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    otm = t.number("otm_pct", None, lo=0.0, hi=1.0, hi_open=True)
    dte = t.integer("dte", default_dte, lo=1, hi=3650)
    min_credit = t.number("min_credit", 0.0, lo=0.0, hi=1e6)
    if is_call:
        info = KINDS[kind]
        settle = t.string("settle", info.call_settle, choices=SETTLE_CHOICES) if info.buys_shares else None
        rule = CallRule(delta=delta, otm_pct=otm, dte=dte, min_credit=min_credit, settle=settle,
                        min_strike=t.string("min_strike", info.min_strike, choices=MIN_STRIKE_CHOICES))
    else:
        rule = OptionRule(delta=delta, otm_pct=otm, dte=dte, min_credit=min_credit)
    t.finish()
    return rule


def _parse_manage(raw, path) -> Manage:
    t = Table(raw, path)
    t.expect(_keys(Manage))
    d = Manage()
    stop = t.number("stop_loss", d.stop_loss, lo=0.0)
    if 0.0 < stop <= 1.0:
        raise bad_value(f"{path}.stop_loss", stop, "0 (off) or > 1")
    m = Manage(
        profit_take=t.number("profit_take", d.profit_take, lo=0.0, hi=1.0, hi_open=True),
        stop_loss=stop,
        close_dte=t.integer("close_dte", d.close_dte, lo=0, hi=3650),
        roll_when=t.string("roll_when", d.roll_when, choices=ROLL_WHEN_CHOICES),
        roll_delta=t.number("roll_delta", d.roll_delta, lo=0.0, hi=1.0, lo_open=True, hi_open=True),
        roll_dte=t.integer("roll_dte", d.roll_dte, lo=0, hi=3650),
        roll_out_days=t.integer("roll_out_days", d.roll_out_days, lo=1, hi=3650),
        roll_credit_only=t.boolean("roll_credit_only", d.roll_credit_only),
        roll_strike=t.string("roll_strike", d.roll_strike, choices=ROLL_STRIKE_CHOICES),
        roll_min_credit=t.number("roll_min_credit", d.roll_min_credit, lo=0.0, hi=1e6),
        max_rolls=t.integer("max_rolls", d.max_rolls, lo=0, hi=1000),
        close_if_unable_to_roll=t.boolean("close_if_unable_to_roll", d.close_if_unable_to_roll),
        early_assignment=t.boolean("early_assignment", d.early_assignment),
        early_assignment_time_value=t.number("early_assignment_time_value", d.early_assignment_time_value, lo=0.0),
    )
    t.finish()
    return m


def _parse_high_iv(raw, path, kind) -> HighIV:
    t = Table(raw, path)
    t.expect([k for k in _keys(HighIV) if KINDS[kind].call_table is not None or k != "call_delta"])
    has_a, has_r = t.has("atm_iv_above"), t.has("iv_rank_above")
    if has_a == has_r:
        raise ScenarioError(f"{path}: needs exactly one of atm_iv_above or iv_rank_above")
    h = HighIV(
        atm_iv_above=t.number("atm_iv_above", None, lo=0.0, lo_open=True),
        iv_rank_above=t.number("iv_rank_above", None, lo=0.0, hi=1.0, hi_open=True),
        put_delta=t.number("put_delta", None, lo=0.0, hi=1.0, lo_open=True, hi_open=True),
        call_delta=(t.number("call_delta", None, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
                    if KINDS[kind].call_table is not None else None),
        dte=t.integer("dte", None, lo=1, hi=3650),
    )
    t.finish()
    return h


def _parse_strategy(raw, i, names, seen, run: RunConfig) -> StrategyRules:
    name = raw.get("name") if isinstance(raw, dict) else None
    if not is_valid_name(name):
        raise bad_value(f"strategies.{i}.name", name, NAME_RULE)
    if name in seen:
        raise bad_value(f"strategies.{name}.name", name, "unique among strategies")
    if name in BASELINE_NAMES:
        raise bad_value(f"strategies.{name}.name", name, "not a baseline name (buy_and_hold, cash are added to every scenario)")
    path = f"strategies.{name}"
    t = Table(raw, path)
    t.expect(dict.fromkeys(k for keys in STRATEGY_KEYS.values() for k in keys))
    kind = t.string("kind", choices=STRATEGY_KINDS)
    t.expect(STRATEGY_KEYS[kind], f' for kind "{kind}"')
    unds = t.raw("underlyings", list(names))
    if isinstance(unds, str):
        unds = [unds]
    if not isinstance(unds, list) or not unds or len(set(unds)) != len(unds):
        raise bad_value(f"{path}.underlyings", unds, "a non-empty list of distinct underlying names: " + ", ".join(names))
    for u in unds:
        if u not in names:
            raise bad_value(f"{path}.underlyings", u, "one of the scenario's underlyings: " + ", ".join(names))
    every = t.integer("entry_every_days", 1, lo=1)
    put = call = None
    width = width_pct = None
    high_iv = None
    manage = Manage()
    sizing_default = KINDS[kind].default_position_fraction
    if KINDS[kind].put_table == "put":
        put = _parse_option_rule(t.raw("put", {}), f"{path}.put", False)
    if KINDS[kind].call_table is not None:
        call = _parse_option_rule(t.raw("call", {}), f"{path}.call", True, kind=kind)
    if kind == "bull_put_spread":
        put = _parse_option_rule(t.raw("short_put", {}), f"{path}.short_put", False, default_dte=45, default_delta=0.16)
        has_w, has_wp = t.has("width"), t.has("width_pct")
        if has_w and has_wp:
            raise bad_value(f"{path}.width_pct", t.data["width_pct"], f"absent when {path}.width is set (choose one)")
        if not has_w and not has_wp:
            raise ScenarioError(f"{path}.width: missing (a bull_put_spread needs width ($) or width_pct)")
        width = t.number("width", None, lo=0.0, lo_open=True)
        width_pct = t.number("width_pct", None, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    if kind != "buy_and_hold":
        manage = _parse_manage(t.raw("manage", {}), f"{path}.manage")
        if t.has("high_iv"):
            high_iv = _parse_high_iv(t.data["high_iv"], f"{path}.high_iv", kind)
    st = Table(t.raw("sizing", {}), f"{path}.sizing")
    own = KINDS[kind].sizing_keys
    st.expect([k for k in _keys(Sizing) if k not in _KIND_SIZING_KEYS or k in own],
              f' for kind "{kind}"')
    sizing = Sizing(
        position_fraction=st.number("position_fraction", sizing_default, lo=0.0, hi=1.0, lo_open=True),
        contracts=st.string("contracts", "integer", choices=CONTRACTS_CHOICES),
        max_open=st.integer("max_open", 1, lo=1, hi=1000),
        rebalance=st.boolean("rebalance", False) if "rebalance" in own else False,
    )
    if kind != "bull_put_spread" and sizing.max_open != 1:
        raise bad_value(f"{path}.sizing.max_open", sizing.max_open, f"1 for a {kind} (one cycle per underlying)")
    st.finish()
    t.finish()
    return StrategyRules(
        name=name,
        kind=kind,
        underlyings=tuple(unds),
        entry_every_days=every,
        put=put,
        call=call,
        width=width,
        width_pct=width_pct,
        manage=manage,
        high_iv=high_iv,
        sizing=sizing,
    )


# --------------------------------------------------------------------------------------------
# strategy values as the kernels take them (whatever built the dataclasses)


def baseline_rules(scenario: Scenario) -> tuple[StrategyRules, ...]:
    """The baselines added to every scenario (`kinds.BASELINE_NAMES`), over all underlyings."""
    names = scenario.underlying_names
    return tuple(StrategyRules(name=b, kind=b, underlyings=names) for b in BASELINE_NAMES)


def _check(field_path, value, ok, allowed):
    if value is None or isinstance(value, bool) or not ok(value):
        raise bad_value(field_path, value, allowed)


def _check_option_rule(rule, path):
    if rule is None:
        raise ScenarioError(f"{path}: missing (required)")
    if (rule.delta is None) == (rule.otm_pct is None):
        raise ScenarioError(f"{path}: needs exactly one of delta or otm_pct")
    if rule.delta is not None:
        _check(f"{path}.delta", rule.delta, lambda v: 0.0 < v < 1.0, "in (0, 1)")
    else:
        _check(f"{path}.otm_pct", rule.otm_pct, lambda v: 0.0 <= v < 1.0, "in [0, 1)")
    _check(f"{path}.dte", rule.dte, lambda v: v >= 1, ">= 1")
    _check(f"{path}.min_credit", rule.min_credit, lambda v: 0.0 <= v <= 1e6, "in [0, 1e6] ($ per share)")


def check_strategy(rules: StrategyRules, scenario: Scenario) -> None:
    """Check one strategy's values against what the kernels need; ScenarioError names the field."""
    path = f"strategies.{rules.name}"
    if rules.kind not in KINDS:
        raise bad_value(f"{path}.kind", rules.kind, "one of " + ", ".join(KINDS))
    info = KINDS[rules.kind]
    names = scenario.underlying_names
    if not rules.underlyings:
        raise bad_value(f"{path}.underlyings", list(rules.underlyings), "a non-empty list of underlying names")
    for u in rules.underlyings:
        if u not in names:
            raise bad_value(f"{path}.underlyings", u, "one of the scenario's underlyings: " + ", ".join(names))
    if len(set(rules.underlyings)) != len(rules.underlyings):
        raise bad_value(f"{path}.underlyings", list(rules.underlyings), "distinct names")
    _check(f"{path}.entry_every_days", rules.entry_every_days, lambda v: int(v) == v and v >= 1, "an integer >= 1")
    costs = scenario.costs
    for key in ("commission_per_contract", "slippage_per_share", "slippage_pct", "assignment_fee"):
        _check(f"costs.{key}", getattr(costs, key), lambda v: v >= 0.0, ">= 0")
    sizing = rules.sizing
    _check(f"{path}.sizing.position_fraction", sizing.position_fraction, lambda v: 0.0 < v <= 1.0, "in (0, 1]")
    _check(f"{path}.sizing.max_open", sizing.max_open, lambda v: int(v) == v and v >= 1, "an integer >= 1")
    if sizing.contracts not in CONTRACTS_CHOICES:
        raise bad_value(f"{path}.sizing.contracts", sizing.contracts, 'one of "integer", "fractional"')
    if not isinstance(sizing.rebalance, bool):
        raise bad_value(f"{path}.sizing.rebalance", sizing.rebalance, "true or false")
    if sizing.rebalance and "rebalance" not in info.sizing_keys:
        raise bad_value(f"{path}.sizing.rebalance", sizing.rebalance,
                        "false for a " + rules.kind + " (only " + ", ".join(
                            k for k, v in KINDS.items() if "rebalance" in v.sizing_keys) + " rebalances its shares)")
    if info.put_table is not None:
        _check_option_rule(rules.put, f"{path}.{info.put_table}")
    if info.call_table is not None:
        _check_option_rule(rules.call, f"{path}.{info.call_table}")
        if rules.call.min_strike not in MIN_STRIKE_CHOICES:
            raise bad_value(f"{path}.call.min_strike", rules.call.min_strike, "one of " + ", ".join(MIN_STRIKE_CHOICES))
        allowed = SETTLE_CHOICES if info.buys_shares else (info.call_settle,)
        if rules.call.settle is not None and rules.call.settle not in allowed:
            raise bad_value(f"{path}.call.settle", rules.call.settle, "one of " + ", ".join(allowed))
    if rules.kind == "bull_put_spread":
        if (rules.width is None) == (rules.width_pct is None):
            raise ScenarioError(f"{path}.width: a bull_put_spread needs exactly one of width ($) or width_pct")
        if rules.width is not None:
            _check(f"{path}.width", rules.width, lambda v: v > 0.0, "> 0")
        else:
            _check(f"{path}.width_pct", rules.width_pct, lambda v: 0.0 < v < 1.0, "in (0, 1)")
    if info.has_options:
        _check_manage(rules.manage, f"{path}.manage")
        _check_high_iv(rules.high_iv, f"{path}.high_iv")


def _check_manage(mg, mp):
    _check(f"{mp}.profit_take", mg.profit_take, lambda v: 0.0 <= v < 1.0, "in [0, 1)")
    _check(f"{mp}.stop_loss", mg.stop_loss, lambda v: v == 0.0 or v > 1.0, "0 (off) or > 1")
    _check(f"{mp}.close_dte", mg.close_dte, lambda v: v >= 0, ">= 0")
    _check(f"{mp}.roll_dte", mg.roll_dte, lambda v: v >= 0, ">= 0")
    _check(f"{mp}.roll_out_days", mg.roll_out_days, lambda v: v >= 1, ">= 1")
    _check(f"{mp}.roll_delta", mg.roll_delta, lambda v: 0.0 < v < 1.0, "in (0, 1)")
    _check(f"{mp}.max_rolls", mg.max_rolls, lambda v: v >= 0, ">= 0")
    _check(f"{mp}.early_assignment_time_value", mg.early_assignment_time_value, lambda v: v >= 0.0, ">= 0")
    _check(f"{mp}.roll_min_credit", mg.roll_min_credit, lambda v: 0.0 <= v <= 1e6, "in [0, 1e6] ($ per share)")
    if mg.roll_strike not in ROLL_STRIKE_CHOICES:
        raise bad_value(f"{mp}.roll_strike", mg.roll_strike, 'one of "credit", "rule"')
    if mg.roll_when not in ROLL_WHEN_CHOICES:
        raise bad_value(f"{mp}.roll_when", mg.roll_when, 'one of "off", "itm", "delta"')


def _check_high_iv(h, hp):
    if h is None:
        return
    if (h.atm_iv_above is None) == (h.iv_rank_above is None):
        raise ScenarioError(f"{hp}: needs exactly one of atm_iv_above or iv_rank_above")
    if h.atm_iv_above is not None:
        _check(f"{hp}.atm_iv_above", h.atm_iv_above, lambda v: v > 0.0, "> 0")
    else:
        _check(f"{hp}.iv_rank_above", h.iv_rank_above, lambda v: 0.0 <= v < 1.0, "in [0, 1)")
    for key in ("put_delta", "call_delta"):
        if getattr(h, key) is not None:
            _check(f"{hp}.{key}", getattr(h, key), lambda v: 0.0 < v < 1.0, "in (0, 1)")
    if h.dte is not None:
        _check(f"{hp}.dte", h.dte, lambda v: v >= 1, ">= 1")
