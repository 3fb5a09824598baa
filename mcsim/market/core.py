"""Market paths: regimes, correlated jump-diffusions, ATM implied vol with shock response.

`market_params(scenario)` flattens a Scenario into plain arrays once; `generate_market(params,
seed, first_path, n_paths)` produces one chunk of paths (what the engine calls);
`simulate_market(scenario, n_paths, seed)` wraps both into a `MarketPaths`.
See `mcsim.market.streams` for the random-stream design and `mcsim.market.kernels` for the model
and the draw order.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from .heston import simulate_block_sv
from .kernels import simulate_block
from .streams import block_generator, covering_blocks, variance_generator

__all__ = [
    "MarketPaths",
    "MarketParams",
    "market_params",
    "generate_market",
    "simulate_market",
    "matrix_sqrt",
    "resolve_threads",
    "DEFAULT_ATM_IV",
    "IV_TENOR_DAYS",
]

DEFAULT_ATM_IV = 0.20  # what MarketPaths.from_arrays fills in when no atm_iv is given
IV_TENOR_DAYS = 30.0   # calendar days of the ATM IV in MarketPaths.atm_iv (like VIX)


# --------------------------------------------------------------------------------------------
# MarketPaths


def _real_array(x, name: str) -> np.ndarray:
    """`x` as a float64 array; complex, boolean, string or object input is refused (TypeError)."""
    a = np.asarray(x)
    if a.dtype.kind not in "iuf":
        raise TypeError(f"MarketPaths.from_arrays: {name} must be real numbers (got dtype {a.dtype})")
    return np.array(a, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class MarketPaths:
    """Simulated (or hand-made) market: step 0 is today.

    spot, atm_iv: (n_paths, n_steps + 1, n_underlyings) float64; regime: (n_paths, n_steps + 1)
    int8 (regime[p, t-1] is in effect during step (t-1, t]); `first_path` is the global number of
    row 0 (rows are paths first_path, first_path + 1, ...). `variance`: None unless some
    underlying has stochastic vol; then (n_paths, n_steps + 1, n_underlyings) float64, the
    instantaneous variance v_t (per year) of the Heston underlyings and vol_r^2 of the regime
    in effect at t for the others. For a Heston underlying atm_iv is the 30-calendar-day ATM IV.
    """

    spot: np.ndarray
    atm_iv: np.ndarray
    regime: np.ndarray
    underlyings: tuple[str, ...]
    steps_per_year: int = 252
    first_path: int = 0
    variance: np.ndarray | None = None

    def __post_init__(self):
        spot, iv, reg = self.spot, self.atm_iv, self.regime
        if not isinstance(spot, np.ndarray) or spot.ndim != 3 or spot.dtype != np.float64:
            raise ValueError("MarketPaths.spot must be a float64 array of shape (n_paths, n_steps+1, n_underlyings)")
        if not isinstance(iv, np.ndarray) or iv.shape != spot.shape or iv.dtype != np.float64:
            raise ValueError(f"MarketPaths.atm_iv must be a float64 array of shape {spot.shape}")
        if not isinstance(reg, np.ndarray) or reg.shape != spot.shape[:2] or reg.dtype != np.int8:
            raise ValueError(f"MarketPaths.regime must be an int8 array of shape {spot.shape[:2]}")
        var = self.variance
        if var is not None and (not isinstance(var, np.ndarray) or var.shape != spot.shape or var.dtype != np.float64):
            raise ValueError(f"MarketPaths.variance must be None or a float64 array of shape {spot.shape}")
        if isinstance(self.underlyings, str):
            object.__setattr__(self, "underlyings", (self.underlyings,))
        else:
            object.__setattr__(self, "underlyings", tuple(str(u) for u in self.underlyings))
        if len(self.underlyings) != spot.shape[2]:
            raise ValueError(f"MarketPaths.underlyings has {len(self.underlyings)} names for {spot.shape[2]} underlyings")
        if int(self.steps_per_year) < 1 or int(self.first_path) < 0:
            raise ValueError("MarketPaths.steps_per_year must be >= 1 and first_path >= 0")
        object.__setattr__(self, "steps_per_year", int(self.steps_per_year))
        object.__setattr__(self, "first_path", int(self.first_path))

    @property
    def n_paths(self) -> int:
        return self.spot.shape[0]

    @property
    def n_steps(self) -> int:
        return self.spot.shape[1] - 1

    @property
    def n_underlyings(self) -> int:
        return self.spot.shape[2]

    @property
    def dt(self) -> float:
        return 1.0 / self.steps_per_year

    def underlying_index(self, name: str) -> int:
        return self.underlyings.index(name)

    @classmethod
    def from_arrays(
        cls,
        spot,
        atm_iv=None,
        regime=None,
        underlyings: str | Sequence[str] | None = None,
        steps_per_year: int = 252,
        first_path: int = 0,
    ) -> "MarketPaths":
        """Build MarketPaths by hand (tests, historical replay).

        `spot` may be 1-D (one path, one underlying: the prices at steps 0..n), 2-D or 3-D.
        2-D means (n_paths, n_steps+1) for one underlying, unless `underlyings` names more than
        one: then it is (n_steps+1, n_underlyings) for one path. `atm_iv` is a scalar or an array
        of the same layout as `spot` (None: DEFAULT_ATM_IV = 0.20 everywhere); `regime` a scalar
        or an array (n_paths, n_steps+1) / (n_steps+1,) for one path (None: regime 0).
        `underlyings` defaults to U0, U1, ... Values are copied; spot must be > 0 and finite,
        atm_iv >= 0 and finite, regime in [0, 127].
        """
        if isinstance(underlyings, str):
            underlyings = (underlyings,)
        n_names = None if underlyings is None else len(underlyings)
        s = _real_array(spot, "spot")
        s3 = _to3d(s, n_names, "spot")
        if underlyings is None:
            underlyings = tuple(f"U{k}" for k in range(s3.shape[2]))
        n_p, n_t, n_u = s3.shape
        if n_t < 1 or n_p < 1 or n_u < 1:
            raise ValueError(f"spot: shape {s.shape} has no paths, steps or underlyings")
        if not np.all(np.isfinite(s3)) or np.any(s3 <= 0):
            raise ValueError("spot: values must be finite and > 0")
        if atm_iv is None:
            iv3 = np.full(s3.shape, DEFAULT_ATM_IV)
        else:
            iv = _real_array(atm_iv, "atm_iv")
            iv3 = np.broadcast_to(iv, s3.shape).copy() if iv.ndim == 0 else _to3d(iv, n_names, "atm_iv")
            if iv3.shape != s3.shape:
                raise ValueError(f"atm_iv: shape {iv.shape} does not match spot {s.shape}")
            if not np.all(np.isfinite(iv3)) or np.any(iv3 < 0):
                raise ValueError("atm_iv: values must be finite and >= 0")
        if regime is None:
            rg = np.zeros((n_p, n_t), dtype=np.int8)
        else:
            ra = np.array(regime)
            if ra.ndim == 0:
                ra = np.full((n_p, n_t), ra)
            elif ra.ndim == 1 and n_p == 1:
                ra = ra[None, :]
            if ra.shape != (n_p, n_t):
                raise ValueError(f"regime: shape {np.shape(regime)} does not match (n_paths, n_steps+1) = {(n_p, n_t)}")
            if not np.issubdtype(ra.dtype, np.integer) or ra.min() < 0 or ra.max() > 127:
                raise ValueError("regime: values must be integers in [0, 127]")
            rg = ra.astype(np.int8)
        return cls(np.ascontiguousarray(s3), np.ascontiguousarray(iv3), np.ascontiguousarray(rg),
                   tuple(underlyings), steps_per_year, first_path)


def _to3d(a: np.ndarray, n_names: int | None, what: str) -> np.ndarray:
    if a.ndim == 1:
        if n_names not in (None, 1):
            raise ValueError(f"{what}: a 1-D array is one path of one underlying, but {n_names} underlyings were named")
        return a[None, :, None]
    if a.ndim == 2:
        if n_names is None or n_names == 1:
            return a[:, :, None]
        if a.shape[1] != n_names:
            raise ValueError(f"{what}: 2-D with {n_names} underlyings must be (n_steps+1, {n_names}), got {a.shape}")
        return a[None, :, :]
    if a.ndim == 3:
        if n_names is not None and a.shape[2] != n_names:
            raise ValueError(f"{what}: last axis {a.shape[2]} != {n_names} underlyings")
        return a
    raise ValueError(f"{what}: must be 1-D, 2-D or 3-D, got {a.ndim}-D")


# --------------------------------------------------------------------------------------------
# parameters


class MarketParams(NamedTuple):
    """Everything the market kernel needs, as plain numbers and float64 C arrays."""

    underlyings: tuple
    n_steps: int
    steps_per_year: int
    dt: float
    n_regimes: int
    spot0: np.ndarray       # (n_u,)
    log_spot0: np.ndarray   # (n_u,)
    drift: np.ndarray       # (n_reg, n_u): (mu - q - sigma^2/2 - lambda k) dt
    vol_sdt: np.ndarray     # (n_reg, n_u): sigma sqrt(dt)
    chol: np.ndarray        # (n_reg, n_u, n_u): square root of each regime's correlation
    lam_dt: np.ndarray      # (n_reg, n_u): expected jumps per step
    jump_mean: np.ndarray   # (n_reg, n_u)
    jump_std: np.ndarray    # (n_reg, n_u)
    init_cdf: np.ndarray    # (n_reg,)
    trans_cdf: np.ndarray   # (n_reg, n_reg): row-wise CDF of the per-step transition matrix
    iv_base: np.ndarray     # (n_reg, n_u): Underlying.atm_iv_base()
    iv_floor: np.ndarray    # (n_u,)
    iv_decay: np.ndarray    # (n_u,): 0.5 ** (1 / shock_half_life_days)
    iv_beta: np.ndarray     # (n_u,)
    ret_mean: np.ndarray    # (n_reg, n_u): expected log return per step (the shock response's zero)
    # stochastic variance and common jumps (mcsim.market.heston); constant-vol underlyings ignore sv_*
    use_sv_kernel: bool     # some underlying has stochastic vol, or common jumps: simulate_block_sv
    any_sv: bool            # some underlying has stochastic vol (MarketPaths.variance is filled)
    common_jumps: bool
    has_sv: np.ndarray      # (n_u,) bool
    sv_drift: np.ndarray    # (n_reg, n_u): (mu - q - lambda k) dt
    sv_exp: np.ndarray      # (n_u,): exp(-kappa dt)
    sv_c1: np.ndarray       # (n_u,): xi^2 e (1 - e) / kappa
    sv_c2: np.ndarray       # (n_reg, n_u): theta xi^2 (1 - e)^2 / (2 kappa)
    theta: np.ndarray       # (n_reg, n_u): long-run variance (vol^2 for constant-vol underlyings)
    sv_k2: np.ndarray       # (n_u,): Andersen's K2 with gamma2 = 1/2
    sv_k3: np.ndarray       # (n_u,): K3 = K4 = dt (1 - rho^2) / 2
    sv_k4: np.ndarray       # (n_u,)
    sv_v0: np.ndarray       # (n_u,): initial variance; -1 = theta of the path's initial regime
    sv_b: np.ndarray        # (n_u,): (1 - exp(-kappa tau)) / (kappa tau), tau = 30/365
    sv_rho: np.ndarray      # (n_u,): spot_vol_correlation
    sv_rhobar: np.ndarray   # (n_u,): sqrt(1 - rho^2)
    iv_jump_var: np.ndarray  # (n_reg, n_u): lambda (jump_mean^2 + jump_std^2)
    iv_premium: np.ndarray  # (n_reg, n_u)
    shock_ret: np.ndarray   # (n_steps+1, n_u): scheduled log-return gaps
    shock_iv: np.ndarray    # (n_steps+1, n_u): scheduled IV adds


def matrix_sqrt(c: np.ndarray) -> np.ndarray:
    """B with B @ B.T == c: Cholesky, or V sqrt(max(w, 0)) from eigh for semi-definite c."""
    c = np.asarray(c, dtype=np.float64)
    try:
        return np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(c)
        return v * np.sqrt(np.clip(w, 0.0, None))


def _cdf(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, None)
    c = np.cumsum(p / p.sum())
    last = int(np.flatnonzero(p > 0)[-1])
    c[last:] = 1.0  # u < 1 always lands on a state of positive probability
    return c


def market_params(scenario) -> MarketParams:
    """Flatten a Scenario's market (run, regimes, underlyings, correlation, shocks) for the kernel."""
    run = scenario.run
    und = scenario.underlyings
    n_u = len(und)
    n_reg = scenario.regimes.count
    n_steps = run.n_steps
    dt = run.dt

    def per_regime(attr):
        return np.array([[getattr(u, attr)[r] for u in und] for r in range(n_reg)], dtype=np.float64)

    mu = per_regime("expected_return")
    vol = per_regime("volatility")
    lam = per_regime("jump_intensity")
    jm = per_regime("jump_mean")
    js = per_regime("jump_std")
    q = np.array([u.dividend_yield for u in und], dtype=np.float64)
    k = np.expm1(jm + 0.5 * js**2)
    drift = (mu - q[None, :] - 0.5 * vol**2 - lam * k) * dt
    spot0 = np.array([u.spot for u in und], dtype=np.float64)
    corr = scenario.correlation_array().reshape(n_reg, n_u, n_u)
    chol = np.ascontiguousarray(np.stack([matrix_sqrt(corr[r]) for r in range(n_reg)]))
    trans = scenario.regimes.transition_matrix()
    iv_base = np.ascontiguousarray(np.stack([u.atm_iv_base() for u in und], axis=1).astype(np.float64))
    shock_ret = np.zeros((n_steps + 1, n_u))
    shock_iv = np.zeros((n_steps + 1, n_u))
    names = tuple(u.name for u in und)
    for sh in scenario.shocks:
        for name in sh.underlyings:
            j = names.index(name)
            shock_ret[sh.day, j] += sh.log_return
            shock_iv[sh.day, j] += sh.iv_add
    has_sv = np.array([u.stochastic_vol is not None for u in und], dtype=np.bool_)
    kappa = np.ones(n_u)
    xi = np.ones(n_u)
    rho = np.zeros(n_u)
    v0 = np.full(n_u, -1.0)
    for j, u in enumerate(und):
        sv = u.stochastic_vol
        if sv is not None:
            kappa[j], xi[j], rho[j] = sv.mean_reversion, sv.vol_of_vol, sv.spot_vol_correlation
            if sv.initial_vol is not None:
                v0[j] = sv.initial_vol**2
    theta = vol**2
    e = np.exp(-kappa * dt)
    tau = IV_TENOR_DAYS / 365.0
    c = np.ascontiguousarray
    return MarketParams(
        underlyings=names,
        n_steps=int(n_steps),
        steps_per_year=int(run.steps_per_year),
        dt=float(dt),
        n_regimes=int(n_reg),
        spot0=c(spot0),
        log_spot0=c(np.log(spot0)),
        drift=c(drift),
        vol_sdt=c(vol * np.sqrt(dt)),
        chol=chol,
        lam_dt=c(lam * dt),
        jump_mean=c(jm),
        jump_std=c(js),
        init_cdf=c(_cdf(scenario.regimes.initial_probs)),
        trans_cdf=c(np.stack([_cdf(trans[r]) for r in range(n_reg)])),
        iv_base=iv_base,
        iv_floor=c(np.array([u.implied_vol.floor for u in und], dtype=np.float64)),
        iv_decay=c(np.array([0.5 ** (1.0 / u.implied_vol.shock_half_life_days) for u in und], dtype=np.float64)),
        iv_beta=c(np.array([u.implied_vol.shock_beta for u in und], dtype=np.float64)),
        ret_mean=c(drift + lam * dt * jm),
        use_sv_kernel=bool(has_sv.any() or scenario.common_jumps),
        any_sv=bool(has_sv.any()),
        common_jumps=bool(scenario.common_jumps),
        has_sv=c(has_sv),
        sv_drift=c((mu - q[None, :] - lam * k) * dt),
        sv_exp=c(e),
        sv_c1=c(xi**2 * e * (1.0 - e) / kappa),
        sv_c2=c(theta * (xi**2 * (1.0 - e) ** 2 / (2.0 * kappa))[None, :]),
        theta=c(theta),
        sv_k2=c(rho / xi + 0.5 * dt * (kappa * rho / xi - 0.5)),
        sv_k3=c(0.5 * dt * (1.0 - rho**2)),
        sv_k4=c(0.5 * dt * (1.0 - rho**2)),
        sv_v0=c(v0),
        sv_b=c(-np.expm1(-kappa * tau) / (kappa * tau)),
        sv_rho=c(rho),
        sv_rhobar=c(np.sqrt(1.0 - rho**2)),
        iv_jump_var=c(lam * (jm**2 + js**2)),
        iv_premium=c(np.array([[u.implied_vol.premium[r] for u in und] for r in range(n_reg)], dtype=np.float64)),
        shock_ret=shock_ret,
        shock_iv=shock_iv,
    )


