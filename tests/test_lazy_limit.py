"""The lazy limit's P (robustlab.theory.lazy_limit): closed forms, independent references, CLI.

References used: the init-time identities of robustlab.theory (t = 0), gradient descent on
the kernel model iterated step by step, autograd through the public kernels, sampling
g ~ N(mu, C) and delta ~ U(ball), and random networks. Monte Carlo checks accept
``|mc - exact| < Z * SE`` with Z = 4 and SE estimated from the same samples.
"""

from __future__ import annotations

import math

import pytest
import torch

import robustlab as rl
from _spheres import F64, D, lazy_data, sphere
from robustlab.cli import main
from robustlab.theory import (
    after_training_table,
    expected_grad_sq_norm,
    init_stability_bound,
    kappa,
    lazy_limit,
    lazy_limit_p,
    nngp,
    ntk,
)

Z = 4.0


@pytest.fixture(scope="module")
def data():
    return lazy_data()


# ----------------------------------------------------------------------------- t = 0
@pytest.mark.parametrize("init", ["lecun", "he", "ntk", "ntk_param"])
@pytest.mark.parametrize("depth", [2, 5])
def test_untrained_limit_is_the_init_time_p(data, init, depth):
    x, y, xt = data
    r = lazy_limit(x, y, xt, init=init, depth=depth, eps=0.1, t=0)
    # E||grad f||^2 = d D_L, and g ~ N(0, D_L I): E|g.delta| = eps d/(d+1) sqrt(2/pi) sqrt(D_L)
    g2 = expected_grad_sq_norm(init, D, 1024, depth)
    exact = 0.1 * D / (D + 1) * math.sqrt(2 / math.pi) * math.sqrt(g2 / D)
    assert r.p == pytest.approx(exact, rel=1e-12)
    assert r.p_at_init == pytest.approx(exact, rel=1e-12)
    assert r.p_kernel == 0.0 and r.p_init == pytest.approx(exact, rel=1e-12)
    assert r.p <= init_stability_bound(init, D, 1024, depth, 0.1)  # Jensen
    assert r.p_rms == pytest.approx(0.1 * math.sqrt(g2 / (D + 2)), rel=1e-12)
    assert r.train_loss == pytest.approx(0.5 * (1 + g2 / D), rel=1e-12)  # |x| = 1, y = +-1


@pytest.mark.parametrize("init", ["he", "ntk"])
def test_untrained_limit_matches_random_networks(init):
    # 48 networks of width 1024, depth 3; P of each on 100 sphere points (exact method)
    xt, R = sphere(100, D, 2), 48
    ps = torch.tensor(
        [
            rl.perturbation_stability(
                rl.mlp(
                    D, 1024, 3, init=init, generator=torch.Generator().manual_seed(s), dtype=F64
                ),
                xt,
                0.1,
            ).value
            for s in range(R)
        ]
    )
    limit = lazy_limit(
        sphere(4, D, 3), torch.ones(4, dtype=F64), xt, init=init, depth=3, eps=0.1, t=0
    )
    se = float(ps.std()) / math.sqrt(R)
    assert abs(float(ps.mean()) - limit.p) < Z * se, (float(ps.mean()), limit.p, se)


