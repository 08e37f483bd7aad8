"""The trainer: ``lr="auto"``, divergence handling, stopping, regimes, optimizers, losses,
vmapped ensembles and input validation (DESIGN §1 "Regimes", §4).

Property tests assert an ordering or a ratio with the tolerance stated beside it; every
seed is fixed. Losses are re-computed here from the returned models (``0.5 mean (g - y)^2``
and friends) rather than read back from the trainer where that makes the check independent.
"""

from __future__ import annotations

import functools
import math
import sys
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, jacrev

import robustlab as rl
from robustlab.data import load
from robustlab.metrics import laziness
from robustlab.training import AlphaScaled, TrainConfig, train_ensemble

F64 = torch.float64


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@functools.cache
def sphere(n: int, d: int = 10, dtype: torch.dtype = torch.float32):
    """n points uniform on S^{d-1}, labels +-1 from a linear teacher (read-only: cached)."""
    return load("sphere", n_train=n, n_test=10, in_dim=d, dtype=dtype)


@functools.cache
def digits3(n: int | None = None, dtype: torch.dtype = torch.float32):
    """sklearn digits 0, 1, 2 (d = 64, int64 labels 0..2)."""
    return load("digits", classes=[0, 1, 2], n_train=n, dtype=dtype)


def net(init="he", depth=2, width=64, seed=0, d=10, k=1, **kw):
    return rl.mlp(d, width, depth, out_dim=k, init=init, generator=seeded(seed), **kw)


def outputs(model, x) -> torch.Tensor:
    with torch.no_grad():
        return model(x).reshape(x.shape[0], -1)


def mse(model, ds) -> float:
    """Independent 0.5 mean (g(x) - y)^2 for one output and float labels."""
    return float(0.5 * (outputs(model, ds.x_train)[:, 0] - ds.y_train).pow(2).mean())


def sign_accuracy(model, ds) -> float:
    return float((torch.sign(outputs(model, ds.x_train)[:, 0]) == ds.y_train).double().mean())


def rel_change(result, x) -> float:
    return laziness(result.initial_model, result.model, x, ntk=False)["rel_weight_change"]


def finite(values) -> bool:
    return all(math.isfinite(v) for v in values)


# ------------------------------------------------------------------ lr="auto" and divergence
INITS = ("he", "lecun", "ntk")
DEPTHS = (2, 3, 5, 8)
# Deep LeCun networks start with a tiny output (E f^2 ~ 2^(1-L)); fitting +-1 labels grows the
# curvature (progressive sharpening), so the Gauss-Newton step at init, 1/lambda_0, alone blew
# up within ~15 steps at depth 8. lr_backoff (undo the step, halve it, when the loss rises)
# keeps "auto" stable without any restart; the test below asserts it with max_retries=0.
AUTO_CASES = [(init, depth) for init in INITS for depth in DEPTHS]


@pytest.mark.parametrize("init,depth", AUTO_CASES)
def test_auto_lr_trains_without_divergence(init, depth):
    ds = sphere(200)
    model = net(init, depth, width=128)
    # max_retries=0: the auto step itself must be stable, with no halving to rescue it
    r = rl.train(model, ds, TrainConfig(steps=200, max_retries=0))
    assert not r.diverged, r.reason
    assert r.retries == 0 and r.steps == 200
    loss = r.history["loss"]
    assert finite(loss)
    assert mse(r.model, ds) < 0.5 * mse(model, ds)  # "substantially": at least halved
    assert loss[-1] == pytest.approx(mse(r.model, ds), rel=1e-5)


