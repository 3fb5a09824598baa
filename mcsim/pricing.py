"""Option pricing: Black-Scholes-Merton, smile, strike-for-delta, Merton jumps, Heston.

Units everywhere: ``t`` in years; ``rate`` (r), ``div`` (continuous dividend
yield q), ``vol`` and jump parameters are annualised, continuously compounded
decimals (0.05 = 5 %); prices are per share, in the currency of ``spot``.

Two layers:

* numba scalar twins (``*_nb``), ``@njit(cache=True)``, for use inside
  kernels. Pass float64 for numeric arguments and a bool for ``is_call`` so
  that a single compiled signature is reused.
* public numpy functions (``bs_price``, ``bs_delta``, ``strike_for_delta``,
  ``merton_price``, ``implied_vol``) that broadcast over all array arguments
  and return a float (scalar inputs) or an ndarray. They are numba ufuncs
  wrapping the twins, so both layers give identical numbers.

Conventions
-----------
* Expiry, ``t <= 0``: price is intrinsic ``max(S-K, 0)`` / ``max(K-S, 0)``.
  Delta is the step ``1/0`` (call) and ``0/-1`` (put); exactly at the money
  (S == K) it is ``+0.5`` (call) and ``-0.5`` (put), the ``t -> 0`` limit of
  the Black-Scholes delta at S == K.
* Zero volatility, ``vol <= 0`` with ``t > 0``: the deterministic-forward limit,
  price ``max(S e^{-qt} - K e^{-rt}, 0)`` (call) and the mirror for puts;
  delta is ``e^{-qt}`` times the step in ``F - K`` (half step at F == K).
* Deltas are signed (puts negative) in ``bs_delta``; ``strike_for_delta``
  takes the absolute delta (0.30 for a 30-delta put).
"""

import math

import numpy as np
from numba import config as _numba_config
from numba import njit, vectorize

from mcsim.errors import ScenarioError
from mcsim.special import norm_cdf, norm_pdf, norm_ppf  # noqa: F401  (re-exported)

if _numba_config.DISABLE_JIT:
    # NUMBA_DISABLE_JIT=1 (the uncompiled CI smoke): njit returns plain functions, which a
    # numba ufunc cannot call; np.vectorize gives the same elementwise function in Python
    def vectorize(_signatures, **_options):  # noqa: F811
        return np.vectorize

__all__ = [
    "bs_price",
    "bs_delta",
    "strike_for_delta",
    "merton_price",
    "heston_price",
    "implied_vol",
    "bs_price_nb",
    "bs_delta_nb",
    "smile_iv_nb",
    "strike_for_delta_nb",
    "merton_price_nb",
    "round_strike_nb",
]

_MERTON_RTOL = 1e-12
_MERTON_NMAX = 100_000
_ROUND_RTOL = 1e-9


# =============================================================================
# numba scalar twins
# =============================================================================


@njit(cache=True)
def bs_price_nb(spot, strike, t, rate, div, vol, is_call):
    """Black-Scholes-Merton European price per share (see module conventions).

    Parameters
    ----------
    spot, strike : float
        Underlying price and strike (> 0).
    t : float
        Time to expiry in years.
    rate, div, vol : float
        Risk-free rate, dividend yield, volatility (annualised, continuous).
    is_call : bool
        True for a call, False for a put.
    """
    if t <= 0.0:
        if is_call:
            return max(spot - strike, 0.0)
        return max(strike - spot, 0.0)
    df_r = math.exp(-rate * t)
    df_q = math.exp(-div * t)
    sd = vol * math.sqrt(t)
    if vol <= 0.0 or sd == 0.0:
        fwd_pv = spot * df_q - strike * df_r
        if is_call:
            return max(fwd_pv, 0.0)
        return max(-fwd_pv, 0.0)
    d1 = (math.log(spot / strike) + (rate - div) * t) / sd + 0.5 * sd
    d2 = d1 - sd
    if is_call:
        return spot * df_q * norm_cdf(d1) - strike * df_r * norm_cdf(d2)
    return strike * df_r * norm_cdf(-d2) - spot * df_q * norm_cdf(-d1)


