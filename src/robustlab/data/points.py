"""Points to measure a model on: any data file, labelled or not, in the inputs' own shape."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .files import read_pt
from .loader import load

__all__ = ["load_points"]

SPLITS = ("train", "test", "all")


def _unlabelled(path: Path) -> tuple[np.ndarray | torch.Tensor, object] | None:
    """(x, y or None) of a file that is not a full data set, None for one that is."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:  # mapped first: a header that claims more than the file holds allocates nothing
            return np.array(np.load(path, mmap_mode="r", allow_pickle=False)), None
        except (OSError, ValueError, EOFError) as err:  # EOFError: an empty file
            raise ValueError(f"cannot read {str(path)!r} as a plain .npy array: {err}") from None
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                if set(z.files) == {"x"}:
                    return z["x"], None
        except (OSError, ValueError, EOFError) as err:
            raise ValueError(f"cannot read {str(path)!r}: {err}") from None
        return None
    if suffix == ".pt":
        obj = read_pt(path)
        if isinstance(obj, torch.Tensor):
            return obj, None
        if isinstance(obj, dict) and set(obj) == {"x"}:
            return obj["x"], None
    return None


def load_points(
    path: str | os.PathLike,
    *,
    split: str = "all",
    input_shape: Sequence[int] | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Inputs (N, ...) and, when the file has them, labels (N,) for measuring a model.

    ``path``: a ``.npy`` array or a ``.pt`` tensor (inputs only), a ``.npz``/``.pt`` holding
    only ``x``, or any data set :func:`robustlab.data.load` reads (labelled; ``split``
    "train", "test" or "all" picks its rows; the random split of an ``x, y`` file uses
    ``seed``). ``.pt`` files are read with ``weights_only=True``. Inputs keep the shape they
    have in the file (a data set's ``x_shape``), or take ``input_shape`` (one input's shape,
    e.g. (1, 28, 28), or (784,) to flatten).
    """
    path = Path(path)
    if not path.is_file() and path.suffix.lower() in (".npy", ".npz", ".pt", ".csv"):
        raise ValueError(f"data file {str(path)!r} not found")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choices: {', '.join(SPLITS)}")
    found = _unlabelled(path) if path.is_file() else None
    if found is not None:
        x, y = found
        numeric = x.dtype.kind in "biuf" if isinstance(x, np.ndarray) else not x.is_complex()
        if x.ndim < 2 or not numeric:
            raise ValueError(
                f"{str(path)!r}: x must be a numeric array of shape (N, ...), got shape "
                f"{tuple(x.shape)} of {x.dtype}"
            )
        x = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
        x = x if x.is_floating_point() else x.float()
    else:
        ds = load(os.fspath(path), seed=seed)
        x, y = ds.inputs(split), {"train": ds.y_train, "test": ds.y_test}.get(split)
        if y is None:
            y = torch.cat([ds.y_train, ds.y_test])
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
        if math.prod(shape) != x[0].numel():
            raise ValueError(
                f"input shape {shape} holds {math.prod(shape)} values, but each input of "
                f"{str(path)!r} has {x[0].numel()} (shape {tuple(x.shape[1:])})"
            )
        x = x.reshape(x.shape[0], *shape)
    return x, y
