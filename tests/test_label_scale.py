"""The label scale c: the data option ``label_scale`` (targets times c, last of all) and the
sweep axis ``grid.label_scale`` (one cell per c, rows carrying c beside y_f0_ratio)."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from robustlab import data
from robustlab.cli import main
from robustlab.sweep import load_config
from robustlab.sweep.cells import run_group

SCALES = [0.1, 0.3, 1, 3]


@pytest.mark.parametrize(
    "name, options",
    [
        ("sphere", {"in_dim": 5, "n_train": 40, "n_test": 12, "label_noise": 0.2}),  # flips
        ("sphere", {"in_dim": 5, "n_train": 40, "n_test": 12, "task": "regression",
                    "teacher": "relu", "label_noise": 0.3, "noise_on_test": True}),
        ("digits", {"classes": [3, 8], "n_train": 60, "n_test": 20, "sphere": True}),
    ],
)  # fmt: skip
@pytest.mark.parametrize("c", [0.1, 3.0, 7.25])
def test_targets_are_the_unscaled_ones_times_c(name, options, c):
    plain = data.load(name, seed=4, dtype=torch.float64, **options)
    scaled = data.load(name, seed=4, dtype=torch.float64, label_scale=c, **options)
    for split in ("train", "test"):  # c times the targets after noise, flips and +-1 coding
        y, yc = getattr(plain, f"y_{split}"), getattr(scaled, f"y_{split}")
        assert yc.dtype == torch.float64 and torch.equal(yc, y * c)
        assert torch.equal(getattr(scaled, f"x_{split}"), getattr(plain, f"x_{split}"))
    if plain.task == "binary":
        assert set(scaled.y_train.tolist()) == {-c, c}
    assert scaled.meta["options"]["label_scale"] == c
    assert plain.meta["options"]["label_scale"] == 1.0  # the default, recorded


def test_label_scale_one_gives_the_same_tensors():
    plain = data.load("sphere", in_dim=4, n_train=30, n_test=5, seed=2, label_noise=0.1)
    one = data.load(
        "sphere", in_dim=4, n_train=30, n_test=5, seed=2, label_noise=0.1, label_scale=1
    )
    assert torch.equal(one.y_train, plain.y_train) and torch.equal(one.y_test, plain.y_test)


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan"), "big", True])
def test_a_bad_label_scale_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match=r"^label_scale: expected a positive number, got"):
        data.load("sphere", in_dim=3, n_train=20, n_test=5, label_scale=bad)


def test_class_indices_are_never_scaled():
    with pytest.raises(ValueError, match=r"^label_scale: multiclass targets are class indices"):
        data.load("digits", n_train=50, n_test=20, label_scale=2.0)
    assert data.load("digits", n_train=50, n_test=20, label_scale=1).task == "multiclass"


# --------------------------------------------------------------------------- the sweep axis


def _sweep(data: dict | None = None, **grid) -> dict:
    data = data or {}
    return {
        "name": "scales",
        "data": {
            "name": "sphere",
            "in_dim": 5,
            "n_train": 48,
            "n_test": 16,
            "teacher": "relu",
            **data,
        },
        "grid": {"width": [16], "depth": [3], "init": ["he", "lecun"], **grid},
        "seeds": [0, 1],
        "train": {"steps": 4},
        "measure": {"eps": [0.1], "points": 8, "at": ["init", "final"]},
    }


def test_a_config_without_the_axis_keeps_its_form_and_hash():
    """The hashes were computed by the code before ``label_scale`` existed (this config, and
    its first cell)."""
    config = load_config(_sweep())
    assert "label_scale" not in config.to_dict()["grid"]
    assert "label_scale" not in config.to_dict()["data"]
    assert (config.hash, config.cells()[0].hash) == ("bef0990a445e5f00", "bfd8aa803218493e")
    assert {c.label_scale for c in config.cells()} == {None}


def test_the_axis_gives_each_cell_its_own_scale_in_its_data_section():
    plain, swept = load_config(_sweep()), load_config(_sweep(label_scale=SCALES))
    assert swept.to_dict()["grid"]["label_scale"] == SCALES
    assert len(swept.cells()) == len(SCALES) * len(plain.cells())
    by_scale: dict[float, list] = {}
    for cell in swept.cells():
        by_scale.setdefault(cell.label_scale, []).append(cell)
        config = json.loads(cell.config_json())
        assert config["data"]["label_scale"] == cell.label_scale
        assert type(cell).from_dict(config).hash == cell.hash  # a stored cell rebuilds itself
    assert sorted(by_scale) == SCALES and {len(v) for v in by_scale.values()} == {4}
    assert len({c.hash for c in swept.cells()}) == len(swept.cells())
    for group in swept.groups():  # cells of different c never train together
        assert len({c.label_scale for c in group}) == 1
    assert len(swept.groups()) == len(SCALES) * len(plain.groups())


def test_rows_carry_the_scale_and_a_ratio_proportional_to_it():
    swept = load_config(_sweep({"dtype": "float64"}, label_scale=SCALES))  # scaled in float64
    rows = [row for group in swept.groups() for o in run_group(group, dtype="float64")
            for row in o.rows]  # fmt: skip
    assert {r["status"] for r in rows} == {"ok"} and {r["stop_reason"] for r in rows} == {"budget"}
    ratio: dict[tuple, dict[float, float]] = {}
    for r in rows:
        assert r["label_scale"] == json.loads(r["config_json"])["data"]["label_scale"]
        ratio.setdefault((r["init"], r["seed"]), {})[r["label_scale"]] = r["y_f0_ratio"]
    assert len(ratio) == 4
    for by_c in ratio.values():  # same network and data draw, targets times c
        assert sorted(by_c) == SCALES
        for c in SCALES:
            assert by_c[c] / c == pytest.approx(by_c[1.0], rel=1e-12, abs=0)
    plain = [row for group in load_config(_sweep()).groups() for o in run_group(group)
             for row in o.rows]  # fmt: skip
    assert {r["label_scale"] for r in plain} == {1.0}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"grid": {"label_scale": [0.5, 2]}, "data": {"label_scale": 2}},
         "grid.label_scale: data.label_scale is set too"),
        ({"grid": {"label_scale": [1, -2]}}, "grid.label_scale[1]: expected a positive number"),
        ({"data": {"label_scale": 0}}, "data.label_scale: expected a positive number"),
        ({"grid": {"label_scale": [1, 3]},
          "data": {"name": "digits", "n_train": 40, "n_test": 20, "in_dim": None,
                   "teacher": None}},
         "label_scale: multiclass targets are class indices"),
    ],
)  # fmt: skip
def test_refusals_exit_2_with_one_line(tmp_path, capsys, change, message):
    cfg = _sweep()
    for section, values in change.items():
        cfg[section] = {k: v for k, v in {**cfg[section], **values}.items() if v is not None}
    path, store = tmp_path / "bad.yaml", tmp_path / "bad.db"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["sweep", str(path), "--store", str(store), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("robustlab: error: ") and message in err and "\n" not in err
    assert not store.exists()


def test_accuracy_reads_the_sign_of_labels_scaled_by_c():
    from robustlab.training.losses import accuracy

    out = torch.tensor([[0.5], [-2.0], [0.1], [-0.3]], dtype=torch.float64)
    y = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64)
    for c in (0.1, 1.0, 3.0):
        assert accuracy(out, c * y).item() == 0.75
    assert torch.isnan(accuracy(out, torch.tensor([0.2, -1.0, 0.4, 1.0], dtype=torch.float64)))
    batched = torch.func.vmap(accuracy)(out.expand(2, 4, 1), torch.stack([y, 3 * y]))
    assert batched.tolist() == [0.75, 0.75]
