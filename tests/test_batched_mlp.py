"""The hand-written batched MLP step against the torch.func (vmap of grad_and_value) step.

Both train the same ensembles in float64; loss and accuracy histories and final weights must
agree to 1e-9 (they agree to ~1e-13: only the order of float operations differs). The NTK
products behind ``lr="auto"`` are checked against the explicit empirical NTK, and ``lr="auto"``
resolved once and handed on against resolving it in the ensemble.
"""

from __future__ import annotations

import math
import sys
from dataclasses import replace

import pytest
import torch
from torch import nn

import robustlab as rl
from robustlab.metrics import empirical_ntk
from robustlab.sweep.measures import PROBE_MIN, PROBE_POINTS, PROBE_SHARE, probe_points
from robustlab.training import TrainConfig, train_ensemble
from robustlab.training.batched_mlp import BatchedMLPStep
from robustlab.training.ensemble import ensemble_data, stack
from robustlab.training.lr import auto_lr, ntk_top_eigenvalue
from robustlab.training.regimes import get_regime
from robustlab.training.stacked_mlp import chunk_size, ntk_product
from robustlab.training.step import Step, make_step
from robustlab.training.trainer import resolve_auto_lr

F64 = torch.float64
TOL = 1e-9
stacked_mlp = sys.modules["robustlab.training.stacked_mlp"]  # rl.train is also a function
lr_module = sys.modules["robustlab.training.lr"]


def sphere(seed=0, n=24, d=5):
    return rl.data.load("sphere", n_train=n, n_test=4, in_dim=d, seed=seed, dtype=F64)


def digits(n=30):
    return rl.data.load("digits", classes=[0, 1, 2], n_train=n, dtype=F64)


def nets(E, d=5, width=12, depth=3, k=1, init="he", bias=False, mean_field=False):
    return [
        rl.mlp(
            d,
            width,
            depth,
            out_dim=k,
            init=init,
            bias=bias,
            mean_field=mean_field,
            dtype=F64,
            generator=torch.Generator().manual_seed(s),
        )  # fmt: skip
        for s in range(E)
    ]


def both(models, data, cfg, **kw):
    """(vmap results, batched results) of one ensemble, same generator seed."""
    out = []
    for step in ("vmap", "batched_mlp"):
        gen = torch.Generator().manual_seed(7)
        out.append(train_ensemble(models, data, cfg, step=step, generator=gen, **kw))
    return out


def assert_same(ref, got):
    for a, b in zip(ref, got, strict=True):
        assert (a.steps, a.retries, a.diverged, a.lr, a.lr_halvings) == (
            b.steps, b.retries, b.diverged, b.lr, b.lr_halvings)  # fmt: skip
        first = 0
        if get_regime(a.config.regime).alpha_scaled:
            # g = alpha (f - f0) is 0 at w0: sign(0) matches no +-1 label. The batched step
            # takes f0 from its own forward, so g = 0 exactly; the one-model vmap step
            # subtracts a vmapped f0 from a plain forward, whose rounding noise has a sign
            if a.model.spec.out_dim == 1:
                assert b.history["accuracy"][0] == 0.0
            first = 1
        for key in ("loss", "accuracy"):
            u, v = torch.tensor(a.history[key][first:]), torch.tensor(b.history[key][first:])
            assert torch.equal(u.isnan(), v.isnan())
            assert torch.allclose(u, v, rtol=0, atol=TOL, equal_nan=True), key
        for (n1, p1), (n2, p2) in zip(
            a.model.named_parameters(), b.model.named_parameters(), strict=True
        ):
            assert n1 == n2 and torch.allclose(p1, p2, rtol=0, atol=TOL), n1


