"""What a source loader receives (`Request`) and returns (`Raw`), plus shared helpers."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Request:
    """The arguments of one `load` call, as a source loader sees them.

    ``target`` is the path or directory for file-backed sources ("" for built-ins);
    ``options`` holds every option of the source, defaults filled in.
    """

    target: str
    n_train: int | None
    n_test: int | None
    in_dim: int | None
    seed: int
    options: dict[str, Any]


@dataclasses.dataclass
class Raw:
    """Arrays as read from a source, before subsetting and label encoding.

    ``x_*`` are (N, ...) numeric arrays (flattened later), ``y_*`` are (N,) labels.
    ``classes`` lists the label values in index order when the source knows them
    (otherwise they are inferred); ``regression`` marks real-valued targets; ``sized``
    says the source generated the data to the request: exactly ``n_train``/``n_test``
    examples, of dimension ``in_dim`` where given (so ``in_dim`` is not checked after a
    ``pca`` that lowers the dimension).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    classes: list[Any] | None = None
    regression: bool = False
    sized: bool = False
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


def rng(seed: int, stream: int) -> np.random.Generator:
    """An independent numpy generator for (seed, stream): streams never share draws."""
    return np.random.default_rng([seed, stream])


# Stream ids, so that e.g. changing n_train never changes the test set. (The sphere source
# draws its own on 10-15: synthetic.py.)
STREAM_SPLIT, STREAM_SUB_TRAIN, STREAM_SUB_TEST = 1, 2, 3
STREAM_LABEL_FLIP = 4  # the ``label_flip`` option's coins, one per training label


def split(
    x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeded random train/test split of (x, y): returns x_train, y_train, x_test, y_test.

    ``round(test_fraction * N)`` examples go to the test set; at least one stays in each.
    """
    if not isinstance(test_fraction, (int, float)) or not 0.0 < test_fraction < 1.0:
        raise ValueError(
            f"test_fraction must be a number strictly between 0 and 1; got {test_fraction!r}"
        )
    n = len(x)
    if len(y) != n:
        raise ValueError(f"x has {n} rows but y has {len(y)} labels; they must match")
    if n < 2:
        raise ValueError(f"cannot split {n} example(s) into train and test; need at least 2")
    n_test = min(max(round(test_fraction * n), 1), n - 1)
    perm = rng(seed, STREAM_SPLIT).permutation(n)
    test, train = perm[:n_test], perm[n_test:]
    return x[train], y[train], x[test], y[test]


def missing_file(kind: str, filename: str, directory: str, url: str) -> ValueError:
    """The error for a missing data file: says which file, where, and how to get it."""
    return ValueError(
        f"{kind} file {filename} not found in {directory}; download it from {url} "
        "and place it there"
    )
