"""Streaming reductions of path-month data: what the summary needs, in memory that does not grow
with paths x months.

`simulate` runs chunks of paths; in each chunk, every strategy's monthly rows are reduced into
the chunk's own `MonthlyStats` and dropped (only the first `monthly_limit` paths' rows are kept,
for monthly.parquet and the plots); the run's `MonthlyStats` takes each chunk's in with `put`
(on a Dask worker the chunk's is pickled, its histograms sparse). Two kinds of state:

* per path (grows with paths only, like the per_path table): over the path's full months, for
  each income column (premium, net_premium, realised_pnl, mtm_return), the sum of its finite
  values (added in month order), their count, their sum of squared deviations from the path's
  mean, the count of negative months; and the three annual yields. Reduced over all paths only
  at the end, in path order, so the result is the same bits whatever the chunk size, thread
  count or engine.
* a fixed-bin histogram per income column (integer counts: merging is exact and
  order-free) with the exact minimum and maximum, for the path-month quantiles.

Histogram bins are uniform in y = asinh(x / scale) / BIN_WIDTH: bin b holds
[scale sinh(b w), scale sinh((b + 1) w)), w = BIN_WIDTH, and exact zeros have a bin of their
own (a quantile that falls on them is 0 exactly). `scale` is SCALE_SHARE x initial equity
for the dollar columns and SCALE_RETURN for mtm_return. A quantile is read inside the bin holding
its order statistics, so its error is at most the bin's width: |error| <= w e^w (|q| + scale),
i.e. at most 2.0e-4 x |q| plus 2.0e-4 x scale ($2e-5 at $100,000 initial equity; 2e-10 for a
return). Values with |x| > RANGE_SHARE x initial equity (RANGE_RETURN for returns) fall in an
under/overflow bin, where a quantile is only bounded by the exact min/max; their count is reported
(`out_of_range`). Means and standard deviations are exact up to rounding (relative 1e-12).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

__all__ = ["BIN_WIDTH", "INCOME_COLUMNS", "YIELD_KEYS", "Histogram", "MonthlyStats", "bin_error_text"]

BIN_WIDTH = 2.0e-4        # w: bins uniform in asinh(x / scale) / w
SCALE_SHARE = 1e-6        # dollar columns: scale = this x initial equity
SCALE_RETURN = 1e-6       # mtm_return: scale (a fraction)
RANGE_SHARE = 1e3         # dollar columns: regular bins cover |x| <= this x initial equity
RANGE_RETURN = 1e3        # mtm_return: regular bins cover |x| <= this
INCOME_COLUMNS = ("premium", "net_premium", "realised_pnl", "mtm_return")
YIELD_KEYS = (("premium", "annual_premium_yield"), ("net_premium", "annual_net_premium_yield"),
              ("realised_pnl", "annual_realised_yield"))


def bin_error_text() -> str:
    """The histogram's quantile error bound in words (summary metadata, docs/semantics.md)."""
    w = BIN_WIDTH
    return (f"path-month quantiles from a fixed-bin histogram, bins uniform in asinh(x / scale) of width {w:g}: "
            f"|error| <= {w * math.exp(w):.4g} x (|q| + scale), scale = {SCALE_SHARE:g} x initial equity for "
            f"$ columns, {SCALE_RETURN:g} for mtm_return; values beyond {RANGE_SHARE:g} x initial equity "
            f"({RANGE_RETURN:g} for returns) are bounded only by the exact min/max (count in out_of_range)")


