"""`[market]`: where a scenario's paths come from, the model (default), a bootstrap of a price
history, or the history itself.

```toml
[market]
source = "bootstrap"        # "model" (default) | "bootstrap" | "history"
history = "spy_qqq.csv"     # price file, relative to the scenario file (mcsim.history)
mean_block_days = 20        # bootstrap: mean block length, trading steps
iv_history = "vix.csv"      # optional second file with implied vol
iv_columns = { SPY = "VIX" } # optional: the IV column of an underlying (default <name>_iv)
start = "2008-01-01"        # optional: use rows from this date
end = "2009-12-31"          # optional: ... up to this date
```

The underlyings' columns are named like the underlyings. With a price file, an underlying's
`spot` defaults to the last close of the sample (bootstrap: paths start there; history: the
file's prices are used, spot is ignored) and `volatility` to the sample's realised vol (only
the model uses it). Paths are built in `mcsim.market.bootstrap` and `mcsim.backtest`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..history import MIN_ROWS, PriceHistory, load_history, log_returns, resolve_path
from ..validation import Table, bad_value

__all__ = ["MarketSource", "SOURCES", "MARKET_KEYS", "parse_market", "scenario_history",
           "history_defaults", "check_market_source", "load_market_history", "chunk_generator"]

SOURCES = ("model", "bootstrap", "history")
MARKET_KEYS = ("source", "history", "mean_block_days", "iv_history", "iv_columns", "start", "end")


@dataclass(frozen=True)
class MarketSource:
    """The `[market]` table; `history_path` / `iv_path` are resolved against the scenario file."""

    source: str = "model"
    history: str | None = None
    mean_block_days: float = 20.0
    iv_history: str | None = None
    iv_columns: tuple[tuple[str, str], ...] = ()
    start: str | None = None
    end: str | None = None
    history_path: str = ""
    iv_path: str = ""

    @property
    def uses_history(self) -> bool:
        return self.source != "model"


def _iso_date(t: Table, key: str):
    v = t.raw(key, None)
    if v is None:
        return None
    try:
        d = np.datetime64(str(v), "D") if isinstance(v, str) else np.datetime64(v, "D")
    except (ValueError, TypeError):
        raise bad_value(t.field(key), v, "an ISO date YYYY-MM-DD") from None
    return str(d)


def parse_market(raw, scenario_source: str = "") -> MarketSource:
    """Read the `[market]` table (None: the model)."""
    if raw is None:
        return MarketSource()
    t = Table(raw, "market")
    t.expect(MARKET_KEYS)
    source = t.string("source", "model", choices=SOURCES)
    hist = t.string("history", None)
    if source != "model" and not hist:
        raise bad_value("market.history", hist, f'a price file (.csv or .parquet) with market.source = "{source}"')
    block = t.number("mean_block_days", 20.0, lo=1.0, hi=100000.0)
    ivh = t.string("iv_history", None)
    ivc = t.raw("iv_columns", {})
    if not isinstance(ivc, dict) or any(not isinstance(v, str) or not v for v in ivc.values()):
        raise bad_value("market.iv_columns", ivc, 'a table of underlying = "column name"')
    start = _iso_date(t, "start")
    end = _iso_date(t, "end")
    if start is not None and end is not None and end <= start:
        raise bad_value("market.end", end, f"a date after market.start = {start}")
    t.finish()
    if source == "model":
        for key, v in (("history", hist), ("iv_history", ivh), ("start", start), ("end", end)):
            if v is not None:
                raise bad_value(f"market.{key}", v, 'absent with market.source = "model" (the paths come from the model)')
    return MarketSource(
        source=source, history=hist, mean_block_days=block, iv_history=ivh,
        iv_columns=tuple(sorted(ivc.items())), start=start, end=end,
        history_path=str(resolve_path(hist, scenario_source)) if hist else "",
        iv_path=str(resolve_path(ivh, scenario_source)) if ivh else "",
    )


def check_market_source(ms: MarketSource, run, shocks) -> None:
    """What a price-file market cannot do (yet): scheduled shocks; withdrawals in a backtest."""
    if not ms.uses_history:
        return
    if shocks:
        raise bad_value("shocks", f"{len(shocks)} entries",
                        f'absent with market.source = "{ms.source}" (scheduled shocks belong to the model)')
    if ms.source == "history":
        for key in ("monthly_withdrawal", "monthly_withdrawal_pct"):
            v = getattr(run, key)
            if v > 0:
                raise bad_value(f"run.{key}", v, '0 with market.source = "history" (withdrawals on '
                                "calendar month ends of a backtest are not implemented)")


def load_market_history(ms: MarketSource, names) -> PriceHistory:
    """The price history of a `[market]` table, sliced to start..end, for underlyings `names`."""
    for u in dict(ms.iv_columns):
        if u not in names:
            raise bad_value("market.iv_columns", u, "an underlying name: " + ", ".join(names))
    h = load_history(ms.history_path, list(names), iv_path=ms.iv_path or None,
                     iv_columns=dict(ms.iv_columns), shown=ms.history,
                     iv_shown=ms.iv_history)
    if ms.start is None and ms.end is None:
        return h
    s = h.between(ms.start, ms.end)
    if s.n_rows < MIN_ROWS:
        raise bad_value("market.start" if ms.start else "market.end", ms.start or ms.end,
                        f"dates leaving at least {MIN_ROWS} rows of {ms.history} "
                        f"(its dates run {h.dates[0]} to {h.dates[-1]}; this leaves {s.n_rows})")
    return s


def history_defaults(h: PriceHistory, steps_per_year: int) -> dict[str, dict]:
    """Per underlying: the defaults a price file gives `spot` and `volatility`."""
    r = log_returns(h.prices)
    out = {}
    for j, name in enumerate(h.underlyings):
        vol = float(np.std(r[:, j], ddof=1) * math.sqrt(steps_per_year))
        out[name] = {"spot": float(h.prices[-1, j]), "volatility": min(max(vol, 1e-4), 5.0)}
    return out


def scenario_history(scenario) -> PriceHistory:
    """The (cached) price history behind a scenario with `market.source` bootstrap or history."""
    ms = scenario.market
    if not ms.uses_history:
        raise ValueError("scenario_history: the scenario's market.source is \"model\" (no price file)")
    return load_market_history(ms, scenario.underlying_names)


def chunk_generator(scenario):
    """A function (seed, first_path, n_paths, out=None, threads=None) -> (spot, atm_iv, regime)
    making the scenario's model or bootstrap paths (what `engine.simulate` calls per chunk)."""
    from functools import partial

    if scenario.market.source == "bootstrap":
        from .bootstrap import bootstrap_params, generate_bootstrap

        return partial(generate_bootstrap, bootstrap_params(scenario, scenario_history(scenario)))
    if scenario.market.source == "history":
        raise ValueError('chunk_generator: market.source = "history" is one path (see mcsim.backtest)')
    from .core import generate_market, market_params

    return partial(generate_market, market_params(scenario))