@njit(cache=True)
def bs_delta_nb(spot, strike, t, rate, div, vol, is_call):
    """Signed Black-Scholes-Merton spot delta: ``e^{-qt} N(d1)`` for a call,
    ``-e^{-qt} N(-d1)`` for a put. Same arguments as :func:`bs_price_nb`.

    At ``t <= 0`` returns the step 1/0 (call) or 0/-1 (put), +-0.5 at S == K.
    """
    if spot != spot or strike != strike:
        return math.nan
    if t <= 0.0:
        if spot > strike:
            return 1.0 if is_call else 0.0
        if spot < strike:
            return 0.0 if is_call else -1.0
        return 0.5 if is_call else -0.5
    df_q = math.exp(-div * t)
    sd = vol * math.sqrt(t)
    if vol <= 0.0 or sd == 0.0:
        fwd = spot * math.exp((rate - div) * t)
        if fwd > strike:
            return df_q if is_call else 0.0
        if fwd < strike:
            return 0.0 if is_call else -df_q
        return 0.5 * df_q if is_call else -0.5 * df_q
    d1 = (math.log(spot / strike) + (rate - div) * t) / sd + 0.5 * sd
    if is_call:
        return df_q * norm_cdf(d1)
    return -df_q * norm_cdf(-d1)


@njit(cache=True)
def smile_iv_nb(atm_iv, spot, strike, t, rate, div, skew, floor):
    """Smile implied vol ``max(floor, atm_iv * (1 + skew * m))``.

    ``m = ln(F/K) / (atm_iv sqrt(t))`` with forward ``F = spot e^{(rate-div) t}``;
    positive skew lifts OTM puts (K < F) and lowers OTM calls. When the
    moneyness is undefined (``t <= 0`` or ``atm_iv <= 0``) the smile is flat:
    ``max(floor, atm_iv)``.
    """
    if t <= 0.0 or atm_iv <= 0.0:
        return max(floor, atm_iv)
    fwd = spot * math.exp((rate - div) * t)
    m = math.log(fwd / strike) / (atm_iv * math.sqrt(t))
    return max(floor, atm_iv * (1.0 + skew * m))


@njit(cache=True)
def strike_for_delta_nb(spot, delta, t, rate, div, vol, is_call, skew, floor):
    """Strike whose absolute BSM delta, priced at the smile vol, equals ``delta``.

    ``vol`` is the ATM IV of the smile of :func:`smile_iv_nb` (flat at
    ``max(floor, vol)`` when ``skew == 0``). ``delta`` is absolute (0.30 for a
    30-delta put). Returns nan if no strike attains the target, e.g. when
    ``delta`` is outside ``(0, e^{-div t})``, ``t <= 0``, the vol is zero, or a
    negative skew bounds the attainable deltas.

    Method: with target ``D = d1 = +-ppf(delta e^{qt})`` and ``u = ln(F/K)``,
    the smile is linear in u, ``w = iv sqrt(t) = atm sqrt(t) + skew u``, so
    ``d1(u) = D`` becomes ``(skew/2) w^2 + (1 - skew D) w - atm sqrt(t) = 0``
    and ``u = w (D - w/2)``; on the floored part ``w = floor sqrt(t)``. The
    branch continuous with the no-skew solution (smaller positive root) is
    preferred, then the floored root, then the other root. Exact up to
    rounding (no iteration).
    """
    if t <= 0.0:
        return math.nan
    p = delta * math.exp(div * t)
    if not (delta > 0.0 and delta < math.exp(-div * t) and p < 1.0):
        return math.nan
    sqt = math.sqrt(t)
    d_target = norm_ppf(p)
    if not is_call:
        d_target = -d_target
    fwd = spot * math.exp((rate - div) * t)
    a = vol
    if skew == 0.0 or a <= 0.0:
        # flat smile (matches smile_iv_nb's degenerate cases)
        sig = max(floor, a)
        if not (sig > 0.0):
            return math.nan
        w = sig * sqt
        return fwd * math.exp(-(d_target * w - 0.5 * w * w))
    a_sd = a * sqt
    f_sd = floor * sqt
    s = skew
    b = 1.0 - s * d_target
    disc = b * b + 2.0 * s * a_sd
    w_small = math.nan
    w_large = math.nan
    if disc >= 0.0:
        sq = math.sqrt(disc)
        if s > 0.0:
            # one positive root; pick the cancellation-free formula
            if b >= 0.0:
                w_small = 2.0 * a_sd / (b + sq)
            else:
                w_small = (sq - b) / s
        elif b > 0.0:
            # s < 0: two positive roots (or none)
            w_small = 2.0 * a_sd / (b + sq)
            w_large = (b + sq) / (-s)
    # 1) linear branch, root continuous with the flat-smile solution
    if w_small > 0.0 and w_small >= f_sd:
        return fwd * math.exp(-(w_small * (d_target - 0.5 * w_small)))
    # 2) floored branch
    if f_sd > 0.0:
        u = f_sd * (d_target - 0.5 * f_sd)
        if a_sd + s * u <= f_sd:
            return fwd * math.exp(-u)
    # 3) other linear root (negative skew only)
    if w_large > 0.0 and w_large >= f_sd:
        return fwd * math.exp(-(w_large * (d_target - 0.5 * w_large)))
    return math.nan


