"""Every way of saving a model, through ``robustlab measure --model`` (robustlab.cli.main).

The CLI must print the P the library computes on the same model in memory: robustlab files
(MLP incl. ntk_param and mean-field, CNN, ResNet), bare state dicts (with robustlab's record,
or of the user's own class via --model-class), TorchScript, torch.export .pt2. A pickled
whole model is refused in one line that says how to save it. Bad input: exit 2, one line.
"""

from __future__ import annotations

import io
import json
import pickle
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import robustlab as rl
from robustlab.cli import main

USER_MODULE = '''
import torch
from torch import nn


class TwoHead(nn.Module):
    """A user's network: a conv trunk returning logits and features in a dict."""

    def __init__(self, width=4, classes=3):
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3, padding=1)
        self.fc = nn.Linear(width, classes)

    def forward(self, x):
        h = torch.relu(self.conv(x)).mean((2, 3))
        return {"logits": self.fc(h), "features": h}


class Broken(torch.nn.Module):
    def __init__(self, **kwargs):
        raise RuntimeError("this class always fails")


class Flat(torch.nn.Sequential):
    def __init__(self):
        super().__init__(torch.nn.Linear(25, 2))
'''


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A folder with the user's module, image data (x (N, 1, 5, 5), labels 0..2) and only
    inputs (.npy, .pt); the CLI runs from there (module imports are undone after)."""
    (tmp_path / "usernet_io.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "usernet_io", raising=False)
    rng = np.random.default_rng(0)
    x = rng.random((30, 1, 5, 5)).astype(np.float32)
    y = rng.integers(0, 3, 30)
    np.savez(tmp_path / "img.npz", x_train=x[:20], y_train=y[:20], x_test=x[20:], y_test=y[20:])
    np.save(tmp_path / "img.npy", x)
    torch.save(torch.from_numpy(x), tmp_path / "img.pt")
    return tmp_path, torch.from_numpy(x), torch.from_numpy(y)


def measure(capsys, *argv: str) -> dict:
    code = main(["measure", *argv, "--format", "json"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    (row,) = json.loads(out)
    return row


def usage_error(capsys, *argv: str) -> str:
    code = main(["measure", *argv])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert (code, out, len(lines)) == (2, "", 1), (code, err)
    assert lines[0].startswith("robustlab: error: ") and "\x1b" not in err
    return lines[0]


def p_of(model, x, **kw) -> float:
    kw.setdefault("generator", torch.Generator().manual_seed(0))
    return rl.perturbation_stability(model, x, 0.1, **kw).value


# ----------------------------------------------------------------------------- robustlab files
@pytest.mark.parametrize("how", ["save_model", "state_dict"])
@pytest.mark.parametrize(("init", "mean_field"), [("ntk_param", False), ("he", True)])
def test_ntk_param_and_mean_field_mlps_give_the_p_in_memory(
    capsys, tmp_path, how, init, mean_field
):
    """The forward multipliers (sqrt(2/d), ..., or 1/m) are not in the weights: the file's
    record carries them, so the loaded P equals the in-memory P (it was 10-100x off when a
    bare state dict was rebuilt as a standard-parameterization MLP)."""
    net = rl.mlp(
        8, 64, 2 if mean_field else 3, init=init, mean_field=mean_field, generator=seeded(0)
    )
    x = torch.randn(25, 8, generator=seeded(1))
    np.savez(tmp_path / "x.npz", x=x.numpy())
    if how == "save_model":
        rl.save_model(net, tmp_path / "m.pt")
    else:
        torch.save(net.state_dict(), tmp_path / "m.pt")
    row = measure(capsys, "--model", str(tmp_path / "m.pt"), "--data", str(tmp_path / "x.npz"))
    assert row["p_value"] == pytest.approx(p_of(net, x), rel=1e-6)
    # the same weights in a standard-parameterization MLP (what a rebuild without the
    # multipliers gives) is far off
    wrong = rl.mlp(8, 64, 2 if mean_field else 3, init="he")
    wrong.load_state_dict(net.state_dict())
    assert p_of(wrong, x) > 10 * p_of(net, x)


def test_bare_state_dict_without_record_needs_init(capsys, tmp_path):
    net = rl.mlp(8, 64, 3, init="ntk_param", generator=seeded(0))
    x = torch.randn(25, 8, generator=seeded(1))
    np.savez(tmp_path / "x.npz", x=x.numpy())
    torch.save(dict(net.state_dict()), tmp_path / "sd.pt")  # a plain dict: no record
    shape = ["--in-dim", "8", "--width", "64", "--depth", "3"]
    args = ["--model", str(tmp_path / "sd.pt"), "--data", str(tmp_path / "x.npz"), *shape]
    assert "give --init" in usage_error(capsys, *args)
    row = measure(capsys, *args, "--init", "ntk_param")
    assert row["p_value"] == pytest.approx(p_of(net, x), rel=1e-6)
    # a record that disagrees with the flags is an error, not a silent choice
    torch.save(net.state_dict(), tmp_path / "rec.pt")
    args[1] = str(tmp_path / "rec.pt")
    assert "records init='ntk_param', not 'he'" in usage_error(capsys, *args, "--init", "he")


@pytest.mark.parametrize("family", ["cnn", "resnet"])
def test_cnn_and_resnet_files(capsys, workdir, family):
    tmp, x, y = workdir
    build = {"cnn": rl.cnn, "resnet": rl.resnet}[family]
    kw = {"norm": "batch"} if family == "resnet" else {}
    net = build((1, 5, 5), 4, 2, out_dim=3, init="he", generator=seeded(2), **kw)
    rl.save_model(net, tmp / "net.pt")
    row = measure(capsys, "--model", "net.pt", "--data", "img.npz", "--split", "test")
    assert row["method"] == "jacobian" and row["points"] == 10
    assert row["p_value"] == pytest.approx(p_of(net, x[20:]), rel=1e-5)
    # margin of the true class: labels come from the data set
    row = measure(capsys, "--model", "net.pt", "--data", "img.npz", "--output", "margin")
    assert row["method"] == "exact" and row["output"] == "margin"
    ref = p_of(net, torch.cat([x[:20], x[20:]]), output="margin", y=y)
    assert row["p_value"] == pytest.approx(ref, rel=1e-5)


# ----------------------------------------------------------------------------- users' models
def test_state_dict_of_the_users_class(capsys, workdir):
    tmp, x, _ = workdir
    sys.path.insert(0, str(tmp))
    from usernet_io import TwoHead

    net = TwoHead(width=6)
    torch.save(net.state_dict(), tmp / "user.pt")
    args = ["--model", "user.pt", "--model-class", "usernet_io:TwoHead", "--data", "img.npy"]
    row = measure(capsys, *args, "--model-kwargs", '{"width": 6}', "--output", "logits")
    assert row["p_value"] == pytest.approx(p_of(net, x, output="logits"), rel=1e-5)
    row = measure(capsys, *args, "--model-kwargs", '{"width": 6}', "--output", "features")
    assert row["p_value"] == pytest.approx(p_of(net, x, output="features"), rel=1e-5)
    # input files: .pt tensor, flattened by --input-shape for a model taking (N, 25)
    flat = torch.nn.Sequential(torch.nn.Linear(25, 2))
    torch.save(flat.state_dict(), tmp / "flat.pt")
    row = measure(
        capsys, "--model", "flat.pt", "--model-class", "usernet_io:Flat", "--data", "img.pt",
        "--input-shape", "25",
    )  # fmt: skip
    assert row["p_value"] == pytest.approx(p_of(flat, x.reshape(30, 25)), rel=1e-5)
    bad = [
        (["--model-class", "usernet_io"], "must look like package.module:Class"),
        (["--model-class", "nowhere_xyz:Net"], "cannot import 'nowhere_xyz'"),
        (["--model-class", "usernet_io:Missing"], "has no attribute 'Missing'"),
        (["--model-class", "usernet_io:TwoHead", "--model-kwargs", "{width: 6}"], "not valid JSON"),
        (["--model-class", "usernet_io:TwoHead", "--model-kwargs", "[6]"], "must be a JSON object"),
        (["--model-class", "usernet_io:Broken"], "always fails"),
        (["--model-class", "usernet_io:TwoHead", "--model-kwargs", '{"width": 5}'], "do not fit"),
        (["--model-class", "usernet_io:TwoHead", "--model-kwargs", '{"width": 6}'], "choose one"),
    ]
    for extra, message in bad:
        line = usage_error(capsys, "--model", "user.pt", "--data", "img.npy", *extra)
        assert message in line, line


def test_torchscript_and_torch_export(capsys, workdir):
    tmp, x, _ = workdir
    net = rl.cnn((1, 5, 5), 4, 3, out_dim=3, init="he", generator=seeded(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # creating the archive only
        torch.jit.script(net).save(str(tmp / "scripted.pt"))
    dynamic = torch.export.export(net, (x[:4],), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(dynamic, tmp / "dynamic.pt2")
    torch.export.save(torch.export.export(net, (x[:4],)), tmp / "static.pt2")
    ref = p_of(net, x)
    for name in ("scripted.pt", "dynamic.pt2", "static.pt2"):
        row = measure(capsys, "--model", name, "--data", "img.npy", "--device", "cpu")
        assert row["p_value"] == pytest.approx(ref, rel=1e-5), name
    line = usage_error(
        capsys, "--model", "dynamic.pt2", "--data", "img.npy", "--model-class", "a:B"
    )
    assert "--model-class: applies to state dicts; 'dynamic.pt2' is a torch.export archive" in line


@pytest.mark.parametrize("n", [7, 30, 31, 100])
def test_exported_programs_are_called_at_their_own_batch_sizes(capsys, tmp_path, n):
    """A program exported at batch 30 takes 30 rows only (probing one point failed even on
    30 points), one with Dim("batch", min=4, max=16) takes 4..16: the points go through in
    chunks of those sizes, the last one padded, and P is the in-memory P, for the reverse-mode
    Jacobian and for forward-mode JVPs (mc)."""
    net = rl.mlp(6, 16, 2, out_dim=3, init="he", generator=seeded(5))
    x = torch.randn(n, 6, generator=seeded(6))
    np.save(tmp_path / "x.npy", x.numpy())
    example = torch.randn(8, 6, generator=seeded(7))
    batch = {
        "static30": ((torch.randn(30, 6, generator=seeded(8)),), None),
        "dynamic": ((example,), ({0: torch.export.Dim("batch")},)),
        "bounded": ((example,), ({0: torch.export.Dim("batch", min=4, max=16)},)),
    }
    for name, (args, dynamic_shapes) in batch.items():
        program = torch.export.export(net, args, dynamic_shapes=dynamic_shapes)
        torch.export.save(program, tmp_path / f"{name}.pt2")
        for method, extra in (("jacobian", ()), ("mc", ("--samples", "8"))):
            args = ["--model", str(tmp_path / f"{name}.pt2"), "--data", str(tmp_path / "x.npy")]
            row = measure(capsys, *args, "--method", method, *extra)
            ref = p_of(net, x, method=method, n_samples=8 if method == "mc" else None)
            assert (row["method"], row["points"]) == (method, n)
            assert row["p_value"] == pytest.approx(ref, rel=1e-6), (name, method)


def test_a_state_dict_that_does_not_fit_names_every_misfit_on_one_line(capsys, workdir):
    """torch's error is several lines (missing, unexpected, size mismatch) and the CLI shows
    one: the library words all of it on one line, long lists cut with a count."""
    tmp, _, _ = workdir
    sys.path.insert(0, str(tmp))
    from usernet_io import TwoHead

    state = TwoHead(width=6).state_dict()  # the model is TwoHead(width=4)
    del state["fc.bias"]
    state.update({f"head.{i}.weight": torch.zeros(2) for i in range(7)})
    torch.save(state, tmp / "user.pt")
    line = usage_error(
        capsys, "--model", "user.pt", "--model-class", "usernet_io:TwoHead", "--data", "img.npy"
    )
    assert line == (
        "robustlab: error: the weights in 'user.pt' do not fit the network (TwoHead): "
        "missing 1 key (fc.bias); unexpected 7 keys (head.0.weight, head.1.weight, "
        "head.2.weight, head.3.weight, head.4.weight, +2 more); size mismatch in 3 keys "
        "(conv.weight: file 6x1x3x3 vs model 4x1x3x3, conv.bias: file 6 vs model 4, "
        "fc.weight: file 3x6 vs model 3x4)"
    )


def test_a_refusal_beyond_keys_and_shapes_keeps_torchs_whole_message(tmp_path):
    class Refusing(torch.nn.Linear):
        """Keys and shapes fit; a load hook refuses in two lines."""

        def __init__(self):
            super().__init__(2, 1)
            self.register_load_state_dict_pre_hook(self.refuse)

        def refuse(self, *args):
            raise RuntimeError("first line\n\tsecond line")

    torch.save(torch.nn.Linear(2, 1).state_dict(), tmp_path / "w.pt")
    with pytest.raises(ValueError, match=r"\(Refusing\): first line second line$"):
        rl.load_model(tmp_path / "w.pt", model_class=Refusing)


def test_whole_pickled_model_is_refused_with_the_fix(capsys, workdir):
    tmp, _, _ = workdir
    sys.path.insert(0, str(tmp))
    from usernet_io import TwoHead

    torch.save(TwoHead(), tmp / "whole.pt")
    line = usage_error(capsys, "--model", "whole.pt", "--data", "img.npy")
    assert "holds a pickled Python object (usernet_io.TwoHead" in line
    assert "never unpickles" in line and "torch.save(model.state_dict()" in line
    assert "--model-class" in line and "torch.export" in line


def test_bad_input_on_the_new_options(capsys, workdir):
    tmp, _, _ = workdir
    net = rl.cnn((1, 5, 5), 4, 2, out_dim=3, generator=seeded(0))
    rl.save_model(net, tmp / "net.pt")
    base = ["--model", "net.pt", "--data", "img.npz"]
    cases = [
        (["--device", "tpu9"], "device must be auto, cpu, cuda or cuda:N"),
        (["--input-shape", "2,3"], "input shape (2, 3) holds 6 values"),
        (["--input-shape", "0,5"], "expected positive sizes"),
        (["--output", "logits"], "output='logits' does not apply"),
        (["--output", "7"], "output=7 but the output has k = 3 columns"),
        (["--output", "a,,b"], "expected e.g. 0, logits, margin"),
        (["--clip", "0,1", "--method", "mc"], "clip applies to method='finite_difference'"),
        (["--clip", "1"], "expected LO,HI"),
        (["--method", "exact"], "needs a scalar output (k = 1), the model has k = 3"),
        (["--region", "cube"], "invalid choice: 'cube'"),
    ]
    for extra, message in cases:
        assert message in usage_error(capsys, *base, *extra), extra
    line = usage_error(capsys, "--model", "net.pt", "--data", "img.npy", "--output", "margin")
    assert "needs labels" in line
    torch.save({"x": torch.zeros(2, 25), "f": print}, tmp / "evil.pt")
    assert "weights_only" in usage_error(capsys, "--model", "net.pt", "--data", "evil.pt")
    line = usage_error(capsys, "--in-dim", "5", "--width", "8", "--depth", "2", "--output", "0")
    assert "--output applies to --model FILE" in line
    (tmp / "x.npy").write_bytes(b"not an array")
    assert "cannot read" in usage_error(capsys, "--model", "net.pt", "--data", "x.npy")


def test_linf_region_and_clip_on_the_command_line(capsys, workdir):
    tmp, x, _ = workdir
    net = rl.cnn((1, 5, 5), 4, 2, out_dim=1, init="he", generator=seeded(4))
    rl.save_model(net, tmp / "net.pt")
    row = measure(capsys, "--model", "net.pt", "--data", "img.npy", "--region", "linf_ball")
    assert row["method"] == "jacobian" and row["region"] == "linf_ball"
    assert row["p_value"] == pytest.approx(p_of(net, x, region="linf_ball"), rel=1e-5)
    row = measure(
        capsys, "--model", "net.pt", "--data", "img.npy", "--method", "finite_difference",
        "--clip", "0,1", "--samples", "16",
    )  # fmt: skip
    ref = p_of(net, x, method="finite_difference", clip=(0, 1), n_samples=16)
    assert row["p_value"] == pytest.approx(ref, rel=1e-5)


def test_measure_saved_is_the_library_side_of_measure_model(tmp_path):
    net = rl.mlp(5, 16, 3, init="ntk_param", generator=torch.Generator().manual_seed(3))
    rl.save_model(net, tmp_path / "net.pt")
    x = torch.nn.functional.normalize(
        torch.randn(40, 5, generator=torch.Generator().manual_seed(4)), dim=1
    )
    np.savez(tmp_path / "pts.npz", x=x.numpy())
    seen = []
    rows = rl.measure_saved(tmp_path / "net.pt", tmp_path / "pts.npz", [0.1, 0.2],
                            progress=lambda done, total: seen.append((done, total)))  # fmt: skip
    for row, eps in zip(rows, (0.1, 0.2), strict=True):
        want = rl.perturbation_stability(net, x, eps).value
        assert row["eps"] == eps and row["p_value"] == pytest.approx(want, rel=1e-6)
    assert seen[-1] == (80, 80)


class _Plant:
    """A pickle that, if ever unpickled, makes the folder named in it (the side effect the
    hostile-archive tests look for)."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        import os

        return (os.mkdir, (self.target,))


