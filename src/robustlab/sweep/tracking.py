"""Optional MLflow tracking: a results store's cells as MLflow runs, one experiment per sweep.

The store stays the record: a cell is logged only after it is written, from the rows read
back from the store, so MLflow shows exactly what the store holds and a tracking failure
never touches a result. Needs ``pip install 'robustlab[mlflow]'`` (``mlflow-skinny`` with
SQLAlchemy and Alembic for MLflow's SQLite tracking store); mlflow is imported on first
use, never by ``import robustlab``.

One run per cell, in the experiment named after its sweep:

- params: the cell's config (``config_json``) flattened with dots (``train.steps``,
  ``data.n_train``); lists and null as JSON (``[0.05, 0.1]``, ``null``);
- metrics (step 0): each measurement row's :data:`MEASURED` columns as
  ``p_value/final/network/test/ball/exact/eps_0.1`` (column / stage / model / points /
  region / method / eps), the :data:`PER_STAGE` columns as ``train_loss/final``, and every
  other numeric column once, as ``rel_weight_change`` (they are the same on all the cell's
  rows); the grid's axes (width, depth, alpha, seed) are params, not metrics;
- tags: ``cell`` (the cell's hash), ``status``, ``seed``, ``sweep``, ``sweep_hash``, the
  versions, and ``message`` for a failed or diverged cell. A failed cell's run ends
  ``FAILED``.

Once per cell: a cell is logged when no finished run of its experiment has its hash
(tag ``cell``) and its status. Logging is a sync, so a resumed sweep, or the same command
run again after a tracking failure, logs exactly the stored cells MLflow lacks. A run left
``RUNNING`` (logging interrupted halfway) and the run of a failed cell that was retried are
deleted once the cell's new run is logged. One process should log a store at a time.

Where: any MLflow tracking URI; by default an SQLite tracking store in a folder beside the
results store (``results.db`` -> ``results-mlflow/mlflow.db``, artifacts in
``results-mlflow/artifacts``). SQLite, not a folder of files: MLflow 3 refuses its plain
file store (``./mlruns``) unless ``MLFLOW_ALLOW_FILE_STORE`` is set, and names SQLite as
the store to use without a server. View it with the full ``mlflow`` package:
``mlflow ui --backend-store-uri sqlite:///results-mlflow/mlflow.db``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from .._checks import first_line
from .schema import COLUMNS
from .store import load, load_cells

__all__ = [
    "INSTALL",
    "MEASURED",
    "PER_CELL",
    "PER_STAGE",
    "CellRun",
    "Tracker",
    "cell_run",
    "default_uri",
    "require_mlflow",
]

INSTALL = "pip install 'robustlab[mlflow]'"
# result columns that differ between a cell's measurement rows: one metric per row
MEASURED = ("p_value", "p_stderr", "worst_value", "worst_stderr", "grad_norm", "p_lazy_limit")
# result columns that differ between stages (init, checkpoint, final): one metric per stage
PER_STAGE = ("train_loss", "test_loss", "train_acc", "test_acc", "steps")
# what names a measurement row within its cell (the metric key's parts after the column)
ROW_KEY = ("stage", "model", "points", "region", "method", "eps")
# numeric columns that are the grid's axes or the row key: params and key parts, not metrics
NOT_METRICS = ("seed", "data_seed", "width", "depth", "alpha", "eps")
# every other numeric column: one value per cell, one metric
PER_CELL = tuple(
    c
    for c, kind in COLUMNS.items()
    if kind in ("REAL", "INTEGER") and c not in (*MEASURED, *PER_STAGE, *NOT_METRICS)
)
# tags copied from the cell's rows as they are
ROW_TAGS = ("cell", "status", "sweep", "sweep_hash", "robustlab_version", "torch_version")
# MLflow's own limits (mlflow.utils.validation) where a version lacks them
PARAM_VALUE_CHARS, TAG_VALUE_CHARS = 6000, 8000


def require_mlflow(uri: str | None = None) -> ModuleType:
    """The ``mlflow`` module, or a ValueError telling how to install it (also when an SQLite
    tracking store, the default when ``uri`` is None, lacks SQLAlchemy or Alembic)."""
    needed = ["mlflow"]
    if uri is None or uri.startswith("sqlite:"):
        needed += ["sqlalchemy", "alembic"]  # MLflow's SQLite tracking store
    for name in needed:
        try:
            __import__(name)
        except ImportError:
            raise ValueError(f"MLflow tracking needs the {name} package: {INSTALL}") from None
    import mlflow

    return mlflow


def default_uri(store: str | os.PathLike) -> str:
    """The tracking URI beside a results store: ``results.db`` -> an SQLite file
    ``results-mlflow/mlflow.db`` (absolute, so it does not depend on the working folder)."""
    return f"sqlite:///{_default_folder(store) / 'mlflow.db'}"


def _default_folder(store: str | os.PathLike) -> Path:
    path = Path(store).resolve()
    return path.with_name(f"{path.stem}-mlflow")  # never the store itself: a suffix has a dot


@dataclass(frozen=True)
class CellRun:
    """What one cell's MLflow run holds (see the module's docstring)."""

    name: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    failed: bool


def _flat(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, text) for each leaf of a config: strings as they are, the rest as JSON."""
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            yield from _flat(v, f"{key}.{k}" if key else str(k))
    else:
        yield key, value if isinstance(value, str) else json.dumps(value)


