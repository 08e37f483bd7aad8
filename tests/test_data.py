"""Tests for robustlab.data: synthetic, generated and real datasets, file loaders, errors."""

from __future__ import annotations

import collections
import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from robustlab import data

# ---------------------------------------------------------------------------- helpers


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in LeCun's idx format (gzip-compressed if path ends in .gz)."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    blob = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(blob)
    else:
        path.write_bytes(blob)


def write_mnist(directory: Path, n_train: int = 12, n_test: int = 6, gz: bool = False) -> dict:
    gen = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": gen.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": gen.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(n_test, dtype=np.uint8)[::-1] % 10,
    }
    for name, array in arrays.items():
        write_idx(directory / (name + (".gz" if gz else "")), array)
    return arrays


def write_cifar(directory: Path, per_batch: int = 4, protocol: int = 2) -> dict:
    """Five training batches and a test batch laid out like cifar-10-batches-py."""
    gen = np.random.default_rng(1)
    folder = directory / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"batch_label": name.encode(),
            b"data": gen.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in gen.integers(0, 10, per_batch)],
            b"filenames": [b"img.png"] * per_batch,
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        batches[name] = batch
    return batches


def assert_same(a: data.Dataset, b: data.Dataset) -> None:
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key


# ---------------------------------------------------------------------------- sphere


def test_builtin_names():
    assert data.datasets() == ["digits", "mnist1d", "sphere"]


def test_sphere_points_are_uniform_on_the_unit_sphere():
    ds = data.load("sphere", n_train=4000, n_test=10, in_dim=5, seed=3)
    assert ds.x_train.shape == (4000, 5) and ds.x_test.shape == (10, 5)
    assert ds.x_train.dtype == torch.float32 and ds.in_dim == 5
    assert torch.allclose(ds.x_train.norm(dim=1), torch.ones(4000), atol=1e-6)
    # Uniform on S^{d-1}: mean 0 and second moment I/d (sd per entry ~ 0.007 here).
    assert ds.x_train.mean(0).abs().max() < 0.03
    second = ds.x_train.T @ ds.x_train / 4000
    assert torch.allclose(second, torch.eye(5) / 5, atol=0.03)


def test_sphere_defaults_and_label_convention():
    ds = data.load("sphere")
    assert (ds.n_train, ds.n_test, ds.in_dim) == (1000, 1000, 10)
    assert (ds.task, ds.n_classes) == ("binary", 2)
    assert ds.y_train.dtype == torch.float32 and ds.y_train.shape == (1000,)
    assert set(ds.y_train.unique().tolist()) == {-1.0, 1.0}


@pytest.mark.parametrize("teacher", ["linear", "relu"])
def test_sphere_teacher_labels_are_balanced(teacher):
    for seed in range(4):
        y = data.load("sphere", teacher=teacher, n_train=4000, n_test=1, seed=seed).y_train
        assert abs(float((y > 0).float().mean()) - 0.5) < 0.05


def test_sphere_linear_teacher_is_linear():
    ds = data.load("sphere", task="regression", n_train=200, in_dim=6, dtype=torch.float64)
    w = torch.linalg.lstsq(ds.x_train, ds.y_train[:, None]).solution
    assert torch.allclose(ds.x_train @ w[:, 0], ds.y_train, atol=1e-10)
    binary = data.load("sphere", n_train=200, in_dim=6, dtype=torch.float64)
    assert torch.equal(binary.x_train, ds.x_train)  # same points: only the labels differ
    assert torch.equal(torch.sign(ds.y_train), binary.y_train)


def test_sphere_relu_teacher_is_not_linear():
    ds = data.load("sphere", teacher="relu", task="regression", n_train=500, in_dim=6)
    w = torch.linalg.lstsq(ds.x_train, ds.y_train[:, None]).solution
    residual = ds.y_train - ds.x_train @ w[:, 0]
    assert residual.std() > 0.1


