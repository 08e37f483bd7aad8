"""docs/theory.md runs as written: its python blocks in order in one namespace, and each
``robustlab ...`` line of its bash blocks through robustlab.cli.main, in an empty folder."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from robustlab.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "theory.md"
BLOCK = re.compile(r"^```(python|bash)\n(.*?)^```", re.S | re.M)


def test_theory_page_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    blocks = BLOCK.findall(DOC.read_text())
    namespace: dict = {"__name__": "docs_theory"}
    commands = 0
    for kind, code in blocks:
        if kind == "python":
            exec(compile(code, str(DOC), "exec"), namespace)
            continue
        for line in code.splitlines():
            if line.startswith("robustlab "):
                code_ = main(shlex.split(line)[1:])
                out, err = capsys.readouterr()
                assert (code_, err) == (0, ""), (line, err)
                assert "p_kernel" in out
                commands += 1
    assert commands == 2
    # the page's claims: the empirical NTK is within a few percent, LeCun and He share the
    # kernel part, 150 steps give the stated columns
    assert float((namespace["emp"] - namespace["Theta"]).norm() / namespace["Theta"].norm()) < 0.1
    assert namespace["r150"].t == 150 and namespace["r150"].model == "linearized"
