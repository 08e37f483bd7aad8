"""Progress from a sweep's first moment: the callback hears of the start and of each group's
start before any cell is stored, and the CLI's bar is on stderr at once (0 of N cells)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from _sweeps import standard_sweep
from robustlab.cli import main
from robustlab.sweep import load_cells, run
from robustlab.sweep.runner import EVENTS
from robustlab.sweep.store import Store

CONFIG = standard_sweep("progress", [2, 3])  # 2 groups of 2 cells


def test_progress_starts_before_any_cell_is_stored(tmp_path):
    store = tmp_path / "p.db"
    seen = []

    def record(p) -> None:
        seen.append((p, len(load_cells(store))))  # cells in the store when it was told

    summary = run(CONFIG, store, executor="serial", progress=record)
    events = [(p.event, p.group, p.groups, p.started, p.running, p.done, stored)
              for p, stored in seen]  # fmt: skip
    assert events == [
        ("start", 0, 2, 0, 0, 0, 0),
        ("started", 1, 2, 1, 1, 0, 0),
        ("stored", 1, 2, 1, 0, 2, 2),
        ("started", 2, 2, 2, 1, 2, 2),
        ("stored", 2, 2, 2, 0, 4, 4),
    ]
    assert {p.event for p, _ in seen} <= set(EVENTS)
    assert {p.total for p, _ in seen} == {summary.total} == {4}


def test_parallel_groups_all_start_before_the_first_is_stored(tmp_path):
    """The default executor (worker processes): both groups are reported started, two
    running, before the first one is stored."""
    seen = []
    run(CONFIG, tmp_path / "p.db", executor="local", workers=2, progress=seen.append)
    events = [p.event for p in seen]
    assert events[:3] == ["start", "started", "started"]
    assert sorted(p.group for p in seen if p.event == "started") == [1, 2]
    assert max(p.running for p in seen) == 2
    stored = [p for p in seen if p.event == "stored"]
    assert [p.done for p in stored] == [2, 4] and stored[-1].running == 0


@pytest.mark.parametrize("quiet", [False, True])
def test_cli_shows_the_bar_before_the_first_cell(tmp_path, monkeypatch, capsys, quiet):
    """The bar is drawn (on a terminal) when the sweep starts, not after the first group;
    --quiet draws none."""
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # capsys's stderr, as a terminal
    at_first_write: list[str] = []
    write_cell = Store.write_cell

    def first_write_seen(self, *args, **kwargs):
        if not at_first_write:
            at_first_write.append(capsys.readouterr().err)
        return write_cell(self, *args, **kwargs)

    monkeypatch.setattr(Store, "write_cell", first_write_seen)
    argv = ["sweep", str(config), "--store", str(tmp_path / "r.db"), "--executor", "serial"]
    assert main(argv + ["--quiet"] * quiet) == 0
    (before,) = at_first_write
    if quiet:
        assert before == ""
    else:
        frames = [f.strip() for f in before.split("\r") if f.strip()]
        assert frames[0].startswith("cells:   0%") and "0/4" in frames[0], before
        assert "group 1/2" in frames[-1] and "0/4" in frames[-1], before
    assert "progress: 4 cells" in capsys.readouterr().out


def test_nothing_to_run_reports_nothing(tmp_path):
    store = tmp_path / "p.db"
    run(CONFIG, store, executor="serial")
    seen = []
    summary = run(CONFIG, Path(store), executor="serial", progress=seen.append)
    assert seen == [] and summary.skipped == 4
