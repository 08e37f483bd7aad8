"""The lazy limit's mean-only path and label-scale batch (lazy_limit(parts=, label_scale=)).

References: the full computation (parts=("mean", "cov")), and autograd through the public
ntk() of the kernel-regression function x -> Theta(x, X) alpha, alpha = Theta(X, X)^{-1} y
(converged) or iterated by gradient descent on the kernel model (t steps); float64.
"""

from __future__ import annotations

import math

import pytest
import torch

import robustlab.theory.lazy_moments as moments
from _spheres import D, lazy_data, sphere
from robustlab.theory import kappa, lazy_limit, ntk

COV_FIELDS = ("p", "p_stderr", "p_rms", "p_init", "rms_init", "train_loss")


def same_row(a: dict, b: dict) -> bool:
    """Equal rows, NaN equal to NaN (the mean-only path's absent numbers)."""
    nan = [k for k, v in a.items() if isinstance(v, float) and math.isnan(v)]
    return a.keys() == b.keys() and all(k in nan and math.isnan(b[k]) or a[k] == b[k] for k in a)


@pytest.fixture(scope="module")
def data():
    return lazy_data()


@pytest.mark.parametrize("model", ["network", "linearized"])
@pytest.mark.parametrize("t", [None, 15])
def test_mean_only_is_the_full_computations_mean(data, model, t):
    x, y, xt = data
    kw = dict(init="he", depth=4, eps=0.1, t=t, model=model, region="sphere")
    full = lazy_limit(x, y, xt, **kw)
    mean = lazy_limit(x, y, xt, parts=("mean",), **kw)
    torch.testing.assert_close(mean.grad_mean, full.grad_mean, rtol=1e-10, atol=1e-13)
    for k in ("p_kernel", "rms_kernel"):
        assert getattr(mean, k) == pytest.approx(getattr(full, k), rel=1e-12)
    assert mean.p_at_init == full.p_at_init
    assert (mean.jitter, mean.jitter_abs, mean.lr) == (full.jitter, full.jitter_abs, full.lr)
    assert mean.step_ratio == full.step_ratio
    # what needs the covariance is absent, never the kernel part under another name
    assert all(math.isnan(getattr(mean, k)) for k in COV_FIELDS)
    assert mean.grad_cov is None and mean.per_point is None and mean.n_directions == 0
    assert mean.parts == ("mean",) and full.parts == ("mean", "cov")
    assert mean.p_kernel == pytest.approx(
        0.1 * kappa(D, "sphere") * float(mean.grad_mean.norm(dim=1).mean()), rel=1e-12
    )


def test_mean_only_is_exact_at_and_near_training_points(data):
    # the pairs with 1 - rho < 0.05 take u_j - u from differences: at x = x_j the kink's
    # symmetric derivative, 1e-7 away the exact slope, as in the full computation
    x, y, _ = data
    near = x + 1e-7 * sphere(25, D, 9)
    for pts in (x, near):
        for model in ("network", "linearized"):
            kw = dict(init="he", depth=3, eps=0.1, model=model)
            full = lazy_limit(x, y, pts, **kw)
            mean = lazy_limit(x, y, pts, parts="mean", **kw)
            torch.testing.assert_close(mean.grad_mean, full.grad_mean, rtol=1e-9, atol=1e-12)


def test_mean_only_against_autograd_of_kernel_regression(data):
    # mu(x) = grad_x Theta(x, X) alpha, by autograd through the public ntk(), converged
    # (alpha = Theta^{-1} y, no jitter); after t steps of gradient descent: in
    # test_lazy_limit.py::test_finite_t_is_gradient_descent_on_the_kernel_model
    x, y, xt = data
    depth, m = 4, 512
    alpha = torch.linalg.solve(ntk(x, x, "he", depth, m), y)
    xr = xt.clone().requires_grad_(True)
    (mu,) = torch.autograd.grad((ntk(xr, x, "he", depth, m) @ alpha).sum(), xr)
    r = lazy_limit(x, y, xt, init="he", depth=depth, eps=0.1, width=m, jitter=0.0, parts=("mean",))
    torch.testing.assert_close(r.grad_mean, mu, rtol=1e-8, atol=1e-11)


