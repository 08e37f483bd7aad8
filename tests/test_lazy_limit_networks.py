"""The lazy limit against ensembles of robustlab networks trained on the same data (float64).

Data: 20 training and 50 test points on S^4 labelled +-1 by a random ReLU teacher
(``rl.data.load("sphere", ...)``); 100 steps of full-batch gradient descent with
``lr="auto"`` on both sides (the limit takes N / lambda_max of its NTK, each network
1 / lambda_max of its own Gauss-Newton matrix). Each ensemble is 32 networks (seeds
0..31) trained together by ``rl.train_ensemble``; its P is the mean over networks of
``rl.perturbation_stability(predictor, x_test, eps)`` (exact method: autograd gradients),
with the standard error over networks. The limit's P is Monte Carlo over deltas with
4096 directions per point; both errors enter the tolerance Z * sqrt(se_net^2 + se_lim^2)
with Z = 4.

Two limits (``model``): the Taylor models of the ``linearized`` regime converge to
``model="linearized"`` (their ReLU patterns are piecewise constant in x, so autograd
drops the derivative of the NTK's kappa_0 factors), networks trained as initialized to
``model="network"`` (the gradient of the limit function). At depth 2 under standard
parameterization the two coincide up to O(1/m).
"""

from __future__ import annotations

import math

import pytest
import torch

import robustlab as rl
from robustlab.metrics import input_gradients
from robustlab.theory import lazy_limit

F64 = torch.float64
Z, E, T, EPS = 4.0, 32, 100, 0.1


@pytest.fixture(scope="module")
def ds():
    return rl.data.load(
        "sphere", n_train=20, n_test=50, in_dim=5, seed=0, teacher="relu", dtype=F64
    )


def ensemble(ds, init: str, width: int, depth: int, regime: str):
    """(mean P, its SE, per-network mean |grad|^2 (E,)) of E trained networks."""
    nets = [
        rl.mlp(5, width, depth, init=init, generator=torch.Generator().manual_seed(s), dtype=F64)
        for s in range(E)
    ]
    results = rl.train_ensemble(nets, ds, rl.TrainConfig(regime=regime, steps=T))
    assert not any(r.diverged for r in results)
    preds = [r.predictor() for r in results]
    ps = torch.tensor([rl.perturbation_stability(p, ds.x_test, EPS).value for p in preds])
    g2 = torch.stack([input_gradients(p, ds.x_test).pow(2).sum(1).mean() for p in preds])
    return float(ps.mean()), float(ps.std()) / math.sqrt(E), g2


def limit(ds, init: str, depth: int, model: str):
    return lazy_limit(
        ds.x_train, ds.y_train, ds.x_test, init=init, depth=depth, eps=EPS, t=T, model=model,
        n_directions=4096,
    )  # fmt: skip


def test_linearized_networks_approach_the_limit_as_width_grows(ds):
    lim = limit(ds, "he", 2, "linearized")
    narrow, _, _ = ensemble(ds, "he", 16, 2, "linearized")
    wide, se, g2 = ensemble(ds, "he", 4096, 2, "linearized")
    err_narrow, err_wide = abs(narrow / lim.p - 1), abs(wide / lim.p - 1)
    assert err_wide < err_narrow, (err_narrow, err_wide)  # ~7% -> ~0.5% here
    assert err_wide < 0.10
    assert abs(wide - lim.p) < Z * math.hypot(se, lim.p_stderr), (wide, lim.p, se)
    # second moment: E mean_x |g|^2 = mean_x (|mu|^2 + tr C), exact in the limit
    rms2 = float((lim.grad_mean.pow(2).sum(1) + lim.grad_cov.diagonal(0, 1, 2).sum(1)).mean())
    assert abs(float(g2.mean()) - rms2) < Z * float(g2.std()) / math.sqrt(E)


@pytest.mark.parametrize(("init", "depth", "width"), [("he", 3, 256), ("ntk_param", 2, 1024)])
def test_linearized_networks_follow_the_fixed_pattern_limit(ds, init, depth, width):
    # where the pattern terms matter (depth 3 standard, any depth ntk_param), the Taylor
    # models' autograd P matches model="linearized" and is clearly off model="network"
    lin, net = limit(ds, init, depth, "linearized"), limit(ds, init, depth, "network")
    p, se, _ = ensemble(ds, init, width, depth, "linearized")
    assert abs(p - lin.p) < Z * math.hypot(se, lin.p_stderr), (p, lin.p, se)
    assert abs(p / lin.p - 1) < 0.10
    assert abs(p - net.p) > Z * math.hypot(se, net.p_stderr), (p, net.p, se)  # ~10% apart


def test_networks_trained_as_initialized_approach_the_network_limit(ds):
    # standard networks are only approximately lazy at finite width: the error falls with
    # width (~15% at 16, ~4% at 256) and is within 10% at 256
    lim = limit(ds, "he", 3, "network")
    narrow, _, _ = ensemble(ds, "he", 16, 3, "standard")
    wide, _, _ = ensemble(ds, "he", 256, 3, "standard")
    err_narrow, err_wide = abs(narrow / lim.p - 1), abs(wide / lim.p - 1)
    assert err_wide < err_narrow and err_wide < 0.10, (err_narrow, err_wide)
