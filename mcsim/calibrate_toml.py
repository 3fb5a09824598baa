"""A `Calibration` as a runnable scenario file: estimates as keys, standard errors and the sample
as comments. The text is parsed back with `parse_scenario` before it is returned, so a written
file always loads."""

from __future__ import annotations

import math
import tomllib

import numpy as np

from .calibrate import Calibration, Estimate

__all__ = ["scenario_text", "OWNER_MARK", "regime_names"]

OWNER_MARK = "# written by mcsim calibrate"


def regime_names(k: int) -> list[str]:
    return {1: ["single"], 2: ["calm", "stressed"], 3: ["calm", "normal", "stressed"]}.get(
        k, [f"regime{i}" for i in range(k)])


def _num(x: float, digits: int = 6) -> str:
    x = float(x)
    if x == 0.0:
        return "0.0"
    text = f"{x:.{digits}g}"
    if "e" in text:
        text = repr(float(text))
    if "." not in text and "e" not in text and "inf" not in text and "nan" not in text:
        text += ".0"
    return text


def _clip(x, lo, hi):
    return min(max(float(x), lo), hi)


def _vals(ests, lo, hi, digits=6):
    vals = [_clip(e.value, lo, hi) for e in ests]
    if len(vals) == 1:
        return _num(vals[0], digits)
    return "[" + ", ".join(_num(v, digits) for v in vals) + "]"


def _ses(ests):
    parts = ["n/a" if not math.isfinite(e.se) else f"{e.se:.3g}" for e in ests]
    return parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"


def _line(key: str, ests, lo, hi, note: str = "", digits=6) -> str:
    if isinstance(ests, Estimate):
        ests = [ests]
    head = f"{key} = {_vals(ests, lo, hi, digits)}"
    return f"{head.ljust(44)} # se {_ses(ests)}{('; ' + note) if note else ''}"


def _matrix(m) -> str:
    return "[" + ", ".join("[" + ", ".join(_num(x, 4) for x in row) + "]" for row in m) + "]"


def _corr(c: np.ndarray) -> np.ndarray:
    c = np.round((c + c.T) / 2.0, 4)
    np.fill_diagonal(c, 1.0)
    if c.shape[0] > 1 and np.linalg.eigvalsh(c).min() < 1e-8:
        w, v = np.linalg.eigh(c)
        c = v @ np.diag(np.maximum(w, 1e-4)) @ v.T
        d = np.sqrt(np.diag(c))
        c = np.round(c / np.outer(d, d), 4)
        np.fill_diagonal(c, 1.0)
    return c


