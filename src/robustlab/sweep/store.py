"""The results store: one SQLite file holding a sweep's tidy rows, finished cells and configs.

Tables:

- ``results``: ``id`` (autoincrement) + the columns of :data:`robustlab.sweep.schema.COLUMNS`,
  in that order; one row per measurement.
- ``cells``: one row per finished cell (``cell`` hash, sweep, status, message, config_json,
  time_s, finished_at). Resume reads this table. A cell's rows and its ``cells`` entry are
  written in one transaction, so a killed writer leaves all of a cell or none of it.
- ``sweeps``: every distinct sweep config run into this store (name, config_json,
  created_at, robustlab_version, torch_version).
- ``robustlab_store``: key/value metadata marking the file as a robustlab store.

A new store also carries ``PRAGMA application_id`` :data:`APPLICATION_ID` (stores made before
it have 0 and still open). The file runs in WAL mode: readers (:func:`load`) see the last
committed state while a writer holds a transaction open, and never block it. Only one process
should write (the sweep driver); SQLite serialises writers anyway, waiting up to ``timeout``
seconds.

Only a missing or empty file becomes a store: any other file is checked read-only before
anything is written to it, so a database of another program is refused byte for byte
unchanged. Readers open the file read-only; where SQLite cannot create the ``-shm`` file
beside it (a read-only folder or mount, a full disk) they read it as immutable, unless an
unmerged ``-wal`` log lies beside it (then they refuse: immutable reading would miss it).
"""

from __future__ import annotations

import json
import numbers
import os
import sqlite3
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing, contextmanager, suppress
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from .._atomic import atomic_write, check_target
from .._version import __version__
from .schema import COLUMNS, RENAMED, STATUSES, WORST_METHODS

__all__ = [
    "APPLICATION_ID",
    "EXPORT_FORMATS",
    "Store",
    "export",
    "load",
    "load_cells",
    "load_configs",
]

FORMAT = "1"  # bump when the layout changes incompatibly
APPLICATION_ID = 0x524C4142  # b"RLAB": PRAGMA application_id of the stores robustlab creates
_META = "robustlab_store"
_TABLES = ("results", "cells", "sweeps", _META)
_DTYPES = {"INTEGER": "Int64", "REAL": "float64", "TEXT": pd.StringDtype()}
_OLD_NAMES = {new: old for old, new in RENAMED.items()}
_CELL_COLUMNS = ("cell", "sweep", "status", "message", "config_json", "time_s", "finished_at")

StorePath = str | os.PathLike[str]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _torch_version() -> str | None:
    torch = sys.modules.get("torch")  # the version actually running, when imported
    if torch is not None:
        return str(torch.__version__)
    try:
        return version("torch")
    except PackageNotFoundError:
        return None


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _q(name: str) -> str:
    return f'"{name}"'


def _schema_sql() -> list[str]:
    columns = ", ".join(f"{_q(c)} {t}" for c, t in COLUMNS.items())
    statuses = ", ".join(f"'{s}'" for s in STATUSES)
    return [
        f"CREATE TABLE {_META} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"INSERT INTO {_META} VALUES ('format', '{FORMAT}')",
        f"CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, {columns})",
        "CREATE INDEX results_cell ON results (cell)",
        "CREATE TABLE cells (cell TEXT PRIMARY KEY, sweep TEXT NOT NULL,"
        f" status TEXT NOT NULL CHECK (status IN ({statuses})), message TEXT,"
        " config_json TEXT, time_s REAL, finished_at TEXT NOT NULL)",
        "CREATE TABLE sweeps (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,"
        " config_json TEXT NOT NULL, created_at TEXT NOT NULL, robustlab_version TEXT,"
        " torch_version TEXT, UNIQUE (name, config_json))",
    ]


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
def _reading(path: Path, *, ignore_logs: bool = False) -> Iterator[sqlite3.Connection]:
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


def _check(conn: sqlite3.Connection, path: Path) -> list[str]:
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
    row = conn.execute(f"SELECT value FROM {_META} WHERE key = 'format'").fetchone()
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


