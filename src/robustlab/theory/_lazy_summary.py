"""P of the lazy limit from its gradient law: g(x) ~ N(mu(x), C(x)) at each evaluation point
(:mod:`robustlab.theory.lazy_moments`) -> the P values of
:class:`~robustlab.theory.lazy.LazyLimitResult` (formulas in :mod:`robustlab.theory.lazy`).

For delta = r u, u uniform on the unit sphere: E_init |g . delta| = r E|N(mu . u, u^T C u)|,
exact in closed form (:func:`_expected_abs`); the radius r is integrated exactly; the
direction u is Monte Carlo (:func:`project`), the same directions for every label scale.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from .closed_forms import kappa, rms_factor

if TYPE_CHECKING:
    from .lazy_moments import LimitMean, LimitMoments

__all__ = ["COV_NUMBERS", "project", "summarize", "summarize_mean"]


def _expected_abs(a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """E|N(a, s^2)| = s sqrt(2/pi) exp(-a^2 / 2 s^2) + a erf(a / (sqrt(2) s)); |a| at s = 0."""
    safe = torch.clamp(s, min=1e-300)
    z = a / (math.sqrt(2.0) * safe)
    return s * math.sqrt(2.0 / math.pi) * torch.exp(-z * z) + a * torch.erf(z)


def project(
    mom: LimitMoments, n_directions: int, seed: int, chunk: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu . u, sqrt(u^T C u)) for ``n_directions`` unit directions u per point: (n, K) each.

    Each point gets its own directions (normalised Gaussians from one generator seeded with
    ``seed``, drawn point by point in order), so the points' Monte Carlo errors are
    independent. mu . u scales with the labels, sqrt(u^T C u) does not: one projection
    serves every label scale.
    """
    n, d = mom.mu.shape
    gen = torch.Generator().manual_seed(seed)
    dots, roots = [], []
    for lo in range(0, n, chunk):
        mc, cc = mom.mu[lo : lo + chunk], mom.cov[lo : lo + chunk]
        g = torch.randn(mc.shape[0], n_directions, d, generator=gen, dtype=torch.float64)
        u = (g / torch.linalg.vector_norm(g, dim=2, keepdim=True)).to(mc)  # (c, K, d)
        dots.append((u @ mc[:, :, None])[..., 0])  # (c, K)
        roots.append(torch.sqrt(torch.clamp(((u @ cc) * u).sum(2), min=0.0)))
    return torch.cat(dots), torch.cat(roots)


def _kernel_part(mu: torch.Tensor, eps: float, region: str) -> tuple[float, float, float]:
    """(p_kernel, rms_kernel, mean_x |mu|^2) of mean gradients mu (n, d): the P of the mean
    function, eps kappa_d mean_x |mu(x)| (exact: E_delta |mu . delta| = eps kappa_d |mu|),
    and eps sqrt(c mean_x |mu|^2), c = :func:`~robustlab.theory.rms_factor`."""

    d = mu.shape[1]
    mu2 = float((mu * mu).sum(1).mean())
    p_kernel = eps * kappa(d, region) * float(torch.linalg.vector_norm(mu, dim=1).mean())
    return p_kernel, eps * math.sqrt(rms_factor(d, region) * mu2), mu2


def _radial(eps: float, d: int, region: str) -> float:
    """E r for delta = r u: eps d / (d + 1) in the ball, eps on the sphere."""
    return eps * d / (d + 1) if region == "ball" else eps


def _p_at_init(f0_var: float, radial: float) -> float:
    """P of the untrained network, g ~ N(0, D_L I): E r sqrt(2/pi) sqrt(D_L)."""
    return radial * math.sqrt(2 / math.pi) * math.sqrt(f0_var)


def summarize(
    mom: LimitMoments,
    label_scale: float,
    eps: float,
    region: str,
    proj: tuple[torch.Tensor, torch.Tensor],
) -> dict:
    """P, its parts and the expected training loss for labels ``label_scale * y``.

    ``proj`` = :func:`project` (mom, ...); delta = r u with the radius r integrated
    exactly (E r = eps d / (d + 1) in the ball, eps on the sphere).
    """

    mu = mom.mu * label_scale
    n, d = mu.shape
    radial = _radial(eps, d, region)
    s = proj[1]
    h = _expected_abs(proj[0] * label_scale, s)  # (n, K): E_init |g . u| per direction
    k = h.shape[1]
    per_point = radial * h.mean(1)
    var = h.var(1).sum() if k > 1 else torch.tensor(math.nan)
    c = rms_factor(d, region)
    p_kernel, rms_kernel, mu2 = _kernel_part(mu, eps, region)
    tr = float(torch.diagonal(mom.cov, dim1=1, dim2=2).sum(1).mean())
    return {
        "p": float(per_point.mean()),
        "p_stderr": radial * math.sqrt(float(var) / k) / n,
        "p_rms": eps * math.sqrt(c * (mu2 + tr)),
        "p_kernel": p_kernel,
        "p_init": radial * math.sqrt(2 / math.pi) * float(s.mean()),
        "rms_kernel": rms_kernel,
        "rms_init": eps * math.sqrt(c * max(tr, 0.0)),
        "p_at_init": _p_at_init(mom.f0_var, radial),
        "train_loss": 0.5 * (label_scale**2 * mom.qy2 + mom.qkq) / mom.n_train,
        "per_point": per_point,
        "grad_mean": mu,
    }


# What summarize_mean cannot know: each of these needs the covariance C (or tr(Q K Q)).
COV_NUMBERS = ("p", "p_stderr", "p_rms", "p_init", "rms_init", "train_loss")


def summarize_mean(mean: LimitMean, label_scale: float, eps: float, region: str) -> dict:
    """The numbers of :func:`summarize` that the mean alone fixes, for labels
    ``label_scale * y``: ``p_kernel``, ``rms_kernel``, ``p_at_init`` (D_L only) and
    ``grad_mean``, the same expressions; those of :data:`COV_NUMBERS` NaN and ``per_point``
    None."""
    mu = mean.mu * label_scale
    p_kernel, rms_kernel, _ = _kernel_part(mu, eps, region)
    return {
        **dict.fromkeys(COV_NUMBERS, math.nan),
        "p_kernel": p_kernel,
        "rms_kernel": rms_kernel,
        "p_at_init": _p_at_init(mean.f0_var, _radial(eps, mu.shape[1], region)),
        "per_point": None,
        "grad_mean": mu,
    }
