"""What a sweep cell measures: worst case beside average, regions, point sets."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

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
    keys = ["cell", "stage", "points", "model"]
    # the worst case has its own column; P is NULL on its rows (and vice versa)
    assert df.loc[df["method"] == "pgd", "p_value"].isna().all()
    assert df.loc[df["method"] != "pgd", "worst_value"].isna().all()
    wide = df.assign(value=df["p_value"].fillna(df["worst_value"]))
    wide = wide.pivot_table(index=keys, columns="method", values="value")
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


@pytest.mark.parametrize(
    "data,message",
    [
        # checked when the config is read (robustlab.data.DataConfig), with the YAML path
        ({"name": "no-such-data"}, "data.name: unknown dataset 'no-such-data'"),
        ({"name": "/nowhere/points.npz"}, "sweep 'bad': "),
        ({"name": "sphere", "teacher": "banana"}, "data.teacher: expected one of linear, relu"),
        ({"name": "digits", "teacher": "relu"}, "unknown option 'teacher' for dataset 'digits'"),
        ({"name": "digits", "classes": [0, 1], "n_test": 64}, "n_test=64 is larger"),
    ],
)
def test_bad_data_fails_with_exit_2_before_any_cell_runs(tmp_path, capsys, data, message):
    from robustlab.cli import main

    cfg = {"name": "bad", "data": data, "grid": {"width": [4], "depth": [2]}, "seeds": 3}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    store = tmp_path / "bad.db"
    assert main(["sweep", str(path), "--store", str(store), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("robustlab: error: ") and message in err and "\n" not in err
    assert not store.exists()  # nothing written


@pytest.mark.parametrize("family", ["cnn", "resnet"])
def test_image_families_sweep_end_to_end(tmp_path, family):
    cfg = {
        "name": f"{family}-tiny",
        "data": {"name": "digits", "classes": [0, 1], "n_train": 40, "n_test": 20},
        "model": {"family": family},
        "grid": {"width": [4, 8], "depth": [2], "init": ["he", "lecun"]},
        "seeds": 2,
        "train": {"steps": 10},
        "measure": {"methods": ["exact", "pgd"], "points": 20},
    }
    summary = run(cfg, tmp_path / "f.db", executor="serial")
    assert summary.ok == 8 and summary.failed == 0
    df = load(tmp_path / "f.db")
    final = df[(df["stage"] == "final") & (df["method"] == "exact")]
    assert len(final) == 8 and (final["p_value"] > 0).all()
    built = rl.models.build_model(family, (1, 8, 8), 4, 2, init="he")
    assert set(final.loc[final["width"] == 4, "n_params"]) == {built.spec.n_params}
    with pytest.raises(ValueError, match="needs image inputs of shape"):
        run({**cfg, "data": {"name": "sphere"}}, tmp_path / "g.db", executor="serial")
    assert not (tmp_path / "g.db").exists()


def test_report_draws_worst_over_average(tmp_path):
    from robustlab.report.worst_figures import worst_vs_average

    run(CONFIG, tmp_path / "m.db", executor="serial")
    df = load(tmp_path / "m.db")
    fig = worst_vs_average(df)
    (ax,) = [a for a in fig.axes if a.get_title() == "against depth"]
    final = df[(df["stage"] == "final") & (df["seed"] == 0) & (df["depth"] == 3)]
    want = float(final.set_index("method").loc["pgd", "worst_value"]) / float(
        final.set_index("method").loc["exact", "p_value"]
    )
    seeds = [c.get_offsets()[:, 1] for c in ax.collections]
    assert any(np.isclose(want, ys).any() for ys in seeds)
    assert worst_vs_average(df[df["method"] != "pgd"]) is None


def test_cells_record_their_infinite_width_lazy_limit(tmp_path):
    import torch

    from robustlab.report.claim_figures import p_vs_depth
    from robustlab.theory import lazy_limit_p

    cfg = {
        "name": "limit",
        "data": {"name": "sphere", "in_dim": 6, "n_train": 24, "n_test": 16, "teacher": "relu"},
        "grid": {
            "width": [32],
            "depth": [2, 3],
            "init": ["he"],
            "regime": ["linearized", "standard"],
        },  # fmt: skip
        "seeds": 2,
        "train": {"steps": 30},
        "measure": {"points": 16, "lazy_limit": True},
    }
    run(cfg, tmp_path / "l.db", executor="serial", dtype="float64")
    df = load(tmp_path / "l.db")
    final = df[df["stage"] == "final"]
    assert (
        final["p_lazy_limit"].notna().all()
        and df[df["stage"] == "init"]["p_lazy_limit"].isna().all()
    )
    ds = rl.data.load("sphere", in_dim=6, n_train=24, n_test=16, teacher="relu", seed=1)
    ds = ds.to(dtype=torch.float64)
    for regime, model in (("linearized", "linearized"), ("standard", "network")):
        row = final[(final["regime"] == regime) & (final["seed"] == 1) & (final["depth"] == 3)]
        want = lazy_limit_p(ds.x_train, ds.y_train, ds.x_test, init="he", depth=3, eps=0.1,
                            model=model, seed=1)  # fmt: skip
        assert row["p_lazy_limit"].iloc[0] == pytest.approx(want, rel=1e-9)
    c = rl.claims.evaluate(df, sensitivity=False).set_index("claim")
    assert np.isfinite(c.loc["C4-he", "limit_slope"])
    labels = [t for ax in p_vs_depth(df).axes for t in ax.get_legend_handles_labels()[1]]
    assert any("infinite-width lazy limit" in t for t in labels)
    mf = {**cfg, "name": "mf", "grid": {"width": [8, 16], "depth": [2], "init": ["he"],
                                       "regime": ["mean_field"]}}  # fmt: skip
    run(mf, tmp_path / "l.db", executor="serial")
    rows = load(tmp_path / "l.db")
    assert rows[(rows["sweep"] == "mf") & (rows["stage"] == "final")]["p_lazy_limit"].isna().all()
