"""MLflow tracking of sweeps (robustlab.sweep.tracking, ``--mlflow``): the runs read back with
``mlflow.search_runs`` hold the store's rows; each cell is logged once across resumed runs;
a tracking failure loses no result, and running again logs what MLflow lacks."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

import robustlab.reproduce as reproduce_module
from _sweeps import standard_sweep
from robustlab.cli import main
from robustlab.sweep import load, load_cells, run, tracking

# one group of two cells (LeCun, He), measured at init, at a checkpoint and at the end
CONFIG = {
    **standard_sweep("tracked", [2]),
    "train": {"steps": 60, "checkpoint_loss": 0.4},
    "measure": {
        "eps": [0.05, 0.1],
        "methods": ["exact", "pgd"],
        "points": 16,
        "at": ["init", "final"],
    },
}
VOLATILE = ["time_s", "created_at"]  # differ between two runs of the same cell
# SQLAlchemy 2.1 deprecates a loader option that MLflow's SQLite store still sets on import
pytestmark = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
)


@pytest.fixture(autouse=True)
def mlflow_log_level(monkeypatch):
    """Set here, so the CLI's default for it (when unset) does not outlive the test."""
    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", "WARNING")


@pytest.fixture
def mlflow(tmp_path, monkeypatch):
    """The mlflow module; the test is skipped where the optional extra is not installed. It
    runs in its own folder: older MLflow versions made an empty ./mlruns where they ran."""
    monkeypatch.chdir(tmp_path)
    reason = "MLflow tracking is optional: pip install 'robustlab[mlflow]'"
    for name in ("sqlalchemy", "alembic"):  # its SQLite tracking store's
        pytest.importorskip(name, reason=reason)
    return pytest.importorskip("mlflow", reason=reason)


@pytest.fixture(scope="module")
def plain_store(tmp_path_factory):
    """CONFIG run without tracking: the reference the tracked runs are compared with."""
    path = tmp_path_factory.mktemp("plain") / "plain.db"
    assert run(CONFIG, path, executor="serial").ok == 2
    return path