def _present(value: Any) -> bool:
    """Not NULL: neither None, NaN nor pandas' NA."""
    return value is not None and not pd.isna(value)


def _number(value: Any) -> float | None:
    """A row's number as a float; None for NULL."""
    return float(value) if _present(value) and not isinstance(value, str) else None


def _part(value: Any) -> str:
    """A metric key's part: the value's text, ``na`` for NULL (a store older than the
    column)."""
    return str(value) if _present(value) else "na"


def _row_key(row: Mapping[str, Any]) -> list[str]:
    """stage, model, points, region, method, then ``eps_0.1`` (the shortest exact decimal)."""
    eps = _number(row.get("eps"))
    return [*(_part(row.get(k)) for k in ROW_KEY[:-1]), "eps_na" if eps is None else f"eps_{eps!r}"]


def cell_run(rows: Iterable[Mapping[str, Any]]) -> CellRun:
    """One cell's MLflow run from its result rows (dicts keyed by the store's columns, as
    :func:`robustlab.sweep.load` returns them; all of one cell)."""
    rows = list(rows)
    if not rows or len({r["cell"] for r in rows}) != 1:
        raise ValueError("cell_run takes the rows of exactly one cell")
    first = rows[0]
    config = json.loads(first["config_json"])
    tags = {k: str(first[k]) for k in ROW_TAGS if _present(first.get(k))}
    tags["seed"] = json.dumps(config.get("seed"))
    if _present(first.get("message")) and first["message"]:
        tags["message"] = str(first["message"])
    metrics: dict[str, float] = {}
    for row in rows:
        for column in MEASURED:
            if (v := _number(row.get(column))) is not None:
                metrics["/".join([column, *_row_key(row)])] = v
        for column in PER_STAGE:
            if (v := _number(row.get(column))) is not None:
                metrics.setdefault(f"{column}/{_part(row.get('stage'))}", v)
        for column in PER_CELL:
            if (v := _number(row.get(column))) is not None:
                metrics.setdefault(column, v)
    get = config.get
    alpha = "" if get("alpha") in (None, 1) else f" a{get('alpha'):g}"
    name = f"{get('init')} w{get('width')} d{get('depth')} {get('regime')}{alpha} s{get('seed')}"
    return CellRun(name, dict(_flat(config)), metrics, tags, first.get("status") == "failed")


@dataclass
class _Experiment:
    id: str
    # cell hash -> its runs: (run id, status tag, MLflow run status)
    runs: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)