def _coerce(column: str, value: Any) -> Any:
    """A Python value SQLite can bind for ``column`` (numpy/torch scalars unwrapped)."""
    if value is None:
        return None
    if not isinstance(value, (str, int, float)) and hasattr(value, "item"):
        with suppress(ValueError, RuntimeError):  # a multi-element array stays as it is
            value = value.item()  # numpy scalar, 0-d array or one-element tensor
    kind = COLUMNS[column]
    if kind == "TEXT" and isinstance(value, str):
        return value
    if kind == "REAL" and isinstance(value, numbers.Real):
        return float(value)  # NaN is stored as NULL
    if kind == "INTEGER" and isinstance(value, numbers.Real) and float(value).is_integer():
        return int(value)
    raise ValueError(f"result column {column!r} ({kind}): cannot store {value!r}")


def _read_results(
    conn: sqlite3.Connection, columns: list[str], cells: Iterable[str] | None = None
) -> pd.DataFrame:
    """Every column of the current schema, whatever the store's age: renamed columns under
    their new names, appended ones NULL, worst-case values moved out of ``p_value``. Only
    the rows of ``cells`` (hashes) when given."""
    sql = f"SELECT {', '.join(map(_q, columns))} FROM results"
    if cells is None:
        rows = conn.execute(f"{sql} ORDER BY id").fetchall()
    else:  # one JSON array: no limit on the number of SQL variables
        where = " WHERE cell IN (SELECT value FROM json_each(?)) ORDER BY id"
        rows = conn.execute(sql + where, (json.dumps(list(cells)),)).fetchall()
    data = {}
    for i, stored in enumerate(columns):
        name = RENAMED.get(stored, stored)
        data[name] = pd.Series([r[i] for r in rows], dtype=_DTYPES.get(COLUMNS.get(name, "")))
    for name in COLUMNS:  # columns appended to the schema after this store was written
        if name not in data:
            data[name] = pd.Series([None] * len(rows), dtype=_DTYPES[COLUMNS[name]])
    if "worst_value" not in columns:  # a store from before worst_value: pgd rows held it in P
        worst = data["method"].isin(WORST_METHODS).to_numpy(dtype=bool)
        for old, new in (("p_value", "worst_value"), ("p_stderr", "worst_stderr")):
            data[new] = data[new].mask(worst, data[old])
            data[old] = data[old].mask(worst)
    names = [RENAMED.get(c, c) for c in columns]
    return pd.DataFrame(data, columns=list(dict.fromkeys([*COLUMNS, *names])))


