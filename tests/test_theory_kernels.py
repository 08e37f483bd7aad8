"""Analytic NNGP / NTK (robustlab.theory.kernels) against robustlab's own networks, float64.

Monte Carlo checks average i.i.d. networks (seeds 0..R-1) and accept
``|mc - analytic| < Z * SE`` with the standard error estimated from the same samples and
Z = 4 (about 6e-5 false alarms per check for a normal mean; Student-t with R - 1 degrees of
freedom is looser, so checks pooled over R <= 16 samples use Z = 6). The finite-width
mean differs from the infinite-width kernel by O(1/m); where that matters the allowance is
stated. Seeds are fixed, so each run is deterministic; Z was chosen before the results.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import robustlab as rl
from robustlab.metrics import empirical_ntk
from robustlab.theory import expected_grad_sq_norm, nngp, ntk
from robustlab.theory.kernels import angular, cosines, layer_variances

F64 = torch.float64
Z = 4.0
SCHEMES = ["lecun", "he", "ntk", "ntk_param"]


def points(n: int, d: int, seed: int, scale: bool = True) -> torch.Tensor:
    """n Gaussian points in R^d (norms vary, so the |x| |x'| factors are exercised)."""
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return x * (0.5 + torch.rand(n, 1, generator=torch.Generator().manual_seed(seed + 1)))


def net(init: str, width: int, depth: int, seed: int, d: int) -> rl.MLP:
    return rl.mlp(
        d, width, depth, init=init, generator=torch.Generator().manual_seed(seed), dtype=F64
    )


# ----------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("init", SCHEMES + ["xavier", "custom(0.5,0.003,0.01)"])
@pytest.mark.parametrize("depth", [1, 2, 3, 7])
def test_nngp_diagonal_is_the_exact_second_moment(init, depth):
    # E f(x)^2 = |x|^2 E||grad f||^2 / d exactly at any width (an independent closed form)
    x, m = points(5, 7, 0), 300
    k = nngp(x, x, init, depth, width=m).diagonal()
    want = x.pow(2).sum(1) * expected_grad_sq_norm(init, 7, m, depth) / 7
    torch.testing.assert_close(k, want, rtol=1e-12, atol=0)


def test_kernels_are_symmetric_psd_and_batched():
    x, y = points(30, 6, 2), points(4, 6, 3)
    for kern in (nngp(x, x, "he", 5), ntk(x, x, "ntk", 5, 256)):
        torch.testing.assert_close(kern, kern.T, rtol=1e-13, atol=0)
        assert float(torch.linalg.eigvalsh(kern)[0]) > -1e-10 * float(kern.diagonal().max())
    full = ntk(torch.cat([x, y]), y, "lecun", 4, 64)
    for i in range(4):  # batched == one point at a time
        torch.testing.assert_close(full[30 + i], ntk(y[i : i + 1], y, "lecun", 4, 64)[0])
    assert nngp(x, None, "he", 3).shape == (30, 30)
    assert ntk(x.float(), y, "he", 3, 8).dtype == F64  # float64 by default


def test_ntk_scale_grows_with_width_only_under_standard_parameterization():
    x = points(6, 5, 4)
    for depth in (2, 4):
        a, b = ntk(x, x, "ntk_param", depth, 100), ntk(x, x, "ntk_param", depth, 10_000)
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
        # He: Theta = m * (width-free shape) + (first-layer term, independent of m): affine
        t1, t2, t3 = (ntk(x, x, "he", depth, m) for m in (1_000, 2_000, 4_000))
        torch.testing.assert_close(t3 - t2, 2 * (t2 - t1), rtol=1e-9, atol=1e-9)
        assert bool((t2 - t1).diagonal().gt(0.49 * t1.diagonal()).all())  # the m-term dominates
        # and the NNGP of the built-in schemes does not depend on the width at all
        torch.testing.assert_close(nngp(x, x, "he", depth, 7), nngp(x, x, "he", depth))


def test_lecun_is_he_times_two_to_minus_half_depth_with_the_same_draws():
    x = points(16, 9, 5)
    for depth in (1, 2, 3, 6):
        gen_a, gen_b = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
        lecun = rl.mlp(9, 128, depth, init="lecun", generator=gen_a, dtype=F64)
        he = rl.mlp(9, 128, depth, init="he", generator=gen_b, dtype=F64)
        with torch.no_grad():
            torch.testing.assert_close(lecun(x), he(x) * 2 ** (-depth / 2), rtol=1e-13, atol=0)
        # so Theta_lecun = 2^(1 - L) Theta_he (each weight scales by 2^(-1/2)), K by 2^-L
        torch.testing.assert_close(
            empirical_ntk(lecun, x[:5]), empirical_ntk(he, x[:5]) * 2.0 ** (1 - depth)
        )
        torch.testing.assert_close(
            ntk(x, x, "lecun", depth, 128), ntk(x, x, "he", depth, 128) * 2.0 ** (1 - depth)
        )
        torch.testing.assert_close(nngp(x, x, "lecun", depth), nngp(x, x, "he", depth) / 2**depth)


# ----------------------------------------------------------------------------- Monte Carlo
@pytest.mark.parametrize("init", SCHEMES)
def test_nngp_matches_output_products_of_random_networks(init):
    # the literal definition: mean over R networks of f(x_i) f(x_j), width 1024, depth 2
    x, R, m = points(4, 6, 8), 3000, 1024
    with torch.no_grad():
        f = torch.stack([net(init, m, 2, s, 6)(x)[:, 0] for s in range(R)])  # (R, 4)
    prods = f[:, :, None] * f[:, None, :]  # (R, 4, 4)
    mean, se = prods.mean(0), prods.std(0) / math.sqrt(R)
    assert torch.all((mean - nngp(x, x, init, 2, width=m)).abs() < Z * se)


def conditional_products(init: str, m: int, depth: int, R: int, x: torch.Tensor):
    """E[f(x) f(x') | W_1..W_{L-1}] = s_L a(x).a(x') for R networks: (R, n, n).

    a = the last hidden activations; averaging these over networks estimates the same
    expectation as f(x) f(x') with far less variance (Rao-Blackwell)."""
    out = []
    for s in range(R):
        model = net(init, m, depth, s, x.shape[1])
        with torch.no_grad():
            a = torch.relu(model.preactivations(x)[-1])  # (n, m)
        out.append(model.spec.variances[2] * a @ a.T)
    return torch.stack(out)


@pytest.mark.parametrize("init", SCHEMES)
def test_nngp_matches_conditional_monte_carlo_at_depth(init):
    x = points(5, 6, 9)
    # depth 2: the conditional products are unbiased at any width (layer-1 pre-activations
    # are exactly Gaussian), so 300 networks of width 4096 pin K to ~0.3%: |err| < 4 SE.
    samples = conditional_products(init, 4096, 2, 300, x)
    mean, se = samples.mean(0), samples.std(0) / math.sqrt(300)
    assert torch.all((mean - nngp(x, x, init, 2)).abs() < Z * se)
    # depths 3..5, 16 networks of width 1024: |err| < 6 SE (t, 15 dof) + 0.5% of the
    # largest diagonal entry for the O(L/m) finite-width bias.
    for depth in (3, 4, 5):
        samples = conditional_products(init, 1024, depth, 16, x)
        mean, se = samples.mean(0), samples.std(0) / math.sqrt(16)
        k = nngp(x, x, init, depth, width=1024)
        slack = 0.005 * k.diagonal().max()
        assert torch.all((mean - k).abs() < 6 * se + slack), (depth, (mean - k).abs() / se)


@pytest.mark.parametrize("init", SCHEMES)
def test_ntk_matches_empirical_ntk_and_the_gap_shrinks_with_width(init):
    # robustlab's own empirical NTK (J J^T over the stored weights) at widths 64 and 512,
    # R = 24 networks each, depths 2..6.
    # (1) E_w ||Theta_w - Theta||_F^2 / ||Theta||_F^2 (fluctuation + bias, ~ L/m) shrinks:
    #     the ratio is ~8 here; we require > 2.
    # (2) at width 512 the mean empirical NTK is within 6 SE_F of the analytic one, SE_F the
    #     Frobenius standard error sqrt(tr Cov / R), plus 1% for the O(L/m) bias; pooled
    #     over depths, mean (gap / SE_F)^2 < 3 (E = 1 when only noise remains; a 10% error
    #     in the hidden layers' Sigmadot factor gives 4 to 16 here).
    x, R, d = points(6, 8, 10), 24, 8
    pooled = []
    for depth in (2, 3, 4, 5, 6):
        msd = {}
        for m in (64, 512):
            k = torch.stack([empirical_ntk(net(init, m, depth, s, d), x) for s in range(R)])
            th = ntk(x, x, init, depth, m)
            norm2 = float(th.pow(2).sum())
            msd[m] = float((k - th).pow(2).sum((1, 2)).mean()) / norm2
        gap = float((k.mean(0) - th).norm()) / math.sqrt(norm2)
        se = math.sqrt(float(k.var(0).sum()) / R / norm2)
        assert msd[512] < msd[64] / 2, (depth, msd)
        assert gap < 6 * se + 0.01, (depth, gap, se)
        pooled.append((gap / se) ** 2)
    assert sum(pooled) / len(pooled) < 3, pooled


@pytest.mark.parametrize("init", SCHEMES)
def test_two_layer_ntk_is_the_exact_mean_at_any_width(init):
    # depth 2: each unit's first-layer pre-activation is exactly Gaussian, so E_w Theta_w
    # equals the analytic NTK at every width (no O(1/m) bias); 1500 networks of width 64
    # pin it to ~1%: elementwise |mean - Theta| < 4 SE.
    x, R, m, d = points(4, 6, 15), 1500, 64, 6
    k = torch.stack([empirical_ntk(net(init, m, 2, s, d), x) for s in range(R)])
    mean, se = k.mean(0), k.std(0) / math.sqrt(R)
    err = (mean - ntk(x, x, init, 2, m)).abs()
    assert torch.all(err < Z * se), err / se
    diag = mean.diagonal().sqrt()
    assert float((se / (diag[:, None] * diag[None, :])).max()) < 0.02  # tight enough to matter


# ----------------------------------------------------------------------------- derivatives
@pytest.mark.parametrize("init", SCHEMES + ["xavier"])
def test_kernel_gradients_match_finite_differences(init):
    # torch.autograd.gradcheck: analytic (custom arc-cosine backward) vs central differences
    x1 = points(3, 4, 11).requires_grad_(True)
    x2 = points(2, 4, 12).requires_grad_(True)
    for depth in (2, 4):

        def theta(a, b, depth=depth):
            return ntk(a, b, init, depth, 50)

        def k(a, b, depth=depth):
            return nngp(a, b, init, depth, 50)

        assert torch.autograd.gradcheck(theta, (x1, x2))
        assert torch.autograd.gradcheck(k, (x1, x2))
        assert torch.autograd.gradgradcheck(k, (x1, x2))


def test_kernels_are_finite_to_differentiate_on_the_diagonal():
    # arccos' is infinite at rho = 1; the kernels' derivatives are not (NTK: zero-slope
    # choice at its kink; NNGP: exact, kappa_1'(1) = kappa_0(1) = 1)
    x = points(4, 5, 13).requires_grad_(True)
    for fn in (lambda a: ntk(a, a, "he", 4, 32), lambda a: nngp(a, a, "he", 4)):
        (g,) = torch.autograd.grad(fn(x).sum(), x)
        assert torch.isfinite(g).all()
    # d/dx K(x, x) = 2 x D_L along the diagonal (K(x, x) = D_L |x|^2)
    (g,) = torch.autograd.grad(nngp(x, x, "he", 4).diagonal().sum(), x)
    torch.testing.assert_close(g, 2 * x.detach() * 2 / 5, rtol=1e-10, atol=1e-12)


def test_torch_func_transforms_agree():
    # the arc-cosine autograd functions carry backward, forward (jvp) and vmap rules
    x, y = points(3, 4, 16), points(2, 4, 17)

    def theta(a):
        return ntk(a, y, "ntk_param", 3, 64)

    with warnings.catch_warnings():  # torch's forward-mode set-up warns about torch.jit
        warnings.simplefilter("ignore", DeprecationWarning)
        fwd = torch.func.jacfwd(theta)(x)
    torch.testing.assert_close(fwd, torch.func.jacrev(theta)(x))
    per_point = torch.func.vmap(torch.func.jacrev(lambda a: nngp(a[None], y, "he", 3)[0]))(x)
    torch.testing.assert_close(
        per_point,
        torch.func.jacrev(lambda a: nngp(a, y, "he", 3))(x).diagonal(0, 0, 2).permute(2, 0, 1),
    )


def test_hand_propagated_slopes_match_autograd():
    rho = torch.linspace(-0.999, 0.999, 41, dtype=F64).requires_grad_(True)
    for init, depth in (("he", 1), ("lecun", 3), ("ntk", 6), ("ntk_param", 4)):
        s, v = layer_variances(init, 7, 300, depth)
        k, th, dk, dth = angular(1.0 - rho.detach(), s, v, 300, slopes=True)
        k2, th2 = angular(1.0 - rho, s, v, 300)
        torch.testing.assert_close(k, k2.detach())
        torch.testing.assert_close(th, th2.detach())
        torch.testing.assert_close(dk, torch.autograd.grad(k2.sum(), rho, retain_graph=True)[0])
        torch.testing.assert_close(dth, torch.autograd.grad(th2.sum(), rho)[0])


def test_cosines_clamp_and_zero_norm():
    a = torch.tensor([[1.0, 0.0], [0.0, 0.0], [3.0, 4.0]], dtype=F64)
    norms, comp = cosines(a, a)
    assert float(comp.max()) <= 2.0 and float(comp.min()) >= 0.0
    assert float(norms[1].abs().sum()) == 0.0 and torch.isfinite(comp).all()
    assert float(comp[0, 0]) == 0.0 and float(comp[2, 2]) == 0.0  # exact on the diagonal
    assert float(nngp(a, a, "he", 3)[1].abs().sum()) == 0.0  # f(0) = 0


def test_bad_inputs_say_what_to_fix():
    x = points(3, 4, 14)
    with pytest.raises(ValueError, match="depends on the width; pass width="):
        nngp(x, x, "xavier", 3)
    with pytest.raises(ValueError, match="differ in dimension"):
        ntk(x, points(2, 5, 0), "he", 2, 16)
    with pytest.raises(ValueError, match="width: expected a positive integer"):
        ntk(x, x, "he", 2, 0)
    with pytest.raises(ValueError, match="unknown init scheme"):
        nngp(x, x, "kaiming", 2)
    with pytest.raises(ValueError, match=r"shape \(N, d\)"):
        nngp(torch.ones(3), x, "he", 2)
