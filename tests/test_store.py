"""SQLite results store: round trips, idempotence, atomicity, concurrency and crash safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing

import numpy as np
import pandas as pd
import pytest

from robustlab.sweep.schema import COLUMNS
from robustlab.sweep.store import Store, export, load, load_cells, load_configs

CONFIG = {"name": "demo", "data": {"name": "mnist1d"}, "grid": {"width": [8], "depth": [2]}}


def rows_for(cell: str, n: int = 3) -> list[dict]:
    return [
        {
            "seed": 0,
            "width": 8,
            "depth": 2,
            "init": "lecun",
            "stage": "init",
            "eps": 0.1 * (j + 1),
            "p_value": 0.5 + j,
            "n_params": 100,
            "data_seed": 0,
            "p_lazy_limit": 0.1,
        }  # fmt: skip
        for j in range(n)
    ]


def write(store: Store, cell: str, status: str = "ok", n: int = 3) -> bool:
    message = "" if status == "ok" else "boom"
    return store.write_cell(cell, "demo", status, message, '{"c":1}', 1.5, rows_for(cell, n))


def count(path, sql: str = "SELECT count(*) FROM results", args=()) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, args).fetchone()[0]


@pytest.fixture
def db(tmp_path):
    return tmp_path / "results.db"


def test_write_and_load_round_trip(db):
    with Store(db) as store:
        assert write(store, "aaaa", n=3)
        assert write(store, "bbbb", status="diverged", n=2)
    df = load(db)
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 5
    assert df["cell"].tolist() == ["aaaa"] * 3 + ["bbbb"] * 2
    assert df["eps"].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.1, 0.2])
    assert df["status"].tolist() == ["ok"] * 3 + ["diverged"] * 2
    assert df["message"].tolist() == [""] * 3 + ["boom"] * 2
    # cell-level defaults fill the row; other missing keys are NULL
    assert (df["sweep"] == "demo").all() and (df["time_s"] == 1.5).all()
    assert df["robustlab_version"].notna().all() and df["created_at"].notna().all()
    assert df["p_stderr"].isna().all() and df["steps"].isna().all()
    assert df["width"].dtype == "Int64" and df["eps"].dtype == "float64"
    assert isinstance(df["init"].dtype, pd.StringDtype)


def test_empty_store_has_typed_columns(db):
    Store(db).close()
    df = load(db)
    assert df.empty and list(df.columns) == list(COLUMNS)
    assert df["seed"].dtype == "Int64" and df["p_value"].dtype == "float64"


def test_numpy_scalars_are_stored_as_plain_values(db):
    row = {"width": np.int64(16), "p_value": np.float32(0.25), "init": "he", "eps": np.array(0.5)}
    with Store(db) as store:
        store.write_cell("c", "demo", "ok", "", "{}", None, [row])
    df = load(db)
    assert df.loc[0, "width"] == 16 and df.loc[0, "p_value"] == 0.25 and df.loc[0, "eps"] == 0.5


def test_write_cell_is_idempotent(db):
    with Store(db) as store:
        assert write(store, "aaaa")
        assert not write(store, "aaaa")
        assert not write(store, "aaaa", status="failed", n=7)
        assert store.done_cells() == {"aaaa"}
    assert count(db) == 3
    assert len(load_cells(db)) == 1


def test_done_cells_and_retry_of_failed(db):
    with Store(db) as store:
        write(store, "ok1")
        write(store, "div", status="diverged")
        write(store, "bad", status="failed", n=1)
        assert store.done_cells() == {"ok1", "div", "bad"}
        assert store.done_cells(retry_failed=True) == {"ok1", "div"}
        assert write(store, "bad", status="ok", n=4)  # a retry replaces the failed cell
        assert store.done_cells(retry_failed=True) == {"ok1", "div", "bad"}
    df = load(db)
    assert (df[df["cell"] == "bad"]["status"] == "ok").sum() == 4
    assert count(db, "SELECT count(*) FROM results WHERE cell = 'bad'") == 4
    cells = load_cells(db).set_index("cell")
    assert cells.loc["bad", "status"] == "ok" and cells.loc["div", "message"] == "boom"


def test_failed_write_leaves_nothing_of_the_cell(db):
    rows = [*rows_for("cccc", 2), {"eps": 0.1, "p_valeu": 1.0}]  # good rows, then a typo
    with Store(db) as store:
        write(store, "aaaa")
        with pytest.raises(ValueError, match="unknown keys 'p_valeu'"):
            store.write_cell("cccc", "demo", "ok", "", "{}", 1.0, rows)
        assert "cccc" not in store.done_cells()
        with pytest.raises(ValueError, match=r"column 'width' \(INTEGER\): cannot store 'wide'"):
            store.write_cell("cccc", "demo", "ok", "", "{}", 1.0, [*rows[:2], {"width": "wide"}])
        assert write(store, "dddd")  # the store is still usable
    assert count(db, "SELECT count(*) FROM results WHERE cell = 'cccc'") == 0
    assert count(db, "SELECT count(*) FROM cells WHERE cell = 'cccc'") == 0
    assert sorted(set(load(db)["cell"])) == ["aaaa", "dddd"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": "great"}, "status must be one of ok, diverged, failed"),
        ({"rows": [{"cell": "other"}]}, "a row belongs to cell 'other'"),
        ({"rows": [{"p_value": [1, 2]}]}, r"column 'p_value' \(REAL\): cannot store \[1, 2\]"),
    ],
)
def test_write_cell_rejects(db, kwargs, message):
    args = {"status": "ok", "rows": rows_for("x")} | kwargs
    with Store(db) as store, pytest.raises(ValueError, match=message):
        store.write_cell("x", "demo", args["status"], "", "{}", 0.0, args["rows"])


def test_record_sweep(db):
    other = {**CONFIG, "seeds": [0, 1]}
    with Store(db) as store:
        assert store.record_sweep(CONFIG)
        assert not store.record_sweep(dict(reversed(CONFIG.items())))  # same config
        # same name, different config: refused (two experiments would pool under one name)
        with pytest.raises(ValueError, match="sweep 'demo' is already in .* different config"):
            store.record_sweep(other)
        with pytest.raises(ValueError, match="'name'"):
            store.record_sweep({"grid": {}})
        assert store.record_sweep({**other, "name": "demo-2"})
    assert load_configs(db) == [CONFIG, {**other, "name": "demo-2"}]
    assert count(db, "SELECT count(*) FROM sweeps WHERE torch_version IS NOT NULL") == 2


def test_load_does_not_create_a_missing_store(db):
    with pytest.raises(ValueError, match="no robustlab store at .*results.db.*not found"):
        load(db)
    with pytest.raises(ValueError, match="not found"):
        load_configs(db)
    assert not db.exists()


def test_a_file_that_is_not_sqlite(db):
    db.write_bytes(b"name,value\n" * 200)
    message = r"results\.db' is not a readable robustlab store: file is not a database"
    with pytest.raises(ValueError, match=message):
        load(db)
    with pytest.raises(ValueError, match=message):
        Store(db)
    assert db.read_bytes() == b"name,value\n" * 200


def test_an_sqlite_file_of_another_schema(db):
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE results (x INTEGER)")
        conn.commit()
    for opener in (load, Store):
        with pytest.raises(ValueError, match=r"an SQLite database but not a robustlab store"):
            opener(db)


def test_an_older_store_gains_new_columns(db):
    Store(db).close()
    appended = list(COLUMNS)[list(COLUMNS).index("p_lazy_limit") :]
    with closing(sqlite3.connect(db)) as conn:
        for name in reversed(appended):  # as if written before p_lazy_limit
            conn.execute(f"ALTER TABLE results DROP COLUMN {name}")
        conn.commit()
    assert list(load(db).columns) == list(COLUMNS)
    with Store(db) as store:
        write(store, "aaaa")
    assert load(db)["p_lazy_limit"].notna().all()


def older_store(db) -> pd.DataFrame:
    """A store as robustlab wrote it before ``at`` became ``stage`` and before worst cases
    had their own column (pgd rows held theirs in p_value): its rows as the current schema
    reads them."""
    with Store(db) as store:
        rows = rows_for("aaaa", 4)
        rows[3] |= {"method": "pgd", "p_value": None, "worst_value": 7.0, "worst_stderr": 0.5}
        store.write_cell("aaaa", "demo", "ok", "", '{"c":1}', 1.5, rows)
    want = load(db)
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("UPDATE results SET p_value = 7.0, p_stderr = 0.5 WHERE method = 'pgd'")
        for name in reversed(list(COLUMNS)[list(COLUMNS).index("worst_value") :]):
            conn.execute(f"ALTER TABLE results DROP COLUMN {name}")  # worst_* and all since
        conn.execute('ALTER TABLE results RENAME COLUMN "stage" TO "at"')
        conn.commit()
    return want


def test_an_older_store_reads_with_renamed_columns_and_worst_cases_moved(db):
    want = older_store(db)
    before = db.read_bytes()
    got = load(db)  # read-only: the file is not changed
    assert db.read_bytes() == before
    pd.testing.assert_frame_equal(got, want)
    assert got.loc[3, "worst_value"] == 7.0 and pd.isna(got.loc[3, "p_value"])
    assert list(got["stage"]) == ["init"] * 4


def test_an_older_store_is_migrated_when_written(db):
    want = older_store(db)
    with Store(db) as store:
        write(store, "bbbb", n=1)
    columns = [r[1] for r in sqlite3.connect(db).execute("PRAGMA table_info(results)")][1:]
    assert columns == list(COLUMNS)
    got = load(db)
    pd.testing.assert_frame_equal(got.iloc[:4], want)
    assert count(db, "SELECT count(*) FROM results WHERE method = 'pgd' AND p_value IS NULL") == 1


@pytest.mark.parametrize(
    ("first", "reached"), [("sweep_hash", [1, 1, 1]), ("reached_target", [0, 1, 1])]
)
def test_an_older_store_reads_its_missing_columns_with_their_defaults(db, first, reached):
    # written before ``first`` and every column since: one config of its sweep, measured on
    # test points, reached_target from the losses where target_loss is known (else 1)
    with Store(db) as store:
        rows = rows_for("aaaa", 3)
        rows[0] |= {"train_loss": 0.5, "target_loss": 0.1}  # missed its target
        rows[1] |= {"train_loss": 0.05, "target_loss": 0.1}
        store.write_cell("aaaa", "demo", "ok", "", '{"c":1}', 1.5, rows)
    with closing(sqlite3.connect(db)) as conn:
        for name in reversed(list(COLUMNS)[list(COLUMNS).index(first) :]):
            conn.execute(f"ALTER TABLE results DROP COLUMN {name}")
        conn.commit()
    got = load(db)
    if first == "sweep_hash":
        assert got["sweep_hash"].tolist() == [""] * 3
        assert got["points"].tolist() == ["test"] * 3
    assert got["reached_target"].tolist() == reached and got["reached_target"].dtype == "Int64"
    assert got["lr_final"].isna().all()  # no default: unknown
    with Store(db) as store:  # migrated: the file now holds what load() showed
        write(store, "bbbb", n=1)
    pd.testing.assert_frame_equal(load(db).iloc[:3], got)


def test_store_uses_wal(db):
    Store(db).close()
    assert count(db, "PRAGMA journal_mode") == "wal"


def test_reader_sees_committed_rows_while_a_writer_holds_a_transaction(db):
    with Store(db) as store:
        write(store, "aaaa")
        with closing(sqlite3.connect(db, isolation_level=None)) as writer:
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("INSERT INTO results (cell, status) VALUES ('pending', 'ok')")
            during = load(db)  # must neither block nor see the open transaction
            writer.execute("COMMIT")
        after = load(db)
    assert during["cell"].tolist() == ["aaaa"] * 3
    assert after["cell"].tolist() == ["aaaa"] * 3 + ["pending"]


WRITER = """
import itertools, sys, time
from robustlab.sweep.store import Store

