"""The docs pages run as written: each page's python blocks in order in one namespace, and each
``robustlab ...`` line of its bash blocks through robustlab.cli.main, in an empty folder."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from robustlab.cli import main

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```(python|bash)\n(.*?)^```", re.S | re.M)


def run_page(page: str, capsys, *, extra: tuple[str, ...] = ()) -> tuple[dict, list[str]]:
    """Run ``docs/page``; returns the python namespace and the output of each command."""
    path = DOCS / page
    namespace: dict = {"__name__": f"docs_{path.stem}"}
    outputs = []
    for kind, code in BLOCK.findall(path.read_text()):
        if kind == "python":
            exec(compile(code, str(path), "exec"), namespace)
            continue
        for line in code.splitlines():
            if line.startswith("robustlab "):
                status = main(shlex.split(line)[1:] + list(extra))
                out, err = capsys.readouterr()
                assert (status, err) == (0, ""), (line, err)
                outputs.append(out)
    return namespace, outputs


def test_metrics_page_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace, outputs = run_page("metrics.md", capsys, extra=("--quiet",))
    assert len(outputs) >= 4 and all("p_value" in out for out in outputs)
    ratio = namespace["worst"].value / namespace["exact"].value
    assert ratio == pytest.approx(4.3, abs=0.5)  # the page's worst/average claim


def test_theory_page_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace, outputs = run_page("theory.md", capsys)
    assert len(outputs) == 2 and all("p_kernel" in out for out in outputs)
    # the page's claims: the empirical NTK is within a few percent, LeCun and He share the
    # kernel part, 150 steps give the stated columns
    assert float((namespace["emp"] - namespace["Theta"]).norm() / namespace["Theta"].norm()) < 0.1
    assert namespace["r150"].t == 150 and namespace["r150"].model == "linearized"


def test_own_models_page_examples_run(tmp_path, monkeypatch, capsys):
    """The page's module and sweep file are written where it says, then its blocks run."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # `robustlab sweep` puts the folder on it
    page = (DOCS / "own-models.md").read_text()
    (module,) = re.findall(r"^```python\n(# my_models\.py\n.*?)^```", page, re.S | re.M)
    (config,) = re.findall(r"^```yaml\n(.*?)^```", page, re.S | re.M)
    (tmp_path / "my_models.py").write_text(module)
    (tmp_path / "sweep.yaml").write_text(config)
    serial = ("--quiet", "--executor", "serial")  # local workers: tests/test_user_builders.py
    namespace, outputs = run_page("own-models.md", capsys, extra=serial)
    assert len(outputs) == 1 and "12 cells, 0 already stored, ran 12 ok" in outputs[0]
    df, table = namespace["df"], namespace["table"]
    assert (df["status"] == "ok").all() and table.shape == (6, 2) and table.notna().all().all()
    assert namespace["own"][["s1", "s2", "s3"]].isna().all().all()
    assert namespace["drawn"] == pytest.approx((2 / 8, 2 / 16, 2 / 16))  # the page's claim


def test_readme_quick_tour_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    readme = DOCS.parent / "README.md"
    (code,) = re.findall(r"^```python\n(.*?)^```", readme.read_text(), re.S | re.M)
    namespace: dict = {"__name__": "readme"}
    exec(compile(code, str(readme), "exec"), namespace)
    assert namespace["r"].method == "exact" and not namespace["res"].diverged