def logged_runs(mlflow, monkeypatch, uri: str, experiment: str) -> pd.DataFrame:
    """``mlflow.search_runs`` of an experiment at ``uri`` (active runs, one row per run)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return mlflow.search_runs(experiment_names=[experiment])


def metric_key(column: str, row) -> str:
    parts = [row[k] for k in ("stage", "model", "points", "region", "method")]
    return "/".join([column, *parts, f"eps_{float(row['eps'])!r}"])


def test_cli_logs_each_cell_as_a_run_holding_its_rows(tmp_path, mlflow, monkeypatch, capsys):
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    store = tmp_path / "r.db"
    argv = ["sweep", str(config), "--store", str(store), "--executor", "serial", "--quiet"]
    assert main([*argv, "--mlflow"]) == 0
    uri = f"sqlite:///{tmp_path.resolve() / 'r-mlflow' / 'mlflow.db'}"  # beside the store
    assert tracking.default_uri(store) == uri
    assert f"mlflow: 2 runs logged to {uri}" in capsys.readouterr().out

    runs = logged_runs(mlflow, monkeypatch, uri, "tracked")
    rows = load(store)
    assert sorted(runs["tags.cell"]) == sorted(rows["cell"].unique())
    for _, logged in runs.iterrows():
        mine = rows[rows["cell"] == logged["tags.cell"]]
        first = mine.iloc[0]
        assert (logged["status"], logged["tags.status"]) == ("FINISHED", "ok")
        assert logged["tags.seed"] == str(first["seed"])
        for key in ("width", "depth", "init", "regime", "alpha"):
            assert logged[f"params.{key}"] == str(first[key]), key
        assert logged["params.train.steps"] == "60"
        assert json.loads(logged["params.measure.eps"]) == [0.05, 0.1]
        final = mine[(mine["stage"] == "final") & (mine["method"] == "exact")]
        p_final = final[(final["eps"] == 0.1) & (final["points"] == "test")]["p_value"]
        assert logged["metrics.p_value/final/network/test/ball/exact/eps_0.1"] == p_final.item()
        for _, row in mine.iterrows():  # every measurement: P, or the worst case for pgd
            column = "worst_value" if row["method"] == "pgd" else "p_value"
            assert logged[f"metrics.{metric_key(column, row)}"] == row[column]
        for stage, at in mine.groupby("stage"):
            assert logged[f"metrics.train_loss/{stage}"] == at["train_loss"].iloc[0]
        assert logged["metrics.rel_weight_change"] == first["rel_weight_change"]
        assert logged["metrics.n_params"] == first["n_params"]


def test_each_numeric_column_is_one_metric_per_value_it_takes(plain_store):
    """The columns logged once per cell (or per stage) hold one value there; no two values
    share a metric key."""
    rows = load(plain_store)
    assert set(rows["stage"]) == {"init", "checkpoint", "final"}
    for _, mine in rows.groupby("cell"):
        logged = tracking.cell_run(mine.to_dict("records"))
        for column in tracking.PER_CELL:
            assert mine[column].nunique() <= 1, column
        by_stage = mine.groupby("stage")
        for column in tracking.PER_STAGE:
            assert (by_stage[column].nunique() <= 1).all(), column
        expected = (
            sum(int(mine[c].notna().sum()) for c in tracking.MEASURED)
            + sum(int(by_stage[c].first().notna().sum()) for c in tracking.PER_STAGE)
            + sum(bool(mine[c].notna().any()) for c in tracking.PER_CELL)
        )
        assert len(logged.metrics) == expected
        assert not set(logged.metrics) & {"seed", "width", "depth", "alpha", "eps"}


def test_a_failed_cell_is_a_failed_run_with_its_message():
    config = {"sweep": "s", "width": 8, "depth": 2, "init": "he", "regime": "lazy",
              "alpha": 10.0, "seed": 3, "train": {"steps": 5, "target_loss": None}}  # fmt: skip
    row = {"cell": "c0ffee", "sweep": "s", "status": "failed", "message": "RuntimeError: boom",
           "config_json": json.dumps(config), "p_value": None, "train_loss": math.nan}  # fmt: skip
    logged = tracking.cell_run([row])
    assert logged.failed and logged.metrics == {}
    assert logged.tags == {"cell": "c0ffee", "sweep": "s", "status": "failed", "seed": "3",
                           "message": "RuntimeError: boom"}  # fmt: skip
    assert logged.params["train.steps"] == "5" and logged.params["train.target_loss"] == "null"
    assert logged.name == "he w8 d2 lazy a10 s3"


def test_load_reads_the_rows_of_the_cells_asked_for(plain_store):
    """What the tracker reads a stored group with: the rows of some cells, in store order."""
    rows = load(plain_store)
    first = rows["cell"].iloc[0]
    alone = rows[rows["cell"] == first].reset_index(drop=True)
    pd.testing.assert_frame_equal(load(plain_store, cells=[first]), alone)
    assert load(plain_store, cells=[]).empty and len(alone) < len(rows)


def test_a_rerun_logs_only_the_cells_mlflow_lacks(tmp_path, mlflow, monkeypatch, plain_store):
    store = tmp_path / "r.db"
    shutil.copy(plain_store, store)  # swept before, without tracking
    backfill = run(CONFIG, store, executor="serial", mlflow=True)
    assert (backfill.skipped, backfill.ok, backfill.tracked) == (2, 0, 2)
    again = run(CONFIG, store, executor="serial", mlflow=True)
    assert (again.tracked, again.tracking_error) == (0, "")
    runs = logged_runs(mlflow, monkeypatch, again.tracking, "tracked")
    assert sorted(runs["tags.cell"]) == sorted(load_cells(store)["cell"])


def test_a_tracking_failure_loses_no_result(tmp_path, mlflow, monkeypatch, capsys, plain_store):
    """MLflow fails halfway through the first cell's run: the sweep goes on and stores every
    cell, the CLI says so and exits 1; run again, MLflow gets each cell once."""
    calls = []
    set_terminated = mlflow.MlflowClient.set_terminated

    def fail_once(self, run_id, *args, **kwargs):
        calls.append(run_id)
        if len(calls) == 1:
            raise OSError("disk full")
        return set_terminated(self, run_id, *args, **kwargs)

    monkeypatch.setattr(mlflow.MlflowClient, "set_terminated", fail_once)
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    store = tmp_path / "r.db"
    argv = ["sweep", str(config), "--store", str(store), "--executor", "serial", "--quiet"]
    assert main([*argv, "--mlflow"]) == 1
    out, err = capsys.readouterr()
    assert "ran 2 ok" in out and "mlflow: 0 runs logged" in out
    # (MLflow, imported by the fixture before the CLI could quiet it, logs INFO lines too)
    (line,) = [line for line in err.splitlines() if line.startswith("robustlab")]
    assert line.startswith("robustlab: error: MLflow logging stopped: disk full;")
    stored, reference = load(store), load(plain_store)
    pd.testing.assert_frame_equal(
        stored.drop(columns=VOLATILE), reference.drop(columns=VOLATILE), check_exact=True
    )

    assert main([*argv, "--mlflow"]) == 0
    assert "mlflow: 2 runs logged" in capsys.readouterr().out
    runs = logged_runs(mlflow, monkeypatch, tracking.default_uri(store), "tracked")
    assert sorted(runs["tags.cell"]) == sorted(stored["cell"].unique())  # the half run is gone
    assert set(runs["status"]) == {"FINISHED"}


def test_mlflow_loads_only_when_tracking():
    code = (
        "import sys, robustlab.sweep, robustlab.sweep.tracking, robustlab.reproduce, "
        "robustlab.cli\nprint('mlflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


def test_mlflow_missing_is_one_line_before_the_store(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow: ImportError
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    store = tmp_path / "r.db"
    argv = ["sweep", str(config), "--store", str(store), "--mlflow"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("robustlab: error: ") and err.count("\n") == 1
    assert "pip install 'robustlab[mlflow]'" in err
    assert not store.exists() and not (tmp_path / "r-mlflow").exists()


def test_an_override_after_a_bare_mlflow_is_not_taken_for_its_uri(tmp_path, capsys):
    store = tmp_path / "r.db"
    assert main(["sweep", "sweep.yaml", "--store", str(store), "--mlflow", "seeds=2"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "robustlab: error: argument --mlflow: 'seeds=2' is a config override, not a tracking "
        "URI: put the overrides before --mlflow, or write --mlflow=URI\n"
    )
    assert not store.exists()


def test_a_uri_mlflow_cannot_use_is_one_line_before_any_cell(tmp_path, mlflow, capsys):
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    store = tmp_path / "r.db"
    assert main(["sweep", str(config), "--store", str(store), "--mlflow", "nosuch://host"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("robustlab: error: MLflow tracking URI 'nosuch://host': ")
    assert err.count("\n") == 1
    assert load_cells(store).empty


def test_reproduce_logs_the_report_as_an_artifact(tmp_path, mlflow, monkeypatch):
    preset = tmp_path / "tiny.yaml"
    preset.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    monkeypatch.setattr(reproduce_module, "preset_paths", lambda mode="quick", protocol=2: [preset])
    res = reproduce_module.reproduce(tmp_path / "out", executor="serial", mlflow=True)
    assert (res.summary.tracked, res.summary.tracking_error) == (2, "")
    client = mlflow.MlflowClient(tracking_uri=res.summary.tracking)
    experiment = client.get_experiment_by_name("robustlab-reproduce-quick")
    (report_run,) = client.search_runs([experiment.experiment_id])
    artifacts = {a.path for a in client.list_artifacts(report_run.info.run_id)}
    assert artifacts == {"report.html", "claims.csv", "sensitivity.csv", "crossovers.csv",
                         "protocol1.csv", "variants.csv"}  # fmt: skip
    kept = tmp_path / "out" / "results-mlflow" / "artifacts"  # beside the store
    (copy,) = kept.rglob("report.html")
    assert copy.read_bytes() == res.report.read_bytes()
    tags = report_run.data.tags
    keys = [reproduce_module.verdict_key(r) for _, r in res.claims.iterrows()]
    assert len(set(keys)) == len(keys)  # one tag per row of the table
    assert {k: tags[k] for k in keys} == dict(zip(keys, res.claims["verdict"], strict=True))
    assert report_run.data.params["mode"] == "quick"


def test_a_claims_row_has_its_own_tag():
    row = pd.Series({"claim": "C4-he", "dataset": "sphere", "labels": None, "label_scale": 0.1})
    assert reproduce_module.verdict_key(row) == "verdict.C4-he.sphere.c0.1"
    row = pd.Series({"claim": "C1", "dataset": "digits", "labels": "flip", "label_scale": np.nan})
    assert reproduce_module.verdict_key(row) == "verdict.C1.digits.flip"
    assert reproduce_module.verdict_key(pd.Series({"claim": "C5"})) == "verdict.C5"
