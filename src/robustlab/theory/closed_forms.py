"""Closed forms at initialization: kappa_d, the init-time gradient norm, bounds and floors,
and their table (functions of numbers, no torch modules)."""

from __future__ import annotations

import math

from .._checks import check_positive, check_positive_int
from ..init import InitScheme, get_init

__all__ = [
    "REGIONS",
    "expected_grad_sq_norm",
    "grad_sq_norm",
    "init_stability_bound",
    "init_table",
    "kappa",
    "law_of_robustness_floor",
    "rms_factor",
]

REGIONS = ("ball", "sphere")  # the regions with a closed form (kappa_d)


def _check_region(region: str) -> str:
    if region not in REGIONS:
        raise ValueError(f"region must be one of {', '.join(REGIONS)}, got {region!r}")
    return region


def kappa(d: int, region: str = "ball") -> float:
    """kappa_d with ``E_{delta ~ U(R)} |g . delta| = eps * kappa_d * ||g||_2``.

    For the sphere of radius eps, ``kappa_d = Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2))``
    (the mean of |u_1| for u uniform on S^{d-1}); for the ball, the radius r = eps U^(1/d)
    has mean d/(d+1) * eps, so ``kappa_d`` gains the factor d/(d+1). docs/definitions.md; Zhu et al.
    (NeurIPS 2022) use the ball. Computed with log-Gamma, stable for any d.
    """
    d = check_positive_int("d", d)
    _check_region(region)
    k = math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi)
    return k * d / (d + 1) if region == "ball" else k


def rms_factor(d: int, region: str = "ball") -> float:
    """c in ``E ||J delta||^2 = eps^2 ||J||_F^2 c``: 1/(d+2) for the ball, 1/d for the sphere."""
    d = check_positive_int("d", d)
    return 1.0 / (d + 2) if _check_region(region) == "ball" else 1.0 / d


def expected_grad_sq_norm(
    init: str | InitScheme, in_dim: int, width: int, depth: int, out_dim: int = 1
) -> float:
    """``E ||J_f(x)||_F^2`` at initialization for a bias-free ReLU MLP, any fixed x != 0.

    ``(d s1 / 2) * (m s2 / 2)^(L-2) * (m s3)`` per output (times k outputs), with (s1, s2, s3)
    the scheme's effective variances (docs/definitions.md): each hidden ReLU layer keeps half of the
    second moment, exactly in expectation at any finite width (the sign pattern of a
    Gaussian layer is symmetric). L = 1 (linear model) gives ``k d s1``. So LeCun gives
    2^(1-L), He 2 and the NTK init d, independent of depth.
    """
    d = check_positive_int("in_dim", in_dim)
    m = check_positive_int("width", width)
    k = check_positive_int("out_dim", out_dim)
    return grad_sq_norm(get_init(init).variances(d, m, k), d, m, depth, k)


def grad_sq_norm(
    variances: tuple[float, float, float], in_dim: int, width: int, depth: int, out_dim: int = 1
) -> float:
    """:func:`expected_grad_sq_norm` from effective variances (s1, s2, s3), e.g. a network's
    recorded ``spec.variances``: ``k (d s1 / 2) (m s2 / 2)^(L-2) (m s3)``, ``k d s1`` for L = 1.

    Any parameterization: the law of f at init depends on the effective variances only (the
    mean-field network has s3 = 1/m^2).
    """
    d = check_positive_int("in_dim", in_dim)
    m = check_positive_int("width", width)
    L = check_positive_int("depth", depth)
    k = check_positive_int("out_dim", out_dim)
    s1, s2, s3 = (float(v) for v in variances)
    if L == 1:
        return k * d * s1
    return k * (d * s1 / 2) * (m * s2 / 2) ** (L - 2) * (m * s3)


def init_stability_bound(
    init: str | InitScheme,
    in_dim: int,
    width: int,
    depth: int,
    eps: float,
    region: str = "ball",
) -> float:
    """Jensen upper bound on P at init (k = 1): ``eps * kappa_d * sqrt(E ||grad_x f||^2)``.

    E||g|| <= sqrt(E||g||^2), combined with the exact identity E|g.delta| = eps kappa_d ||g||.
    """
    eps = check_positive("eps", eps)
    return (
        eps * kappa(in_dim, region) * math.sqrt(expected_grad_sq_norm(init, in_dim, width, depth))
    )


def law_of_robustness_floor(n_train: int, in_dim: int, n_params: int) -> float:
    """Bubeck & Sellke (NeurIPS 2021) floor on the Lipschitz constant of an interpolator.

    ``Lip(f) >= ~ sqrt(N d / p)`` for N noisy points in dimension d and p parameters
    (constants omitted, as in their Theorem 1's scaling); shown for comparison only.
    """
    n = check_positive_int("n_train", n_train)
    d = check_positive_int("in_dim", in_dim)
    p = check_positive_int("n_params", n_params)
    return math.sqrt(n * d / p)


def init_table(
    inits, in_dim: int, widths, depths, eps: float = 0.1, region: str = "ball"
) -> list[dict]:
    """The init-time predictions as rows (``robustlab theory``): per scheme, width and
    depth the effective variances (s1, s2, s3), ``grad_sq`` = E||grad_x f||^2
    (:func:`expected_grad_sq_norm`), ``kappa_d`` and the Jensen bound on P,
    ``p_bound`` = eps kappa_d sqrt(grad_sq) (:func:`init_stability_bound`)."""
    rows = []
    for name in inits:
        scheme = get_init(name)
        for width in widths:
            s1, s2, s3 = scheme.variances(in_dim, width, 1)
            for depth in depths:
                rows.append({
                    "init": scheme.name, "in_dim": in_dim, "width": width, "depth": depth,
                    "s1": s1, "s2": s2, "s3": s3,
                    "grad_sq": expected_grad_sq_norm(scheme, in_dim, width, depth),
                    "kappa_d": kappa(in_dim, region), "eps": eps,
                    "p_bound": init_stability_bound(scheme, in_dim, width, depth, eps, region),
                })  # fmt: skip
    return rows
