"""Sweep config: YAML loading, validation messages, cell expansion, hashes and groups."""

from __future__ import annotations

import copy
import dataclasses
import json
import re

import pytest
import yaml

from robustlab.sweep.config import (
    Cell,
    DataSpec,
    FrozenMap,
    GridSpec,
    MeasureSpec,
    SweepConfig,
    TrainSpec,
    load_config,
)

EXAMPLE = """\
name: width-depth-demo
data: {name: mnist1d, classes: [0, 1], n_train: 1000, n_test: 500, sphere: true}
model: {family: mlp, bias: false}
grid:
  width: [16, 32, 64, 128]
  depth: "2:6"
  init: [lecun, he, ntk]
  regime: [lazy]
  alpha: [100]
seeds: 4
train: {optimizer: gd, loss: mse, lr: auto, steps: 500, target_loss: 1.0e-3}
measure: {eps: [0.01, 0.1], methods: [exact], points: 1000, at: [init, final], laziness: true}
"""

BASE = yaml.safe_load(EXAMPLE)


@pytest.fixture
def example(tmp_path) -> SweepConfig:
    path = tmp_path / "sweep.yaml"
    path.write_text(EXAMPLE)
    return load_config(path)


def small(**grid) -> SweepConfig:
    doc = copy.deepcopy(BASE)
    doc["grid"] = {"width": [8], "depth": [2], **grid}
    doc["seeds"] = 1
    return load_config(doc)


def test_example_loads_with_normalised_values(example):
    assert example.name == "width-depth-demo"
    assert example.data == DataSpec("mnist1d", (0, 1), 1000, 500, None, True)
    assert example.grid.depth == (2, 3, 4, 5, 6)
    assert example.grid.alpha == (100.0,)
    assert example.seeds == (0, 1, 2, 3)
    assert example.train.target_loss == pytest.approx(1e-3)
    assert example.train.lr == "auto"
    assert example.measure.eps == (0.01, 0.1)


def test_yaml_round_trip(example, tmp_path):
    path = tmp_path / "again.yaml"
    path.write_text(yaml.safe_dump(example.to_dict()))
    again = load_config(path)
    assert again == example
    assert again.to_dict() == example.to_dict()
    assert json.loads(json.dumps(example.to_dict())) == example.to_dict()  # JSON-friendly


def test_data_options_are_kept_and_flattened():
    doc = copy.deepcopy(BASE)
    # the options a data set takes are its own (robustlab.data.DataConfig): sphere's here
    doc["data"] = {"name": "sphere", "standardize": True, "label_noise": 0.1, "teacher": "relu"}
    config = load_config(doc)
    assert config.data.options == {"label_noise": 0.1, "standardize": True, "teacher": "relu"}
    assert isinstance(config.data.options, FrozenMap)
    hash(config.data)  # options are hashable: specs are group keys
    assert config.to_dict()["data"]["teacher"] == "relu"
    assert load_config(config.to_dict()) == config


@pytest.mark.parametrize(
    ("depth", "expected"),
    [
        ("2:6", (2, 3, 4, 5, 6)),
        ("2:12:2", (2, 4, 6, 8, 10, 12)),
        ("3:3", (3,)),
        (" 2 : 7 : 5 ", (2, 7)),
        ([4, 2], (4, 2)),
        (5, (5,)),
    ],
)
def test_depth_forms(depth, expected):
    assert GridSpec(width=16, depth=depth).depth == expected


def test_unquoted_yaml_range_and_exponent(tmp_path):
    # YAML 1.1 would read 2:6 as the base-60 int 126 and 1e-3 as a string
    text = EXAMPLE.replace('depth: "2:6"', "depth: 2:6").replace("lr: auto", "lr: 1e-3")
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    config = load_config(path)
    assert config.grid.depth == (2, 3, 4, 5, 6)
    assert config.train.lr == pytest.approx(1e-3)


def test_python_construction_is_validated_and_frozen():
    grid = GridSpec(width=[16, 32], depth="2:3", init=["LeCun", "custom(1, 2, 3)"])
    assert grid.width == (16, 32)
    assert grid.init == ("lecun", "custom(1,2,3)")
    with pytest.raises(dataclasses.FrozenInstanceError):
        grid.width = (1,)  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"^train\.steps: expected a positive integer"):
        TrainSpec(steps=-1)
    config = SweepConfig(name="x", data={"name": "mnist1d"}, grid={"width": 4, "depth": 2})
    assert config.data == DataSpec("mnist1d")
    assert config.seeds == (0,)


