"""Losses as small objects in one registry: value, batched gradient, curvature, needs.

Each :class:`Loss` averages over points on outputs g (N, k) and labels y:

- ``mse``: 0.5 mean_n ||g_n - t_n||^2 (t one-hot for integer labels with k > 1, else y);
- ``logistic``: mean_n log(1 + exp(-y_n g_n)), one output, y in {-1, +1};
- ``cross_entropy``: mean_n -log softmax(g_n)_{y_n}, k >= 2 outputs, integer labels.

Code elsewhere asks the loss (``get_loss(name).value(...)``, ``.curvature``,
``.out_dim(...)``), never tests its name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .._checks import _choice
from . import batched_losses as _b

__all__ = ["LOSSES", "Loss", "accuracy", "curvature_bound", "get_loss", "loss_value"]


def _targets(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if y.dtype in (torch.int64, torch.int32) and out.shape[1] > 1:
        return F.one_hot(y.long(), out.shape[1]).to(out.dtype)
    return y.reshape(out.shape[0], -1).to(out.dtype)


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 0.5 * (out - _targets(out, y)).pow(2).sum(1).mean()


def _logistic(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.softplus(-out.reshape(-1) * y.to(out.dtype)).mean()


def _cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out, y.long())


@dataclass(frozen=True)
class Loss:
    """A training loss.

    Attributes:
        name: registry name.
        value: ``(g (N, k), y) -> scalar`` loss.
        batched: ``(g (E, N, k), y, t) -> (loss (E,), dLoss/dg (E, N, k))`` for the batched
            MLP step (:mod:`.batched_losses`; ``t`` the mse targets, else None).
        curvature: an upper bound of the loss's second derivative in g (used by
            ``lr="auto"``): mse 1, logistic 1/4, softmax cross-entropy 1/2.
        outputs: ``"any"``, ``"one"`` (one output, float +-1 labels) or ``"classes"``
            (k >= 2 outputs, integer labels).
        regression_targets: whether ``batched`` takes targets t (one-hot for class labels).
    """

    name: str
    value: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    batched: Callable
    curvature: float
    outputs: str = "any"
    regression_targets: bool = False

    def check(self, k: int, y: torch.Tensor) -> None:
        """Raise ValueError when a network with k outputs cannot fit labels y with this loss."""
        if self.outputs == "one" and (k != 1 or not y.is_floating_point()):
            raise ValueError(f"loss {self.name!r} needs one output and labels in {{-1, +1}}")
        if self.outputs == "classes" and (k < 2 or y.is_floating_point()):
            raise ValueError(f"loss {self.name!r} needs k >= 2 outputs and integer class labels")

    def out_dim(self, n: int) -> int:
        """Outputs a network needs for ``n`` natural outputs (cross-entropy: at least 2)."""
        return max(n, 2) if self.outputs == "classes" else n


_REGISTRY: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss("mse", _mse, _b.mse, 1.0, regression_targets=True),
        Loss("logistic", _logistic, _b.logistic, 0.25, "one"),
        Loss("cross_entropy", _cross_entropy, _b.cross_entropy, 0.5, "classes"),
    )
}
LOSSES: tuple[str, ...] = tuple(_REGISTRY)


def get_loss(name: str) -> Loss:
    """The registered loss ``name``."""
    return _REGISTRY[_choice(LOSSES)("loss", name)]


def loss_value(name: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Scalar loss ``name`` of outputs ``out`` (N, k) on labels ``y`` (see :class:`Loss`)."""
    return get_loss(name).value(out, y)


def curvature_bound(name: str) -> float:
    """Upper bound of the loss's second derivative in g: mse 1, logistic 1/4, softmax-CE 1/2."""
    return get_loss(name).curvature


def accuracy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction correct: sign(g) = sign(y) for one output and binary labels +-c (+-1 times
    any label scale c > 0), argmax for classes.

    For regression targets (float labels of more than one magnitude) it returns NaN.
    """
    if out.shape[1] > 1:
        return (out.argmax(1) == y.long()).to(out.dtype).mean()
    y = y.to(out.dtype)
    acc = (torch.sign(out.reshape(-1)) == torch.sign(y)).to(out.dtype).mean()
    size = y.abs()
    # no data-dependent branch: vmap over y works
    binary = ((size == size.amax()) & (size > 0)).all()
    return torch.where(binary, acc, torch.full_like(acc, float("nan")))