@pytest.mark.parametrize("parts", [("mean",), ("mean", "cov")])
def test_label_scale_batch_is_separate_calls(data, parts, monkeypatch):
    x, y, xt = data
    kw = dict(init="lecun", depth=3, eps=0.1, t=30, parts=parts)
    scales = [0.1, 1.0, 3.0, -2.0, 0.0]
    calls = []
    spectral = moments._spectral
    monkeypatch.setattr(moments, "_spectral", lambda *a: calls.append(1) or spectral(*a))
    batch = lazy_limit(x, y, xt, label_scale=scales, **kw)
    assert len(calls) == 1  # one eigendecomposition serves every c
    assert isinstance(batch, tuple) and [r.label_scale for r in batch] == scales
    for c, r in zip(scales, batch, strict=True):
        one = lazy_limit(x, y, xt, label_scale=c, **kw)
        assert same_row(r.row(), one.row())  # every scalar field, bit for bit
        torch.testing.assert_close(r.grad_mean, one.grad_mean, rtol=0, atol=0)
        # and what training on c y itself gives, to rounding
        direct = lazy_limit(x, c * y, xt, **kw)
        torch.testing.assert_close(r.grad_mean, direct.grad_mean, rtol=1e-12, atol=1e-15)
        for k in ("p_kernel", "rms_kernel") + (COV_FIELDS if "cov" in parts else ()):
            assert getattr(r, k) == pytest.approx(getattr(direct, k), rel=1e-11, abs=1e-15)
    if "cov" in parts:  # c = 0: only f_0's remainder is left
        assert batch[-1].p == pytest.approx(batch[-1].p_init, rel=1e-12)
        assert batch[-1].p_kernel == 0.0


def test_converged_batch_uses_one_cholesky(data, monkeypatch):
    x, y, xt = data
    calls = []
    chol = moments._cholesky
    monkeypatch.setattr(moments, "_cholesky", lambda *a: calls.append(1) or chol(*a))
    rs = lazy_limit(x, y, xt, init="he", depth=3, eps=0.1, parts="mean", label_scale=(1, 2))
    assert len(calls) == 1
    torch.testing.assert_close(rs[1].grad_mean, 2 * rs[0].grad_mean, rtol=0, atol=0)


def test_mean_only_row_says_what_it_holds(data):
    x, y, xt = data
    r = lazy_limit(
        x, y, xt, init="he", depth=3, eps=0.1, parts=["mean"], label_scale=torch.tensor(2.0)
    )
    row = r.row()
    assert row["parts"] == ("mean",) and row["label_scale"] == 2.0
    assert math.isnan(row["p"]) and row["p_kernel"] > 0
    assert r.to_frame().shape[0] == 1


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(parts=("mean", "bogus")), "parts must name some of mean, cov, got 'bogus'"),
        (dict(parts=("cov",)), 'parts must include "mean"'),
        (dict(parts=()), 'parts must include "mean"'),
        (dict(parts=3), "parts must be a tuple of names from mean, cov, got 3"),
        (dict(label_scale=[]), "label_scale must not be an empty sequence"),
        (dict(label_scale=[1.0, math.nan]), "label scales must be finite numbers, got nan"),
        (dict(label_scale=math.inf), "label scales must be finite numbers, got inf"),
        (dict(label_scale=[True]), "label scales must be finite numbers, got True"),
        (dict(label_scale="1,2"), "label_scale must be a number or a sequence of numbers"),
    ],
)
def test_bad_parts_and_label_scales_are_one_line_errors(data, kw, match):
    x, y, xt = data
    with pytest.raises(ValueError, match=match) as err:
        lazy_limit(x, y, xt, init="he", depth=3, eps=0.1, **kw)
    assert "\n" not in str(err.value)