@pytest.mark.parametrize("teacher", ["linear", "relu"])
def test_sphere_regression_is_standardized(teacher):
    ds = data.load("sphere", teacher=teacher, task="regression", n_train=5000, seed=2)
    assert (ds.task, ds.n_classes, ds.y_train.dtype) == ("regression", 0, torch.float32)
    assert abs(float(ds.y_train.mean())) < 0.06 and abs(float(ds.y_train.std()) - 1.0) < 0.06


def test_sphere_is_deterministic_under_seed():
    kwargs = {"teacher": "relu", "label_noise": 0.1, "n_train": 50, "n_test": 20}
    assert_same(data.load("sphere", seed=7, **kwargs), data.load("sphere", seed=7, **kwargs))
    other = data.load("sphere", seed=8, **kwargs)
    assert not torch.equal(other.x_train, data.load("sphere", seed=7, **kwargs).x_train)


def test_sphere_test_set_does_not_depend_on_n_train():
    a, b = data.load("sphere", n_train=10, n_test=30), data.load("sphere", n_train=99, n_test=30)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_test, b.y_test)
    assert torch.equal(a.x_train, b.x_train[:10])


def test_sphere_label_noise_flips_the_requested_fraction():
    clean = data.load("sphere", n_train=20000, n_test=500)
    noisy = data.load("sphere", n_train=20000, n_test=500, label_noise=0.2)
    assert torch.equal(clean.x_train, noisy.x_train)
    flipped = float((clean.y_train != noisy.y_train).float().mean())
    assert abs(flipped - 0.2) < 0.015
    assert torch.equal(clean.y_test, noisy.y_test)  # the test set stays clean by default
    both = data.load("sphere", n_train=20000, n_test=500, label_noise=0.2, noise_on_test=True)
    assert 0.1 < float((clean.y_test != both.y_test).float().mean()) < 0.3


def test_sphere_regression_noise_has_the_requested_std():
    kwargs = {"task": "regression", "n_train": 20000, "n_test": 1}
    clean = data.load("sphere", **kwargs)
    noisy = data.load("sphere", label_noise=0.5, **kwargs)
    assert abs(float((noisy.y_train - clean.y_train).std()) - 0.5) < 0.02


def test_float64_and_to():
    ds = data.load("sphere", n_train=8, n_test=4, dtype=torch.float64)
    assert ds.x_train.dtype == torch.float64 and ds.y_train.dtype == torch.float64
    small = ds.to(dtype=torch.float32)
    assert small.x_test.dtype == torch.float32 and small.y_test.dtype == torch.float32
    assert torch.allclose(small.x_train.double(), ds.x_train)
    multi = data.load("digits", n_train=5, n_test=5).to(dtype=torch.float64)
    assert multi.y_train.dtype == torch.int64 and multi.x_train.dtype == torch.float64


# ---------------------------------------------------------------------------- real data


def test_mnist1d_shapes_and_classes():
    ds = data.load("mnist1d")
    assert ds.x_train.shape == (4000, 40) and ds.x_test.shape == (1000, 40)
    assert (ds.task, ds.n_classes, ds.in_dim) == ("multiclass", 10, 40)
    assert ds.y_train.dtype == torch.int64 and ds.y_train.unique().tolist() == list(range(10))
    pair = data.load("mnist1d", classes=[3, 5])
    assert pair.task == "binary" and set(pair.y_train.unique().tolist()) == {-1.0, 1.0}
    keep = (ds.y_train == 3) | (ds.y_train == 5)
    assert torch.equal(pair.x_train, ds.x_train[keep])
    assert torch.equal(pair.y_train == 1.0, ds.y_train[keep] == 5)


def test_mnist1d_leaves_the_global_numpy_rng_alone():
    np.random.seed(123)
    expected = np.random.rand(3)
    np.random.seed(123)
    data.load("mnist1d", num_samples=120)  # mnist1d reseeds the global RNGs internally
    assert np.array_equal(np.random.rand(3), expected)


