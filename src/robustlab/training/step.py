"""One training step as a pure function, shared by single models and vmapped ensembles.

Gradients come from ``torch.func.grad_and_value`` over ``functional_call`` of the regime's
predictor (vmapped over the E models of an ensemble, plain for one model), so training an
ensemble equals training its members one by one up to float rounding.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import grad_and_value, vmap

from .batched_mlp import BatchedMLPStep, supports
from .config import TrainConfig
from .ensemble import EnsembleData
from .losses import accuracy, loss_value
from .optim import get_optimizer
from .regimes import get_regime

__all__ = ["STEP_KINDS", "Batches", "Step", "check_step_kind", "make_step"]

STEP_KINDS = ("auto", "vmap", "batched_mlp")


def _objective(model: nn.Module, loss_name: str, regime):
    """(params, buffers, params0, x, y, alpha, f0) -> (scaled loss, (loss, accuracy)) of the
    regime's predictor; the gradient is taken of the scaled loss (loss / alpha^2 under
    alpha-scaling). ``buffers`` (BatchNorm running statistics) are inputs, not captured
    state, so a train-mode forward may update them inside the transforms."""

    def fn(params, buffers, params0, x, y, alpha, f0):
        out = regime.output(model, {**params, **buffers}, params0, x, alpha, f0)  # (B, k)
        loss = loss_value(loss_name, out, y)
        return loss * regime.loss_scale(alpha), (loss.detach(), accuracy(out.detach(), y))

    return fn


class Step:
    """``grads(params, x, y, f0)`` and ``value(params, x, y, f0)`` of E stacked models.

    Both return per-model (loss, accuracy) of shape (E,); ``grads`` also the stacked
    gradients ``{name: (E, ...)}``. ``params0`` (w0) feeds the linearized regime.
    ``buffers`` (stacked, e.g. BatchNorm running statistics) are updated by each training
    forward, as in plain PyTorch training; ``value`` leaves them as they are.
    """

    def __init__(self, model, cfg: TrainConfig, data: EnsembleData, stacked, alphas, batched,
                 buffers=None):  # fmt: skip
        regime = get_regime(cfg.regime)
        self.buffers = {k: v.clone() for k, v in (buffers or {}).items()}
        if self.buffers and regime.linearized:
            raise ValueError(
                "regime 'linearized' needs a model without buffers (e.g. no BatchNorm): the "
                "Taylor model of a network whose statistics change while it trains is undefined"
            )
        self._model = model
        objective = _objective(model, cfg.loss, regime)
        step = grad_and_value(objective, has_aux=True)
        if batched:
            xd = 0 if data.per_model else None
            in_dims = (0, 0, 0 if regime.linearized else None, xd, xd, 0,
                       0 if data.f0 is not None else None)  # fmt: skip
            step, objective = vmap(step, in_dims=in_dims), vmap(objective, in_dims=in_dims)
        self._step, self._objective = step, objective
        self._batched, self._per_model = batched, data.per_model
        self._params0 = stacked if regime.linearized else None
        self._alphas = alphas

    def _args(self, params, x, y, f0, buffers):
        if self._batched:
            return params, buffers, self._params0, x, y, self._alphas, f0
        one = lambda d: None if d is None else {k: v[0] for k, v in d.items()}  # noqa: E731
        if self._per_model:
            x, y = x[0], y[0]
        return (one(params), one(buffers), one(self._params0), x, y, self._alphas[0],
                None if f0 is None else f0[0])  # fmt: skip

    def grads(self, params, x, y, f0):
        """(grads, loss, accuracy) at ``params``; a training forward (BatchNorm on batch
        statistics, running statistics updated in ``buffers``)."""
        was = self._model.training
        self._model.train()
        try:
            grads, (_, (loss, acc)) = self._step(*self._args(params, x, y, f0, self.buffers))
        finally:
            self._model.train(was)
        if not self._batched:
            grads = {k: v.unsqueeze(0) for k, v in grads.items()}
        return grads, loss.reshape(-1), acc.reshape(-1)

    def value(self, params, x, y, f0):
        """(loss, accuracy) at ``params``, without gradients."""
        held = {k: v.clone() for k, v in self.buffers.items()}  # evaluation updates nothing
        was = self._model.training
        self._model.train()
        try:
            with torch.no_grad():
                _, (loss, acc) = self._objective(*self._args(params, x, y, f0, held))
        finally:
            self._model.train(was)
        return loss.reshape(-1), acc.reshape(-1)


def check_step_kind(kind: str) -> str:
    """``kind`` if it is one of :data:`STEP_KINDS`, else a ValueError naming the choices."""
    if kind not in STEP_KINDS:
        raise ValueError(f"step: unknown value {kind!r}; choices: {', '.join(STEP_KINDS)}")
    return kind


def make_step(model, cfg: TrainConfig, data, stacked, alphas, batched, kind: str = "auto",
              buffers=None):  # fmt: skip
    """The ensemble's step: :class:`~.batched_mlp.BatchedMLPStep` (hand-written, batched
    products) for robustlab MLPs under ``auto``, the ``torch.func`` :class:`Step` otherwise;
    ``vmap`` and ``batched_mlp`` force one (the latter only where it applies)."""
    if check_step_kind(kind) == "batched_mlp" and not supports(model, cfg):
        raise ValueError(
            f"step 'batched_mlp' needs a robustlab MLP, got {type(model).__name__}; use 'auto'"
        )
    if kind != "vmap" and supports(model, cfg) and not buffers:
        return BatchedMLPStep(model, cfg, data, stacked, alphas, batched)
    return Step(model, cfg, data, stacked, alphas, batched, buffers)


class Batches:
    """Minibatch indices for step t: full batch for ``gd``; for sgd/adam with a batch size,
    a fresh permutation from ``generator`` every epoch (shared by all members)."""

    def __init__(self, cfg: TrainConfig, data: EnsembleData, generator) -> None:
        n = data.n
        full = get_optimizer(cfg.optimizer).full_batch
        bs = cfg.batch_size if not full and cfg.batch_size else n
        self._n, self._bs, self._data, self._gen = n, min(bs, n), data, generator
        self._perm = None

    def at(self, t: int):
        """(x, y, f0) of step t."""
        if self._bs >= self._n:
            return self._data.batch(None)
        per_epoch = self._n // self._bs
        if t % per_epoch == 0:
            self._perm = torch.randperm(self._n, generator=self._gen).to(self._data.x.device)
        i = t % per_epoch
        return self._data.batch(self._perm[i * self._bs : (i + 1) * self._bs])
