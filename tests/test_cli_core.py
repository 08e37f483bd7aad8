"""The ``robustlab measure`` and ``robustlab theory`` commands.

Commands run in-process through ``robustlab.cli.main(argv)`` (output captured by capsys);
one test runs the installed console script in a subprocess to prove the entry point works.
Numbers printed by the CLI are compared with the library's own functions: the CLI is a
thin layer, so they must be equal (csv/json print floats with full precision).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import robustlab as rl
from robustlab.cli import main
from robustlab.metrics.at_init import stability_at_init
from robustlab.theory import expected_grad_sq_norm, init_stability_bound, kappa

D, M, L = 6, 16, 3  # the saved model's shape
TORCHSCRIPT_DEPRECATED = "ignore:`torch.jit:DeprecationWarning"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def parse_csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def strict_json(text: str):
    """json.loads that refuses NaN/Infinity (not JSON)."""

    def refuse(name: str):
        raise AssertionError(f"non-JSON constant {name} in output")

    return json.loads(text, parse_constant=refuse)


# ----------------------------------------------------------------------------- measure at init
def test_measure_csv_matches_library(capsys):
    code, out, err = run(
        capsys,
        "measure",
        "--init", "lecun,he",
        "--in-dim", "8",
        "--width", "16,32",
        "--depth", "3",
        "--eps", "0.1", "0.2",
        "--seeds", "2",
        "--points", "30",
        "--format", "csv",
    )  # fmt: skip
    assert (code, err) == (0, "")
    rows = parse_csv(out)
    assert len(rows) == 2 * 2 * 2
    assert [(r["init"], r["width"], r["depth"], r["eps"]) for r in rows] == [
        (i, w, "3", e) for i in ("lecun", "he") for w in ("16", "32") for e in ("0.1", "0.2")
    ]
    for r in rows:
        init, width, depth, eps = r["init"], int(r["width"]), int(r["depth"]), float(r["eps"])
        assert r["method"] == "exact" and r["seeds"] == "2" and r["points"] == "30"
        for col in ("p_mean", "p_stderr", "grad_sq_measured"):
            assert math.isfinite(float(r[col])) and float(r[col]) > 0, col
        assert float(r["grad_sq_theory"]) == pytest.approx(
            expected_grad_sq_norm(init, 8, width, depth), rel=1e-12
        )
        assert float(r["p_bound_theory"]) == pytest.approx(
            init_stability_bound(init, 8, width, depth, eps), rel=1e-12
        )
    # the measured columns are the library's stability_at_init, same seeds
    r = rows[-1]
    lib = stability_at_init(
        r["init"], 8, int(r["width"]), int(r["depth"]), float(r["eps"]), seeds=2, points=30
    )
    assert float(r["p_mean"]) == pytest.approx(lib["p_mean"], rel=1e-12)
    assert float(r["grad_sq_measured"]) == pytest.approx(lib["grad_sq_measured"], rel=1e-12)


def test_measure_json_is_strict_json(capsys):
    argv = ["measure", "--in-dim", "5", "--width", "16", "--depth", "3", "--seeds", "2"]
    argv += ["--points", "20", "--format", "json"]
    code, out, err = run(capsys, *argv, "--region", "sphere")
    assert (code, err) == (0, "")
    (row,) = strict_json(out)
    assert row["init"] == "lecun" and row["method"] == "exact"
    assert all(math.isfinite(row[c]) for c in ("p_mean", "p_stderr", "grad_sq_measured"))
    assert row["grad_sq_theory"] == pytest.approx(0.25, rel=1e-12)  # LeCun: 2^(1-L)
    bound = init_stability_bound("lecun", 5, 16, 3, 0.1, "sphere")
    assert row["p_bound_theory"] == pytest.approx(bound, rel=1e-12)
    # k = 3: the Jacobian method; the k = 1 columns do not apply and are null, never NaN
    code, out, err = run(capsys, *argv, "--out-dim", "3", "--samples", "8")
    assert (code, err) == (0, "")
    (row,) = strict_json(out)
    assert row["method"] == "jacobian" and math.isfinite(row["p_mean"])
    assert row["p_bound_theory"] is None and row["grad_sq_measured"] is None
    assert row["grad_sq_theory"] == pytest.approx(3 * 0.25, rel=1e-12)


def test_measure_table(capsys):
    code, out, err = run(
        capsys, "measure", "--in-dim", "5", "--width", "8", "--depth", "2:4", "--seeds", "2",
        "--points", "10", "--method", "mc", "--samples", "4",
    )  # fmt: skip
    assert (code, err) == (0, "")
    lines = out.strip().splitlines()
    assert len(lines) == 1 + 3
    assert lines[0].split() == [
        "init", "width", "depth", "eps", "method", "seeds", "points", "p_mean", "p_stderr",
        "p_bound_theory", "grad_sq_measured", "grad_sq_theory",
    ]  # fmt: skip
    assert [line.split()[2] for line in lines[1:]] == ["2", "3", "4"]
    assert all(line.split()[4] == "mc" for line in lines[1:])


# ----------------------------------------------------------------------------- theory
def test_theory_table_rows_and_values(capsys):
    code, out, err = run(
        capsys, "theory", "--init", "lecun,he,ntk", "--in-dim", "784", "--width", "512",
        "--depth", "2:12", "--format", "csv",
    )  # fmt: skip
    assert (code, err) == (0, "")
    rows = parse_csv(out)
    assert len(rows) == 3 * 11
    by_init = {name: [r for r in rows if r["init"] == name] for name in ("lecun", "he", "ntk")}
    for name, expected in (
        ("lecun", lambda L: 2.0 ** (1 - L)),
        ("he", lambda L: 2.0),
        ("ntk", lambda L: 784.0),
    ):
        assert [int(r["depth"]) for r in by_init[name]] == list(range(2, 13))
        for r in by_init[name]:
            depth = int(r["depth"])
            assert float(r["grad_sq"]) == pytest.approx(expected(depth), rel=1e-12)
            assert float(r["kappa_d"]) == pytest.approx(kappa(784), rel=1e-12)
            assert float(r["p_bound"]) == pytest.approx(
                init_stability_bound(name, 784, 512, depth, 0.1), rel=1e-12
            )
            s = rl.get_init(name).variances(784, 512, 1)
            assert (float(r["s1"]), float(r["s2"]), float(r["s3"])) == pytest.approx(s, rel=1e-12)


def test_custom_scheme_in_a_list(capsys):
    """Commas inside custom(...) do not split the --init list."""
    code, out, err = run(
        capsys, "theory", "--init", "lecun, custom(1,0.5,2)", "--in-dim", "4", "--width", "8",
        "--depth", "3", "--format", "csv",
    )  # fmt: skip
    assert (code, err) == (0, "")
    rows = parse_csv(out)
    assert [r["init"] for r in rows] == ["lecun", "custom(1,0.5,2)"]
    # (d s1 / 2) (m s2 / 2) (m s3) = 2 * 2 * 16
    assert float(rows[1]["grad_sq"]) == pytest.approx(64.0, rel=1e-12)
    code, out, err = run(
        capsys, "measure", "--init", "custom(1,0.5,2),he", "--in-dim", "4", "--width", "8",
        "--depth", "3", "--seeds", "1", "--points", "5", "--format", "csv",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert [r["init"] for r in parse_csv(out)] == ["custom(1,0.5,2)", "he"]


def test_theory_default_table_format(capsys):
    code, out, err = run(capsys, "theory", "--in-dim", "10", "--width", "8", "--depth", "3")
    assert (code, err) == (0, "")
    assert len(out.strip().splitlines()) == 1 + 3  # default inits lecun, he, ntk


def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("robustlab")
    assert exe.is_file(), f"console script not installed next to {sys.executable}"
    proc = subprocess.run(
        [str(exe), "theory", "--init", "lecun", "--in-dim", "10", "--width", "8",
         "--depth", "2:4", "--format", "json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = strict_json(proc.stdout)
    assert [r["grad_sq"] for r in rows] == pytest.approx([0.5, 0.25, 0.125], rel=1e-12)


# ----------------------------------------------------------------------------- saved models
@pytest.fixture
def files(tmp_path):
    """A saved robustlab model and a tiny .npz dataset with an explicit split."""
    net = rl.mlp(D, M, L, init="he", generator=torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    data = {
        "x_train": rng.standard_normal((20, D)).astype(np.float32),
        "y_train": rng.integers(0, 2, 20),
        "x_test": rng.standard_normal((10, D)).astype(np.float32),
        "y_test": rng.integers(0, 2, 10),
    }
    np.savez(tmp_path / "d.npz", **data)
    rl.save_model(net, tmp_path / "m.pt")
    return tmp_path, net, data


def measured(capsys, *argv: str) -> dict:
    code, out, err = run(capsys, "measure", *argv, "--format", "json")
    assert (code, err) == (0, ""), err
    (row,) = strict_json(out)
    return row


def test_measure_saved_model(capsys, files):
    tmp, net, data = files
    x_all = torch.from_numpy(np.concatenate([data["x_train"], data["x_test"]]))
    ref = rl.perturbation_stability(net, x_all, 0.1)
    row = measured(capsys, "--model", str(tmp / "m.pt"), "--data", str(tmp / "d.npz"))
    assert (row["method"], row["points"], row["eps"]) == ("exact", 30, 0.1)
    assert row["p_value"] == pytest.approx(ref.value, rel=1e-6)  # float32 throughout
    assert row["p_stderr"] == pytest.approx(ref.stderr, rel=1e-5)
    # --split and --points select the rows
    train = rl.perturbation_stability(net, torch.from_numpy(data["x_train"][:7]), 0.1)
    row = measured(
        capsys, "--model", str(tmp / "m.pt"), "--data", str(tmp / "d.npz"),
        "--split", "train", "--points", "7",
    )  # fmt: skip
    assert row["points"] == 7
    assert row["p_value"] == pytest.approx(train.value, rel=1e-6)
    # the saved file round-trips through the library loader
    loaded = rl.load_model(tmp / "m.pt")
    assert loaded.spec == net.spec
    for a, b in zip(loaded.parameters(), net.parameters(), strict=True):
        assert torch.equal(a, b)


def test_measure_on_unlabelled_points(capsys, files):
    """An .npz holding only x is enough: P needs no labels."""
    tmp, net, data = files
    np.savez(tmp / "x.npz", x=data["x_test"])
    ref = rl.perturbation_stability(net, torch.from_numpy(data["x_test"]), 0.05)
    row = measured(capsys, "--model", str(tmp / "m.pt"), "--data", str(tmp / "x.npz"),
                   "--eps", "0.05")  # fmt: skip
    assert row["points"] == 10
    assert row["p_value"] == pytest.approx(ref.value, rel=1e-6)
    np.savez(tmp / "bad.npz", x=np.arange(4.0))  # 1-D: not (N, ...)
    code, _, err = run(capsys, "measure", "--model", str(tmp / "m.pt"), "--data",
                       str(tmp / "bad.npz"))  # fmt: skip
    assert code == 2 and err.startswith("robustlab: error:") and "shape (N, ...)" in err


def test_measure_bare_state_dict_needs_the_shape(capsys, files):
    tmp, net, data = files
    torch.save(dict(net.state_dict()), tmp / "sd.pt")  # a plain dict: no robustlab record
    with_shape = measured(
        capsys, "--model", str(tmp / "sd.pt"), "--data", str(tmp / "d.npz"),
        "--in-dim", str(D), "--width", str(M), "--depth", str(L), "--init", "he",
    )  # fmt: skip
    full = measured(capsys, "--model", str(tmp / "m.pt"), "--data", str(tmp / "d.npz"))
    assert with_shape["p_value"] == pytest.approx(full["p_value"], rel=1e-12)
    code, out, err = run(
        capsys, "measure", "--model", str(tmp / "sd.pt"), "--data", str(tmp / "d.npz")
    )
    assert code == 2 and "holds only a state dict" in err and "--width" in err
    # a shape that does not fit the weights
    code, out, err = run(
        capsys, "measure", "--model", str(tmp / "sd.pt"), "--data", str(tmp / "d.npz"),
        "--in-dim", str(D), "--width", str(M + 1), "--depth", str(L), "--init", "he",
    )  # fmt: skip
    assert code == 2 and "do not fit the network" in err


@pytest.mark.filterwarnings(TORCHSCRIPT_DEPRECATED)  # creating the archives, not loading them
def test_measure_torchscript_models(capsys, files):
    tmp, net, data = files
    x_all = torch.from_numpy(np.concatenate([data["x_train"], data["x_test"]]))
    ref = rl.perturbation_stability(net, x_all, 0.1)
    torch.jit.trace(net, x_all[:2]).save(str(tmp / "traced.pt"))
    seq = nn.Sequential(*(nn.Linear(a, b, bias=False) for a, b in ((D, M), (M, M), (M, 1))))
    seq = nn.Sequential(seq[0], nn.ReLU(), seq[1], nn.ReLU(), seq[2])
    with torch.no_grad():
        for lin, layer in zip((seq[0], seq[2], seq[4]), net.layers, strict=True):
            lin.weight.copy_(layer.weight)
    torch.jit.script(seq).save(str(tmp / "scripted.pt"))
    for name in ("traced.pt", "scripted.pt"):
        row = measured(capsys, "--model", str(tmp / name), "--data", str(tmp / "d.npz"))
        assert row["p_value"] == pytest.approx(ref.value, rel=1e-6), name
        row = measured(
            capsys, "--model", str(tmp / name), "--data", str(tmp / "d.npz"), "--method", "mc",
            "--samples", "8",
        )  # fmt: skip
        assert math.isfinite(row["p_value"]) and row["method"] == "mc"


# ----------------------------------------------------------------------------- bad input
def assert_usage_error(capsys, *argv: str) -> str:
    """Exit code 2, nothing on stdout, one stderr line 'robustlab: error: ...', no traceback."""
    code, out, err = run(capsys, *argv)
    assert code == 2, (argv, code, err)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("robustlab: error: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--width", "0"], "--width must be positive integers, got 0"),
        (["--depth", "-1"], "--depth must be positive integers, got -1"),
        (["--width", "2.5"], "argument --width: expected integers or a range like 2:12, got '2.5'"),
        (["--depth", "5:2"], "bad range '5:2'"),
        (["--eps", "0"], "argument --eps: must be a positive number, got 0"),
        (["--eps", "nan"], "argument --eps: must be a positive number"),
        (["--seeds", "0"], "argument --seeds: expected a positive integer, got 0"),
        (["--method", "hessian"], "argument --method: invalid choice: 'hessian'"),
        (["--init", "glorot"], "unknown init scheme 'glorot'; choices: he, lecun, ntk, ntk_param"),
        (["--init", "custom(1,-1,1)"], "positive finite number"),
    ],
)
def test_measure_bad_arguments(capsys, args, message):
    base = {"--in-dim": "5", "--width": "8", "--depth": "3", "--seeds": "1", "--points": "5"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = [item for pair in base.items() for item in pair]
    line = assert_usage_error(capsys, "measure", *argv)
    assert message in line


def test_other_usage_errors(capsys):
    assert "measure needs --in-dim" in assert_usage_error(capsys, "measure", "--width", "8")
    assert "invalid choice: 'train'" in assert_usage_error(capsys, "train")
    assert "required" in assert_usage_error(capsys, "theory", "--in-dim", "5", "--width", "8")
    assert "--model needs --data" in assert_usage_error(capsys, "measure", "--model", "m.pt")
    line = assert_usage_error(capsys, "theory", "--init", ",", "--in-dim", "5", "--width", "8",
                              "--depth", "3")  # fmt: skip
    assert "--init needs at least one scheme name" in line


def test_model_file_errors(capsys, files):
    tmp, net, _ = files
    data = str(tmp / "d.npz")
    line = assert_usage_error(capsys, "measure", "--model", str(tmp / "nope.pt"), "--data", data)
    assert "nope.pt" in line and "not found" in line
    (tmp / "corrupt.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    line = assert_usage_error(capsys, "measure", "--model", str(tmp / "corrupt.pt"), "--data", data)
    assert "cannot load model file" in line
    line = assert_usage_error(
        capsys, "measure", "--model", str(tmp / "m.pt"), "--data", str(tmp / "nope.npz")
    )
    assert "nope.npz" in line and "not found" in line
    line = assert_usage_error(
        capsys, "measure", "--model", str(tmp / "m.pt"), "--data", data, "--width", "8,16",
        "--depth", "3", "--in-dim", str(D),
    )  # fmt: skip
    assert "one --width and one --depth" in line


class Payload:
    """Unpickling this object calls os.mkdir(marker): proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickled_objects_are_never_unpickled(capsys, files):
    tmp, _, _ = files
    # control: the payload does run when unpickled, so the marker check below can fail
    control = tmp / "control"
    pickle.loads(pickle.dumps(Payload(str(control))))
    assert control.is_dir()
    for name, write in (
        ("plain.pkl", lambda obj, path: path.write_bytes(pickle.dumps(obj))),
        ("saved.pt", lambda obj, path: torch.save(obj, path)),
        ("in_dict.pt", lambda obj, path: torch.save({"spec": obj, "state_dict": {}}, path)),
    ):
        marker = tmp / f"pwned_{name}"
        write(Payload(str(marker)), tmp / name)
        line = assert_usage_error(
            capsys, "measure", "--model", str(tmp / name), "--data", str(tmp / "d.npz")
        )
        assert "cannot load model file" in line, line
        assert not marker.exists(), f"{name}: the pickled payload was executed"