def test_digits_shapes_range_and_subsets():
    ds = data.load("digits")
    assert (ds.n_train, ds.n_test, ds.in_dim, ds.n_classes) == (1438, 359, 64, 10)
    assert float(ds.x_train.min()) >= 0.0 and float(ds.x_train.max()) == 1.0
    pair = data.load("digits", classes=[8, 3])  # 8 -> -1, 3 -> +1
    keep = (ds.y_train == 8) | (ds.y_train == 3)
    assert torch.equal(pair.x_train, ds.x_train[keep])
    assert torch.equal(pair.y_train, torch.where(ds.y_train[keep] == 3, 1.0, -1.0))
    three = data.load("digits", classes=[5, 1, 7])
    assert (three.task, three.n_classes, three.meta["classes"]) == ("multiclass", 3, [5, 1, 7])
    keep = torch.isin(ds.y_train, torch.tensor([5, 1, 7]))
    mapped = torch.tensor([5, 1, 7])[three.y_train]
    assert torch.equal(mapped, ds.y_train[keep])


def test_n_train_subsets_are_seeded_rows_of_the_full_set():
    full = data.load("digits")
    sub = data.load("digits", n_train=100, n_test=30, seed=0)
    assert sub.x_train.shape == (100, 64) and sub.x_test.shape == (30, 64)
    assert_same(sub, data.load("digits", n_train=100, n_test=30, seed=0))
    rows = {tuple(r) for r in full.x_train.tolist()}
    assert all(tuple(r) in rows for r in sub.x_train.tolist())
    first = data.load("digits", n_train=10, subset="first")
    assert torch.equal(first.x_train, full.x_train[:10])


def test_standardize_then_sphere():
    ds = data.load("digits", standardize=True)
    std = ds.x_train.std(0, unbiased=False)
    varying = std > 0
    assert ds.x_train.mean(0).abs().max() < 1e-5
    assert torch.allclose(std[varying], torch.ones(int(varying.sum())), atol=1e-4)
    both = data.load("digits", standardize=True, sphere=True)
    assert torch.allclose(both.x_train, ds.x_train / ds.x_train.norm(dim=1, keepdim=True))
    assert both.meta["sphere"] and both.meta["options"]["standardize"]


# ---------------------------------------------------------------------------- files


def test_npz_with_split_keys(tmp_path):
    gen = np.random.default_rng(0)
    arrays = {"x_train": gen.random((6, 2, 3)), "y_train": np.array([0, 1, 2, 0, 1, 2])}
    arrays |= {"x_test": gen.random((3, 2, 3)), "y_test": np.array([2, 1, 0])}
    np.savez(tmp_path / "d.npz", **arrays)
    ds = data.load(tmp_path / "d.npz")
    assert ds.x_train.shape == (6, 6) and ds.task == "multiclass"
    assert torch.allclose(ds.x_test, torch.tensor(arrays["x_test"].reshape(3, 6)).float())
    assert ds.y_test.tolist() == [2, 1, 0]
    assert ds.meta["source"] == str((tmp_path / "d.npz").resolve())


def test_npz_with_x_y_is_split_with_the_seed(tmp_path):
    x = np.arange(40, dtype=float).reshape(20, 2)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(20) % 2 * 5)  # labels {0, 5}
    ds = data.load(str(tmp_path / "d.npz"), test_fraction=0.25, seed=4)
    assert (ds.n_train, ds.n_test, ds.task) == (15, 5, "binary")
    assert ds.meta["classes"] == [0, 5]
    together = torch.cat([ds.x_train, ds.x_test])[:, 0].sort().values
    assert torch.equal(together, torch.tensor(x[:, 0]).float())
    # label 5 <-> odd rows: x[:, 0] = 2 * row, so x % 4 == 2 exactly for label +1
    assert torch.equal(ds.y_train == 1.0, ds.x_train[:, 0] % 4 == 2)
    assert_same(ds, data.load(str(tmp_path / "d.npz"), test_fraction=0.25, seed=4))


