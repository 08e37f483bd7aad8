"""Execute one group of cells: build, measure at init, train as one ensemble, measure again.

A group holds cells that share data, architecture, regime family and training spec and
differ in init scheme, alpha, seed and twin regime (:class:`~.ensembles.EnsembleKey`). The
flow of :func:`run_group`:

1. build (:class:`~.runs.GroupBuild`): one :class:`~.runs.Run` per cell, with its data
   draw, point sets and base row; each initial network built once, each cell given a copy;
2. measure at init (:func:`~.run_rows.init_rows`);
3. train: one vmapped ensemble per (regime, forward function) (:func:`~.ensembles.ensembles`,
   :func:`~robustlab.training.train_ensemble`), ``lr="auto"`` resolved once per initial
   network and shared by every ensemble that trains it;
4. measure again (:func:`~.run_rows.final_rows`, or :func:`~.run_rows.diverged_rows`), and
   the twins' gradient deviation (:func:`~.run_rows.twin_deviation`);
5. rows: :class:`~.rows.Row` objects, checked against the schema as they are built, in one
   :class:`CellOutcome` per cell.

This module is pure: it returns rows and never touches the store, so it runs the same in
the driver, in worker processes and in Ray tasks.
"""

from __future__ import annotations

import math
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from .._checks import first_line
from .._sections import at_path
from ..models.user import builder_path, check_builder
from ..training import train_ensemble
from ..training.trainer import resolve_auto_lr
from .config import Cell
from .ensembles import ensembles, twins
from .rows import Row
from .run_rows import diverged_rows, final_rows, init_rows, twin_deviation
from .runs import GroupBuild, Run, build_network, load_dataset, out_dim

__all__ = ["GROUP_THREADS", "CellOutcome", "check_config", "group_threads", "run_group"]

BATCH_ORDER_SEED = 12345  # minibatch order is fixed per group (shared by its members)
# torch's intra-op threads for every group, wherever it runs (the driver, a worker process,
# a Ray task): a parallel reduction splits its sum by thread, so its last bits depend on the
# count (the empirical NTK's did: 2 threads against 1 changed ntk_change by 5e-7 relative).
# Fixed, every stored number is a function of its cell's config and seed alone.
GROUP_THREADS = 1


@dataclass(frozen=True)
class CellOutcome:
    """What a cell produced: status, message, wall time and its result rows."""

    cell_hash: str
    sweep: str
    status: str
    message: str
    config_json: str
    time_s: float
    rows: list[dict]


