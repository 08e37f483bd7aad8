"""Sweep runs end to end: rows, resume after SIGKILL (the same bits), batched = per-model,
executors agree bit for bit, readers during writes, concurrent sweeps, failed and diverged
cells."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import robustlab as rl
from _sweeps import standard_sweep
from robustlab.sweep import cells as sweep_cells
from robustlab.sweep import load, load_cells, load_config, run
from robustlab.sweep.cells import run_group

# 2 widths x 2 depths x 2 inits x 2 regimes x 2 seeds = 32 cells in 8 groups of 4
CONFIG = {
    "name": "run-test",
    "data": {"name": "sphere", "in_dim": 6, "n_train": 64, "n_test": 32},
    "grid": {
        "width": [8, 16],
        "depth": [2, 3],
        "init": ["lecun", "he"],
        "regime": ["standard", "lazy"],
        "alpha": [10],
    },
    "seeds": 2,
    "train": {"steps": 30},
    "measure": {
        "eps": [0.05, 0.1],
        "methods": ["exact", "mc"],
        "points": 32,
        "n_samples": 16,
        "at": ["init", "final"],
    },
}
KEY = ["cell", "stage", "eps", "method", "region", "model", "points"]  # a row within a store
VOLATILE = ["time_s", "created_at"]  # differ between two runs of the same cell

# 3 groups of 2 cells whose empirical-NTK change (a 10-point probe at width 64) differs in its
# last bits between 1 and 2 threads: a group run with the driver's threads shows at atol 0
THREADED = standard_sweep("threads", [2, 3, 4])

# Runs a sweep in a fresh interpreter with torch's default threads and SIGKILLs it from its
# progress callback once k groups are stored: argv = config YAML, store, executor, k.
KILL_SCRIPT = """
import os, signal, sys
from robustlab.sweep import run

def progress(p, stored=[]):
    if p.event != "stored":
        return
    stored.append(p)
    if len(stored) == int(sys.argv[4]):
        os.kill(os.getpid(), signal.SIGKILL)

run(sys.argv[1], sys.argv[2], executor=sys.argv[3], workers=2, progress=progress)
"""

# Runs a sweep in a fresh interpreter: argv = config YAML, store.
SWEEP_SCRIPT = """
import sys
import torch
torch.set_num_threads(1)
import robustlab.sweep
robustlab.sweep.run(sys.argv[1], sys.argv[2], executor="serial")
"""


@pytest.fixture(scope="module")
def serial_store(tmp_path_factory) -> Path:
    """The reference: CONFIG run uninterrupted by the serial executor, with one thread like
    every other run here (conftest's fixture is function-scoped, so it is set here too)."""
    path = tmp_path_factory.mktemp("serial") / "serial.db"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    summary = run(CONFIG, path, executor="serial")
    torch.set_num_threads(before)
    assert (summary.total, summary.ok, summary.skipped) == (32, 32, 0)
    return path


def expected_keys(regime: str, cfg=CONFIG) -> set[tuple]:
    m = cfg["measure"]
    keys = {
        (at, eps, method, "network")
        for at in m["at"]
        for eps in m["eps"]
        for method in m["methods"]
    }
    if regime == "lazy":  # the trained predictor alpha (f - f0), measured after training
        keys |= {("final", eps, method, "centred") for eps in m["eps"] for method in m["methods"]}
    return keys


def sorted_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=VOLATILE).sort_values(KEY).reset_index(drop=True)


