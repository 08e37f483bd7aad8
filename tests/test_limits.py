"""Bad input that is too big, too deep or malformed: one line, exit 2, nothing written.

Every hostile file is built here. The CLI runs in-process (``robustlab.cli.main``); the
machine's memory is pinned to 16 GB so that a size is refused the same way on any machine
(the checks compare a lower bound of what a run needs with ``_checks.memory_limit()``).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import robustlab as rl
from robustlab import _checks
from robustlab._checks import MAX_AXIS, short
from robustlab.cli import main
from robustlab.sweep.config import load_config

MEMORY = 16e9  # bytes: the machine every test here runs on


@pytest.fixture(autouse=True)
def pinned_memory(monkeypatch):
    monkeypatch.setattr(_checks, "memory_limit", lambda: MEMORY)


def refused(capsys, *argv: str) -> str:
    """Exit 2, nothing on stdout, one short stderr line 'robustlab: error: ...'."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, err[:1000]
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err[:1000]
    assert lines[0].startswith("robustlab: error: ")
    assert len(lines[0]) < 300, lines[0][:1000]
    assert "Traceback" not in err
    return lines[0]


# ----------------------------------------------------------------------------- measure, theory
MEASURE = ["measure", "--in-dim", "20", "--width", "256", "--depth", "5", "--seeds", "1"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"--width": "10000000"}, "--width: measuring 1000 points of dimension 20 on networks of "
         "width 10000000 and depth 5 needs at least 1.2 PB of memory, more than the "
         "16 GB"),
        ({"--points": "1000000000"}, "--points: measuring 1000000000 points"),
        ({"--in-dim": "1000000000"}, "of dimension 1000000000"),
        ({"--depth": "1:1000000000"}, "argument --depth: range '1:1000000000' has 1000000000 "
         f"values; at most {MAX_AXIS}"),
        ({"--width": "99999999999999999999999"}, "argument --width: '99999999999999999999999' "
         "is out of range (at most 9223372036854775807)"),
        ({"--width": "9" * 5000}, "is out of range"),
        ({"--width": ",".join(["8"] * (MAX_AXIS + 1))}, f"more than {MAX_AXIS} values"),
        ({"--seeds": "1000000000"}, f"argument --seeds: expected at most {MAX_AXIS}"),
        ({"--init": "x" * 100_000}, "unknown init scheme 'xxx"),
    ],
    ids=["width", "points", "in-dim", "depth-range", "width-int64", "width-digits",
         "width-list", "seeds", "init-long"],
)  # fmt: skip
def test_measure_refuses_absurd_sizes(capsys, changes, message):
    args = dict(zip(MEASURE[1::2], MEASURE[2::2], strict=True))
    args.update(changes)
    line = refused(capsys, "measure", *[x for pair in args.items() for x in pair])
    assert message in line


def test_theory_after_training_refuses_kernels_beyond_memory(capsys):
    line = refused(capsys, "theory", "--after-training", "--n-train", "1000000", "--depth", "2")
    assert "--n-train: the lazy limit on 1000000 training and 500 evaluation points" in line
    assert "needs at least 32 TB of memory, more than the 16 GB this process may use" in line


def test_theory_refuses_a_seed_beyond_int64(capsys):
    line = refused(capsys, "theory", "--in-dim", "5", "--width", "8", "--depth", "2",
                   "--seed", str(10**23))  # fmt: skip
    assert "argument --seed: '100000000000000000000000' is out of range" in line


def test_library_refuses_before_allocating():
    with pytest.raises(ValueError, match=r"^width: an MLP of \d+ parameters needs at least"):
        rl.mlp(10, 10**7, 4)
    with pytest.raises(ValueError, match=r"^points: measuring 10000000000 points"):
        rl.metrics.at_init.stability_at_init("lecun", 10, 8, 2, 0.1, points=10**10)