@contextmanager
def group_threads() -> Iterator[None]:
    """Run the block with GROUP_THREADS intra-op threads; restore the count after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(GROUP_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_group(
    cells: list[Cell], *, dtype: str = "float32", device: str = "cpu", paths: tuple[str, ...] = ()
) -> list[CellOutcome]:
    """Run one group of cells; a failure marks the group's cells ``failed`` and returns.

    It runs with :data:`GROUP_THREADS` threads (restored after), so its rows are the same
    bits in the driver, in a worker process and in a Ray task. ``paths``: folders appended to
    ``sys.path`` where missing, so that a worker imports the sweep's model builder from where
    the driver did (:func:`check_config` returns them); appended, they shadow no module.
    """
    t0 = time.perf_counter()
    sys.path.extend(p for p in dict.fromkeys(paths) if p not in sys.path)
    try:
        with group_threads():
            return _run_group(cells, dtype, device, t0)
    except Exception as err:  # recorded, the sweep goes on
        msg = f"{type(err).__name__}: {err}".strip().splitlines()[0]
        tb = traceback.format_exc(limit=3)
        dt = (time.perf_counter() - t0) / len(cells)
        return [
            CellOutcome(
                c.hash,
                c.sweep,
                "failed",
                f"{msg} | {tb[-300:]}",
                c.config_json(),
                dt,
                [Row(status="failed", message=msg)],
            )  # fmt: skip
            for c in cells
        ]


def _run_group(cells: list[Cell], dtype: str, device: str, t0: float) -> list[CellOutcome]:
    runs = GroupBuild(cells, dtype, device).runs()
    at_init = [init_rows(run) for run in runs]
    runs = _train(runs)
    rows = [
        diverged_rows(run, r) if run.result.diverged else final_rows(run, r)
        for run, r in zip(runs, at_init, strict=True)
    ]
    for i, j in twins([run.key for run in runs]).items():
        if not (runs[i].result.diverged or runs[j].result.diverged):
            dev = twin_deviation(runs[i], runs[j])
            rows[i] = [row.with_(grad_lin_dev=dev) for row in rows[i]]
    dt = (time.perf_counter() - t0) / len(cells)  # the group's wall time, shared equally
    return [
        CellOutcome(
            run.cell.hash, run.cell.sweep, "diverged" if run.result.diverged else "ok",
            run.result.reason if run.result.diverged else "", run.cell.config_json(), dt,
            [row.with_(time_s=dt) for row in r],
        )
        for run, r in zip(runs, rows, strict=True)
    ]  # fmt: skip


def _train(runs: list[Run]) -> list[Run]:
    """The runs trained, one vmapped ensemble per (regime, forward function).

    Init schemes under the NTK parameterization (``ntk_param``) have their own forward
    multipliers and twin regimes their own objective, so each needs its own ensemble. Each
    network trains on its own seed's data draw. Every ensemble draws minibatches from its own
    generator with the same seed, so each network sees the batches it would see alone.
    """
    results: list = [None] * len(runs)
    auto: dict[tuple, float] = {}  # lr="auto" per initial network, for all its ensembles
    forward = [tuple(run.net.spec.multipliers) for run in runs]
    for members in ensembles([run.key for run in runs], forward):
        ensemble = [runs[i] for i in members]
        config = ensemble[0].cell.train_config()
        trained = train_ensemble(
            [run.net for run in ensemble],
            [run.dataset for run in ensemble],
            config,
            alphas=[run.cell.alpha for run in ensemble],
            generator=torch.Generator().manual_seed(BATCH_ORDER_SEED),
            seeds=[run.cell.seed for run in ensemble],
            auto_lrs=_auto_lrs(ensemble, config, auto),
        )
        for i, res in zip(members, trained, strict=True):
            results[i] = res
    return [run.trained(res) for run, res in zip(runs, results, strict=True)]


def _auto_lrs(ensemble: list[Run], config, known: dict) -> list[float] | None:
    """``lr="auto"`` of each member (None unless the sweep asks for it): ``known`` holds it
    per initial network; the ensemble's networks not in it yet are resolved here, together,
    as the ensemble would resolve them (:func:`~robustlab.training.trainer.resolve_auto_lr`)."""
    if config.lr != "auto":
        return None
    fresh: dict[tuple, int] = {}  # initial network -> its first member here
    for p, run in enumerate(ensemble):
        if run.key.network not in known:
            fresh.setdefault(run.key.network, p)
    if fresh:
        which = [p in fresh.values() for p in range(len(ensemble))]
        nets, data = [run.net for run in ensemble], [run.dataset for run in ensemble]
        lrs = resolve_auto_lr(nets, data, config, which)
        known.update({network: lrs[p] for network, p in fresh.items()})
    return [known[run.key.network] for run in ensemble]


def check_config(config) -> tuple[str, ...]:
    """Resolve what a sweep needs before any cell runs: its data set (name, files, options,
    every data seed) and its first network on that data. A ValueError names the sweep.
    The data sets are cached for the groups that run in this process, so they are built with
    the groups' thread count (:data:`GROUP_THREADS`).

    A builder of the user's own (``model.family: package.module:name``) is imported and
    builds one network at each (width, depth) of the grid, checked for what the sweep needs
    (:func:`robustlab.models.user.check_builder`); its errors start with ``model.family:``.
    Returns the folders the workers need on ``sys.path`` to import it (none for a built-in
    family), for :func:`run_group`'s ``paths``.
    """
    cell = config.cells()[0]
    model = config.model
    try:
        with group_threads():
            # a split can depend on the seed (class balance of a subset): every draw is checked
            for seed in dict.fromkeys(config.seeds):
                ds = load_dataset(config.data.draw(seed), "float32")
            for data in dict.fromkeys(c.data for c in config.cells()):  # each label scale
                load_dataset(data.draw(cell.seed), "float32")
            ds = load_dataset(cell.data.draw(cell.seed), "float32")
            if not model.user:  # a builder's networks are checked below, at every shape
                k = out_dim(ds, config.train.loss)
                net = build_network(cell, model.in_shape or ds.x_shape, k)
                with torch.no_grad():
                    net(ds.x_train[:1])
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        first = first_line(err)
        raise ValueError(f"sweep {config.name!r}: {first}") from None
    if not model.user:
        return ()
    in_shape = tuple(model.in_shape or ds.x_shape)
    if math.prod(in_shape) != ds.in_dim:
        raise ValueError(
            f"model.in_shape: {in_shape} holds {math.prod(in_shape)} values, but the data's "
            f"inputs hold {ds.in_dim}"
        )
    with at_path("model.family"):
        check_builder(
            model.family, model.builder_kwargs(), in_shape, out_dim(ds, config.train.loss),
            [(c.width, c.depth) for c in config.cells()], config.grid.init,
        )  # fmt: skip
    path = builder_path(model.family)
    return () if path is None else (path,)
