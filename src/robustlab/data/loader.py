"""`load`: the single entry point of the data layer."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .._checks import FrozenMap
from .config import DataConfig
from .dataset import Dataset


def load(
    name: str | os.PathLike[str],
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    in_dim: int | None = None,
    classes: Sequence[Any] | None = None,
    sphere: bool = False,
    seed: int = 0,
    **options: Any,
) -> Dataset:
    """Load a dataset by name and return it as tensors (see `Dataset` for conventions).

    ``name``: ``"sphere"``, ``"mnist1d"``, ``"digits"`` (see `datasets()`),
    ``"mnist:DIR"`` / ``"cifar10:DIR"`` (standard files in a local directory), or a path
    to a ``.npz`` / ``.pt`` (tensors, read with weights_only=True) / ``.csv`` file. Nothing
    is ever downloaded. Inputs come flattened (N, d); ``Dataset.x_shape`` and
    ``Dataset.inputs(split)`` give them in their own shape (N, C, H, W) for image models.

    Labels: two classes -> float (N,) in {-1.0, +1.0}; more -> int64 (N,) indices
    0..C-1; regression -> float (N,). ``classes=[a, b]`` keeps those two classes with
    a -> -1 and b -> +1; ``classes=[a, b, c, ...]`` keeps those, indexed in that order.
    A class may be a group of labels: ``classes=[[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]`` keeps
    every listed label, those of group i being class i (here digits 0-4 -> -1, 5-9 -> +1);
    groups are non-empty and disjoint, and every label must occur in the training labels.
    ``meta["classes"]`` records the groups as lists.

    ``n_train`` / ``n_test``: keep that many examples, a seeded random subset (or the
    first ones with ``subset="first"``); for ``sphere`` they are the sample sizes
    (default 1000 each). ``in_dim``: the sphere's dimension d (default 10); for other
    data, an error if the data's dimension (k with ``pca=k``) differs.
    ``standardize=True`` rescales each feature by the training-set mean/std. ``pca=k`` (an
    integer 1 <= k <= min(n_train, d); default None, off) then centres both splits on the
    training mean mu and projects them on the top-k principal directions of the centred
    training inputs: z = V_k^T (x - mu), V_k the first k right singular vectors of
    X_train - 1 mu^T, each signed so its largest-magnitude entry is positive; d becomes k
    and ``x_shape`` (k,). Then ``sphere=True`` divides each (flattened) input by its L2
    norm (off by default, for ``digits`` too: only the ``sphere`` data set is on the sphere
    without it). ``dtype=torch.float64`` gives float64 tensors. ``task`` is ``"auto"`` or
    forces ``"binary"``, ``"multiclass"`` or ``"regression"``.
    ``label_flip=q`` (a number in [0, 1), default 0) flips each *training* label of a binary
    task independently with probability q, y_i -> -y_i, from its own seeded stream (the
    same seed flips the same labels); test labels are never flipped, and a multiclass or
    regression task refuses q > 0. It acts on every data set, besides the ``sphere`` data
    set's own ``label_noise``.
    ``label_scale=c`` (a positive number, default 1) multiplies the training and test targets
    by c after everything else (label noise and flips included): binary labels become
    {-c, +c}, regression targets c y. Multiclass targets are class indices: any c other than
    1 raises ValueError there.

    Other ``options`` depend on the dataset; an unknown key raises ValueError listing
    the allowed ones. Every bad input raises ValueError naming the problem and the fix:
    the arguments are checked by :class:`~.config.DataConfig` before any data is read.
    The same arguments (including ``seed``) always give identical tensors.
    """
    options = FrozenMap(options)
    return DataConfig(name, classes, n_train, n_test, in_dim, sphere, seed, options).load()