@njit(cache=True)
def _poisson_logpmf(n, mean_log, mean):
    # log P(N = n) for N ~ Poisson(mean); mean_log = log(mean) (may be -inf)
    if n == 0:
        return -mean
    return -mean + n * mean_log - math.lgamma(n + 1.0)


@njit(cache=True)
def merton_price_nb(spot, strike, t, rate, div, vol, jump_intensity, jump_mean, jump_std, is_call):
    """Merton (1976) jump-diffusion European price per share.

    Log-normal jumps ``ln(1+J) ~ N(jump_mean, jump_std^2)`` arriving at
    ``jump_intensity`` per year; the drift ``rate - div - lambda k`` with
    ``k = exp(jump_mean + jump_std^2/2) - 1`` keeps ``e^{-(r-q)t} S_t`` a
    martingale. Price = sum over n of Poisson(lambda (1+k) t) weights times
    BSM prices with ``r_n = r - lambda k + n ln(1+k)/t`` and
    ``vol_n^2 = vol^2 + n jump_std^2/t``. The series stops once a rigorous
    bound on the remaining tail is below 1e-12 times the running sum.
    ``jump_intensity == 0`` returns :func:`bs_price_nb` exactly; a negative or
    nan intensity gives nan.
    """
    if t <= 0.0:
        return bs_price_nb(spot, strike, t, rate, div, vol, is_call)
    lam = jump_intensity
    if not (lam >= 0.0):
        return math.nan
    if lam == 0.0:
        return bs_price_nb(spot, strike, t, rate, div, vol, is_call)
    g = jump_mean + 0.5 * jump_std * jump_std  # ln(1 + k)
    k = math.expm1(g)
    v2 = vol * vol if vol > 0.0 else 0.0
    j2 = jump_std * jump_std
    lam_t = lam * t
    lamp_t = lam_t * math.exp(g)  # lambda' t = lambda (1+k) t
    log_lam_t = math.log(lam_t)
    log_lamp_t = math.log(lamp_t) if lamp_t > 0.0 else -math.inf
    # bound on every BSM term: call <= S e^{-qt} (weights lambda'),
    # put <= K e^{-r_n t}, i.e. K e^{-rt} times Poisson(lambda t) weights.
    if is_call:
        bound = spot * math.exp(-div * t)
        tail_mean = lamp_t
        tail_log_mean = log_lamp_t
    else:
        bound = strike * math.exp(-rate * t)
        tail_mean = lam_t
        tail_log_mean = log_lam_t
    mode = max(lam_t, lamp_t)
    total = 0.0
    for n in range(_MERTON_NMAX):
        w = math.exp(_poisson_logpmf(n, log_lamp_t, lamp_t))
        if w > 0.0:
            r_n = rate - lam * k + n * g / t
            vol_n = math.sqrt(v2 + n * j2 / t)
            total += w * bs_price_nb(spot, strike, t, r_n, div, vol_n, is_call)
        if total != total:
            return math.nan
        if n + 2.0 >= 2.0 * mode:
            # terms m > n: ratio of successive weights <= mean/(n+2) <= 1/2
            rho = tail_mean / (n + 2.0)
            tail = bound * math.exp(_poisson_logpmf(n + 1, tail_log_mean, tail_mean)) / (1.0 - rho)
            if tail <= _MERTON_RTOL * abs(total) or tail < 1e-300:
                break
    return total


@njit(cache=True)
def round_strike_nb(strike, step, is_call):
    """Round a strike to the listed grid ``step``, away from the money.

    Puts round down to a multiple of ``step``, calls round up. A strike within
    1e-9 (relative) of a grid point snaps to it, so float noise such as
    449.99999999 (step 1, put) gives 450. ``step <= 0`` returns the strike.
    """
    if not (step > 0.0):
        return strike
    x = strike / step
    n = np.floor(x + 0.5)  # np.floor keeps float64 (math.floor -> int64 in numba)
    if abs(strike - n * step) <= _ROUND_RTOL * abs(strike):
        return n * step
    if is_call:
        return np.ceil(x) * step
    return np.floor(x) * step