@pytest.mark.parametrize("init,depth", [(i, d) for i in INITS for d in DEPTHS])
def test_large_fixed_lr_is_detected_never_raised(init, depth):
    ds = sphere(200)
    model = net(init, depth, width=128)
    r = rl.train(model, ds, TrainConfig(lr=50.0, steps=30))  # auto gives 0.01 to 3 here
    assert r.diverged or r.retries > 0
    assert r.lr == 50.0 / 2**r.retries  # each retry halves the step
    assert len(r.history["loss"]) == r.steps + 1
    if r.diverged:
        assert r.retries == 3
        assert f"at step {r.steps} with lr {r.lr:.4g}" in r.reason
        assert "after 3 retries with halved steps" in r.reason
        last = r.history["loss"][-1]
        assert not math.isfinite(last) or last > 1e4 * r.history["loss"][0]
        # a diverged run hands back the initial weights, never NaN/huge ones
        for p, q in zip(r.model.parameters(), model.parameters(), strict=True):
            assert torch.equal(p, q)
    else:
        assert finite(r.history["loss"]) and r.reason == ""
        assert mse(r.model, ds) <= 1e4 * mse(model, ds)


def test_divergence_reason_names_the_step_and_lr():
    ds = sphere(200)
    r = rl.train(net("he", 4, width=128), ds, TrainConfig(lr=50.0, steps=30, max_retries=0))
    assert r.diverged and r.retries == 0 and 0 < r.steps < 30
    assert r.reason.startswith("training loss became ")
    assert r.reason.endswith(f"at step {r.steps} with lr 50")
    assert finite(r.history["loss"][:-1])  # every point before the blow-up was fine


def test_blow_up_on_the_last_update_is_caught():
    """The weights after the final update are checked like every other point."""
    ds = sphere(200)
    model = net("he", 4, width=128)
    r = rl.train(model, ds, TrainConfig(lr=50.0, steps=1, max_retries=0))
    assert r.diverged and r.steps == 1
    assert "at step 1 " in r.reason
    assert len(r.history["loss"]) == 2


# ------------------------------------------------------------------ stopping, history
def test_wide_network_interpolates_the_training_set():
    ds = sphere(200)
    model = net("ntk", 2, width=512)  # p = 5,632 parameters >> N = 200 points
    r = rl.train(model, ds, TrainConfig(steps=2000, target_loss=1e-3))
    assert not r.diverged
    assert r.steps < 2000  # the target was reached within the budget
    assert mse(r.model, ds) <= 1e-3 * (1 + 1e-4)
    assert sign_accuracy(r.model, ds) == 1.0
    assert r.history["accuracy"][-1] == 1.0


def test_target_loss_stops_at_the_first_step_that_reaches_it():
    ds = sphere(100)
    target, budget = 0.05, 1000
    r = rl.train(net("he", 3), ds, TrainConfig(steps=budget, target_loss=target))
    loss = r.history["loss"]
    assert r.steps < budget
    assert len(loss) == r.steps + 1
    assert loss[-1] <= target < min(loss[:-1])
    assert mse(r.model, ds) == pytest.approx(loss[-1], rel=1e-5)


def test_steps_and_history_are_consistent():
    ds = sphere(100)
    model = net("lecun", 3)
    r = rl.train(model, ds, TrainConfig(steps=25))
    assert r.steps == 25 and not r.diverged
    h = r.history
    assert h["step"] == list(range(26))  # w_0 .. w_25
    assert len(h["loss"]) == len(h["accuracy"]) == 26
    assert h["loss"][0] == pytest.approx(mse(model, ds), rel=1e-6)
    assert h["loss"][-1] == pytest.approx(mse(r.model, ds), rel=1e-6)
    assert h["accuracy"][0] == pytest.approx(sign_accuracy(model, ds), abs=1e-6)
    assert h["accuracy"][-1] == pytest.approx(sign_accuracy(r.model, ds), abs=1e-6)


