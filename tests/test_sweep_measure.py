"""What a sweep cell measures: worst case beside average, regions, point sets."""

from __future__ import annotations

import pytest

import robustlab as rl
from robustlab.sweep import load, load_config, run

CONFIG = {
    "name": "measure-test",
    "data": {"name": "sphere", "in_dim": 6, "n_train": 32, "n_test": 32, "teacher": "relu"},
    "grid": {"width": [16], "depth": [2, 3], "init": ["he"]},
    "seeds": 2,
    "train": {"steps": 20},
    "measure": {"eps": [0.1], "methods": ["exact", "finite_difference", "pgd"], "points": 32},
}


def test_pgd_rows_lie_above_the_average_and_are_never_judged(tmp_path):
    run(CONFIG, tmp_path / "m.db", executor="serial", dtype="float64")
    df = load(tmp_path / "m.db")
    keys = ["cell", "at", "points", "model"]
    wide = df.pivot_table(index=keys, columns="method", values="p_value")
    assert set(wide.columns) == {"exact", "finite_difference", "pgd"}
    # the worst case found over the ball is at least the average change over it
    assert (wide["pgd"] >= wide["finite_difference"]).all()
    assert (wide["pgd"] / wide["exact"]).between(1.0, 50.0).all()
    base = rl.claims.base_rows(df)
    assert "pgd" not in set(base["method"]) and len(base)


def test_exact_on_the_cube_is_refused_before_anything_runs(tmp_path):
    bad = {**CONFIG, "measure": {"methods": ["exact"], "region": "linf_ball"}}
    with pytest.raises(ValueError, match="^measure.methods: 'exact' has no closed form"):
        load_config(bad)
    ok = {**CONFIG, "measure": {"methods": ["jacobian", "pgd"], "region": "linf_ball"}}
    assert load_config(ok).measure.region == "linf_ball"