# ----------------------------------------------------------------------------- sweep configs
BASE = """\
name: limits
data: {name: sphere, n_train: 20, n_test: 10, in_dim: 3}
grid: {width: [4], depth: [2]}
seeds: 1
train: {steps: 3}
measure: {points: 10}
"""


def alias_bomb(levels: int = 9) -> str:
    """Nine aliases of nine aliases ...: 9^levels values in a few hundred bytes."""
    names = [f"l{i}" for i in range(levels)]
    lines = [f'{names[0]}: &{names[0]} ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for prev, name in zip(names, names[1:], strict=False):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\n"


SWEEPS = {
    "width-range": (BASE.replace("width: [4]", 'width: "1:1000000000"'),
                    "grid.width: range '1:1000000000' has 1000000000 values; at most 10000"),
    "seeds": (BASE.replace("seeds: 1", "seeds: 1000000000"),
              "seeds: expected an integer <= 10000, got 1000000000"),
    "seed-value": (BASE.replace("seeds: 1", "seeds: [100000000000000000000000]"),
                   "seeds[0]: expected an integer <= 9223372036854775807, got 1000000000000"),
    "n_train": (BASE.replace("n_train: 20", "n_train: 1000000000000"),
                "data.n_train: a draw of 1000000000010 points of dimension 3 needs at least"),
    "in_dim": (BASE.replace("in_dim: 3", "in_dim: 1000000000"),
               "data.in_dim: a draw of 30 points of dimension 1000000000 needs at least"),
    "width": (BASE.replace("depth: [2]", "depth: [4]").replace("width: [4]", "width: [10000000]"),
              "grid.width: a cell of width 10000000 and depth 4"),
    "lazy-limit": (BASE.replace("n_train: 20", "n_train: 1000000")
                   .replace("points: 10}", "points: 10, lazy_limit: true}"),
                   "data.n_train: a cell of width 4 and depth 2 with 1000000 training"),
    "cells": (BASE.replace("width: [4]", 'width: "1:10000"').replace("depth: [2]", 'depth: "2:90"'),
              "grid: 10000 x 89 x 1 x 1 x 1 x 1 (widths x depths x inits x regimes x alphas x "
              "seeds) = 890000 cells; at most 100000: split the sweep"),
    "steps": (BASE.replace("steps: 3", "steps: 100000000000000000000"),
              "train.steps: expected an integer <= 1000000000, got 100000000000000000000"),
    "digits": (BASE.replace("steps: 3", "steps: " + "9" * 5000),
               "is refused: an integer of 5000 characters (at most 1000) at line 5"),
    "nesting": (BASE + "deep: " + "[" * 10_000 + "]" * 10_000 + "\n",
                "is refused: nesting deeper than 32 levels at line 7"),
    "alias-bomb": (alias_bomb() + BASE,
                   "is refused: more than 100000 values once aliases are expanded at line 6"),
    "alias-self": ("loop: &a [1, *a]\n" + BASE, "is refused: alias *a inside its own anchor"),
    "duplicate": (BASE + "grid: {width: [8], depth: [3]}\n",
                  "is not valid YAML: duplicate key 'grid' (first on line 3) at line 7, column 1"),
    "duplicate-nested": (BASE.replace("steps: 3", "steps: 3, steps: 4"),
                         "duplicate key 'steps' (first on line 5) at line 5, column 19"),
    "big-file": (BASE + "#" * (1 << 20) + "\n", "is larger than 1 MiB"),
    "long-string": (BASE.replace("name: sphere", "name: " + "s" * 100_000),
                    "data.name: unknown dataset 'sssss"),
    "long-list": (BASE.replace("name: limits", f"name: [{', '.join(['1'] * 9000)}]"),
                  "name: expected a non-empty string, got [1, 1, 1, 1, 1, 1, ...] (9000 items)"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(SWEEPS))
def test_sweep_refuses_the_config_before_writing(capsys, tmp_path, case):
    text, message = SWEEPS[case]
    config, store = tmp_path / "sweep.yaml", tmp_path / "results.db"
    config.write_text(text)
    line = refused(capsys, "sweep", config, "--store", store, "--executor", "serial", "--quiet")
    assert message in line
    assert sorted(tmp_path.iterdir()) == [config]  # no store, no journal


def test_sensible_configs_still_load(tmp_path):
    """Anchors and aliases within the bound, a merge key overriding what it merges, a range
    of MAX_AXIS values, an integral float: plain YAML that a sweep config may use."""
    path = tmp_path / "sweep.yaml"
    path.write_text(
        BASE.replace("n_train: 20, n_test: 10", "n_train: &n 20, n_test: *n")
        .replace("width: [4]", f'width: "1:{MAX_AXIS}"')
        .replace("train: {steps: 3}", "train: {<<: {steps: 3, lr: 0.1}, steps: 5.0}")
    )
    config = load_config(path)
    assert (config.data.n_train, config.data.n_test) == (20, 20)
    assert config.grid.width == tuple(range(1, MAX_AXIS + 1))
    assert (config.train.steps, config.train.lr) == (5, 0.1)


def test_an_alias_bomb_is_refused_at_once(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb() + BASE)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="more than 100000 values once aliases are expanded"):
        load_config(path)
    assert time.perf_counter() - start < 1.0  # it took 40-66 s to a MemoryError


# ----------------------------------------------------------------------------- data files
@pytest.fixture
def model_file(tmp_path) -> Path:
    path = tmp_path / "net.pt"
    rl.save_model(rl.mlp(4, 3, 2, init="lecun"), path)
    return path


def test_empty_and_lying_npy_files(capsys, tmp_path, model_file):
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    line = refused(capsys, "measure", "--model", model_file, "--data", empty)
    assert "as a plain .npy array: No data left in file" in line
    header = io.BytesIO()  # the header claims 10^12 rows, the file holds 2
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 4)}
    )
    lying = tmp_path / "lying.npy"
    lying.write_bytes(header.getvalue() + bytes(32))
    line = refused(capsys, "measure", "--model", model_file, "--data", lying)
    assert "as a plain .npy array: mmap length is greater than file size" in line


