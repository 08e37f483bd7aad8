"""Atomic file writes: a reader (or a killed run) never sees half a file, and an output never
replaces an SQLite database (a store, or another program's), its own input, or (unless asked
to) any existing file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from ._checks import ConfigError

__all__ = ["atomic_write", "check_target"]

SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")  # written beside a database by SQLite


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _is_database(path: Path) -> bool:
    """``path`` is an SQLite database, or the -wal/-shm/-journal file of one beside it."""
    bases = [path] + [
        Path(str(path)[: -len(s)]) for s in _SQLITE_SIDE_FILES if path.name.endswith(s)
    ]
    for i, base in enumerate(bases):
        if not base.is_file():  # missing, or not a regular file (a FIFO would block a read)
            continue
        try:
            with base.open("rb") as f:
                if f.read(len(SQLITE_HEADER)) == SQLITE_HEADER:
                    return True
        except OSError as err:
            if i == 0:  # the output itself exists but cannot be read: it cannot be checked
                raise ValueError(
                    f"cannot write {str(path)!r}: it exists and cannot be read ({err.strerror}) "
                    "to check that it is not a database; give another output file"
                ) from None
    return False


def check_target(
    path: str | os.PathLike,
    protect: tuple[str | os.PathLike, ...] = (),
    *,
    overwrite: bool = True,
) -> Path:
    """``path`` as an output file, or a ValueError if it is a folder; the same file as one in
    ``protect`` (an output's own input: a store is never replaced by its export or report);
    an SQLite database or a -wal/-shm/-journal file beside one (never replaced, even with
    ``overwrite``); or an existing file when ``overwrite`` is False. Call it before long work;
    :func:`atomic_write` calls it again."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"cannot write {str(path)!r}: it is a folder; give a file name")
    for kept in protect:
        if _same_file(path, Path(kept)):
            raise ValueError(
                f"cannot write {str(path)!r}: it is the input {str(kept)!r} itself; "
                "give another output file"
            )
    if _is_database(path):
        raise ValueError(
            f"cannot write {str(path)!r}: it is an SQLite database (or one's -wal/-shm/-journal"
            " file), which robustlab never replaces; give another output file"
        )
    if not overwrite and (path.exists() or path.is_symlink()):
        raise _exists(path)
    return path


def _exists(path: Path) -> ValueError:
    return ConfigError(
        "",
        f"cannot write {str(path)!r}: the file exists; give another output file, or set "
        "overwrite to replace it",
        ("overwrite",),
    )


def _place_new(tmp: str, path: Path) -> None:
    """Move ``tmp`` to ``path`` only if ``path`` does not exist: a hard link never replaces a
    file, even one that appeared after :func:`check_target` looked."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise _exists(path) from None
    except OSError:  # a file system without hard links: the check just made must do
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[str], object],
    *,
    protect: tuple[str | os.PathLike, ...] = (),
    overwrite: bool = True,
) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it to ``path``.

    The file gets mode 0644 (mkstemp makes 0600; results are meant to be shared). On any
    error the temporary file is removed and the old ``path``, if any, is left untouched.
    ``path`` is checked (:func:`check_target`) before and again after ``write``.

    Raises:
        ValueError: the folder does not exist or is not writable; ``path`` is a folder, the
            same file as one in ``protect`` (the input an output is made from: a store is
            never replaced by its own export or report), an SQLite database, or an existing
            file when ``overwrite`` is False.
    """
    path = check_target(path, protect, overwrite=overwrite)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise ValueError(f"cannot write {str(path)!r}: {err.strerror}") from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        check_target(path, protect, overwrite=overwrite)  # it may have appeared meanwhile
        if overwrite:
            os.replace(tmp, path)
        else:
            _place_new(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
