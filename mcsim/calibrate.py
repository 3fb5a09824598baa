"""Calibration: scenario parameters estimated from a price history (`mcsim calibrate`).

Estimators (all on daily log returns r_t = ln(S_t / S_{t-1}), dt = 1 / steps_per_year; standard
errors from the estimator, stated beside each number in the written file):

* GBM: maximum likelihood, sigma^2 = var(r) / dt (ddof 0), expected_return = mean(r) / dt +
  sigma^2 / 2; se(sigma) = sigma / sqrt(2 n), se(mu) = sigma / sqrt(n dt).
* Merton jump-diffusion: maximum likelihood of the Poisson mixture of normals (at most
  `MAX_JUMPS_PER_DAY` jumps a day), fitted with statsmodels' `GenericLikelihoodModel` (BFGS,
  standard errors from its numerical Hessian; parameters on log scales for positivity, mapped
  back by the delta method).
* Regimes (`regimes >= 2`): statsmodels' `MarkovRegression` (Hamilton filter, EM start then
  BFGS, switching mean and variance) on the `regime_from` series; regimes sorted by volatility,
  calmest first. mcsim's chain leaves regime i with p_i = 1 - exp(-1 / d_i), so the mean
  duration is d_i = -1 / ln(P_ii) (delta-method se); exit probabilities P_ij / (1 - P_ii). The
  other underlyings' per-regime drift, vol and the per-regime correlation are moments weighted
  by the smoothed regime probabilities. With regimes, fat tails come from the switching: jumps
  are written as 0 and the Merton fit is a comment.
* Heston (`model = "heston"`): with an IV column, y_t = IV_t^2 (VIX-style 30-day implied
  variance, affine in the instantaneous variance) follows an AR(1) by OLS: y' = a + b y + e,
  kappa = -ln(b) / dt, the variance of e gives vol_of_vol (e = B xi sqrt(v dt) eps, B = (1 -
  exp(-kappa tau)) / (kappa tau), tau = 30 / 365), spot_vol_correlation = corr(r, e). Without
  one, the same regression on monthly (21-day, non-overlapping) realised variance, its
  measurement noise (2 E[v^2] / 21 for normal returns) removed from the variance before the
  AR(1) slope and vol of vol are read (approximate standard errors). long_run_vol comes from
  the returns (the GBM or per-regime vol), not from IV, which carries a premium.
* IV premium (with an IV column): per regime, the weighted mean of IV_t minus the realised vol of
  the 21 returns after t; se with n / 21 effective observations (overlapping windows).

Measured recovery (tests/test_calibrate.py, one 40-year daily path simulated by mcsim per model;
estimate, se, z = (estimate - truth) / se): GBM vol 0.2196 (se 0.0016, truth 0.22, z -0.2);
Merton diffusion vol 0.1512 (0.0012, 0.15, +1.1), intensity 4.83 (0.50, 5/year, -0.3), jump mean
-0.054 (0.0046, -0.05, -0.9), jump std 0.0368 (0.0025, 0.04, -1.3); two regimes: vols 0.0998
(0.0008, 0.10, -0.2) and 0.3009 (0.0052, 0.30, +0.2), mean durations 155 (23, 120 days, +1.5)
and 34.3 (5.2, 30, +0.8); Heston from IV: kappa 4.08 (0.51, 4, +0.2), vol of vol 0.500 (0.005,
0.5), spot-vol correlation -0.671 (truth -0.7: the se (1 - rho^2) / sqrt(n) = 0.005 counts
sampling only, the 0.03 gap is the daily discretisation and the IV proxy of the variance);
Heston from returns only: kappa 2.4 (0.6), vol of vol 0.35, correlation -0.49: rough, biased
toward zero, use an IV column when you have one.

statsmodels and scipy are the optional extra `mcsim[calibrate]`; hand-written EM was not used
because statsmodels' MarkovRegression is maintained, gives Hessian standard errors and fits
10,000 days in about 2 s here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import ScenarioError
from .history import RV_WINDOW, PriceHistory, log_returns

__all__ = ["Estimate", "Calibration", "calibrate", "fit_gbm", "fit_merton", "fit_regimes",
           "fit_heston", "iv_premium", "MODELS", "MAX_JUMPS_PER_DAY"]

MODELS = ("gbm", "merton", "heston")
MAX_JUMPS_PER_DAY = 6
IV_TAU = 30.0 / 365.0


def _need(module: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise ScenarioError(f"calibrate: the package {module.split('.')[0]} is not installed (must be "
                            "installed for mcsim calibrate: pip install \"mcsim[calibrate]\")") from None


@dataclass(frozen=True)
class Estimate:
    """A value and its standard error (nan when the estimator gives none)."""

    value: float
    se: float = math.nan

    def fmt(self, digits: int = 4) -> str:
        se = "n/a" if not math.isfinite(self.se) else f"{self.se:.{digits}g}"
        return f"{self.value:.{digits}g} (se {se})"


def _est(v, se=math.nan) -> Estimate:
    return Estimate(float(v), float(se) if se is not None else math.nan)


# --------------------------------------------------------------------------------------------
# single-series models


def fit_gbm(r: np.ndarray, steps_per_year: int) -> dict:
    """GBM maximum likelihood: {"expected_return", "volatility"} as Estimates (annualised)."""
    r = np.asarray(r, dtype=np.float64)
    n = r.shape[0]
    dt = 1.0 / steps_per_year
    var = float(np.mean((r - r.mean()) ** 2))
    sigma = math.sqrt(var / dt)
    mu = float(r.mean()) / dt + 0.5 * sigma**2
    return {"expected_return": _est(mu, sigma / math.sqrt(n * dt)),
            "volatility": _est(sigma, sigma / math.sqrt(2.0 * n))}


def _merton_loglike_obs(theta, r, n_max):
    m, log_s, log_lam, jm, log_js = theta
    s2 = math.exp(2.0 * log_s)
    lam = math.exp(log_lam)
    js2 = math.exp(2.0 * log_js)
    k = np.arange(n_max + 1, dtype=np.float64)
    logp = -lam + k * log_lam - np.array([math.lgamma(x + 1.0) for x in k])
    var = s2 + k * js2
    mean = m + k * jm
    z = (r[:, None] - mean[None, :]) ** 2 / var[None, :]
    ll = logp[None, :] - 0.5 * (np.log(2.0 * math.pi * var)[None, :] + z)
    top = ll.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(ll - top).sum(axis=1, keepdims=True)))[:, 0]


def fit_merton(r: np.ndarray, steps_per_year: int) -> dict:
    """Merton jump-diffusion by maximum likelihood (statsmodels GenericLikelihoodModel).

    Returns Estimates of expected_return, volatility (diffusion), jump_intensity (per year),
    jump_mean, jump_std (log jump), annualised; plus "loglike".
    """
    base = _need("statsmodels.base.model")
    r = np.asarray(r, dtype=np.float64)
    dt = 1.0 / steps_per_year
    sd = float(np.std(r))

    class Merton(base.GenericLikelihoodModel):
        def loglikeobs(self, params):
            return _merton_loglike_obs(params, self.endog, MAX_JUMPS_PER_DAY)

    starts = []
    big = np.abs(r - np.median(r)) > 3.0 * sd
    frac = max(float(big.mean()), 0.5 / r.shape[0])
    jm0 = float(np.mean(r[big])) if big.any() else -2.0 * sd
    js0 = float(np.std(r[big])) if big.sum() > 2 else 2.0 * sd
    core = r[~big] if (~big).sum() > 10 else r
    starts.append([float(np.mean(core)), math.log(max(np.std(core), 1e-6)), math.log(frac), jm0,
                   math.log(max(js0, 1e-4))])
    starts.append([float(np.mean(r)), math.log(0.8 * sd), math.log(0.02), -sd, math.log(2.0 * sd)])
    best = None
    for st in starts:
        model = Merton(r, extra_params_names=["m", "log_s", "log_lam", "jm", "log_js"])
        try:
            res = model.fit(start_params=np.array(st), method="bfgs", maxiter=2000, disp=False)
        except (ValueError, np.linalg.LinAlgError, FloatingPointError):
            continue
        if best is None or res.llf > best.llf:
            best = res
    if best is None:
        raise ScenarioError("calibrate: the Merton likelihood could not be maximised on this history")
    p = np.asarray(best.params, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        cov = np.asarray(best.cov_params(), dtype=np.float64)
    se = np.sqrt(np.where(np.diag(cov) > 0, np.diag(cov), np.nan))
    m, s, lam, jm, js = p[0], math.exp(p[1]), math.exp(p[2]), p[3], math.exp(p[4])
    sigma = s / math.sqrt(dt)
    k = math.expm1(jm + 0.5 * js * js)
    mu = m / dt + 0.5 * sigma**2 + lam * k / dt
    return {
        "expected_return": _est(mu, se[0] / dt),
        "volatility": _est(sigma, sigma * se[1]),
        "jump_intensity": _est(lam / dt, lam / dt * se[2]),
        "jump_mean": _est(jm, se[3]),
        "jump_std": _est(js, js * se[4]),
        "loglike": float(best.llf),
    }


# --------------------------------------------------------------------------------------------
# regimes


def fit_regimes(r: np.ndarray, k: int, steps_per_year: int) -> dict:
    """K-regime Markov-switching mean and variance (statsmodels MarkovRegression).

    Returns per regime (sorted by vol, calmest first): "volatility", "drift" (mean log return
    per year), "expected_return" (drift + vol^2 / 2), "mean_duration_days", lists of Estimates;
    "transition" (per-step matrix, rows from), "exit_probabilities", "smoothed" (n, k)
    probabilities, "loglike".
    """
    ms = _need("statsmodels.tsa.regime_switching.markov_regression")
    scale = 100.0  # percent returns: a better-conditioned likelihood
    y = np.asarray(r, dtype=np.float64) * scale
    model = ms.MarkovRegression(y, k_regimes=k, trend="c", switching_variance=True)
    best = None
    for reps in (0, 20):
        try:
            res = model.fit(search_reps=reps, disp=False)
        except (ValueError, np.linalg.LinAlgError):
            continue
        if best is None or res.llf > best.llf + 1e-6:
            best = res
        if best is not None and np.all(np.isfinite(best.bse)):
            break
    if best is None:
        raise ScenarioError(f"calibrate: a {k}-regime model could not be fitted to this history")
    names = list(model.param_names)
    params = np.asarray(best.params, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        cov = np.asarray(best.cov_params(), dtype=np.float64)
    tm = model.regime_transition_matrix(params)[:, :, 0].T   # [from, to]
    dt = 1.0 / steps_per_year
    sig2 = np.array([params[names.index(f"sigma2[{i}]")] for i in range(k)])
    const = np.array([params[names.index(f"const[{i}]")] for i in range(k)])
    order = np.argsort(sig2)

    def var_of(grad):
        v = float(grad @ cov @ grad)
        return v if v >= 0 else math.nan

    vols, drifts, mus, durs = [], [], [], []
    for i in order:
        g = np.zeros(len(names))
        g[names.index(f"sigma2[{i}]")] = 1.0
        s2 = sig2[i]
        vol = math.sqrt(s2 / dt) / scale
        se_vol = math.sqrt(var_of(g)) / (2.0 * math.sqrt(s2)) / scale / math.sqrt(dt)
        g = np.zeros(len(names))
        g[names.index(f"const[{i}]")] = 1.0
        drift = const[i] / scale / dt
        se_drift = math.sqrt(var_of(g)) / scale / dt
        vols.append(_est(vol, se_vol))
        drifts.append(_est(drift, se_drift))
        mus.append(_est(drift + 0.5 * vol**2, se_drift))
        # P_ii: a parameter (i < k-1) or 1 - sum of the free ones in row i
        g = np.zeros(len(names))
        if f"p[{i}->{i}]" in names:
            g[names.index(f"p[{i}->{i}]")] = 1.0
        else:
            for j in range(k - 1):
                g[names.index(f"p[{i}->{j}]")] = -1.0
        p_ii = float(tm[i, i])
        se_p = math.sqrt(var_of(g))
        lp = math.log(p_ii) if 0.0 < p_ii < 1.0 else math.nan
        durs.append(_est(-1.0 / lp, se_p / (p_ii * lp * lp)))
    tm_sorted = tm[np.ix_(order, order)]
    exits = []
    for i in range(k):
        row = tm_sorted[i].copy()
        row[i] = 0.0
        tot = row.sum()
        exits.append(list(row / tot) if tot > 0 else [1.0 / (k - 1) if j != i else 0.0 for j in range(k)])
    smoothed = np.asarray(best.smoothed_marginal_probabilities)[:, order]
    return {"volatility": vols, "drift": drifts, "expected_return": mus, "mean_duration_days": durs,
            "transition": tm_sorted, "exit_probabilities": exits, "smoothed": smoothed,
            "loglike": float(best.llf)}


def weighted_moments(r: np.ndarray, w: np.ndarray, steps_per_year: int) -> dict:
    """Per-regime moments of the return matrix r (n, n_u) with weights w (n, k)."""
    dt = 1.0 / steps_per_year
    k = w.shape[1]
    out = {"volatility": [], "expected_return": [], "correlation": []}
    for i in range(k):
        wi = w[:, i]
        tot = wi.sum()
        mean = (wi[:, None] * r).sum(axis=0) / tot
        d = r - mean
        cov = (wi[:, None, None] * d[:, :, None] * d[:, None, :]).sum(axis=0) / tot
        sd = np.sqrt(np.diag(cov))
        n_eff = tot**2 / (wi**2).sum()
        vol = sd / math.sqrt(dt)
        out["volatility"].append([_est(v, v / math.sqrt(2.0 * n_eff)) for v in vol])
        out["expected_return"].append([_est(mean[u] / dt + 0.5 * vol[u] ** 2, vol[u] / math.sqrt(n_eff * dt))
                                       for u in range(r.shape[1])])
        corr = cov / np.outer(sd, sd)
        np.fill_diagonal(corr, 1.0)
        out["correlation"].append((corr, n_eff))
    return out


# --------------------------------------------------------------------------------------------
# stochastic vol and IV


def _ols(y, x, weights=None):
    """(a, b), their covariance and the residuals of y = a + b x (WLS with `weights`)."""
    sm = _need("statsmodels.api")
    X = sm.add_constant(x)
    res = (sm.OLS(y, X) if weights is None else sm.WLS(y, X, weights=weights)).fit()
    return np.asarray(res.params), np.asarray(res.cov_params()), np.asarray(y - X @ res.params)


def fit_heston(r: np.ndarray, iv: np.ndarray | None, steps_per_year: int) -> dict:
    """Heston mean reversion, vol of vol and spot-vol correlation (module docstring).

    `iv`: the IV column (decimal, len(r) + 1 rows, row i = the close before r[i]) or None.
    Returns Estimates "mean_reversion", "vol_of_vol", "spot_vol_correlation", and "method".
    """
    r = np.asarray(r, dtype=np.float64)
    dt = 1.0 / steps_per_year
    if iv is not None:
        y = np.asarray(iv, dtype=np.float64) ** 2
        ok = np.isfinite(y[:-1]) & np.isfinite(y[1:])
        x0, x1, ret = y[:-1][ok], y[1:][ok], r[ok]
        # the innovation variance is proportional to v (CIR): weighted least squares, weights 1 / y
        (a, b), cov, e = _ols(x1, x0, weights=1.0 / np.maximum(x0, 1e-10))
        b = min(max(b, 1e-6), 1.0 - 1e-9)
        kappa = -math.log(b) / dt
        se_k = math.sqrt(cov[1, 1]) / (b * dt)
        bb = -math.expm1(-kappa * IV_TAU) / (kappa * IV_TAU)
        n = e.shape[0]
        # e = B xi sqrt(v dt) eps and E[v] = E[y]: xi^2 = E[e^2] / (B^2 dt E[y])
        q = e**2
        xi = math.sqrt(q.mean() / (bb * bb * dt * x0.mean()))
        se_xi = xi * 0.5 * (q.std() / math.sqrt(n)) / q.mean()
        rho = float(np.corrcoef(ret - ret.mean(), e / np.sqrt(np.maximum(x0, 1e-10)))[0, 1])
        method = "AR(1) of daily IV^2 (weighted least squares, weights 1 / IV^2)"
        n_obs = n
    else:
        w = RV_WINDOW
        m = r.shape[0] // w
        if m < 24:
            raise ScenarioError("calibrate: --model heston without an IV column needs at least 24 months "
                                f"of returns ({m} here)")
        blocks = r[: m * w].reshape(m, w)
        rv = (blocks**2).sum(axis=1) / (w * dt)        # annualised realised variance per month
        noise = 2.0 * np.mean(rv**2) / (w + 2.0)          # E[(RV - v)^2] for normal daily returns
        x0, x1 = rv[:-1], rv[1:]
        (a, b_obs), cov, e = _ols(x1, x0)
        var_rv = float(np.var(rv))
        atten = max((var_rv - noise) / var_rv, 0.05)
        b = min(max(b_obs / atten, 1e-6), 1.0 - 1e-6)
        h = w * dt
        kappa = -math.log(b) / h
        se_k = math.sqrt(cov[1, 1]) / atten / (b * h)
        theta = float(rv.mean())
        var_v = max(var_rv - noise, 1e-12)
        xi = math.sqrt(2.0 * kappa * var_v / theta)
        se_xi = xi * math.sqrt(2.0 / m)
        mret = blocks.sum(axis=1)
        d_rv = np.diff(rv)
        var_d = max(float(np.var(d_rv)) - 2.0 * noise, 0.05 * float(np.var(d_rv)))  # noise of two months
        rho = float(np.cov(mret[1:], d_rv)[0, 1] / math.sqrt(float(np.var(mret[1:], ddof=1)) * var_d))
        rho = min(max(rho, -1.0), 1.0)
        method = "AR(1) of monthly realised variance, measurement noise removed (approximate se)"
        n_obs = m
    return {"mean_reversion": _est(kappa, se_k), "vol_of_vol": _est(xi, se_xi),
            "spot_vol_correlation": _est(rho, (1.0 - rho * rho) / math.sqrt(n_obs)), "method": method}


def iv_premium(r: np.ndarray, iv: np.ndarray, steps_per_year: int, w: np.ndarray | None = None) -> list:
    """Per regime (columns of w; one regime when None): IV minus the next 21 days' realised vol.

    iv: (len(r) + 1,) decimal, row i = the close before r[i]; w: (len(r), k) regime weights of
    each return (the premium at row i takes the regime of return i - 1)."""
    n = r.shape[0]
    c = np.concatenate([[0.0], np.cumsum(r**2)])
    i = np.arange(n - RV_WINDOW + 1)
    fwd = np.sqrt((c[i + RV_WINDOW] - c[i]) * steps_per_year / RV_WINDOW)   # returns i..i+20
    prem = iv[: n - RV_WINDOW + 1] - fwd
    ok = np.isfinite(prem)
    if w is None:
        w = np.ones((n, 1))
    wr = np.vstack([w[:1], w[:-1]])[: n - RV_WINDOW + 1]
    out = []
    for j in range(w.shape[1]):
        wj = wr[:, j] * ok
        tot = wj.sum()
        if tot <= 0:
            out.append(_est(0.0))
            continue
        p = np.where(ok, prem, 0.0)
        mean = float((wj * p).sum() / tot)
        sd = math.sqrt(float((wj * (p - mean) ** 2).sum() / tot))
        n_eff = max(tot / RV_WINDOW, 1.0)
        out.append(_est(mean, sd / math.sqrt(n_eff)))
    return out


# --------------------------------------------------------------------------------------------
# everything


@dataclass
class Calibration:
    """What `calibrate` estimated (annualised decimals, Estimates with standard errors)."""

    history: PriceHistory
    steps_per_year: int
    model: str
    regimes: int
    regime_from: str
    gbm: dict = field(default_factory=dict)        # underlying -> fit_gbm
    merton: dict = field(default_factory=dict)     # underlying -> fit_merton
    regime_fit: dict | None = None                 # fit_regimes on regime_from
    moments: dict | None = None                    # weighted_moments (per regime, per underlying)
    heston: dict = field(default_factory=dict)     # underlying -> fit_heston
    premium: dict = field(default_factory=dict)    # underlying -> [Estimate per regime]
    correlation: list = field(default_factory=list)  # per regime: (matrix, n_eff)


def calibrate(h: PriceHistory, *, regimes: int = 1, regime_from: str | None = None,
              model: str = "merton", steps_per_year: int = 252) -> Calibration:
    """Estimate a scenario's market from a price history (module docstring)."""
    if model not in MODELS:
        raise ScenarioError(f"calibrate: --model {model!r} is not allowed (must be one of {', '.join(MODELS)})")
    if not 1 <= regimes <= 5:
        raise ScenarioError(f"calibrate: --regimes {regimes} is not allowed (must be an integer in [1, 5])")
    names = h.underlyings
    regime_from = regime_from or names[0]
    if regime_from not in names:
        raise ScenarioError(f'calibrate: --regime-from "{regime_from}" is not allowed (must be one of {", ".join(names)})')
    r = log_returns(h.prices)
    cal = Calibration(h, steps_per_year, model, regimes, regime_from)
    for j, u in enumerate(names):
        cal.gbm[u] = fit_gbm(r[:, j], steps_per_year)
        if model == "merton":
            cal.merton[u] = fit_merton(r[:, j], steps_per_year)
    w = None
    if regimes > 1:
        cal.regime_fit = fit_regimes(r[:, names.index(regime_from)], regimes, steps_per_year)
        w = cal.regime_fit["smoothed"]
        cal.moments = weighted_moments(r, w, steps_per_year)
        cal.correlation = cal.moments["correlation"]
    else:
        cal.correlation = [(np.corrcoef(r.T) if len(names) > 1 else np.ones((1, 1)), float(r.shape[0]))]
    for j, u in enumerate(names):
        if h.has_iv(j):
            cal.premium[u] = iv_premium(r[:, j], h.iv[:, j], steps_per_year, w)
        if model == "heston":
            cal.heston[u] = fit_heston(r[:, j], h.iv[:, j] if h.has_iv(j) else None, steps_per_year)
    return cal
