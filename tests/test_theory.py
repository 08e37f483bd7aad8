"""Closed forms of DESIGN §1 (robustlab.theory) against Monte Carlo in float64.

Every Monte Carlo comparison uses i.i.d. samples, estimates the standard error (SE) of
the sample mean from the same samples, and accepts ``|mc - closed form| < Z * SE`` with
Z = 4 (a false alarm has probability ~6e-5 per check for a normal sample mean). The seeds
are fixed, so each run is deterministic; Z was chosen before looking at the results.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch.func import functional_call, jacrev, vmap

import robustlab as rl
from robustlab.metrics import sample_perturbations
from robustlab.theory import (
    expected_grad_sq_norm,
    init_stability_bound,
    kappa,
    law_of_robustness_floor,
    rms_factor,
)

Z = 4.0
F64 = torch.float64
DIMS = [2, 3, 10, 100, 1000]
REGIONS = ["ball", "sphere"]


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def mean_se(v: torch.Tensor) -> tuple[float, float]:
    """Sample mean and its standard error, for i.i.d. samples v (n,)."""
    return float(v.mean()), float(v.std(unbiased=True)) / math.sqrt(v.numel())


# ----------------------------------------------------------------------------- kappa_d
def test_kappa_known_values():
    # sphere: E|u_1| = 2/pi on the circle, 1/2 on S^2 (Archimedes); ball adds d/(d+1)
    assert kappa(2, "sphere") == pytest.approx(2 / math.pi, rel=1e-14)
    assert kappa(3, "sphere") == pytest.approx(0.5, rel=1e-14)
    assert kappa(2, "ball") == pytest.approx(4 / (3 * math.pi), rel=1e-14)
    assert kappa(3) == pytest.approx(3 / 8, rel=1e-14)  # ball is the default
    assert kappa(1, "sphere") == pytest.approx(1.0, rel=1e-14)  # u = +-1


def test_kappa_large_d_is_stable_and_asymptotic():
    # kappa_d ~ sqrt(2 / (pi d)) as d -> inf (a Gaussian coordinate of variance 1/d)
    for d in (10**4, 10**6):
        ratio = kappa(d, "sphere") * math.sqrt(math.pi * d / 2)
        assert ratio == pytest.approx(1.0, abs=1.0 / d)  # the correction is 1 - 1/(4d) + ...
    # huge d: lgamma values ~1e10 cancel, leaving ~1e-6 relative rounding error
    assert kappa(10**9, "sphere") * math.sqrt(math.pi * 10**9 / 2) == pytest.approx(1, rel=1e-5)
    d = 10**6
    assert kappa(d, "ball") == pytest.approx(kappa(d, "sphere") * d / (d + 1), rel=1e-14)


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("d", DIMS)
def test_kappa_against_monte_carlo(d, region):
    """E|u_1| for u uniform in the unit ball / on the unit sphere (eps = 0.7, rescaled).

    By symmetry every coordinate has the law of u_1, so each sampled vector contributes
    t = mean_j |u_j| (an unbiased estimate of E|u_1|); the vectors are i.i.d., so the SE
    over vectors is valid even though coordinates of one vector are dependent.
    """
    eps = 0.7
    n = min(20_000, 4_000_000 // d)
    delta = sample_perturbations(n, d, eps, region, generator=seeded(d), dtype=F64)
    assert delta.shape == (n, d) and delta.dtype == F64
    t = delta.abs().mean(1) / eps  # (n,)
    mc, se = mean_se(t)
    assert abs(mc - kappa(d, region)) < Z * se, (mc, kappa(d, region), se)


@pytest.mark.parametrize("d", [2, 10, 1000])
def test_perturbation_radius_law(d):
    """Sphere: ||delta|| = eps exactly; ball: (||delta||/eps)^d ~ U(0, 1) (mean 1/2, var 1/12)."""
    eps, n = 0.3, min(20_000, 4_000_000 // d)
    r = sample_perturbations(n, d, eps, "sphere", generator=seeded(1), dtype=F64).norm(dim=1)
    torch.testing.assert_close(r, torch.full_like(r, eps), rtol=1e-12, atol=0)
    r = sample_perturbations(n, d, eps, "ball", generator=seeded(2), dtype=F64).norm(dim=1)
    assert float(r.max()) <= eps * (1 + 1e-12)
    u = (r / eps).pow(d)
    assert abs(float(u.mean()) - 0.5) < Z * math.sqrt(1 / 12 / n)
    assert abs(float((u < 0.25).double().mean()) - 0.25) < Z * math.sqrt(0.25 * 0.75 / n)


def test_sample_perturbations_is_seeded():
    a = sample_perturbations(5, 4, 0.1, generator=seeded(3))
    b = sample_perturbations(5, 4, 0.1, generator=seeded(3))
    c = sample_perturbations(5, 4, 0.1, generator=seeded(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


# ----------------------------------------------------------------------------- rms factor
@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("d", [3, 10, 100])
def test_rms_factor_against_monte_carlo(d, region):
    """E||delta||^2 / eps^2 = d * c and E||J delta||^2 = eps^2 ||J||_F^2 c, c = rms_factor."""
    eps, n, k = 0.5, 40_000, 3
    c = rms_factor(d, region)
    delta = sample_perturbations(n, d, eps, region, generator=seeded(10 + d), dtype=F64)
    sq = delta.pow(2).sum(1) / eps**2
    if region == "sphere":
        torch.testing.assert_close(sq, torch.ones_like(sq), rtol=1e-12, atol=0)
    else:
        mc, se = mean_se(sq)
        assert abs(mc - d * c) < Z * se
    J = torch.randn(k, d, generator=seeded(20 + d), dtype=F64)  # a random k x d Jacobian
    mc, se = mean_se((delta @ J.T).pow(2).sum(1))  # ||J delta||^2 per sample
    closed = eps**2 * float(J.pow(2).sum()) * c
    assert abs(mc - closed) < Z * se, (mc, closed, se)


def test_rms_factor_values():
    assert rms_factor(10) == pytest.approx(1 / 12, rel=1e-15)
    assert rms_factor(10, "sphere") == pytest.approx(1 / 10, rel=1e-15)


@pytest.mark.parametrize("bad", [0, -2, 2.5, "3"])
def test_kappa_and_rms_refuse_bad_d(bad):
    with pytest.raises(ValueError, match="d: expected a positive integer"):
        kappa(bad)
    with pytest.raises(ValueError, match="d: expected a positive integer"):
        rms_factor(bad)


def test_unknown_region():
    with pytest.raises(ValueError, match="region must be one of ball, sphere, got 'cube'"):
        kappa(3, "cube")
    with pytest.raises(ValueError, match="region"):
        rms_factor(3, "cube")


# ----------------------------------------------------------------------------- E||grad||^2
IN_DIM, WIDTH, N_NETS = 16, 48, 800
SCHEMES = ["lecun", "he", "ntk", "xavier", "ntk_param"]
DEPTHS = range(2, 9)


@functools.cache
def mc_jacobian_sq_norm(
    init: str, depth: int, width: int = WIDTH, out_dim: int = 1, n_nets: int = N_NETS
) -> tuple[float, float]:
    """Mean and SE of ||J_f(x)||_F^2 over ``n_nets`` independent networks, at a fixed unit x.

    Networks are ``rl.mlp(..., init)`` (so the library's forward pass, multipliers included)
    evaluated with stacked weights drawn i.i.d. from the scheme's stored-weight variances;
    the input Jacobian comes from torch.func.jacrev. Weights are drawn as float32 standard
    normals (faster to draw; still exact Gaussian samples for this purpose) and all
    arithmetic is float64. Each (init, depth) has its own seed, so checks are independent.
    """
    net = rl.mlp(IN_DIM, width, depth, out_dim=out_dim, init=init, dtype=F64)
    gen = seeded(1000 * SCHEMES.index(init) + 10 * depth + out_dim)
    wv = net.spec.weight_variances
    params = {
        f"layers.{i}.weight": torch.randn((n_nets, *layer.weight.shape), generator=gen)
        .to(F64)
        .mul_(math.sqrt(wv[role]))
        for i, (role, layer) in enumerate(zip(net.layer_roles(), net.layers, strict=True))
    }
    x = torch.randn(IN_DIM, generator=seeded(7), dtype=F64)
    x = x / x.norm()

    def f(p: dict, x1: torch.Tensor) -> torch.Tensor:  # (d,) -> (k,)
        return functional_call(net, p, (x1[None],))[0]

    jac = vmap(jacrev(f, argnums=1), in_dims=(0, None))(params, x)  # (n_nets, k, d)
    return mean_se(jac.pow(2).sum((1, 2)))


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("init", SCHEMES)
def test_expected_grad_sq_norm_against_monte_carlo(init, depth):
    mc, se = mc_jacobian_sq_norm(init, depth)
    closed = expected_grad_sq_norm(init, IN_DIM, WIDTH, depth)
    assert abs(mc - closed) < Z * se, f"{init} L={depth}: mc {mc:.5g} +- {se:.2g}, {closed:.5g}"


def test_expected_jacobian_sq_norm_multi_output():
    """k outputs: E||J||_F^2 is k times the scalar-output value."""
    mc, se = mc_jacobian_sq_norm("he", 4, out_dim=3)
    closed = expected_grad_sq_norm("he", IN_DIM, WIDTH, 4, out_dim=3)
    assert closed == pytest.approx(3 * expected_grad_sq_norm("he", IN_DIM, WIDTH, 4), rel=1e-14)
    assert abs(mc - closed) < Z * se


def test_monte_carlo_scaling_with_depth():
    """Measured, not only closed form: LeCun's E||grad||^2 falls 2^6-fold from L=2 to L=8,
    He's does not move. Relative SEs of the two means add in quadrature for the ratio."""
    for init, factor in (("lecun", 2.0**-6), ("he", 1.0)):
        (m2, s2), (m8, s8) = mc_jacobian_sq_norm(init, 2), mc_jacobian_sq_norm(init, 8)
        ratio = m8 / m2
        rel_se = math.hypot(s2 / m2, s8 / m8)
        assert abs(ratio / factor - 1) < Z * rel_se, (init, ratio, factor, rel_se)


@pytest.mark.parametrize("width", [1, 7, 64, 1000])
def test_closed_form_scaling_properties(width):
    d = 784
    for L in range(2, 13):
        # LeCun: 2^(1-L), halving per layer
        assert expected_grad_sq_norm("lecun", d, width, L) == pytest.approx(2.0 ** (1 - L))
        assert expected_grad_sq_norm("lecun", d, width, L + 1) == pytest.approx(
            expected_grad_sq_norm("lecun", d, width, L) / 2
        )
        # He: 2 at every depth; the paper's NTK init: d; NTK parameterization: 1
        assert expected_grad_sq_norm("he", d, width, L) == pytest.approx(2.0)
        assert expected_grad_sq_norm("ntk", d, width, L) == pytest.approx(d)
        assert expected_grad_sq_norm("ntk_param", d, width, L) == pytest.approx(1.0)
        # Xavier: (d/(d+m)) * 2^(2-L) * (2m/(m+1))
        xav = d / (d + width) * 2.0 ** (2 - L) * 2 * width / (width + 1)
        assert expected_grad_sq_norm("xavier", d, width, L) == pytest.approx(xav)


def test_closed_form_general_and_linear_case():
    scheme = rl.custom(0.3, 0.05, 0.7)
    d, m, L, k = 9, 11, 5, 2
    expected = k * (d * 0.3 / 2) * (m * 0.05 / 2) ** (L - 2) * (m * 0.7)
    assert expected_grad_sq_norm(scheme, d, m, L, k) == pytest.approx(expected, rel=1e-14)
    assert expected_grad_sq_norm(scheme, d, m, 1, k) == pytest.approx(k * d * 0.3, rel=1e-14)
    with pytest.raises(ValueError, match="depth: expected a positive integer"):
        expected_grad_sq_norm("he", d, m, 0)
    with pytest.raises(ValueError, match="unknown init scheme"):
        expected_grad_sq_norm("glorot", d, m, 3)


# ----------------------------------------------------------------------------- bounds
def test_init_stability_bound():
    for init in SCHEMES:
        for region in REGIONS:
            got = init_stability_bound(init, 784, 256, 6, 0.3, region)
            closed = 0.3 * kappa(784, region) * math.sqrt(expected_grad_sq_norm(init, 784, 256, 6))
            assert got == pytest.approx(closed, rel=1e-14)
    for bad in (0, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="eps: expected a positive number"):
            init_stability_bound("he", 10, 10, 3, bad)


def test_law_of_robustness_floor():
    assert law_of_robustness_floor(1000, 784, 10_000) == pytest.approx(math.sqrt(78.4), rel=1e-15)
    assert law_of_robustness_floor(50, 2, 100) == pytest.approx(1.0, rel=1e-15)
    # more parameters lower the floor: sqrt(N d / p)
    assert law_of_robustness_floor(60_000, 784, 4 * 10**6) < law_of_robustness_floor(
        60_000, 784, 10**6
    )
    for kwargs, name in (
        ({"n_train": 0, "in_dim": 3, "n_params": 5}, "n_train"),
        ({"n_train": 4, "in_dim": -1, "n_params": 5}, "in_dim"),
        ({"n_train": 4, "in_dim": 3, "n_params": 2.5}, "n_params"),
    ):
        with pytest.raises(ValueError, match=f"{name}: expected a positive integer"):
            law_of_robustness_floor(**kwargs)


def test_init_table_rows_follow_the_closed_forms():
    rows = rl.theory.init_table(["lecun", "he"], 10, [64, 128], [2, 3, 4], eps=0.1)
    assert len(rows) == 2 * 2 * 3
    for r in rows:
        want = 2.0 ** (1 - r["depth"]) if r["init"] == "lecun" else 2.0
        assert r["grad_sq"] == pytest.approx(want)
        assert r["p_bound"] == pytest.approx(0.1 * r["kappa_d"] * math.sqrt(want))
