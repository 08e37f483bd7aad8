"""User data files: ``.npz`` archives, ``.pt`` tensor files and ``.csv`` tables."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import first_line
from .raw import Raw, Request, split

NPZ_OPTIONS = {"test_fraction": 0.2}
PT_OPTIONS = {"test_fraction": 0.2}
CSV_OPTIONS = {"test_fraction": 0.2, "label_column": -1, "header": None, "delimiter": ","}
SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _existing(target: str) -> Path:
    path = Path(target).expanduser()
    if not path.is_file():
        raise ValueError(f"data file {target} not found; check the path (cwd: {Path.cwd()})")
    return path


def load_npz(req: Request) -> Raw:
    """A ``.npz`` archive with keys ``x_train, y_train, x_test, y_test`` or ``x, y``.

    ``x*`` are (N, ...) numeric arrays (flattened to (N, d)), ``y*`` are (N,) labels.
    With only ``x, y`` a seeded random ``test_fraction`` (default 0.2) is held out.
    Object arrays are refused (``allow_pickle=False``).
    """
    path = _existing(req.target)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as err:  # e.g. object arrays, which would need pickle
        raise ValueError(f"cannot read {path} as a plain .npz archive: {err}") from err
    parts = _split_arrays(arrays, path, req.options["test_fraction"], req.seed)
    return Raw(*parts, source=str(path.resolve()))


def _split_arrays(arrays: dict[str, Any], path: Path, test_fraction: float, seed: int) -> list:
    if all(key in arrays for key in SPLIT_KEYS):
        return [arrays[key] for key in SPLIT_KEYS]
    if "x" in arrays and "y" in arrays:
        return list(split(arrays["x"], arrays["y"], test_fraction, seed))
    raise ValueError(
        f"{path} has keys {sorted(arrays)}; expected x_train, y_train, x_test, y_test or x, y"
    )


def read_pt(path: Path) -> object:
    """``torch.load(path, weights_only=True)``: tensors and plain containers, never objects."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        first = first_line(err)
        if first.startswith("Weights only load failed"):
            first = "it holds Python objects besides tensors, which are never unpickled"
        raise ValueError(
            f"cannot read {path} as a tensor file (torch.load with weights_only=True): "
            f"{first[:200]}"
        ) from None


def load_pt(req: Request) -> Raw:
    """A ``.pt`` file saved with ``torch.save`` holding a dict of tensors (or arrays) with
    keys ``x_train, y_train, x_test, y_test`` or ``x, y``, as for ``.npz``.

    Read with ``weights_only=True``: a file holding pickled objects is refused. Inputs keep
    their shape (N, ...) as ``x_shape``.
    """
    path = _existing(req.target)
    obj = read_pt(path)
    if not isinstance(obj, dict):
        raise ValueError(
            f"{path} holds a {type(obj).__name__}; rl.data.load needs a dict with x and y "
            "(inputs alone can be measured with robustlab measure --data)"
        )
    arrays = {k: v.numpy() if hasattr(v, "numpy") else np.asarray(v) for k, v in obj.items()}
    parts = _split_arrays(arrays, path, req.options["test_fraction"], req.seed)
    return Raw(*parts, source=str(path.resolve()))


def load_npy(req: Request) -> Raw:
    """A ``.npy`` file holds one array: inputs without labels, which P needs no labels for,
    but a data set does."""
    raise ValueError(
        f"{req.target} is a .npy file: inputs without labels; measure a model on it with "
        "robustlab measure --data FILE.npy (or rl.data.load_points), or save x and y "
        "together in a .npz or .pt file for rl.data.load"
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_rows(path: Path, delimiter: str) -> list[list[str]]:
    with path.open(newline="") as f:
        rows = [[cell.strip() for cell in row] for row in csv.reader(f, delimiter=delimiter)]
    rows = [row for row in rows if any(row)]  # skip blank lines
    if not rows:
        raise ValueError(f"{path} is empty; it needs rows of features and a label")
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"{path} line {i + 1} has {len(row)} fields, expected {width}")
    if width < 2:
        raise ValueError(f"{path} has {width} column; it needs features and a label column")
    return rows


def _has_header(rows: list[list[str]], header: Any) -> bool:
    if header is None:  # auto: a non-numeric field above a numeric one is a column name
        if len(rows) < 2:
            return False
        return any(
            not _is_number(a) and _is_number(b) for a, b in zip(rows[0], rows[1], strict=True)
        )
    return header


def _label_index(names: list[str] | None, width: int, label_column: Any) -> int:
    if isinstance(label_column, str) and not isinstance(label_column, bool):
        if names is None or label_column not in names:
            found = f"columns are {names}" if names else "the file has no header row"
            raise ValueError(f"label_column {label_column!r} not found; {found}")
        return names.index(label_column)
    if isinstance(label_column, bool) or not isinstance(label_column, int):
        raise ValueError(f"label_column must be a column name or index; got {label_column!r}")
    if not -width <= label_column < width:
        raise ValueError(f"label_column={label_column} is out of range for {width} columns")
    return label_column % width


def _labels(values: list[str]) -> np.ndarray:
    if not all(_is_number(v) for v in values):
        return np.asarray(values)  # class names, e.g. "cat"
    y = np.asarray([float(v) for v in values])
    if np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        return y.astype(np.int64)  # integer-valued: class labels
    return y


def load_csv(req: Request) -> Raw:
    """A ``.csv`` table: one example per row, numeric features, one label column.

    The label is the last column unless ``label_column`` (a name or an index) says
    otherwise; the header row is detected (``header=None``) or forced (True/False).
    Labels that are all integers or non-numeric strings are classes; other numbers are
    regression targets (force with ``task="regression"``). A seeded random
    ``test_fraction`` (default 0.2) is held out as the test set.
    """
    path = _existing(req.target)
    opts = req.options
    rows = _read_rows(path, opts["delimiter"])
    names = rows[0] if _has_header(rows, opts["header"]) else None
    body = rows[1:] if names is not None else rows
    if not body:
        raise ValueError(f"{path} has a header but no data rows")
    label = _label_index(names, len(rows[0]), opts["label_column"])
    features = [j for j in range(len(rows[0])) if j != label]
    x = np.empty((len(body), len(features)))
    for i, row in enumerate(body):
        for k, j in enumerate(features):
            if not _is_number(row[j]):
                column = names[j] if names is not None else j
                raise ValueError(
                    f"{path} row {i + 1}, column {column!r}: feature {row[j]!r} is not a "
                    "number; features must be numeric (set label_column if this is the label)"
                )
            x[i, k] = float(row[j])
    y = _labels([row[label] for row in body])
    parts = split(x, y, opts["test_fraction"], req.seed)
    column_name = names[label] if names is not None else label
    return Raw(
        *parts,
        source=str(path.resolve()),
        regression=y.dtype.kind == "f",
        meta={"label_column": column_name},
    )
