"""Perturbation regions: where x' = x + delta is drawn, one object per region in a registry.

- ``"ball"``: delta uniform in the L2 ball ``{||delta||_2 <= eps}`` of R^d;
- ``"sphere"``: delta uniform on its boundary ``{||delta||_2 = eps}``;
- ``"linf_ball"``: delta uniform in the cube ``{||delta||_inf <= eps}`` (each coordinate
  independently uniform on [-eps, eps]), the norm of image perturbations.

Each region knows its sampler, the factor c in ``E ||J delta||^2 = eps^2 ||J||_F^2 c``
(E[delta delta^T] = eps^2 c I: 1/(d+2) ball, 1/d sphere, 1/3 cube), and, where one exists,
kappa_d in ``E |g . delta| = eps kappa_d ||g||_2`` (Zhu et al., NeurIPS 2022; docs/definitions.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .._sampling import generator_device, uniform_ball, uniform_sphere
from ..theory import kappa as _kappa
from ..theory import rms_factor as _rms_factor

__all__ = ["REGIONS", "Region", "get_region", "sample_perturbations", "standard_gamma"]


def _cube(n, d, generator, dtype) -> torch.Tensor:
    u = torch.rand(n, d, generator=generator, dtype=dtype, device=generator_device(generator))
    return 2.0 * u - 1.0


@dataclass(frozen=True)
class Region:
    """A perturbation region of radius eps around x (radius 1 in ``unit``).

    Attributes:
        name: registry name.
        unit: ``(n, d, generator, dtype) -> (n, d)`` draws for eps = 1.
        rms_factor: c(d) with ``E ||J delta||^2 = eps^2 ||J||_F^2 c(d)``.
        kappa: kappa_d(d) with ``E |g . delta| = eps kappa_d ||g||`` (None: no closed form).
        extra_dims: for the rotation-invariant regions, the e with ``delta / eps`` distributed
            as the first d coordinates of a uniform point of the unit sphere of R^(d+e)
            (sphere: 0; ball: 2, since projecting S^(d+1) onto d coordinates gives the
            uniform ball); None for the cube.
        doc: one line for users.
    """

    name: str
    unit: Callable
    rms_factor: Callable[[int], float]
    kappa: Callable[[int], float] | None
    extra_dims: int | None
    doc: str = ""


REGIONS: dict[str, Region] = {
    r.name: r
    for r in (
        Region(
            "ball",
            uniform_ball,
            lambda d: _rms_factor(d, "ball"),
            lambda d: _kappa(d, "ball"),
            2,
            "uniform in the L2 ball of radius eps",
        ),
        Region(
            "sphere",
            uniform_sphere,
            lambda d: _rms_factor(d, "sphere"),
            lambda d: _kappa(d, "sphere"),
            0,
            "uniform on the L2 sphere of radius eps",
        ),
        Region(
            "linf_ball",
            _cube,
            lambda d: 1.0 / 3.0,  # each coordinate uniform on [-eps, eps]: variance eps^2 / 3
            None,
            None,
            "uniform in the L-infinity ball (cube) of half-width eps",
        ),
    )
}


def get_region(name: object) -> Region:
    """The region called ``name``; ValueError naming the choices for anything else."""
    if isinstance(name, str) and name in REGIONS:
        return REGIONS[name]
    raise ValueError(f"unknown region {name!r}; choices: {', '.join(REGIONS)}")


def sample_perturbations(
    n: int,
    d: int,
    eps: float,
    region: str = "ball",
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """n vectors uniform in the region of radius eps in R^d: (n, d).

    Ball: a normalised standard Gaussian direction times eps U^(1/d); sphere: the direction
    times eps; linf_ball: each coordinate eps (2U - 1). Drawn on the generator's device.
    """
    return (get_region(region).unit(n, d, generator, dtype) * eps).to(device)


def standard_gamma(
    shape: tuple[int, ...], alpha: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gamma(alpha, 1) draws in float64 from an explicit generator (torch's own takes none).

    Marsaglia & Tsang (ACM TOMS 2000): for a >= 1, with c = a - 1/3, v = (1 + z/sqrt(9c))^3,
    z ~ N(0, 1), accept c v when log U < z^2/2 + c - c v + c log v; for alpha < 1, draw
    Gamma(alpha + 1) and multiply by U^(1/alpha). Rounds redraw the rejected entries only,
    so a generator state gives one result.
    """
    dev = generator_device(generator)
    boost = alpha < 1
    a = alpha + 1.0 if boost else alpha
    c = a - 1.0 / 3.0
    scale = 1.0 / math.sqrt(9.0 * c)
    n = math.prod(shape)
    out = torch.empty(n, dtype=torch.float64, device=dev)
    todo = torch.arange(n, device=dev)
    while todo.numel():
        z = torch.randn(todo.numel(), generator=generator, dtype=torch.float64, device=dev)
        u = torch.rand(todo.numel(), generator=generator, dtype=torch.float64, device=dev)
        v = (1.0 + scale * z) ** 3
        log_v = torch.log(v.clamp_min(1e-300))  # v <= 0 is rejected by the first test
        ok = (v > 0) & (torch.log(u) < 0.5 * z * z + c - c * v + c * log_v)
        out[todo[ok]] = c * v[ok]
        todo = todo[~ok]
    if boost:
        u = torch.rand(n, generator=generator, dtype=torch.float64, device=dev)
        out = out * u.pow(1.0 / alpha)
    return out.reshape(shape)


def jacobian_norms(
    region: Region,
    J: torch.Tensor,
    n: int,
    eps: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """n draws of ||J delta||_2 per point, delta uniform in the region: (B, k, d) -> (n, B).

    Float64, on J's device. Rotation-invariant regions need only the singular values s_i of
    J (rank r <= min(k, d)): with V the right singular vectors, V^T delta / eps has the law of
    g / sqrt(||g||^2 + chi2_{d + e - r}), g ~ N(0, I_r) (``Region.extra_dims`` = e), so
    ``||J delta|| = eps sqrt(sum_i s_i^2 g_i^2 / (||g||^2 + chi2))``: O(r) per draw instead of
    O(k d). The cube is sampled directly: O(k d) per draw.
    """
    J = J.to(torch.float64)
    B, k, d = J.shape
    dev = generator_device(generator)
    if region.extra_dims is None:
        delta = region.unit(n * B, d, generator, torch.float64).to(J.device).reshape(n, B, d)
        return eps * torch.linalg.vector_norm(torch.einsum("nbd,bkd->nbk", delta, J), dim=2)
    gram = J @ J.transpose(1, 2) if k <= d else J.transpose(1, 2) @ J  # (B, r, r)
    s2 = torch.linalg.eigvalsh(gram).clamp_min(0)  # (B, r) squared singular values
    r = s2.shape[1]
    g2 = torch.randn(n, B, r, generator=generator, dtype=torch.float64, device=dev).to(J.device)
    g2 = g2 * g2
    rest = d + region.extra_dims - r
    chi2 = 2.0 * standard_gamma((n, B), rest / 2.0, generator).to(J.device) if rest else 0.0
    return eps * ((g2 * s2).sum(2) / (g2.sum(2) + chi2)).sqrt()
