"""Losses, their gradients and accuracies on the outputs of E stacked models, (E, N, k).

The batched step's heads (the ``batched`` field of each :class:`~.losses.Loss`): per model
the same numbers as :func:`~.losses.loss_value` and :func:`~.losses.accuracy` on that
model's (N, k) outputs, with dLoss/dg written out:

- mse, 0.5 mean_n ||g_n - t_n||^2: (g - t) / N (t one-hot for integer labels, k > 1);
- logistic, mean_n log(1 + exp(-y_n g_n)): -y sigmoid(-y g) / N;
- cross-entropy, mean_n -log softmax(g_n)_{y_n}: (softmax(g) - onehot(y)) / N.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["accuracy", "cross_entropy", "labels_valid", "logistic", "mse", "targets"]


def targets(y: torch.Tensor, k: int, dtype, per_model: bool) -> torch.Tensor:
    """mse targets broadcastable to (E, N, k): one-hot for integer class labels when k > 1
    (as ``losses._targets``), else y as (..., N, k)."""
    if y.dtype in (torch.int64, torch.int32) and k > 1:
        return F.one_hot(y.long(), k).to(dtype)
    lead = y.shape[:2] if per_model else y.shape[:1]
    return y.reshape(*lead, -1).to(dtype)


def mse(g: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None):
    """0.5 mean_n ||g - t||^2 per model (E,) and its gradient (g - t) / N (E, N, k)."""
    r = g - t
    return 0.5 * r.square().sum(2).mean(1), r.div_(g.shape[1])


def logistic(g: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None = None):
    """mean_n log(1 + exp(-y g)) per model (k = 1) and its gradient -y sigmoid(-y g) / N."""
    yy = y.to(g.dtype).expand(g.shape[:2]).unsqueeze(2)
    m = -yy * g
    return F.softplus(m).mean((1, 2)), torch.sigmoid(m).mul_(yy).div_(-g.shape[1])


def cross_entropy(g: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None = None):
    """mean_n -log softmax(g)_y per model and its gradient (softmax(g) - onehot(y)) / N."""
    logp = torch.log_softmax(g, 2)
    idx = y.long().expand(g.shape[:2]).unsqueeze(2)
    loss = -logp.gather(2, idx).squeeze(2).mean(1)
    grad = logp.exp_().scatter_add_(2, idx, torch.full_like(idx, -1, dtype=g.dtype))
    return loss, grad.div_(g.shape[1])


def accuracy(g: torch.Tensor, y: torch.Tensor, valid) -> torch.Tensor:
    """Per-model :func:`~.losses.accuracy` of g (E, N, k): argmax for classes, sign(g) =
    sign(y) for one output, NaN where ``valid`` (a bool, or (E,) per model) is False."""
    if g.shape[2] > 1:
        return (g.argmax(2) == y.long()).to(g.dtype).mean(1)
    acc = (torch.sign(g[..., 0]) == torch.sign(y.to(g.dtype))).to(g.dtype).mean(1)
    if isinstance(valid, torch.Tensor):
        return torch.where(valid, acc, torch.full_like(acc, float("nan")))
    return acc if valid else torch.full_like(acc, float("nan"))


def labels_valid(y: torch.Tensor, per_model: bool):
    """Whether labels allow a sign accuracy (ints, or floats all +-c for one c > 0: binary
    labels times a label scale): a bool, or (E,)."""
    if not y.is_floating_point():
        return True
    size = y.abs().reshape(y.shape[0], -1) if per_model else y.abs().reshape(1, -1)
    ok = ((size == size.amax(1, keepdim=True)) & (size > 0)).all(1)
    return bool(ok.all()) if not per_model else ok