# =============================================================================
# numpy layer: numba ufuncs (broadcasting, same code as the twins)
# =============================================================================

_SIG7 = ["float64(float64, float64, float64, float64, float64, float64, boolean)"]


class _LazyUfunc:
    """`vectorize(signatures, cache=True)(fn)`, built at the first call, not at import.

    Building a numba ufunc loads its kernel from the cache but compiles the ufunc's loop wrapper
    anew every time (~0.15 s each, ~0.7 s for the five here): a cost `import mcsim` (and every
    `mcsim run`, which never calls these) paid for nothing. The built ufunc is the one the
    decorator gave before, so the results are the same bits.
    """

    def __init__(self, signatures, fn):
        self._signatures = signatures
        self._fn = fn
        self._ufunc = None
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__

    @property
    def ufunc(self):
        if self._ufunc is None:
            self._ufunc = vectorize(self._signatures, cache=True)(self._fn)
        return self._ufunc

    def __call__(self, *args, **kwargs):
        return self.ufunc(*args, **kwargs)


def _lazy_vectorize(signatures):
    return lambda fn: _LazyUfunc(signatures, fn)


@_lazy_vectorize(_SIG7)
def _bs_price_u(spot, strike, t, rate, div, vol, is_call):
    return bs_price_nb(spot, strike, t, rate, div, vol, is_call)


@_lazy_vectorize(_SIG7)
def _bs_delta_u(spot, strike, t, rate, div, vol, is_call):
    return bs_delta_nb(spot, strike, t, rate, div, vol, is_call)


@_lazy_vectorize(["float64(float64, float64, float64, float64, float64, float64, float64, float64)"])
def _smile_iv_u(atm_iv, spot, strike, t, rate, div, skew, floor):
    return smile_iv_nb(atm_iv, spot, strike, t, rate, div, skew, floor)


@_lazy_vectorize(["float64(float64, float64, float64, float64, float64, float64, boolean, float64, float64)"])
def _strike_for_delta_u(spot, delta, t, rate, div, vol, is_call, skew, floor):
    return strike_for_delta_nb(spot, delta, t, rate, div, vol, is_call, skew, floor)


@_lazy_vectorize(
    [
        "float64(float64, float64, float64, float64, float64, float64, "
        "float64, float64, float64, boolean)"
    ]
)
def _merton_price_u(spot, strike, t, rate, div, vol, jump_intensity, jump_mean, jump_std, is_call):
    return merton_price_nb(spot, strike, t, rate, div, vol, jump_intensity, jump_mean, jump_std, is_call)


def _f(x):
    return np.asarray(x, dtype=np.float64)


def _b(x):
    return np.asarray(x, dtype=np.bool_)


# extreme but legal inputs (t ~ 1e-300, huge strikes) overflow intermediates
# such as d1 -> inf; the results are still right, so keep numpy quiet.
def _quiet():
    return np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore")


def bs_price(spot, strike, t, rate, div, vol, is_call):
    """Black-Scholes-Merton European option price per share (broadcasting).

    Parameters
    ----------
    spot, strike : float or array_like
        Underlying price and strike (> 0).
    t : float or array_like
        Time to expiry in years; ``t <= 0`` gives intrinsic value.
    rate, div, vol : float or array_like
        Risk-free rate, dividend yield and volatility, annualised continuous
        decimals.
    is_call : bool or array_like of bool
        True for calls, False for puts.

    Returns
    -------
    float or ndarray
    """
    with _quiet():
        return _bs_price_u(_f(spot), _f(strike), _f(t), _f(rate), _f(div), _f(vol), _b(is_call))


def bs_delta(spot, strike, t, rate, div, vol, is_call):
    """Signed Black-Scholes-Merton spot delta (puts negative), broadcasting.

    Arguments as :func:`bs_price`. At ``t <= 0``: 1/0 for calls, 0/-1 for
    puts, +-0.5 exactly at the money.
    """
    with _quiet():
        return _bs_delta_u(_f(spot), _f(strike), _f(t), _f(rate), _f(div), _f(vol), _b(is_call))


