"""Data sets carry x_shape; .pt and .npy files; load_points for measuring models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustlab import data


def test_x_shape_of_files_and_builtins(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((20, 2, 3, 4))
    np.savez(tmp_path / "img.npz", x=x, y=np.arange(20) % 3)
    ds = data.load(tmp_path / "img.npz", seed=1)
    assert ds.x_shape == (2, 3, 4) and ds.in_dim == 24 and ds.x_train.shape == (16, 24)
    images = ds.inputs("all")
    assert images.shape == (20, 2, 3, 4)
    # the inputs come back unchanged (float32), in the split's order: match rows by entry 0
    got = images.reshape(20, -1).double().numpy()
    want = x.reshape(20, -1)
    got, want = got[np.argsort(got[:, 0])], want[np.argsort(want[:, 0])]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert data.load("digits").x_shape == (1, 8, 8)
    assert data.load("sphere", in_dim=7, n_train=5, n_test=5).x_shape == (7,)
    with pytest.raises(ValueError, match="unknown split 'val'"):
        ds.inputs("val")


def test_pt_data_sets_load_with_weights_only(tmp_path):
    x, y = torch.rand(30, 1, 4, 4), torch.arange(30) % 2
    torch.save({"x": x, "y": y}, tmp_path / "d.pt")
    ds = data.load(tmp_path / "d.pt", seed=0)
    assert (ds.task, ds.x_shape, ds.n_train + ds.n_test) == ("binary", (1, 4, 4), 30)
    split = {"x_train": x[:20], "y_train": y[:20], "x_test": x[20:], "y_test": y[20:]}
    torch.save(split, tmp_path / "s.pt")
    ds = data.load(tmp_path / "s.pt")
    torch.testing.assert_close(ds.inputs("test"), x[20:])
    torch.save({"x": x, "y": y, "f": print}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="never unpickled") as err:
        data.load(tmp_path / "evil.pt")
    assert "\x1b" not in str(err.value)
    torch.save(x, tmp_path / "bare.pt")
    with pytest.raises(ValueError, match="needs a dict with x and y"):
        data.load(tmp_path / "bare.pt")
    np.save(tmp_path / "x.npy", x.numpy())
    with pytest.raises(ValueError, match="a .npy file: inputs without labels"):
        data.load(tmp_path / "x.npy")


def test_load_points(tmp_path):
    x = torch.rand(12, 1, 4, 4)
    np.save(tmp_path / "x.npy", x.numpy())
    torch.save(x, tmp_path / "x.pt")
    torch.save({"x": x}, tmp_path / "xd.pt")
    np.savez(tmp_path / "x.npz", x=x.numpy())
    for name in ("x.npy", "x.pt", "xd.pt", "x.npz"):
        pts, labels = data.load_points(tmp_path / name)
        assert labels is None and torch.equal(pts, x), name
    flat, _ = data.load_points(tmp_path / "x.npy", input_shape=(16,))
    assert flat.shape == (12, 16)
    pts, labels = data.load_points("digits", split="test")
    assert pts.shape == (359, 1, 8, 8) and labels.shape == (359,)
    cases = [
        ((tmp_path / "nope.npy",), {}, "not found"),
        ((tmp_path / "x.npy",), {"split": "val"}, "unknown split 'val'"),
        ((tmp_path / "x.npy",), {"input_shape": (3, 5)}, r"input shape \(3, 5\) holds 15 values"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            data.load_points(*args, **kwargs)
    np.save(tmp_path / "one.npy", np.arange(4.0))
    with pytest.raises(ValueError, match=r"shape \(N, ...\)"):
        data.load_points(tmp_path / "one.npy")
