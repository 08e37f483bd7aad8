"""Executors: where groups of cells run. The driver alone writes the store.

- ``serial``: in this process (one worker);
- ``local``: worker processes (spawned), default one per core, each with an equal share of
  the cores' threads; a worker exits by itself when its driver dies, even by SIGKILL (it
  watches its parent's pid), so no ~500 MB process is left orphaned;
- ``ray``: each group is a Ray task on a local instance or a cluster (``address``). A local
  instance started by the sweep is shut down when the driver exits normally; if the driver is
  killed, Ray's own raylet notices the dead driver and stops its workers (a cluster started
  with ``ray start`` keeps running, as it should).
All yield ``(group_index, outcomes)`` as groups finish.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context

import torch

from .cells import CellOutcome, run_group
from .config import Cell

__all__ = ["EXECUTORS", "execute"]

EXECUTORS = ("local", "ray", "serial")


PARENT_POLL_S = 0.5  # how often a worker checks that its driver is alive


def _exit_with_parent(parent: int) -> None:
    """Exit this worker as soon as the process that spawned it is gone (re-parenting changes
    ``getppid``); a daemon thread, so it never blocks a normal shutdown."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="robustlab-parent-watch", daemon=True).start()


def _worker_init(threads: int, parent: int) -> None:
    torch.set_num_threads(threads)
    _exit_with_parent(parent)


def _serial(groups, dtype, device) -> Iterator[tuple[int, list[CellOutcome]]]:
    for i, g in enumerate(groups):
        yield i, run_group(g, dtype=dtype, device=device)


def _local(groups, workers, dtype, device):
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = get_context("spawn")
    pool = ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_worker_init, initargs=(threads, os.getpid())
    )
    try:
        pending = {
            pool.submit(run_group, g, dtype=dtype, device=device): i for i, g in enumerate(groups)
        }
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield pending.pop(fut), fut.result()
    finally:
        # when the driver stops early (an error, Ctrl-C, the generator closed), drop the
        # queued groups instead of computing them all for nothing; running ones finish
        pool.shutdown(wait=True, cancel_futures=True)


def _ray(groups, workers, dtype, device, address):
    try:
        import ray
    except ImportError:
        raise ValueError("executor 'ray' needs Ray: pip install 'robustlab[ray]'") from None
    started = False
    if not ray.is_initialized():
        kwargs = {"address": address} if address else {"num_cpus": workers}
        ray.init(**kwargs, include_dashboard=False, log_to_driver=False, configure_logging=False)
        started = True
    refs: dict = {}
    try:
        remote = ray.remote(num_cpus=1)(run_group)
        refs = {remote.remote(g, dtype=dtype, device=device): i for i, g in enumerate(groups)}
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                yield refs.pop(ref), ray.get(ref)
    finally:
        for ref in refs:  # stopped early: free the cluster of groups nobody will collect
            ray.cancel(ref)
        if started:
            ray.shutdown()


def execute(
    groups: list[list[Cell]],
    executor: str = "local",
    *,
    workers: int | None = None,
    address: str | None = None,
    dtype: str = "float32",
    device: str = "cpu",
) -> Iterator[tuple[int, list[CellOutcome]]]:
    """Run groups on an executor, yielding ``(index, outcomes)`` in completion order."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choices: {', '.join(EXECUTORS)}")
    workers = workers or (os.cpu_count() or 1)
    if workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers}")
    if executor == "serial" or (executor == "local" and (workers == 1 or len(groups) <= 1)):
        return _serial(groups, dtype, device)
    if executor == "local":
        return _local(groups, min(workers, len(groups)), dtype, device)
    return _ray(groups, workers, dtype, device, address)