class Store:
    """A results store opened for writing; created (with its tables) if the file is missing
    or empty. Any other file is first checked read-only: a file that is not a robustlab store
    is refused and left byte for byte as it was.

    Use as a context manager, or call :meth:`close`::

        with Store("results.db") as store:
            store.record_sweep(config.to_dict())
            todo = [c for c in config.cells() if c.hash not in store.done_cells()]
            ...
            store.write_cell(cell.hash, cell.sweep, "ok", "", cell.config_json(), t, rows)

    Raises:
        ValueError: the file exists but is not SQLite, or not a robustlab store, or it cannot
            be written.
    """

    def __init__(self, path: StorePath, *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        if self.path.is_file() and self.path.stat().st_size > 0:
            # nothing is written before this check; a log left by a stopped writer is merged
            # by the writer below, so only the file as it is on disk is identified here
            with _reading(self.path, ignore_logs=True) as conn:
                _check(conn, self.path)
        try:
            self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        except sqlite3.Error as err:
            raise ValueError(f"cannot open store '{self.path}': {err}") from None
        try:
            self._columns = self._init(timeout)
        except sqlite3.DatabaseError as err:  # e.g. read-only media, a full disk, corruption
            self._conn.close()
            raise ValueError(f"cannot write store '{self.path}': {err}") from None
        except BaseException:
            self._conn.close()
            raise

    def _init(self, timeout: float) -> list[str]:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        with self._transaction():
            # under the write lock no one else can commit: 0 bytes is a file no one has written
            if self.path.stat().st_size == 0:
                for statement in _schema_sql():
                    conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            columns = _check(conn, self.path)  # a file that appeared meanwhile: before any write
            for old, new in RENAMED.items():  # migrate an older store: renamed columns, ...
                if old in columns:
                    conn.execute(f"ALTER TABLE results RENAME COLUMN {_q(old)} TO {_q(new)}")
            columns = [RENAMED.get(c, c) for c in columns]
            for name in list(COLUMNS)[len(columns) :]:  # ... appended ones, ...
                conn.execute(f"ALTER TABLE results ADD COLUMN {_q(name)} {COLUMNS[name]}")
            if "worst_value" not in columns:  # ... and worst cases moved out of P
                methods = ", ".join(f"'{m}'" for m in WORST_METHODS)
                conn.execute(
                    "UPDATE results SET worst_value = p_value, worst_stderr = p_stderr,"
                    f" p_value = NULL, p_stderr = NULL WHERE method IN ({methods})"
                )
        # WAL only now: the switch writes the header, and a new store's tables are all there
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # durable across crashes in WAL mode
        return list(dict.fromkeys([*COLUMNS, *columns]))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def record_sweep(self, config: Mapping[str, Any]) -> bool:
        """Record a sweep config (``SweepConfig.to_dict()``); return False if already recorded.

        Raises:
            ValueError: the store already holds a *different* config under this sweep name
                (results of two experiments would otherwise be pooled under one name).
        """
        if hasattr(config, "to_dict"):
            config = config.to_dict()
        if not isinstance(config, Mapping) or not isinstance(config.get("name"), str):
            raise ValueError("record_sweep needs a sweep config dict with a 'name'")
        text = _canonical_json(config)
        values = (config["name"], text, _now(), __version__, _torch_version())
        with self._transaction():
            held = self._conn.execute(
                "SELECT config_json FROM sweeps WHERE name = ?", (config["name"],)
            ).fetchall()
            if held and all(h != text for (h,) in held):
                where = _first_difference(json.loads(held[0][0]), json.loads(text))
                raise ValueError(
                    f"sweep {config['name']!r} is already in '{self.path}' with a different "
                    f"config ({where}); give the changed sweep a new name or use another store"
                )
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO sweeps"
                " (name, config_json, created_at, robustlab_version, torch_version)"
                " VALUES (?, ?, ?, ?, ?)",
                values,
            )
        return cur.rowcount == 1

    def done_cells(self, retry_failed: bool = False) -> set[str]:
        """Hashes of finished cells (ok, diverged or failed; not failed if ``retry_failed``)."""
        sql = "SELECT cell FROM cells" + (" WHERE status != 'failed'" if retry_failed else "")
        return {cell for (cell,) in self._conn.execute(sql)}

    def write_cell(
        self,
        cell_hash: str,
        sweep: str,
        status: str,
        message: str,
        config_json: str,
        time_s: float | None,
        rows: Iterable[Mapping[str, Any]],
    ) -> bool:
        """Write a finished cell's rows and its ``cells`` entry in one transaction.

        Rows are dicts keyed by schema columns; a missing key is NULL, except ``cell``,
        ``sweep``, ``status``, ``message``, ``config_json``, ``time_s``, ``created_at``,
        ``robustlab_version`` and ``torch_version``, which default to this cell's values.
        numpy/torch scalars are accepted.

        Idempotent: a cell already recorded as ok or diverged is left alone (returns False).
        A cell recorded as failed is replaced, rows and all (a retry).

        Raises:
            ValueError: bad status, a row with unknown keys, a row of another cell, or a
                value of the wrong type. Nothing of the cell is written then.
        """
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        defaults = {
            "cell": cell_hash,
            "sweep": sweep,
            "status": status,
            "message": message,
            "config_json": config_json,
            "time_s": time_s,
            "created_at": _now(),
            "robustlab_version": __version__,
            "torch_version": _torch_version(),
        }

        def values(row: Mapping[str, Any]) -> tuple[Any, ...]:
            unknown = [k for k in row if k not in COLUMNS]
            if unknown:
                raise ValueError(
                    f"cell {cell_hash}: result row has unknown keys {', '.join(map(repr, unknown))}"
                    " (see robustlab.sweep.schema.COLUMNS)"
                )
            if row.get("cell", cell_hash) != cell_hash:
                raise ValueError(f"cell {cell_hash}: a row belongs to cell {row['cell']!r}")
            return tuple(_coerce(c, row[c] if c in row else defaults.get(c)) for c in COLUMNS)

        insert = (
            f"INSERT INTO results ({', '.join(map(_q, COLUMNS))})"
            f" VALUES ({', '.join('?' * len(COLUMNS))})"
        )
        conn = self._conn
        with self._transaction():
            previous = conn.execute("SELECT status FROM cells WHERE cell = ?", (cell_hash,))
            found = previous.fetchone()
            if found is not None and found[0] != "failed":
                return False
            if found is not None:
                conn.execute("DELETE FROM results WHERE cell = ?", (cell_hash,))
                conn.execute("DELETE FROM cells WHERE cell = ?", (cell_hash,))
            # rows are checked as they are inserted; an error rolls the whole cell back
            conn.executemany(insert, (values(row) for row in rows))
            conn.execute(
                f"INSERT INTO cells ({', '.join(_CELL_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (cell_hash, sweep, status, message, config_json, time_s, _now()),
            )
        return True

    def load(self) -> pd.DataFrame:
        """The results table (see :func:`load`), read through this connection."""
        return _read_results(self._conn, self._columns)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any exception."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")  # take the write lock now, not mid-transaction

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        elif self._conn.in_transaction:  # some errors make SQLite roll back by itself
            self._conn.execute("ROLLBACK")