path, n_rows, stall_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def rows(i):
    big = i == stall_at  # enough rows to spill uncommitted pages into the WAL file
    for j in range(20_000 if big else n_rows):
        yield {"seed": j, "eps": 0.1, "p_value": float(i), "message": "x" * 200}
    if big:
        print("mid", flush=True)  # inside write_cell's open transaction
        time.sleep(60)

with Store(path) as store:
    for i in itertools.count():
        store.write_cell(f"cell{i:06d}", "kill", "ok", "", "{}", 0.0, rows(i))
        print(i, flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
def test_sigkill_mid_write_leaves_whole_cells(db, tmp_path):
    n_rows, landed = 50, 20
    stderr = tmp_path / "stderr.txt"
    command = [sys.executable, "-c", WRITER, str(db), str(n_rows), str(landed)]
    with (
        stderr.open("w") as err,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True) as proc,
    ):
        lines = [proc.stdout.readline() for _ in range(landed + 1)]
        assert lines[-1] == "mid\n", f"writer died early: {stderr.read_text()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with Store(db) as store:  # opening recovers the WAL
        done = store.done_cells()
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        per_cell = dict(conn.execute("SELECT cell, count(*) FROM results GROUP BY cell"))
        distinct = conn.execute("SELECT count(DISTINCT cell || ':' || seed) FROM results")
        n_distinct = distinct.fetchone()[0]
    assert done == {f"cell{i:06d}" for i in range(landed)}  # not the one killed mid-write
    assert set(per_cell) == done  # no rows without a cells entry
    assert set(per_cell.values()) == {n_rows}  # every present cell has all of its rows
    assert n_distinct == sum(per_cell.values())  # no duplicates


