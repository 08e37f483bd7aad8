"""Losses on outputs g (N, k) and labels y, averaged over points (see TrainConfig)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["accuracy", "curvature_bound", "loss_value"]


def _targets(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if y.dtype in (torch.int64, torch.int32) and out.shape[1] > 1:
        return F.one_hot(y.long(), out.shape[1]).to(out.dtype)
    return y.reshape(out.shape[0], -1).to(out.dtype)


def loss_value(name: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Scalar loss: mse 0.5 mean ||g - y||^2, logistic mean log(1+e^{-y g}), cross-entropy."""
    if name == "mse":
        return 0.5 * (out - _targets(out, y)).pow(2).sum(1).mean()
    if name == "logistic":
        return F.softplus(-out.reshape(-1) * y.to(out.dtype)).mean()
    return F.cross_entropy(out, y.long())


def accuracy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction correct: sign(g) = y for one output and +-1 labels, argmax for classes.

    For regression targets (float labels that are not +-1) it returns NaN.
    """
    if out.shape[1] > 1:
        return (out.argmax(1) == y.long()).to(out.dtype).mean()
    acc = (torch.sign(out.reshape(-1)) == y.to(out.dtype)).to(out.dtype).mean()
    if not y.is_floating_point():
        return acc
    signs = ((y == 1) | (y == -1)).all()  # no data-dependent branch: vmap over y works
    return torch.where(signs, acc, torch.full_like(acc, float("nan")))


def curvature_bound(name: str) -> float:
    """Upper bound of the loss's second derivative in g: mse 1, logistic 1/4, softmax-CE 1/2."""
    return {"mse": 1.0, "logistic": 0.25, "cross_entropy": 0.5}[name]
