"""The sweep's sections are the library's own configs, read by one generic reader."""

from __future__ import annotations

import copy
import pickle

import pytest

import robustlab as rl
from robustlab._checks import ConfigError
from robustlab._sections import at_path
from robustlab.data.config import DataConfig
from robustlab.sweep.config import DataSpec, TrainSpec, load_config
from robustlab.training import TrainConfig

BASE = {
    "name": "s",
    "data": {"name": "sphere", "n_train": 20, "n_test": 10},
    "grid": {"width": [4], "depth": [2], "regime": ["standard", "lazy"], "alpha": [10]},
}


def config(**sections):
    doc = copy.deepcopy(BASE)
    doc.update(sections)
    return load_config(doc)


def test_train_section_is_a_train_config_with_its_defaults():
    c = config()
    assert isinstance(c.train, TrainConfig)
    for field in ("steps", "lr", "lr_backoff", "power_iters", "max_retries", "blowup"):
        assert getattr(c.train, field) == getattr(TrainConfig(), field), field
    # options the YAML could not set before: now every TrainConfig field but regime/alpha
    c = config(train={"lr_backoff": False, "power_iters": 7, "lr_probe": 64})
    run = {cell.regime: cell.train_config() for cell in c.cells()}
    assert run["lazy"] == TrainConfig(
        lr_backoff=False, power_iters=7, lr_probe=64, regime="lazy", alpha=10.0
    )
    assert type(run["standard"]) is TrainConfig and run["standard"].alpha == 1.0
    assert c.to_dict()["train"]["power_iters"] == 7
    assert "lr_backoff" not in config().to_dict()["train"]  # unset additions keep hashes