MNIST = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte")  # fmt: skip


def idx_header(shape: tuple[int, ...]) -> bytes:
    return bytes([0, 0, 0x08, len(shape)]) + np.asarray(shape, ">u4").tobytes()


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("not-deflate", "as an idx file: Error -3 while decompressing data"),
        ("cut-stream", "as an idx file: Compressed file ended before the end-of-stream"),
        ("huge-header", "an idx array of shape (4294967295, 4294967295, 4294967295) needs at"),
        ("short-data", "is truncated or corrupt: header says shape (60000, 28, 28)"),
    ],
)
def test_malformed_mnist(capsys, tmp_path, model_file, kind, message):
    folder = tmp_path / "mnist"
    folder.mkdir()
    whole = gzip.compress(idx_header((60000, 28, 28)) + bytes(1000))
    blob = {
        "not-deflate": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage-not-deflate",
        "cut-stream": whole[: len(whole) // 2],
        "huge-header": gzip.compress(idx_header((2**32 - 1,) * 3)),
        "short-data": whole,
    }[kind]
    for name in MNIST:
        (folder / f"{name}.gz").write_bytes(blob)
    line = refused(capsys, "measure", "--model", model_file, "--data", f"mnist:{folder}")
    assert message in line


CIFAR = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (pickle.dumps({b"data": [1, 2]})[:-5], "not a CIFAR-10 python batch: pickle data was"),
        (pickle.dumps({b"data": {"a": 1}, b"labels": [0]}), "not a CIFAR-10 python batch: "),
        (pickle.dumps({b"data": [[1, 2]], b"labels": [0]}), "data of shape (1, 2) and labels"),
        (pickle.dumps([1, 2, 3]), "expected a dict with b'data', b'labels'"),
        (b"\x80\x04" + b"(" * 100_000, "not a CIFAR-10 python batch"),
    ],
    ids=["truncated", "types", "shapes", "list", "marks"],
)
def test_malformed_cifar(capsys, tmp_path, model_file, content, message):
    folder = tmp_path / "cifar"
    folder.mkdir()
    for name in CIFAR:
        (folder / name).write_bytes(content)
    line = refused(capsys, "measure", "--model", model_file, "--data", f"cifar10:{folder}")
    assert message in line


