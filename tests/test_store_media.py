"""The store and its outputs never touch files that are not theirs, and stores stay readable
on read-only or full media.

Every hostile file is built here. We may run as root, for whom ``chmod 555`` restricts
nothing, so a ``-shm`` file SQLite cannot create is made another way: a dangling link into a
missing folder (what a read-only folder does) or a link to ``/dev/full`` (a full disk). A
real read-only mount is used where user namespaces allow one, and a chmod test runs as any
other user.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest
import yaml

from robustlab.cli import main
from robustlab.sweep.store import APPLICATION_ID, Store, export, load, load_cells, load_configs

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {"name": "media", "grid": {"width": [8]}}
# a valid sweep: a refused store is refused before any cell runs
SWEEP = {
    "name": "media",
    "data": {"name": "sphere", "in_dim": 4, "n_train": 8, "n_test": 8},
    "grid": {"width": [4], "depth": [2], "init": ["lecun"], "regime": ["standard"]},
    "seeds": 1,
    "train": {"steps": 2},
    "measure": {"eps": [0.1], "methods": ["exact"], "points": 8, "at": ["init"]},
}


def fill(path: Path, cells: int = 2, rows: int = 3) -> Path:
    with Store(path) as store:
        store.record_sweep(CONFIG)
        for c in range(cells):
            store.write_cell(
                f"cell{c:04d}", "media", "ok", "", "{}", 1.0,
                [{"seed": j, "width": 8, "depth": 2, "init": "lecun", "stage": "init",
                  "eps": 0.1, "p_value": 0.5 + j, "message": "m" * 100} for j in range(rows)],
            )  # fmt: skip
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error(capsys, *argv: str) -> str:
    """Run a command that must fail with one line and exit 2; return that line."""
    code, _, err = cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert (code, len(lines)) == (2, 1), (code, err)
    assert lines[0].startswith("robustlab: error: ")
    return lines[0]


@pytest.fixture
def compare_stores(capsys, monkeypatch):
    """scripts/compare_stores.py's main in this process: argv -> (exit code, stdout, stderr)."""
    spec = importlib.util.spec_from_file_location(
        "compare_stores", ROOT / "scripts/compare_stores.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def run(*argv) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["compare_stores.py", *map(str, argv)])
        code = module.main()
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def store(tmp_path):
    return fill(tmp_path / "S.db")


# ----------------------------------------------------------------------------- foreign files
def foreign_with_a_table(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        conn.executemany("INSERT INTO notes (text) VALUES (?)", [("a",), ("b",)])
        conn.commit()


def foreign_without_tables(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 7")


def foreign_with_our_tables(path: Path) -> None:
    fill(path)
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA application_id = 1234")  # another program's mark
        conn.execute("PRAGMA journal_mode = DELETE")  # as the other two: not in WAL mode


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (foreign_with_a_table, r"an SQLite database but not a robustlab store \(missing tables"),
        (foreign_without_tables, r"an SQLite database but not a robustlab store \(missing tables"),
        (foreign_with_our_tables, r"an SQLite database of another program \(application_id 0x4d2"),
    ],
)
def test_a_foreign_database_is_refused_byte_for_byte(tmp_path, capsys, make, message):
    folder = tmp_path / "app"
    folder.mkdir()
    db = folder / "app.db"
    make(db)
    before, files = digest(db), sorted(os.listdir(folder))
    assert db.read_bytes()[18:20] == b"\x01\x01"  # rollback journal, not WAL
    config = tmp_path / "ok.yaml"
    config.write_text(yaml.safe_dump(SWEEP))
    line = one_error(capsys, "sweep", config, "--store", db, "--executor", "serial", "--quiet")
    assert "give a new file for the store" in line
    with pytest.raises(ValueError, match=message):
        Store(db)
    assert digest(db) == before and sorted(os.listdir(folder)) == files


@pytest.mark.parametrize("empty", [False, True])
def test_a_missing_or_empty_file_becomes_a_marked_store(tmp_path, empty):
    db = tmp_path / "new.db"
    if empty:
        db.touch()
    fill(db)
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert len(load(db)) == 6


def test_a_store_made_before_the_application_id_still_opens(store):
    with closing(sqlite3.connect(store)) as conn:
        conn.execute("PRAGMA application_id = 0")
    with Store(store) as st:
        assert st.write_cell("late", "media", "ok", "", "{}", 1.0, [{"seed": 9}])
    assert len(load(store)) == 7


def test_an_empty_file_is_not_read_as_a_store(tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(ValueError, match=r"empty\.db' is an empty file, not a robustlab store"):
        load(empty)
    assert empty.read_bytes() == b""


# ----------------------------------------------------------------------------- read-only media
def block_shm(store: Path, how: str) -> None:
    """Make SQLite unable to create the store's -shm file, as a read-only folder or a full
    disk does, and check that it really cannot read the store read-only then."""
    target = store.parent / "missing" / "shm" if how == "read-only folder" else Path("/dev/full")
    Path(f"{store}-shm").symlink_to(target)
    uri = store.resolve().as_uri() + "?mode=ro"
    with (
        pytest.raises(sqlite3.OperationalError, match="unable to open"),
        closing(sqlite3.connect(uri, uri=True)) as conn,
    ):
        conn.execute("SELECT count(*) FROM sqlite_master")


@pytest.mark.parametrize("how", ["read-only folder", "full disk"])
def test_a_store_whose_shm_cannot_be_created_is_read(store, tmp_path, how):
    if how == "full disk" and not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    reference = (load(store), load_cells(store), load_configs(store))
    copy = tmp_path / "blocked" / "S.db"
    copy.parent.mkdir()
    shutil.copy(store, copy)
    block_shm(copy, how)
    before = digest(copy)
    pd.testing.assert_frame_equal(load(copy), reference[0])
    pd.testing.assert_frame_equal(load_cells(copy), reference[1])
    assert load_configs(copy) == reference[2]
    with pytest.raises(ValueError, match=r"cannot write store '.*S\.db': unable to open"):
        Store(copy)  # a writer cannot work there: one line, nothing written
    assert digest(copy) == before


def test_export_report_and_compare_read_a_blocked_store(store, tmp_path, capsys, compare_stores):
    copy = tmp_path / "blocked" / "S.db"
    copy.parent.mkdir()
    shutil.copy(store, copy)
    block_shm(copy, "read-only folder")
    before = digest(copy)
    assert cli(capsys, "export", copy, "-o", tmp_path / "a.csv")[0] == 0
    assert cli(capsys, "export", store, "-o", tmp_path / "b.csv")[0] == 0
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    code, out, err = cli(capsys, "report", copy, "-o", tmp_path / "r.html")
    assert (code, err) == (0, "") and "name: media" in (tmp_path / "r.html").read_text()
    code, out, err = compare_stores(copy, store)
    assert (code, err) == (0, "") and out.strip().endswith("identical")
    assert digest(copy) == before


def unmerged_copies(store: Path, *folders: Path) -> list[Path]:
    """Copies of ``store`` taken while a writer has committed a cell that is still in its
    -wal file only (as a killed writer leaves it)."""
    with Store(store) as st:
        assert st.write_cell("walonly", "media", "ok", "", "{}", 1.0, [{"seed": 5}])
        for folder in folders:
            folder.mkdir()
            for suffix in ("", "-wal"):
                shutil.copy(f"{store}{suffix}", folder / f"S.db{suffix}")
            assert (folder / "S.db-wal").stat().st_size > 0
    return [folder / "S.db" for folder in folders]


def test_an_unmerged_log_that_cannot_be_read_is_refused(store, tmp_path, capsys, compare_stores):
    readable, blocked = unmerged_copies(store, tmp_path / "writable", tmp_path / "blocked")
    assert "walonly" in set(load(readable)["cell"])
    immutable = blocked.resolve().as_uri() + "?immutable=1"  # what ignoring the log would see
    with closing(sqlite3.connect(immutable, uri=True)) as conn:
        assert conn.execute("SELECT count(*) FROM cells WHERE cell = 'walonly'").fetchone() == (0,)
    block_shm(blocked, "read-only folder")
    before = digest(blocked), digest(Path(f"{blocked}-wal"))
    message = (
        r"S\.db' cannot be read: SQLite cannot create its -shm file here \(read-only or full "
        r"media\) and its log 'S\.db-wal' holds changes not yet merged"
    )
    for reader in (load, load_cells, load_configs):
        with pytest.raises(ValueError, match=message):
            reader(blocked)
    line = one_error(capsys, "export", blocked, "-o", tmp_path / "out.csv")
    assert "copy the store with its log to a writable folder" in line
    one_error(capsys, "report", blocked, "-o", tmp_path / "out.html")
    code, out, err = compare_stores(blocked, store)
    assert (code, out, len(err.strip().splitlines())) == (2, "", 1) and "not yet merged" in err
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.html").exists()
    assert (digest(blocked), digest(Path(f"{blocked}-wal"))) == before


def hot_journal_copy(db: Path, folder: Path) -> Path:
    """A copy of ``db`` (in rollback-journal mode) taken while a writer is inside a
    transaction that has already written pages into the file: a killed writer leaves this."""
    folder.mkdir()
    copy = folder / db.name
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA cache_size = 2")  # the changed pages spill into the file at once
        conn.execute("BEGIN")
        conn.execute("CREATE TABLE spill (x TEXT)")
        conn.executemany("INSERT INTO spill VALUES (?)", [("x" * 500,)] * 200)
        for suffix in ("", "-journal"):
            shutil.copy(f"{db}{suffix}", f"{copy}{suffix}")
        conn.execute("ROLLBACK")
    assert digest(copy) != digest(db)  # the copy holds uncommitted pages, the journal the old
    return copy


def test_a_foreign_database_with_a_hot_journal_is_refused_untouched(tmp_path):
    db = tmp_path / "app.db"
    foreign_with_a_table(db)
    copy = hot_journal_copy(db, tmp_path / "killed")
    journal = Path(f"{copy}-journal")
    before = digest(copy), digest(journal)
    # a writer opening it would roll the journal back into the file: identified read-only
    with pytest.raises(ValueError, match=r"app\.db' is an SQLite database but not a robustlab"):
        Store(copy)
    assert (digest(copy), digest(journal)) == before


def test_a_store_with_a_hot_journal_is_recovered_by_its_writer(store, tmp_path):
    copy = hot_journal_copy(store, tmp_path / "killed")
    message = r"S\.db' cannot be read: its journal 'S\.db-journal' holds a transaction a writer"
    with pytest.raises(ValueError, match=message):
        load(copy)
    Store(copy).close()  # rolls the journal back
    assert not Path(f"{copy}-journal").exists()
    pd.testing.assert_frame_equal(load(copy), load(store))


@pytest.fixture
def read_only_folder(store, tmp_path):
    """``store`` copied into a folder with mode 555; restored afterwards so it can be removed."""
    folder = tmp_path / "ro"
    folder.mkdir()
    shutil.copy(store, folder / "S.db")
    folder.chmod(0o555)
    yield folder / "S.db"
    folder.chmod(0o755)


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0,
    reason="root ignores folder permissions (the -shm tests above make the same failure)",
)
def test_a_store_in_a_chmod_555_folder_is_read(read_only_folder, store, tmp_path, capsys):
    pd.testing.assert_frame_equal(load(read_only_folder), load(store))
    assert cli(capsys, "export", read_only_folder, "-o", tmp_path / "out.csv")[0] == 0


def _user_namespaces() -> bool:
    """Whether this Python runs in a private user and mount namespace (``unshare -r -m``)."""
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "-r", "-m", sys.executable, "-c", "pass"]
    return subprocess.run(probe, capture_output=True).returncode == 0


