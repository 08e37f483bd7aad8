"""Scaling exponents with confidence intervals: OLS slopes, bootstrapped over seeds.

A scaling exponent is the OLS slope b of y = a + b x, e.g. y = log P against x = log width
(P ~ m^b) or against x = depth (P ~ exp(b L)). Points that share a training seed are not
independent (the same draw of data and weights feeds every width), so the interval comes
from the nonparametric bootstrap over seeds (Efron & Tibshirani, *An Introduction to the
Bootstrap*, 1993, ch. 13 percentile interval; resampling clusters, Davison & Hinkley 1997
§3.8): draw the set of seed ids with replacement, refit on all points of the drawn seeds
(a seed drawn twice counts twice), repeat B times, take the (1 - level)/2 and
(1 + level)/2 quantiles. With one seed there is nothing to resample and the interval is
the classical t interval of the OLS slope.

Several groups (e.g. one per depth when fitting against width) share one slope through a
fixed-effects fit: x and y are demeaned within each group and a single slope is fitted,
b = sum_g S_xy^g / sum_g S_xx^g. Seeds are resampled jointly across groups.

Everything is vectorized: per (seed, group) sufficient statistics are computed once and
each bootstrap replicate is a weighted sum of them (one matrix product for all B).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["fit_slope"]

CI_BOOTSTRAP = "bootstrap over seeds"
CI_T = "t (OLS)"
CI_NONE = "none"


def _within(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Within-group (S_xx, S_xy, S_yy), summed over groups, from raw weighted sums.

    ``sums``: (6, ..., G) = (sum w, sum w x, sum w y, sum w x^2, sum w x y, sum w y^2) per
    group; returns three arrays of shape (...) (the group axis is summed out).
    """
    w, sx, sy, sxx, sxy, syy = sums
    safe = np.where(w > 0, w, 1.0)  # empty groups contribute 0

    def centred(a, b, sab):
        return np.where(w > 0, sab - a * b / safe, 0.0).sum(axis=-1)

    return centred(sx, sx, sxx), centred(sx, sy, sxy), centred(sy, sy, syy)


def fit_slope(
    x,
    y,
    seeds,
    n_boot: int = 2000,
    level: float = 0.95,
    rng: np.random.Generator | None = None,
    *,
    groups=None,
) -> tuple[float, float, float, str]:
    """Slope of y against x with a ``level`` confidence interval.

    Args:
        x, y: (n,) points, e.g. x = log width, y = log P.
        seeds: (n,) seed id of each point; the bootstrap resamples these ids.
        n_boot: bootstrap replicates B.
        level: confidence level of the percentile interval, in (0, 1).
        rng: numpy Generator (default: ``default_rng(0)``).
        groups: optional (n,) group labels; the slope is then the common fixed-effects
            slope (x and y demeaned within each group).

    Returns:
        ``(slope, low, high, ci_method)``; slope = OLS (fixed-effects) slope on all points;
        ci_method is ``"bootstrap over seeds"`` (>= 2 seeds), ``"t (OLS)"`` (one seed,
        or no bootstrap replicate defined: t interval, n - G - 1 degrees of freedom) or
        ``"none"`` (too few points for an interval: low = high = nan). Slope is nan when x
        does not vary within any group.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if not (x.shape == y.shape == np.shape(seeds)) or x.ndim != 1:
        raise ValueError(f"x, y, seeds must be 1-D of equal length, got {x.shape}, {y.shape}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(0) if rng is None else rng
    nan = float("nan")
    if x.size == 0:
        return nan, nan, nan, CI_NONE
    _, s_idx = np.unique(np.asarray(seeds), return_inverse=True)
    g_lab = np.zeros(x.size, dtype=int) if groups is None else np.asarray(groups)
    _, g_idx = np.unique(g_lab, return_inverse=True)
    n_s, n_g = s_idx.max() + 1, g_idx.max() + 1
    x, y = x - x.mean(), y - y.mean()  # shift-invariant; limits cancellation below

    # per (seed, group) sufficient statistics: (6, n_s, n_g)
    suff = np.zeros((6, n_s, n_g))
    for k, v in enumerate((np.ones_like(x), x, y, x * x, x * y, y * y)):
        np.add.at(suff[k], (s_idx, g_idx), v)
    cxx, cxy, cyy = _within(suff.sum(axis=1))
    if not cxx > 1e-12 * max(1.0, float(np.sum(x * x))):
        return nan, nan, nan, CI_NONE
    slope = float(cxy / cxx)

    if n_s >= 2:
        # (B, n_s) multiplicity of each seed in each replicate
        counts = rng.multinomial(n_s, np.full(n_s, 1.0 / n_s), size=n_boot).astype(float)
        boot = np.einsum("bs,ksg->kbg", counts, suff)  # (6, B, n_g)
        bxx, bxy, _ = _within(boot)
        ok = bxx > 1e-9 * cxx  # replicates whose drawn seeds leave x constant are undefined
        if ok.sum() >= 2:
            q = np.quantile(bxy[ok] / bxx[ok], [(1 - level) / 2, (1 + level) / 2])
            return slope, float(q[0]), float(q[1]), CI_BOOTSTRAP

    # classical interval: residual variance of the fixed-effects fit, n - G - 1 dof
    dof = x.size - n_g - 1
    if dof <= 0:
        return slope, nan, nan, CI_NONE
    rss = max(float(cyy - slope * cxy), 0.0)
    half = stats.t.ppf((1 + level) / 2, dof) * np.sqrt(rss / dof / cxx)
    return slope, float(slope - half), float(slope + half), CI_T
