"""One layer of the arc-cosine recursion of :mod:`robustlab.theory.kernels`, exact at its
boundary rho = 1 (parallel inputs) and differentiable there.

With t = arccos rho, the normalised arc-cosine functions of Cho & Saul (NeurIPS 2009) are

    kappa_0(rho) = 1 - t / pi,   kappa_1(rho) = (sin t + (pi - t) cos t) / pi,

and one layer maps c = 1 - rho to (kappa_0(rho), 1 - kappa_1(rho)): the complement of the
next layer's cosine, kept with its relative precision as c -> 0.
"""

from __future__ import annotations

import math

import torch

__all__ = ["DIAGONAL_SLOPE", "SERIES_ANGLE", "ArcCos", "kappa0_slope"]

# kappa_0'(rho) = 1 / (pi sqrt(1 - rho^2)) is infinite at rho = +-1 (the NTK has a kink on
# its diagonal). There (c = 1 - rho = 0 exactly, i.e. parallel inputs) the slope is set to
# this finite value: it only ever multiplies dc/dx = 0, so the derivative is the symmetric
# (zero-slope) one; everywhere else the slope is exact, however close to the diagonal.
DIAGONAL_SLOPE = 1e6 / math.pi
# Below this angle sin t - t cos t is summed as its series (the direct form cancels).
SERIES_ANGLE = 0.5
# Its Horner coefficients a_k = (-1)^(k+1) 2k / (2k+1)!, k = 8 down to 1 (S = t^3 P(t^2)):
# at t = 0.5 the first omitted term is 7e-21 of the sum.
_SERIES = tuple((-1) ** (k + 1) * 2 * k / math.factorial(2 * k + 1) for k in range(8, 0, -1))


def _series(t: torch.Tensor) -> torch.Tensor:
    """S(t) = sin t - t cos t = sum_k (-1)^(k+1) 2k t^(2k+1) / (2k+1)!, k = 1..8, for
    0 <= t <= ``SERIES_ANGLE`` (relative error < 1e-17 before rounding); Horner in t^2."""
    t2 = t * t
    p = torch.full_like(t, _SERIES[0])
    for a in _SERIES[1:]:
        p.mul_(t2).add_(a)
    return p.mul_(t2).mul_(t)


def _arccos_step(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(kappa_0(rho), 1 - kappa_1(rho)) at rho = 1 - c from one angle t = arccos rho.

    With sin t = sqrt(1 - rho^2) = sqrt(c (2 - c)) and cos t = rho = 1 - c (both keep
    their relative precision as c -> 0), t = atan2(sin t, cos t) keeps its relative
    precision as t -> 0, where arccos' slope is infinite, and is within an ulp of pi as
    t -> pi; kappa_0 = 1 - t / pi (to an absolute ulp: relatively less as rho -> -1), and

        1 - kappa_1(rho) = (1 - cos t) - (sin t - t cos t) / pi = c - S(t) / pi

    (Cho & Saul 2009: kappa_1 = (sin t + (pi - t) cos t) / pi), which is the next layer's
    complement with its relative precision kept: S(t) ~ t^3 / 3 is summed as its series
    (:func:`_series`) where t <= ``SERIES_ANGLE`` (only those entries: usually the
    diagonal and its neighbours) and taken directly elsewhere.
    No graph (called from :class:`ArcCos`); c of any shape, values in [0, 2].
    """
    shape, c = c.shape, c.reshape(-1)  # flat, so one index list finds the series' entries
    sin_t = torch.rsub(c, 2.0).mul_(c).sqrt_()  # sqrt(c (2 - c))
    cos_t = torch.rsub(c, 1.0)
    t = torch.atan2(sin_t, cos_t)
    k0 = torch.rsub(t, 1.0, alpha=1.0 / math.pi)  # 1 - t / pi
    s = sin_t.sub_(cos_t.mul_(t))  # S(t), direct; replaced below where it cancels
    small = (t <= SERIES_ANGLE).nonzero()[:, 0]
    s.index_copy_(0, small, _series(t.index_select(0, small)))
    comp = torch.sub(c, s, alpha=1.0 / math.pi).clamp_(min=0.0)
    return k0.view(shape), comp.view(shape)


def kappa0_slope(c: torch.Tensor) -> torch.Tensor:
    """d kappa_0 / d rho = 1 / (pi sqrt(1 - rho^2)) at rho = 1 - c, where 1 - rho^2 =
    c (2 - c); ``DIAGONAL_SLOPE`` where that is 0 (see above)."""
    q = c * (2.0 - c)
    inside = q > 0
    root = torch.sqrt(torch.where(inside, q, torch.ones_like(q)))  # no inf in either branch
    return torch.where(inside, 1.0 / (math.pi * root), torch.full_like(q, DIAGONAL_SLOPE))


class ArcCos(torch.autograd.Function):
    """One layer of the arc-cosine recursion as a function of c = 1 - rho:
    ``c -> (kappa_0(rho), 1 - kappa_1(rho))`` (:func:`_arccos_step`), with the derivatives

        d kappa_0 / dc = -kappa_0'(rho)                     (:func:`kappa0_slope`)
        d (1 - kappa_1) / dc = kappa_1'(rho) = kappa_0(rho)

    both finite on the diagonal (arccos' is -inf at +-1: a naive graph gives NaN; see
    ``DIAGONAL_SLOPE``). The backward reuses the kappa_0 output (whose own derivative is
    this Function's), so double backward works; forward mode (jvp) and vmap have rules
    (vmap: the step is elementwise, so it runs on the tensor underneath, batch dimension
    included, and the outputs keep that dimension where the input had it).
    """

    @staticmethod
    def forward(c):
        return _arccos_step(c)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], output[0])
        ctx.save_for_forward(inputs[0], output[0])

    @staticmethod
    def backward(ctx, grad_k0, grad_comp):
        c, k0 = ctx.saved_tensors
        return grad_comp * k0 - grad_k0 * kappa0_slope(c)

    @staticmethod
    def jvp(ctx, tangent):
        c, k0 = ctx.saved_tensors
        return -tangent * kappa0_slope(c), tangent * k0

    @staticmethod
    def vmap(info, in_dims, c):
        return ArcCos.apply(c), (in_dims[0], in_dims[0])