def implied_vol(atm_iv, spot, strike, t, rate, div, skew, floor):
    """Smile implied volatility (broadcasting).

    ``iv = max(floor, atm_iv * (1 + skew * m))``, ``m = ln(F/K) / (atm_iv sqrt(t))``,
    ``F = spot exp((rate - div) t)``, t in years. With ``skew > 0`` OTM puts
    (K < F) carry more IV than ATM, OTM calls less. Flat ``max(floor, atm_iv)``
    when ``t <= 0`` or ``atm_iv <= 0``.
    """
    with _quiet():
        return _smile_iv_u(_f(atm_iv), _f(spot), _f(strike), _f(t), _f(rate), _f(div), _f(skew), _f(floor))


def merton_price(spot, strike, t, rate, div, vol, jump_intensity, jump_mean, jump_std, is_call):
    """Merton (1976) jump-diffusion European price per share (broadcasting).

    Parameters
    ----------
    spot, strike, t, rate, div, vol, is_call
        As :func:`bs_price` (``vol`` is the diffusive volatility).
    jump_intensity : float or array_like
        Poisson jump rate per year (>= 0; 0 gives the BSM price).
    jump_mean, jump_std : float or array_like
        Mean and standard deviation of the log jump size ``ln(1+J)``.

    Notes
    -----
    Price drift ``rate - div``: jumps are compensated by
    ``k = exp(jump_mean + jump_std^2/2) - 1``. Poisson series of BSM prices
    summed until the tail bound is below 1e-12 relative.
    """
    with _quiet():
        return _merton_price_u(
            _f(spot), _f(strike), _f(t), _f(rate), _f(div), _f(vol),
            _f(jump_intensity), _f(jump_mean), _f(jump_std), _b(is_call),
        )


def strike_for_delta(spot, delta, t, rate, div, vol, is_call, skew=0.0, floor=0.0):
    """Strike whose absolute delta equals ``delta`` (broadcasting).

    Parameters
    ----------
    spot : float or array_like
        Underlying price.
    delta : float or array_like
        Target absolute delta, e.g. 0.30 for a 30-delta put; must lie in
        ``(0, exp(-div t))``.
    t : float or array_like
        Time to expiry in years (> 0).
    rate, div : float or array_like
        Annualised continuous rate and dividend yield.
    vol : float or array_like
        ATM implied vol of the smile (the flat vol when ``skew == 0``).
    is_call : bool or array_like of bool
    skew, floor : float or array_like
        Smile parameters of :func:`implied_vol`.

    Returns
    -------
    float or ndarray
        K with ``|bs_delta(spot, K, t, rate, div, implied_vol(vol, spot, K, ...), is_call)| == delta``
        (exact up to rounding: closed form, see :func:`strike_for_delta_nb`).

    Raises
    ------
    ValueError
        (:class:`mcsim.errors.ScenarioError`) if some target is unreachable;
        the message names the argument, its value and the allowed range.
    """
    args = [_f(spot), _f(delta), _f(t), _f(rate), _f(div), _f(vol), _b(is_call), _f(skew), _f(floor)]
    with _quiet():
        res = _strike_for_delta_u(*args)
    bad = np.isnan(res)
    if np.any(bad):
        b = np.broadcast_arrays(*args)
        finite = np.ones(np.shape(res), dtype=bool)
        for i, arr in enumerate(b):
            if i != 6:
                finite &= np.isfinite(arr)
        bad &= finite
        if np.any(bad):
            idx = tuple(int(j) for j in np.argwhere(bad)[0]) if np.ndim(res) else ()
            s, d, tt, r, q, v, c, sk, fl = (a[idx] for a in b)
            _raise_unreachable(idx, float(s), float(d), float(tt), float(q), float(v), bool(c), float(sk), float(fl))
    return res


def _raise_unreachable(idx, spot, delta, t, div, vol, is_call, skew, floor):
    where = f" at index {idx}" if idx else ""
    if not t > 0.0:
        raise ScenarioError(f"t={t!r}{where}: strike_for_delta needs t > 0 (years)")
    hi = math.exp(-div * t)
    if not (0.0 < delta < hi):
        raise ScenarioError(
            f"delta={delta!r}{where} is unreachable: the absolute delta must lie in the open "
            f"interval (0, exp(-div*t)) = (0, {hi!r}) for div={div!r}, t={t!r}"
        )
    if skew == 0.0 or vol <= 0.0:
        raise ScenarioError(
            f"vol={vol!r}{where} (floor={floor!r}): strike_for_delta needs max(vol, floor) > 0"
        )
    kind = "call" if is_call else "put"
    raise ScenarioError(
        f"delta={delta!r}{where} is unreachable for a {kind} on the smile vol={vol!r}, "
        f"skew={skew!r}, floor={floor!r}, t={t!r}: with skew < 0 the attainable deltas are bounded; "
        f"use a smaller |skew|, a floor or a different delta"
    )


