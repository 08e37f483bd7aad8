"""Reading a results store: open it read-only, check its layout, read its rows as the
current schema, whatever the store's age (:mod:`robustlab.sweep.store` describes the file).

Readers open the file read-only; where SQLite cannot create the ``-shm`` file beside it (a
read-only folder or mount, a full disk) they read it as immutable, unless an unmerged
``-wal`` log lies beside it (then they refuse: immutable reading would miss it).

An older store reads as the current schema: renamed columns under their new names
(:data:`~robustlab.sweep.schema.RENAMED`), worst cases moved out of ``p_value``, and the
columns appended since it was written filled as :func:`robustlab._frames.with_defaults`
says (``sweep_hash`` "", ``points`` test, ``reached_target`` from the losses; the others
NULL). The file itself is never changed here (a writer migrates it: :class:`~.store.Store`).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from .._frames import with_defaults
from .schema import COLUMNS, RENAMED, WORST_METHODS

__all__ = ["APPLICATION_ID", "FORMAT", "StorePath", "load", "load_cells", "load_configs"]

FORMAT = "1"  # bump when the layout changes incompatibly
APPLICATION_ID = 0x524C4142  # b"RLAB": PRAGMA application_id of the stores robustlab creates
META = "robustlab_store"
_TABLES = ("results", "cells", "sweeps", META)
_DTYPES = {"INTEGER": "Int64", "REAL": "float64", "TEXT": pd.StringDtype()}
_OLD_NAMES = {new: old for old, new in RENAMED.items()}
CELL_COLUMNS = ("cell", "sweep", "status", "message", "config_json", "time_s", "finished_at")

StorePath = str | os.PathLike[str]

# how SQLite says a read-only connection could not open the file as it is: no -shm file can
# be created beside it (read-only folder or mount, full disk), or a journal needs rolling back
_READONLY_BLOCKED = ("unable to open database file", "readonly database", "disk I/O error")
# the logs SQLite leaves beside a database whose writer stopped, and why a reader must refuse
_UNMERGED_LOGS = {
    "-wal": "SQLite cannot create its -shm file here (read-only or full media) and its log"
    " '{log}' holds changes not yet merged; copy the store with its log to a writable folder"
    " and read it there",
    "-journal": "its journal '{log}' holds a transaction a writer left unfinished, which only"
    " a writer can roll back; run the sweep on it again where its folder is writable",
}


def q(name: str) -> str:
    """An SQL identifier, quoted."""
    return f'"{name}"'


def _unreadable(path: Path, err: sqlite3.Error) -> ValueError:
    return ValueError(f"'{path}' is not a readable robustlab store: {err}")


def _connect(target: str, timeout: float) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) that has read the header."""
    conn = sqlite3.connect(target, uri=True, timeout=timeout, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        conn.execute("SELECT count(*) FROM sqlite_master")  # reads the header: fails on non-SQLite
    except BaseException:
        conn.close()
        raise
    return conn


def _open_readonly(
    path: Path, timeout: float = 30.0, *, ignore_logs: bool = False
) -> sqlite3.Connection:
    """A read-only connection that never writes to the file, or a one-line ValueError.

    ``mode=ro`` sees what a live writer committed, but a WAL store needs its ``-shm`` file
    beside it, and a hot journal needs a writer; where ``mode=ro`` cannot open the file the
    file is read as ``immutable``, which is exact only when no log beside it holds unmerged
    pages: then it is refused, unless ``ignore_logs`` (enough to identify the file before a
    writer opens it, which merges the log).
    """
    if not path.is_file():
        raise ValueError(f"no robustlab store at '{path}' (file not found)")
    if path.stat().st_size == 0:
        raise ValueError(f"'{path}' is an empty file, not a robustlab store")
    uri = path.resolve().as_uri()
    try:
        return _connect(f"{uri}?mode=ro", timeout)
    except sqlite3.OperationalError as err:
        if not any(text in str(err) for text in _READONLY_BLOCKED):
            raise _unreadable(path, err) from None
    except sqlite3.Error as err:
        raise _unreadable(path, err) from None
    for suffix, why in _UNMERGED_LOGS.items():
        log = Path(f"{path}{suffix}")
        if not ignore_logs and log.is_file() and log.stat().st_size > 0:
            raise ValueError(f"'{path}' cannot be read: {why.format(log=log.name)}")
    try:
        return _connect(f"{uri}?immutable=1", timeout)
    except sqlite3.Error as err:
        raise _unreadable(path, err) from None


@contextmanager
def reading(path: Path, *, ignore_logs: bool = False) -> Iterator[sqlite3.Connection]:
    """A read-only connection (:func:`_open_readonly`); SQLite errors while reading (a
    corrupt file) become one-line ValueErrors."""
    with closing(_open_readonly(path, ignore_logs=ignore_logs)) as conn:
        try:
            yield conn
        except sqlite3.DatabaseError as err:
            raise _unreadable(path, err) from None


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {name for (name,) in rows} - {"sqlite_sequence"}


def check(conn: sqlite3.Connection, path: Path) -> list[str]:
    """Verify the store's layout; return the columns of its results table (without id)."""
    app = conn.execute("PRAGMA application_id").fetchone()[0]
    if app not in (0, APPLICATION_ID):  # 0: a store made before robustlab set it
        raise ValueError(
            f"'{path}' is an SQLite database of another program (application_id {app:#x}), "
            "not a robustlab store; give a new file for the store"
        )
    missing = [t for t in _TABLES if t not in _tables(conn)]
    if missing:
        raise ValueError(
            f"'{path}' is an SQLite database but not a robustlab store "
            f"(missing tables: {', '.join(missing)}); give a new file for the store"
        )
    row = conn.execute(f"SELECT value FROM {META} WHERE key = 'format'").fetchone()
    if row is None or row[0] != FORMAT:
        found = row[0] if row else "none"
        raise ValueError(f"'{path}': store format {found} is not supported (expected {FORMAT})")
    columns = [r[1] for r in conn.execute("PRAGMA table_info(results)")][1:]
    schema = (
        [_OLD_NAMES.get(c, c) for c in COLUMNS] if set(RENAMED) & set(columns) else list(COLUMNS)
    )
    n = min(len(columns), len(schema))
    # columns are only ever appended to the schema, so an older/newer store shares a prefix
    if columns[:n] != schema[:n]:
        raise ValueError(f"'{path}': the results table does not match robustlab's row schema")
    return columns


def read_results(
    conn: sqlite3.Connection, columns: list[str], cells: Iterable[str] | None = None
) -> pd.DataFrame:
    """Every column of the current schema, whatever the store's age: renamed columns under
    their new names, worst-case values moved out of ``p_value``, appended ones with their
    defaults (see the module docstring). Only the rows of ``cells`` (hashes) when given."""
    sql = f"SELECT {', '.join(map(q, columns))} FROM results"
    if cells is None:
        rows = conn.execute(f"{sql} ORDER BY id").fetchall()
    else:  # one JSON array: no limit on the number of SQL variables
        where = " WHERE cell IN (SELECT value FROM json_each(?)) ORDER BY id"
        rows = conn.execute(sql + where, (json.dumps(list(cells)),)).fetchall()
    data = {}
    for i, stored in enumerate(columns):
        name = RENAMED.get(stored, stored)
        data[name] = pd.Series([r[i] for r in rows], dtype=_DTYPES.get(COLUMNS.get(name, "")))
    if "worst_value" not in columns:  # a store from before worst_value: pgd rows held it in P
        worst = data["method"].isin(WORST_METHODS).to_numpy(dtype=bool)
        for old, new in (("p_value", "worst_value"), ("p_stderr", "worst_stderr")):
            data[new] = pd.Series(data[old].where(worst), dtype=_DTYPES[COLUMNS[new]])
            data[old] = data[old].mask(worst)
    appended = [name for name in COLUMNS if name not in data]
    if appended:  # columns appended to the schema after this store was written
        defaults = with_defaults(pd.DataFrame(data))
        for name in appended:
            known = defaults[name] if name in defaults else [None] * len(rows)
            data[name] = pd.Series(known, dtype=_DTYPES[COLUMNS[name]])
    names = [RENAMED.get(c, c) for c in columns]
    return pd.DataFrame(data, columns=list(dict.fromkeys([*COLUMNS, *names])))


def load(store_path: StorePath, *, cells: Iterable[str] | None = None) -> pd.DataFrame:
    """All result rows as a DataFrame (only those of ``cells``, hashes, when given): the
    schema's columns in order, no ``id`` column, rows in insertion order. INTEGER columns
    are ``Int64``, REAL ``float64`` and TEXT ``string`` (nullable). A store written before a
    column existed reads it with its default (see the module docstring). Opens the file
    read-only, also on read-only or full media; never creates or changes it.

    Raises:
        ValueError: the file is missing, not SQLite, not a robustlab store, corrupt, or holds
            an unmerged log that cannot be read where it lies.
    """
    path = Path(store_path)
    with reading(path) as conn:
        return read_results(conn, check(conn, path), cells)


def load_cells(store_path: StorePath) -> pd.DataFrame:
    """The ``cells`` table (one row per finished cell, in the order they finished)."""
    path = Path(store_path)
    with reading(path) as conn:
        check(conn, path)
        rows = conn.execute(f"SELECT {', '.join(CELL_COLUMNS)} FROM cells ORDER BY rowid")
        return pd.DataFrame(rows.fetchall(), columns=list(CELL_COLUMNS))


def load_configs(store_path: StorePath) -> list[dict[str, Any]]:
    """The sweep configs recorded in the store, oldest first (as given to record_sweep)."""
    path = Path(store_path)
    with reading(path) as conn:
        check(conn, path)
        rows = conn.execute("SELECT config_json FROM sweeps ORDER BY id").fetchall()
    return [json.loads(text) for (text,) in rows]
