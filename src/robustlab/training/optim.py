"""Functional optimizers on stacked parameter dicts {name: (E, ...)} with per-model steps."""

from __future__ import annotations

import torch

__all__ = ["init_state", "update"]

BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8  # Kingma & Ba (2015) defaults


def init_state(optimizer: str, params: dict[str, torch.Tensor]) -> dict:
    """Zero momentum (sgd) or first/second moments (adam); nothing for gd."""
    if optimizer == "sgd":
        return {"buf": {k: torch.zeros_like(v) for k, v in params.items()}}
    if optimizer == "adam":
        return {
            "m": {k: torch.zeros_like(v) for k, v in params.items()},
            "v": {k: torch.zeros_like(v) for k, v in params.items()},
        }
    return {}


def update(cfg, params, grads, state, lrs: torch.Tensor, active: torch.Tensor, t: int):
    """One step for every model whose ``active`` flag is set; the others keep their weights.

    gd: w -= lr g;  sgd: b = mu b + g, w -= lr b;  adam: Kingma & Ba (2015) with bias correction.
    ``lrs`` and ``active`` have shape (E,); ``active`` lives on the CPU (no device sync). When
    every model is active the tensors of ``params`` are updated in place (the same arithmetic
    as the masked path, without its copy).
    """
    new = {}
    every = bool(active.all())
    mask = None if every else active.to(lrs.device)
    with torch.no_grad():
        for k, p in params.items():
            shape = (-1,) + (1,) * (p.ndim - 1)
            lr = lrs.reshape(shape)
            g = grads[k]
            if cfg.optimizer == "gd":
                step = g
            elif cfg.optimizer == "sgd":
                buf = state["buf"][k]
                buf.mul_(cfg.momentum).add_(g)
                step = buf
            else:
                m, v = state["m"][k], state["v"][k]
                m.mul_(BETA1).add_(g, alpha=1 - BETA1)
                v.mul_(BETA2).addcmul_(g, g, value=1 - BETA2)
                mhat = m / (1 - BETA1 ** (t + 1))
                vhat = v / (1 - BETA2 ** (t + 1))
                step = mhat / (vhat.sqrt() + ADAM_EPS)
            if every:
                new[k] = p.sub_(lr * step)
            else:
                new[k] = torch.where(mask.reshape(shape), p - lr * step, p)
    return new, state
