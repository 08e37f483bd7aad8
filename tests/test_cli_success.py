"""``robustlab sweep``, ``export`` and ``report`` when all goes well: exit 0, the summary line
on stdout, and the files the library would write (a thin CLI adds nothing to them).

One tiny sweep (two cells of 5 steps, serial) is run once through ``robustlab.cli.main``;
export and report read its store.
"""

from __future__ import annotations

import contextlib
import io
import re

import pandas as pd
import pytest
import yaml

from _sweeps import standard_sweep
from robustlab.cli import main
from robustlab.sweep import load, load_cells

CONFIG = {**standard_sweep("tiny", [2]), "train": {"steps": 5}}  # 2 cells: lecun, he
SUMMARY = r"tiny: 2 cells, (\d) already stored, ran (\d) ok, 0 diverged, 0 failed in \d+\.\d s -> "


def run(*argv: str) -> tuple[int, str, str]:
    """main(argv) with its stdout and stderr (stderr is no terminal: no progress bar)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The store of the tiny sweep, and what ``robustlab sweep`` returned and printed."""
    folder = tmp_path_factory.mktemp("cli")
    (folder / "sweep.yaml").write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    store = folder / "results.db"
    result = run("sweep", str(folder / "sweep.yaml"), "--store", str(store), "--executor", "serial")
    return store, result


def test_sweep_stores_every_cell_and_prints_its_summary(swept):
    store, (code, out, err) = swept
    assert (code, err) == (0, "")
    assert re.fullmatch(SUMMARY + re.escape(str(store)) + "\n", out), out
    assert re.match(SUMMARY, out).groups() == ("0", "2")
    cells = load_cells(store)
    assert len(cells) == 2 and set(cells["status"]) == {"ok"}
    df = load(store)
    assert set(df["init"]) == {"lecun", "he"} and set(df["sweep"]) == {"tiny"}
    # run again: every cell is already stored, nothing is re-run, the store is unchanged
    again = run("sweep", str(store.with_name("sweep.yaml")), "--store", str(store), "--quiet")
    assert again[0] == 0 and re.match(SUMMARY, again[1]).groups() == ("2", "0")
    pd.testing.assert_frame_equal(load(store), df)


def test_export_csv_is_the_store_as_loaded(swept, tmp_path):
    store, _ = swept
    out = tmp_path / "results.csv"
    assert run("export", str(store), "-o", str(out)) == (0, f"wrote {out}\n", "")
    df = load(store)
    back = pd.read_csv(out, keep_default_na=False, na_values=[""]).astype(df.dtypes.to_dict())
    back["message"] = back["message"].fillna("")  # CSV cannot tell '' from missing
    pd.testing.assert_frame_equal(back, df)


def test_report_writes_one_html_file(swept, tmp_path):
    store, _ = swept
    out = tmp_path / "report.html"
    assert run("report", str(store), "-o", str(out), "--quiet") == (0, f"report: {out}\n", "")
    text = out.read_text(encoding="utf-8")
    assert text.lstrip().lower().startswith("<!doctype html>") and "tiny" in text
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # figures stay inside it
