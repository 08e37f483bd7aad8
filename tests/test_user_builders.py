"""Sweeps over the user's own architecture (``model.family: "package.module:builder"``):
the store against the same networks built, trained and measured directly; config-time
refusals through the CLI; init 'own'; the builder's arguments; worker processes; dropout."""

from __future__ import annotations

import copy
import sys
from types import SimpleNamespace

import pytest
import torch
import yaml

import _user_models
import robustlab as rl
from robustlab.cli import main
from robustlab.models import build_user_model, reinit_by_fan_in
from robustlab.models.user import PROBE_PARAMS, check_builder
from robustlab.sweep import load, load_config, run
from robustlab.sweep.cells import check_config
from robustlab.training import TrainConfig

F64 = torch.float64
EPS, POINTS, STEPS = 0.1, 8, 10


def sweep(family: str, data: dict, **model) -> dict:
    """Two widths x two depths, He and the builder's own init, two seeds (one vmapped
    ensemble of four per shape), ten steps of gradient descent, P at init and at the end."""
    return {
        "name": "own-arch",
        "data": {"name": "sphere", "n_train": 32, "n_test": 16, **data},
        "model": {"family": family, **model},
        "grid": {"width": [4, 8], "depth": [2, 3], "init": ["he", "own"]},
        "seeds": 2,
        "train": {"steps": STEPS},
        "measure": {"eps": [EPS], "methods": ["exact"], "points": POINTS},  # at init and final
    }


