"""``rl.sweep.run``: expand a config into cells, skip finished ones, execute, store.

Resume semantics: a group is re-run whole if any of its cells is missing (so the ensemble
and therefore every number is the same as in an uninterrupted run), and only its missing
cells are written. Each cell lands in one transaction; a killed sweep loses at most the
cells in flight.

Interrupts (handled while :func:`run` runs in the main thread): the first SIGINT (Ctrl-C) or
SIGTERM stops the scheduling; the groups in flight finish and are stored, and one line on
stderr says what the sweep waits for. A second signal, or one while no group is in flight,
stops at once: the groups in flight are dropped, whatever was stored stays. Either way
:func:`run` then raises :class:`SweepInterrupted` (a ``KeyboardInterrupt``) with the summary.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._device import check_device
from .cells import check_config
from .config import Cell, SweepConfig, load_config
from .ensembles import split_group
from .executors import STOP_SIGNALS, Execution, check_executor, execute
from .store import Store

__all__ = ["EVENTS", "Progress", "SweepInterrupted", "SweepSummary", "check_device", "run"]

EVENTS = ("start", "started", "stored")  # what a Progress reports (Progress.event)


@dataclass(frozen=True)
class Progress:
    """Sent to the progress callback when a sweep starts (nothing run yet), when each group
    is handed to the executor, and after each group's cells are stored; never when nothing
    is left to run. A group's cells train together as one ensemble, so they finish together.

    Attributes:
        done: cells stored by this run so far, of ``total``.
        total: cells this run has to run (the grid's, less those stored before).
        failed: of the ``done`` cells, how many failed.
        diverged: of the ``done`` cells, how many diverged.
        elapsed_s: seconds since the sweep started.
        event: ``start``, ``started`` (group ``group`` went to the executor) or ``stored``
            (group ``group``'s cells were written to the store).
        group: the group the event is about, 1..``groups`` in the order the groups are
            scheduled; 0 at ``start``.
        groups: groups this run has to run.
        started: groups handed to the executor so far.
        running: groups in flight (started, not yet stored).
    """

    done: int
    total: int
    failed: int
    diverged: int
    elapsed_s: float
    event: str = "stored"
    group: int = 0
    groups: int = 0
    started: int = 0
    running: int = 0


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep did: cells in the grid, skipped as already stored, and run by status.

    ``ok``, ``diverged`` and ``failed`` count the cells this run trained; ``elsewhere`` of
    them had been written meanwhile by another process (a concurrent sweep on the same
    store: its rows are kept, the same numbers). ``not_run``: cells left undone when the
    sweep was interrupted. ``tracking``: the MLflow tracking URI the cells were logged to
    ("" without tracking), ``tracked`` the runs logged there, ``tracking_error`` why logging
    stopped ("" when it did not; the store has every result, a rerun logs the rest).
    """

    name: str
    store: str
    total: int
    skipped: int
    ok: int
    diverged: int
    failed: int
    time_s: float
    elsewhere: int = 0
    not_run: int = 0
    tracking: str = ""
    tracked: int = 0
    tracking_error: str = ""

    @property
    def notes(self) -> str:
        """What the counts leave out, as `` (...)``; empty when nothing."""
        parts = []
        if self.elsewhere:
            parts.append(f"{self.elsewhere} of them already written by another process")
        if self.not_run:
            parts.append(f"interrupted: {self.not_run} cells not run; run again to resume")
        return f" ({'; '.join(parts)})" if parts else ""

    @property
    def tracking_note(self) -> str:
        """One line on the MLflow logging (``mlflow: 8 runs logged to URI``); empty without
        tracking."""
        if not self.tracking:
            return ""
        return f"mlflow: {self.tracked} run{'s' * (self.tracked != 1)} logged to {self.tracking}"


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by SIGINT (Ctrl-C) or SIGTERM; the cells finished before are stored.

    Attributes:
        summary: the :class:`SweepSummary` of what this run did.
        signal: the signal's number.
        announced: whether a line on stderr already said that the sweep stops.
    """

    def __init__(self, summary: SweepSummary, signum: int, announced: bool) -> None:
        super().__init__(f"sweep stopped by {signal.Signals(signum).name}")
        self.summary = summary
        self.signal = signum
        self.announced = announced


class _Interrupts:
    """SIGINT and SIGTERM handlers for the duration of a sweep (main thread only)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.announced = False
        self.execution: Execution | None = None
        self._now = False
        self._before: dict = {}

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._before[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._now = True  # a signal from here on is dropped: the sweep is over
        for sig, handler in self._before.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    def finished(self) -> None:
        """The sweep's work is done: a signal during the clean-up is dropped."""
        self._now = True

    def _handle(self, signum: int, frame: object) -> None:
        if self._now:  # stopping at once already: let the clean-up end
            return
        run = self.execution
        if self.signum is None and run is not None and run.in_flight:
            self.signum = signum
            run.stop()
            n = run.in_flight
            if signum == signal.SIGINT:
                what, hint = "interrupted", "Ctrl-C again to stop now"
            else:
                what, hint = "terminated", "a second SIGTERM or Ctrl-C stops now"
            # marked before the line is written: a second signal may run this handler again
            # as soon as the line is out, even before this one returns
            self.announced = True
            _say(f"robustlab: {what}; waiting for {n} group{'s' * (n != 1)} in flight ({hint})")
            return
        self.signum = self.signum or signum
        self._now = True
        raise KeyboardInterrupt


def _say(line: str) -> None:
    """One line on stderr from a signal handler: os.write, since the handler may run while
    the main thread is inside a buffered write to stderr (a progress bar's)."""
    lead = "\n" if os.isatty(2) else ""  # past a progress bar's line
    os.write(2, f"{lead}{line}\n".encode())


def _cost(group: list[Cell]) -> int:
    """A rough proxy for a group's compute: cells x steps x depth x width^2."""
    c = group[0]
    return len(group) * c.train.steps * c.depth * c.width**2


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
    mlflow: bool | str = False,
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
        progress: called with a :class:`Progress` at the start (when there is anything to
            run), as each group starts and after each group is stored.
        mlflow: log each cell to MLflow once it is stored (:mod:`robustlab.sweep.tracking`):
            ``True`` for a tracking store beside ``store``, or a tracking URI. At the end,
            the sweeps' stored cells MLflow still lacks are logged too. A tracking failure
            stops the logging, never the sweep (:attr:`SweepSummary.tracking_error`).

    Raises:
        ValueError: a bad config, executor, device or store, Ray missing for ``ray`` or
            MLflow for ``mlflow``: before the store is touched; a tracking URI MLflow
            cannot use: before any cell runs.
        SweepInterrupted: SIGINT or SIGTERM stopped the sweep (see the module's docstring).
    """
    configs = [load_config(c) for c in (config if isinstance(config, list) else [config])]
    if not configs:
        raise ValueError("run needs at least one sweep config")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    # a wrong device, a missing Ray, bad data or model: an error before the store is touched
    workers = check_executor(executor, workers)
    device = check_device(device)
    # and the folders the workers import the sweeps' model builders from
    paths = tuple(dict.fromkeys(p for cfg in configs for p in check_config(cfg)))
    uri = None if mlflow is True or not mlflow else str(mlflow)
    if mlflow:
        from .tracking import Tracker, require_mlflow

        require_mlflow(uri)
    tracker = None
    t0 = time.perf_counter()
    cells = [c for cfg in configs for c in cfg.cells()]
    missing = {c.hash for c in cells}  # until the store says which are done
    counts = dict.fromkeys(("ok", "diverged", "failed", "elsewhere"), 0)
    skipped = 0
    interrupts = _Interrupts()
    try:
        with interrupts, Store(store) as st:
            for cfg in configs:
                st.record_sweep(cfg.to_dict())
            if mlflow:  # a URI MLflow cannot use: an error before any cell runs
                tracker = Tracker(store, uri)
            missing -= st.done_cells(retry_failed=retry_failed)
            skipped = len(cells) - len(missing)
            total = len(missing)
            groups = [g for cfg in configs for grp in cfg.groups() for g in split_group(grp)]
            todo = [g for g in groups if any(c.hash in missing for c in g)]
            if executor != "serial":  # largest first, so no big group is left for the end alone
                todo.sort(key=_cost, reverse=True)
            seen = {"started": 0, "stored": 0}  # groups handed to the executor, stored

            def tell(event: str, index: int) -> None:
                """Count group ``index``'s ``event`` and report it (``start``: index -1)."""
                if event in seen:
                    seen[event] += 1
                if progress is not None:
                    progress(
                        Progress(
                            total - len(missing), total, counts["failed"], counts["diverged"],
                            time.perf_counter() - t0, event, index + 1, len(todo),
                            seen["started"], seen["started"] - seen["stored"],
                        )
                    )  # fmt: skip

            if todo:
                tell("start", -1)
            execution = execute(
                todo, executor, workers=workers, address=address, dtype=dtype, device=device,
                paths=paths, on_start=lambda i: tell("started", i),
            )  # fmt: skip
            interrupts.execution = execution
            with closing(execution):
                for index, outcomes in execution:
                    written = []
                    for o in outcomes:
                        if o.cell_hash not in missing:
                            continue  # finished in an earlier run; re-trained for the ensemble
                        if st.write_cell(
                            o.cell_hash, o.sweep, o.status, o.message, o.config_json,
                            o.time_s, o.rows,
                        ):  # fmt: skip
                            written.append(o.cell_hash)
                        else:  # another process was first
                            counts["elsewhere"] += 1
                        counts[o.status] += 1
                        missing.discard(o.cell_hash)
                    tell("stored", index)
                    if tracker is not None and written:  # stored first, then logged
                        tracker.log_cells(written)
                interrupts.finished()  # every group stored: a late signal changes nothing
        if tracker is not None:  # what MLflow lacks: cells of an earlier run, a failed log
            tracker.log_cells(sweeps=[cfg.name for cfg in configs])
    except KeyboardInterrupt:
        interrupts.signum = interrupts.signum or signal.SIGINT
    summary = SweepSummary(
        ", ".join(cfg.name for cfg in configs), str(Path(store)), len(cells), skipped,
        counts["ok"], counts["diverged"], counts["failed"], time.perf_counter() - t0,
        elsewhere=counts["elsewhere"],
        not_run=len(missing) if interrupts.signum is not None else 0,
        tracking="" if tracker is None else tracker.uri,
        tracked=0 if tracker is None else tracker.logged,
        tracking_error="" if tracker is None else tracker.error or "",
    )  # fmt: skip
    if interrupts.signum is not None:
        raise SweepInterrupted(summary, interrupts.signum, interrupts.announced)
    return summary
