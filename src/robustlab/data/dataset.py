"""The `Dataset` container returned by every loader."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

TASKS = ("binary", "multiclass", "regression")


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A train/test split of a supervised dataset, as tensors.

    Inputs are ``x_train`` (N, d) and ``x_test`` (M, d), flattened, floating point (float32
    unless ``dtype=torch.float64`` was asked for); ``x_shape`` is the shape of one input as
    the source has it (e.g. (1, 28, 28) for MNIST, (3, 32, 32) for CIFAR-10, (d,) for
    tables), and :meth:`inputs` returns a split in that shape, (N, *x_shape), for models
    that take images. Labels follow the task:

    - ``"binary"``: float tensor of shape (N,) with values in {-1.0, +1.0} (times the
      ``label_scale`` option c, default 1: {-c, +c}); ``n_classes == 2``.
    - ``"multiclass"``: int64 tensor of shape (N,) with class indices 0..C-1;
      ``n_classes == C``. ``meta["classes"][i]`` is the original label of index i.
    - ``"regression"``: float tensor of shape (N,) (times ``label_scale``); ``n_classes == 0``.

    ``meta`` is JSON-friendly (seed, resolved options, source, original class labels).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    name: str
    in_dim: int
    n_classes: int
    task: str
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    x_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}; got {self.task!r}")
        shape = (self.in_dim,) if self.x_shape is None else tuple(int(s) for s in self.x_shape)
        if math.prod(shape) != self.in_dim:
            raise ValueError(f"x_shape {shape} does not hold in_dim = {self.in_dim} values")
        object.__setattr__(self, "x_shape", shape)
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != 2 or x.shape[1] != self.in_dim:
                raise ValueError(
                    f"x_{split} must have shape (N, {self.in_dim}); got {tuple(x.shape)}"
                )
            if y.ndim != 1 or y.shape[0] != x.shape[0]:
                raise ValueError(
                    f"y_{split} must have shape ({x.shape[0]},) to match x_{split}; "
                    f"got {tuple(y.shape)}"
                )

    def inputs(self, split: str = "train") -> torch.Tensor:
        """The inputs of ``split`` ("train", "test" or "all": train then test) in their own
        shape: (N, *x_shape)."""
        parts = {"train": [self.x_train], "test": [self.x_test], "all": [self.x_train, self.x_test]}
        if split not in parts:
            raise ValueError(f"unknown split {split!r}; choices: train, test, all")
        x = torch.cat(parts[split]) if split == "all" else parts[split][0]
        return x.reshape(x.shape[0], *self.x_shape)

    @property
    def n_train(self) -> int:
        """Number of training examples."""
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test examples."""
        return int(self.x_test.shape[0])

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Dataset:
        """Return a copy on ``device`` with floating tensors cast to ``dtype``.

        ``dtype`` applies to the inputs and to float labels (binary, regression);
        multiclass labels stay int64. ``None`` keeps the current device/dtype.
        """
        if dtype is not None and not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point torch dtype; got {dtype}")

        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype if t.is_floating_point() else None)

        return dataclasses.replace(
            self,
            x_train=move(self.x_train),
            y_train=move(self.y_train),
            x_test=move(self.x_test),
            y_test=move(self.y_test),
            meta=dict(self.meta),
        )

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, task={self.task!r}, in_dim={self.in_dim}, "
            f"x_shape={self.x_shape}, "
            f"n_classes={self.n_classes}, n_train={self.n_train}, n_test={self.n_test}, "
            f"dtype={self.x_train.dtype}, device={self.x_train.device})"
        )