# ----------------------------------------------------------------------------- training
def test_finite_t_is_gradient_descent_on_the_kernel_model(data):
    # the mean function after t steps is Theta(x, X) alpha_t with alpha iterated by GD on
    # mean_i 0.5 (f(x_i) - y_i)^2: alpha <- alpha + (lr / N) (y - Theta alpha); its input
    # gradient by autograd through the public ntk() is the result's grad_mean
    x, y, xt = data
    n, t, depth, m = x.shape[0], 37, 4, 512
    theta = ntk(x, x, "he", depth, m)
    lr = 0.8 * n / float(torch.linalg.eigvalsh(theta)[-1])
    alpha = torch.zeros(n, dtype=F64)
    for _ in range(t):
        alpha = alpha + (lr / n) * (y - theta @ alpha)
    xr = xt.clone().requires_grad_(True)
    (mu,) = torch.autograd.grad((ntk(xr, x, "he", depth, m) @ alpha).sum(), xr)
    r = lazy_limit(x, y, xt, init="he", depth=depth, eps=0.1, t=t, lr=lr, width=m)
    torch.testing.assert_close(r.grad_mean, mu, rtol=1e-9, atol=1e-12)
    assert r.lr == lr and r.step_ratio == pytest.approx(0.8)
    # the mean-only path (no NNGP, no covariance) gives the same mean
    r = lazy_limit(x, y, xt, init="he", depth=depth, eps=0.1, t=t, lr=lr, width=m,
                   jitter=0.0, parts=("mean",))  # fmt: skip
    torch.testing.assert_close(r.grad_mean, mu, rtol=1e-8, atol=1e-11)