def _legacy_pickle(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def _zip_of(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def _with_record(src: Path, dst: Path, name: str, data: bytes) -> Path:
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b:
        for n in a.namelist():
            b.writestr(n, a.read(n))
        b.writestr(f"{a.namelist()[0].split('/')[0]}/{name}", data)
    return dst


def test_crafted_export_archives_run_no_code(capsys, workdir):
    # a genuine torch.export archive plus one record torch would unpickle with
    # weights_only=False (plain torch.export.load runs it): refused, one line, exit 2, and
    # the planted folder never appears
    tmp, x, _ = workdir
    net = rl.cnn((1, 5, 5), 4, 2, out_dim=3, init="he", generator=seeded(3))
    program = torch.export.export(net, (x[:4],), dynamic_shapes=({0: torch.export.Dim("b")},))
    torch.export.save(program, tmp / "ok.pt2")
    plant = tmp / "PLANTED"
    evil = pickle.dumps(_Plant(str(plant)), protocol=2)
    benign = pickle.dumps({}, protocol=2)
    records = {
        "legacy": _legacy_pickle(_Plant(str(plant))),  # the object is its 4th pickle
        "decoy": _zip_of({"a/data.pkl": benign, "a/version": b"3\n", "z/data.pkl": evil}),
        "nested": _zip_of({"a/inner.pt": _zip_of({"b/data.pkl": evil})}),
    }
    for kind, data in records.items():
        for where in ("data/weights/model.pt", "data/constants/model.pt"):
            path = _with_record(tmp / "ok.pt2", tmp / f"{kind}.pt2", where, data)
            line = usage_error(capsys, "--model", path.name, "--data", "img.npy")
            assert "cannot load" in line and "ok.pt2" not in line, (kind, where, line)
            assert not plant.exists(), (kind, where)
    row = measure(capsys, "--model", "ok.pt2", "--data", "img.npy", "--device", "cpu")
    assert row["p_value"] == pytest.approx(p_of(net, x), rel=1e-5)


def test_the_scan_reads_every_pickle(tmp_path):
    # the pre-scan names the planted global wherever it hides in a file
    from robustlab.models._pickles import foreign_globals

    evil = pickle.dumps(_Plant("x"), protocol=2)
    benign = pickle.dumps({}, protocol=2)
    cases = {
        "legacy.pt": _legacy_pickle(_Plant("x")),
        "decoy.pt": _zip_of({"a/data.pkl": benign, "z/data.pkl": evil}),
        "nested.pt": _zip_of({"a/inner.pt": _zip_of({"b/data.pkl": evil})}),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert any(g.endswith(".mkdir") for g in foreign_globals(tmp_path / name)), name
    (tmp_path / "plain.pt").write_bytes(_legacy_pickle({"w": torch.ones(2)}))
    assert foreign_globals(tmp_path / "plain.pt") == []