@pytest.fixture
def filled(db):
    with Store(db) as store:
        write(store, "aaaa")
        write(store, "bbbb", status="failed", n=1)
    return db


def test_export_parquet_round_trip(filled, tmp_path):
    out = export(filled, tmp_path / "out.parquet")
    assert out == tmp_path / "out.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(out), load(filled), check_dtype=False)
    back = pd.read_parquet(out)
    assert back["width"].dtype == "Int64" and back["eps"].dtype == "float64"


def test_export_csv_round_trip(filled, tmp_path):
    out = export(filled, tmp_path / "out.csv", fmt="csv")
    df = load(filled)
    back = pd.read_csv(out, keep_default_na=False, na_values=[""]).astype(df.dtypes.to_dict())
    back["message"] = back["message"].fillna("")  # CSV cannot tell '' from missing
    pd.testing.assert_frame_equal(back, df)


def test_export_is_atomic_and_overwrites_only_when_asked(filled, tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("old")
    with pytest.raises(ValueError, match=r"out\.csv': the file exists; .* set overwrite"):
        export(filled, out, fmt="csv")
    assert out.read_text() == "old"
    export(filled, out, fmt="csv", overwrite=True)
    assert out.read_text().startswith("sweep,cell,seed")
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_export_rejects_unknown_format(filled, tmp_path):
    with pytest.raises(ValueError, match="export format must be 'parquet' or 'csv', got 'xlsx'"):
        export(filled, tmp_path / "out.xlsx", fmt="xlsx")
    assert not (tmp_path / "out.xlsx").exists()


def test_outputs_never_replace_their_store(filled, tmp_path, capsys):
    # export / report -o STORE (also through a second name): one line, exit 2, store intact
    from robustlab.cli import main

    before = filled.read_bytes()
    alias = tmp_path / "alias.db"
    alias.symlink_to(filled)
    for out in (filled, alias):
        for argv in (
            ["export", str(filled), "--format", "csv", "-o", str(out)],
            ["report", str(filled), "-o", str(out)],
        ):
            assert main(argv) == 2, argv
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and "is the input" in err[0], err
    assert filled.read_bytes() == before and len(load(filled)) == 4
    with pytest.raises(ValueError, match="it is a folder"):
        export(filled, tmp_path, fmt="csv")