# =============================================================================
# Heston (1993): semi-analytic European price (characteristic function)
# =============================================================================

_GL_X, _GL_W = np.polynomial.legendre.leggauss(32)


def _heston_cf(u, t, kappa, theta, vol_of_vol, rho, v0):
    """E[exp(i u X)], X = ln(S_t / F_t), Heston dynamics; "little trap" form (Albrecher et al.
    2007), continuous in u for complex u with -1 <= Im(u) <= 0."""
    xi = vol_of_vol
    iu = 1j * u
    beta = kappa - rho * xi * iu
    d = np.sqrt(beta * beta + xi * xi * (iu + u * u))
    g = (beta - d) / (beta + d)
    edt = np.exp(-d * t)
    big_d = (beta - d) / (xi * xi) * (1.0 - edt) / (1.0 - g * edt)
    big_c = kappa * theta / (xi * xi) * ((beta - d) * t - 2.0 * np.log((1.0 - g * edt) / (1.0 - g)))
    return np.exp(big_c + big_d * v0)  # phi(-i) == 1: E[S_t] = F


def heston_price(*, spot, strike, t, rate, div, v0, mean_reversion, long_run_var, vol_of_vol,
                 spot_vol_correlation, is_call):
    """Heston (1993) European option price per share, by the Lewis (2001) integral.

    Parameters (keyword-only, scalars)
    ----------
    spot, strike : float
        Underlying price and strike (> 0), per share.
    t : float
        Time to expiry in years (> 0).
    rate, div : float
        Risk-free rate and dividend yield, annualised continuous decimals.
    v0, long_run_var : float
        Initial and long-run instantaneous variance (vol^2, per year), >= 0.
    mean_reversion : float
        kappa, per year (> 0).
    vol_of_vol : float
        xi, annualised (> 0; use a tiny value for the Black-Scholes limit).
    spot_vol_correlation : float
        rho in [-1, 1] between price and variance shocks.
    is_call : bool

    Returns
    -------
    float
        ``C = S e^{-qt} - sqrt(S K) e^{-(r+q) t / 2} / pi * int_0^inf Re[e^{i u k} phi(u - i/2)]
        / (u^2 + 1/4) du`` with ``k = ln(F / K)``, ``phi`` the characteristic function of
        ``ln(S_t / F)``; puts by put-call parity. The integral is composite Gauss-Legendre
        (32 nodes per panel) on [0, u_max], u_max set where the integrand is below 1e-16.
    """
    spot, strike, t = float(spot), float(strike), float(t)
    if not (spot > 0 and strike > 0 and t > 0 and mean_reversion > 0 and vol_of_vol > 0
            and v0 >= 0 and long_run_var >= 0 and -1.0 <= spot_vol_correlation <= 1.0):
        raise ValueError("heston_price: need spot, strike, t, mean_reversion, vol_of_vol > 0, "
                         "v0, long_run_var >= 0 and spot_vol_correlation in [-1, 1]")
    fwd = spot * math.exp((rate - div) * t)
    k = math.log(fwd / strike)
    args = (t, float(mean_reversion), float(long_run_var), float(vol_of_vol),
            float(spot_vol_correlation), float(v0))
    # the integrand decays at least like exp(-w u^2 / 2) with w the mean integrated variance
    # for small vol of vol, and like exp(-c u) otherwise; widen until a panel contributes nothing
    total = 0.0
    width = 5.0
    lo = 0.0
    for _ in range(400):
        x = lo + 0.5 * width * (_GL_X + 1.0)
        f = np.real(np.exp(1j * x * k) * _heston_cf(x - 0.5j, *args)) / (x * x + 0.25)
        part = 0.5 * width * float(np.dot(_GL_W, f))
        total += part
        lo += width
        if abs(part) < 1e-16 and np.max(np.abs(f)) < 1e-14:
            break
        width = min(width * 1.25, 50.0)
    call = spot * math.exp(-div * t) - math.sqrt(spot * strike) * math.exp(-0.5 * (rate + div) * t) * total / math.pi
    if is_call:
        return call
    return call - spot * math.exp(-div * t) + strike * math.exp(-rate * t)