REGIMES = ["standard", "lazy", "linearized", "mean_field"]


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("per_model", [False, True], ids=["shared", "per-model"])
@pytest.mark.parametrize("optimizer", ["gd", "sgd"])
@pytest.mark.parametrize("E", [1, 3])
def test_equals_the_vmap_step(regime, per_model, optimizer, E):
    mf = regime == "mean_field"
    # NTK parameterization: forward multipliers c_l != 1 (mean field: c_L = 1/m); bias on
    # the multi-member runs
    init = "he" if mf else "ntk_param"
    models = nets(E, depth=2 if mf else 3, init=init, bias=E > 1, mean_field=mf)
    data = [sphere(s) for s in range(E)] if per_model else sphere()
    sgd = optimizer == "sgd"
    cfg = TrainConfig(
        optimizer=optimizer, lr=0.05 if sgd else "auto", steps=12, regime=regime,
        batch_size=8 if sgd else None, momentum=0.5 if sgd else 0.0,
        alpha=4.0 if regime == "lazy" else 1.0,
    )  # fmt: skip
    alphas = [4.0, 1.0, 30.0][:E] if regime == "lazy" else None
    assert_same(*both(models, data, cfg, alphas=alphas))


@pytest.mark.parametrize("loss", ["mse", "logistic", "cross_entropy"])
@pytest.mark.parametrize("regime", ["standard", "lazy", "linearized"])
def test_every_loss(loss, regime):
    k = 3 if loss == "cross_entropy" else 1
    data = digits() if k > 1 else sphere()
    models = nets(2, d=data.x_train.shape[1], k=k, bias=True)
    cfg = TrainConfig(loss=loss, lr="auto", steps=10, regime=regime)
    assert_same(*both(models, data, cfg))


def test_mse_on_class_labels_and_regression_targets():
    """One-hot targets for k > 1 integer labels; float targets of more than one magnitude
    give NaN accuracy (per model when only some members' labels are +-c)."""
    cfg = TrainConfig(lr=0.05, steps=6)
    assert_same(*both(nets(2, d=64, k=3), digits(), cfg))
    reg = [sphere(s) for s in range(2)]
    y = reg[1].y_train
    reg[1] = replace(reg[1], y_train=y * (1 + torch.arange(len(y), dtype=y.dtype) / len(y)))
    ref, got = both(nets(2), reg, cfg)
    assert_same(ref, got)
    assert not math.isnan(got[0].history["accuracy"][0])
    assert math.isnan(got[1].history["accuracy"][0])
    scaled = [sphere(0), replace(sphere(1), y_train=sphere(1).y_train * 0.5)]  # +-c labels
    ref, got = both(nets(2), scaled, cfg)
    assert_same(ref, got)
    assert all(not math.isnan(r.history["accuracy"][0]) for r in got)


def test_chunks_of_members_change_nothing(monkeypatch):
    """Members run in chunks sized by CHUNK_BYTES; one member per chunk equals one chunk."""
    models = nets(5, bias=True, init="ntk_param")
    for regime in ("standard", "linearized", "lazy"):
        cfg = TrainConfig(lr="auto", steps=8, regime=regime)
        ref = train_ensemble(models, sphere(), cfg, alphas=[1.0, 2, 3, 4, 5] if regime == "lazy"
                             else None, step="vmap")  # fmt: skip
        monkeypatch.setattr(stacked_mlp, "CHUNK_BYTES", 1)
        got = train_ensemble(models, sphere(), cfg, alphas=[1.0, 2, 3, 4, 5] if regime == "lazy"
                             else None, step="batched_mlp")  # fmt: skip
        monkeypatch.undo()
        assert_same(ref, got)
    for hidden in (16, 5 * 64, 5 * 128, 10 * 1024):  # the largest chunk within CHUNK_BYTES
        e, member = chunk_size(24, 794, hidden, 4), 794 * hidden * 4
        assert 1 <= e <= 24 and (e == 1 or e * member <= stacked_mlp.CHUNK_BYTES)
        assert e == 24 or (e + 1) * member > stacked_mlp.CHUNK_BYTES
    assert chunk_size(24, 794, 0, 4) == 24  # no hidden layer
    assert chunk_size(24, 794, 5 * 64, 4, "meta") == 24  # chunks are for CPU caches only


