"""Exporting a results store's rows to Parquet or CSV (``robustlab export``)."""

from __future__ import annotations

from pathlib import Path

from .._atomic import atomic_write, check_target
from ._store_read import StorePath, load

__all__ = ["EXPORT_FORMATS", "export"]

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