def assert_same_results(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Row for row, every column but the wall-clock ones: the same values, bit for bit."""
    pd.testing.assert_frame_equal(sorted_rows(a), sorted_rows(b), check_exact=True)


def cells_in_store(path: Path) -> int:
    """Finished cells, read through a read-only connection (0 until the table exists)."""
    if not path.exists():
        return 0
    uri = path.resolve().as_uri() + "?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
        tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}
        if "cells" not in tables:
            return 0
        return conn.execute("SELECT count(*) FROM cells").fetchone()[0]


def start_sweep(tmp_path: Path, config: dict, store: Path) -> subprocess.Popen:
    source = tmp_path / "sweep.yaml"
    source.write_text(yaml.safe_dump(config))
    return subprocess.Popen(
        [sys.executable, "-c", SWEEP_SCRIPT, str(source), str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serial_sweep_writes_every_cell_once_and_rerun_skips_all(serial_store):
    cfg = load_config(CONFIG)
    cells = {c.hash: c for c in cfg.cells()}
    done = load_cells(serial_store)
    assert sorted(done["cell"]) == sorted(cells)
    assert set(done["status"]) == {"ok"}
    df = load(serial_store)
    assert set(df["cell"]) == set(cells)
    for cell_hash, rows in df.groupby("cell"):
        cell = cells[cell_hash]
        keys = list(zip(rows["stage"], rows["eps"], rows["method"], rows["model"], strict=True))
        assert len(keys) == len(set(keys)), "a measurement is stored twice"
        assert set(keys) == expected_keys(cell.regime)
        assert set(rows["config_json"]) == {cell.config_json()}
        assert (
            rows[["width", "depth", "seed"]].to_numpy() == [cell.width, cell.depth, cell.seed]
        ).all()
        assert set(rows["init"]) == {cell.init} and set(rows["alpha"]) == {cell.alpha}
    assert (df["status"] == "ok").all() and (df["message"] == "").all()
    assert (df["robustlab_version"] == rl.__version__).all()
    assert (df["torch_version"] == torch.__version__).all()
    assert np.isfinite(df["p_value"].to_numpy(float)).all() and (df["p_value"] > 0).all()
    final = df[df["stage"] == "final"]
    assert np.isfinite(final[["train_loss", "rel_weight_change", "lr"]].to_numpy(float)).all()

    progress = []
    again = run(CONFIG, serial_store, executor="serial", progress=progress.append)
    assert again.skipped == again.total == len(cells)
    assert again.ok == again.failed == again.diverged == 0
    assert progress == []  # no group had anything to do
    assert len(load(serial_store)) == len(df)
    assert len(load_cells(serial_store)) == len(cells)


def test_progress_reports_every_group(tmp_path):
    config = {**CONFIG, "grid": {**CONFIG["grid"], "width": [8], "depth": [2]}}  # 2 groups
    progress = []
    summary = run(config, tmp_path / "p.db", executor="serial", progress=progress.append)
    events = [(p.event, p.group, p.done) for p in progress]
    assert events == [
        ("start", 0, 0), ("started", 1, 0), ("stored", 1, 4), ("started", 2, 4), ("stored", 2, 8)
    ]  # fmt: skip
    assert {p.total for p in progress} == {summary.total} == {8}
    assert [p.elapsed_s for p in progress] == sorted(p.elapsed_s for p in progress)


def test_killed_sweep_resumes_to_the_uninterrupted_result(tmp_path, serial_store):
    store = tmp_path / "killed.db"
    total = len(load_config(CONFIG).cells())
    proc = start_sweep(tmp_path, CONFIG, store)
    deadline = time.monotonic() + 120
    while proc.poll() is None and cells_in_store(store) == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    landed = cells_in_store(store)
    assert 0 < landed < total, f"kill landed after {landed} of {total} cells"

    summary = run(CONFIG, store, executor="serial")
    assert summary.skipped == landed
    assert summary.ok == total - landed
    with closing(sqlite3.connect(store)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        repeated = conn.execute(
            "SELECT cell, stage, eps, method, model FROM results"
            " GROUP BY cell, stage, eps, method, model HAVING count(*) > 1"
        ).fetchall()
        assert repeated == []
    done = load_cells(store)
    assert done["cell"].is_unique and len(done) == total
    assert_same_results(load(store), load(serial_store))


@pytest.fixture(scope="module")
def threaded_reference(tmp_path_factory) -> Path:
    """THREADED run uninterrupted in this process with two intra-op threads, more than a group
    runs with (GROUP_THREADS): a group computed with the driver's threads would differ."""
    path = tmp_path_factory.mktemp("threaded") / "reference.db"
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        summary = run(THREADED, path, executor="serial")
    finally:
        torch.set_num_threads(before)
    assert (summary.total, summary.ok) == (6, 6)
    return path


def test_groups_run_with_group_threads_in_the_driver_and_restore_its_count(monkeypatch):
    """The bits depend on the thread count only where the CPU's kernels do; this checks the
    count itself: a group in the driver (serial, or the last group) runs with GROUP_THREADS
    and the driver's own count comes back after it."""
    seen = []
    inner = sweep_cells._run_group

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return inner(*args, **kwargs)

    monkeypatch.setattr(sweep_cells, "_run_group", recording)
    config = load_config({**THREADED, "grid": {**THREADED["grid"], "depth": [2]}})
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_group(config.groups()[0], dtype="float32", device="cpu")
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert seen == [sweep_cells.GROUP_THREADS] and after == 2


@pytest.mark.parametrize("executor", ["serial", "local"])
def test_sweeps_killed_after_k_groups_resume_to_the_same_bits(
    tmp_path, threaded_reference, executor
):
    """A real SIGKILL after k of the 3 groups, for every k, then a resume by a driver with two
    threads (for local and k = 2 the one group left runs in the driver): every column equals
    the uninterrupted run's, and serial equals local, at atol 0."""
    source = tmp_path / "threads.yaml"
    source.write_text(yaml.safe_dump(THREADED))
    cells = load_config(THREADED).cells()
    n_groups = len(load_config(THREADED).groups())
    assert n_groups == 3
    torch.set_num_threads(2)  # restored by conftest's fixture
    for k in range(1, n_groups):
        store = tmp_path / f"killed-{k}.db"
        killed = subprocess.run(
            [sys.executable, "-c", KILL_SCRIPT, str(source), str(store), executor, str(k)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert len(load_cells(store)) == 2 * k  # the k groups stored before the kill
        summary = run(THREADED, store, executor=executor, workers=2)
        assert (summary.skipped, summary.ok) == (2 * k, len(cells) - 2 * k)
        assert load_cells(store)["cell"].is_unique
        assert_same_results(load(store), load(threaded_reference))


@pytest.mark.parametrize(
    "train",
    [
        {"steps": 40, "lr": "auto"},
        {"steps": 40, "lr": "auto", "optimizer": "sgd", "batch_size": 16, "momentum": 0.5},
    ],
    ids=["gd", "sgd-minibatch"],
)
def test_ensemble_equals_each_model_trained_alone(train):
    config = {
        **CONFIG,
        "grid": {
            "width": [16],
            "depth": [3],
            # ntk_param has its own forward multipliers: it trains in an ensemble of its own
            "init": ["lecun", "he", "ntk_param"],
            "regime": ["standard", "lazy"],
            "alpha": [10, 100],
        },
        "train": train,
        "measure": {**CONFIG["measure"], "methods": ["exact"]},
    }
    groups = load_config(config).groups()
    assert [len(g) for g in groups] == [6, 12]  # lazy: 3 inits x 2 alphas x 2 seeds
    compared = 0
    for group in groups:
        together = run_group(group, dtype="float64")
        for cell, joint in zip(group, together, strict=True):
            (alone,) = run_group([cell], dtype="float64")
            assert joint.cell_hash == alone.cell_hash == cell.hash
            assert joint.status == alone.status == "ok", (joint.message, alone.message)
            a = pd.DataFrame(joint.rows).drop(columns="time_s").sort_values(KEY)
            b = pd.DataFrame(alone.rows).drop(columns="time_s").sort_values(KEY)
            for column in ("p_value", "train_loss", "rel_weight_change", "ntk_change", "lr"):
                x, y = a[column].to_numpy(float), b[column].to_numpy(float)
                assert np.isfinite(x[a["stage"] == "final"]).all(), column
                np.testing.assert_allclose(x, y, rtol=1e-9, err_msg=column)  # NaN where NaN
            compared += 1
    assert compared == 18


def test_process_pool_executor_matches_serial(tmp_path, serial_store):
    summary = run(CONFIG, tmp_path / "local.db", executor="local", workers=2)
    assert (summary.ok, summary.failed, summary.diverged) == (32, 0, 0)
    assert_same_results(load(tmp_path / "local.db"), load(serial_store))


@pytest.fixture
def no_ray_left():
    import ray

    yield ray
    if ray.is_initialized():  # only if the test failed before the executor shut it down
        ray.shutdown()


def test_ray_executor_matches_serial(tmp_path, serial_store, no_ray_left):
    ray = no_ray_left
    assert not ray.is_initialized()
    summary = run(CONFIG, tmp_path / "ray.db", executor="ray", workers=2)
    assert not ray.is_initialized(), "the executor started Ray, so it must shut it down"
    assert (summary.ok, summary.failed, summary.diverged) == (32, 0, 0)
    assert_same_results(load(tmp_path / "ray.db"), load(serial_store))


def test_store_can_be_loaded_while_a_sweep_writes_it(tmp_path):
    store = tmp_path / "busy.db"
    regimes = {c.hash: c.regime for c in load_config(CONFIG).cells()}
    proc = start_sweep(tmp_path, CONFIG, store)
    deadline = time.monotonic() + 120
    while proc.poll() is None and cells_in_store(store) == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    sizes = []
    while proc.poll() is None:
        df = load(store)  # a read-only snapshot, taken while the writer goes on
        for cell_hash, rows in df.groupby("cell"):  # only whole cells are ever visible
            assert len(rows) == len(expected_keys(regimes[cell_hash]))
        sizes.append(len(df))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert len(set(sizes)) >= 2, f"loads saw no writes happen: {sizes}"
    assert sizes == sorted(sizes)
    assert len(load_cells(store)) == len(regimes)


def test_failed_group_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    config = {**CONFIG, "grid": {**CONFIG["grid"], "width": [16, 8], "regime": ["standard"]}}
    cells = load_config(config).cells()
    real = sweep_cells.train_ensemble

    def broken_for_width_16(nets, *args, **kwargs):
        if nets[0].spec.width == 16:
            raise RuntimeError("injected failure")
        return real(nets, *args, **kwargs)

    monkeypatch.setattr(sweep_cells, "train_ensemble", broken_for_width_16)
    store = tmp_path / "f.db"
    summary = run(config, store, executor="serial")
    n_bad = sum(c.width == 16 for c in cells)
    assert (summary.failed, summary.ok) == (n_bad, len(cells) - n_bad)
    done = load_cells(store)
    width = {c.hash: c.width for c in cells}
    failed = done[done["status"] == "failed"]
    assert {width[h] for h in failed["cell"]} == {16} and len(failed) == n_bad
    assert failed["message"].str.contains("RuntimeError: injected failure").all()
    # the width-16 groups ran first; the width-8 ones after them still finished
    assert list(done["status"]) == ["failed"] * n_bad + ["ok"] * (len(cells) - n_bad)
    df = load(store)
    bad_rows = df[df["status"] == "failed"]
    assert set(bad_rows["cell"]) == set(failed["cell"])
    assert (bad_rows["message"] == "RuntimeError: injected failure").all()

    monkeypatch.setattr(sweep_cells, "train_ensemble", real)
    assert run(config, store, executor="serial").skipped == len(cells)  # failed counts as done
    retry = run(config, store, executor="serial", retry_failed=True)
    assert (retry.ok, retry.skipped) == (n_bad, len(cells) - n_bad)
    assert set(load_cells(store)["status"]) == {"ok"}
    assert set(load(store)["status"]) == {"ok"}


def test_diverging_cells_are_recorded_with_a_reason(tmp_path):
    small = {**CONFIG["grid"], "width": [8], "depth": [2], "regime": ["standard"]}
    good = {**CONFIG, "name": "good", "grid": small}
    bad = {**good, "name": "bad", "train": {"steps": 30, "lr": 1.0e4, "max_retries": 0}}
    store = tmp_path / "d.db"
    assert run(good, store, executor="serial").ok == 4
    summary = run(bad, store, executor="serial")
    assert (summary.diverged, summary.ok, summary.failed) == (4, 0, 0)
    done = load_cells(store)
    diverged = done[done["sweep"] == "bad"]
    assert set(diverged["status"]) == {"diverged"}
    assert (
        diverged["message"].str.match(r"training loss became .+ at step \d+ with lr 1e\+04").all()
    )
    df = load(store)
    rows = df[df["sweep"] == "bad"]
    assert set(rows["status"]) == {"diverged"}
    assert (rows["message"].str.len() > 0).all() and (rows["lr"] == 1.0e4).all()
    assert set(rows["stage"]) == {"init", "final"}
    assert rows.loc[rows["stage"] == "final", "p_value"].isna().all()  # nothing measured after
    ok = df[df["status"] == "ok"]
    assert len(ok) == 4 * len(expected_keys("standard"))
    assert not ok["p_value"].isna().any()
    assert all(math.isfinite(v) for v in ok["p_value"])


def _children(pid: int) -> set[int]:
    """Process ids of ``pid``'s children (Linux /proc)."""
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text().split()
        out |= {int(c) for c in text}
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its exit status is left


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_killed_driver_leaves_no_worker_process(tmp_path):
    config = {**CONFIG, "name": "orphans", "seeds": 6, "train": {"steps": 3000}}
    source = tmp_path / "sweep.yaml"
    source.write_text(yaml.safe_dump(config))
    script = (
        "import sys; from robustlab.sweep import run; "
        "run(sys.argv[1], sys.argv[2], executor='local', workers=2)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(source), str(tmp_path / "o.db")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,  # shared by the workers and multiprocessing's resource tracker
    )
    deadline = time.monotonic() + 120
    workers: set[int] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        # spawned workers run python with multiprocessing's spawn entry point
        workers = {
            c for c in _children(proc.pid)
            if b"multiprocessing" in Path(f"/proc/{c}/cmdline").read_bytes()
        }  # fmt: skip
        if len(workers) >= 2:
            break
        time.sleep(0.05)
    assert len(workers) >= 2, "the sweep never started its two workers"
    time.sleep(1.0)  # past their start-up, which reads the pool's task from the driver's pipe
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    left = [w for w in workers if _alive(w)]
    for w in left:  # do not leave them behind even when the test fails
        os.kill(w, signal.SIGKILL)
    assert not left, f"worker processes {left} outlived their killed driver"
    # the resource tracker frees the dead pool's semaphores: that is its job, not news
    _, err = proc.communicate(timeout=30)  # EOF once the tracker, the last holder, exits
    assert b"resource_tracker" not in err and b"leaked" not in err, err.decode()[-500:]


def test_a_concurrent_sweep_counts_what_it_trained_and_what_another_wrote(tmp_path):
    """Two sweeps of one grid into one store at once: cells the other finished first were
    still trained here; the summary counts them as run and says another process wrote them."""
    config = {**CONFIG, "grid": {**CONFIG["grid"], "width": [8], "depth": [2]}}  # 2 groups
    store = tmp_path / "shared.db"
    other = []

    def meanwhile(p) -> None:  # after this sweep's first group, another one runs the grid
        if p.event == "stored" and not other:
            other.append(run(config, store, executor="serial"))

    summary = run(config, store, executor="serial", progress=meanwhile)
    (first,) = other
    assert (first.skipped, first.ok, first.elsewhere, first.notes) == (4, 4, 0, "")
    assert (summary.skipped, summary.ok, summary.elsewhere) == (0, 8, 4)
    assert summary.notes == " (4 of them already written by another process)"
    done = load_cells(store)
    assert len(done) == 8 and done["cell"].is_unique
