"""Every ``robustlab`` command documents every option, and the top-level help lists them all;
an option several commands share is declared once, its default is the library's, and a
range on the command line reads as in a sweep config.

The parsers are built by ``build_parser`` (what ``main`` uses); ``robustlab --help`` runs in a
subprocess, as a user would call it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from robustlab._checks import _int_axis
from robustlab._cli_args import int_list
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


# ----------------------------------------------------------------------------- one home each
def test_shared_options_are_one_declaration():
    """An option several commands share is one argparse action (a parent parser's), not a
    copy per command that could drift."""
    parsers = _subparsers()

    def action(command: str, flag: str) -> argparse.Action:
        (found,) = [a for a in parsers[command]._actions if flag in a.option_strings]
        return found

    for flag, commands in {
        "--executor": ("sweep", "reproduce"),
        "--workers": ("sweep", "reproduce"),
        "--quiet": ("measure", "theory", "sweep", "report", "reproduce"),
        "--dtype": ("measure", "sweep"),
        "--device": ("measure", "sweep"),
        "--format": ("measure", "theory"),
        "--force": ("export", "report"),
    }.items():
        first = action(commands[0], flag)
        assert all(action(c, flag) is first for c in commands[1:]), flag


def test_defaults_are_the_librarys():
    """What a flag left out means is what the library function means by its own default."""
    import inspect

    from robustlab.measure import measure_at_init, measure_saved
    from robustlab.sweep import run
    from robustlab.theory import after_training_table, init_table

    def default(fn, name):
        return inspect.signature(fn).parameters[name].default

    parsers = _subparsers()
    m = parsers["measure"].parse_args([])
    assert (m.seeds, m.out_dim, m.region) == (10, 1, "ball")
    assert m.seeds == default(measure_at_init, "seeds")
    assert (m.method, m.split) == (
        default(measure_saved, "method"),
        default(measure_saved, "split"),
    )
    t = parsers["theory"].parse_args(["--depth", "3"])
    assert (t.init, t.n_train, t.n_test, t.label_scale) == ("lecun,he,ntk", 100, 500, [1.0])
    assert (t.eps, t.region) == (default(init_table, "eps"), default(init_table, "region"))
    assert t.seed == default(after_training_table, "seed")
    s = parsers["sweep"].parse_args(["c.yaml", "--store", "s.db"])
    assert (s.executor, s.dtype, s.workers) == ("local", "float32", None)
    assert s.executor == default(run, "executor") and s.dtype == default(run, "dtype")


@pytest.mark.parametrize("text", ["2:12", "2:12:2", " 3 : 9 : 3 ", "7:7"])
def test_ranges_read_as_in_a_sweep_config(text):
    """--width 2:12:2 and ``width: "2:12:2"`` in a sweep YAML are one grammar."""
    assert int_list(text) == list(_int_axis("grid.width", text))


@pytest.mark.parametrize("text", ["5:2", "0:3", "2:5:0", "1:99999", "2:x", "1:3:2:1"])
def test_bad_ranges_fail_as_in_a_sweep_config(text):
    with pytest.raises(ValueError) as config:
        _int_axis("grid.width", text)
    with pytest.raises(argparse.ArgumentTypeError) as cli:
        int_list(text)
    assert str(config.value) == f"grid.width: {cli.value}"