def test_csv_without_header(tmp_path):
    rows = [f"{i},{i * 0.5},{i % 3}" for i in range(10)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    ds = data.load(tmp_path / "d.csv", test_fraction=0.3)
    assert (ds.n_train, ds.n_test, ds.in_dim, ds.n_classes) == (7, 3, 2, 3)
    x, y = torch.cat([ds.x_train, ds.x_test]), torch.cat([ds.y_train, ds.y_test])
    assert torch.equal(y, x[:, 0].long() % 3)


def test_csv_with_header_named_label_and_class_names(tmp_path):
    lines = ["kind,a,b"] + [f"{'cat' if i % 2 else 'dog'},{i},{-i}" for i in range(8)]
    (tmp_path / "d.csv").write_text("\n".join(lines))
    ds = data.load(tmp_path / "d.csv", label_column="kind")
    assert ds.task == "binary" and ds.meta["classes"] == ["cat", "dog"]
    x, y = torch.cat([ds.x_train, ds.x_test]), torch.cat([ds.y_train, ds.y_test])
    assert torch.equal(x[:, 1], -x[:, 0])
    assert torch.equal(y == -1.0, x[:, 0] % 2 == 1)  # cat (odd) -> -1
    by_index = data.load(tmp_path / "d.csv", label_column=0)
    assert_same(ds, by_index)


def test_meta_is_json_friendly(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n")
    for ds in (
        data.load("sphere", n_train=4, n_test=2, dtype=torch.float64, seed=5),
        data.load(tmp_path / "d.csv", label_column="label", standardize=True),
    ):
        meta = json.loads(json.dumps(ds.meta))
        assert meta["seed"] == ds.meta["seed"] and meta["options"] == ds.meta["options"]
    assert meta["classes"] == ["x", "y"] and meta["label_column"] == "label"


def test_csv_real_labels_are_regression(tmp_path):
    lines = ["x,y"] + [f"{i},{i / 7:.4f}" for i in range(10)]
    (tmp_path / "r.csv").write_text("\n".join(lines))
    ds = data.load(tmp_path / "r.csv")
    assert (ds.task, ds.n_classes, ds.y_train.dtype) == ("regression", 0, torch.float32)
    assert torch.allclose(ds.y_train, ds.x_train[:, 0] / 7, atol=1e-4)


# ---------------------------------------------------------------------------- local MNIST / CIFAR


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_files(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz=gz)
    ds = data.load(f"mnist:{tmp_path}")
    assert ds.x_train.shape == (12, 784) and ds.x_test.shape == (6, 784)
    expected = arrays["train-images-idx3-ubyte"].reshape(12, -1) / 255.0
    assert torch.allclose(ds.x_train, torch.tensor(expected).float())
    assert ds.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert (ds.n_classes, ds.task) == (10, "multiclass")


def test_read_idx_round_trip(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a-idx3-ubyte", array)
    assert np.array_equal(data.read_idx(tmp_path / "a-idx3-ubyte"), array)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_batches(tmp_path, protocol):
    batches = write_cifar(tmp_path, protocol=protocol)
    ds = data.load(f"cifar10:{tmp_path}")
    assert ds.x_train.shape == (20, 3072) and ds.x_test.shape == (4, 3072)
    expected = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)]) / 255
    assert torch.allclose(ds.x_train, torch.tensor(expected).float())
    assert ds.y_test.tolist() == batches["test_batch"][b"labels"]
    inner = data.load(f"cifar10:{tmp_path / 'cifar-10-batches-py'}")
    assert torch.equal(inner.x_test, ds.x_test)


# ---------------------------------------------------------------------------- errors


def _bad_npz(tmp_path: Path, **arrays: np.ndarray) -> Path:
    np.savez(tmp_path / "bad.npz", **arrays)
    return tmp_path / "bad.npz"


