"""Historical replay (`[market] source = "history"`): the rules on the one path a price file is.

`simulate` (and so `mcsim run`) on such a scenario is a backtest: one path, step t the t-th
row of the sample (after the IV warm-up, see `mcsim.market.bootstrap`), regime 0 throughout.
Monthly rows are calendar months of the dates (SPEC): the strategy kernels run with one-step
reporting months (month k holds step k + 1, month 0 also step 0) and the rows are summed into
calendar months here, so no kernel knows about dates. Step 0 belongs to the calendar month of
step 1, as month 0 of a simulation holds step 0 **(choice)**. The first and the last calendar
month are `partial` when the replay holds fewer of their trading days than their weekdays
minus 2 (at most 2 exchange holidays a month) **(choice)**; ann_vol, sharpe and sortino use the
full months, the risk-free rate per month exp(r d dt) - 1 over its d steps of interest.

`replay_history` gives the trade log with the date of each step (`date`) and of each expiry
(`expiry_date`; empty when the expiry lies past the end of the history).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd

from .market import MarketPaths
from .market.bootstrap import history_arrays
from .market.source import scenario_history

__all__ = ["history_market", "simulate_history", "replay_history", "calendar_months"]

_MAX_HOLIDAYS = 2   # exchange holidays in one calendar month at most (NYSE: January)


def history_market(scenario) -> tuple[MarketPaths, np.ndarray]:
    """The historical path of `scenario` as MarketPaths, and the date of each step."""
    spot, iv, reg, dates = history_arrays(scenario, scenario_history(scenario))
    m = MarketPaths(spot, iv, reg, scenario.underlying_names, scenario.run.steps_per_year, 0)
    return m, dates


def calendar_months(dates: np.ndarray) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(calendar-month index of each one-step month k = 0..n-1, month labels YYYY-MM, partial).

    One-step month k holds step k + 1 (and k = 0 also step 0): its calendar month is that of
    dates[k + 1].
    """
    months = dates.astype("datetime64[M]")
    step_month = months[1:]
    labels, idx = np.unique(step_month, return_inverse=True)
    partial = np.zeros(labels.shape[0], dtype=bool)
    for c in (0, labels.shape[0] - 1):
        m = labels[c]
        lo = m.astype("datetime64[D]")
        hi = (m + 1).astype("datetime64[D]")
        weekdays = int(np.busday_count(lo, hi))
        held = int(np.sum((dates >= lo) & (dates < hi)))
        partial[c] = held < weekdays - _MAX_HOLIDAYS
    return idx.astype(np.int64), [str(x) for x in labels], partial


def _daily(kp, n_steps: int):
    arr = kp.rules.p.copy()
    arr[0]["n_steps"] = n_steps
    arr[0]["month"] = 1
    arr[0]["n_months"] = n_steps
    return kp._replace(rules=kp.rules._replace(p=arr))


def simulate_history(scenario, threads: int | None = None):
    """Every strategy of `scenario` (plus the baselines) on its price history: a `Result` with
    one path whose `monthly` rows are calendar months (extra column `calendar_month`)."""
    from .engine import ChunkSpec, Result, _Plan, _return_stats, chunk_out
    from .memory import check_market_run

    market, dates = history_market(scenario)
    check_market_run(scenario, market)
    t0 = time.perf_counter()
    n = market.n_steps
    spec = ChunkSpec.build(scenario, 1, n)
    # one-step reporting months, summed into calendar months below
    spec = dataclasses.replace(spec, month=1, n_months=n, n_full=n, kps=tuple(_daily(kp, n) for kp in spec.kps))
    plan = _Plan(spec, 1, threads)
    n_s = len(plan.names)
    plan.fold(chunk_out(spec, 0, market.spot, market.atm_iv, market.regime, 1, None))

    idx, labels, partial = calendar_months(dates)
    n_c = len(labels)
    first = np.searchsorted(idx, np.arange(n_c), "left")
    last = np.searchsorted(idx, np.arange(n_c), "right") - 1
    days = (last - first + 1).astype(np.float64)
    run = scenario.run
    rf = np.expm1(run.risk_free_rate * days * run.dt)
    cols = {k: [] for k in ("premium", "net_premium", "realised_pnl", "mtm_return", "withdrawn", "equity")}
    short = []
    for s in range(n_s):
        sl = slice(s * n, (s + 1) * n)
        prem = np.bincount(idx, plan.m_cols["premium"][sl], n_c)
        net = np.bincount(idx, plan.m_cols["net_premium"][sl], n_c)
        real = np.bincount(idx, plan.m_cols["realised_pnl"][sl], n_c)
        wd = np.bincount(idx, plan.m_cols["withdrawn"][sl], n_c)
        eq_end = plan.m_cols["equity"][sl][last]
        eq0 = plan.out_path[s, 0]["equity0"]
        eq_start = np.concatenate([[eq0], eq_end[:-1]])
        with np.errstate(divide="ignore", invalid="ignore"):
            mtm = np.where(eq_start > 0.0, (eq_end + wd) / eq_start - 1.0, np.nan)
        full = ~partial
        plan.stats[s, 0:1] = _return_stats(mtm[full][None, :], rf[full][None, :])
        for k, v in (("premium", prem), ("net_premium", net), ("realised_pnl", real), ("mtm_return", mtm), ("withdrawn", wd),
                     ("equity", eq_end)):
            cols[k].append(v)
        short.append(np.bincount(idx, plan.m_short[sl].astype(np.float64), n_c) > 0)
    plan.n_months = n_c
    plan.m_cols = {k: np.concatenate(v) for k, v in cols.items()}
    plan.m_short = np.concatenate(short)
    res = plan.result(0, None, 1, None, time.perf_counter() - t0)
    mo = res.monthly
    mo["partial"] = np.tile(partial, n_s)
    mo["calendar_month"] = np.tile(np.array(labels, dtype=object), n_s)
    return Result(per_path=res.per_path, monthly=mo, scenario=res.scenario, seed=None, n_paths=1,
                  n_steps=n, chunk_paths=1, block_paths=None, wall_time=res.wall_time,
                  path_steps_per_second=res.path_steps_per_second, strategies=res.strategies)


def replay_history(scenario, strategy: str) -> pd.DataFrame:
    """Trade log of `strategy` on the price history, with `date` and `expiry_date` columns."""
    from .engine import replay_market

    market, dates = history_market(scenario)
    log = replay_market(scenario, market, strategy)
    text = np.array([str(d) for d in dates] + [""], dtype=object)
    n = dates.shape[0]
    step = log["step"].to_numpy()
    exp = log["expiry"].to_numpy()
    log.insert(0, "date", text[np.clip(step, 0, n - 1)])
    at = log.columns.get_loc("expiry") + 1
    log.insert(at, "expiry_date", text[np.where((exp >= 0) & (exp < n), exp, n)])
    return log
