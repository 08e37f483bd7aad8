"""Stopping a sweep: Ctrl-C and SIGTERM stop the scheduling and keep what finished (one line,
no traceback, no process left), a second signal stops at once, a SIGKILLed Ray driver leaves
no process, the reaper touches only what started after it, and a missing device or Ray is
refused before the store is touched."""

from __future__ import annotations

import os
import re
import select
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
import torch
import yaml

from _sweeps import standard_sweep
from robustlab.cli import main
from robustlab.sweep import load, load_cells

needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

# 5 groups of 2 cells (one per depth), each a second or so: after the first group is stored,
# some groups are in flight and others not started
FIVE_GROUPS = standard_sweep("signals", [2, 3, 4, 5, 6])
ENDLESS = {**FIVE_GROUPS, "train": {"steps": 200_000}}  # no group finishes during a test

# A stand-in for a Ray driver: a process it had before its reaper, the reaper, one after.
FAKE_DRIVER = """
import subprocess, sys, time
from robustlab.sweep.executors import _start_reaper, _stop_reaper
before = subprocess.Popen(["sleep", "300"])
reaper = _start_reaper()
after = subprocess.Popen(["sleep", "300"])
time.sleep(1.5)  # the reaper looks every 0.5 s
if sys.argv[1] in ("done", "failed"):  # Ray shut down normally / ray.shutdown raised
    _stop_reaper(reaper, done=sys.argv[1] == "done")
print(before.pid, reaper.pid, after.pid, flush=True)
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    """Running (a zombie has exited; only its exit status is left)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != b"Z"


def _read(path: str) -> bytes:
    """A /proc file, or nothing once its process is gone."""
    try:
        return Path(path).read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def _cmdline(pid: int) -> bytes:
    return _read(f"/proc/{pid}/cmdline")


def _descendants(root: int) -> set[int]:
    """Process ids below ``root`` in the process tree (Linux /proc)."""
    out: set[int] = set()
    todo = [root]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            new = {int(c) for c in _read(f"{task}/children").split()} - out
            out |= new
            todo += new
    return out


def _workers(pid: int) -> list[int]:
    """The local executor's worker processes (multiprocessing's spawn entry point; not its
    resource tracker)."""
    return [c for c in _descendants(pid) if b"spawn_main" in _cmdline(c)]


def _stored(path: Path) -> int:
    """Finished cells, read through a read-only connection (0 until the table exists)."""
    if not path.exists():
        return 0
    with closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)) as conn:
        tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}
        return conn.execute("SELECT count(*) FROM cells").fetchone()[0] if "cells" in tables else 0