# ----------------------------------------------------------------------------- model class
class _MakeMarker:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@pytest.mark.parametrize(
    "target", ["os:system", "subprocess:getoutput", "builtins:exec", "torch:load"]
)
def test_model_class_is_checked_before_it_is_called(capsys, tmp_path, monkeypatch, target):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the CLI adds the cwd for the import
    torch.save(torch.nn.Linear(4, 1).state_dict(), tmp_path / "sd.pt")
    np.save(tmp_path / "x.npy", np.zeros((3, 4), np.float32))
    marker = tmp_path / "ran"
    # a pickle that makes the marker when unpickled: torch.load(weights_only=False) runs it
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(_MakeMarker(str(marker))))
    kwargs = json.dumps(
        {
            "os:system": {"command": f"touch {marker}"},
            "subprocess:getoutput": {"cmd": f"touch {marker}"},
            "builtins:exec": {"source": f"open({str(marker)!r}, 'w')"},
            "torch:load": {"f": "evil.pkl", "weights_only": False},
        }[target]
    )
    line = refused(capsys, "measure", "--model", "sd.pt", "--data", "x.npy",
                   "--model-class", target, "--model-kwargs", kwargs)  # fmt: skip
    assert line == f"robustlab: error: model class '{target}' is not a torch.nn.Module class"
    assert not marker.exists()


# ----------------------------------------------------------------------------- report
def test_report_refuses_a_file_as_its_figures_folder(capsys, tmp_path):
    config, store = tmp_path / "sweep.yaml", tmp_path / "results.db"
    config.write_text(BASE)
    assert main(["sweep", str(config), "--store", str(store), "--executor", "serial",
                 "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    figures = tmp_path / "figures.png"
    figures.write_bytes(b"a file")
    out = tmp_path / "report.html"
    for folder in (figures, figures / "sub"):
        line = refused(capsys, "report", store, "-o", out, "--figures", folder)
        assert f"cannot keep figures in '{folder}': '{figures}' is a file; give a folder" in line
    assert not out.exists() and figures.read_bytes() == b"a file"


# ----------------------------------------------------------------------------- short values
def test_short_cuts_any_value_without_building_its_repr():
    assert short("a" * 1_000_000).endswith("(1000000 chars)")
    assert len(short("a" * 1_000_000)) < 80
    assert short(10**5000) == "an integer of 5001 digits"
    assert short([10**5000]) == "[an integer of 5001 digits]"  # nested too
    assert short({"a": 10**5000}) == "{'a': an integer of 5001 digits}"
    deep: list = []
    for _ in range(10_000):  # repr() would exceed the recursion limit
        deep = [deep]
    assert short(deep) == "[[[[...]]]] (1 item)"
    assert short("fast") == "'fast'" and short(-3) == "-3" and short([1, 2]) == "[1, 2]"


def test_memory_limit_is_the_containers_where_lower(tmp_path, monkeypatch):
    """A cgroup limit below the machine's memory is what a process may use (the kernel kills
    it above, silently); "max" (cgroup v2: no limit) leaves the physical memory."""
    monkeypatch.undo()  # the autouse pin of memory_limit above
    physical = float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    limit = tmp_path / "memory.max"
    monkeypatch.setattr(_checks, "_CGROUP_LIMITS", (str(tmp_path / "absent"), str(limit)))
    limit.write_text("1000000\n")
    assert _checks.memory_limit() == 1_000_000
    limit.write_text("max\n")
    assert _checks.memory_limit() == physical