# mount the folder $1 read-only over itself (in a private mount namespace), check that it is,
# then export its store with the robustlab command
READ_ONLY_EXPORT = """
mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 99
touch "$1/probe" 2>/dev/null && exit 98
exec "$2" -m robustlab.cli export "$1/S.db" -o "$3"
"""


@pytest.mark.skipif(sys.platform != "linux", reason="needs Linux mount namespaces")
def test_a_store_on_a_read_only_mount_is_exported(store, tmp_path):
    if not _user_namespaces():
        pytest.skip("unshare -r -m cannot run this Python here")
    folder = tmp_path / "mnt"
    folder.mkdir()
    shutil.copy(store, folder / "S.db")
    out = tmp_path / "out.csv"
    args = [str(a) for a in (folder, sys.executable, out)]
    command = ["unshare", "-r", "-m", "sh", "-c", READ_ONLY_EXPORT, "sh", *args]
    proc = subprocess.run(command, capture_output=True, text=True)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    export(store, tmp_path / "reference.csv")
    assert out.read_text() == (tmp_path / "reference.csv").read_text()


# ----------------------------------------------------------------------------- corrupt stores
@pytest.fixture
def corrupt(tmp_path):
    """A store whose second half is random bytes (its first pages, the schema, are intact)."""
    db = fill(tmp_path / "corrupt.db", cells=40, rows=20)
    data = bytearray(db.read_bytes())
    half = len(data) // 2
    data[half:] = random.Random(0).randbytes(len(data) - half)
    db.write_bytes(bytes(data))
    return db


