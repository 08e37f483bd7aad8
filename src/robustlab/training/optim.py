"""Optimizers as small objects in one registry, on stacked parameter dicts {name: (E, ...)}.

- ``gd``: w -= lr g (full batch; the only one ``lr_backoff`` applies to);
- ``sgd``: b = mu b + g, w -= lr b (minibatches, optional momentum mu);
- ``adam``: Kingma & Ba (2015) with bias correction; ``lr="auto"`` is 1e-3.

Code elsewhere asks the optimizer (``get_optimizer(name).auto_lr``, ``.full_batch``), never
tests its name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .._checks import _choice

__all__ = ["OPTIMIZERS", "Optimizer", "get_optimizer", "init_state", "update"]

BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8  # Kingma & Ba (2015) defaults


def _gd(g, state, key, cfg, t):
    return g


def _sgd(g, state, key, cfg, t):
    return state["buf"][key].mul_(cfg.momentum).add_(g)


def _adam(g, state, key, cfg, t):
    m, v = state["m"][key], state["v"][key]
    m.mul_(BETA1).add_(g, alpha=1 - BETA1)
    v.mul_(BETA2).addcmul_(g, g, value=1 - BETA2)
    mhat = m / (1 - BETA1 ** (t + 1))
    vhat = v / (1 - BETA2 ** (t + 1))
    return mhat / (vhat.sqrt() + ADAM_EPS)


@dataclass(frozen=True)
class Optimizer:
    """A first-order optimizer.

    Attributes:
        name: registry name.
        direction: ``(g, state, key, cfg, t) -> step`` for one parameter tensor (the update
            is w -= lr step); it may update ``state`` in place.
        state_keys: the per-parameter buffers it keeps (zeros at t = 0).
        auto_lr: the step ``lr="auto"`` gives, or None: 1 / lambda_max of the Gauss-Newton
            matrix at init (:func:`~.lr.auto_lr`).
        full_batch: whether every step uses the whole training set (``batch_size`` ignored);
            ``lr_backoff`` applies only to it (GD at a stable step never raises the loss).
    """

    name: str
    direction: Callable
    state_keys: tuple[str, ...] = ()
    auto_lr: float | None = None
    full_batch: bool = False


_REGISTRY: dict[str, Optimizer] = {
    o.name: o
    for o in (
        Optimizer("gd", _gd, full_batch=True),
        Optimizer("sgd", _sgd, ("buf",)),
        Optimizer("adam", _adam, ("m", "v"), auto_lr=1e-3),
    )
}
OPTIMIZERS: tuple[str, ...] = tuple(_REGISTRY)


def get_optimizer(name: str) -> Optimizer:
    """The registered optimizer ``name``."""
    return _REGISTRY[_choice(OPTIMIZERS)("optimizer", name)]


def init_state(optimizer: str, params: dict[str, torch.Tensor]) -> dict:
    """Zero buffers (sgd momentum; adam first/second moments); nothing for gd."""
    keys = get_optimizer(optimizer).state_keys
    return {s: {k: torch.zeros_like(v) for k, v in params.items()} for s in keys}


def update(cfg, params, grads, state, lrs: torch.Tensor, active: torch.Tensor, t: int):
    """One step of ``cfg.optimizer`` for every model whose ``active`` flag is set; the others
    keep their weights.

    ``lrs`` and ``active`` have shape (E,); ``active`` lives on the CPU (no device sync). When
    every model is active the tensors of ``params`` are updated in place (the same arithmetic
    as the masked path, without its copy).
    """
    direction = get_optimizer(cfg.optimizer).direction
    new = {}
    every = bool(active.all())
    mask = None if every else active.to(lrs.device)
    with torch.no_grad():
        for k, p in params.items():
            shape = (-1,) + (1,) * (p.ndim - 1)
            lr = lrs.reshape(shape)
            step = direction(grads[k], state, k, cfg, t)
            if every:
                new[k] = p.sub_(lr * step)
            else:
                new[k] = torch.where(mask.reshape(shape), p - lr * step, p)
    return new, state