def test_covariance_matches_autograd_through_the_kernels(data):
    # C = D_L I - H A G^T - G A H^T + G A K A G^T with G, H from autograd of ntk(), nngp()
    # and A = Theta^{-1} (converged); D_L I from the mixed derivative of nngp on its diagonal
    x, y, xt = data
    depth, m = 3, 256
    r = lazy_limit(x, y, xt[:3], init="ntk", depth=depth, eps=0.1, width=m, jitter=0.0)
    theta, k = ntk(x, x, "ntk", depth, m), nngp(x, x, "ntk", depth, m)
    a = torch.linalg.inv(theta)
    for i in range(3):
        p = xt[i : i + 1].clone().requires_grad_(True)
        g = torch.autograd.functional.jacobian(lambda z: ntk(z, x, "ntk", depth, m)[0], p)[:, 0]
        h = torch.autograd.functional.jacobian(lambda z: nngp(z, x, "ntk", depth, m)[0], p)[:, 0]
        g, h = g.T, h.T  # (d, N)
        q = xt[i : i + 1].clone()
        d_l = float(nngp(q, q, "ntk", depth, m)[0, 0])  # |x| = 1
        mixed = torch.autograd.functional.jacobian(
            lambda u, v: torch.autograd.grad(
                nngp(u, v, "ntk", depth, m).sum(), u, create_graph=True
            )[0],
            (p, q.requires_grad_(True)),
        )[1][0, :, 0, :]
        torch.testing.assert_close(mixed, d_l * torch.eye(D, dtype=F64), rtol=1e-9, atol=1e-12)
        cov = mixed - h @ a @ g.T - g @ a @ h.T + g @ a @ k @ a @ g.T
        torch.testing.assert_close(r.grad_cov[i], cov, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(r.grad_mean[i], g @ a @ y, rtol=1e-6, atol=1e-9)


def test_long_training_reaches_the_converged_limit(data):
    x, y, xt = data
    for model in ("network", "linearized"):
        done = lazy_limit(x, y, xt, init="he", depth=4, eps=0.1, model=model)
        long = lazy_limit(x, y, xt, init="he", depth=4, eps=0.1, t=200_000, model=model)
        assert long.p == pytest.approx(done.p, rel=1e-6)
        assert long.train_loss < 1e-12 and done.train_loss < 1e-12


def test_gaussian_formula_matches_sampling(data):
    # per point: E_delta E_g |g.delta| with g ~ N(mu, C), delta ~ U(ball eps), sampled
    x, y, xt = data
    r = lazy_limit(x, 0.3 * y, xt[:2], init="he", depth=3, eps=0.1, t=20, n_directions=4096)
    gen, n = torch.Generator().manual_seed(5), 200_000
    for i in range(2):
        chol = torch.linalg.cholesky(r.grad_cov[i] + 1e-15 * torch.eye(D, dtype=F64))
        g = r.grad_mean[i] + torch.randn(n, D, generator=gen, dtype=F64) @ chol.T
        u = torch.randn(n, D, generator=gen, dtype=F64)
        radius = 0.1 * torch.rand(n, 1, generator=gen, dtype=F64) ** (1 / D)
        v = ((g * u / u.norm(dim=1, keepdim=True)) * radius).sum(1).abs()
        assert abs(float(v.mean()) - float(r.per_point[i])) < Z * float(v.std()) / math.sqrt(n)


@pytest.mark.parametrize("model", ["network", "linearized"])
def test_lecun_and_he_share_the_kernel_part(data, model):
    # same NTK shape (Theta_lecun = 2^(1-L) Theta_he): same mean gradient at convergence and
    # with lr="auto"; the f_0 part scales by 2^(-L/2), its covariance by 2^-L
    x, y, xt = data
    for t in (None, 15):
        le = lazy_limit(x, y, xt, init="lecun", depth=5, eps=0.1, t=t, model=model)
        he = lazy_limit(x, y, xt, init="he", depth=5, eps=0.1, t=t, model=model)
        torch.testing.assert_close(le.grad_mean, he.grad_mean, rtol=1e-7, atol=1e-12)
        torch.testing.assert_close(le.grad_cov, he.grad_cov / 32, rtol=1e-7, atol=1e-12)
        assert le.p_kernel == pytest.approx(he.p_kernel, rel=1e-9)
        assert le.p_init == pytest.approx(he.p_init / 2**2.5, rel=1e-9)


def test_parts_and_bounds(data):
    x, y, xt = data
    r = lazy_limit(x, y, xt, init="he", depth=4, eps=0.1, t=50)
    assert r.p_rms**2 == pytest.approx(r.rms_kernel**2 + r.rms_init**2, rel=1e-12)
    assert r.p <= r.p_rms  # Jensen: E|X| <= sqrt(E X^2)
    assert r.p >= r.p_init  # E|a + Z| >= E|Z| for each delta (same deltas)
    assert r.p >= r.p_kernel - Z * r.p_stderr  # E|a + Z| >= |a|
    assert r.p_kernel == pytest.approx(0.1 * kappa(D) * float(r.grad_mean.norm(dim=1).mean()))
    assert r.per_point.shape == (12,) and r.grad_cov.shape == (12, D, D)
    # labels scaled by c: the kernel part scales by c, the initialization part stays
    r3 = lazy_limit(x, 3 * y, xt, init="he", depth=4, eps=0.1, t=50)
    assert r3.p_kernel == pytest.approx(3 * r.p_kernel, rel=1e-12)
    assert r3.p_init == pytest.approx(r.p_init, rel=1e-12)


def test_width_none_is_the_large_width_limit(data):
    x, y, xt = data
    inf = lazy_limit(x, y, xt, init="he", depth=3, eps=0.1, t=40)
    big = lazy_limit(x, y, xt, init="he", depth=3, eps=0.1, t=40, width=10**7)
    assert big.p == pytest.approx(inf.p, rel=1e-5) and inf.width is None
    # ntk_param: the kernels do not depend on the width, so a numeric lr is fine without it
    a = lazy_limit(x, y, xt, init="ntk_param", depth=3, eps=0.1, t=40, lr=1.0)
    b = lazy_limit(x, y, xt, init="ntk_param", depth=3, eps=0.1, t=40, lr=1.0, width=64)
    assert a.p == pytest.approx(b.p, rel=1e-9)


def test_jitter_is_stated_and_duplicates_are_survived(data):
    x, y, xt = data
    r = lazy_limit(x, y, xt, init="he", depth=3, eps=0.1)
    theta = ntk(x, x, "he", 3, 1 << 40)
    assert r.jitter == 1e-10
    assert r.jitter_abs == pytest.approx(1e-10 * float(theta.diagonal().mean()), rel=1e-12)
    dup = lazy_limit(torch.cat([x, x[:3]]), torch.cat([y, y[:3]]), xt, init="he", depth=3, eps=0.1)
    assert math.isfinite(dup.p) and dup.jitter >= 1e-10
    assert dup.p == pytest.approx(r.p, rel=1e-3)  # a repeated point adds nothing to fit


def test_training_points_as_evaluation_points(data):
    x, y, _ = data
    near = x + 1e-7 * sphere(25, D, 9)
    for model in ("network", "linearized"):
        at = lazy_limit(x, y, x, init="he", depth=3, eps=0.1, model=model)
        assert math.isfinite(at.p) and bool(torch.isfinite(at.grad_cov).all())
    # the Taylor models' limit has no kink at the training points
    off = lazy_limit(x, y, near, init="he", depth=3, eps=0.1, model="linearized")
    assert off.p == pytest.approx(at.p, rel=1e-5)


def test_result_frame_and_sweep_helper(data):
    x, y, xt = data
    r = lazy_limit(x, y, xt, init="lecun", depth=3, eps=0.05, region="sphere", t=10)
    frame = r.to_frame()
    assert frame.shape[0] == 1
    for col in ("p", "p_rms", "p_kernel", "p_init", "model", "init", "jitter", "lr", "t"):
        assert col in frame.columns
    assert frame["init"][0] == "lecun" and frame["region"][0] == "sphere"
    assert lazy_limit_p(x, y, xt, init="lecun", depth=3, eps=0.05, region="sphere", t=10) == r.p


def test_bad_inputs_say_what_to_fix(data):
    x, y, xt = data
    kw = dict(depth=3, eps=0.1)
    with pytest.raises(ValueError, match="pass width="):
        lazy_limit(x, y, xt, init="xavier", **kw)
    with pytest.raises(ValueError, match='pass width= or lr="auto"'):
        lazy_limit(x, y, xt, init="he", t=5, lr=0.1, **kw)
    with pytest.raises(ValueError, match="2 N / lambda_max"):
        lazy_limit(x, y, xt, init="he", t=5, lr=10.0, width=64, **kw)
    with pytest.raises(ValueError, match="y_train must be a float tensor"):
        lazy_limit(x, torch.zeros(25, dtype=torch.long), xt, init="he", **kw)
    with pytest.raises(ValueError, match="dimension"):
        lazy_limit(x, y, sphere(3, D + 1, 0), init="he", **kw)
    with pytest.raises(ValueError, match="model must be one of network, linearized"):
        lazy_limit(x, y, xt, init="he", model="taylor", **kw)
    with pytest.raises(ValueError, match="t must be None"):
        lazy_limit(x, y, xt, init="he", t=-1, **kw)
    with pytest.raises(ValueError, match="eps must be a positive"):
        lazy_limit(x, y, xt, init="he", depth=3, eps=0.0)


# ----------------------------------------------------------------------------- table, CLI
def test_after_training_table_rows():
    rows = after_training_table(
        n_train=30,
        n_test=20,
        inits=["lecun", "he"],
        depths=[2, 3],
        label_scales=[0.5, 2.0],
        models=["network", "linearized"],
        steps=25,
    )
    assert len(rows) == 2 * 2 * 2 * 2
    by = {(r["init"], r["depth"], r["model"], r["label_scale"]): r for r in rows}
    for key in by:
        if key[3] == 0.5:
            lo, hi = by[key], by[key[:3] + (2.0,)]
            assert hi["p_kernel"] == pytest.approx(4 * lo["p_kernel"], rel=1e-12)
            assert hi["p_init"] == pytest.approx(lo["p_init"], rel=1e-12)
    assert all(r["steps"] == 25 and r["step_ratio"] == pytest.approx(1.0) for r in rows)


def test_cli_after_training(capsys):
    code = main(
        ["theory", "--after-training", "--n-train", "20", "--n-test", "10", "--init",
         "lecun,ntk", "--depth", "2:3", "--label-scale", "0.1,3", "--format", "csv"]
    )  # fmt: skip
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 + 2 * 2 * 2 and lines[0].startswith("data,")
    assert main(["theory", "--after-training", "--depth", "2", "--init", "bogus"]) == 2
    assert "unknown init scheme" in capsys.readouterr().err
    assert main(["theory", "--depth", "2"]) == 2  # init-time table still needs its inputs
    assert "--in-dim and --width" in capsys.readouterr().err
