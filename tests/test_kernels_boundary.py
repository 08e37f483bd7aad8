"""NNGP / NTK at and near rho = 1 against a 50-digit reference (mpmath), float64.

kappa_0 has an infinite slope at rho = 1, so a cosine that rounds one ulp away from 1 moves
the NTK by ~1e-8 and flips which side of a clamp autograd sees. The kernels carry
c = 1 - rho, computed from the unit vectors' difference near the diagonal; these tests pin
the values and derivatives there, on the diagonal itself, and for copies whose dot product
rounds above 1 (the case that made a test red on one CPU and green on another).
"""

from __future__ import annotations

import math

import mpmath
import pytest
import torch

from robustlab.theory import _arccos as arccos
from robustlab.theory import kernels, lazy_limit, nngp, ntk
from robustlab.theory._highprec import arccos_kernels
from robustlab.theory.kernels import cosines, layer_variances

F64 = torch.float64
mpmath.mp.dps = 50
REL = 1e-12


def reference(x: list, y: list, init: str, depth: int, width: int) -> tuple:
    """(NNGP, NTK) of the arc-cosine recursion in 50-digit arithmetic; x and y are lists of
    floats or of mpmath numbers."""
    return arccos_kernels(x, y, *layer_variances(init, len(x), width, depth), width)


def near_pairs(d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x and x' = x + h delta for h from 0 (the diagonal) to 1e-1: cosines from exactly 1
    to well inside (-1, 1)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, d, generator=gen, dtype=F64)
    delta = torch.randn(1, d, generator=gen, dtype=F64)
    steps = [0.0, 1e-12, 1e-9, 1e-7, 1e-5, 1e-3, 1e-1]
    return x, torch.cat([x + h * delta for h in steps])


def test_one_layer_matches_50_digits():
    # (kappa_0, 1 - kappa_1) from one angle and their derivatives in c = 1 - rho, from the
    # diagonal (c = 0, subnormal c) across the series / direct switch at t = 0.5
    # (c = 1 - cos 0.5) to rho = -1. kappa_0 = (pi - t) / pi loses its relative precision
    # as rho -> -1: there it is held to 4e-16 absolute (an ulp of t near pi, over pi).
    switch = 1.0 - math.cos(arccos.SERIES_ANGLE)
    cs = [0.0, 5e-324, 1e-300, 1e-30, 1e-16, 1e-9, 1e-4, 0.03, switch, 0.1225, 0.5, 1.0]
    cs += [1.5, 1.99, 2.0 - 1e-12, 2.0]
    c = torch.tensor(cs, dtype=F64, requires_grad=True)
    k0, comp = arccos.ArcCos.apply(c)
    dk0 = torch.autograd.grad(k0.sum(), c, retain_graph=True)[0]
    dcomp = torch.autograd.grad(comp.sum(), c)[0]
    k0, comp = k0.detach(), comp.detach()
    for i, cv in enumerate(cs):
        with mpmath.workdps(800):  # 1 - c is exact at 800 digits even for c = 5e-324
            rho = 1 - mpmath.mpf(cv)
            t = mpmath.acos(rho)
            k0_ref = 1 - t / mpmath.pi
            comp_ref = 1 - (mpmath.sqrt(1 - rho * rho) + (mpmath.pi - t) * rho) / mpmath.pi
            slope = -1 / (mpmath.pi * mpmath.sqrt(1 - rho * rho)) if 0 < cv < 2 else None
        k0_rel = REL * 1e-3 if cv <= 1.5 else 0.0
        assert float(k0[i]) == pytest.approx(float(k0_ref), rel=k0_rel, abs=4e-16), cv
        assert float(comp[i]) == pytest.approx(float(comp_ref), rel=REL * 1e-3, abs=0.0), cv
        assert float(dcomp[i]) == pytest.approx(float(k0_ref), rel=k0_rel, abs=4e-16), cv
        if slope is not None:  # d kappa_0 / dc = -1 / (pi sin t); finite stand-in at c = 0
            assert float(dk0[i]) == pytest.approx(float(slope), rel=REL * 1e-2, abs=0.0), cv
    assert float(dk0[0]) == -arccos.DIAGONAL_SLOPE


@pytest.mark.parametrize("d", [3, 784])
@pytest.mark.parametrize(("init", "depth"), [("he", 2), ("lecun", 4), ("ntk_param", 8)])
def test_values_near_the_diagonal_match_50_digits(d, init, depth):
    x, ys = near_pairs(d, seed=d + depth)
    k, th = nngp(x, ys, init, depth, 64)[0], ntk(x, ys, init, depth, 64)[0]
    for j in range(ys.shape[0]):
        k_ref, th_ref = reference(x[0].tolist(), ys[j].tolist(), init, depth, 64)
        assert float(k[j]) == pytest.approx(float(k_ref), rel=REL, abs=0.0), j
        assert float(th[j]) == pytest.approx(float(th_ref), rel=REL, abs=0.0), j


