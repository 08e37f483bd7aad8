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
unchanged. This module writes (:class:`Store`); reading (:func:`load`, :func:`load_cells`,
:func:`load_configs`: read-only, also on read-only or full media, an older store read as
the current schema) lives in :mod:`._store_read`, exporting (:func:`export`) in
:mod:`._store_export`; all are importable from here.
"""

from __future__ import annotations

import json
import numbers
import sqlite3
import sys
from collections.abc import Iterable, Mapping
from contextlib import suppress
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from .._version import __version__
from ._store_export import EXPORT_FORMATS, export
from ._store_read import (
    APPLICATION_ID,
    CELL_COLUMNS,
    FORMAT,
    META,
    StorePath,
    check,
    load,
    load_cells,
    load_configs,
    q,
    read_results,
    reading,
)
from .schema import COLUMNS, RENAMED, STATUSES, WORST_METHODS, identity

__all__ = [
    "APPLICATION_ID",
    "EXPORT_FORMATS",
    "Store",
    "export",
    "load",
    "load_cells",
    "load_configs",
]


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


def _identity(config: Mapping[str, Any]) -> str:
    """A sweep config's identity: its canonical JSON less the keys that only say how it is
    reported (:data:`~.schema.PRESENTATION_KEYS`)."""
    return _canonical_json(identity(dict(config)))


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _schema_sql() -> list[str]:
    columns = ", ".join(f"{q(c)} {t}" for c, t in COLUMNS.items())
    statuses = ", ".join(f"'{s}'" for s in STATUSES)
    return [
        f"CREATE TABLE {META} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"INSERT INTO {META} VALUES ('format', '{FORMAT}')",
        f"CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, {columns})",
        "CREATE INDEX results_cell ON results (cell)",
        "CREATE TABLE cells (cell TEXT PRIMARY KEY, sweep TEXT NOT NULL,"
        f" status TEXT NOT NULL CHECK (status IN ({statuses})), message TEXT,"
        " config_json TEXT, time_s REAL, finished_at TEXT NOT NULL)",
        "CREATE TABLE sweeps (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,"
        " config_json TEXT NOT NULL, created_at TEXT NOT NULL, robustlab_version TEXT,"
        " torch_version TEXT, UNIQUE (name, config_json))",
    ]


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
            with reading(self.path, ignore_logs=True) as conn:
                check(conn, self.path)
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
            columns = check(conn, self.path)  # a file that appeared meanwhile: before any write
            appended = list(COLUMNS)[len(columns) :]
            # an older store's rows as load() reads them, which the migrated file must repeat
            before = read_results(conn, columns) if appended else None
            for old, new in RENAMED.items():  # migrate an older store: renamed columns, ...
                if old in columns:
                    conn.execute(f"ALTER TABLE results RENAME COLUMN {q(old)} TO {q(new)}")
            columns = [RENAMED.get(c, c) for c in columns]
            for name in appended:  # ... appended ones with their defaults, ...
                conn.execute(f"ALTER TABLE results ADD COLUMN {q(name)} {COLUMNS[name]}")
            if before is not None:
                self._write_columns(before, appended)
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

    def _write_columns(self, rows: pd.DataFrame, names: list[str]) -> None:
        """Write the values ``rows`` (every row of the table, in id order) hold in the
        columns ``names`` that are not all NULL (the defaults of appended columns)."""
        names = [n for n in names if n not in ("worst_value", "worst_stderr")]
        names = [n for n in names if rows[n].notna().any()]
        if not names:
            return
        ids = [i for (i,) in self._conn.execute("SELECT id FROM results ORDER BY id")]
        values = rows[names].astype(object).where(rows[names].notna(), None)
        sets = ", ".join(f"{q(n)} = ?" for n in names)
        self._conn.executemany(
            f"UPDATE results SET {sets} WHERE id = ?",
            (
                (*(_coerce(n, v) for n, v in zip(names, row, strict=True)), i)
                for row, i in zip(values.itertuples(index=False), ids, strict=True)
            ),
        )

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
            same = [h for (h,) in held if _identity(json.loads(h)) == _identity(config)]
            if held and not same:
                where = _first_difference(json.loads(held[0][0]), json.loads(text))
                raise ValueError(
                    f"sweep {config['name']!r} is already in '{self.path}' with a different "
                    f"config ({where}); give the changed sweep a new name or use another store"
                )
            if same and text not in same:  # the same sweep, reported otherwise: keep the new
                self._conn.execute(
                    "UPDATE sweeps SET config_json = ? WHERE name = ? AND config_json = ?",
                    (text, config["name"], same[0]),
                )
                return False
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
            f"INSERT INTO results ({', '.join(map(q, COLUMNS))})"
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
                f"INSERT INTO cells ({', '.join(CELL_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (cell_hash, sweep, status, message, config_json, time_s, _now()),
            )
        return True

    def load(self) -> pd.DataFrame:
        """The results table (see :func:`load`), read through this connection."""
        return read_results(self._conn, self._columns)


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
