"""Turn a source's `Raw` arrays into a `Dataset`: check, subset, rescale, encode labels.

Order: validate -> ``classes`` subset -> ``n_train``/``n_test`` subset -> standardize
(training-set mean/std) -> sphere projection -> ``in_dim`` check -> label encoding -> label
scale (``label_scale``: the real-valued targets times c, last of all).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .dataset import Dataset
from .raw import STREAM_SUB_TEST, STREAM_SUB_TRAIN, Raw, Request, rng


def _validate(raw: Raw) -> tuple[int, ...]:
    """Check and flatten the arrays in place; returns the shape of one input, x[0].shape."""
    x_shape = tuple(int(s) for s in raw.x_train.shape[1:])
    for split in ("train", "test"):
        x, y = getattr(raw, f"x_{split}"), getattr(raw, f"y_{split}")
        if x.ndim < 2:
            raise ValueError(f"x_{split} must have shape (N, d); got shape {x.shape}")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"y_{split} must have shape (N,); got shape {y.shape}")
        if len(x) != len(y):
            raise ValueError(
                f"x_{split} has {len(x)} rows but y_{split} has {len(y)} labels; they must match"
            )
        if x.dtype.kind not in "biuf":
            raise ValueError(f"x_{split} must be numeric; got dtype {x.dtype}")
        x = x.reshape(len(x), -1).astype(np.float64)  # (N, ...) -> (N, d), copies
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        if bad:
            raise ValueError(f"x_{split} contains {bad} NaN/inf values; clean or drop those rows")
        if y.dtype.kind in "fc" and not np.all(np.isfinite(y)):
            bad = int(np.size(y) - np.count_nonzero(np.isfinite(y)))
            raise ValueError(f"y_{split} contains {bad} NaN/inf labels; clean or drop those rows")
        setattr(raw, f"x_{split}", x)
        setattr(raw, f"y_{split}", np.array(y))
    if raw.x_train.shape[1] != raw.x_test.shape[1]:
        raise ValueError(
            f"x_train has {raw.x_train.shape[1]} features but x_test has "
            f"{raw.x_test.shape[1]}; they must match"
        )
    return x_shape


def _plain(value: Any) -> Any:
    """A numpy scalar as the matching python scalar (for JSON-friendly meta)."""
    return value.item() if isinstance(value, np.generic) else value


def _resolve_task(raw: Raw, task: str, classes: Any) -> tuple[str, list[Any]]:
    """The final task and the ordered list of original class labels ([] for regression)."""
    if task == "auto":
        task = "regression" if raw.regression else "classification"
    if task == "regression":
        if classes is not None:
            raise ValueError("classes cannot be used with task='regression'; drop one of them")
        if raw.y_train.dtype.kind not in "biuf":
            raise ValueError("task='regression' needs numeric labels; these are class names")
        return task, []
    if raw.regression:
        raise ValueError(
            f"labels are real-valued; task={task!r} needs class labels (use task='regression')"
        )
    if classes is not None:  # two or more distinct labels: checked by DataConfig
        present = set(np.unique(raw.y_train).tolist())
        absent = [c for c in classes if c not in present]
        if absent:
            raise ValueError(
                f"classes {absent} not present in the training labels; "
                f"available: {sorted(present, key=str)}"
            )
        found = list(classes)
    elif raw.classes is not None:
        found = list(raw.classes)
    else:
        found = np.unique(np.concatenate([raw.y_train, raw.y_test])).tolist()
    if len(found) < 2:
        raise ValueError(f"the data has a single class {found}; classification needs >= 2")
    if task == "classification":
        task = "binary" if len(found) == 2 else "multiclass"
    if task == "binary" and len(found) != 2:
        raise ValueError(f"task='binary' needs exactly 2 classes; got {len(found)} (set classes=)")
    return task, [_plain(c) for c in found]


def _keep_classes(x: np.ndarray, y: np.ndarray, classes: list[Any]) -> tuple[np.ndarray, ...]:
    mask = np.isin(y, np.asarray(classes))
    return x[mask], y[mask]


def _subset(x: np.ndarray, y: np.ndarray, n: int | None, key: str, req: Request) -> tuple:
    if n is None:
        return x, y
    if n > len(x):  # a positive integer: checked by DataConfig
        raise ValueError(
            f"{key}={n} is larger than the {len(x)} examples available; use {key} <= {len(x)}"
        )
    if req.options["subset"] == "first":
        index = np.arange(n)
    else:
        stream = STREAM_SUB_TRAIN if key == "n_train" else STREAM_SUB_TEST
        index = rng(req.seed, stream).permutation(len(x))[:n]
    return x[index], y[index]


def _project(x: np.ndarray, split: str) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(
            f"cannot project x_{split} onto the sphere: {int(np.sum(norms == 0))} rows are all "
            "zero; drop them or use sphere=False"
        )
    return x / norms


def _encode(
    y: np.ndarray, task: str, classes: list[Any], dtype: torch.dtype, scale: float
) -> torch.Tensor:
    """The targets as a tensor: binary +-1 or regression y, times the ``label_scale`` c
    (``scale``; after label noise and flips, which the source drew), in float64 before the
    cast to ``dtype``; class indices for multiclass, where any c but 1 is refused."""
    if task == "regression":
        return torch.tensor(scale * y.astype(np.float64), dtype=dtype)
    index = np.zeros(len(y), dtype=np.int64)
    for i, c in enumerate(classes):
        index[y == c] = i
    if task == "binary":  # classes[0] -> -c, [1] -> +c
        return torch.tensor(scale * (2.0 * index - 1.0), dtype=dtype)
    if scale != 1:
        raise ValueError(
            f"label_scale: multiclass targets are class indices and cannot be scaled (got "
            f"{scale:g}); keep two classes (classes=[a, b]) or use task='regression'"
        )
    return torch.tensor(index, dtype=torch.int64)


def build(name: str, raw: Raw, req: Request, classes: Any, sphere: bool) -> Dataset:
    """Apply the common options to ``raw`` and return the final `Dataset`."""
    x_shape = _validate(raw)
    opts = req.options
    task, found = _resolve_task(raw, opts["task"], classes)
    parts = {s: (getattr(raw, f"x_{s}"), getattr(raw, f"y_{s}")) for s in ("train", "test")}
    if classes is not None:
        parts = {s: _keep_classes(*xy, found) for s, xy in parts.items()}
    if not raw.sized:
        parts = {s: _subset(*xy, getattr(req, f"n_{s}"), f"n_{s}", req) for s, xy in parts.items()}
    (x_train, y_train), (x_test, y_test) = parts["train"], parts["test"]
    if opts["standardize"]:
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        std[std == 0] = 1.0  # constant features (e.g. image borders) stay constant
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    if sphere:
        x_train, x_test = _project(x_train, "train"), _project(x_test, "test")
    d = x_train.shape[1]
    if req.in_dim is not None and req.in_dim != d:
        raise ValueError(
            f"in_dim={req.in_dim} does not match the data's input dimension {d}; "
            f"omit in_dim or pass in_dim={d}"
        )
    dtype = torch.float64 if opts["dtype"] == "float64" else torch.float32
    meta = {
        "seed": req.seed,
        "source": raw.source,
        "options": dict(opts),
        "classes": found,
        "n_train": len(x_train),
        "n_test": len(x_test),
        "sphere": bool(sphere),
        **raw.meta,
    }
    return Dataset(
        x_train=torch.tensor(x_train, dtype=dtype),
        y_train=_encode(y_train, task, found, dtype, opts["label_scale"]),
        x_test=torch.tensor(x_test, dtype=dtype),
        y_test=_encode(y_test, task, found, dtype, opts["label_scale"]),
        name=name,
        in_dim=d,
        n_classes=0 if task == "regression" else len(found),
        task=task,
        meta=meta,
        x_shape=x_shape,
    )