class Histogram:
    """Counts of finite values in fixed asinh bins, with the exact min and max (mergeable)."""

    @staticmethod
    def n_bins(scale: float, limit: float) -> int:
        """Length of the counts array for `scale` and `limit` (without allocating it)."""
        return 2 * int(math.ceil(math.asinh(limit / scale) / BIN_WIDTH)) + 3

    def __init__(self, scale: float, limit: float):
        self.scale = float(scale)
        self.half = int(math.ceil(math.asinh(limit / scale) / BIN_WIDTH))
        # [under, negative bins, exact zeros, positive bins, over]
        self.counts = np.zeros(2 * self.half + 3, dtype=np.int64)
        self.zero = self.half + 1
        self.lo = math.inf
        self.hi = -math.inf
        self._cum = None        # cumulative counts, cached for quantile (reset by add)

    def add(self, x: np.ndarray) -> None:
        # numpy's arcsinh (its SIMD build decides the last bit, so it stays numpy's), then one
        # compiled pass: bin, count, min, max (what `_add_numpy` does with clip and bincount)
        with np.errstate(invalid="ignore"):
            y = np.arcsinh(x / self.scale)
        self._cum = None
        lo, hi = _bin_counts(x, y, self.half, self.counts)
        if lo <= hi:
            self.lo = min(self.lo, lo)
            self.hi = max(self.hi, hi)

    def _add_numpy(self, x: np.ndarray) -> None:
        """`add` in numpy (the reference formulation; tests compare the two)."""
        self._cum = None
        x = x[np.isfinite(x)]
        if not len(x):
            return
        b = np.floor(np.arcsinh(x / self.scale) / BIN_WIDTH)
        b = np.clip(b, -self.half - 1, self.half)
        idx = (b + (self.half + 1) + (b >= 0)).astype(np.int64)
        idx[x == 0.0] = self.zero
        self.counts += np.bincount(idx, minlength=len(self.counts))
        self.lo = min(self.lo, float(x.min()))
        self.hi = max(self.hi, float(x.max()))

    def merge(self, other: "Histogram") -> None:
        """Add `other`'s counts (same bins) and widen min/max: exact, in any order."""
        if other.scale != self.scale or other.half != self.half:
            raise ValueError("Histogram.merge: the histograms have different bins")
        self._cum = None
        self.counts += other.counts
        self.lo = min(self.lo, other.lo)
        self.hi = max(self.hi, other.hi)

    def __getstate__(self):
        # pickled sparse (a chunk fills few of its ~2e5 bins): what a Dask task sends back
        nz = np.flatnonzero(self.counts)
        return {"scale": self.scale, "half": self.half, "lo": self.lo, "hi": self.hi,
                "idx": nz.astype(np.int32), "cnt": self.counts[nz]}

    def __setstate__(self, state):
        self.scale, self.half = state["scale"], state["half"]
        self.zero = self.half + 1
        self.lo, self.hi = state["lo"], state["hi"]
        self.counts = np.zeros(2 * self.half + 3, dtype=np.int64)
        self.counts[state["idx"]] = state["cnt"]
        self._cum = None

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def out_of_range(self) -> int:
        return int(self.counts[0] + self.counts[-1])

    def _bin(self, i: int) -> int:
        """The asinh bin b of counts index i (not the zero index)."""
        return i - self.half - 1 - (i > self.zero)

    def _edge(self, b: int) -> float:
        return self.scale * math.sinh(b * BIN_WIDTH)

    def order_stat(self, k: int, cum: np.ndarray) -> float:
        """Estimate of the k-th smallest value (0-based), inside the bin that holds it (the
        smallest and largest exactly)."""
        if k == 0:
            return self.lo
        if k == int(cum[-1]) - 1:
            return self.hi
        i = int(np.searchsorted(cum, k, side="right"))
        before = int(cum[i - 1]) if i else 0
        frac = (k - before + 0.5) / int(self.counts[i])
        if i == self.zero:
            return 0.0
        if i == 0:
            a, b = self.lo, min(self._edge(-self.half), self.hi)
            v = a + (b - a) * frac
        elif i == len(self.counts) - 1:
            a, b = max(self._edge(self.half), self.lo), self.hi
            v = a + (b - a) * frac
        else:
            v = self.scale * math.sinh((self._bin(i) + frac) * BIN_WIDTH)
        return min(max(v, self.lo), self.hi)

    def quantile(self, p: float) -> float:
        """numpy's linear quantile, each order statistic read from its bin (nan when empty)."""
        cum = getattr(self, "_cum", None)
        n = int(self.counts.sum())
        if cum is None or int(cum[-1]) != n:   # counts merged from elsewhere also invalidate it
            cum = self._cum = np.cumsum(self.counts)
        if n == 0:
            return math.nan
        h = (n - 1) * p
        lo = int(math.floor(h))
        hi = min(lo + 1, n - 1)
        t = h - lo
        a = self.order_stat(lo, cum)
        b = self.order_stat(hi, cum) if hi != lo else a
        return a + (b - a) * t if t < 0.5 else b - (b - a) * (1.0 - t)