class Tracker:
    """Logs a results store's cells to MLflow (see the module's docstring).

    Args:
        store: the results store (SQLite file) the cells are read from.
        uri: an MLflow tracking URI (default :func:`default_uri`: beside ``store``).

    Attributes:
        uri: the tracking URI in use.
        logged: runs logged so far.
        error: why logging stopped (the first failure's message), or None. After a failure
            the tracker logs nothing more; the store is never touched.

    Raises:
        ValueError: mlflow missing (with the command that installs it), or a tracking URI
            MLflow cannot use: from the constructor, before anything is logged.
    """

    def __init__(self, store: str | os.PathLike, uri: str | None = None) -> None:
        self._mlflow = require_mlflow(uri)
        self.store = Path(store)
        self.uri = uri or default_uri(store)
        self._artifacts: str | None = None  # MLflow's default for a URI given
        if self.uri == default_uri(store):
            folder = _default_folder(store)
            folder.mkdir(parents=True, exist_ok=True)
            self._artifacts = (folder / "artifacts").as_uri()
        self.logged = 0
        self.error: str | None = None
        self._experiments: dict[str, _Experiment] = {}
        from mlflow.utils import validation

        self._param_chars = getattr(validation, "MAX_PARAM_VAL_LENGTH", PARAM_VALUE_CHARS)
        self._tag_chars = getattr(validation, "MAX_TAG_VAL_LENGTH", TAG_VALUE_CHARS)
        try:
            self._client = self._mlflow.MlflowClient(tracking_uri=self.uri)
            self._client.search_experiments(max_results=1)  # reaches the backend now
        except Exception as err:  # MLflow's errors have no common base beyond this
            raise ValueError(f"MLflow tracking URI {self.uri!r}: {first_line(err)}") from None

    def log_cells(
        self, cells: Iterable[str] | None = None, *, sweeps: Iterable[str] | None = None
    ) -> int:
        """Log the stored cells MLflow lacks: those of ``cells`` (hashes) and ``sweeps``
        (names); all of the store's when both are None. Returns the runs logged.

        Never raises for a failure of MLflow or of reading the store: it sets
        :attr:`error` and stops (a KeyboardInterrupt still propagates).
        """
        if self.error is not None:
            return 0
        try:
            return self._log_cells(cells, sweeps)
        except Exception as err:  # a tracking failure must not end the sweep
            self.error = first_line(err)
            return 0

    def log_files(
        self,
        experiment: str,
        run_name: str,
        files: Iterable[str | os.PathLike],
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> bool:
        """Log one run holding ``files`` as artifacts (with ``params`` and ``tags``) in the
        experiment ``experiment``. Returns whether it was logged; a failure sets
        :attr:`error` like :meth:`log_cells`."""
        if self.error is not None:
            return False
        try:
            from mlflow.entities import Param, RunTag

            exp = self._experiment(experiment)
            run_id = self._client.create_run(exp.id, run_name=run_name).info.run_id
            self._client.log_batch(
                run_id,
                params=[Param(k, str(v)[: self._param_chars]) for k, v in (params or {}).items()],
                tags=[RunTag(k, str(v)[: self._tag_chars]) for k, v in (tags or {}).items()],
            )
            for path in files:
                self._client.log_artifact(run_id, str(path))
            self._client.set_terminated(run_id, "FINISHED")
            return True
        except Exception as err:  # a tracking failure must not end the caller's work
            self.error = first_line(err)
            return False

    # ------------------------------------------------------------------ internals
    def _log_cells(self, cells: Iterable[str] | None, sweeps: Iterable[str] | None) -> int:
        table = load_cells(self.store)
        if cells is not None:
            table = table[table["cell"].isin(set(cells))]
        if sweeps is not None:
            table = table[table["sweep"].isin(set(sweeps))]
        todo = [
            (cell, sweep)
            for cell, sweep, status in table[["cell", "sweep", "status"]].itertuples(index=False)
            if not self._has(sweep, cell, status)
        ]
        if not todo:
            return 0
        sweep_of = dict(todo)
        rows = load(self.store, cells=list(sweep_of))
        n = 0
        for cell, group in rows.groupby("cell", sort=False):
            run = cell_run(group.to_dict("records"))
            self._log_run(self._experiment(sweep_of[cell]), cell, run)
            n += 1
        return n

    def _experiment(self, name: str) -> _Experiment:
        """The experiment ``name`` (created if missing) with its runs read once."""
        if name in self._experiments:
            return self._experiments[name]
        from mlflow.entities import ViewType

        found = self._client.get_experiment_by_name(name)
        if found is not None and found.lifecycle_stage == "deleted":
            raise ValueError(
                f"MLflow experiment {name!r} is deleted: restore it (mlflow experiments "
                "restore) or remove it for good (mlflow gc)"
            )
        exp_id = (
            found.experiment_id
            if found is not None
            else self._client.create_experiment(name, artifact_location=self._artifacts)
        )
        exp = _Experiment(exp_id)
        token = None
        while True:  # every page: a big sweep has more runs than one page holds
            page = self._client.search_runs(
                [exp_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token
            )
            for run in page:
                cell = run.data.tags.get("cell")
                if cell is not None:
                    entry = (run.info.run_id, run.data.tags.get("status", ""), run.info.status)
                    exp.runs.setdefault(cell, []).append(entry)
            token = page.token
            if not token:
                break
        self._experiments[name] = exp
        return exp

    def _has(self, sweep: str, cell: str, status: str) -> bool:
        runs = self._experiment(sweep).runs.get(cell, [])
        return any(tag == status and state != "RUNNING" for _, tag, state in runs)

    def _log_run(self, exp: _Experiment, cell: str, run: CellRun) -> None:
        from mlflow.entities import Metric, Param

        client = self._client
        tags = {k: v[: self._tag_chars] for k, v in run.tags.items()}
        run_id = client.create_run(exp.id, run_name=run.name, tags=tags).info.run_id
        exp.runs.setdefault(cell, []).append((run_id, run.tags.get("status", ""), "RUNNING"))
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in run.metrics.items()],
            params=[Param(k, v[: self._param_chars]) for k, v in run.params.items()],
        )
        status = "FAILED" if run.failed else "FINISHED"
        client.set_terminated(run_id, status)
        for old, _, _ in exp.runs[cell][:-1]:  # an interrupted log, a failed cell retried
            client.delete_run(old)
        exp.runs[cell] = [(run_id, run.tags.get("status", ""), status)]
        self.logged += 1