def test_input_model_is_not_modified():
    ds = sphere(100)
    model = net("he", 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = rl.train(model, ds, TrainConfig(steps=20))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    for k, v in r.initial_model.state_dict().items():
        assert torch.equal(v, before[k])
    assert not torch.equal(r.model.layers[0].weight, before["layers.0.weight"])


# ------------------------------------------------------------------ regimes
@pytest.mark.parametrize("alpha", [1.0, 100.0])
def test_alpha_scaled_predictor_is_exactly_zero_at_init(alpha):
    ds = sphere(100)
    model = net("he", 3)
    g = AlphaScaled(model, model, alpha)(ds.x_train)
    assert torch.equal(g, torch.zeros_like(g))
    r = rl.train(model, ds, TrainConfig(regime="lazy", alpha=alpha, steps=5))
    # the lazy loss at step 0 is that of g = 0: 0.5 mean y^2 = 0.5 for +-1 labels
    assert r.history["loss"][0] == 0.5
    pred = outputs(r.predictor(), ds.x_train)
    want = alpha * (outputs(r.model, ds.x_train) - outputs(model, ds.x_train))
    torch.testing.assert_close(pred, want)


def test_lazy_weight_change_falls_as_alpha_grows():
    """||w_T - w_0|| / ||w_0|| ~ 1/alpha (Chizat, Oyallon & Bach 2019)."""
    ds = sphere(100)
    model = net("he", 3)
    runs = [
        rl.train(model, ds, TrainConfig(regime="lazy", alpha=a, steps=50)) for a in (1, 10, 100)
    ]
    change = [rel_change(r, ds.x_train) for r in runs]
    assert change[0] > change[1] > change[2] > 0
    for big, small in zip(change[:-1], change[1:], strict=True):
        assert 5 < big / small < 20  # "roughly 10x" per 10x alpha
    # alpha rescales the dynamics, not the fit: the loss is halved at every alpha
    assert all(r.history["loss"][-1] < 0.5 * r.history["loss"][0] for r in runs)


@pytest.mark.parametrize("regime", ["standard", "lazy"])
def test_weight_change_falls_as_width_grows(regime):
    ds = sphere(100)
    change = []
    for width in (64, 256, 1024):
        r = rl.train(net("he", 2, width=width), ds, TrainConfig(regime=regime, steps=100))
        assert r.history["loss"][-1] < 0.5 * r.history["loss"][0]
        change.append(rel_change(r, ds.x_train))
    # each 4x in width at least halves the change: the m^(-1/2) rate of lazy training or faster
    assert change[1] < 0.5 * change[0]
    assert change[2] < 0.5 * change[1]


def test_mean_field_weight_change_does_not_vanish_with_width():
    """f = (1/m) sum_j a_j relu(w_j . x) trained on the mean-field time scale (lr = eta m,
    eta = 1) moves its weights O(1) at any width; the standard network's change shrinks."""
    ds = sphere(100)
    change = {}
    for mean_field in (True, False):
        for width in (64, 1024):
            model = net("he", 2, width=width, mean_field=mean_field)
            if mean_field:
                config = TrainConfig(regime="mean_field", lr=float(width), steps=100)
            else:
                config = TrainConfig(regime="standard", steps=100)
            r = rl.train(model, ds, config)
            assert not r.diverged and r.retries == 0
            assert r.history["loss"][-1] < 0.5 * r.history["loss"][0]
            change[mean_field, width] = rel_change(r, ds.x_train)
    assert change[True, 1024] >= 0.5 * change[True, 64]
    assert change[False, 1024] < 0.25 * change[False, 64]
    assert change[True, 1024] > 10 * change[False, 1024]


def test_auto_lr_trains_a_mean_field_network_without_divergence():
    ds = sphere(100)
    model = net("he", 2, width=256, mean_field=True)
    r = rl.train(model, ds, TrainConfig(regime="mean_field", steps=100, max_retries=0))
    assert not r.diverged, r.reason
    assert r.history["loss"][-1] < 0.5 * r.history["loss"][0]
    # the step at init was too large (the curvature grows as a_j grow); back-off found one
    assert r.lr_halvings >= 1 and r.lr_final == pytest.approx(r.lr / 2**r.lr_halvings)


def test_backoff_only_touches_auto_gd_steps():
    """A fixed lr is plain GD: never halved, even when the loss rises."""
    ds = sphere(200)
    fixed = rl.train(net("lecun", 8, width=128), ds, TrainConfig(lr=2.0, steps=40, max_retries=0))
    assert fixed.lr_halvings == 0 and fixed.lr_final == 2.0
    off = TrainConfig(steps=40, max_retries=0, lr_backoff=False)
    plain = rl.train(net("lecun", 8, width=128), ds, off)
    assert plain.lr_halvings == 0 and plain.lr_final == pytest.approx(plain.lr, rel=1e-6)
    assert plain.diverged  # the step at init alone blows up at this depth (seeded)
    on = rl.train(net("lecun", 8, width=128), ds, TrainConfig(steps=40, max_retries=0))
    assert on.lr_halvings >= 1 and on.lr == plain.lr
    loss = on.history["loss"]
    assert all(b <= a * (1 + 1e-4) for a, b in zip(loss, loss[1:], strict=False))


# ------------------------------------------------------------------ optimizers and losses
@pytest.mark.parametrize(
    "kw",
    [
        dict(optimizer="sgd", batch_size=32, momentum=0.9),
        dict(optimizer="sgd", batch_size=32, momentum=0.9, lr=0.02),
        dict(optimizer="adam"),
        dict(optimizer="adam", batch_size=50),
    ],
    ids=["sgd-momentum-auto", "sgd-momentum-0.02", "adam", "adam-minibatch"],
)
def test_sgd_and_adam_train(kw):
    ds = sphere(200)
    model = net("he", 3)
    config = TrainConfig(steps=200, **kw)
    r = rl.train(model, ds, config, generator=seeded(1))
    assert not r.diverged and r.retries == 0
    assert finite(r.history["loss"])
    assert mse(r.model, ds) < 0.5 * mse(model, ds)
    if kw["optimizer"] == "adam" and "lr" not in kw:
        assert r.lr == 1e-3  # "auto" for adam
    # the minibatch order comes from the generator alone: same seed, same run
    again = rl.train(model, ds, config, generator=seeded(1))
    for p, q in zip(r.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_sgd_minibatch_order_follows_the_generator():
    ds = sphere(200)
    model = net("he", 3)
    config = TrainConfig(optimizer="sgd", batch_size=32, lr=0.05, steps=20)
    a = rl.train(model, ds, config, generator=seeded(1))
    b = rl.train(model, ds, config, generator=seeded(2))
    assert not torch.equal(a.model.layers[0].weight, b.model.layers[0].weight)


def test_logistic_loss_with_pm1_labels():
    ds = sphere(200)
    model = net("he", 3)
    r = rl.train(model, ds, TrainConfig(loss="logistic", steps=200))
    assert not r.diverged
    g0 = outputs(model, ds.x_train)[:, 0]
    want0 = float(F.softplus(-ds.y_train * g0).mean())  # mean log(1 + exp(-y g))
    assert r.history["loss"][0] == pytest.approx(want0, rel=1e-6)
    g = outputs(r.model, ds.x_train)[:, 0]
    assert float(F.softplus(-ds.y_train * g).mean()) < 0.5 * want0
    assert sign_accuracy(r.model, ds) >= 0.95


def test_cross_entropy_on_three_digit_classes():
    ds = digits3()
    model = rl.mlp(64, 64, 2, out_dim=3, init="he", generator=seeded(0))
    r = rl.train(model, ds, TrainConfig(loss="cross_entropy", steps=200))
    assert not r.diverged
    want0 = float(F.cross_entropy(outputs(model, ds.x_train), ds.y_train))
    assert r.history["loss"][0] == pytest.approx(want0, rel=1e-6)
    out = outputs(r.model, ds.x_train)
    assert float(F.cross_entropy(out, ds.y_train)) < 0.5 * want0
    acc = float((out.argmax(1) == ds.y_train).double().mean())
    assert acc >= 0.95
    assert r.history["accuracy"][-1] == pytest.approx(acc)


# ------------------------------------------------------------------ ensembles
MEMBERS = [("he", 0, 1.0), ("lecun", 1, 10.0), ("ntk", 2, 100.0), ("he", 3, 3.0)]


def members(dtype=F64):
    return [
        rl.mlp(6, 32, 3, init=init, generator=seeded(seed), dtype=dtype)
        for init, seed, _ in MEMBERS
    ]


def assert_same_result(a, b, tol=1e-10):
    assert (a.diverged, a.reason, a.steps, a.retries) == (b.diverged, b.reason, b.steps, b.retries)
    assert a.lr == pytest.approx(b.lr, rel=tol)
    assert replace(a.config, lr=1.0) == replace(b.config, lr=1.0)
    assert a.history["step"] == b.history["step"]
    for key in ("loss", "accuracy"):
        torch.testing.assert_close(
            torch.tensor(a.history[key], dtype=F64),
            torch.tensor(b.history[key], dtype=F64),
            rtol=tol,
            atol=tol,
            equal_nan=True,
        )
    for (name, p), (_, q) in zip(
        a.model.named_parameters(), b.model.named_parameters(), strict=True
    ):
        torch.testing.assert_close(p, q, rtol=tol, atol=tol, msg=name)
    assert a.model.spec == b.model.spec


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(optimizer="sgd", batch_size=16, momentum=0.5),
        dict(optimizer="adam", batch_size=24),
    ],
    ids=["gd-auto", "sgd-minibatch", "adam-minibatch"],
)
def test_ensemble_equals_training_one_by_one(kw):
    ds = sphere(64, d=6, dtype=F64)
    config = TrainConfig(regime="lazy", steps=40, **kw)
    alphas = [a for *_, a in MEMBERS]
    ens = train_ensemble(members(), ds, config, alphas=alphas, generator=seeded(7))
    for r, model, alpha in zip(ens, members(), alphas, strict=True):
        one = rl.train(
            model, ds, TrainConfig(**{**config.to_dict(), "alpha": alpha}), generator=seeded(7)
        )
        assert r.config.alpha == alpha and not r.diverged
        assert_same_result(r, one)