# --------------------------------------------------------------------------------------------
# generation


def resolve_threads(threads: int | None = None) -> int:
    """Worker threads: `threads` if given, else NUMBA_NUM_THREADS (numba's setting), else CPUs."""
    if threads is not None:
        t = int(threads)
        if t < 1:
            raise ValueError(f"threads must be >= 1 (got {threads})")
        return t
    try:
        import numba

        return max(1, int(numba.get_num_threads()))
    except Exception:  # pragma: no cover - numba always present in practice
        return max(1, int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count() or 1)))


def _check_out(out, n_paths, n_steps, n_u):
    if len(out) != 3:
        raise ValueError("out must be a (spot, atm_iv, regime) tuple")
    spot, iv, reg = out
    for a, dt, tail, name in ((spot, np.float64, (n_steps + 1, n_u), "spot"),
                              (iv, np.float64, (n_steps + 1, n_u), "atm_iv"),
                              (reg, np.int8, (n_steps + 1,), "regime")):
        if not isinstance(a, np.ndarray) or a.dtype != dt or a.shape[1:] != tail or a.shape[0] < n_paths:
            raise ValueError(f"out {name}: need a {np.dtype(dt).name} array of shape (>= {n_paths}, {', '.join(map(str, tail))})")
        if not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError(f"out {name}: must be C-contiguous and writeable")
    return spot, iv, reg


