"""The cell runner's parts: rows checked when built, the ensemble key, networks built once."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from robustlab.sweep import load_config
from robustlab.sweep import runs as sweep_runs
from robustlab.sweep.cells import run_group
from robustlab.sweep.ensembles import MAX_ENSEMBLE, EnsembleKey, ensembles, split_group, twins
from robustlab.sweep.rows import Row

TWINS = {
    "name": "twins",
    "data": {"name": "sphere", "in_dim": 5, "n_train": 20, "n_test": 5},
    "grid": {
        "width": [8],
        "depth": [2],
        "init": ["he", "ntk_param"],
        "regime": ["standard", "linearized"],
    },  # fmt: skip
    "seeds": 2,
    "train": {"lr": "auto", "steps": 3},
    "measure": {"eps": [0.1], "methods": ["exact"], "at": ["init", "final"], "laziness": False},
}


def test_row_checks_its_columns_when_built():
    row = Row({"eps": 0.1, "method": "exact"}, stage="final", steps=3)
    assert row == {"eps": 0.1, "method": "exact", "stage": "final", "steps": 3}
    with pytest.raises(ValueError, match="unknown column 'epsilon'"):
        Row(row, epsilon=0.1)
    bad = [("eps", "0.1"), ("eps", torch.tensor(0.1)), ("steps", 2.5), ("method", 1)]
    for column, value in bad:
        with pytest.raises(ValueError, match=f"column '{column}' .* cannot hold"):
            Row({column: value})
    assert Row(p_value=None, steps=3.0, p_stderr=math.nan)["steps"] == 3.0  # NULL, whole, NaN


def test_row_is_read_only_and_travels():
    row = Row(eps=0.1)
    for change in (lambda: row.__setitem__("eps", 1.0), lambda: row.update(eps=1.0),
                   lambda: row.pop("eps")):  # fmt: skip
        with pytest.raises(TypeError, match="read-only"):
            change()
    more = row.with_(method="mc")
    assert row == {"eps": 0.1} and more == {"eps": 0.1, "method": "mc"}
    back = pickle.loads(pickle.dumps(more))
    assert type(back) is Row and back == more


def test_ensemble_key_decides_groups_ensembles_and_twins():
    config = load_config(TWINS)
    (group,) = config.groups()
    keys = [EnsembleKey.of(c) for c in group]
    assert {k.group for k in keys} == {c.group_key() for c in group}
    pairs = twins(keys)
    assert len(pairs) == 4
    for i, j in pairs.items():
        a, b = group[i], group[j]
        assert (a.regime, b.regime) == ("standard", "linearized")
        assert (a.init, a.seed, a.alpha) == (b.init, b.seed, b.alpha)
        assert keys[i].network == keys[j].network
    # one ensemble per regime and forward function: he and ntk_param differ in multipliers
    forward = [(1.0,) if c.init == "he" else (2.0,) for c in group]
    parts = ensembles(keys, forward)
    assert [{(group[i].init, group[i].regime) for i in p} for p in parts] == [
        {("he", "standard")}, {("he", "linearized")},
        {("ntk_param", "standard")}, {("ntk_param", "linearized")},
    ]  # fmt: skip
    chunks = split_group(list(range(2 * MAX_ENSEMBLE + 1)))
    assert [len(c) for c in chunks] == [MAX_ENSEMBLE, MAX_ENSEMBLE, 1]


def test_each_initial_network_is_built_once(monkeypatch):
    """8 cells, 4 initial networks (init x seed; twins share theirs): 4 builds, and each cell
    trains its own copy, equal to its twin's at init."""
    built = []
    real = sweep_runs.build_model

    def counting(*args, **kwargs):
        built.append(kwargs["init"])
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_runs, "build_model", counting)
    cells = load_config(TWINS).cells()
    outcomes = run_group(cells)
    assert sorted(built) == ["he", "he", "ntk_param", "ntk_param"]
    assert [o.status for o in outcomes] == ["ok"] * 8
    assert all(type(row) is Row for o in outcomes for row in o.rows)
    by_cell = {o.cell_hash: o.rows for o in outcomes}
    for c in cells:
        (init,) = {r["p_value"] for r in by_cell[c.hash] if r["stage"] == "init"}
        twin = next(
            t for t in cells if t.regime != c.regime and (t.init, t.seed) == (c.init, c.seed)
        )
        assert {r["p_value"] for r in by_cell[twin.hash] if r["stage"] == "init"} == {init}