def test_ensemble_member_that_diverges_is_retried_like_a_single_run():
    ds = sphere(64, d=6, dtype=F64)
    config = TrainConfig(steps=30)
    models = members()[:3]
    lrs = ["auto", 50.0, "auto"]
    ens = train_ensemble(models, ds, config, lrs=lrs)
    assert ens[1].retries > 0 and ens[0].retries == ens[2].retries == 0
    for r, model, lr in zip(ens, members()[:3], lrs, strict=True):
        assert_same_result(r, rl.train(model, ds, TrainConfig(steps=30, lr=lr)))


def test_ensemble_keeps_each_members_spec():
    ds = sphere(64, d=6, dtype=F64)
    ens = train_ensemble(members(), ds, TrainConfig(steps=2))
    assert [r.model.spec.init for r in ens] == [init for init, *_ in MEMBERS]
    assert [r.initial_model.spec.init for r in ens] == [init for init, *_ in MEMBERS]


def test_ensemble_refuses_members_with_different_forward_functions():
    ds = sphere(64, d=6, dtype=F64)
    he = rl.mlp(6, 32, 3, init="he", generator=seeded(0), dtype=F64)
    ntk_param = rl.mlp(6, 32, 3, init="ntk_param", generator=seeded(1), dtype=F64)
    wider = rl.mlp(6, 64, 3, init="he", generator=seeded(2), dtype=F64)
    with pytest.raises(ValueError, match="multipliers.*separate ensembles"):
        train_ensemble([he, ntk_param], ds, TrainConfig(steps=2))
    with pytest.raises(ValueError, match="different architecture"):
        train_ensemble([he, wider], ds, TrainConfig(steps=2))