def test_divergence_and_retries_match():
    models = nets(3)
    cfg = TrainConfig(lr=50.0, steps=20, max_retries=2)
    ref, got = both(models, sphere(), cfg)
    assert all(r.retries > 0 for r in got)
    assert_same(ref, got)


def test_the_step_is_picked_by_model():
    ds = sphere()
    mlps = nets(2)
    seq = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 1)).double()
    cfg = TrainConfig(lr=0.1, steps=2)

    def step_of(model, kind):
        st = stack([model])
        data = ensemble_data(ds, 1, model, get_regime("standard"), st, F64, "cpu")
        return make_step(model, cfg, data, st, torch.ones(1, dtype=F64), False, kind)

    assert isinstance(step_of(mlps[0], "auto"), BatchedMLPStep)
    assert isinstance(step_of(mlps[0], "vmap"), Step)
    assert isinstance(step_of(seq, "auto"), Step)
    with pytest.raises(ValueError, match="needs a robustlab MLP"):
        step_of(seq, "batched_mlp")
    with pytest.raises(ValueError, match="step: unknown value 'fast'; choices: auto, vmap"):
        train_ensemble(mlps, ds, cfg, step="fast")


# ------------------------------------------------------------------ lr="auto"
@pytest.mark.parametrize("per_model", [False, True], ids=["shared", "per-model"])
def test_ntk_product_is_the_empirical_ntk(per_model):
    models = nets(3, k=3, bias=True, init="ntk_param")
    st = stack(models)
    x = torch.randn(3, 9, 5, dtype=F64) if per_model else torch.randn(9, 5, dtype=F64)
    u = torch.randn(3, 9, 3, dtype=F64)
    ku = ntk_product(models[0], st, x, per_model)(u)
    for i, m in enumerate(models):
        K = empirical_ntk(m, x[i] if per_model else x)  # (9 k, 9 k), explicit
        ref = (K @ u[i].reshape(-1)).reshape(9, 3)
        assert torch.allclose(ku[i], ref, rtol=1e-12, atol=1e-12 * float(ref.abs().max()))


def test_power_iteration_finds_the_top_eigenvalue():
    models = nets(2, depth=4)
    x = sphere().x_train
    lam = ntk_top_eigenvalue(models[0], stack(models), x, iters=300, rtol=1e-13)
    for i, m in enumerate(models):
        top = torch.linalg.eigvalsh(empirical_ntk(m, x))[-1]
        assert float(lam[i]) == pytest.approx(float(top), rel=1e-9)


def test_converged_members_stop_and_keep_their_value(monkeypatch):
    """Members converge after different numbers of products (two-layer nets under the
    ``ntk`` init: 10 to 30 here); with one member per chunk the converged ones are skipped, and
    each value is the one the member gets alone."""
    monkeypatch.setattr(stacked_mlp, "CHUNK_BYTES", 1)
    models = nets(4, d=5, width=16, depth=2, init="ntk")
    x = sphere(n=40).x_train
    lam = ntk_top_eigenvalue(models[0], stack(models), x)
    alone = [float(ntk_top_eigenvalue(m, stack([m]), x)[0]) for m in models]
    assert lam.tolist() == alone