def test_sets_are_canonical():
    spec = MeasureSpec(eps=[0.1, 0.01], methods=["mc", "exact"], at=["final", "init"])
    assert spec == MeasureSpec(eps=[0.01, 0.1], methods=["exact", "mc"], at=["init", "final"])
    assert spec.at == ("init", "final")


def test_cells_of_the_example(example):
    cells = example.cells()
    assert len(cells) == 4 * 5 * 3 * 1 * 1 * 4 == 240
    assert len({c.hash for c in cells}) == 240
    first, second = cells[0], cells[1]
    assert (first.width, first.depth, first.init, first.regime, first.alpha, first.seed) == (
        16,
        2,
        "lecun",
        "lazy",
        100.0,
        0,
    )
    assert second.seed == 1  # seed varies fastest
    assert cells[-1].width == 128 and cells[-1].depth == 6 and cells[-1].init == "ntk"
    assert cells == example.cells()  # deterministic


def test_alpha_collapses_outside_lazy():
    cells = small(regime=["standard", "lazy"], alpha=[1, 100]).cells()
    assert [(c.regime, c.alpha) for c in cells] == [
        ("standard", 1.0),
        ("lazy", 1.0),
        ("lazy", 100.0),
    ]
    (mean_field,) = small(regime=["mean_field"], alpha=[5, 7]).cells()
    assert mean_field.alpha == 1.0


def test_hash_is_stable(example, tmp_path):
    cell = example.cells()[0]
    assert re.fullmatch(r"[0-9a-f]{16}", cell.hash)
    # golden value: changing the canonical config form orphans every existing store.
    # Changed once on purpose: the form gained data.seed (a run's seed now draws its data),
    # so older cells are different experiments
    # Fields added later (_added) are written only when set, so they change no hash.
    assert cell.hash == "03bc0a7b8741311a"
    reordered = dict(reversed(list(BASE.items())))
    assert load_config(reordered).cells()[0].hash == cell.hash
    assert Cell.from_dict(json.loads(cell.config_json())) == cell
    assert Cell.from_dict(cell.config_dict()).hash == cell.hash


def test_config_json_is_canonical(example):
    cell = example.cells()[7]
    text = cell.config_json()
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    assert json.loads(text) == cell.config_dict()
    assert cell.config_dict()["sweep"] == "width-depth-demo"
    assert {"data", "model", "train", "measure", "width", "seed"} <= set(cell.config_dict())


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("train", "lr", 0.5),
        ("train", "steps", 501),
        ("train", "max_retries", 0),
        ("data", "n_train", 999),
        ("data", "standardize", True),
        ("model", "bias", True),
        ("measure", "eps", [0.01]),
        ("measure", "region", "sphere"),
        (None, "name", "other"),
    ],
)
def test_hash_is_sensitive_to_every_section(section, key, value):
    doc = copy.deepcopy(BASE)
    (doc[section] if section else doc)[key] = value
    assert load_config(doc).cells()[0].hash != load_config(BASE).cells()[0].hash


def test_hash_is_sensitive_to_the_axes(example):
    by_axes = {(c.width, c.depth, c.init, c.seed): c.hash for c in example.cells()}
    assert len(set(by_axes.values())) == len(by_axes)


def test_groups(example):
    groups = example.groups()
    assert len(groups) == 4 * 5
    assert sum(len(g) for g in groups) == 240
    assert {c.hash for g in groups for c in g} == {c.hash for c in example.cells()}
    for group in groups:
        assert len(group) == 3 * 4  # inits x seeds
        assert len({c.group_key() for c in group}) == 1
        assert len({(c.width, c.depth, c.regime) for c in group}) == 1
    assert groups[0][0].width == 16 and groups[0][0].depth == 2
    assert groups == example.groups()


def test_group_key_ignores_init_alpha_seed_only():
    config = small(init=["lecun", "he"], regime=["standard", "lazy"], alpha=[1, 10])
    keys = {c.group_key() for c in config.cells()}
    assert len(keys) == 2  # one per regime
    changed = copy.deepcopy(BASE)
    changed["train"]["steps"] = 7
    cell, other = load_config(BASE).cells()[0], load_config(changed).cells()[0]
    assert cell.group_key() != other.group_key()


DELETE = object()


def mutate(path: str, value: object) -> dict:
    doc = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    target = doc
    for part in parents:
        target = target[part]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return doc


