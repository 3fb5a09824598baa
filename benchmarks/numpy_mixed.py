"""Plain-numpy twin of benchmarks/mixed.toml's rules, and the mixed benchmark of issue 13.

    python benchmarks/numpy_mixed.py [--paths 20000] [--numpy-paths N] [--repeat 3] [--json FILE]
    python benchmarks/numpy_mixed.py --check [--check-paths 400]

`run_numpy(scenario, spot, atm_iv, regime)` runs every strategy of the scenario (a wheel, a bull
put spread ladder, the buy_and_hold and cash baselines) with numpy arrays across paths and a
Python loop over steps, on the market arrays mcsim generates (`mcsim.simulate_market` or
`mcsim.market.source.chunk_generator`), and returns per strategy the per-path final equity,
options sold, assignments and calls away. It follows docs/semantics.md and mirrors the kernels'
arithmetic (the same formulas in the same order: the fused smile / Black-Scholes leg of
`options_nb.pair_from_terms`, N(x) as 0.5 erfc(-x / sqrt 2) as the kernels write it, the tau
tables of `params._tau_tables`, Wichura's AS241 for the delta strike, the cash updates of
`positions` / `entries`), so that it agrees with `mcsim.run_strategies` to rounding, path by
path: the only differences left are numpy's `exp`, `log` and scipy's `erfc` against glibc's
(measured: final equity within 4e-15 relative on every path, counts identical).

It implements what the mixed scenario uses and refuses anything else (NotImplementedError):
one underlying, constant vol (no term structure), American or European exercise, no early
assignment, no high_iv, no withdrawals; strikes by delta or otm_pct; profit take, stop loss,
close_dte; rolls with roll_when = "itm" and roll_strike = "credit" (the linear credit scan).

`bench_mixed(n_paths, repeat)` times, in one run and after warm-up: `mcsim.simulate` on the
mixed scenario, each strategy kernel alone with the engine's thread split, and this numpy twin
(on the same paths by default), alternately, and returns the medians and the ratios.
`--check` compares the twin with `mcsim.run_strategies` on the same market.

Units: money in dollars, strikes and option prices in $ per share, time in trading steps
(options: years), one contract = 100 shares.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from scipy.special import erfc

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import mcsim  # noqa: E402
from mcsim.scenario import calendar_days_to_steps  # noqa: E402

SCENARIO = ROOT / "benchmarks" / "mixed.toml"

_INV_SQRT2 = 0.7071067811865475244008443621048490
_ROUND_RTOL = 1e-9        # pricing.round_strike_nb: snap to a grid point within 1e-9 relative
MIN_CONTRACTS = 1e-6      # a new position smaller than this is no trade
SHARE_DUST = 1e-6         # a share remainder below this is set to 0
ROLL_SCAN = 1000          # a credit roll tries at most this many strikes

# --------------------------------------------------------------------------------------------
# pricing, vectorised (the kernels' scalar formulas, operation for operation)

# Wichura AS241 (PPND16) coefficients, as mcsim.special
_A = (3.3871328727963666080e0, 1.3314166789178437745e2, 1.9715909503065514427e3, 1.3731693765509461125e4,
      4.5921953931549871457e4, 6.7265770927008700853e4, 3.3430575583588128105e4, 2.5090809287301226727e3)
_B = (1.0, 4.2313330701600911252e1, 6.8718700749205790830e2, 5.3941960214247511077e3,
      2.1213794301586595867e4, 3.9307895800092710610e4, 2.8729085735721942674e4, 5.2264952788528545610e3)
_C = (1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0, 3.64784832476320460504e0,
      1.27045825245236838258e0, 2.41780725177450611770e-1, 2.27238449892691845833e-2, 7.74545014278341407640e-4)
_D = (1.0, 2.05319162663775882187e0, 1.67638483018380384940e0, 6.89767334985100004550e-1,
      1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4, 1.05075007164441684324e-9)
_E = (6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0, 2.96560571828504891230e-1,
      2.65321895265761230930e-2, 1.24266094738807843860e-3, 2.71155556874348757815e-5, 2.01033439929228813265e-7)
_F = (1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
      7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7, 2.04426310338993978564e-15)


def _poly(c, r):
    """c[7] r^7 + ... + c[0], Horner from the top, as special.norm_ppf writes it."""
    x = c[7] * r + c[6]
    for k in (5, 4, 3, 2, 1, 0):
        x = x * r + c[k]
    return x


def norm_ppf(p: float) -> float:
    """Inverse normal CDF (AS241) of one probability: a scalar in the kernels' strike solve too
    (the target delta and the option's tenor are the same on every path of a step)."""
    if not (0.0 < p < 1.0):
        return -math.inf if p == 0.0 else (math.inf if p == 1.0 else math.nan)
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        return q * _poly(_A, r) / _poly(_B, r)
    r = p if q < 0.0 else 1.0 - p
    r = math.sqrt(-math.log(r))
    if r <= 5.0:
        r -= 1.6
        val = _poly(_C, r) / _poly(_D, r)
    else:
        r -= 5.0
        val = _poly(_E, r) / _poly(_F, r)
    return -val if q < 0.0 else val


def strike_for_delta(spot, delta, t, rate, div, vol, is_call, skew, floor):
    """pricing.strike_for_delta_nb over arrays spot, vol, skew (scalars delta, t, rate, div,
    floor): the strike whose |delta| at its smile IV is `delta`; nan where unreachable."""
    spot = np.asarray(spot, dtype=np.float64)
    nan = np.full(spot.shape, np.nan)
    if t <= 0.0:
        return nan
    p = delta * math.exp(div * t)
    if not (delta > 0.0 and delta < math.exp(-div * t) and p < 1.0):
        return nan
    sqt = math.sqrt(t)
    d_target = norm_ppf(p)
    if not is_call:
        d_target = -d_target
    fwd = spot * math.exp((rate - div) * t)
    a = vol
    s = np.broadcast_to(np.asarray(skew, dtype=np.float64), spot.shape)
    out = nan.copy()
    flat = (s == 0.0) | (a <= 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if flat.any():
            sig = np.maximum(floor, a[flat])
            w = sig * sqt
            kf = fwd[flat] * np.exp(-(d_target * w - 0.5 * w * w))
            out[flat] = np.where(sig > 0.0, kf, np.nan)
        lin = ~flat
        if lin.any():
            a_sd = a[lin] * sqt
            f_sd = floor * sqt
            sl = s[lin]
            fw = fwd[lin]
            b = 1.0 - sl * d_target
            disc = b * b + 2.0 * sl * a_sd
            sq = np.sqrt(np.where(disc >= 0.0, disc, np.nan))
            pos = sl > 0.0
            w_small = np.where(pos, np.where(b >= 0.0, 2.0 * a_sd / (b + sq), (sq - b) / sl),
                               np.where(b > 0.0, 2.0 * a_sd / (b + sq), np.nan))
            w_large = np.where(~pos & (b > 0.0), (b + sq) / (-sl), np.nan)
            res = np.full(a_sd.shape, np.nan)
            c1 = (w_small > 0.0) & (w_small >= f_sd)
            res[c1] = fw[c1] * np.exp(-(w_small[c1] * (d_target - 0.5 * w_small[c1])))
            left = ~c1
            if f_sd > 0.0:
                u = f_sd * (d_target - 0.5 * f_sd)
                c2 = left & (a_sd + sl * u <= f_sd)
                res[c2] = fw[c2] * math.exp(-u)
                left &= ~c2
            c3 = left & (w_large > 0.0) & (w_large >= f_sd)
            res[c3] = fw[c3] * np.exp(-(w_large[c3] * (d_target - 0.5 * w_large[c3])))
            out[lin] = res
    return out


def round_strike(k, step, is_call):
    """pricing.round_strike_nb: to the grid, puts down, calls up; within 1e-9 relative snaps."""
    x = k / step
    n = np.floor(x + 0.5)
    snap = np.abs(k - n * step) <= _ROUND_RTOL * np.abs(k)
    away = np.ceil(x) * step if is_call else np.floor(x) * step
    return np.where(snap, n * step, away)


def nearest_expiry(target, after, every):
    """options_nb.nearest_expiry over arrays (or scalars): the listed step k*every > after
    nearest target, ties to the later one."""
    lo = (target // every) * every
    hi = lo + every
    return np.where((lo > after) & (lo >= every) & (target - lo < hi - target), lo, hi)


class Chain:
    """One underlying's option chain at the close: tau tables over k = steps to expiry (the
    kernels' `params._tau_tables`, computed with Python's math as they are), the smile, fills."""

    def __init__(self, scenario, n_steps: int, p: dict):
        run = scenario.run
        u = scenario.underlyings[0]
        self.spy = run.steps_per_year
        self.r = float(run.risk_free_rate)
        self.q = float(u.dividend_yield)
        self.floor = float(u.implied_vol.floor)
        self.skew = np.asarray(u.implied_vol.skew, dtype=np.float64)
        self.step = float(u.strike_step)
        self.every = int(u.expiry_every_days)
        self.american = u.exercise == "american"
        self.slip = float(scenario.costs.slippage_per_share)
        self.slip_pct = float(scenario.costs.slippage_pct)
        self.comm = float(scenario.costs.commission_per_contract)
        self.fee = float(scenario.costs.assignment_fee)
        kmax = n_steps + 2 * max(p["dte_max"], 1) + self.every + 2
        taus = [k / self.spy for k in range(kmax)]
        self.sqt = np.array([math.sqrt(x) for x in taus])
        self.isqt = np.array([1.0 / math.sqrt(x) if k > 0 else 0.0 for k, x in enumerate(taus)])
        self.df_r = np.array([math.exp(-self.r * x) for x in taus])
        self.df_q = np.array([math.exp(-self.q * x) for x in taus])
        self.drift = np.array([(self.r - self.q) * x for x in taus])
        if not self.floor > 0.0:
            raise NotImplementedError("numpy twin: implied_vol.floor must be > 0")

    def _leg(self, k, log_k, lf, sqt, a, sk_isqt, df_r, sdf_q, is_call):
        """options_nb._fused_leg (a > 0 and a positive floor: the smile branch only)."""
        lfk = lf - log_k
        iv = np.where(a > 0.0, np.maximum(self.floor, a + sk_isqt * lfk), np.maximum(self.floor, a))
        sd = iv * sqt
        d1 = lfk / sd + 0.5 * sd
        d2 = d1 - sd
        if is_call:
            return sdf_q * (0.5 * erfc(-d1 * _INV_SQRT2)) - k * df_r * (0.5 * erfc(-d2 * _INV_SQRT2))
        return k * df_r * (0.5 * erfc(d2 * _INV_SQRT2)) - sdf_q * (0.5 * erfc(d1 * _INV_SQRT2))

    def mids(self, s, log_s, a, skew, kk, k1, log_k1, k2=None, log_k2=None, is_call=False):
        """Mids ($/share) of strike k1 (and k2, a spread's long put) kk >= 1 steps from expiry:
        options_nb.pair_from_terms with positions.mids_at's terms."""
        sqt = self.sqt[kk]
        lf = log_s + self.drift[kk]
        sdf_q = s * self.df_q[kk]
        sk_isqt = skew * self.isqt[kk]
        df_r = self.df_r[kk]
        m1 = self._leg(k1, log_k1, lf, sqt, a, sk_isqt, df_r, sdf_q, is_call)
        m2 = None
        if k2 is not None:
            m2 = self._leg(k2, log_k2, lf, sqt, a, sk_isqt, df_r, sdf_q, False)
        if self.american:
            if is_call:
                m1 = np.maximum(m1, s - k1)
            else:
                m1 = np.maximum(m1, k1 - s)
                if k2 is not None:
                    m2 = np.maximum(m2, k2 - s)
        return m1, m2

    def mids_either(self, s, log_s, a, skew, kk, k, log_k, is_call):
        """Single-leg mids where is_call is an array (a wheel's put or call)."""
        out = np.empty(np.shape(k))
        for flag in (False, True):
            w = is_call == flag
            if w.any():
                kkw = kk[w] if np.ndim(kk) else kk
                out[w] = self.mids(s[w], log_s[w], a[w], skew[w], kkw, k[w], log_k[w], is_call=flag)[0]
        return out

    def sell_fill(self, mid):
        return np.maximum(mid - (self.slip + self.slip_pct * mid), 0.0)

    def buy_fill(self, mid):
        return mid + (self.slip + self.slip_pct * mid)

    def rule_strike(self, s, a, skew, tau, rule, is_call):
        """options_nb.rule_strike: the delta (or otm_pct) strike rounded away from the money."""
        mode, value = rule
        if mode == "delta":
            k = strike_for_delta(s, value, tau, self.r, self.q, a, is_call, skew, self.floor)
        else:
            k = s * (1.0 + value) if is_call else s * (1.0 - value)
        with np.errstate(invalid="ignore"):
            return round_strike(k, self.step, is_call)


# --------------------------------------------------------------------------------------------
# rules of one strategy


def _rule(opt):
    return ("delta", float(opt.delta)) if opt.delta is not None else ("otm_pct", float(opt.otm_pct))


def _params(scenario, rules) -> dict:
    """The strategy's rules in kernel units (steps), refusing what this twin does not do."""
    spy = scenario.run.steps_per_year
    mg = rules.manage
    p = {"kind": rules.kind, "every": int(rules.entry_every_days), "dte_max": 1}
    if rules.kind in ("buy_and_hold", "cash"):
        return p
    if rules.high_iv is not None:
        raise NotImplementedError("numpy twin: high_iv")
    if mg.early_assignment and scenario.underlyings[0].exercise == "american":
        raise NotImplementedError("numpy twin: manage.early_assignment (set it false)")
    if mg.roll_when not in ("off", "itm") or (mg.roll_when != "off" and mg.roll_strike != "credit"):
        raise NotImplementedError("numpy twin: only roll_when = 'itm' with roll_strike = 'credit'")
    if rules.kind == "bull_put_spread" and mg.roll_when != "off":
        raise NotImplementedError("numpy twin: spread rolls")
    if rules.kind not in ("wheel", "bull_put_spread"):
        raise NotImplementedError(f"numpy twin: kind {rules.kind}")
    put = rules.put
    p.update(put_rule=_rule(put), put_dte=max(1, calendar_days_to_steps(put.dte, spy)),
             put_min_credit=float(put.min_credit), pf=float(rules.sizing.position_fraction),
             integer=rules.sizing.contracts == "integer", max_open=int(rules.sizing.max_open),
             pt=float(mg.profit_take), sl=float(mg.stop_loss), close_dte_on=mg.close_dte > 0,
             close_dte=calendar_days_to_steps(mg.close_dte, spy), roll=mg.roll_when == "itm",
             roll_dte=calendar_days_to_steps(mg.roll_dte, spy),
             roll_out=max(1, calendar_days_to_steps(mg.roll_out_days, spy)),
             credit_only=bool(mg.roll_credit_only), roll_min_credit=float(mg.roll_min_credit),
             max_rolls=int(mg.max_rolls), close_if_unable=bool(mg.close_if_unable_to_roll))
    p["dte_max"] = max(p["put_dte"], p["roll_dte"] + p["roll_out"])
    if rules.kind == "wheel":
        call = rules.call
        p.update(call_rule=_rule(call), call_dte=max(1, calendar_days_to_steps(call.dte, spy)),
                 call_min_credit=float(call.min_credit), min_strike=call.min_strike)
        p["dte_max"] = max(p["dte_max"], p["call_dte"])
    else:
        p["width"] = ("abs", float(rules.width)) if rules.width is not None else ("pct", float(rules.width_pct))
    return p


def _floor_if(x, integer):
    return np.floor(x) if integer else x


def _check_scenario(scenario):
    if scenario.n_underlyings != 1:
        raise NotImplementedError("numpy twin: one underlying")
    u = scenario.underlyings[0]
    if u.stochastic_vol is not None:
        raise NotImplementedError("numpy twin: stochastic vol (term structure)")
    if scenario.run.monthly_withdrawal > 0.0 or scenario.run.monthly_withdrawal_pct > 0.0:
        raise NotImplementedError("numpy twin: withdrawals")


# --------------------------------------------------------------------------------------------
# strategies: arrays across paths, a Python loop over steps


def _carry_consts(scenario):
    dt = scenario.run.dt
    q = float(scenario.underlyings[0].dividend_yield)
    return (math.exp(scenario.run.risk_free_rate * dt) - 1.0, math.exp(q * dt) - 1.0, math.exp(q * dt))


def run_cash(scenario, spot, atm, reg):
    er, _, _ = _carry_consts(scenario)
    n = spot.shape[1] - 1
    cash = np.full(spot.shape[0], float(scenario.run.initial_equity))
    eq = cash
    for _ in range(1, n + 1):
        cash = cash + cash * er
        eq = cash                                  # the mark: cash alone
    return {"final_equity": eq}


def run_buy_and_hold(scenario, spot, atm, reg):
    er, eqdt1, eqdt = _carry_consts(scenario)
    n = spot.shape[1] - 1
    cash = np.full(spot.shape[0], float(scenario.run.initial_equity))
    alloc = cash / 1.0
    shares = 0.0 + alloc / spot[:, 0]
    cash = cash - alloc
    eq = np.where(shares != 0.0, cash + shares * spot[:, 0], cash)
    for t in range(1, n + 1):
        cash = cash + cash * er
        shares = shares * eqdt                     # dividends reinvested (the cost basis is not needed here)
        eq = np.where(shares != 0.0, cash + shares * spot[:, t], cash)   # the mark at every step
    return {"final_equity": eq}


def run_wheel(scenario, rules, spot, atm, reg):
    """The wheel (docs/semantics.md): cash-secured puts while flat, covered calls on assigned
    shares at max(rule strike, the grid strike at or above the min_strike level); profit take,
    ITM credit rolls; settled at expiry. One underlying, one cycle per path."""
    p = _params(scenario, rules)
    n = spot.shape[1] - 1
    N = spot.shape[0]
    ch = Chain(scenario, n, p)
    er, eqdt1, _ = _carry_consts(scenario)
    spy, every_exp, step, comm = ch.spy, ch.every, ch.step, ch.comm
    integer, pf, pt, sl = p["integer"], p["pf"], p["pt"], p["sl"]
    cash = np.full(N, float(scenario.run.initial_equity))
    shares = np.zeros(N)
    price = np.zeros(N)                            # purchase price (the assigned put's strike)
    cycle = np.zeros(N)                            # net premium per share of the cycle
    has = np.zeros(N, dtype=bool)                  # an option is open
    is_call = np.zeros(N, dtype=bool)
    K = np.zeros(N)
    logK = np.zeros(N)
    E = np.full(N, -1, dtype=np.int64)
    C = np.zeros(N)
    cred = np.zeros(N)
    nroll = np.zeros(N, dtype=np.int64)
    ms = np.zeros(N)                               # the open option's mid at this close
    sold = np.zeros(N, dtype=np.int64)
    assigned = np.zeros(N, dtype=np.int64)
    called = np.zeros(N, dtype=np.int64)
    eq = cash.copy()

    def level_of(idx):
        ms_kind = p["min_strike"]
        if ms_kind == "cost_basis":
            return price[idx] - cycle[idx]
        if ms_kind == "purchase_price":
            return price[idx]
        return np.full(idx.shape, np.nan)

    def floor_strike(k, level):
        with np.errstate(invalid="ignore"):
            return np.where(level == level, np.maximum(k, round_strike(level, step, True)), k)

    for t in range(n + 1):
        s = spot[:, t]
        if t >= 1:
            interest = cash * er
            div = np.where(shares != 0.0, shares * spot[:, t - 1] * eqdt1, 0.0)
            cash = cash + interest + div
        skew = ch.skew[reg[:, t]]
        a = atm[:, t]
        # 1. expiries
        exp_ = has & (E == t)
        if exp_.any():
            c100 = 100.0 * C
            fee = ch.fee * C
            asg = exp_ & ~is_call & (s < K)
            cash = np.where(asg, cash - (K * c100 + fee), cash)
            shares = np.where(asg, shares + c100, shares)
            price = np.where(asg, K, price)
            ca = exp_ & is_call & (s > K)
            cash = np.where(ca, cash + (K * c100 - fee), cash)
            shares = np.where(ca, shares - c100, shares)
            shares = np.where(ca & (shares < SHARE_DUST), 0.0, shares)
            assigned += asg
            called += ca
            has &= ~exp_
        log_s = None
        # mids of the open options (expiry > t)
        op = np.flatnonzero(has)
        if op.size:
            log_s = np.log(s)
            ms[op] = ch.mids_either(s[op], log_s[op], a[op], skew[op], E[op] - t, K[op], logK[op], is_call[op])
            # 3. management: stop loss, profit take, roll (first that fires)
            cost = ch.buy_fill(ms[op]) + (1.0 * comm) / 100.0
            fire_sl = (cost >= sl * cred[op]) if sl > 0.0 else np.zeros(op.size, dtype=bool)
            fire_pt = (~fire_sl & (cost <= (1.0 - pt) * cred[op])) if pt > 0.0 else np.zeros(op.size, dtype=bool)
            close = fire_sl | fire_pt
            left = E[op] - t
            if p["close_dte_on"]:
                close |= left <= p["close_dte"]
            if p["roll"] and t < n:
                chal = ~close & (left <= p["roll_dte"]) & np.where(is_call[op], s[op] > K[op], s[op] < K[op])
                maxed = chal & (nroll[op] >= p["max_rolls"])
                close |= maxed
                tr = op[chal & ~maxed]
                if tr.size:
                    refused = _roll_wheel(t, tr, s, log_s, a, skew, ch, p, K, logK, E, C, cred, nroll, ms,
                                          is_call, level_of, floor_strike, cash, cycle, sold)
                    if p["close_if_unable"] and refused.size:
                        close[np.isin(op, refused)] = True
            ci = op[close]
            if ci.size:
                debit = ch.buy_fill(ms[ci])
                cm = comm * C[ci]
                cycle[ci] = cycle[ci] - debit
                cash[ci] = cash[ci] - (debit * (100.0 * C[ci]) + cm)
                has[ci] = False
        # 5. entries
        if t < n and t % p["every"] == 0:
            flat = np.flatnonzero(~has & (shares == 0.0))
            if flat.size:
                if log_s is None:
                    log_s = np.log(s)
                e = int(nearest_expiry(t + p["put_dte"], t, every_exp))
                kk = e - t
                tau = kk / spy
                k = ch.rule_strike(s[flat], a[flat], skew[flat], tau, p["put_rule"], False)
                ok = k > 0.0
                sub = flat[ok]
                k = k[ok]
                log_k = np.log(k)
                mid = ch.mids(s[sub], log_s[sub], a[sub], skew[sub], kk, k, log_k)[0]
                fill = ch.sell_fill(mid)
                ok = ~((fill * 100.0 - comm <= 0.0) | (fill < p["put_min_credit"]))
                equity = cash[sub]                 # flat: the mark is the cash
                c = _floor_if(pf * equity / (k * 100.0), integer)
                free = cash[sub] - 0.0
                den = k * 100.0 - fill * 100.0 + comm
                with np.errstate(divide="ignore", invalid="ignore"):
                    c = np.where(den > 0.0, np.minimum(c, _floor_if(free / den, integer)), c)
                ok &= c >= MIN_CONTRACTS
                w = sub[ok]
                c, fill, k, log_k, mid = c[ok], fill[ok], k[ok], log_k[ok], mid[ok]
                cash[w] = cash[w] + (fill * 100.0 * c - comm * c)
                has[w], is_call[w], K[w], logK[w], E[w], C[w] = True, False, k, log_k, e, c
                cred[w], nroll[w], ms[w] = fill, 0, mid
                cycle[w] = fill
                sold[w] += 1
            want_call = np.flatnonzero(~has & (shares > 0.0))
            if want_call.size:
                if log_s is None:
                    log_s = np.log(s)
                sub = want_call
                c = _floor_if(shares[sub] / 100.0, integer)
                e = int(nearest_expiry(t + p["call_dte"], t, every_exp))
                kk = e - t
                tau = kk / spy
                k = ch.rule_strike(s[sub], a[sub], skew[sub], tau, p["call_rule"], True)
                ok = (c >= MIN_CONTRACTS) & (k > 0.0)
                sub, c, k = sub[ok], c[ok], k[ok]
                k = floor_strike(k, level_of(sub))
                log_k = np.log(k)
                mid = ch.mids(s[sub], log_s[sub], a[sub], skew[sub], kk, k, log_k, is_call=True)[0]
                fill = ch.sell_fill(mid)
                ok = (fill * 100.0 * c - comm * c > 0.0) & ~(fill < p["call_min_credit"])
                w = sub[ok]
                c, fill, k, log_k, mid = c[ok], fill[ok], k[ok], log_k[ok], mid[ok]
                cash[w] = cash[w] + (fill * 100.0 * c - comm * c)
                has[w], is_call[w], K[w], logK[w], E[w], C[w] = True, True, k, log_k, e, c
                cred[w], nroll[w], ms[w] = fill, 0, mid
                cycle[w] = cycle[w] + fill
                sold[w] += 1
        # 6. mark
        eq = np.where(shares != 0.0, cash + shares * s, cash)
        eq = np.where(has, eq - ms * (100.0 * C), eq)
    return {"final_equity": eq, "options_sold": sold, "assignments": assigned, "called_away": called}


def _roll_wheel(t, tr, s, log_s, a, skew, ch, p, K, logK, E, C, cred, nroll, ms, is_call, level_of,
                floor_strike, cash, cycle, sold):
    """positions.roll_position (roll_strike = "credit") for the wheel options of paths `tr`:
    buy back, sell the same contracts at the listed expiry nearest old expiry + roll_out, at the
    last strike of the scan K0, K0 -+ step, ... (down for puts, up for calls) whose net credit
    after costs is acceptable. Updates the arrays in place; returns the refused paths."""
    comm = ch.comm
    e_old = E[tr]
    e_new = nearest_expiry(e_old + p["roll_out"], e_old, ch.every)
    kk = e_new - t
    debit = ch.buy_fill(ms[tr])
    comm_ps = 2.0 * 1.0 * comm / 100.0
    call = is_call[tr]
    k0 = np.where(call, floor_strike(K[tr], level_of(tr)), K[tr])
    found = np.zeros(tr.size, dtype=bool)
    k_new = k0.copy()
    cr_new = np.zeros(tr.size)
    ms_new = np.zeros(tr.size)
    active = np.arange(tr.size)
    for j in range(ROLL_SCAN):
        ka = np.where(call[active], k0[active] + j * ch.step, k0[active] - j * ch.step)
        keep = ka > 0.0
        active, ka = active[keep], ka[keep]
        if not active.size:
            break
        pa = tr[active]
        mid = ch.mids_either(s[pa], log_s[pa], a[pa], skew[pa], kk[active], ka, np.log(ka), call[active])
        credit = ch.sell_fill(mid)
        net = credit - debit[active] - comm_ps
        acc = np.ones(active.size, dtype=bool)
        if p["credit_only"]:
            acc &= net > 0.0
        acc &= net >= p["roll_min_credit"]
        active, ka, credit, mid = active[acc], ka[acc], credit[acc], mid[acc]
        found[active] = True
        k_new[active], cr_new[active], ms_new[active] = ka, credit, mid
        if not active.size:
            break
    w = tr[found]
    f = found
    c100 = 100.0 * C[w]
    comm_leg = comm * C[w] * 1.0
    cash[w] = cash[w] + ((cr_new[f] - debit[f]) * c100 - 2.0 * comm_leg)
    cycle[w] = cycle[w] + (cr_new[f] - debit[f])
    E[w] = e_new[f]
    nroll[w] += 1
    K[w] = k_new[f]
    logK[w] = np.log(k_new[f])
    cred[w] = cr_new[f]
    ms[w] = ms_new[f]
    sold[w] += 1
    return tr[~found]


def run_spread(scenario, rules, spot, atm, reg):
    """The bull put spread ladder: on entry days one spread while fewer than max_open are open,
    short strike by the rule, long strike = short - width rounded down; stop loss, profit take,
    close_dte in position order; cash-settled at expiry. Slots are kept in opening order."""
    p = _params(scenario, rules)
    n = spot.shape[1] - 1
    N = spot.shape[0]
    M = p["max_open"]
    ch = Chain(scenario, n, p)
    er, _, _ = _carry_consts(scenario)
    spy, every_exp, step, comm = ch.spy, ch.every, ch.step, ch.comm
    integer, pf, pt, sl = p["integer"], p["pf"], p["pt"], p["sl"]
    cash = np.full(N, float(scenario.run.initial_equity))
    op = np.zeros((N, M), dtype=bool)
    Ks = np.zeros((N, M))
    Kl = np.zeros((N, M))
    lKs = np.zeros((N, M))
    lKl = np.zeros((N, M))
    E = np.full((N, M), -1, dtype=np.int64)
    C = np.zeros((N, M))
    cred = np.zeros((N, M))
    ms = np.zeros((N, M))
    ml = np.zeros((N, M))
    fields = [Ks, Kl, lKs, lKl, E, C, cred, ms, ml]
    sold = np.zeros(N, dtype=np.int64)
    assigned = np.zeros(N, dtype=np.int64)

    def mark():
        eqm = cash.copy()
        for j in range(M):
            c100 = 100.0 * C[:, j]
            o = op[:, j]
            eqm = np.where(o, eqm - ms[:, j] * c100, eqm)
            eqm = np.where(o, eqm + ml[:, j] * c100, eqm)
        return eqm

    eq = cash.copy()
    for t in range(n + 1):
        s = spot[:, t]
        if t >= 1:
            cash = cash + cash * er                # no shares: no dividends
        skew = ch.skew[reg[:, t]]
        a = atm[:, t]
        # 1. expiries, in position order
        if (op & (E == t)).any():
            for j in range(M):
                ex = op[:, j] & (E[:, j] == t)
                if ex.any():
                    per_share = np.maximum(Ks[:, j] - s, 0.0) - np.maximum(Kl[:, j] - s, 0.0)
                    cash = np.where(ex, cash - per_share * (100.0 * C[:, j]), cash)
                    assigned += ex & (s < Ks[:, j])
                    op[:, j] &= ~ex
        log_s = np.log(s)
        pi, pj = np.nonzero(op)
        if pi.size:
            kk = E[pi, pj] - t
            m1, m2 = ch.mids(s[pi], log_s[pi], a[pi], skew[pi], kk, Ks[pi, pj], lKs[pi, pj], Kl[pi, pj], lKl[pi, pj])
            ms[pi, pj] = m1
            ml[pi, pj] = m2
            # 3. management in position order: stop loss, profit take, close_dte
            for j in range(M):
                o = op[:, j]
                if not o.any():
                    continue
                width = Ks[:, j] - Kl[:, j]
                debit = np.minimum(ch.buy_fill(ms[:, j]) - ch.sell_fill(ml[:, j]), width)
                cost = debit + (2.0 * comm) / 100.0
                fire = np.zeros(N, dtype=bool)
                if sl > 0.0:
                    fire |= cost >= sl * cred[:, j]
                if pt > 0.0:
                    fire |= cost <= (1.0 - pt) * cred[:, j]
                if p["close_dte_on"]:
                    fire |= E[:, j] - t <= p["close_dte"]
                fire &= o
                if fire.any():
                    cm = comm * C[:, j] * 2.0
                    cash = np.where(fire, cash - (debit * (100.0 * C[:, j]) + cm), cash)
                    op[:, j] &= ~fire
        # keep the open slots first, in opening order (a closed position's successors move up)
        if not np.all(op[:, :-1] >= op[:, 1:]):
            order = np.argsort(~op, axis=1, kind="stable")
            op = np.take_along_axis(op, order, axis=1)
            for f in fields:
                f[...] = np.take_along_axis(f, order, axis=1)
        # 5. entries
        if t < n and t % p["every"] == 0:
            n_open = op.sum(axis=1)
            want = np.flatnonzero(n_open < M)
            if want.size:
                equity = mark()[want]
                e = int(nearest_expiry(t + p["put_dte"], t, every_exp))
                kk = e - t
                tau = kk / spy
                sw = s[want]
                ks = ch.rule_strike(sw, a[want], skew[want], tau, p["put_rule"], False)
                mode, wv = p["width"]
                wd = wv if mode == "abs" else wv * sw
                with np.errstate(invalid="ignore"):
                    kl = round_strike(ks - wd, step, False)
                    ok = (ks > 0.0) & (kl > 0.0)
                sub = want[ok]
                ks, kl, equity = ks[ok], kl[ok], equity[ok]
                lks, lkl = np.log(ks), np.log(kl)
                m1, m2 = ch.mids(s[sub], log_s[sub], a[sub], skew[sub], kk, ks, lks, kl, lkl)
                credit = ch.sell_fill(m1) - ch.buy_fill(m2)
                ok = ~((credit <= 0.0) | (credit >= ks - kl) | (credit < p["put_min_credit"]))
                risk = (ks - kl - credit) * 100.0
                with np.errstate(divide="ignore", invalid="ignore"):
                    c = _floor_if(pf * equity / risk, integer)
                    res = np.zeros(sub.size)
                    for j in range(M):
                        o = op[sub, j]
                        res = np.where(o, res + (Ks[sub, j] - Kl[sub, j]) * 100.0 * C[sub, j], res)
                    free = cash[sub] - res
                    c = np.minimum(c, _floor_if(free / (risk + 2.0 * comm), integer))
                ok &= c >= MIN_CONTRACTS
                w = sub[ok]
                c, credit = c[ok], credit[ok]
                slot = n_open[w]
                cash[w] = cash[w] + (credit * 100.0 * c - 2.0 * comm * c)
                op[w, slot] = True
                Ks[w, slot], Kl[w, slot], lKs[w, slot], lKl[w, slot] = ks[ok], kl[ok], lks[ok], lkl[ok]
                E[w, slot], C[w, slot], cred[w, slot] = e, c, credit
                ms[w, slot], ml[w, slot] = m1[ok], m2[ok]
                sold[w] += 1
        # 6. mark
        eq = mark()
    return {"final_equity": eq, "options_sold": sold, "assignments": assigned}


def run_numpy(scenario, spot, atm_iv, regime) -> dict:
    """Every strategy of `scenario` plus the baselines on the given market arrays (spot, atm_iv:
    (n_paths, n_steps + 1[, 1]), regime (n_paths, n_steps + 1)): {name: {column: array}}."""
    _check_scenario(scenario)
    if spot.ndim == 3:
        spot, atm_iv = spot[:, :, 0], atm_iv[:, :, 0]
    spot = np.ascontiguousarray(spot)
    atm_iv = np.ascontiguousarray(atm_iv)
    regime = np.ascontiguousarray(regime).astype(np.intp)
    out = {}
    for name, fn in strategy_runners(scenario).items():
        out[name] = fn(spot, atm_iv, regime)
    return out


def strategy_runners(scenario) -> dict:
    """{name: fn(spot, atm_iv, regime) -> dict} in the engine's order (strategies, baselines)."""
    from mcsim.strategies.params import all_strategies

    _check_scenario(scenario)
    out = {}
    for r in all_strategies(scenario):
        if r.kind == "wheel":
            out[r.name] = (lambda r: lambda s, a, g: run_wheel(scenario, r, s, a, g))(r)
        elif r.kind == "bull_put_spread":
            out[r.name] = (lambda r: lambda s, a, g: run_spread(scenario, r, s, a, g))(r)
        elif r.kind == "buy_and_hold":
            out[r.name] = lambda s, a, g: run_buy_and_hold(scenario, s, a, g)
        elif r.kind == "cash":
            out[r.name] = lambda s, a, g: run_cash(scenario, s, a, g)
        else:
            raise NotImplementedError(f"numpy twin: kind {r.kind}")
        _params(scenario, r)                        # refuse unsupported rules now
    return out


# --------------------------------------------------------------------------------------------
# the check: the twin against mcsim.run_strategies on the same market


COUNT_COLUMNS = ("options_sold", "assignments", "called_away")


def check(n_paths: int = 400, seed: int = 11, scenario=None) -> dict:
    """Per strategy: max relative difference of final equity (numpy twin vs run_strategies on
    the same `n_paths` paths), the share of paths differing by more than 1e-9 relative, and the
    paths whose counts (options sold, assignments, calls away) differ."""
    sc = scenario if scenario is not None else mcsim.load_scenario(SCENARIO)
    market = mcsim.simulate_market(sc, n_paths, seed)
    pp = mcsim.run_strategies(sc, market).per_path
    ours = run_numpy(sc, market.spot, market.atm_iv, market.regime)
    out = {}
    for name, cols in ours.items():
        rows = pp[pp.strategy == name].sort_values("path")
        ref = rows["final_equity"].to_numpy()
        rel = np.abs(cols["final_equity"] - ref) / np.abs(ref)
        bad_counts = {c: int(np.sum(cols[c] != rows[c].to_numpy())) for c in COUNT_COLUMNS if c in cols}
        out[name] = {"paths": n_paths, "max_rel_diff": float(rel.max()),
                     "share_above_1e-9": float(np.mean(rel > 1e-9)),
                     "paths_above_1e-9": [int(i) for i in np.flatnonzero(rel > 1e-9)],
                     "count_mismatches": bad_counts,
                     "totals": {c: int(np.sum(cols[c])) for c in COUNT_COLUMNS if c in cols},
                     "options_sold_mean": float(np.mean(cols["options_sold"])) if "options_sold" in cols else None}
    return out


# --------------------------------------------------------------------------------------------
# the benchmark


def _kernel_timer(scenario, market, threads):
    """{name: fn() -> seconds}: each strategy kernel over every row of `market` with the engine's
    thread split (benchmarks/run.py `_run`)."""
    from mcsim.engine import _split
    from mcsim.strategies.kernel import run_paths
    from mcsim.strategies.layout import LOG_DT, MONTH_DT, PATH_DT, records
    from mcsim.strategies.params import all_strategies, to_kernel, with_steps

    spot, iv, reg = market
    n_rows = spot.shape[0]
    n = spot.shape[1] - 1
    nm = -(-n // scenario.run.month_steps)
    out_p = records(n_rows, PATH_DT)
    out_m = records((n_rows, nm), MONTH_DT)
    log = records(1, LOG_DT)
    pool = ThreadPoolExecutor(threads)
    timers = {}
    for r in all_strategies(scenario):
        kp = with_steps(to_kernel(r, scenario), n, nm)

        def one(kp=kp, rows=n_rows):
            def task(b):
                run_paths(spot, iv, reg, b[0], b[1], kp.rules, out_p, out_m, log)

            t0 = time.perf_counter()
            list(pool.map(task, _split(rows, threads)))
            return time.perf_counter() - t0

        timers[r.name] = one
    return timers, pool


def bench_mixed(n_paths: int = 20_000, repeat: int = 3, numpy_paths: int | None = None, seed: int = 7,
                threads: int | None = None) -> dict:
    """Throughput of the mixed scenario, measured in one run after warm-up (medians of `repeat`
    rounds; each round times simulate, every kernel and the numpy twin one after the other, so
    the machine's load hits them alike).

    * `simulate`: `mcsim.simulate(scenario, n_paths, seed)` (market generation, the 4 kernels,
      the per-chunk reductions and result tables; no files): path-steps/s as paths x steps x
      strategies / wall and as paths x steps / wall;
    * `kernel`: each strategy kernel alone on pre-generated paths (the same n_paths), with the
      engine's thread split: paths x steps / wall;
    * `numpy`: the numpy twin of each strategy on the first `numpy_paths` of those paths
      (default: all n_paths; the market arrays are given, not generated). The twin is not
      linear in paths: its Python overhead per step is amortised over the paths, so it runs
      2-3x faster per path at 20,000 paths than at 2,000 (measured 2026-12: wheel 0.35M
      path-steps/s at 2,000, 0.6-1.1M at 20,000); time it on as many paths as mcsim;
    * ratios: simulate against the numpy twin of all strategies (both paths x steps x
      strategies per second), each kernel against its numpy twin.

    Steps are the horizon's n_steps (252 for one year); returns a dict (see `main` for the table).
    """
    import os

    from mcsim.market import resolve_threads
    from mcsim.market.source import chunk_generator

    sc = mcsim.load_scenario(SCENARIO, [f"run.paths={n_paths}"])
    n = sc.run.n_steps
    threads = resolve_threads(threads)
    load0 = os.getloadavg()
    market = chunk_generator(sc)(seed, 0, n_paths, threads=threads)
    numpy_paths = n_paths if numpy_paths is None else min(numpy_paths, n_paths)
    small = tuple(np.ascontiguousarray(x[:numpy_paths]) for x in market)
    sp, iv, rg = small[0][:, :, 0].copy(), small[1][:, :, 0].copy(), small[2].astype(np.intp)
    runners = strategy_runners(sc)
    names = list(runners)
    # warm-up: compile or load every kernel, numpy's first calls
    mcsim.simulate(sc, n_paths=min(n_paths, 500), seed=seed)
    timers, pool = _kernel_timer(sc, market, threads)
    warm_timers, warm_pool = _kernel_timer(sc, tuple(x[:256] for x in market), threads)
    for f in warm_timers.values():
        f()
    warm_pool.shutdown()
    for fn in runners.values():
        fn(sp[:200], iv[:200], rg[:200])
    t_sim, t_ker, t_np = [], {k: [] for k in names}, {k: [] for k in names}
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            mcsim.simulate(sc, n_paths=n_paths, seed=seed)
            t_sim.append(time.perf_counter() - t0)
            for k in names:
                t_ker[k].append(timers[k]())
            for k in names:
                t0 = time.perf_counter()
                runners[k](sp, iv, rg)
                t_np[k].append(time.perf_counter() - t0)
    finally:
        pool.shutdown()
    med = statistics.median
    ns = len(names)
    sim_s = med(t_sim)
    ker = {k: n_paths * n / med(v) for k, v in t_ker.items()}
    nps = {k: numpy_paths * n / med(v) for k, v in t_np.items()}
    np_total_s = med([sum(t_np[k][i] for k in names) for i in range(repeat)])
    ker_total_s = med([sum(t_ker[k][i] for k in names) for i in range(repeat)])
    np_total = numpy_paths * n * ns / np_total_s
    sim_ps = n_paths * n * ns / sim_s
    return {
        "scenario": str(SCENARIO.relative_to(ROOT)), "n_paths": n_paths, "numpy_paths": numpy_paths,
        "n_steps": n, "strategies": names, "threads": threads, "repeat": repeat,
        "load_before": load0, "load_after": os.getloadavg(),
        "simulate_s": sim_s, "simulate_s_all": t_sim,
        "simulate_path_steps_per_s": sim_ps,                       # paths x steps x strategies / wall
        "simulate_paths_steps_per_s": n_paths * n / sim_s,         # paths x steps / wall
        "kernel_path_steps_per_s": ker,
        "kernels_total_path_steps_per_s": n_paths * n * ns / ker_total_s,
        "numpy_path_steps_per_s": nps,
        "numpy_total_path_steps_per_s": np_total,
        "numpy_total_s_per_1000_paths": np_total_s * 1000 / numpy_paths,
        "ratio_simulate_vs_numpy": sim_ps / np_total,
        "ratio_kernels_vs_numpy": (n_paths * n * ns / ker_total_s) / np_total,
        "ratio_kernel_vs_numpy": {k: ker[k] / nps[k] for k in names},
    }


def _m(x):
    return f"{x / 1e6:,.3f}M" if x < 1e6 else f"{x / 1e6:,.2f}M"


def print_table(res: dict) -> None:
    print(f"{res['scenario']}: {res['n_paths']:,} paths x {res['n_steps']} steps, {len(res['strategies'])} "
          f"strategies, {res['threads']} threads; numpy twin on {res['numpy_paths']:,} paths; median of "
          f"{res['repeat']}; load average {res['load_before'][0]:.2f} before, {res['load_after'][0]:.2f} after")
    print(f"{'case':<44}{'path-steps/s':>14}{'vs numpy':>10}")
    print(f"{'simulate (paths x steps x strategies / wall)':<44}{_m(res['simulate_path_steps_per_s']):>14}"
          f"{res['ratio_simulate_vs_numpy']:>9.1f}x")
    print(f"{'simulate (paths x steps / wall)':<44}{_m(res['simulate_paths_steps_per_s']):>14}{'':>10}")
    print(f"{'kernels, all strategies (sum of walls)':<44}{_m(res['kernels_total_path_steps_per_s']):>14}"
          f"{res['ratio_kernels_vs_numpy']:>9.1f}x")
    print(f"{'numpy twin, all strategies':<44}{_m(res['numpy_total_path_steps_per_s']):>14}{'1.0x':>10}")
    for k in res["strategies"]:
        print(f"{'  kernel ' + k:<44}{_m(res['kernel_path_steps_per_s'][k]):>14}"
              f"{res['ratio_kernel_vs_numpy'][k]:>9.1f}x")
        print(f"{'  numpy  ' + k:<44}{_m(res['numpy_path_steps_per_s'][k]):>14}{'1.0x':>10}")
    print(f"simulate wall {res['simulate_s']:.2f} s (runs: " + ", ".join(f"{x:.2f}" for x in res["simulate_s_all"])
          + f"); numpy twin {res['numpy_total_s_per_1000_paths']:.2f} s per 1,000 paths")


def print_check(res: dict) -> None:
    for name, r in res.items():
        print(f"{name:<20} {r['paths']} paths: max relative difference of final equity {r['max_rel_diff']:.2e}, "
              f"share > 1e-9: {r['share_above_1e-9']:.2%}, count mismatches {r['count_mismatches']}, "
              f"totals {r['totals']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=20_000)
    ap.add_argument("--numpy-paths", type=int, default=None, help="paths of the numpy twin (default: --paths)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--check", action="store_true", help="compare with mcsim.run_strategies and exit")
    ap.add_argument("--check-paths", type=int, default=400)
    ap.add_argument("--json", default=None, help="also write the result dict to this file")
    a = ap.parse_args(argv)
    if a.check:
        t0 = time.perf_counter()
        res = check(a.check_paths, a.seed)
        print_check(res)
        print(f"({time.perf_counter() - t0:.1f} s)")
        ok = all(r["share_above_1e-9"] == 0.0 and not any(r["count_mismatches"].values()) for r in res.values())
        return 0 if ok else 1
    res = bench_mixed(a.paths, a.repeat, a.numpy_paths, a.seed, a.threads)
    print_table(res)
    if a.json:
        import json

        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
