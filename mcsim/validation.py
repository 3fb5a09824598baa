"""Reading TOML tables with checked types and ranges: the one-line messages of `ScenarioError`.

Every check names the dotted field (the path `--set` takes), the value and what is allowed:
`underlyings.SPY.volatility: -0.2 is not allowed (must be a number in (0.0, 5.0])`.
"""

from __future__ import annotations

import difflib
import json
import math
from typing import Any

import numpy as np

from .errors import ScenarioError

def fmt_value(v: Any) -> str:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (dict, list, tuple)):
        try:
            return json.dumps(v, default=str)
        except (TypeError, ValueError):
            return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v)


def bad_value(path: str, value: Any, allowed: str) -> ScenarioError:
    return ScenarioError(f"{path}: {fmt_value(value)} is not allowed (must be {allowed})")


REQUIRED = object()


class Table:
    """Reads one TOML table, checking types and ranges; `finish()` rejects unknown keys."""

    def __init__(self, data: Any, path: str):
        if not isinstance(data, dict):
            raise bad_value(path or "scenario", data, "a table")
        self.data = data
        self.path = path
        self.known: list[str] = []

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        if key not in self.known:
            self.known.append(key)
        return key in self.data

    def raw(self, key: str, default: Any = REQUIRED) -> Any:
        if not self.has(key):
            if default is REQUIRED:
                raise ScenarioError(f"{self.field(key)}: missing (required)")
            return default
        return self.data[key]

    def number(self, key, default=REQUIRED, *, lo=None, hi=None, lo_open=False, hi_open=False, allowed=None):
        v = self.raw(key, default)
        if v is None:
            return None
        return check_number(v, self.field(key), lo, hi, lo_open, hi_open, allowed)

    def integer(self, key, default=REQUIRED, *, lo=None, hi=None):
        v = self.raw(key, default)
        if v is None:
            return None
        desc = _range_desc("an integer", lo, hi, False, False)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad_value(self.field(key), v, desc)
        if isinstance(v, float):
            if not v.is_integer():
                raise bad_value(self.field(key), v, desc)
            v = int(v)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise bad_value(self.field(key), v, desc)
        return int(v)

    def string(self, key, default=REQUIRED, *, choices=None):
        v = self.raw(key, default)
        if v is None:
            return None
        if not isinstance(v, str) or (choices is not None and v not in choices):
            allowed = "a string" if choices is None else "one of " + ", ".join(f'"{c}"' for c in choices)
            raise bad_value(self.field(key), v, allowed)
        return v

    def boolean(self, key, default=REQUIRED):
        v = self.raw(key, default)
        if not isinstance(v, bool):
            raise bad_value(self.field(key), v, "true or false")
        return v

    def per_regime(self, key, n, default=REQUIRED, **rng):
        """A scalar (same in every regime) or a list with one value per regime."""
        v = self.raw(key, default)
        f = self.field(key)
        if isinstance(v, list):
            if len(v) != n:
                raise bad_value(f, v, f"a number or a list of {n} numbers, one per regime")
            return tuple(check_number(x, f, **_rng(rng)) for x in v)
        return tuple([check_number(v, f, **_rng(rng))] * n)

    def matrix(self, key, n, default=REQUIRED):
        v = self.raw(key, default)
        return check_matrix(v, self.field(key), n)

    def expect(self, keys, context: str = "") -> None:
        """Declare every key this table may hold; raise for any other key, before required ones.

        So a misspelt key is reported as unknown, with the nearest allowed key, not as a missing one.
        """
        keys = list(keys)
        for k in keys:
            if k not in self.known:
                self.known.append(k)
        for k in self.data:
            if k not in keys:
                raise self._unknown(k, keys, context)

    def _unknown(self, key, allowed, context: str = "") -> ScenarioError:
        shown = key if isinstance(key, str) else str(key)
        near = difflib.get_close_matches(shown, [str(a) for a in allowed], n=1, cutoff=0.6)
        hint = f'did you mean "{near[0]}"? ' if near else ""
        listed = ", ".join(allowed) if allowed else "no keys"
        return ScenarioError(f"{self.field(shown)}: unknown key {json.dumps(shown)}{context} "
                             f"({hint}allowed: {listed})")

    def finish(self) -> None:
        for k in self.data:
            if k not in self.known:
                raise self._unknown(k, self.known)


