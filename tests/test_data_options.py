"""The data options ``classes`` as groups of labels, ``pca: k`` and ``label_flip: q``, from
Python and from a sweep's ``data:`` section."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from robustlab import data
from robustlab.cli import main
from robustlab.data.raw import STREAM_LABEL_FLIP, rng
from robustlab.sweep import load_config

LOW, HIGH = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]
GROUPS = [LOW, HIGH]
EXAMPLE = {"name": "digits", "classes": GROUPS, "pca": 10, "label_flip": 0.2}
F64 = {"dtype": torch.float64}


def raw_digit_labels(x: torch.Tensor) -> np.ndarray:
    """The sklearn label of each row of ``x`` (digits inputs as robustlab gives them,
    float64, pixel / 16), found by the row itself: no two digits images are equal."""
    bunch = load_digits()
    rows = zip(bunch.data, bunch.target, strict=True)
    by_row = {(row / 16.0).tobytes(): label for row, label in rows}
    return np.array([by_row[row.tobytes()] for row in x.numpy()])


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------- groups


@pytest.mark.parametrize("sizes", [{"n_train": 200, "n_test": 300}, {}])
def test_groups_encode_digits_0_4_as_minus_and_5_9_as_plus(sizes):
    ds = data.load("digits", classes=GROUPS, seed=3, **sizes, **F64)
    assert (ds.task, ds.n_classes, ds.meta["classes"]) == ("binary", 2, GROUPS)
    for split in ("train", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        want = np.where(np.isin(raw_digit_labels(x), HIGH), 1.0, -1.0)
        assert np.array_equal(y.numpy(), want), split
    # every label is in a group: the rows are those of the plain draw, in the same order
    full = data.load("digits", seed=3, **sizes, **F64)
    assert torch.equal(ds.x_train, full.x_train) and torch.equal(ds.x_test, full.x_test)


def test_groups_with_label_scale_and_more_than_two_groups():
    plain = data.load("digits", classes=GROUPS, n_train=100, n_test=50, seed=1, **F64)
    scaled = data.load(
        "digits", classes=GROUPS, n_train=100, n_test=50, seed=1, label_scale=2.5, **F64
    )
    assert torch.equal(scaled.y_train, 2.5 * plain.y_train)
    assert torch.equal(scaled.y_test, 2.5 * plain.y_test)
    assert set(scaled.y_train.tolist()) == {-2.5, 2.5}
    three = data.load("digits", classes=[[7], [0, 2], [9, 4, 1]], **F64)
    assert (three.task, three.n_classes) == ("multiclass", 3)
    assert three.meta["classes"] == [[7], [0, 2], [9, 4, 1]]
    labels = raw_digit_labels(three.x_train)
    assert set(labels.tolist()) == {7, 0, 2, 9, 4, 1}  # the other digits are dropped
    want = np.select([labels == 7, np.isin(labels, [0, 2])], [0, 1], default=2)
    assert np.array_equal(three.y_train.numpy(), want)


def test_plain_classes_are_unchanged():
    pair = data.load("digits", classes=[8, 3], **F64)
    grouped = data.load("digits", classes=[[8], [3]], **F64)
    assert torch.equal(pair.x_train, grouped.x_train) and torch.equal(pair.y_train, grouped.y_train)
    assert pair.meta["classes"] == [8, 3] and grouped.meta["classes"] == [[8], [3]]


@pytest.mark.parametrize(
    "classes, message",
    [
        ([[0, 1, 2], [2, 3]], "classes[1]: label 2 is in group 0 too; groups must be disjoint"),
        ([[0, 1], [1.0]], "classes[1]: label 1.0 is in group 0 too"),
        ([[0, 1], []], "classes[1]: expected a non-empty list, got []"),
        ([[0, 1], 2], "classes[1]: expected a group (a list of labels) like the other items"),
        ([[0, 1, 2]], "classes: expected at least two classes, got [[0, 1, 2]]"),
        ([[0, 0], [1]], "classes[0][1]: duplicate value 0"),
        ([[0, 1], [11, 12]], "classes [11, 12] not present in the training labels; available"),
    ],
)
def test_bad_groups_are_refused_in_one_line(classes, message):
    with pytest.raises(ValueError) as err:
        data.load("digits", classes=classes)
    assert one_line(err).startswith(message)


# ---------------------------------------------------------------------------- pca


def test_pca_matches_sklearn_on_the_standardized_training_inputs():
    k, sizes = 8, {"n_train": 300, "n_test": 120, "seed": 2, "standardize": True, **F64}
    x = data.load("digits", **sizes)  # the matrix pca sees: standardized, not projected
    ds = data.load("digits", pca=k, **sizes)
    assert (ds.in_dim, ds.x_shape, ds.x_train.shape, ds.x_test.shape) == (
        k, (k,), (300, k), (120, k)
    )  # fmt: skip
    z = ds.x_train.numpy()
    assert np.abs(z.mean(axis=0)).max() < 1e-12
    cov = z.T @ z / len(z)  # (k, k): diagonal, non-increasing
    variances = np.diag(cov)
    assert np.abs(cov - np.diag(variances)).max() < 1e-10 * variances[0]
    assert np.all(np.diff(variances) <= 1e-12 * variances[0])
    reference = PCA(k, svd_solver="full").fit(x.x_train.numpy())
    ref_train = reference.transform(x.x_train.numpy())
    ref_test = reference.transform(x.x_test.numpy())  # the training directions and mean
    signs = np.sign(np.sum(z * ref_train, axis=0))  # the sign convention, per column
    np.testing.assert_allclose(z, ref_train * signs, atol=1e-9)
    np.testing.assert_allclose(ds.x_test.numpy(), ref_test * signs, atol=1e-9)
    directions = reference.components_ * signs[:, None]  # (k, d): robustlab's convention
    largest = directions[np.arange(k), np.abs(directions).argmax(axis=1)]
    assert np.all(largest > 0)
    assert ds.meta["options"]["pca"] == k


def test_pca_then_sphere_and_in_dim():
    sizes = {"n_train": 200, "n_test": 50, "seed": 0, **F64}
    flat = data.load("digits", pca=10, **sizes)
    ds = data.load("digits", pca=10, sphere=True, in_dim=10, **sizes)
    for split in ("train", "test"):
        x = getattr(ds, f"x_{split}")
        np.testing.assert_allclose(x.norm(dim=1).numpy(), 1.0, atol=1e-12)
        z = getattr(flat, f"x_{split}")
        assert torch.allclose(x, z / z.norm(dim=1, keepdim=True), atol=1e-12)
    assert ds.inputs("all").shape == (250, 10)
    with pytest.raises(ValueError) as err:
        data.load("digits", pca=10, in_dim=64, **sizes)
    assert one_line(err).startswith("in_dim=64 does not match the data's input dimension 10")
    # the sphere data set draws its points at in_dim; pca then lowers the dimension
    sphere = data.load("sphere", in_dim=12, n_train=80, n_test=20, pca=5, **F64)
    assert (sphere.in_dim, sphere.x_train.shape) == (5, (80, 5))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"pca": 65}, "pca=65 asks for more than min(n_train, d) = min(1438, 64) principal "),
        ({"pca": 31, "n_train": 30}, "pca=31 asks for more than min(n_train, d) = min(30, 64)"),
        ({"pca": 0}, "pca: expected a positive integer, got 0"),
        ({"pca": -2}, "pca: expected a positive integer, got -2"),
        ({"pca": 2.5}, "pca: expected a positive integer, got 2.5"),
        ({"pca": True}, "pca: expected a positive integer, got True"),
        ({"pca": "10"}, "pca: expected a positive integer, got '10'"),
    ],
)
def test_bad_pca_is_refused_in_one_line(options, message):
    with pytest.raises(ValueError) as err:
        data.load("digits", **options)
    assert one_line(err).startswith(message)


# ---------------------------------------------------------------------------- label_flip


def flipped(q: float, seed: int, **options) -> tuple[data.Dataset, data.Dataset, torch.Tensor]:
    """The draw without and with ``label_flip=q``, and which training labels flipped."""
    plain = data.load("digits", classes=GROUPS, seed=seed, **options, **F64)
    noisy = data.load("digits", classes=GROUPS, seed=seed, label_flip=q, **options, **F64)
    return plain, noisy, noisy.y_train != plain.y_train


def test_label_flip_flips_a_binomial_share_of_the_training_labels_only():
    q = 0.2
    plain, noisy, flips = flipped(q, seed=5)
    n = plain.n_train
    assert n >= 1000
    share = float(flips.double().mean())
    assert abs(share - q) < 4 * math.sqrt(q * (1 - q) / n)  # 4 sigma of Binomial(n, q) / n
    assert torch.equal(noisy.y_train[flips], -plain.y_train[flips])  # a flip changes the sign
    assert torch.equal(noisy.y_test, plain.y_test)  # test labels are never flipped
    assert torch.equal(noisy.x_train, plain.x_train) and torch.equal(noisy.x_test, plain.x_test)
    # the coins: u_i < q, u_i uniform from the seed's own label_flip stream
    coins = rng(5, STREAM_LABEL_FLIP).random(n) < q
    assert np.array_equal(flips.numpy(), coins)
    assert noisy.meta["options"]["label_flip"] == q


def test_label_flip_is_seeded():
    _, first, flips = flipped(0.2, seed=5, n_train=400, n_test=10)
    _, again, flips_again = flipped(0.2, seed=5, n_train=400, n_test=10)
    assert torch.equal(first.y_train, again.y_train) and torch.equal(flips, flips_again)
    _, _, other = flipped(0.2, seed=6, n_train=400, n_test=10)
    assert not torch.equal(flips, other)


def test_label_flip_zero_is_no_option_and_scale_applies_after_flips():
    plain, zero, flips = flipped(0.0, seed=1, n_train=300, n_test=40)
    assert not flips.any() and torch.equal(zero.y_test, plain.y_test)
    c = 3.0
    _, noisy, _ = flipped(0.3, seed=1, n_train=300, n_test=40)
    scaled = data.load(
        "digits", classes=GROUPS, seed=1, n_train=300, n_test=40, label_flip=0.3,
        label_scale=c, **F64,
    )  # fmt: skip
    assert torch.equal(scaled.y_train, c * noisy.y_train)  # flips of c-scaled labels: -c/+c
    assert set(scaled.y_train.tolist()) == {-c, c}


def test_label_flip_on_the_sphere_data_set_beside_its_label_noise():
    sizes = {"in_dim": 4, "n_train": 1200, "n_test": 30, "seed": 3, "label_noise": 0.1}
    plain = data.load("sphere", **sizes)
    noisy = data.load("sphere", label_flip=0.25, **sizes)
    coins = rng(3, STREAM_LABEL_FLIP).random(1200) < 0.25
    assert np.array_equal((noisy.y_train != plain.y_train).numpy(), coins)
    assert torch.equal(noisy.y_test, plain.y_test)


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("digits", {"n_train": 50}, "label_flip=0.1 flips binary labels, but the task is "
         "multiclass; keep two classes or two groups of labels"),
        ("digits", {"classes": [[0], [1], [2]]}, "label_flip=0.1 flips binary labels, but the "
         "task is multiclass"),
        ("sphere", {"task": "regression", "n_train": 20}, "label_flip=0.1 flips binary labels, "
         "but the task is regression; regression targets have no sign to flip"),
    ],
)  # fmt: skip
def test_label_flip_needs_a_binary_task(name, options, message):
    with pytest.raises(ValueError) as err:
        data.load(name, label_flip=0.1, **options)
    assert one_line(err).startswith(message)


@pytest.mark.parametrize("bad", [1.0, 1.5, -0.1, float("nan"), True, "0.2", None])
def test_a_bad_label_flip_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match=r"^label_flip: expected a number in \[0, 1\), got"):
        data.load("digits", classes=GROUPS, label_flip=bad)


# ---------------------------------------------------------------------------- sweeps


def sweep_config(**data_section) -> dict:
    return {
        "name": "digits-options",
        "data": {**EXAMPLE, "n_train": 200, "n_test": 300, **data_section},
        "grid": {"width": [8], "depth": [2], "init": ["lecun"], "regime": ["standard"],
                 "alpha": [1]},
        "seeds": 1,
        "train": {"steps": 5},
        "measure": {"eps": [0.1], "methods": ["exact"], "points": 8, "at": ["final"]},
    }  # fmt: skip


def test_a_sweep_data_section_takes_the_options(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep_config()), encoding="utf-8")
    config = load_config(path)
    section = config.data
    assert section.classes == (tuple(LOW), tuple(HIGH))
    assert dict(section.options) == {"pca": 10, "label_flip": 0.2}
    assert load_config(config.to_dict()) == config
    ds = section.draw(0).load()
    assert (ds.task, ds.in_dim, ds.n_train, ds.n_test) == ("binary", 10, 200, 300)
    assert ds.meta["classes"] == GROUPS


@pytest.mark.parametrize(
    "change, message",
    [
        ({"pca": 0}, "data.pca: expected a positive integer, got 0"),
        ({"label_flip": 1.5}, "data.label_flip: expected a number in [0, 1), got 1.5"),
        ({"classes": [[0, 1], [1, 2]]}, "data.classes[1]: label 1 is in group 0 too"),
        ({"pca": 100, "n_test": 50}, "pca=100 asks for more than min(n_train, d) = min(200, 64)"),
    ],
)
def test_bad_sweep_data_options_exit_2_with_one_line(tmp_path, capsys, change, message):
    path, store = tmp_path / "bad.yaml", tmp_path / "bad.db"
    path.write_text(yaml.safe_dump(sweep_config(**change)), encoding="utf-8")
    assert main(["sweep", str(path), "--store", str(store), "--quiet"]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1, err
    assert lines[0].startswith("robustlab: error: ") and message in lines[0]
    assert not store.exists()
