"""Executors: where groups of cells run. The driver alone writes the store.

- ``serial``: in this process (one worker);
- ``local``: worker processes (spawned), default one per core; a worker exits by itself when
  its driver dies, even by SIGKILL (it watches its parent's pid), so no ~500 MB process is
  left orphaned;
- ``ray``: each group is a Ray task on a local instance or a cluster (``address``). A local
  instance started by the sweep is shut down when the driver exits normally; if the driver is
  killed, a small watcher (:mod:`robustlab.sweep._reaper`, Linux) kills what it started: the
  raylet's agents and workers would outlive it by minutes. A cluster (``address``, or one
  started with ``ray start``) keeps running, as it should.

Every group runs with :data:`~robustlab.sweep.cells.GROUP_THREADS` threads wherever it runs,
so the executor, the number of workers and a resume change no stored bit.

At most ``workers`` groups are in flight. :meth:`Execution.stop` ends the scheduling: the
groups in flight still finish and are yielded, the others never start. Closing an execution
before its end (an error, a second Ctrl-C) kills the groups in flight. Workers ignore SIGINT
and SIGTERM (a Ctrl-C at the terminal reaches the whole process group): the driver decides.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager, suppress
from multiprocessing import get_context, resource_tracker
from pathlib import Path

from .._checks import check_positive_int
from ._reaper import DONE
from .cells import GROUP_THREADS, CellOutcome, run_group
from .config import Cell

__all__ = ["EXECUTORS", "Execution", "check_executor", "execute"]

EXECUTORS = ("local", "ray", "serial")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # what the driver handles and workers ignore

PARENT_POLL_S = 0.5  # how often a worker checks that its driver is alive
RAY_POLL_S = 0.5  # longest wait on Ray without running Python (so signal handlers run)
REAPER = Path(__file__).with_name("_reaper.py")

Finished = tuple[int, list[CellOutcome]]


class Execution:
    """Groups running on an executor: iterate for ``(index, outcomes)`` as groups finish.

    ``in_flight``: groups started and not yet stored (the consumer of a group's outcomes
    takes them out when it asks for the next one). :meth:`stop` ends the scheduling (the
    groups in flight finish and are yielded); :meth:`close` ends it now, killing them.
    ``on_start`` is called with a group's index when it is handed to the executor (in the
    consumer's thread, while it waits for the next finished group).
    """

    def __init__(
        self,
        run: Callable[[Execution], Iterator[Finished]],
        on_start: Callable[[int], None] | None = None,
    ) -> None:
        self.in_flight = 0
        self.stopping = False
        self.on_start = on_start
        self._it = run(self)

    def __iter__(self) -> Execution:
        return self

    def __next__(self) -> Finished:
        return next(self._it)

    def stop(self) -> None:
        self.stopping = True

    def started(self, index: int) -> None:
        """Group ``index`` was handed to the executor: tell ``on_start``."""
        if self.on_start is not None:
            self.on_start(index)

    def close(self) -> None:
        self._it.close()


def check_executor(executor: str, workers: int | None) -> int:
    """The executor's name, its worker count (default: one per core) and, for ``ray``, that
    Ray is installed: checked before a sweep touches its store. Returns the worker count."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choices: {', '.join(EXECUTORS)}")
    workers = (os.cpu_count() or 1) if workers is None else workers
    workers = check_positive_int("workers", workers, floats=False)
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ValueError("executor 'ray' needs Ray: pip install 'robustlab[ray]'") from None
    return workers


def _exit_with_parent(parent: int) -> None:
    """Exit this worker as soon as the process that spawned it is gone (re-parenting changes
    ``getppid``); a daemon thread, so it never blocks a normal shutdown."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="robustlab-parent-watch", daemon=True).start()


@contextmanager
def _stop_signals_blocked() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while workers start: a child inherits the mask through
    exec, so a Ctrl-C while it imports torch waits until it ignores the signal (then it is
    dropped); here the signal is delivered when the block ends, not lost."""
    if not hasattr(signal, "pthread_sigmask"):  # no POSIX signal masks (Windows)
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _worker_init(parent: int) -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    _exit_with_parent(parent)


def _serial(run: Execution, groups, dtype, device, paths=()) -> Iterator[Finished]:
    for i, g in enumerate(groups):
        if run.stopping:
            return
        run.in_flight = 1
        run.started(i)
        yield i, run_group(g, dtype=dtype, device=device, paths=paths)
        run.in_flight = 0  # stored by now


