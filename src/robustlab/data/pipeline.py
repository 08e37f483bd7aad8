"""Turn a source's `Raw` arrays into a `Dataset`: check, subset, rescale, encode labels.

Order: validate -> ``classes`` subset (labels or groups of labels) -> ``n_train``/``n_test``
subset -> standardize (training-set mean/std) -> ``pca`` (top-k principal directions of the
centred training inputs) -> sphere projection -> ``in_dim`` check -> label encoding ->
``label_flip`` (binary training labels) -> label scale (``label_scale``: the real-valued
targets times c, last of all).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .dataset import Dataset
from .raw import STREAM_LABEL_FLIP, STREAM_SUB_TEST, STREAM_SUB_TRAIN, Raw, Request, rng


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
    """A numpy scalar as the matching python scalar, a group as a list of them (for
    JSON-friendly meta)."""
    if isinstance(value, list):  # a group of labels, one class
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def _labels(classes: list[Any]) -> list[Any]:
    """Every label of ``classes``, whose items are labels or groups (lists) of labels."""
    return [v for c in classes for v in (c if isinstance(c, list) else [c])]


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
    if classes is not None:  # two or more distinct labels or disjoint groups: DataConfig
        present = set(np.unique(raw.y_train).tolist())
        absent = [c for c in _labels(classes) if c not in present]
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
    mask = np.isin(y, np.asarray(_labels(classes)))
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


def _pca(x_train: np.ndarray, x_test: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Both splits on the top-k principal directions of the training inputs (option ``pca``).

    With mu = (1/n) sum_i x_i over the n training rows and the thin SVD of the centred
    training matrix X - 1 mu^T = U S V^T (s_1 >= s_2 >= ... >= 0), every input x, training
    or test, becomes z = V_k^T (x - mu), V_k = (v_1, ..., v_k) the first k right singular
    vectors (Pearson 1901; Jolliffe, *Principal Component Analysis*, 2002, sec. 3.5). Each
    v_j is signed so that its largest-magnitude entry (the first of equal ones) is positive,
    so z does not depend on the SVD's arbitrary signs. The training columns z_j have mean 0,
    are uncorrelated, and have variances s_j^2 / n, non-increasing in j; directions of zero
    variance (j beyond the rank of X - 1 mu^T, at most n - 1) are an arbitrary basis of the
    rest. Shapes: (n, d), (m, d) -> (n, k), (m, k).
    """
    n, d = x_train.shape
    if k > min(n, d):
        raise ValueError(
            f"pca={k} asks for more than min(n_train, d) = min({n}, {d}) principal "
            f"directions; use pca <= {min(n, d)}"
        )
    mean = x_train.mean(axis=0)
    _, _, vt = np.linalg.svd(x_train - mean, full_matrices=False)  # vt: (min(n, d), d)
    v = vt[:k]  # (k, d), unit rows: the largest |entry| is never 0
    v = v * np.sign(v[np.arange(k), np.argmax(np.abs(v), axis=1)])[:, None]
    return (x_train - mean) @ v.T, (x_test - mean) @ v.T


def _flips(n: int, task: str, q: float, seed: int) -> np.ndarray | None:
    """Which of the ``n`` training labels the ``label_flip`` option q flips: label i flips
    when u_i < q, u_i uniform on [0, 1) from the seeded stream ``STREAM_LABEL_FLIP`` (so
    B_i = [u_i < q] ~ Bernoulli(q), independently, and y_i -> (1 - 2 B_i) y_i). None for
    q = 0; a binary task only (nothing else has a sign to flip)."""
    if q == 0:
        return None
    if task != "binary":
        fix = (
            "keep two classes or two groups of labels (classes=[a, b] or [[a, ...], [b, ...]])"
            if task == "multiclass"
            else "regression targets have no sign to flip (the sphere data set's label_noise "
            "adds Gaussian noise to them)"
        )
        raise ValueError(f"label_flip={q:g} flips binary labels, but the task is {task}; {fix}")
    return rng(seed, STREAM_LABEL_FLIP).random(n) < q


def _encode(
    y: np.ndarray,
    task: str,
    classes: list[Any],
    dtype: torch.dtype,
    scale: float,
    flip: np.ndarray | None = None,
) -> torch.Tensor:
    """The targets as a tensor: binary s_i = +-1 (classes[0] -> -1, classes[1] -> +1, a
    group of labels being one class), times -1 where ``flip`` is true (the ``label_flip``
    draw, :func:`_flips`), or regression y; then times the ``label_scale`` c (``scale``;
    after label noise and flips, whichever drew them), in float64 before the cast to
    ``dtype``. Class indices for multiclass, where any c but 1 is refused."""
    if task == "regression":
        return torch.tensor(scale * y.astype(np.float64), dtype=dtype)
    index = np.zeros(len(y), dtype=np.int64)
    for i, c in enumerate(classes):
        index[np.isin(y, np.asarray(c)) if isinstance(c, list) else y == c] = i
    if task == "binary":  # classes[0] -> -c, [1] -> +c; a flipped label the other way
        sign = 2.0 * index - 1.0
        if flip is not None:
            sign[flip] = -sign[flip]
        return torch.tensor(scale * sign, dtype=dtype)
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
    flip = _flips(len(y_train), task, opts["label_flip"], req.seed)  # refused early if not binary
    if opts["standardize"]:
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        std[std == 0] = 1.0  # constant features (e.g. image borders) stay constant
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    if opts["pca"] is not None:
        x_train, x_test = _pca(x_train, x_test, opts["pca"])
        x_shape = (opts["pca"],)  # no longer an image: the model sees k features
    if sphere:
        x_train, x_test = _project(x_train, "train"), _project(x_test, "test")
    d = x_train.shape[1]
    # a sized source (sphere) drew its points at in_dim: pca may then lower d below it
    if req.in_dim is not None and req.in_dim != d and not raw.sized:
        after = f" (after pca={opts['pca']})" if opts["pca"] is not None else ""
        raise ValueError(
            f"in_dim={req.in_dim} does not match the data's input dimension {d}{after}; "
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
        y_train=_encode(y_train, task, found, dtype, opts["label_scale"], flip),
        x_test=torch.tensor(x_test, dtype=dtype),
        y_test=_encode(y_test, task, found, dtype, opts["label_scale"]),
        name=name,
        in_dim=d,
        n_classes=0 if task == "regression" else len(found),
        task=task,
        meta=meta,
        x_shape=x_shape,
    )