def _sweep(tmp_path: Path, config: dict, *options: str) -> tuple[subprocess.Popen, Path]:
    """``robustlab sweep`` in a process group of its own, as a terminal runs a job."""
    source, store = tmp_path / "sweep.yaml", tmp_path / "results.db"
    source.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "robustlab.cli", "sweep", str(source), "--store", str(store)]
    proc = subprocess.Popen(
        [*command, "--quiet", "--workers", "2", *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    return proc, store


def _watch(proc: subprocess.Popen, until, timeout: float = 120) -> set[int]:
    """The process ids seen below ``proc`` until ``until()`` holds (or it exits)."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not until() and time.monotonic() < deadline:
        seen |= _descendants(proc.pid)
        time.sleep(0.02)
    return seen | _descendants(proc.pid)


def _left(pids: set[int], within: float = 10) -> list[int]:
    """Those of ``pids`` still running after ``within`` seconds (then killed, so that a failed
    test leaves nothing behind)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    left = sorted(p for p in pids if _alive(p))
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


@needs_proc
@pytest.mark.parametrize(
    ("executor", "sig"),
    [("local", signal.SIGINT), ("serial", signal.SIGTERM)],
    ids=["local-ctrl-c", "serial-sigterm"],
)
def test_a_signal_stops_scheduling_and_keeps_what_finished(tmp_path, executor, sig):
    proc, store = _sweep(tmp_path, FIVE_GROUPS, "--executor", executor)
    children = _watch(proc, lambda: _stored(store) > 0)
    landed = _stored(store)
    assert landed > 0, proc.communicate()[1]
    os.killpg(proc.pid, sig)  # the whole group, as a terminal's Ctrl-C does
    out, err = proc.communicate(timeout=120)

    assert proc.returncode == 128 + sig, err
    what = "interrupted" if sig == signal.SIGINT else "terminated"
    waiting = rf"robustlab: {what}; waiting for [12] groups? in flight \([^)]+ now\)\n"
    assert re.fullmatch(waiting, err), err
    done = load_cells(store)
    assert landed <= len(done) < 10, "the groups not started yet ran anyway"
    assert set(done["status"]) == {"ok"} and done["cell"].is_unique
    assert set(load(store)["cell"]) == set(done["cell"])
    not_run = rf"ran {len(done)} ok, .*\(interrupted: {10 - len(done)} cells not run; .*\)"
    assert re.search(not_run, out), out
    assert _left(children) == [], "a worker outlived its sweep"


@needs_proc
def test_a_second_ctrl_c_stops_at_once(tmp_path):
    proc, store = _sweep(tmp_path, ENDLESS, "--executor", "local")
    children = _watch(proc, lambda: len(_workers(proc.pid)) >= 2)
    started = len(_workers(proc.pid)) >= 2  # each spawned by the submit of its group
    os.killpg(proc.pid, signal.SIGINT)
    said = select.select([proc.stderr], [], [], 60)[0]  # the first line, or nothing in 60 s
    first = proc.stderr.readline() if said else ""
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)  # a group of ENDLESS takes minutes

    assert started, "the sweep never started its two workers"
    assert first.startswith("robustlab: interrupted; waiting for 2 groups in flight"), first
    assert proc.returncode == 130
    assert err == "", "more than one line, or a traceback"
    assert "(interrupted: 10 cells not run; run again to resume)" in out
    assert len(load_cells(store)) == 0
    with closing(sqlite3.connect(store)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert _left(children) == []


@needs_proc
def test_killed_ray_driver_leaves_no_process(tmp_path):
    source = tmp_path / "sweep.yaml"
    source.write_text(yaml.safe_dump(ENDLESS))
    script = (
        "import sys; from robustlab.sweep import run; "
        "run(sys.argv[1], sys.argv[2], executor='ray', workers=2)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(source), str(tmp_path / "ray.db")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    seen: dict[int, bytes] = {}

    def two_groups_running() -> bool:  # a worker names itself after its task once it runs one
        seen.update({pid: _cmdline(pid) or seen.get(pid, b"") for pid in _descendants(proc.pid)})
        return sum(c.startswith(b"ray::run_group") for c in seen.values()) >= 2

    _watch(proc, two_groups_running)
    running = two_groups_running()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    left = {pid: seen[pid][:60] for pid in _left(set(seen))}
    assert running, f"Ray never ran two groups: {sorted(seen.values())}"
    assert any(b"_reaper.py" in c for c in seen.values())
    assert left == {}, "processes outlived their killed Ray driver"


@needs_proc
@pytest.mark.parametrize("end", ["killed", "done", "failed"])
def test_reaper_kills_only_what_started_after_it_and_only_if_the_driver_dies(end):
    driver = subprocess.Popen(
        [sys.executable, "-c", FAKE_DRIVER, end], stdout=subprocess.PIPE, text=True
    )
    before, reaper, after = map(int, driver.stdout.readline().split())
    driver.kill()
    driver.wait(timeout=30)
    driver.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (_alive(reaper) or (end != "done" and _alive(after))):
        time.sleep(0.05)
    running = {"before": _alive(before), "reaper": _alive(reaper), "after": _alive(after)}
    _left({before, after}, within=0)
    assert running == {"before": True, "reaper": False, "after": end == "done"}


def test_a_missing_device_or_ray_is_refused_before_the_store_is_touched(
    tmp_path, monkeypatch, capsys
):
    source, store = tmp_path / "sweep.yaml", tmp_path / "results.db"
    source.write_text(yaml.safe_dump(FIVE_GROUPS))
    sweep = ["sweep", str(source), "--store", str(store), "--quiet"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main([*sweep, "--device", "cuda"]) == 2
    assert capsys.readouterr().err == (
        "robustlab: error: device 'cuda': CUDA is not available here; use device cpu\n"
    )
    assert main([*sweep, "--device", "gpu"]) == 2
    assert capsys.readouterr().err == (
        "robustlab: error: device must be auto, cpu, cuda or cuda:N, got 'gpu'\n"
    )
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main([*sweep, "--executor", "ray", "--device", "cpu"]) == 2
    assert capsys.readouterr().err == (
        "robustlab: error: executor 'ray' needs Ray: pip install 'robustlab[ray]'\n"
    )
    assert not store.exists()