@pytest.mark.parametrize(
    "train,message",
    [
        ({"regime": "lazy"}, "train: key 'regime' is not set here: regime and alpha are grid"),
        ({"alpha": 3}, "train: key 'alpha' is not set here: regime and alpha are grid axes"),
        ({"power_iters": 0}, "train.power_iters: expected a positive integer, got 0"),
        ({"lr_backoff": "yes"}, "train.lr_backoff: expected true or false, got 'yes'"),
        (
            {"target_loss": 0.1, "checkpoint_loss": 0.05},
            "train.checkpoint_loss: must be above target_loss",
        ),
    ],
)
def test_train_section_errors_carry_the_yaml_path(train, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        config(train=train)


def test_the_same_check_in_python_names_the_field():
    with pytest.raises(ValueError, match="^power_iters: expected a positive integer"):
        TrainConfig(power_iters=0)
    with pytest.raises(ValueError, match="^train.power_iters: expected a positive integer"):
        TrainSpec(power_iters=0)
    with pytest.raises(ValueError, match="^train.regime: set regimes and alpha in the grid"):
        TrainSpec(regime="lazy", alpha=2.0)


def test_data_section_is_the_data_layers_config():
    c = config(data={"name": "sphere", "n_train": 20, "label_noise": 0.1, "task": "regression"})
    assert isinstance(c.data, DataConfig)
    draw = c.data.draw(3)
    assert type(draw) is DataConfig and draw.seed == 3
    ds = draw.load()
    ref = rl.data.load("sphere", n_train=20, label_noise=0.1, task="regression", seed=3)
    assert ds.x_train.equal(ref.x_train) and ds.y_train.equal(ref.y_train)
    # the data layer's bounds: regression noise is a std, so above 1 is fine there ...
    assert config(data={"name": "sphere", "label_noise": 2.0, "task": "regression"})
    # ... and a flip probability for binary labels
    with pytest.raises(ValueError, match=r"^data.label_noise: expected a number in \[0, 1\]"):
        config(data={"name": "sphere", "label_noise": 2.0})
    # every option the data layer takes is settable (subset was missing from sweeps)
    assert config(data={"name": "digits", "subset": "first"}).data.options["subset"] == "first"
    fixed = config(data={"name": "sphere", "seed": 5}).data
    assert fixed.draw(0).seed == fixed.draw(9).seed == 5


def test_an_image_shape_may_repeat_a_size():
    c = config(
        data={"name": "digits", "classes": [0, 1]}, model={"family": "cnn", "in_shape": [1, 8, 8]}
    )
    assert c.model.in_shape == (1, 8, 8)


def test_csv_class_names_are_accepted(tmp_path):
    path = tmp_path / "pets.csv"
    rows = ["a,b,label"] + [f"{i},{i % 3},{'cat' if i % 2 else 'dog'}" for i in range(20)]
    path.write_text("\n".join(rows) + "\n")
    c = config(data={"name": str(path), "classes": ["cat", "dog"], "label_column": "label"})
    assert c.data.classes == ("cat", "dog")
    ds = c.data.draw(0).load()
    assert set(ds.y_train.tolist()) == {-1.0, 1.0}


@pytest.mark.parametrize(
    "data,message",
    [
        ({"name": "nope"}, "data.name: unknown dataset 'nope'"),
        ({"name": "sphere", "num_samples": 50}, "data: unknown option 'num_samples' for dataset"),
        ({"name": "sphere", "colour": 1}, "data: unknown key 'colour'"),
        ({"name": "sphere", "classes": [1, 1]}, "data.classes[1]: duplicate value 1"),
        ({"name": "sphere", "n_test": 0}, "data.n_test: expected a positive integer, got 0"),
    ],
)
def test_data_section_errors(data, message):
    with pytest.raises(ValueError) as info:
        config(data=data)
    assert str(info.value).startswith(message)


def test_data_spec_seed_run_is_the_sweeps_only_addition():
    assert DataSpec("sphere").seed == "run"
    with pytest.raises(ValueError, match="^data.seed: expected a non-negative integer"):
        DataSpec("sphere", seed=-2)
    with pytest.raises(ValueError, match="^seed: expected a non-negative integer"):
        DataConfig("sphere", seed="run")


def test_at_path_puts_the_section_path_in_front_of_the_errors_own():
    for inner, outer in [
        (ConfigError("steps", "bad"), "train.steps: bad"),
        (ConfigError("classes[1]", "bad"), "train.classes[1]: bad"),
        (ConfigError("", "bad"), "train: bad"),
        (
            ValueError("unknown option 'x' for dataset 'y'"),
            "train: unknown option 'x' for dataset 'y'",
        ),
        # a plain ValueError's text is never read as a path, even one that looks like it
        (ValueError("steps: bad"), "train: steps: bad"),
    ]:
        with pytest.raises(ConfigError) as info, at_path("train"):
            raise inner
        assert str(info.value) == outer
    with pytest.raises(ConfigError) as info, at_path("grid"), at_path("width"):
        raise ConfigError("[2]", "expected a positive integer, got -3")
    assert (info.value.path, info.value.message) == (
        "grid.width[2]",
        "expected a positive integer, got -3",
    )
    assert str(info.value) == "grid.width[2]: expected a positive integer, got -3"


def test_a_section_error_carries_its_path_not_only_its_text():
    with pytest.raises(ConfigError) as info:
        config(grid={"width": [4, -3], "depth": [2]})
    assert (info.value.path, info.value.message) == (
        "grid.width[1]",
        "expected a positive integer, got -3",
    )
    with pytest.raises(ConfigError) as info:
        TrainSpec(power_iters=0)
    assert info.value.path == "train.power_iters"
    err = pickle.loads(pickle.dumps(info.value))  # crosses to and from worker processes
    assert (type(err), err.path, str(err)) == (ConfigError, "train.power_iters", str(info.value))


def test_losses_and_optimizers_are_registry_objects():
    from robustlab.training.losses import LOSSES, get_loss
    from robustlab.training.optim import OPTIMIZERS, get_optimizer

    assert LOSSES == ("mse", "logistic", "cross_entropy")
    assert OPTIMIZERS == ("gd", "sgd", "adam")
    assert get_loss("cross_entropy").out_dim(1) == 2 and get_loss("mse").out_dim(1) == 1
    assert get_optimizer("adam").auto_lr == 1e-3 and get_optimizer("gd").full_batch
    with pytest.raises(ValueError, match="^loss: expected one of mse"):
        get_loss("hinge")


def test_library_config_objects_are_accepted_as_sections():
    c = rl.sweep.SweepConfig(
        name="y",
        data=DataConfig("sphere", n_train=10),
        grid={"width": 4, "depth": 2},
        train=TrainConfig(steps=7, power_iters=5),
    )
    assert isinstance(c.train, TrainSpec) and (c.train.steps, c.train.power_iters) == (7, 5)
    assert isinstance(c.data, DataSpec) and c.data.seed == 0  # a DataConfig is one fixed draw
    with pytest.raises(ValueError, match="^train.regime: set regimes and alpha in the grid"):
        rl.sweep.SweepConfig(name="y", data={"name": "sphere"}, grid={"width": 4, "depth": 2},
                             train=TrainConfig(regime="lazy", alpha=3.0))  # fmt: skip


def test_a_changed_config_is_refused_naming_what_changed(tmp_path):
    from robustlab.sweep.store import Store

    store = Store(tmp_path / "s.db")
    old = config(train={"steps": 500}).to_dict()  # what omitting steps meant before 1000
    assert store.record_sweep(old)
    with pytest.raises(ValueError, match=r"\(train.steps: 500 stored, 1000 now\)"):
        store.record_sweep(config().to_dict())
    with pytest.raises(ValueError, match=r"\(train.power_iters: not set stored, 7 now\)"):
        store.record_sweep(config(train={"steps": 500, "power_iters": 7}).to_dict())


def test_mean_field_regime_is_checked_for_every_init_and_family():
    grid = {"width": [4], "depth": [2], "init": ["lecun", "ntk_param"], "regime": ["mean_field"]}
    with pytest.raises(ValueError, match=r"^grid.init\[1\]: regime 'mean_field': init 'ntk_param'"):
        config(grid=grid)
    grid["init"] = ["he"]
    with pytest.raises(ValueError, match="^grid.regime: regime 'mean_field' needs the two-layer"):
        config(grid=grid, model={"family": "cnn"})


def test_range_messages_name_the_bound():
    with pytest.raises(ValueError, match="^num_samples: expected an integer >= 20, got 10"):
        rl.data.load("mnist1d", num_samples=10)
    assert TrainConfig(steps=2.0).steps == 2  # an integral float is an integer
    with pytest.raises(ValueError, match="^steps: expected a positive integer, got 1.5"):
        TrainConfig(steps=1.5)