# ------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(optimizer="lbfgs"), r"optimizer: expected one of gd, sgd, adam, got 'lbfgs'"),
        (dict(loss="hinge"), r"loss: expected one of mse, logistic, cross_entropy, got"),
        (dict(regime="chaotic"), r"regime: expected one of standard, lazy, .*got 'chaotic'"),
        (dict(lr="fast"), r"lr: expected a positive number or \"auto\", got 'fast'"),
        (dict(lr=-1), r"lr: expected a positive number or \"auto\", got -1"),
        (dict(steps=0), r"steps: expected a positive integer, got 0"),
        (dict(alpha=10.0), r"alpha: only the lazy regime uses alpha.*'standard'"),
        (dict(regime="mean_field", alpha=2.0), r"alpha: only the lazy regime uses alpha"),
    ],
)
def test_bad_config_raises_a_clear_value_error(kw, message):
    # the wording of every config check (robustlab._checks), as in a sweep's train section
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kw)


def test_logistic_with_multiclass_labels_is_refused():
    ds = digits3(60)
    for k in (1, 3):
        model = rl.mlp(64, 16, 2, out_dim=k, generator=seeded(0))
        with pytest.raises(
            ValueError, match=r"logistic' needs one output and labels in \{-1, \+1\}"
        ):
            rl.train(model, ds, TrainConfig(loss="logistic", steps=2))