with np.errstate(invalid="ignore"):
    _NAN_0_0 = float(np.divide(np.zeros(1), np.zeros(1))[0])   # numpy's 0 / 0 (its sign bit too)


@njit(cache=True, nogil=True)
def _bin_counts(x, y, half, counts):
    """Count the finite x (y = arcsinh(x / scale)) into `counts`; returns (min, max) of them
    (inf, -inf when none). Bins as `Histogram._add_numpy`."""
    lo = np.inf
    hi = -np.inf
    zero = half + 1
    for i in range(x.shape[0]):
        xi = x[i]
        if not np.isfinite(xi):
            continue
        if xi == 0.0:
            counts[zero] += 1
        else:
            b = np.floor(y[i] / BIN_WIDTH)
            if b < -half - 1:
                b = -half - 1
            elif b > half:
                b = half
            k = int(b) + half + 1
            if b >= 0:
                k += 1
            counts[k] += 1
        if xi < lo:
            lo = xi
        if xi > hi:
            hi = xi
    return lo, hi


@njit(cache=True, nogil=True, inline="always")
def _pairwise_leaf(a, lo, n):
    """numpy's pairwise summation of a[lo:lo + n], n <= 128: below 8 terms a running sum from
    0, else eight accumulators combined as a tree, then the remainder one by one."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    i = 8
    while i < n - (n % 8):
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True, nogil=True)
def _pairwise_sum(a, lo, n):
    """numpy's pairwise summation of a[lo:lo + n] (`np.add.reduce` over a contiguous axis):
    blocks of up to 128 terms (`_pairwise_leaf`), above that the sum of two halves (the first a
    multiple of 8 long), evaluated with an explicit stack (a recursive function would not load
    from numba's cache)."""
    if n <= 128:
        return _pairwise_leaf(a, lo, n)
    los = np.empty(64, np.int64)
    ns = np.empty(64, np.int64)
    stage = np.zeros(64, np.int64)
    left = np.empty(64)
    sp = 0
    los[0] = lo
    ns[0] = n
    val = 0.0
    while True:
        m = ns[sp]
        n2 = m // 2
        n2 -= n2 % 8
        if stage[sp] == 0:
            clo = los[sp]
            cn = n2
            stage[sp] = 1
        elif stage[sp] == 1:
            left[sp] = val
            clo = los[sp] + n2
            cn = m - n2
            stage[sp] = 2
        else:
            val = left[sp] + val
            sp -= 1
            if sp < 0:
                return val
            continue
        if cn <= 128:
            val = _pairwise_leaf(a, clo, cn)
        else:
            sp += 1
            los[sp] = clo
            ns[sp] = cn
            stage[sp] = 0


@njit(cache=True, nogil=True)
def _column_moments(v, nf, sums, counts, m2, negative):
    """Per row of v (rows, >= nf) over its first nf months: the sum of the finite values in month
    order, their count, the sum of squared deviations from their mean (0 for non-finite months;
    numpy's pairwise order) and the count of negative months."""
    d = np.empty(nf)
    for p in range(v.shape[0]):
        s = 0.0
        cnt = 0
        neg = 0
        for m in range(nf):
            x = v[p, m]
            if np.isfinite(x):
                s = s + x
                cnt += 1
            if x < 0.0:
                neg += 1
        mean = s / cnt if cnt else _NAN_0_0
        for m in range(nf):
            x = v[p, m]
            if np.isfinite(x):
                e = x - mean
                d[m] = e * e
            else:
                d[m] = 0.0
        sums[p] = s
        counts[p] = cnt
        m2[p] = 0.0 + _pairwise_sum(d, 0, nf)
        negative[p] = neg


@njit(cache=True, nogil=True)
def _path_yields(v, equity_end, nf, initial, out):
    """12 x the mean over a row's first nf months of v / month-start equity (finite ratios with
    a positive start only; the start of month 0 is `initial`), as `_add_numpy`."""
    for p in range(v.shape[0]):
        s = 0.0
        cnt = 0
        for m in range(nf):
            start = initial if m == 0 else equity_end[p, m - 1]
            if start > 0.0:
                r = v[p, m] / start
                if np.isfinite(r):
                    s = s + r
                    cnt += 1
        out[p] = 12.0 * (s / cnt) if cnt else 12.0 * _NAN_0_0


# bytes of a MonthlyStats: per path (sums f8, counts i4, m2 f8, negative i4 per column; yields
# f8), and its histograms (int64 counts, the same bin count for every column)
PATH_BYTES = len(INCOME_COLUMNS) * (8 + 4 + 8 + 4) + len(YIELD_KEYS) * 8
HIST_BYTES = len(INCOME_COLUMNS) * 8 * Histogram.n_bins(SCALE_RETURN, RANGE_RETURN)


@dataclass
class MonthlyStats:
    """One strategy's path-month reductions (see the module docstring). Paths in row order."""

    n_paths: int
    n_full: int                      # full months per path
    initial_equity: float
    sums: dict = field(default_factory=dict)       # column -> f8[n_paths], finite full months
    counts: dict = field(default_factory=dict)     # column -> i4[n_paths]
    m2: dict = field(default_factory=dict)         # column -> f8[n_paths]
    negative: dict = field(default_factory=dict)   # column -> i4[n_paths]
    yields: dict = field(default_factory=dict)     # yield key -> f8[n_paths]
    hist: dict = field(default_factory=dict)       # column -> Histogram

    @classmethod
    def empty(cls, n_paths: int, n_full: int, initial_equity: float, columns=INCOME_COLUMNS) -> "MonthlyStats":
        st = cls(int(n_paths), int(n_full), float(initial_equity))
        for c in columns:
            st.sums[c] = np.zeros(n_paths)
            st.counts[c] = np.zeros(n_paths, dtype=np.int32)
            st.m2[c] = np.zeros(n_paths)
            st.negative[c] = np.zeros(n_paths, dtype=np.int32)
            money = c != "mtm_return"
            st.hist[c] = Histogram(SCALE_SHARE * initial_equity if money else SCALE_RETURN,
                                   RANGE_SHARE * initial_equity if money else RANGE_RETURN)
        for c, key in YIELD_KEYS:
            if c in columns:
                st.yields[key] = np.zeros(n_paths)
        return st

    def add(self, first: int, cols: dict, equity_end: np.ndarray) -> None:
        """Reduce rows [first, first + R) of this chunk: `cols` maps a column to f8[R, n_months]
        (mtm_return included), `equity_end` f8[R, n_months] (after withdrawals).

        One compiled pass per column (`_column_moments`, `_path_yields`): the same operations in
        the same order as the numpy formulation kept in `_add_numpy` (month-order sums, numpy's
        pairwise sum of squared deviations), so the state is bit-identical to it."""
        nf = self.n_full
        rows = equity_end.shape[0]
        sl = slice(first, first + rows)
        for c in self.sums:
            v = cols[c]
            _column_moments(v, nf, self.sums[c][sl], self.counts[c][sl], self.m2[c][sl], self.negative[c][sl])
            self.hist[c].add(v[:, :nf].ravel())
        for c, key in YIELD_KEYS:
            if key in self.yields:
                _path_yields(cols[c], equity_end, nf, self.initial_equity, self.yields[key][sl])

    def _add_numpy(self, first: int, cols: dict, equity_end: np.ndarray) -> None:
        """`add` in numpy (the reference formulation; tests compare the two bit for bit)."""
        nf = self.n_full
        rows = equity_end.shape[0]
        sl = slice(first, first + rows)
        start = np.empty((rows, nf))
        if nf:
            start[:, 0] = self.initial_equity
            start[:, 1:] = equity_end[:, :nf - 1]
        for c in self.sums:
            v = cols[c][:, :nf]
            ok = np.isfinite(v)
            s = np.zeros(rows)
            for m in range(nf):   # month order, as a per-path bincount adds them
                s = np.where(ok[:, m], s + v[:, m], s)
            cnt = ok.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = s / cnt
            d = np.where(ok, v - mean[:, None], 0.0)
            self.sums[c][sl] = s
            self.counts[c][sl] = cnt
            self.m2[c][sl] = (d * d).sum(axis=1)
            self.negative[c][sl] = (v < 0).sum(axis=1)
            self.hist[c].add(v.ravel())
        for c, key in YIELD_KEYS:
            if key not in self.yields:
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(start > 0.0, cols[c][:, :nf] / start, np.nan)
            ok = np.isfinite(ratio)
            s = np.zeros(rows)
            for m in range(nf):
                s = np.where(ok[:, m], s + ratio[:, m], s)
            with np.errstate(invalid="ignore", divide="ignore"):
                self.yields[key][sl] = 12.0 * (s / ok.sum(axis=1))

    def put(self, first: int, part: "MonthlyStats") -> None:
        """Fold in `part`, the reductions of paths [first, first + part.n_paths) computed on
        their own (a chunk): its per-path arrays are copied into those rows, its histograms
        merged (integer counts: exact). The same bits as `add` on those rows directly."""
        if part.n_full != self.n_full or part.sums.keys() != self.sums.keys():
            raise ValueError("MonthlyStats.put: the part has other months or columns")
        sl = slice(first, first + part.n_paths)
        for name in ("sums", "counts", "m2", "negative", "yields"):
            mine = getattr(self, name)
            for k, v in getattr(part, name).items():
                mine[k][sl] = v
        for c, h in part.hist.items():
            self.hist[c].merge(h)

    def cluster_means(self, c: str) -> np.ndarray:
        """Per-path mean over full months (nan for a path with a non-finite month, as before)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts[c] == self.n_full, self.sums[c] / self.counts[c], np.nan)

    def moments(self, c: str) -> tuple[int, float, float]:
        """(n, mean, sample std) over every finite full path-month (Chan's merge of per-path
        moments, reduced in path order)."""
        cnt = self.counts[c]
        n = int(cnt.sum())
        if n == 0:
            return 0, math.nan, math.nan
        mean = float(self.sums[c].sum()) / n
        has = cnt > 0
        pm = self.sums[c][has] / cnt[has]
        m2 = float(self.m2[c].sum()) + float((cnt[has] * (pm - mean) ** 2).sum())
        return n, mean, (math.sqrt(m2 / (n - 1)) if n > 1 else math.nan)

    def negative_shares(self, c: str) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.negative[c] / float(self.n_full) if self.n_full else np.full(self.n_paths, np.nan)

    def select(self, rows: np.ndarray) -> "MonthlyStats":
        """The per-path state of some rows (histograms shared): for regrouping paths."""
        st = MonthlyStats(len(rows), self.n_full, self.initial_equity)
        for name in ("sums", "counts", "m2", "negative", "yields"):
            setattr(st, name, {k: v[rows] for k, v in getattr(self, name).items()})
        st.hist = self.hist
        return st