# The resource tracker (a process multiprocessing starts once, which outlives a killed driver
# by design) frees the semaphores of a pool whose driver died, and warns that they "leaked":
# after a SIGKILL that is its job done, not news. It takes its warning filters from the -W
# options in force when it starts.
_TRACKER_QUIET = "ignore::UserWarning:multiprocessing.resource_tracker"


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (if not running) without its leak warnings."""
    sys.warnoptions.append(_TRACKER_QUIET)
    try:
        resource_tracker.ensure_running()
    finally:
        sys.warnoptions.remove(_TRACKER_QUIET)


def _local(run: Execution, groups, workers, dtype, device, paths=()) -> Iterator[Finished]:
    _start_resource_tracker()  # before the block: starting it unblocks the stop signals
    with _stop_signals_blocked():
        pool = ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=_worker_init,
            initargs=(os.getpid(),),
        )  # fmt: skip
    todo = iter(enumerate(groups))
    pending: dict = {}
    ended = False
    try:
        while True:
            while not run.stopping and len(pending) < workers:
                i, g = next(todo, (None, None))
                if g is None:
                    break
                with _stop_signals_blocked():  # a submit may spawn a worker
                    future = pool.submit(run_group, g, dtype=dtype, device=device, paths=paths)
                    pending[future] = i
                    run.in_flight = len(pending)  # counted before a held signal is handled
                run.started(i)
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield pending.pop(fut), fut.result()
                run.in_flight -= 1  # stored by now
        ended = True
    finally:
        if not ended:  # stopped early: whatever runs now would be discarded
            # ProcessPoolExecutor has no public kill before Python 3.14 (kill_workers)
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.kill()
        pool.shutdown(wait=True, cancel_futures=True)
        run.in_flight = 0


def _start_reaper() -> subprocess.Popen | None:
    """The watcher that kills this driver's Ray processes if it dies (Linux /proc only:
    elsewhere Ray starts its own reaper, which kills its process group). Returns once it
    knows the processes this driver had before, which it never touches."""
    if not Path("/proc/self/stat").exists():
        return None
    reaper = subprocess.Popen(
        [sys.executable, str(REAPER), str(os.getpid())],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        start_new_session=True,  # beyond the terminal's Ctrl-C and hang-up
    )  # fmt: skip
    assert reaper.stdout is not None
    reaper.stdout.readline()  # READY, or nothing if it could not start
    reaper.stdout.close()
    return reaper


def _stop_reaper(reaper: subprocess.Popen, done: bool) -> None:
    """End the watcher: ``done`` (Ray was shut down normally) makes it exit and kill
    nothing; otherwise (``ray.init`` or ``ray.shutdown`` failed) it kills what Ray started,
    as if the driver had died."""
    assert reaper.stdin is not None
    with suppress(BrokenPipeError):  # it is gone already
        if done:
            reaper.stdin.write(DONE)
        reaper.stdin.close()
    try:
        reaper.wait(timeout=30)
    except subprocess.TimeoutExpired:
        reaper.kill()
        reaper.wait()


def _ray(run: Execution, groups, workers, dtype, device, address, paths=()) -> Iterator[Finished]:
    import ray

    started, reaper = False, None
    refs: dict = {}
    try:
        if not ray.is_initialized():
            if address is None:  # a local instance of this sweep's own
                reaper = _start_reaper()
            kwargs = {"address": address} if address else {"num_cpus": workers}
            handler = signal.getsignal(signal.SIGTERM)
            ray.init(
                **kwargs, include_dashboard=False, log_to_driver=False, configure_logging=False
            )
            started = True
            if threading.current_thread() is threading.main_thread() and handler is not None:
                signal.signal(signal.SIGTERM, handler)  # ray.init sets one that exits at once
        remote = ray.remote(num_cpus=GROUP_THREADS)(run_group)
        # as many groups in flight as the instance has CPUs for (a cluster: all of its CPUs)
        window = (
            int(ray.cluster_resources().get("CPU", workers)) // GROUP_THREADS
            if address
            else workers
        )
        todo = iter(enumerate(groups))
        while True:
            while not run.stopping and len(refs) < max(1, window):
                i, g = next(todo, (None, None))
                if g is None:
                    break
                refs[remote.remote(g, dtype=dtype, device=device, paths=paths)] = i
                run.in_flight = len(refs)
                run.started(i)
            if not refs:
                break
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=RAY_POLL_S)
            for ref in ready:
                yield refs.pop(ref), ray.get(ref)
                run.in_flight -= 1  # stored by now
    finally:
        run.in_flight = 0
        for ref in refs:  # stopped early: free the cluster of groups nobody will collect
            with suppress(Exception):  # Ray may be gone already: nothing left to free
                ray.cancel(ref, force=True)
        shut = False
        try:
            if started:
                ray.shutdown()
                shut = True
        finally:
            if reaper is not None:  # each step above may fail: the reaper ends in any case
                _stop_reaper(reaper, done=shut)


def execute(
    groups: list[list[Cell]],
    executor: str = "local",
    *,
    workers: int | None = None,
    address: str | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    on_start: Callable[[int], None] | None = None,
    paths: tuple[str, ...] = (),
) -> Execution:
    """Run groups on an executor; the :class:`Execution` yields ``(index, outcomes)`` in
    completion order, with at most ``workers`` groups in flight. ``on_start(index)`` is
    called as each group is handed to the executor. ``paths``: folders each group's process
    needs on ``sys.path`` (a model builder's, :func:`~.cells.check_config`)."""
    workers = check_executor(executor, workers)
    if executor == "serial" or (executor == "local" and (workers == 1 or len(groups) <= 1)):
        return Execution(lambda run: _serial(run, groups, dtype, device, paths), on_start)
    if executor == "local":
        n = min(workers, len(groups))
        return Execution(lambda run: _local(run, groups, n, dtype, device, paths), on_start)
    return Execution(
        lambda run: _ray(run, groups, workers, dtype, device, address, paths), on_start
    )