def scenario_text(cal: Calibration, *, source: str, command: str, version: str, preamble: str = "") -> str:
    """The scenario file of `cal` (see the module docstring); `preamble`: a first comment line."""
    h = cal.history
    k = cal.regimes
    names = regime_names(k)
    n_ret = h.n_rows - 1
    L = ([preamble] if preamble else []) + [
        f"{OWNER_MARK} (mcsim {version}); regenerate rather than edit the estimates by hand",
        f"# command: {command}",
        f"# sample: {source}, columns {', '.join(h.underlyings)}, {h.dates[0]} to {h.dates[-1]}, "
        f"{h.n_rows} rows ({n_ret} daily log returns), {cal.steps_per_year} steps per year",
        f"# model: {cal.model}; regimes: {k}" + (f", fitted on {cal.regime_from} (statsmodels MarkovRegression, "
                                                 "switching mean and variance)" if k > 1 else ""),
        "# every estimate is followed by its standard error (se) from the estimator; see mcsim/calibrate.py",
        f'title = "Calibrated from {source} ({h.dates[0]} to {h.dates[-1]}, {cal.model}, {k} regime{"s" if k > 1 else ""})"',
        "",
        "[run]",
        "horizon_years = 5.0",
        f"steps_per_year = {cal.steps_per_year}",
        "paths = 20000",
        "seed = 2026",
        "initial_equity = 100000.0",
        "risk_free_rate = 0.04",
        "",
    ]
    rf = cal.regime_fit
    if rf is not None:
        L += ["[regimes]",
              "names = [" + ", ".join(f'"{x}"' for x in names) + "]",
              _line("mean_duration_days", rf["mean_duration_days"], 1.0, 1e6, "trading days, d = -1 / ln(P_ii)", 5),
              "exit_probabilities = " + _matrix([[0.0 if i == j else e for j, e in enumerate(row)]
                                                 for i, row in enumerate(rf["exit_probabilities"])]),
              'initial = "stationary"', ""]
        L.append("# per-step transition matrix (rows from, columns to): " + _matrix(rf["transition"]))
        L.append("")
    for j, u in enumerate(h.underlyings):
        gbm = cal.gbm[u]
        mer = cal.merton.get(u)
        L += ["[[underlyings]]", f'name = "{u}"',
              f"spot = {_num(h.prices[-1, j])}".ljust(44) + f" # the last close, {h.dates[-1]}",
              "dividend_yield = 0.0".ljust(44) + " # a price history: expected_return is the price drift"]
        if rf is not None:
            if u == cal.regime_from:
                mu, vol = rf["expected_return"], rf["volatility"]
            else:
                mu = [cal.moments["expected_return"][i][j] for i in range(k)]
                vol = [cal.moments["volatility"][i][j] for i in range(k)]
            how = "Markov-switching fit" if u == cal.regime_from else f"moments weighted by the {cal.regime_from} regime probabilities"
            L.append(_line("expected_return", mu, -5.0, 5.0, how))
            vol_line = _line("volatility", vol, 1e-4, 5.0, how)
            if mer is not None:
                L.append(f"# Merton fit for reference (not used: the regimes make the fat tails): vol "
                         f"{mer['volatility'].fmt()}, jump_intensity {mer['jump_intensity'].fmt()}/year, "
                         f"jump_mean {mer['jump_mean'].fmt()}, jump_std {mer['jump_std'].fmt()}")
        elif mer is not None:
            L.append(_line("expected_return", mer["expected_return"], -5.0, 5.0, "Merton maximum likelihood"))
            vol_line = _line("volatility", mer["volatility"], 1e-4, 5.0, "diffusion vol, Merton maximum likelihood")
            L.append(_line("jump_intensity", mer["jump_intensity"], 0.0, 252.0, "jumps per year"))
            L.append(_line("jump_mean", mer["jump_mean"], -5.0, 5.0, "mean log jump"))
            L.append(_line("jump_std", mer["jump_std"], 0.0, 5.0, "std of the log jump"))
            vol = [mer["volatility"]]
        else:
            L.append(_line("expected_return", gbm["expected_return"], -5.0, 5.0, "GBM maximum likelihood"))
            vol_line = _line("volatility", gbm["volatility"], 1e-4, 5.0, "GBM maximum likelihood")
            vol = [gbm["volatility"]]
        L.append(f"# GBM for reference: volatility {gbm['volatility'].fmt()}, expected_return "
                 f"{gbm['expected_return'].fmt()}")
        hs = cal.heston.get(u)
        if hs is None:
            L.append(vol_line)
        L += ["strike_step = 1.0", "expiry_every_days = 5", "", "[underlyings.implied_vol]"]
        prem = cal.premium.get(u)
        if prem is not None:
            L.append(_line("premium", prem, -1.0, 1.0, "mean IV minus the next 21 days' realised vol"
                           + (", per regime" if k > 1 else "")))
        else:
            L.append("premium = 0.0".ljust(44) + " # no IV column: not estimated")
        L += ["skew = 0.0".ljust(44) + " # not estimated (needs option quotes)", "floor = 0.05", ""]
        if hs is not None:
            L += ["[underlyings.stochastic_vol]",
                  f"# estimator: {hs['method']}",
                  _line("mean_reversion", hs["mean_reversion"], 1e-3, 1000.0, "kappa per year"),
                  _line("long_run_vol", vol, 1e-4, 5.0, "sqrt(theta) from the returns, not from IV"),
                  _line("vol_of_vol", hs["vol_of_vol"], 1e-3, 20.0),
                  _line("spot_vol_correlation", hs["spot_vol_correlation"], -1.0, 1.0), ""]
    if len(h.underlyings) > 1:
        L.append("[correlation]")
        mats = [_corr(c) for c, _ in cal.correlation]
        n_effs = ", ".join(f"{n:.0f}" for _, n in cal.correlation)
        se = ", ".join(f"{(1 - float(np.max(np.abs(m[np.triu_indices(len(m), 1)]))) ** 2) / math.sqrt(n):.3g}"
                       for m, (_, n) in zip(mats, cal.correlation))
        L.append(f"# se of a correlation about (1 - rho^2) / sqrt(n): at most {se} (effective days {n_effs})")
        if len(mats) == 1:
            L.append("matrix = " + _matrix(mats[0]))
        else:
            L.append("per_regime = [" + ", ".join(_matrix(m) for m in mats) + "]")
        L.append("")
    L += ["# an example rule set: a 30-delta wheel in fractional contracts (one contract of an index",
          "# needs strike x 100 of collateral)",
          "[[strategies]]", 'name = "wheel_30d"', 'kind = "wheel"', f'underlyings = ["{h.underlyings[0]}"]',
          "[strategies.put]", "delta = 0.30", "dte = 35", "[strategies.call]", "delta = 0.30", "dte = 35",
          "[strategies.sizing]", 'contracts = "fractional"', ""]
    text = "\n".join(L)
    from .scenario import parse_scenario

    parse_scenario(tomllib.loads(text), source="calibrated")   # always a runnable file
    return text
