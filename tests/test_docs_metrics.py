"""docs/metrics.md runs as written: its python blocks in order in one namespace, and each
``robustlab ...`` line of its bash blocks through robustlab.cli.main, in an empty folder."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from robustlab.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
BLOCK = re.compile(r"^```(python|bash)\n(.*?)^```", re.S | re.M)


def test_metrics_page_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    blocks = BLOCK.findall(DOC.read_text())
    assert sum(kind == "python" for kind, _ in blocks) >= 6
    namespace: dict = {"__name__": "docs_metrics"}
    commands = 0
    for kind, code in blocks:
        if kind == "python":
            exec(compile(code, str(DOC), "exec"), namespace)
            continue
        for line in code.splitlines():
            if line.startswith("robustlab "):
                code_ = main(shlex.split(line)[1:] + ["--quiet"])
                out, err = capsys.readouterr()
                assert (code_, err) == (0, ""), (line, err)
                assert "p_value" in out
                commands += 1
    assert commands >= 4
    ratio = namespace["worst"].value / namespace["exact"].value
    assert ratio == pytest.approx(4.3, abs=0.5)  # the page's worst/average claim
