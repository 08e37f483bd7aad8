"""``rl.sweep.run``: expand a config into cells, skip finished ones, execute, store.

Resume semantics: a group is re-run whole if any of its cells is missing (so the ensemble
and therefore every number is the same as in an uninterrupted run), and only its missing
cells are written. Each cell lands in one transaction; a killed sweep loses at most the
cells in flight.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .cells import check_config
from .config import Cell, SweepConfig, load_config
from .executors import execute
from .store import Store

__all__ = ["Progress", "SweepSummary", "run"]

MAX_ENSEMBLE = 64  # cells trained together at most (bounds memory)


@dataclass(frozen=True)
class Progress:
    """Sent to the progress callback after each finished group."""

    done: int
    total: int
    failed: int
    diverged: int
    elapsed_s: float


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep did: cells in the grid, skipped as already stored, and run by status."""

    name: str
    store: str
    total: int
    skipped: int
    ok: int
    diverged: int
    failed: int
    time_s: float


def _split(group: list[Cell]) -> list[list[Cell]]:
    return [group[i : i + MAX_ENSEMBLE] for i in range(0, len(group), MAX_ENSEMBLE)]


def _cost(group: list[Cell]) -> int:
    """A rough proxy for a group's compute: cells x steps x depth x width^2."""
    c = group[0]
    return len(group) * c.train.steps * c.depth * c.width**2


def _device(device: str | None) -> str:
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


ConfigLike = SweepConfig | Mapping[str, Any] | str | os.PathLike


def run(
    config: ConfigLike | list[ConfigLike],
    store: str | os.PathLike,
    *,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    retry_failed: bool = False,
    dtype: str = "float32",
    device: str | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> SweepSummary:
    """Run every unfinished cell of a sweep into the SQLite ``store``.

    Args:
        config: a :class:`SweepConfig`, its dict form, or a YAML path; or a list of them,
            run as one pool of groups (so workers stay busy across sweeps).
        store: SQLite file (created if missing); results of earlier runs are kept.
        executor: ``local`` (worker processes), ``serial`` (this process) or ``ray``.
        workers: processes / Ray CPUs (default: one per core).
        address: Ray cluster address (``auto`` for an existing cluster).
        retry_failed: re-run cells recorded as ``failed``.
        dtype: ``float32`` (default) or ``float64``.
        device: ``cpu``, ``cuda`` or ``auto`` (CUDA when available).
        progress: called with a :class:`Progress` after each group.
    """
    configs = [load_config(c) for c in (config if isinstance(config, list) else [config])]
    if not configs:
        raise ValueError("run needs at least one sweep config")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    for cfg in configs:  # bad data or model: an error before the store is touched
        check_config(cfg)
    t0 = time.perf_counter()
    counts = {"ok": 0, "diverged": 0, "failed": 0}
    with Store(store) as st:
        for cfg in configs:
            st.record_sweep(cfg.to_dict())
        done = st.done_cells(retry_failed=retry_failed)
        cells = [c for cfg in configs for c in cfg.cells()]
        missing = {c.hash for c in cells} - done
        groups = [g for cfg in configs for grp in cfg.groups() for g in _split(grp)]
        todo = [g for g in groups if any(c.hash in missing for c in g)]
        if executor != "serial":  # largest first, so no big group is left for the end alone
            todo.sort(key=_cost, reverse=True)
        total = len(missing)
        finished = 0
        for _, outcomes in execute(
            todo, executor, workers=workers, address=address, dtype=dtype, device=_device(device)
        ):
            for o in outcomes:
                if o.cell_hash not in missing:
                    continue  # finished in an earlier run; re-trained only to keep the ensemble
                if st.write_cell(
                    o.cell_hash, o.sweep, o.status, o.message, o.config_json, o.time_s, o.rows
                ):
                    counts[o.status] += 1
                    finished += 1
                missing.discard(o.cell_hash)
            if progress is not None:
                progress(
                    Progress(
                        finished,
                        total,
                        counts["failed"],
                        counts["diverged"],
                        time.perf_counter() - t0,
                    )
                )
    return SweepSummary(
        ", ".join(cfg.name for cfg in configs),
        str(Path(store)),
        len(cells),
        len(cells) - total,
        counts["ok"],
        counts["diverged"],
        counts["failed"],
        time.perf_counter() - t0,
    )
