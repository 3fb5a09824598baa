"""Price files: daily closes (and implied-vol indexes) read, validated and cached.

A price file is CSV (`.csv`) or Parquet (`.parquet`, `.pq`) with a `date` column (ISO
`YYYY-MM-DD`; Parquet may also store dates or timestamps) and one column per underlying, named
like the underlying. Implied vol (an index such as VIX) sits in columns named `<underlying>_iv`
of the same file, or in a second file (`iv_path`) with a `date` column; `iv_columns` maps an
underlying to another column name (`{"SPY": "VIX"}`).

Validation (one-line `HistoryError`, a `ScenarioError`, naming the file, the row, the column,
the value and what is allowed; rows are numbered as a spreadsheet shows them: in a CSV the
header is row 1 and the first data row is row 2; in Parquet the first data row is row 2 too):
dates parse and strictly increase, no two consecutive dates more than `MAX_GAP_DAYS` calendar
days apart, prices are numbers > 0 (no empty cells), at least `MIN_ROWS` rows; IV cells are
numbers > 0 or empty (no quote that day).

Percent or decimal IV (**choice**): a column whose median is above `IV_PERCENT_ABOVE` (1.5) is in
percent (VIX quotes 20 for 20%) and is divided by 100; otherwise it is already a decimal. An
annualised vol of 150% as a decimal median, or of 1.5% in percent (VIX never closed below 9), do
not occur for the underlyings mcsim is meant for, so the rule cannot confuse the two.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import ScenarioError

__all__ = [
    "HistoryError",
    "PriceHistory",
    "load_history",
    "log_returns",
    "trailing_realised_vol",
    "MIN_ROWS",
    "MAX_GAP_DAYS",
    "IV_PERCENT_ABOVE",
    "RV_WINDOW",
]

MIN_ROWS = 250            # rows a price file must hold (about one trading year)
MAX_GAP_DAYS = 10         # calendar days allowed between consecutive dates (9/11 closed NYSE 6 days)
IV_PERCENT_ABOVE = 1.5    # an IV column with a larger median is in percent
RV_WINDOW = 21            # trading days of the trailing realised vol that stands in for a missing IV
_SUFFIXES = (".csv", ".parquet", ".pq")
_FIRST_ROW = 2            # the first data row's number (the header is row 1)


class HistoryError(ScenarioError):
    """A bad price file: the message names the file, row, column, value and what is allowed."""


def _err(file: str, row: int | None, column: str | None, value, allowed: str) -> HistoryError:
    where = [f'"{file}"']
    if row is not None:
        where.append(f"row {row}")
    if column is not None:
        where.append(f'column "{column}"')
    shown = value if isinstance(value, str) and value.startswith("(") else _show(value)
    return HistoryError(f"{', '.join(where)}: {shown} is not allowed (must be {allowed})")


def _missing(file: str, column: str, columns, what: str) -> HistoryError:
    listed = ", ".join(str(c) for c in list(columns)[:12]) or "none"
    return HistoryError(f'"{file}", row 1: missing column "{column}" (columns: {listed}; must hold {what})')


def _show(v) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "an empty cell"
    if isinstance(v, str):
        if v.strip() == "":
            return "an empty cell"
        text = v if len(v) <= 40 else v[:37] + "..."
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)   # one line
        return '"' + text.replace('"', '\\"') + '"'
    return repr(v)


@dataclass(frozen=True, eq=False)
class PriceHistory:
    """Daily closes of some underlyings (and their implied vol where given).

    dates: datetime64[D] (n,), strictly increasing; prices: float64 (n, n_u) > 0, $ per share;
    iv: float64 (n, n_u) annualised decimals, nan where the file has no IV (no column, or an
    empty cell); iv_unit[u]: "percent", "decimal" or None (no IV column) as detected; rows[i] is
    the file row of dates[i] (for messages).
    """

    file: str
    dates: np.ndarray
    prices: np.ndarray
    iv: np.ndarray
    underlyings: tuple[str, ...]
    iv_unit: tuple[str | None, ...]
    rows: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(self.dates.shape[0])

    def has_iv(self, u: int | None = None) -> bool:
        """Whether underlying u (any underlying when None) has an IV column."""
        if u is None:
            return any(x is not None for x in self.iv_unit)
        return self.iv_unit[u] is not None

    def column(self, name: str) -> int:
        return self.underlyings.index(name)

    def date_strings(self) -> list[str]:
        return [str(d) for d in self.dates]

    def between(self, start: str | None = None, end: str | None = None) -> "PriceHistory":
        """The rows with start <= date <= end (ISO dates; None: no bound)."""
        lo = 0 if start is None else int(np.searchsorted(self.dates, np.datetime64(start, "D"), "left"))
        hi = self.n_rows if end is None else int(np.searchsorted(self.dates, np.datetime64(end, "D"), "right"))
        return PriceHistory(self.file, self.dates[lo:hi], self.prices[lo:hi], self.iv[lo:hi],
                            self.underlyings, self.iv_unit, self.rows[lo:hi])


def log_returns(prices: np.ndarray) -> np.ndarray:
    """Daily log returns ln(S[i+1] / S[i]): (n - 1, n_u) from (n, n_u)."""
    return np.diff(np.log(prices), axis=0)


def trailing_realised_vol(returns: np.ndarray, steps_per_year: int, window: int = RV_WINDOW) -> np.ndarray:
    """Annualised realised vol of the `window` returns ending at each return, sqrt(spy/w sum r^2).

    returns: (n, ...) daily log returns; out[i] uses returns[i - window + 1 .. i] (nan for
    i < window - 1). Not demeaned, as realised vol is quoted (a daily mean is ~1e-4 of a 1%
    move).
    """
    r2 = np.asarray(returns, dtype=np.float64) ** 2
    c = np.cumsum(r2, axis=0)
    out = np.full(r2.shape, np.nan)
    if r2.shape[0] >= window:
        s = c[window - 1:].copy()
        s[1:] -= c[:-window]
        out[window - 1:] = np.sqrt(np.maximum(s, 0.0) * steps_per_year / window)
    return out


# --------------------------------------------------------------------------------------------
# reading


def _read_table(path: Path, shown: str) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise _err(shown, None, None, f"(a {suffix or 'suffix-less'} file)",
                   "a .csv or .parquet file of daily closes")
    if not path.is_file():
        raise _err(shown, None, None, "(no such file)", "an existing .csv or .parquet file")
    try:
        if suffix == ".csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        else:
            df = pd.read_parquet(path)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise _err(shown, None, None, f"(unreadable: {' '.join(str(exc).split())[:120]})",
                   "a readable .csv or .parquet file") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises its own types for corrupt files
        raise _err(shown, None, None, f"(unreadable: {type(exc).__name__})",
                   "a readable .csv or .parquet file") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _date_column(df: pd.DataFrame, shown: str) -> str:
    for c in df.columns:
        if c.lower() == "date":
            return c
    raise _missing(shown, "date", df.columns, "a date column of ISO dates YYYY-MM-DD")


def _parse_dates(col: pd.Series, shown: str, name: str) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(col):
        d = pd.to_datetime(col)
        if getattr(d.dt, "tz", None) is not None:
            d = d.dt.tz_localize(None)
    else:
        text = col.astype(str).str.strip()
        d = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
        bad = d.isna().to_numpy()
        if bad.any():
            # also accept a date with a midnight time ("2020-01-02 00:00:00")
            d2 = pd.to_datetime(text[bad], format="%Y-%m-%d %H:%M:%S", errors="coerce")
            d[bad] = d2
        bad = d.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _err(shown, i + _FIRST_ROW, name, col.iloc[i], "an ISO date YYYY-MM-DD")
    if d.isna().any():
        i = int(np.flatnonzero(d.isna().to_numpy())[0])
        raise _err(shown, i + _FIRST_ROW, name, "(an empty cell)", "an ISO date YYYY-MM-DD")
    if (d.dt.normalize() != d).any():
        i = int(np.flatnonzero((d.dt.normalize() != d).to_numpy())[0])
        raise _err(shown, i + _FIRST_ROW, name, str(d.iloc[i]), "a date without a time of day (daily closes)")
    return d.to_numpy().astype("datetime64[D]")


def _check_dates(dates: np.ndarray, shown: str, name: str, max_gap: int) -> None:
    if dates.shape[0] < 2:
        return
    step = np.diff(dates).astype(np.int64)
    bad = np.flatnonzero(step <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise _err(shown, i + _FIRST_ROW, name, str(dates[i]),
                   f"a date after the previous row's {dates[i - 1]} (dates must increase, no repeats)")
    gap = np.flatnonzero(step > max_gap)
    if gap.size:
        i = int(gap[0]) + 1
        raise _err(shown, i + _FIRST_ROW, name, str(dates[i]),
                   f"at most {max_gap} calendar days after the previous row's {dates[i - 1]} "
                   f"(a gap of {int(step[i - 1])} days: missing data)")


def _numbers(col: pd.Series, shown: str, name: str, *, allow_empty: bool) -> np.ndarray:
    """A column as float64; text, non-finite values and (unless allowed) empty cells refused."""
    if pd.api.types.is_bool_dtype(col):
        raise _err(shown, _FIRST_ROW, name, col.iloc[0], "a number")
    if pd.api.types.is_numeric_dtype(col):
        x = np.array(col.to_numpy(dtype=np.float64, na_value=np.nan))
        empty = np.isnan(x)
        text_bad = np.zeros(x.shape, dtype=bool)
    else:
        s = col.astype(object).where(col.notna(), "")
        s = s.map(lambda v: v.strip() if isinstance(v, str) else v)
        empty = (s == "").to_numpy()
        x = np.array(pd.to_numeric(s.where(~empty, np.nan), errors="coerce").to_numpy(dtype=np.float64))
        text_bad = np.isnan(x) & ~empty
    if text_bad.any():
        i = int(np.flatnonzero(text_bad)[0])
        raise _err(shown, i + _FIRST_ROW, name, col.iloc[i], "a number")
    if not allow_empty and empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise _err(shown, i + _FIRST_ROW, name, "(an empty cell)", "a number > 0 (a close on every date)")
    inf = ~np.isfinite(x) & ~empty
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        raise _err(shown, i + _FIRST_ROW, name, col.iloc[i], "a finite number")
    x[empty] = np.nan
    return x


def _positive(x: np.ndarray, shown: str, name: str, what: str) -> None:
    bad = np.flatnonzero(x <= 0)
    if bad.size:
        i = int(bad[0])
        raise _err(shown, i + _FIRST_ROW, name, float(x[i]), what)


def _iv_unit(x: np.ndarray) -> tuple[str, float]:
    med = float(np.nanmedian(x))
    return ("percent", 0.01) if med > IV_PERCENT_ABOVE else ("decimal", 1.0)


def _file_key(path: str | Path | None):
    if path is None:
        return None
    p = Path(path)
    try:
        st = p.stat()
        return (str(p.resolve()), st.st_mtime_ns, st.st_size)
    except OSError:
        return (str(p), None, None)


def load_history(path: str | Path, underlyings: Sequence[str] | None = None, *,
                 iv_path: str | Path | None = None, iv_columns: Mapping[str, str] | None = None,
                 min_rows: int = MIN_ROWS, max_gap_days: int = MAX_GAP_DAYS,
                 shown: str | None = None, iv_shown: str | None = None) -> PriceHistory:
    """Read and validate a price file (see the module docstring); cached per file version.

    Parameters
    ----------
    path : the price file (CSV or Parquet).
    underlyings : column names to read (None: every column but `date` and `*_iv` columns).
    iv_path : optional second file with an implied-vol column per underlying.
    iv_columns : underlying -> IV column name (default `<underlying>_iv`, or `<underlying>` in
        `iv_path`).
    shown, iv_shown : how the files are named in messages (default: as given).

    Raises `HistoryError` (one line) for any bad file.
    """
    cols = None if underlyings is None else tuple(underlyings)
    ivc = tuple(sorted((iv_columns or {}).items()))
    return _load_cached(_file_key(path), str(path), cols, _file_key(iv_path),
                        None if iv_path is None else str(iv_path), ivc, int(min_rows),
                        int(max_gap_days), shown or str(path), iv_shown or (None if iv_path is None else str(iv_path)))


@lru_cache(maxsize=8)
def _load_cached(key, path, cols, iv_key, iv_path, ivc, min_rows, max_gap, shown, iv_shown) -> PriceHistory:
    df = _read_table(Path(path), shown)
    dcol = _date_column(df, shown)
    if cols is None:
        cols = tuple(c for c in df.columns if c != dcol and not c.lower().endswith("_iv"))
        if not cols:
            raise _missing(shown, "<underlying>", df.columns, "a column of daily closes beside the date")
    for c in cols:
        if c not in df.columns:
            raise _missing(shown, c, df.columns, f"the daily closes of {c}")
    n = len(df)
    if n < min_rows:
        raise HistoryError(f'"{shown}": {n} rows is not allowed (must be at least {min_rows} rows of daily closes)')
    dates = _parse_dates(df[dcol], shown, dcol)
    _check_dates(dates, shown, dcol, max_gap)
    prices = np.empty((n, len(cols)))
    for j, c in enumerate(cols):
        x = _numbers(df[c], shown, c, allow_empty=False)
        _positive(x, shown, c, "a price > 0")
        prices[:, j] = x
    ivmap = dict(ivc)
    iv = np.full((n, len(cols)), np.nan)
    units: list[str | None] = [None] * len(cols)
    iv_df = iv_dates = None
    if iv_path is not None:
        iv_df = _read_table(Path(iv_path), iv_shown)
        idcol = _date_column(iv_df, iv_shown)
        iv_dates = _parse_dates(iv_df[idcol], iv_shown, idcol)
        _check_dates(iv_dates, iv_shown, idcol, 10**9)  # sorted; gaps are nan days, not errors
    for j, c in enumerate(cols):
        name = ivmap.get(c)
        src = None
        if iv_df is not None and (name or c) in iv_df.columns:
            src, name = "second", name or c
        elif iv_df is not None and f"{c}_iv" in iv_df.columns and name is None:
            src, name = "second", f"{c}_iv"
        elif (name or f"{c}_iv") in df.columns:
            src, name = "first", name or f"{c}_iv"
        elif name is not None:
            where = iv_shown if iv_df is not None else shown
            table = iv_df if iv_df is not None else df
            raise _missing(where, name, table.columns, f"the implied vol of {c}")
        if src is None:
            continue
        if src == "first":
            x = _numbers(df[name], shown, name, allow_empty=True)
            _positive(x, shown, name, "an implied vol > 0 (percent or decimal), or an empty cell")
        else:
            y = _numbers(iv_df[name], iv_shown, name, allow_empty=True)
            _positive(y, iv_shown, name, "an implied vol > 0 (percent or decimal), or an empty cell")
            pos = np.searchsorted(iv_dates, dates)
            ok = (pos < iv_dates.shape[0]) & (iv_dates[np.minimum(pos, iv_dates.shape[0] - 1)] == dates)
            x = np.full(n, np.nan)
            x[ok] = y[pos[ok]]
        if np.all(np.isnan(x)):
            continue
        unit, scale = _iv_unit(x)
        iv[:, j] = x * scale
        units[j] = unit
    return PriceHistory(shown, dates, prices, iv, tuple(cols), tuple(units),
                        np.arange(_FIRST_ROW, n + _FIRST_ROW, dtype=np.int64))


def resolve_path(text: str, scenario_source: str = "") -> Path:
    """A file named in a scenario: relative paths are relative to the scenario file's folder."""
    p = Path(os.path.expanduser(text))
    if not p.is_absolute() and scenario_source:
        p = Path(scenario_source).parent / p
    return p