def _rng(d: dict) -> dict:
    return {"lo": d.get("lo"), "hi": d.get("hi"), "lo_open": d.get("lo_open", False), "hi_open": d.get("hi_open", False)}


def _range_desc(kind, lo, hi, lo_open, hi_open) -> str:
    if lo is not None and hi is not None:
        return f"{kind} in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{kind} {'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f"{kind} {'<' if hi_open else '<='} {hi}"
    return kind


def check_number(v, path, lo=None, hi=None, lo_open=False, hi_open=False, allowed=None):
    desc = allowed or _range_desc("a number", lo, hi, lo_open, hi_open)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise bad_value(path, v, desc)
    v = float(v)
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise bad_value(path, v, desc)
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise bad_value(path, v, desc)
    return v


def check_matrix(v, path, n) -> tuple[tuple[float, ...], ...]:
    desc = f"a {n}x{n} matrix of numbers"
    if not isinstance(v, list) or len(v) != n or any(not isinstance(r, list) or len(r) != n for r in v):
        raise bad_value(path, v, desc)
    for r in v:
        for x in r:
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                raise bad_value(path, v, desc)
    return tuple(tuple(float(x) for x in r) for r in v)


def check_stochastic(m, path, zero_diagonal=False):
    a = np.array(m)
    if (a < 0).any() or (a > 1).any():
        raise bad_value(path, [list(r) for r in m], "probabilities in [0, 1]")
    for i, row in enumerate(a):
        if abs(row.sum() - 1.0) > 1e-9:
            raise bad_value(f"{path}[{i}]", list(m[i]), "a row that sums to 1 (within 1e-9)")
        if zero_diagonal and len(a) > 1 and row[i] != 0.0:
            raise bad_value(f"{path}[{i}][{i}]", row[i], "0 (where a regime goes when it ends: not itself)")


def stationary_distribution(p: np.ndarray) -> np.ndarray:
    n = len(p)
    a = np.vstack([p.T - np.eye(n), np.ones((1, n))])
    b = np.zeros(n + 1)
    b[-1] = 1.0
    pi, *_ = np.linalg.lstsq(a, b, rcond=None)
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum()


def is_irreducible(p: np.ndarray) -> bool:
    n = len(p)
    reach = (p > 0).astype(np.int64) + np.eye(n, dtype=np.int64)
    for _ in range(n):
        reach = ((reach @ reach) > 0).astype(np.int64)
    return bool(reach.all())


def check_correlation(m, path):
    a = np.array(m)
    if (np.abs(a - a.T) > 1e-12).any():
        raise bad_value(path, [list(r) for r in m], "a symmetric matrix")
    if (np.abs(np.diag(a) - 1.0) > 1e-12).any():
        raise bad_value(path, [list(r) for r in m], "a matrix with unit diagonal")
    if (np.abs(a) > 1.0).any():
        raise bad_value(path, [list(r) for r in m], "entries in [-1, 1]")
    if np.linalg.eigvalsh(a).min() < -1e-10:
        raise bad_value(path, [list(r) for r in m], "positive semi-definite")


# --------------------------------------------------------------------------------------------
# Python API arguments: no silent coercion (2.7 paths, True paths, seed 1.5)


def check_int_arg(func: str, name: str, value, lo: int | None = None, hi: int | None = None,
                  optional: bool = False):
    """`value` as an int, or TypeError/ValueError naming `func`'s argument `name`.

    Accepts int and numpy integers, never bool or float (2.7 paths would silently run 2).
    """
    if value is None and optional:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{func}: {name} must be an int (got {type(value).__name__} {value!r})")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        allowed = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{func}: {name} = {v} is not allowed (must be an int {allowed})")
    return v


def check_instance_arg(func: str, name: str, value, cls, what: str | None = None):
    """Raise TypeError naming the argument unless `value` is a `cls`."""
    if not isinstance(value, cls):
        raise TypeError(f"{func}: {name} must be {what or 'a ' + cls.__name__} (got {type(value).__name__})")
    return value