def load(store_path: StorePath, *, cells: Iterable[str] | None = None) -> pd.DataFrame:
    """All result rows as a DataFrame (only those of ``cells``, hashes, when given): the
    schema's columns in order, no ``id`` column, rows in insertion order. INTEGER columns
    are ``Int64``, REAL ``float64`` and TEXT ``string`` (nullable). Opens the file read-only,
    also on read-only or full media; never creates or changes it.

    Raises:
        ValueError: the file is missing, not SQLite, not a robustlab store, corrupt, or holds
            an unmerged log that cannot be read where it lies.
    """
    path = Path(store_path)
    with _reading(path) as conn:
        return _read_results(conn, _check(conn, path), cells)


def load_cells(store_path: StorePath) -> pd.DataFrame:
    """The ``cells`` table (one row per finished cell, in the order they finished)."""
    path = Path(store_path)
    with _reading(path) as conn:
        _check(conn, path)
        rows = conn.execute(f"SELECT {', '.join(_CELL_COLUMNS)} FROM cells ORDER BY rowid")
        return pd.DataFrame(rows.fetchall(), columns=list(_CELL_COLUMNS))


def load_configs(store_path: StorePath) -> list[dict[str, Any]]:
    """The sweep configs recorded in the store, oldest first (as given to record_sweep)."""
    path = Path(store_path)
    with _reading(path) as conn:
        _check(conn, path)
        rows = conn.execute("SELECT config_json FROM sweeps ORDER BY id").fetchall()
    return [json.loads(text) for (text,) in rows]


def _first_difference(old: Any, new: Any, path: str = "") -> str:
    """Where two plain configs first differ: ``train.steps: 500 stored, 1000 now``."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            a, b = old.get(key, _UNSET), new.get(key, _UNSET)
            if a != b:
                return _first_difference(a, b, f"{path}.{key}" if path else key)
    return f"{path or 'config'}: {old!r} stored, {new!r} now"


class _Unset:
    def __repr__(self) -> str:
        return "not set"


_UNSET = _Unset()


EXPORT_FORMATS = ("parquet", "csv")
_EXPORT_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def _export_format(out_path: StorePath, fmt: str | None) -> str:
    """``fmt``, or the format named by the output's suffix; parquet only where pyarrow is."""
    if fmt is None:
        fmt = _EXPORT_SUFFIXES.get(Path(out_path).suffix.lower())
        if fmt is None:
            raise ValueError(
                f"cannot tell the export format from {str(out_path)!r}: name the file .parquet"
                " or .csv, or give --format parquet or csv"
            )
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"export format must be 'parquet' or 'csv', got {fmt!r}")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401  (only in the optional 'parquet' extra)
        except ImportError:
            raise ValueError(
                "parquet needs pyarrow: pip install 'robustlab[parquet]', or use --format csv"
            ) from None
    return fmt


def export(
    store_path: StorePath,
    out_path: StorePath,
    fmt: str | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write the results table to ``out_path`` as Parquet (needs pyarrow) or CSV.

    ``fmt`` None takes the format from the suffix (``.parquet``, ``.pq`` or ``.csv``). The
    format and the output are checked before the store is read: an existing file is replaced
    only with ``overwrite``, and never an SQLite database or the store itself. The file
    appears atomically (written next to it, then moved), so a reader never sees half of it.
    Returns the output path.
    """
    fmt = _export_format(out_path, fmt)
    keep = (store_path,)
    out = check_target(out_path, keep, overwrite=overwrite)
    df = load(store_path)

    def write(tmp: str) -> None:
        if fmt == "parquet":
            df.to_parquet(tmp, index=False, engine="pyarrow")
        else:
            df.to_csv(tmp, index=False)

    return atomic_write(out, write, protect=keep, overwrite=overwrite)
