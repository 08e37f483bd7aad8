"""method="jacobian": exact input Jacobians, Monte Carlo over delta on J, the exact RMS form.

References are independent of the library's Jacobian path: J from ``torch.func.jacrev``
(vmapped over points), and delta drawn in R^d by ``sample_perturbations`` (the library's
Jacobian sampler works in the rank of J with a chi-square draw instead). Statistical checks
accept ``|a - b| < Z * SE`` with Z = 4 and SE from both estimates; seeds are fixed.
All in float64.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import jacrev, vmap

import robustlab as rl
from robustlab.metrics import input_jacobians, sample_perturbations
from robustlab.metrics.regions import REGIONS, standard_gamma

Z = 4.0
F64 = torch.float64
SHAPE = (3, 5, 5)  # image-shaped inputs: d = 75


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def cnn10(seed: int = 0, **kw) -> rl.CNN:
    """A CNN with 10 outputs: the k = 10 case the Jacobian method is for."""
    return rl.cnn(SHAPE, 6, 3, out_dim=10, init="he", generator=seeded(seed), dtype=F64, **kw)


def images(n: int, seed: int = 100) -> torch.Tensor:
    return torch.randn(n, *SHAPE, generator=seeded(seed), dtype=F64)


def reference_jacobians(model, x: torch.Tensor) -> torch.Tensor:
    """(N, k, d) by vmap(jacrev) on single points."""
    J = vmap(jacrev(lambda x1: model(x1[None])[0]))(x).detach()
    return J.reshape(x.shape[0], J.shape[1], -1)


def reference_norms(J: torch.Tensor, eps: float, region: str, n: int, seed: int):
    """Per point mean and SE of ||J delta|| with delta sampled in R^d: (N,), (N,)."""
    delta = sample_perturbations(n, J.shape[2], eps, region, generator=seeded(seed), dtype=F64)
    v = torch.linalg.vector_norm(torch.einsum("nkd,sd->nsk", J, delta), dim=2)  # (N, n)
    return v.mean(1), v.std(1) / math.sqrt(n), v.pow(2)


# ----------------------------------------------------------------------------- Jacobians
def test_input_jacobians_match_jacrev_reverse_and_forward_mode():
    net, x = cnn10(), images(7)
    J = input_jacobians(net, x)
    assert J.shape == (7, 10, 75)
    torch.testing.assert_close(J, reference_jacobians(net, x), rtol=1e-10, atol=1e-13)
    # d = 4 < k = 10: forward mode (d JVPs), same Jacobian
    mlp = rl.mlp(4, 16, 3, out_dim=10, init="he", generator=seeded(1), dtype=F64)
    x4 = torch.randn(9, 4, generator=seeded(2), dtype=F64)
    torch.testing.assert_close(
        input_jacobians(mlp, x4), reference_jacobians(mlp, x4), rtol=1e-10, atol=1e-13
    )
    # chunks of 1 point (reverse) and of 2 points (forward: 8 rows) give the same
    torch.testing.assert_close(input_jacobians(net, x, chunk_size=10), J, rtol=0, atol=1e-14)
    torch.testing.assert_close(
        input_jacobians(mlp, x4, chunk_size=8), input_jacobians(mlp, x4), rtol=0, atol=1e-14
    )


# ----------------------------------------------------------------------------- P
@pytest.mark.parametrize("region", ["ball", "sphere", "linf_ball"])
def test_jacobian_p_against_jacrev_and_monte_carlo_reference(region):
    """CNN, k = 10, image-shaped x: per-point P and the exact RMS form against a reference
    that builds J with jacrev and samples delta in R^d (the sampler's law alone is checked
    with more power below)."""
    net, x, eps, n = cnn10(), images(6), 0.3, 50_000
    res = rl.perturbation_stability(
        net, x, eps, method="jacobian", region=region, n_samples=n, generator=seeded(3)
    )
    assert (res.method, res.n_samples, res.region, res.n_points) == ("jacobian", n, region, 6)
    J = reference_jacobians(net, x)
    ref, ref_se, sq = reference_norms(J, eps, region, n, seed=4)
    se = (res.per_point_stderr.pow(2) + ref_se.pow(2)).sqrt()
    assert torch.all(Z * se < 0.02 * res.per_point)  # the check has power
    assert torch.all((res.per_point - ref).abs() < Z * se), (res.per_point, ref)
    # RMS: eps^2 ||J||_F^2 c exactly, and the reference's mean square agrees with it
    c = REGIONS[region].rms_factor(75)
    rms = eps * J.pow(2).sum((1, 2)).sqrt() * math.sqrt(c)
    torch.testing.assert_close(res.per_point_rms, rms, rtol=1e-10, atol=0)
    assert res.rms == pytest.approx(float(rms.pow(2).mean().sqrt()), rel=1e-10)
    assert torch.all((sq.mean(1) - rms**2).abs() < Z * sq.std(1) / math.sqrt(sq.shape[1]))
    assert torch.all(res.per_point < rms)  # Jensen, strict for k > 1


@pytest.mark.parametrize("region", ["ball", "sphere", "linf_ball"])
@pytest.mark.parametrize("k", [3, 8])
def test_rank_sampler_has_the_law_of_direct_sampling(region, k):
    """jacobian_norms draws ||J delta|| in rank(J) dimensions with a chi-square for the rest;
    against delta drawn in R^d (d = 5, k < d and k > d). In d = 5 the ball and the sphere
    differ by 15% (sqrt(5/7)); the tolerance, Z SE, is about 1%."""
    from robustlab.metrics.regions import jacobian_norms

    J = torch.randn(4, k, 5, generator=seeded(20), dtype=F64)
    J[:, :, 0] *= 5.0  # unequal singular values
    n = 200_000
    v = jacobian_norms(REGIONS[region], J, n, 0.5, seeded(21))  # (n, 4)
    ref, ref_se, _ = reference_norms(J, 0.5, region, n, seed=22)
    se = (v.std(0).pow(2) / n + ref_se.pow(2)).sqrt()
    assert torch.all(Z * se < 0.012 * ref)
    assert torch.all((v.mean(0) - ref).abs() < Z * se), (v.mean(0), ref)


def test_jacobian_agrees_with_mc_and_with_exact_for_one_output():
    net, x = cnn10(), images(5)
    jac = rl.perturbation_stability(net, x, 0.2, method="jacobian", generator=seeded(5))
    mc = rl.perturbation_stability(net, x, 0.2, method="mc", n_samples=3000, generator=seeded(6))
    se = (jac.per_point_stderr.pow(2) + mc.per_point_stderr.pow(2)).sqrt()
    assert torch.all((jac.per_point - mc.per_point).abs() < Z * se)
    assert mc.rms is None and jac.n_samples == 1024  # jacobian's default sample count
    one = rl.cnn(SHAPE, 6, 3, init="he", generator=seeded(7), dtype=F64)
    for region in ("ball", "sphere"):
        exact = rl.perturbation_stability(one, x, 0.2, method="exact", region=region)
        j1 = rl.perturbation_stability(
            one, x, 0.2, method="jacobian", region=region, n_samples=20_000, generator=seeded(8)
        )
        assert torch.all((j1.per_point - exact.per_point).abs() < Z * j1.per_point_stderr)
        torch.testing.assert_close(j1.per_point_rms, exact.per_point_rms, rtol=1e-12, atol=0)


def test_auto_choice_and_linf_exact_refusal():
    net, x = cnn10(), images(3)
    assert rl.perturbation_stability(net, x, 0.1, generator=seeded(0)).method == "jacobian"
    one = rl.cnn(SHAPE, 4, 2, init="he", generator=seeded(1), dtype=F64)
    res = rl.perturbation_stability(one, x, 0.1, region="linf_ball", generator=seeded(0))
    assert res.method == "jacobian"  # no closed form on the cube
    with pytest.raises(ValueError, match="no closed form on region 'linf_ball'.*jacobian"):
        rl.perturbation_stability(one, x, 0.1, method="exact", region="linf_ball")


def test_jacobian_is_seeded_and_leaves_the_model_as_found():
    net, x = cnn10(), images(4)
    net.train()
    net.convs[0].weight.requires_grad_(False)
    modes = [m.training for m in net.modules()]
    flags = [p.requires_grad for p in net.parameters()]

    def run(seed, chunk=4096):
        return rl.perturbation_stability(
            net, x, 0.1, method="jacobian", n_samples=64, generator=seeded(seed), chunk_size=chunk
        ).per_point

    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))
    assert [m.training for m in net.modules()] == modes
    assert [p.requires_grad for p in net.parameters()] == flags
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.5, 37.0])
def test_standard_gamma_moments(alpha):
    """Gamma(alpha, 1) has mean alpha and variance alpha: the sampler behind the chi-square
    draw of the Jacobian method; the mean within Z standard errors."""
    n = 200_000
    g = standard_gamma((n,), alpha, seeded(11))
    assert g.shape == (n,) and g.dtype == F64 and bool((g > 0).all())
    assert abs(float(g.mean()) - alpha) < Z * math.sqrt(alpha / n)
    assert abs(float(g.var()) / alpha - 1) < 0.03
    assert torch.equal(g, standard_gamma((n,), alpha, seeded(11)))
