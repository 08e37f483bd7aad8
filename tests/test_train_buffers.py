"""Training modules with buffers (BatchNorm running statistics), alone and as ensembles."""

from __future__ import annotations

import copy

import pytest
import torch

import robustlab as rl
from robustlab.sweep import load, run
from robustlab.training import TrainConfig

F64 = torch.float64


def data():
    return rl.data.load("digits", classes=[0, 1], n_train=40, n_test=20).to(dtype=F64)


def resnet(seed: int):
    return rl.resnet((1, 8, 8), 4, 2, init="he", norm="batch",
                     generator=torch.Generator().manual_seed(seed), dtype=F64)  # fmt: skip


def test_training_equals_a_plain_pytorch_loop_with_running_statistics():
    ds, net, lr, steps = data(), resnet(0), 0.05, 15
    res = rl.train(net, ds, TrainConfig(lr=lr, steps=steps))
    ref = copy.deepcopy(net).train()
    x, y = ds.x_train, ds.y_train.reshape(-1, 1)
    losses = []
    for _ in range(steps):
        loss = 0.5 * ((ref(x) - y) ** 2).sum(1).mean()
        losses.append(float(loss.detach()))
        grads = torch.autograd.grad(loss, list(ref.parameters()))
        with torch.no_grad():
            for p, g in zip(ref.parameters(), grads, strict=True):
                p -= lr * g
    assert res.history["loss"][:steps] == pytest.approx(losses, rel=1e-10)
    for (name, a), (_, b) in zip(res.model.state_dict().items(), ref.state_dict().items(),
                                 strict=True):  # fmt: skip
        assert torch.allclose(a.to(F64), b.to(F64), atol=1e-12), name
    assert float(res.model.stem_norm.running_mean.abs().sum()) > 0  # statistics moved
    assert torch.equal(net.stem_norm.running_mean, torch.zeros_like(net.stem_norm.running_mean))


def test_ensemble_with_buffers_equals_each_member_alone():
    ds, cfg = data(), TrainConfig(steps=12)
    nets = [resnet(s) for s in range(3)]
    for res, net in zip(rl.train_ensemble(nets, ds, cfg), nets, strict=True):
        one = rl.train(net, ds, cfg)
        assert res.history["loss"] == pytest.approx(one.history["loss"], rel=1e-9)
        for a, b in zip(res.model.buffers(), one.model.buffers(), strict=True):
            assert torch.allclose(a.to(F64), b.to(F64), atol=1e-12)


def test_linearized_batchnorm_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="linearized.*without buffers"):
        rl.train(resnet(0), data(), TrainConfig(steps=2, regime="linearized"))


def test_a_batchnorm_resnet_sweep_runs(tmp_path):
    cfg = {
        "name": "bn",
        "data": {"name": "digits", "classes": [0, 1], "n_train": 40, "n_test": 20},
        "model": {"family": "resnet", "norm": "batch"},
        "grid": {"width": [4], "depth": [1, 2], "init": ["he"]},
        "seeds": 2,
        "train": {"steps": 5},
        "measure": {"points": 20},
    }
    summary = run(cfg, tmp_path / "bn.db", executor="serial")
    assert summary.ok == 4 and summary.failed == 0
    df = load(tmp_path / "bn.db")
    assert (df[df["stage"] == "final"]["p_value"] > 0).all()
