"""The docs pages run as written: each page's python blocks in order in one namespace, and each
``robustlab ...`` line of its bash blocks through robustlab.cli.main, in an empty folder."""

from __future__ import annotations

import re
import shlex
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


def test_readme_quick_tour_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    readme = DOCS.parent / "README.md"
    (code,) = re.findall(r"^```python\n(.*?)^```", readme.read_text(), re.S | re.M)
    namespace: dict = {"__name__": "readme"}
    exec(compile(code, str(readme), "exec"), namespace)
    assert namespace["r"].method == "exact" and not namespace["res"].diverged
