"""Atomic file writes: a reader (or a killed run) never sees half a file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "check_target"]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_target(path: str | os.PathLike, protect: tuple[str | os.PathLike, ...] = ()) -> Path:
    """``path`` as an output file: refused (ValueError) if it is a folder or the same file
    as one in ``protect`` (an output's own input: a store is never replaced by its export
    or report). Call it before long work; :func:`atomic_write` calls it again."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"cannot write {str(path)!r}: it is a folder; give a file name")
    for kept in protect:
        if _same_file(path, Path(kept)):
            raise ValueError(
                f"cannot write {str(path)!r}: it is the input {str(kept)!r} itself; "
                "give another output file"
            )
    return path


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[str], object],
    *,
    protect: tuple[str | os.PathLike, ...] = (),
) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    The file gets mode 0644 (mkstemp makes 0600; results are meant to be shared). On any
    error the temporary file is removed and the old ``path``, if any, is left untouched.

    Raises:
        ValueError: the folder does not exist or is not writable; ``path`` is a folder, or
            the same file as one in ``protect`` (the input an output is made from: a
            store is never replaced by its own export or report).
    """
    path = check_target(path, protect)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise ValueError(f"cannot write {str(path)!r}: {err.strerror}") from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