BAD = [
    ("train.lr", "fast", "train.lr: expected a positive number or \"auto\", got 'fast'"),
    ("train.lr", -0.1, 'train.lr: expected a positive number or "auto", got -0.1'),
    ("train.lr", True, 'train.lr: expected a positive number or "auto", got True'),
    ("grid.width", [16, 32, -3], "grid.width[2]: expected a positive integer, got -3"),
    ("grid.width", True, "grid.width: expected a positive integer, got True"),
    ("grid.width", [16, 16], "grid.width[1]: duplicate value 16"),
    ("grid.width", [], "grid.width: expected a non-empty list, got []"),
    ("grid.depth", "2:x", 'grid.depth: expected an int, a list of ints or a range "start:stop'),
    ("grid.depth", "6:2", "grid.depth: bad range '6:2'"),
    ("grid.depth", "0:4", "grid.depth: bad range '0:4'"),
    ("grid.depth", "2:6:0", "grid.depth: bad range '2:6:0'"),
    ("grid.init", ["lecun", "bogus"], "grid.init[1]: unknown init scheme 'bogus'; choices: "),
    ("grid.regime", ["chaotic"], "grid.regime[0]: expected one of standard, lazy, mean_field"),
    ("grid.regime", ["mean_field"], "grid.depth: regime 'mean_field' is the two-layer"),
    ("grid.alpha", [10, -1], "grid.alpha[1]: expected a positive number, got -1"),
    ("grid.width", DELETE, "grid: missing required key 'width'"),
    ("grid.colour", ["red"], "grid: unknown key 'colour' (allowed: width, depth, init"),
    ("data.foo", 1, "data: unknown key 'foo' (allowed: name, classes, n_train"),
    ("data.name", DELETE, "data: missing required key 'name'"),
    ("data.sphere", "yes", "data.sphere: expected true or false, got 'yes'"),
    ("data.classes", [0], "data.classes: expected at least two classes"),
    ("data.label_noise", 1.5, "data.label_noise: expected a number in [0, 1], got 1.5"),
    ("data.test_fraction", 1, "data.test_fraction: expected a number in (0, 1), got 1"),
    ("data.dtype", "float16", "data.dtype: expected one of float32, float64, got 'float16'"),
    ("data.teacher_width", 0, "data.teacher_width: expected a positive integer, got 0"),
    ("data", [1, 2], "data: expected a mapping of keys to values, got [1, 2]"),
    ("model.family", "vit", "model.family: expected one of mlp, cnn, resnet or a builder 'pa"),
    ("model.depth", 3, "model: unknown key 'depth' (allowed: family, bias, in_shape, norm, kw"),
    ("model.norm", "batch", "model.norm: model family 'mlp' takes no norm"),
    ("train.optimizer", "rmsprop", "train.optimizer: expected one of gd, sgd, adam, got"),
    ("train.loss", "hinge", "train.loss: expected one of mse, logistic, cross_entropy, got"),
    ("train.steps", 0, "train.steps: expected a positive integer, got 0"),
    ("train.steps", 1.5, "train.steps: expected a positive integer, got 1.5"),
    ("train.momentum", 1.0, "train.momentum: expected a number in [0, 1), got 1.0"),
    ("train.epochs", 3, "train: unknown key 'epochs'"),
    ("measure.methods", ["exact", "fgsm"], "measure.methods[1]: expected one of exact, mc, "),
    ("measure.region", "cube", "measure.region: expected one of ball, sphere, linf_ball, got"),
    ("measure.at", ["init", "middle"], "measure.at[1]: expected one of init, final, got"),
    ("measure.eps", [0.1, 0], "measure.eps[1]: expected a positive number, got 0"),
    ("measure.eps", [0.1, float("nan")], "measure.eps[1]: expected a positive number, got nan"),
    ("measure.points", -5, "measure.points: expected a positive integer, got -5"),
    ("seeds", 0, "seeds: expected a positive integer, got 0"),
    ("seeds", [], "seeds: expected a non-empty list, got []"),
    ("seeds", [0, -1], "seeds[1]: expected a non-negative integer, got -1"),
    ("seeds", "four", "seeds: expected a positive integer or a list of non-negative"),
    ("name", DELETE, "config: missing required key 'name'"),
    ("name", "  ", "name: expected a non-empty string, got '  '"),
    ("grid", DELETE, "config: missing required key 'grid'"),
    ("data", DELETE, "config: missing required key 'data'"),
    ("colour", "red", "config: unknown key 'colour' (allowed: name, data, model, grid"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD, ids=[f"{p}={v!r}" for p, v, _ in BAD])
def test_bad_config_names_the_path(path, value, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        load_config(mutate(path, value))


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ValueError, match=f"^cannot read config file '{re.escape(str(path))}'"):
        load_config(path)


def test_invalid_yaml_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ngrid: {width: [1, 2\n")
    with pytest.raises(
        ValueError, match=f"^config file '{re.escape(str(path))}' is not valid YAML"
    ):
        load_config(path)
    with pytest.raises(ValueError) as info:
        load_config(path)
    assert "\n" not in str(info.value)


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        load_config(str(path))