def test_mean_field_regime_needs_a_mean_field_network():
    with pytest.raises(
        ValueError, match=r"mean_field' needs a network built with .*mean_field=True"
    ):
        rl.train(net("he", 2), sphere(100), TrainConfig(regime="mean_field", steps=2))


@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(alphas=[1.0, 10.0]), r"alpha: only the lazy regime uses alpha"),
        (dict(lrs=["fast", 0.1]), r"lr: expected a positive number or \"auto\""),
        (dict(lrs=[0.1, -1.0]), r"lr: expected a positive number"),
        (dict(alphas=[1.0]), r"one entry per model"),
    ],
)
def test_bad_ensemble_arguments_raise_before_training(kw, message, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("training started before the arguments were validated")

    monkeypatch.setattr(sys.modules["robustlab.training.trainer"], "_fit", no_training)
    with pytest.raises(ValueError, match=message):
        train_ensemble(members()[:2], sphere(64, d=6, dtype=F64), TrainConfig(steps=10), **kw)


# ------------------------------------------------------------------ lr="auto" vs a reference
def jacobian(model, x) -> torch.Tensor:
    """Independent reference: the full (N k, p) parameter Jacobian from jacrev."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    jac = jacrev(lambda p: functional_call(model, p, (x,)).reshape(-1))(params)
    return torch.cat([jac[k].reshape(jac[k].shape[0], -1) for k in params], dim=1)


def gauss_newton_top(model, x, curvature: float) -> float:
    """lambda_max((c / N) J^T J) via a dense symmetric eigensolver."""
    J = jacobian(model, x)
    return curvature * float(torch.linalg.eigvalsh(J.T @ J)[-1]) / x.shape[0]


@pytest.mark.parametrize("init,depth", [("he", 3), ("lecun", 2), ("ntk", 4)])
def test_auto_lr_is_one_over_the_gauss_newton_top_eigenvalue(init, depth):
    ds = sphere(30, d=5, dtype=F64)
    model = rl.mlp(5, 16, depth, init=init, generator=seeded(2), dtype=F64)
    want = gauss_newton_top(model, ds.x_train, 1.0)  # mse: loss curvature 1
    r = rl.train(model, ds, TrainConfig(steps=1))
    assert 1 / r.lr == pytest.approx(want, rel=0.01)
    # alpha-scaling leaves the Gauss-Newton matrix, hence the step, unchanged
    lazy = rl.train(model, ds, TrainConfig(steps=1, regime="lazy", alpha=100.0))
    assert lazy.lr == pytest.approx(r.lr, rel=1e-12)
    # lr_probe: only the first points enter
    probe = rl.train(model, ds, TrainConfig(steps=1, lr_probe=10))
    assert 1 / probe.lr == pytest.approx(gauss_newton_top(model, ds.x_train[:10], 1.0), rel=0.01)


def test_auto_lr_uses_the_loss_curvature():
    ds = sphere(30, d=5, dtype=F64)
    model = rl.mlp(5, 16, 3, init="he", generator=seeded(3), dtype=F64)
    r = rl.train(model, ds, TrainConfig(loss="logistic", steps=1))
    assert 1 / r.lr == pytest.approx(gauss_newton_top(model, ds.x_train, 0.25), rel=0.01)
    dg = digits3(30, dtype=F64)
    model3 = rl.mlp(64, 16, 2, out_dim=3, init="he", generator=seeded(4), dtype=F64)
    r3 = rl.train(model3, dg, TrainConfig(loss="cross_entropy", steps=1))
    assert 1 / r3.lr == pytest.approx(gauss_newton_top(model3, dg.x_train, 0.5), rel=0.01)