def direct(builder, in_shape, width, depth, init, seed, data, **kwargs) -> dict[str, float]:
    """P of the network built, trained and measured without the sweep: the builder called
    under the seeded global RNG, its layers redrawn by fan-in from a generator with the seed
    (unless init is 'own'), trained by rl.train on the seed's data in float64."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = builder(width=width, depth=depth, in_shape=in_shape, out_dim=1, **kwargs)
    net = net.to(F64)
    if init != "own":
        reinit_by_fan_in(net, init, torch.Generator().manual_seed(seed))
    ds = rl.data.load("sphere", seed=seed, **data).to(dtype=F64)
    shaped = SimpleNamespace(x_train=ds.x_train.reshape(-1, *in_shape), y_train=ds.y_train)
    x = ds.x_test[:POINTS].reshape(-1, *in_shape)
    trained = rl.train(net, shaped, TrainConfig(steps=STEPS)).model
    return {
        stage: rl.perturbation_stability(model, x, EPS, method="exact").value
        for stage, model in (("init", net), ("final", trained))
    }


@pytest.mark.parametrize(
    ("family", "builder", "data", "model"),
    [
        ("_user_models:mlp", _user_models.mlp, {"in_dim": 6}, {"kwargs": {"act": "tanh"}}),
        ("_user_models:SmallCNN", _user_models.SmallCNN, {"in_dim": 12},
         {"in_shape": [3, 2, 2]}),
    ],
)  # fmt: skip
def test_store_holds_p_of_the_networks_built_trained_and_measured_directly(
    tmp_path, family, builder, data, model
):
    summary = run(sweep(family, data, **model), tmp_path / "s.db", executor="serial",
                  dtype="float64")  # fmt: skip
    assert (summary.total, summary.ok) == (16, 16)
    df = load(tmp_path / "s.db")
    assert len(df) == 32 and set(df["stage"]) == {"init", "final"}
    in_shape = tuple(model.get("in_shape", [data["in_dim"]]))
    kwargs = model.get("kwargs", {})
    for (w, d, init, seed), rows in df.groupby(["width", "depth", "init", "seed"]):
        want = direct(builder, in_shape, w, d, init, seed, {"n_train": 32, "n_test": 16, **data},
                      **kwargs)  # fmt: skip
        got = dict(zip(rows["stage"], rows["p_value"], strict=True))
        assert got == pytest.approx(want, rel=1e-9), (w, d, init, seed)
    own = df[df["init"] == "own"]
    assert own[["s1", "s2", "s3"]].isna().all().all()  # no scheme drew them
    assert df["theory_grad_sq"].isna().all()  # closed forms are the mlp family's
    he = df[(df["init"] == "he") & (df["depth"] == 3)]
    assert he["s3"].tolist() == pytest.approx([2.0 / w for w in he["width"]])  # last: 2/fan_in
    assert f'"family":"{family}"' in df["config_json"].iloc[0]


def test_init_own_keeps_the_builders_weights_and_leaves_the_global_rng_alone():
    before = torch.random.get_rng_state()
    a, b = (build_user_model("_user_models:mlp", (6,), 8, 3, init="own", seed=5) for _ in "ab")
    he = build_user_model("_user_models:mlp", (6,), 8, 3, init="he", seed=5)
    assert torch.equal(torch.random.get_rng_state(), before)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        ref = _user_models.mlp(8, 3, (6,), 1)  # torch's default init, from the seed
    for (name, pa), pb, pr, ph in zip(
        a.net.named_parameters(), b.net.parameters(), ref.parameters(), he.net.parameters(),
        strict=True,
    ):  # fmt: skip
        assert torch.equal(pa, pb) and torch.equal(pa, pr), name
        assert not torch.equal(pa, ph), name
    assert a.spec.variances == () and he.spec.variances == pytest.approx((2 / 6, 2 / 8, 2 / 8))
    assert he.spec.layers == ("1", "3", "5") and he.spec.fan_in == (6, 8, 8)
    assert all(not layer.bias.detach().any() for layer in (he.net[1], he.net[3], he.net[5]))


def test_a_builder_gets_only_the_arguments_it_takes_and_its_outputs_become_n_by_k():
    net = build_user_model("_user_models:scalar_mlp", (2, 3), 8, 2, init="lecun", seed=0)
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(0))
    assert net(x).shape == (5, 1)  # (N,) from the builder, (N, 1) like the built-in families
    assert net.spec.fan_in == (6, 8) and net.spec.n_params == 6 * 8 + 8 + 8 + 1
    with pytest.raises(ValueError, match=r"maps a batch of 2 inputs of shape \(6,\) to shape"):
        check_builder("_user_models:scalar_mlp", {}, (6,), 2, [(8, 2)])


def test_a_large_network_is_checked_on_the_meta_device():
    width = 4100  # 4100^2 weights: above PROBE_PARAMS, nothing of it is allocated
    assert width * width > PROBE_PARAMS
    check_builder("_user_models:mlp", {}, (6,), 1, [(width, 3)], ["he"])
    with pytest.raises(ValueError, match=r"to shape \(2, 2\); expected \(2, 1\) or \(2,\)"):
        check_builder("_user_models:wrong_shape", {}, (6,), 1, [(width, 3)])


def test_a_builder_that_needs_real_tensors_is_checked_on_the_cpu():
    check_builder("_user_models:needs_values", {}, (6,), 1, [(4, 2), (8, 3)], ["he", "own"])
    with pytest.raises(ValueError, match="draws nn.Linear and nn.Conv weights by fan-in"):
        check_builder("_user_models:no_layers", {}, (6,), 1, [(4, 2)], ["he"])
    check_builder("_user_models:no_layers", {}, (6,), 1, [(4, 2)], ["own"])


BAD_BUILDERS = [
    ("vit", "expected one of mlp, cnn, resnet or a builder 'package.module:name', got 'vit'"),
    ("nowhere_pkg_xyz.models:mlp",
     "cannot import 'nowhere_pkg_xyz.models:mlp': No module named 'nowhere_pkg_xyz'"),
    ("_user_models:missing", "cannot import '_user_models:missing': "
                             "'_user_models' has no attribute 'missing'"),
    ("_user_models:NOT_CALLABLE", "is not callable (its type is int)"),
    ("_user_models:no_depth", "must take the keyword argument depth="),
    ("_user_models:raises", "builder '_user_models:raises' raised at width=4, "
                            "depth=3: ZeroDivisionError: no depth 3 here"),
    ("_user_models:not_a_module", "returned a list at width=4, depth=2, not a torch.nn.Module"),
    ("_user_models:wrong_shape", "maps a batch of 2 inputs of shape (6,) to shape (2, 2); "
                                 "expected (2, 1) or (2,)"),
]  # fmt: skip


@pytest.mark.parametrize(("family", "message"), BAD_BUILDERS)
def test_a_bad_builder_is_refused_in_one_line_before_the_store_exists(
    tmp_path, monkeypatch, capsys, family, message
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the CLI puts the folder on it
    config = sweep(family, {"in_dim": 6})
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(config))
    status = main(["sweep", "sweep.yaml", "--store", "s.db", "--quiet"])
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert err.startswith("robustlab: error: model.family: ") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize(
    ("model", "grid", "message"),
    [
        ({"family": "mlp"}, {"init": ["own"]},
         "grid.init[0]: init 'own' keeps a builder's own weights; model family 'mlp'"),
        ({"family": "m:f"}, {"init": ["he", "ntk_param"]},
         "grid.init[1]: init 'ntk_param' has the ntk parameterization"),
        ({"family": "m:f"}, {"regime": ["mean_field"], "depth": [2]},
         "grid.regime: regime 'mean_field' needs the two-layer mean-field network, which "
         "model family 'm:f' does not have"),
        ({"family": "cnn", "kwargs": {"k": 1}}, {}, "model.kwargs: model family 'cnn' takes no"),
        ({"family": "m:f", "kwargs": {"out_dim": 3}}, {},
         "model.kwargs.out_dim: robustlab passes it"),
        ({"family": "m:f", "bias": True}, {}, "model.bias: a builder's network has the biases"),
        ({"family": "m:f", "norm": "batch"}, {}, "model.norm: model family 'm:f' takes no norm"),
    ],
)  # fmt: skip
def test_configs_a_builder_cannot_run_are_refused_with_their_path(model, grid, message):
    config = sweep("x", {"in_dim": 6})
    config["model"], config["grid"] = model, {**config["grid"], **grid}
    with pytest.raises(ValueError) as err:
        load_config(config)
    assert str(err.value).startswith(message)


def test_the_builder_and_its_kwargs_are_part_of_the_cells_config_and_hash():
    plain = load_config(sweep("_user_models:mlp", {"in_dim": 6}))
    tanh = load_config(sweep("_user_models:mlp", {"in_dim": 6}, kwargs={"act": "tanh"}))
    cnn = load_config(sweep("_user_models:SmallCNN", {"in_dim": 6}))
    assert tanh.cells()[0].config_dict()["model"]["kwargs"] == {"act": "tanh"}
    assert "kwargs" not in plain.cells()[0].config_dict()["model"]  # left out when empty
    assert len({c.cells()[0].hash for c in (plain, tanh, cnn)}) == 3
    assert load_config(tanh.to_dict()).hash == tanh.hash  # round-trips


def test_local_workers_import_the_builder_from_where_the_driver_did(tmp_path, monkeypatch):
    """The builder's folder is off sys.path when the workers start: they get it from the
    driver (check_config -> run_group's paths), or every cell would fail to import it."""
    (tmp_path / "arch_local_xyz.py").write_text("from _user_models import mlp as build\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    config = sweep("arch_local_xyz:build", {"in_dim": 6})
    config["grid"].update(width=[4], init=["he"])  # two groups: one per worker
    cfg = load_config(config)
    assert check_config(cfg) == (str(tmp_path),)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    summary = run(cfg, tmp_path / "local.db", executor="local", workers=2)
    assert (summary.total, summary.ok, summary.failed) == (4, 4, 0)
    df = load(tmp_path / "local.db")
    df = df[df["stage"] == "init"]
    for (w, d, seed), rows in df.groupby(["width", "depth", "seed"]):
        net = build_user_model(_user_models.mlp, (6,), w, d, init="he", seed=seed)
        x = rl.data.load("sphere", in_dim=6, n_train=32, n_test=16, seed=seed).x_test[:POINTS]
        p = rl.perturbation_stability(net, x, EPS, method="exact").value
        assert rows["p_value"].tolist() == pytest.approx([p], rel=1e-6)


def test_dropout_networks_train_one_at_a_time_each_as_alone_and_reproducibly():
    ds = rl.data.load("sphere", in_dim=6, n_train=32, n_test=8).to(dtype=F64)
    nets = [build_user_model("_user_models:dropout_mlp", (6,), 8, 3, init="he", seed=s,
                             dtype=F64) for s in (0, 1)]  # fmt: skip
    cfg = TrainConfig(steps=6, lr=0.05)
    before = torch.random.get_rng_state()
    together = rl.train_ensemble(nets, ds, cfg, seeds=[10, 11])
    again = rl.train_ensemble(copy.deepcopy(nets), ds, cfg, seeds=[10, 11])
    alone = [
        rl.train_ensemble([n], ds, cfg, seeds=[s])[0] for n, s in zip(nets, (10, 11), strict=True)
    ]
    assert torch.equal(torch.random.get_rng_state(), before)
    for t, a, one in zip(together, again, alone, strict=True):
        assert t.history["loss"] == a.history["loss"] == one.history["loss"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(10)
        plain = rl.train(nets[0], ds, cfg)  # the same draws from the global RNG
    assert plain.history["loss"] == together[0].history["loss"]
    other = rl.train_ensemble([nets[0]], ds, cfg, seeds=[12])[0]  # other masks, other losses
    assert other.history["loss"][1:] != together[0].history["loss"][1:]