def generate_market(params: MarketParams, seed: int, first_path: int, n_paths: int, out=None,
                    threads: int | None = None, variance=None):
    """Paths [first_path, first_path + n_paths) for `seed`: (spot, atm_iv, regime) arrays.

    Bit-identical to the same rows of any larger run with the same seed and params, whatever
    `threads`. `out` = (spot, atm_iv, regime) preallocated C arrays with >= n_paths rows (the
    engine's per-chunk buffers); the returned arrays are then views of their first n_paths rows.
    `variance`: None (not kept), or a C float64 array (>= n_paths, n_steps + 1, n_u) that
    receives the variance path (see `MarketPaths.variance`); rows [0, n_paths) are written.
    """
    n_paths = int(n_paths)
    n_u = len(params.underlyings)
    n_steps = params.n_steps
    if out is None:
        spot = np.empty((n_paths, n_steps + 1, n_u))
        iv = np.empty((n_paths, n_steps + 1, n_u))
        reg = np.empty((n_paths, n_steps + 1), dtype=np.int8)
    else:
        spot, iv, reg = _check_out(out, n_paths, n_steps, n_u)
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0 (got {seed})")
    if variance is not None:
        if (not isinstance(variance, np.ndarray) or variance.dtype != np.float64 or variance.ndim != 3
                or variance.shape[1:] != (n_steps + 1, n_u) or variance.shape[0] < n_paths
                or not variance.flags.c_contiguous or not variance.flags.writeable):
            raise ValueError(f"variance: need a writeable C float64 array of shape (>= {n_paths}, {n_steps + 1}, {n_u})")
    blocks = covering_blocks(first_path, n_paths)
    p = params
    common = (p.spot0, p.log_spot0, p.drift, p.vol_sdt, p.chol, p.lam_dt, p.jump_mean, p.jump_std,
              p.init_cdf, p.trans_cdf, p.iv_base, p.iv_floor, p.iv_decay, p.iv_beta, p.ret_mean,
              p.shock_ret, p.shock_iv)
    if p.use_sv_kernel:
        var_out = variance if variance is not None else np.empty((1, 1, 1))
        sv_args = (p.common_jumps, p.has_sv, p.sv_drift, p.sv_exp, p.sv_c1, p.sv_c2, p.theta,
                   p.sv_k2, p.sv_k3, p.sv_k4, p.sv_v0, p.sv_b, p.sv_rho, p.sv_rhobar, p.iv_jump_var,
                   p.iv_premium, p.theta,
                   spot, iv, reg, var_out, variance is not None)

        def run(task):
            b, skip, take, dst = task
            simulate_block_sv(block_generator(seed, b), variance_generator(seed, b), skip, take, dst,
                              *common, *sv_args)
    else:
        args = common + (spot, iv, reg)

        def run(task):
            b, skip, take, dst = task
            simulate_block(block_generator(seed, b), skip, take, dst, *args)
            if variance is not None:
                variance[dst:dst + take] = p.theta[reg[dst:dst + take].astype(np.intp)]

    n_workers = min(resolve_threads(threads), len(blocks))
    if n_workers <= 1:
        for task in blocks:
            run(task)
    else:
        with ThreadPoolExecutor(max_workers=n_workers) as ex:
            for _ in ex.map(run, blocks):
                pass
    if out is not None:
        return spot[:n_paths], iv[:n_paths], reg[:n_paths]
    return spot, iv, reg


