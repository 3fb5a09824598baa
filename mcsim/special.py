"""Scalar special functions for numba kernels.

All functions are ``@njit(cache=True)`` scalar functions of a float64 and
return a float64; call them from other njit code or from Python.

- ``norm_cdf(x)``: standard normal CDF via ``math.erfc`` (relative accuracy
  is kept deep in the lower tail, e.g. ``norm_cdf(-37)`` ~ 5.7e-300).
- ``norm_pdf(x)``: standard normal density.
- ``norm_ppf(p)``: inverse standard normal CDF, Wichura's algorithm AS241
  (PPND16, Applied Statistics 37(3), 1988), about 1e-16 relative accuracy.
"""

import math

from numba import njit

_INV_SQRT2 = 0.7071067811865475244008443621048490
_INV_SQRT_2PI = 0.3989422804014326779399460599343819

# --- AS241 PPND16 coefficients (Wichura 1988) --------------------------------
_SPLIT1 = 0.425
_SPLIT2 = 5.0
_CONST1 = 0.180625
_CONST2 = 1.6

# p close to 0.5: |p - 0.5| <= 0.425
_A0 = 3.3871328727963666080e0
_A1 = 1.3314166789178437745e2
_A2 = 1.9715909503065514427e3
_A3 = 1.3731693765509461125e4
_A4 = 4.5921953931549871457e4
_A5 = 6.7265770927008700853e4
_A6 = 3.3430575583588128105e4
_A7 = 2.5090809287301226727e3
_B1 = 4.2313330701600911252e1
_B2 = 6.8718700749205790830e2
_B3 = 5.3941960214247511077e3
_B4 = 2.1213794301586595867e4
_B5 = 3.9307895800092710610e4
_B6 = 2.8729085735721942674e4
_B7 = 5.2264952788528545610e3

# intermediate tails: r = sqrt(-log(min(p, 1-p))) <= 5
_C0 = 1.42343711074968357734e0
_C1 = 4.63033784615654529590e0
_C2 = 5.76949722146069140550e0
_C3 = 3.64784832476320460504e0
_C4 = 1.27045825245236838258e0
_C5 = 2.41780725177450611770e-1
_C6 = 2.27238449892691845833e-2
_C7 = 7.74545014278341407640e-4
_D1 = 2.05319162663775882187e0
_D2 = 1.67638483018380384940e0
_D3 = 6.89767334985100004550e-1
_D4 = 1.48103976427480074590e-1
_D5 = 1.51986665636164571966e-2
_D6 = 5.47593808499534494600e-4
_D7 = 1.05075007164441684324e-9

# far tails: r > 5
_E0 = 6.65790464350110377720e0
_E1 = 5.46378491116411436990e0
_E2 = 1.78482653991729133580e0
_E3 = 2.96560571828504891230e-1
_E4 = 2.65321895265761230930e-2
_E5 = 1.24266094738807843860e-3
_E6 = 2.71155556874348757815e-5
_E7 = 2.01033439929228813265e-7
_F1 = 5.99832206555887937690e-1
_F2 = 1.36929880922735805310e-1
_F3 = 1.48753612908506148525e-2
_F4 = 7.86869131145613259100e-4
_F5 = 1.84631831751005468180e-5
_F6 = 1.42151175831644588870e-7
_F7 = 2.04426310338993978564e-15


@njit(cache=True)
def norm_cdf(x):
    """Standard normal CDF, ``0.5 * erfc(-x / sqrt(2))``.

    Accurate to a few ulps in relative terms for x < 0 down to underflow
    (x ~ -38); for large positive x the result rounds to 1.0.
    """
    return 0.5 * math.erfc(-x * _INV_SQRT2)


@njit(cache=True)
def norm_pdf(x):
    """Standard normal density ``exp(-x**2 / 2) / sqrt(2 pi)``."""
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


@njit(cache=True)
def norm_ppf(p):
    """Inverse standard normal CDF (Wichura AS241 / PPND16).

    Parameters
    ----------
    p : float
        Lower-tail probability.

    Returns
    -------
    float
        z with ``norm_cdf(z) == p``; ``-inf`` at p == 0, ``+inf`` at p == 1,
        nan for p outside [0, 1] or nan.
    """
    if not (p > 0.0 and p < 1.0):
        if p == 0.0:
            return -math.inf
        if p == 1.0:
            return math.inf
        return math.nan
    q = p - 0.5
    if abs(q) <= _SPLIT1:
        r = _CONST1 - q * q
        num = (((((((_A7 * r + _A6) * r + _A5) * r + _A4) * r + _A3) * r + _A2) * r + _A1) * r + _A0)
        den = (((((((_B7 * r + _B6) * r + _B5) * r + _B4) * r + _B3) * r + _B2) * r + _B1) * r + 1.0)
        return q * num / den
    if q < 0.0:
        r = p
    else:
        r = 1.0 - p  # exact for p >= 0.5 (Sterbenz)
    r = math.sqrt(-math.log(r))
    if r <= _SPLIT2:
        r -= _CONST2
        num = (((((((_C7 * r + _C6) * r + _C5) * r + _C4) * r + _C3) * r + _C2) * r + _C1) * r + _C0)
        den = (((((((_D7 * r + _D6) * r + _D5) * r + _D4) * r + _D3) * r + _D2) * r + _D1) * r + 1.0)
    else:
        r -= _SPLIT2
        num = (((((((_E7 * r + _E6) * r + _E5) * r + _E4) * r + _E3) * r + _E2) * r + _E1) * r + _E0)
        den = (((((((_F7 * r + _F6) * r + _F5) * r + _F4) * r + _F3) * r + _F2) * r + _F1) * r + 1.0)
    val = num / den
    if q < 0.0:
        return -val
    return val
