"""The shipped presets: every file is a valid sweep, and every mode of ``reproduce`` runs end
to end on its presets, shrunk only through command-line style overrides (marked slow)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

from robustlab._cli_print import reproduce_lines
from robustlab.claims import CLAIMS
from robustlab.reproduce import MODES, preset_paths, reproduce
from robustlab.sweep import load, load_config

PRESETS = Path(str(resources.files("robustlab") / "presets"))
# every preset, shrunk: one seed, a few steps, few points; the grids stay as shipped
TINY = ("seeds=1", "train.steps=3", "measure.points=8", "data.n_test=8")


def test_every_preset_file_is_a_valid_sweep_that_names_its_claims():
    files = sorted(PRESETS.rglob("*.yaml"))
    assert len(files) >= 6 + 14  # quick, full; protocol2 quick and full
    names = set()
    for path in files:
        config = load_config(path)
        assert config.claims, path  # the report shows the claims of the sweeps made for them
        names.add((path.parent, config.name))
    assert len(names) == len(files)  # one name per preset within its folder


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_reproduce_runs_every_preset_of_its_mode(mode, tmp_path, capsys):
    res = reproduce(tmp_path / mode, mode=mode, executor="serial", overrides=TINY)
    rows = load(res.store)
    assert set(rows["sweep"]) == {load_config(p).name for p in preset_paths(mode)}
    assert (rows["steps"].dropna() <= 3).all() and set(rows["seed"]) == {0}
    claims = pd.read_csv(res.claims_csv)  # Protocol 2's rows, then C5 by Protocol 1
    assert set(claims["claim"]) == {c.id for c in CLAIMS} | {"C12-peak"}
    assert set(claims["dataset"].dropna()) == {"sphere", "digits"}
    assert list(pd.read_csv(res.protocol1_csv)["claim"]) == [c.id for c in CLAIMS]
    assert set(pd.read_csv(res.crossovers_csv)["init"]) == {"lecun", "he", "ntk"}
    reproduce_lines(res)  # what the command prints: Protocol 2's tables, then C5
    out = capsys.readouterr().out
    for part in ("protocol 1", "Holm's adjustment", "Depth shape", "Crossover ratio r*",
                 "C5 (Protocol 1)", f"report: {res.report}"):  # fmt: skip
        assert part in out, part
    drawn = {p.stem for p in res.figures}  # Protocol 2's many width sweeps: headline views
    assert {"p_at_each_n", "loss_at_each_n", "depth_slope_vs_ratio"} <= drawn
    assert not drawn & {"p_across_pn", "fit_control", "p_by_width", "p_by_n_train"}
    page = res.report.read_text()
    assert "Findings" in page and "Control: Protocol 1" in page