def test_unknown_dataset():
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar100'.*choose one of:.*sphere"):
        data.load("cifar100")


def test_unknown_option_names_the_key_and_the_allowed_keys():
    with pytest.raises(ValueError, match=r"unknown option 'nois'.*allowed options:.*label_noise"):
        data.load("sphere", nois=0.1)
    with pytest.raises(ValueError, match=r"unknown option 'teacher' for dataset 'digits'"):
        data.load("digits", teacher="relu")


def test_missing_files(tmp_path):
    with pytest.raises(ValueError, match=r"data file .*nothere\.npz not found"):
        data.load(tmp_path / "nothere.npz")
    with pytest.raises(
        ValueError, match=r"MNIST file train-images-idx3-ubyte .*not found in .*download it from"
    ):
        data.load(f"mnist:{tmp_path}")
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(ValueError, match=r"CIFAR-10 file data_batch_3 not found in .*place it"):
        data.load(f"cifar10:{tmp_path}")


def test_mismatched_lengths(tmp_path):
    path = _bad_npz(
        tmp_path,
        x_train=np.ones((4, 2)),
        y_train=np.ones(3),
        x_test=np.ones((2, 2)),
        y_test=np.ones(2),
    )
    with pytest.raises(ValueError, match=r"x_train has 4 rows but y_train has 3 labels"):
        data.load(path)


def test_nan_and_inf(tmp_path):
    x = np.ones((6, 2))
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"x_(train|test) contains 1 NaN/inf"):
        data.load(_bad_npz(tmp_path, x=x, y=np.arange(6) % 2))
    y = np.linspace(0, 1, 6)
    y[0] = np.inf
    with pytest.raises(ValueError, match=r"y_(train|test) contains 1 NaN/inf labels"):
        data.load(_bad_npz(tmp_path, x=np.ones((6, 2)), y=y))


def test_classes_not_present():
    with pytest.raises(ValueError, match=r"classes \[11\] not present in the training labels"):
        data.load("digits", classes=[3, 11])


def test_n_train_larger_than_available():
    with pytest.raises(ValueError, match=r"n_train=5000 is larger than the 1438 examples"):
        data.load("digits", n_train=5000)
    with pytest.raises(ValueError, match=r"n_test=100 is larger than the \d+ examples"):
        data.load("digits", classes=[0, 1], n_test=100)


def test_in_dim_mismatch():
    with pytest.raises(ValueError, match=r"in_dim=10 does not match .* dimension 64"):
        data.load("digits", in_dim=10)


def test_bad_option_values(tmp_path):
    # one wording for every config check (robustlab.data.DataConfig): "<field>: expected ..."
    with pytest.raises(ValueError, match=r"teacher: expected one of linear, relu, got 'tanh'"):
        data.load("sphere", teacher="tanh")
    with pytest.raises(
        ValueError, match=r"label_noise: expected a number in \[0, 1\].*flip probab"
    ):
        data.load("sphere", label_noise=1.5)
    with pytest.raises(ValueError, match=r"task='binary' needs exactly 2 classes"):
        data.load("digits", task="binary")
    with pytest.raises(ValueError, match=r"dtype: expected one of float32, float64"):
        data.load("digits", dtype=torch.int64)
    with pytest.raises(ValueError, match=r"seed: expected a non-negative integer"):
        data.load("sphere", seed=-1)


def test_cifar_pickle_with_foreign_objects_is_refused(tmp_path):
    write_cifar(tmp_path)
    evil = {b"data": collections.OrderedDict(), b"labels": []}
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(evil))
    with pytest.raises(ValueError, match=r"not a CIFAR-10 python batch: refusing .*OrderedDict"):
        data.load(f"cifar10:{tmp_path}")


def test_bad_idx_magic(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x08\x03\x00\x00" + bytes(10))
    with pytest.raises(ValueError, match=r"is not an idx file \(bad magic number"):
        data.load(f"mnist:{tmp_path}")
