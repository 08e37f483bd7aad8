"""Every ``robustlab`` command documents every option, and the top-level help lists them all.

The parsers are built by ``build_parser`` (what ``main`` uses); ``robustlab --help`` runs in a
subprocess, as a user would call it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from robustlab.cli import COMMANDS, build_parser

NAMES = [name for name, *_ in COMMANDS]


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_command_has_a_parser():
    assert sorted(_subparsers()) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_option_has_help(name):
    parser = _subparsers()[name]
    undocumented = [
        "/".join(a.option_strings) or a.dest
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction)
        and (not isinstance(a.help, str) or not a.help.strip() or a.help == argparse.SUPPRESS)
    ]
    assert undocumented == [], f"robustlab {name}: options without help: {undocumented}"
    assert len(parser._actions) > 1  # the check saw the command's options, not just -h
    parser.format_help()  # every help string formats (a stray % would raise here)


def test_top_level_help_lists_every_command():
    code = "from robustlab.cli import main; import sys; sys.exit(main(['--help']))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    for name, help_text, *_ in COMMANDS:  # a row per command: its name, then its help
        first_word = re.escape(help_text.split()[0])
        assert re.search(rf"^ +{name} +{first_word}", out, re.MULTILINE), (name, out)
