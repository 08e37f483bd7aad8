"""The linearized regime: f_lin(x; w) = f(x; w0) + J_w f(x; w0) (w - w0) (Lee et al. 2019)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import functional_call, jvp

import robustlab as rl
from robustlab.metrics import laziness
from robustlab.sweep import load, run
from robustlab.training import Linearized, TrainConfig, get_regime

F64 = torch.float64


def data(n=40, d=6, seed=0):
    return rl.data.load("sphere", in_dim=d, n_train=n, n_test=20, teacher="relu", seed=seed).to(
        dtype=F64
    )


def net(width=32, depth=3, init="he", seed=0, d=6):
    return rl.mlp(d, width, depth, init=init, generator=torch.Generator().manual_seed(seed),
                  dtype=F64)  # fmt: skip


def test_output_at_w0_is_the_network_and_its_gradient_flows():
    f = net()
    x = torch.randn(7, 6, dtype=F64)
    lin = Linearized(f, f)
    assert torch.equal(lin(x), f(x))
    assert [n for n, _ in lin.named_parameters()] == [f"model.{n}" for n, _ in f.named_parameters()]
    g_lin = rl.metrics.input_gradients(lin, x)
    assert torch.allclose(g_lin, rl.metrics.input_gradients(f, x), atol=1e-12)


def test_training_matches_a_plain_jvp_reference_step_for_step():
    ds, f = data(), net()
    lr, steps = 0.05, 25
    res = rl.train(f, ds, TrainConfig(regime="linearized", lr=lr, steps=steps))
    w0 = {k: v.detach().clone() for k, v in f.named_parameters()}
    w = {k: v.clone() for k, v in w0.items()}
    x, y = ds.x_train, ds.y_train.reshape(-1, 1)
    losses = []
    for t in range(steps + 1):
        w = {k: v.detach().requires_grad_(True) for k, v in w.items()}
        tangent = {k: w[k] - w0[k] for k in w}
        out0, dout = jvp(lambda p: functional_call(f, p, (x,)), (w0,), (tangent,))
        loss = 0.5 * ((out0 + dout - y) ** 2).sum(1).mean()
        losses.append(float(loss.detach()))
        if t < steps:
            grads = torch.autograd.grad(loss, list(w.values()))
            w = {k: v - lr * g for (k, v), g in zip(w.items(), grads, strict=True)}
    assert res.history["loss"] == pytest.approx(losses, rel=1e-10, abs=1e-14)
    for k, v in res.model.named_parameters():
        assert torch.allclose(v, w[k].detach(), atol=1e-12)
    assert torch.allclose(res.predictor()(ds.x_test), Linearized(res.model, f)(ds.x_test))


def test_weight_change_falls_with_width_while_the_ntk_stays_constant():
    ds = data(n=30)
    cfg = TrainConfig(regime="linearized", steps=200)
    reg = get_regime("linearized")
    changes = []
    for width in (32, 512):
        res = rl.train(net(width=width), ds, cfg)
        before, after = reg.laziness_pair(res.model, res.initial_model, 1.0)
        lz = laziness(before, after, ds.x_train, probe=12)
        assert lz["ntk_change"] == 0.0  # J_w f(x; w0) does not depend on w: exactly
        assert res.history["loss"][-1] < 0.5 * res.history["loss"][0]
        changes.append(lz["rel_weight_change"])
        # the network itself, at the same weights, has moved its NTK
        assert laziness(res.initial_model, res.model, ds.x_train, probe=12)["ntk_change"] > 0
    assert changes[1] < 0.5 * changes[0]


def test_ensemble_with_per_model_data_equals_each_model_alone():
    sets = [data(seed=s) for s in range(3)]
    nets = [net(seed=s, init=i) for s, i in zip(range(3), ("he", "lecun", "ntk"), strict=True)]
    cfg = TrainConfig(regime="linearized", steps=40, target_loss=1e-3)
    together = rl.train_ensemble(nets, sets, cfg)
    for f, ds, res in zip(nets, sets, together, strict=True):
        alone = rl.train(f, ds, cfg)
        assert res.lr == pytest.approx(alone.lr, rel=1e-12)
        assert res.history["loss"] == pytest.approx(alone.history["loss"], rel=1e-9)


def test_checkpoint_keeps_the_weights_where_the_loss_first_reached_its_level():
    ds = data()
    res = rl.train(net(), ds, TrainConfig(steps=300, target_loss=0.01, checkpoint_loss=0.1))
    k = res.checkpoint_step
    assert k is not None and 0 < k < res.steps
    losses = res.history["loss"]
    assert losses[k] <= 0.1 < losses[k - 1]
    with torch.no_grad():
        out = res.checkpoint_predictor()(ds.x_train).reshape(-1)
    assert 0.5 * float(((out - ds.y_train) ** 2).mean()) == pytest.approx(losses[k], rel=1e-9)


def test_sweep_pairs_standard_runs_with_their_linearized_twins(tmp_path):
    config = {
        "name": "twins",
        "data": {"name": "sphere", "in_dim": 6, "n_train": 30, "n_test": 30, "teacher": "relu"},
        "grid": {
            "width": [64],
            "depth": [3],
            "init": ["he"],
            "regime": ["standard", "linearized"],
        },  # fmt: skip
        "seeds": 2,
        "train": {"steps": 60, "lr": 0.05},
        "measure": {"points": 30, "point_sets": ["test", "train"]},
    }
    run(config, tmp_path / "r.db", executor="serial", dtype="float64")
    df = load(tmp_path / "r.db")
    final = df[df["stage"] == "final"]
    std, lin = final[final["regime"] == "standard"], final[final["regime"] == "linearized"]
    assert set(std["model"]) == {"network"} and set(lin["model"]) == {"linearized"}
    assert set(final["points"]) == {"test", "train"}
    assert std["grad_lin_dev"].between(0, math.inf).all() and lin["grad_lin_dev"].isna().all()
    assert (lin["ntk_change"] == 0).all() and (std["ntk_change"] > 0).all()
    # a seed draws its own data: the two seeds' initial training fits differ in label scale
    assert std.groupby("seed")["y_f0_ratio"].first().nunique() == 2
    assert set(df["data_seed"]) == {0, 1}
    # the twin deviation, recomputed by hand for seed 0
    ds = rl.data.load("sphere", in_dim=6, n_train=30, n_test=30, teacher="relu", seed=0)
    ds = ds.to(dtype=F64)
    f = rl.mlp(6, 64, 3, init="he", generator=torch.Generator().manual_seed(0), dtype=F64)
    cfg = TrainConfig(steps=60, lr=0.05)
    std_res = rl.train(f, ds, cfg)
    lin_res = rl.train(f, ds, TrainConfig(steps=60, lr=0.05, regime="linearized"))
    x = ds.x_test
    g_t, g_0 = (rl.metrics.input_gradients(m, x) for m in (std_res.model, f))
    g_lin = rl.metrics.input_gradients(lin_res.predictor(), x)
    want = float(torch.linalg.norm(g_t - g_lin) / torch.linalg.norm(g_t - g_0))
    got = std[(std["seed"] == 0) & (std["points"] == "test")]["grad_lin_dev"].iloc[0]
    assert got == pytest.approx(want, rel=1e-8)
