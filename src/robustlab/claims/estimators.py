"""Estimators of the second claims protocol: equivalence, multiplicity, peak and crossover.

The protocol of ``docs/claims.md`` ("Protocol 2") asks the paper's questions as they are:
where P peaks against width and how the peak moves with the number of training points N,
at which label-to-f_0 scale the depth trend of P changes sign, whether a trend is flat
(evidence of no effect) or merely not shown, and how many of a family of claims hold when
each is tested. These are its estimators, each with the seed as the unit of replication
(one seed draws the data and the weights, so points of one seed are not independent):

- :func:`equivalence`: two one-sided t tests (TOST; Schuirmann 1987) of the mean of per-seed
  values against a margin: ``flat`` when the (1 - 2 alpha) t interval lies inside
  (-margin, margin).
- :func:`holm`: Holm's (1979) step-down adjustment of a family's p-values (family-wise
  error at most alpha under any dependence).
- :func:`peak_location`: the interior maximum of one seed's curve y(x) (x = log width,
  y = mean log P per width), the vertex of the parabola through the highest point and its
  two neighbours; nan when the highest point is an end of the range.
- :func:`scaling_exponent`: the slope of log(peak width) on log N per seed, its mean and t
  interval over seeds (peak width proportional to N: exponent 1).
- :func:`crossover`: per seed, the depth slope s against u = log(||y|| / ||f_0(X)||) fitted as
  s = a + b u; the sign change at u* = -a / b, i.e. r* = exp(u*), with the t interval of u*
  over seeds mapped to r*; nan where a seed's slopes do not change sign in the swept range.

Each is checked by simulation in ``tests/test_estimators.py`` (coverage of a known peak and
crossover, size of the equivalence test, family-wise error of Holm's adjustment).
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import check_positive
from .stats import t_interval

__all__ = [
    "crossover",
    "equivalence",
    "holm",
    "peak_location",
    "scaling_exponent",
    "seed_exponents",
    "t_pvalue",
]


def t_pvalue(values) -> float:
    """Two-sided p-value of the one-sample t test of mean(values) = 0 (S - 1 degrees of
    freedom); nan for fewer than two values or no spread."""
    v = np.asarray(values, dtype=float)
    if v.size < 2 or not np.isfinite(v).all():
        return math.nan
    sd = float(v.std(ddof=1))
    if sd == 0.0:
        return 0.0 if v.mean() != 0 else 1.0
    from scipy import stats

    t = float(v.mean()) / (sd / math.sqrt(v.size))
    return float(2.0 * stats.t.sf(abs(t), v.size - 1))


def equivalence(values, margin: float, alpha: float = 0.05) -> tuple[bool, float]:
    """TOST of ``|mean(values)| < margin``: ``(flat, p)``.

    The two one-sided t tests H0: mu <= -margin and H0: mu >= margin, each at ``alpha``,
    reject together exactly when the (1 - 2 alpha) t interval of the mean lies inside
    (-margin, margin) (Schuirmann 1987); ``p`` is the larger of their p-values. A true
    |mu| >= margin is called flat with probability at most ``alpha``.
    """
    margin = check_positive("margin", margin)
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")
    v = np.asarray(values, dtype=float)
    if v.size < 2 or not np.isfinite(v).all():
        return False, math.nan
    from scipy import stats

    se = float(v.std(ddof=1)) / math.sqrt(v.size)
    mean, df = float(v.mean()), v.size - 1
    if se == 0.0:
        return abs(mean) < margin, 0.0 if abs(mean) < margin else 1.0
    p_low = float(stats.t.sf((mean + margin) / se, df))  # H0: mu <= -margin
    p_high = float(stats.t.cdf((mean - margin) / se, df))  # H0: mu >= margin
    p = max(p_low, p_high)
    return p < alpha, p


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values: with p_(1) <= ... <= p_(m) sorted,
    ``q_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``, returned in the input order; nan
    entries stay nan and do not count in m. Rejecting where q < alpha keeps the family-wise
    error at most alpha (Holm 1979)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def peak_location(x, y) -> float:
    """The x of an interior maximum of the curve y(x), or nan when the highest point is an
    end of the range (no interior peak seen).

    Args:
        x: (n,) distinct, increasing positions (log width).
        y: (n,) values (mean log P of one seed at each width).

    The parabola through the highest point (x_i, y_i) and its neighbours has its vertex at
    ``x_i + (h2^2 d1 - h1^2 d2) / (2 (h1 d2 + h2 d1))`` with h1 = x_i - x_{i-1},
    h2 = x_{i+1} - x_i, d1 = y_i - y_{i-1} > 0, d2 = y_i - y_{i+1} >= 0 (the first highest
    point), so the vertex lies between the neighbours.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or x.size < 3:
        raise ValueError(f"x and y must be 1-D of equal length >= 3, got {x.shape}, {y.shape}")
    if not (np.all(np.diff(x) > 0) and np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x must be finite and increasing, y finite")
    i = int(np.argmax(y))
    if i in (0, x.size - 1):
        return math.nan
    h1, h2 = x[i] - x[i - 1], x[i + 1] - x[i]
    d1, d2 = y[i] - y[i - 1], y[i] - y[i + 1]
    # argmax takes the first maximum, so d1 > 0 and d2 >= 0: the denominator is positive
    return float(x[i] + (h2 * h2 * d1 - h1 * h1 * d2) / (2.0 * (h1 * d2 + h2 * d1)))


def scaling_exponent(log_n, log_peak, seeds, level: float = 0.95) -> tuple[float, float, float]:
    """Exponent k of peak width ~ N^k: per seed the least-squares slope of ``log_peak`` on
    ``log_n`` (seeds with fewer than two finite peaks at distinct N are left out), then the
    mean and its t interval over seeds (:func:`robustlab.claims.stats.t_interval`).
    Returns ``(k, low, high)``."""
    return t_interval(seed_exponents(log_n, log_peak, seeds), level)


def seed_exponents(log_n, log_peak, seeds) -> list[float]:
    """The per-seed exponents behind :func:`scaling_exponent`: for each seed with finite
    peaks at two or more distinct N, the least-squares slope of ``log_peak`` on ``log_n``."""
    log_n = np.asarray(log_n, dtype=float)
    log_peak = np.asarray(log_peak, dtype=float)
    seeds = np.asarray(seeds)
    slopes = []
    for s in np.unique(seeds):
        m = (seeds == s) & np.isfinite(log_peak)
        xs, ys = log_n[m], log_peak[m]
        if np.unique(xs).size < 2:
            continue
        slopes.append(float(np.polyfit(xs, ys, 1)[0]))
    return slopes


def crossover(log_ratio, slope, seeds, level: float = 0.95) -> tuple[float, float, float, int]:
    """The label-to-f_0 ratio r* where the depth slope of log P changes sign.

    Per seed: least squares ``slope = a + b u`` over the swept u = log(||y|| / ||f_0(X)||);
    a seed counts when b != 0 and its root u* = -a / b lies inside its swept range of u (a
    sign change seen, not extrapolated). Returns ``(r*, low, high, n)``: exp of the mean of
    the roots and of their t interval over the n seeds that count; nan where fewer than two
    seeds count (``n`` says how many did).
    """
    u = np.asarray(log_ratio, dtype=float)
    s = np.asarray(slope, dtype=float)
    seeds = np.asarray(seeds)
    roots = []
    for sid in np.unique(seeds):
        m = (seeds == sid) & np.isfinite(u) & np.isfinite(s)
        us, ss = u[m], s[m]
        if np.unique(us).size < 2:
            continue
        b, a = np.polyfit(us, ss, 1)
        if b == 0.0:
            continue
        root = -a / b
        if us.min() <= root <= us.max():
            roots.append(float(root))
    mean, low, high = t_interval(roots, level)
    if len(roots) < 2:
        return math.nan, math.nan, math.nan, len(roots)
    return math.exp(mean), math.exp(low), math.exp(high), len(roots)