def test_a_cosine_that_rounds_above_one_is_the_diagonal():
    # parallel copies whose float dot product exceeds |x| |x'|: c must be 0, not clamped
    # from a negative value (which cut the gradient in the old arccos form)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 784, generator=gen, dtype=F64)
    u = x / torch.linalg.vector_norm(x, dim=1, keepdim=True)
    assert ((u * u).sum(1) != 1.0).any()  # the premise: the float cosine is not always 1
    for scale in (1.0, 3.0, 1e-3):
        th = ntk(x, scale * x, "he", 4, 32)
        k_ref, th_ref = reference(x[0].tolist(), (scale * x[0]).tolist(), "he", 4, 32)
        assert float(th[0, 0]) == pytest.approx(float(th_ref), rel=REL, abs=0.0)
        torch.testing.assert_close(th.diagonal(), scale * ntk(x, x, "he", 4, 32).diagonal())


@pytest.mark.parametrize("d", [5, 784])
def test_mixed_derivative_on_the_diagonal_is_exact(d):
    # d^2 K(u, v) / du dv at u = v = x with |x| = 1: D_L (I - x x^T) + D_L x x^T
    # (kappa_1'(1) = 1 carries the cosine's Hessian; the radial part is D_L x x^T)
    gen = torch.Generator().manual_seed(d)
    x = torch.randn(1, d, generator=gen, dtype=F64)
    x = x / torch.linalg.vector_norm(x)
    d_l = float(nngp(x, x, "ntk", 3, 256)[0, 0])
    mixed = torch.autograd.functional.jacobian(
        lambda u, v: torch.autograd.grad(nngp(u, v, "ntk", 3, 256).sum(), u, create_graph=True)[0],
        (x.clone().requires_grad_(True), x.clone().requires_grad_(True)),
    )[1][0, :, 0, :]
    torch.testing.assert_close(mixed, d_l * torch.eye(d, dtype=F64), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("which", ["nngp", "ntk"])
def test_input_gradients_near_the_diagonal_match_50_digits(which):
    # directional derivative along e at x' = x + h delta (h > 0: off the NTK's kink),
    # against a 50-digit central difference of the reference
    d, depth, width = 784, 3, 64
    x, ys = near_pairs(d, seed=11)
    e = torch.randn(1, d, generator=torch.Generator().manual_seed(12), dtype=F64)
    kernel = nngp if which == "nngp" else ntk
    index = 0 if which == "nngp" else 1
    for j in range(2, ys.shape[0]):
        p = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(kernel(p, ys[j : j + 1], "he", depth, width).sum(), p)
        got = float((g * e).sum())
        xm = [mpmath.mpf(float(a)) for a in x[0]]
        em = [mpmath.mpf(float(a)) for a in e[0]]
        yl = ys[j].tolist()
        step = mpmath.mpf("1e-20")

        def at(sign, xm=xm, em=em, yl=yl, step=step):
            pt = [a + sign * step * b for a, b in zip(xm, em, strict=True)]
            return reference(pt, yl, "he", depth, width)[index]

        want = float((at(1) - at(-1)) / (2 * step))
        assert got == pytest.approx(want, rel=1e-9, abs=0.0), j


def test_blocked_near_pairs_equal_the_dense_pass(monkeypatch):
    # large inputs take the blocked (nonzero) path; it must give the dense pass's numbers
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(40, 16, generator=gen, dtype=F64)
    b = torch.cat([a[:10], a[10:20] + 1e-8 * torch.randn(10, 16, generator=gen, dtype=F64)])
    b = torch.cat([b, torch.randn(15, 16, generator=gen, dtype=F64), torch.zeros(1, 16)])
    dense = cosines(a, b)
    # chunks of 4 pairs of (4, 16) differences
    monkeypatch.setattr(kernels, "_BLOCK_BYTES", 4 * 16 * 8 * kernels._NEAR_ARRAYS)
    blocked = cosines(a, b)
    for x, y in zip(dense, blocked, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert float(blocked[1][:10].diagonal().abs().max()) == 0.0


def test_lazy_limit_gradient_at_and_near_a_training_point():
    # test points on, 1e-9 from and far from training points: the hand-propagated mean
    # gradient G A y against autograd through the public ntk (an independent path)
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(12, 5, generator=gen, dtype=F64)
    x = x / x.norm(dim=1, keepdim=True)
    y = torch.randn(12, generator=gen, dtype=F64)
    xt = torch.cat([x[:2], x[2:4] + 1e-9 * torch.randn(2, 5, generator=gen, dtype=F64)])
    r = lazy_limit(x, y, xt, init="he", depth=3, eps=0.1, width=64, jitter=0.0)
    a = torch.linalg.inv(ntk(x, x, "he", 3, 64))
    for i in range(xt.shape[0]):
        p = xt[i : i + 1].clone().requires_grad_(True)
        g = torch.autograd.functional.jacobian(lambda z: ntk(z, x, "he", 3, 64)[0], p)[:, 0]
        torch.testing.assert_close(r.grad_mean[i], g.T @ a @ y, rtol=1e-9, atol=1e-12)