def simulate_market(scenario, n_paths: int, seed: int, first_path: int = 0,
                    threads: int | None = None) -> MarketPaths:
    """Simulate paths [first_path, first_path + n_paths) of `scenario` with `seed`."""
    from ..scenario import Scenario
    from ..validation import check_instance_arg, check_int_arg

    check_instance_arg("simulate_market", "scenario", scenario, Scenario, "a mcsim.Scenario")
    n_paths = check_int_arg("simulate_market", "n_paths", n_paths, lo=1)
    seed = check_int_arg("simulate_market", "seed", seed, lo=0, hi=2**63 - 1)
    first_path = check_int_arg("simulate_market", "first_path", first_path, lo=0)
    check_int_arg("simulate_market", "threads", threads, lo=1, optional=True)
    if scenario.market.uses_history:
        return _history_market(scenario, n_paths, seed, first_path, threads)
    params = market_params(scenario)
    var = np.empty((n_paths, params.n_steps + 1, len(params.underlyings))) if params.any_sv else None
    spot, iv, reg = generate_market(params, seed, first_path, n_paths, threads=threads, variance=var)
    return MarketPaths(spot, iv, reg, params.underlyings, params.steps_per_year, int(first_path), var)


def _history_market(scenario, n_paths, seed, first_path, threads) -> MarketPaths:
    """`simulate_market` for a price-file market: bootstrap paths, or the one historical path."""
    if scenario.market.source == "history":
        from ..backtest import history_market

        if first_path != 0 or n_paths != 1:
            raise ValueError('simulate_market: market.source = "history" is one path (n_paths=1, first_path=0)')
        return history_market(scenario)[0]
    from .source import chunk_generator

    spot, iv, reg = chunk_generator(scenario)(seed, first_path, n_paths, threads=threads)
    return MarketPaths(spot, iv, reg, scenario.underlying_names, scenario.run.steps_per_year, int(first_path))