def test_a_corrupt_store_is_one_line_everywhere(corrupt, tmp_path, capsys, compare_stores):
    message = r"corrupt\.db' is not a readable robustlab store: database disk image is malformed"
    with pytest.raises(ValueError, match=message):
        load(corrupt)
    for argv in (
        ["export", corrupt, "-o", tmp_path / "out.csv"],
        ["report", corrupt, "-o", tmp_path / "out.html"],
    ):
        assert "database disk image is malformed" in one_error(capsys, *argv)
    code, out, err = compare_stores(corrupt, corrupt)
    lines = err.strip().splitlines()
    assert (code, out, len(lines)) == (2, "", 1) and "is not a readable robustlab store" in err
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.html").exists()


# ----------------------------------------------------------------------------- outputs
@pytest.mark.parametrize("command", ["export", "report"])
def test_outputs_never_replace_a_file_unless_forced(store, tmp_path, capsys, command):
    suffix = ".csv" if command == "export" else ".html"
    out = tmp_path / f"mine{suffix}"
    out.write_text("my own notes")
    line = one_error(capsys, command, store, "-o", out)
    assert f"mine{suffix}': the file exists; give another output file, or set --force" in line
    assert out.read_text() == "my own notes"
    other = tmp_path / "other.db"
    foreign_with_a_table(other)
    before = digest(other)
    fmt = ["--format", "csv"] if command == "export" else []
    for target in (other, tmp_path / "other.db-journal"):  # a journal would corrupt other.db
        line = one_error(capsys, command, store, "-o", target, "--force", *fmt)
        assert "is an SQLite database (or one's -wal/-shm/-journal file)" in line
    assert digest(other) == before and not (tmp_path / "other.db-journal").exists()
    code, _, err = cli(capsys, command, store, "-o", out, "--force")
    assert (code, err) == (0, "") and out.read_text() != "my own notes"


def test_export_takes_its_format_from_the_suffix(store, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # the README's install: no pyarrow
    hint = "parquet needs pyarrow: pip install 'robustlab[parquet]', or use --format csv"
    missing = tmp_path / "missing.db"  # checked before anything is loaded
    for argv in (["-o", tmp_path / "r.parquet"], ["-o", tmp_path / "r.csv", "--format", "parquet"]):
        assert one_error(capsys, "export", missing, *argv) == f"robustlab: error: {hint}"
    line = one_error(capsys, "export", store, "-o", tmp_path / "r.txt")
    assert "cannot tell the export format from" in line and "--format parquet or csv" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S.db"]
    assert cli(capsys, "export", store, "-o", tmp_path / "r.csv")[0] == 0
    monkeypatch.undo()  # pandas reads CSV through pyarrow when it believes it installed
    back = pd.read_csv(tmp_path / "r.csv")
    assert back["cell"].tolist() == load(store)["cell"].tolist()