def test_auto_lr_runs_only_the_members_asked_for():
    """A subset's power iteration gives the values the whole stack gives (float64), None
    elsewhere; a member that differs in a single weight gets its own value."""
    a, b = nets(2)
    c = nets(1)[0]
    with torch.no_grad():
        c.layers[1].weight[0, 0] += 1e-12
    models = [a, b, nets(1)[0], c]  # the third equals a; c is a bar a one entry
    x = sphere().x_train
    cfg = TrainConfig(lr="auto", power_iters=20)
    lrs = auto_lr(a, stack(models), x, cfg, [True] * 4)
    alone = [auto_lr(m, stack([m]), x, cfg, [True])[0] for m in models]
    assert lrs == pytest.approx(alone, rel=1e-12)
    assert lrs[0] == lrs[2] and lrs[3] != lrs[0]
    assert auto_lr(a, stack(models), x, cfg, [False, True, False, True]) == [
        None,
        lrs[1],
        None,
        lrs[3],
    ]


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_auto_lr_resolved_once_and_handed_on_trains_the_same(monkeypatch, dtype):
    """``resolve_auto_lr`` gives what the ensemble resolves itself, bit for bit, and an
    ensemble handed those values (``auto_lrs``) runs no power iteration and trains the same
    bits; the members still back off like ``auto`` ones."""
    models = [m.to(dtype) for m in nets(3, init="ntk_param")]
    data = [rl.data.load("sphere", n_train=24, n_test=4, in_dim=5, seed=s, dtype=dtype)
            for s in range(3)]  # fmt: skip
    cfg = TrainConfig(lr="auto", steps=6)
    ref = train_ensemble(models, data, cfg)
    lrs = resolve_auto_lr(models, data, cfg)
    assert lrs == [r.lr for r in ref]
    assert resolve_auto_lr(models, data, cfg, [False, True, False]) == [None, lrs[1], None]
    calls = []
    monkeypatch.setattr(lr_module, "ntk_top_eigenvalue", lambda *a, **k: calls.append(a))
    got = train_ensemble(models, data, cfg, auto_lrs=lrs)
    assert calls == []
    for r, g in zip(ref, got, strict=True):
        assert g.lr == r.lr and g.history == r.history and g.lr_halvings == r.lr_halvings


@pytest.mark.parametrize(
    "grid",
    [{"regime": ["standard", "linearized"]}, {"regime": ["lazy"], "alpha": [1.0, 10.0]}],
    ids=["twins", "alphas"],
)
def test_sweep_resolves_auto_lr_once_per_initial_network(tmp_path, monkeypatch, grid):
    """Twins (one w0, two regimes, two ensembles) and alpha variants (one w0, one ensemble)
    run one power iteration per initial network, and start from the same step."""
    members = []
    original = lr_module.ntk_top_eigenvalue

    def spy(model, stacked, *args, **kw):
        members.append(next(iter(stacked.values())).shape[0])
        return original(model, stacked, *args, **kw)

    monkeypatch.setattr(lr_module, "ntk_top_eigenvalue", spy)
    cfg = {
        "name": "once",
        "data": {"name": "sphere", "in_dim": 5, "n_train": 20, "n_test": 5},
        "grid": {"width": [8], "depth": [2], "init": ["he"], **grid},
        "seeds": 2,
        "train": {"lr": "auto", "steps": 3},
        "measure": {"eps": [0.1], "methods": ["exact"], "at": ["final"], "laziness": False},
    }
    summary = rl.sweep.run(rl.sweep.load_config(cfg), tmp_path / "s.db", executor="serial")
    assert summary.ok == 4
    assert members == [2]  # the two seeds' networks, in one stack
    lr = rl.sweep.load(tmp_path / "s.db").groupby("seed")["lr"].unique()
    assert [len(v) for v in lr] == [1, 1]


# ------------------------------------------------------------------ the NTK probe's size
def test_probe_is_sized_by_its_cost():
    sizes = [probe_points(n, t, k) for n, t, k in [(794, 200, 1), (794, 200, 10), (100, 50, 10)]]
    assert sizes == [PROBE_POINTS, 15, PROBE_MIN]
    for n_train, steps, k in [(794, 200, 10), (300, 40, 3), (1000, 500, 10)]:
        n = probe_points(n_train, steps, k)
        if PROBE_MIN < n < PROBE_POINTS:  # the largest probe within the share of training
            budget = PROBE_SHARE * 6 * n_train * steps
            assert 20 * n * n * k <= budget < 20 * (n + 1) ** 2 * k
    ks = [probe_points(794, 200, k) for k in (1, 2, 4, 10, 100)]
    assert ks == sorted(ks, reverse=True)
