"""The shipped presets: every file is a valid sweep, and every mode of ``reproduce`` runs end
to end on its presets, shrunk only through command-line style overrides (marked slow)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

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
def test_reproduce_runs_every_preset_of_its_mode(mode, tmp_path):
    res = reproduce(tmp_path / mode, mode=mode, executor="serial", overrides=TINY)
    rows = load(res.store)
    assert set(rows["sweep"]) == {load_config(p).name for p in preset_paths(mode)}
    assert (rows["steps"].dropna() <= 3).all() and set(rows["seed"]) == {0}
    claims = pd.read_csv(res.claims_csv)
    assert list(claims["claim"]) == [c.id for c in CLAIMS]
    assert res.report.stat().st_size > 0 and "Claims" in res.report.read_text()
