"""Kill what a sweep's own Ray instance leaves behind when its driver dies (Linux).

    python _reaper.py DRIVER_PID        (stdin: a pipe whose write end only the driver holds)

Ray ties gcs_server and the raylet to the driver (``PR_SET_PDEATHSIG``), but the raylet's own
children, its dashboard and runtime-env agents and the workers, notice a dead raylet only by
polling, and outlived a SIGKILLed driver by 40 s and more. The Ray executor starts this script
(stdlib only, run by path so it loads neither torch nor robustlab) in a session of its own, so
that a Ctrl-C at the terminal does not reach it, and waits for its ``ready`` before
``ray.init``. From then on, every POLL_S seconds, it notes the driver's new descendants by pid
and start time (walking the driver's tree through /proc/PID/task/TID/children, not the whole
process table); the processes the driver had before are never touched, nor is a cluster the
driver connected to (not its descendants).

It reads stdin to the end. ``done`` first: the driver shut Ray down itself, and the reaper
exits. The end alone: the driver died (the kernel closed its end of the pipe), and the reaper
SIGKILLs every process it noted that still runs (same pid, same start time) and every process
the raylet started since the last look (``RAY_RAYLET_PID`` in its environment names a noted
process), then exits.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import suppress

POLL_S = 0.5  # between two looks at the driver's descendants
PASSES = 3  # kill passes after the driver died (a raylet may start a worker as it dies)
DONE = b"done"  # what the driver writes when it shut Ray down itself
READY = "ready"  # what the reaper writes once it knows the driver's processes from before


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time in clock ticks after boot), None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except OSError:
        return None
    fields = text.rsplit(b")", 1)[1].split()  # after "pid (comm)": field 3 onwards
    return fields[0].decode(), int(fields[1]), int(fields[19])


def _table() -> dict[int, tuple[str, int, int]]:
    """Every process of the machine (the kill passes, once the driver is gone)."""
    out = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            out[int(entry.name)] = stat
    return out


def _children(pid: int) -> list[int] | None:
    """The children of ``pid`` (over all its threads), or None where the kernel does not
    list them (no CONFIG_PROC_CHILDREN)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    out = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended meanwhile
            return None
        except OSError:
            continue
    return out


def _descendants(root: int) -> dict[int, int]:
    """``{pid: start time}`` of the descendants of ``root``, walking its tree through the
    children lists (a few files, not the whole /proc, every POLL_S), or the whole process
    table where the kernel has no children lists."""
    out: dict[int, int] = {}
    todo = [root]
    while todo:
        kids = _children(todo.pop())
        if kids is None:
            return _descendants_by_table(root, _table())
        for child in kids:
            if child not in out and (stat := _stat(child)) is not None:
                out[child] = stat[2]
                todo.append(child)
    return out


def _descendants_by_table(root: int, table: dict[int, tuple[str, int, int]]) -> dict[int, int]:
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            out[child] = table[child][2]
            todo.append(child)
    return out


def _raylet_of(pid: int) -> int | None:
    """The raylet that started ``pid`` (RAY_RAYLET_PID in its environment), if any."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RAY_RAYLET_PID="):
            value = item.split(b"=", 1)[1]
            return int(value) if value.isdigit() else None
    return None


class Watch:
    """The driver's descendants that were not there when the watch began, by pid and start
    time (a pid alone may be reused)."""

    def __init__(self, driver: int) -> None:
        self.driver, self.me = driver, os.getpid()
        self.before = _descendants(driver)
        self.noted: dict[int, int] = {}
        self.lock = threading.Lock()

    def _new(self, pid: int, start: int) -> bool:
        return pid != self.me and self.before.get(pid) != start

    def look(self) -> None:
        found = _descendants(self.driver)
        with self.lock:
            for pid, start in found.items():
                if self._new(pid, start):
                    self.noted[pid] = start

    def forever(self) -> None:
        while True:
            self.look()
            time.sleep(POLL_S)

    def reap(self) -> None:
        with self.lock:
            noted = dict(self.noted)
        for _ in range(PASSES):
            table = _table()
            targets = [
                pid for pid, (state, _, start) in table.items()
                if state != "Z" and self._new(pid, start) and (
                    noted.get(pid) == start or _raylet_of(pid) in noted
                )
            ]  # fmt: skip
            if not targets:
                return
            for pid in targets:
                noted[pid] = table[pid][2]
                with suppress(OSError):  # gone meanwhile, or not ours to kill
                    os.kill(pid, signal.SIGKILL)
            time.sleep(POLL_S / 2)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python _reaper.py DRIVER_PID", file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGHUP):  # the driver decides when this one ends
        signal.signal(sig, signal.SIG_IGN)
    watch = Watch(int(argv[0]))
    print(READY, flush=True)  # the driver starts Ray only now
    threading.Thread(target=watch.forever, name="look", daemon=True).start()
    said = sys.stdin.buffer.read()  # returns when the driver closes the pipe, or dies
    if said.strip() != DONE:
        watch.reap()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
