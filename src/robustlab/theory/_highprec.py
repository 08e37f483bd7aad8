"""The arc-cosine kernels in 50-digit arithmetic: the independent reference that the tests
and ``benchmarks/bench_theory.py`` check :func:`robustlab.theory.nngp` / ``ntk`` against.

Needs mpmath (a test dependency, not a runtime one).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["arccos_kernels"]


def arccos_kernels(x: Sequence, y: Sequence, s: Sequence[float], v: Sequence[float], width: int):
    """(NNGP, NTK) of the arc-cosine recursion (docs/theory.md) as 50-digit mpmath numbers,
    the equations of :func:`robustlab.theory.nngp` / ``ntk`` written out with rho the cosine
    of x and y (floats or mpmath numbers): D_1 = s_1, Theta_1 = rho s_1 / v_1; per layer
    t = arccos rho, Sigmadot = (m s_l / 2)(pi - t) / pi, rho <- (sqrt(1 - rho^2) +
    (pi - t) rho) / pi, D <- D m s_l / 2, Theta <- Theta Sigmadot + rho D / v_l; then
    K = |x||y| D rho and NTK = |x||y| Theta. ``s``, ``v``: the layers' effective and stored
    variances (:func:`robustlab.theory.kernels.layer_variances`); m = ``width``."""
    import mpmath

    with mpmath.workdps(50):
        xs, ys = [mpmath.mpf(t) for t in x], [mpmath.mpf(t) for t in y]
        nx = mpmath.sqrt(mpmath.fsum(t * t for t in xs))
        ny = mpmath.sqrt(mpmath.fsum(t * t for t in ys))
        rho = min(mpmath.fsum(a * b for a, b in zip(xs, ys, strict=True)) / (nx * ny), 1)
        big_d = mpmath.mpf(s[0])
        theta = rho * big_d / mpmath.mpf(v[0])
        for sl, vl in zip(s[1:], v[1:], strict=True):
            half = width * mpmath.mpf(sl) / 2
            t = mpmath.acos(rho)
            dot = (mpmath.pi - t) / mpmath.pi * half
            rho = (mpmath.sqrt(1 - rho * rho) + (mpmath.pi - t) * rho) / mpmath.pi
            big_d *= half
            theta = theta * dot + rho * big_d / mpmath.mpf(vl)
        return nx * ny * big_d * rho, nx * ny * theta
