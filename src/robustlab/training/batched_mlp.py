"""The trainer's step for robustlab MLPs, on hand-written batched passes (no autograd).

:class:`BatchedMLPStep` has the interface of :class:`~.step.Step` (``grads``, ``value``) and
its numbers, up to float rounding (``tests/test_batched_mlp.py``: float64, 1e-9), for every
regime, loss and optimizer, shared or per-model data; it runs the forward, reverse and
tangent passes of :class:`~.stacked_mlp.StackedMLP` on chunks of members, with the heads of
:mod:`.batched_losses`. :func:`~.step.make_step` picks it for robustlab MLPs.

Measured against the ``torch.func`` step (vmap of grad_and_value) on this 2-core machine,
one thread, E = 24, N = 794, d = 40: 1.3x (width 128, depth 6) to 2.5x (width 16) faster per
step; ``torch.compile`` of that vmapped step ran 1.1-1.2x slower than this one after 4-12 s
of compilation per shape (benchmarks/bench_sweep.py, issue 12).
"""

from __future__ import annotations

import torch

from ..models._mlp import MLP
from .batched_losses import accuracy, labels_valid, targets
from .config import TrainConfig
from .ensemble import EnsembleData
from .losses import get_loss
from .regimes import get_regime
from .stacked_mlp import StackedMLP, chunk_size

__all__ = ["BatchedMLPStep", "supports"]


def supports(model, cfg: TrainConfig | None = None) -> bool:
    """Whether :class:`BatchedMLPStep` computes this model's step: a robustlab MLP (its own
    forward, not a subclass's) under any regime and loss of the trainer."""
    del cfg  # every optimizer, loss and regime of TrainConfig is written out
    return type(model) is MLP


def _cat(parts: list[tuple]) -> tuple:
    """(grads, loss, acc) of consecutive chunks joined along the member axis."""
    if len(parts) == 1:
        return parts[0]
    grads = {k: torch.cat([p[0][k] for p in parts]) for k in parts[0][0]}
    return grads, *(torch.cat([p[i] for p in parts]) for i in (1, 2))


class BatchedMLPStep:
    """The :class:`~.step.Step` interface for robustlab MLPs, on :class:`StackedMLP`.

    ``grads(params, x, y, f0)`` -> (grads ``{name: (E, ...)}``, loss (E,), accuracy (E,)) and
    ``value(params, x, y, f0)`` -> (loss, accuracy), for every regime:

    - ``standard``, ``mean_field``: g = f(x; w);
    - ``lazy``: g = alpha (f(x; w) - f(x; w0)), gradient of loss / alpha^2, i.e.
      dLoss/df = (dLoss/dg) / alpha (Chizat, Oyallon & Bach 2019). f(x; w0) is computed here
      by the same forward as f(x; w) (not taken from the trainer's ``f0``), so g = 0 exactly
      at w0 (another kernel's f0 would leave rounding noise whose sign is the accuracy);
    - ``linearized``: g = f(x; w0) + J(w0)(w - w0), gradient J(w0)^T dLoss/dg. The forward
      at w0 (activations, masks, f(x; w0)) is kept while the batch is the same tensor
      (full-batch gd computes it once; minibatches pay one more forward per step, and so do
      minibatches under ``lazy``).

    The members run in chunks (:func:`~.stacked_mlp.chunk_size`) whose activations stay in
    cache; every member's numbers are its own whatever the chunking.
    """

    def __init__(self, model, cfg: TrainConfig, data: EnsembleData, stacked, alphas, batched):
        del batched  # E = 1 runs the same code
        self._net = StackedMLP(model)
        spec = model.spec
        self._hidden = spec.width * (spec.depth - 1)
        self._regime = get_regime(cfg.regime)
        self._loss = get_loss(cfg.loss)
        self._per_model = data.per_model
        reg = self._regime
        self._params0 = stacked if reg.linearized or reg.alpha_scaled else None
        self._alphas = alphas.reshape(-1, 1, 1)
        self._key: tuple = ()  # the (x, y) whose chunks are in self._chunks
        self._chunks: list[dict] = []
        self.buffers: dict = {}  # robustlab MLPs have none (the Step interface's field)

    def _batch(self, x, y) -> list[dict]:
        """Per chunk of members, what the batch alone decides (its slice of members, flat
        inputs, labels and their check, the w0 forward), kept while it is the same (x, y)."""
        if len(self._key) == 2 and self._key[0] is x and self._key[1] is y:
            return self._chunks
        pm = self._per_model
        xf = self._net.flat(x, pm)
        valid = labels_valid(y, pm)
        E = self._alphas.shape[0]
        e = chunk_size(E, xf.shape[-2], self._hidden, xf.element_size(), xf.device)
        self._chunks = []
        for sl in (slice(i, i + e) for i in range(0, E, e)):
            c = {
                "sl": sl,
                "x": xf[sl] if pm else xf,
                "y": y[sl] if pm else y,
                "valid": valid[sl] if isinstance(valid, torch.Tensor) else valid,
                "alphas": self._alphas[sl],
            }
            if self._params0 is not None:  # the forward at w0, with this step's arithmetic
                c["p0"] = {k: v[sl] for k, v in self._params0.items()}
                c["w0"] = self._net.forward(c["p0"], c["x"])
            self._chunks.append(c)
        self._key = (x, y)
        return self._chunks

    def _outputs(self, c: dict, params):
        """g (e, N, k) of chunk c, and the weights and layer inputs of its reverse pass."""
        p = {k: v[c["sl"]] for k, v in params.items()}
        if self._regime.linearized:
            out0, hs0 = c["w0"]
            p0 = c["p0"]
            v = {k: p[k] - p0[k] for k in p}
            return out0 + self._net.tangent(p0, hs0, v), p0, hs0
        f, hs = self._net.forward(p, c["x"])
        if self._regime.alpha_scaled:  # f0 from this forward too: g = 0 exactly at w0
            f = (f - c["w0"][0]).mul_(c["alphas"])
        return f, p, hs

    def _score(self, g, c: dict):
        """(loss (e,), accuracy (e,), dLoss/dg (e, N, k))."""
        if self._loss.regression_targets and "t" not in c:  # built once per fit
            c["t"] = targets(c["y"], g.shape[2], g.dtype, self._per_model)
        loss, dg = self._loss.batched(g, c["y"], c.get("t"))
        return loss, accuracy(g, c["y"], c["valid"]), dg

    def _grads(self, c: dict, params):
        g, at, hs = self._outputs(c, params)
        loss, acc, dg = self._score(g, c)
        if self._regime.alpha_scaled:  # d(loss / alpha^2)/df = alpha dLoss/dg / alpha^2
            dg = dg.div_(c["alphas"])
        return self._net.backward(at, hs, dg), loss, acc

    def grads(self, params, x, y, f0):
        """(grads, loss, accuracy) at ``params`` (``f0`` is recomputed, see the class)."""
        del f0
        return _cat([self._grads(c, params) for c in self._batch(x, y)])

    def value(self, params, x, y, f0):
        """(loss, accuracy) at ``params``, without gradients."""
        del f0
        with torch.no_grad():
            parts = []
            for c in self._batch(x, y):
                loss, acc, _ = self._score(self._outputs(c, params)[0], c)
                parts.append(({}, loss, acc))
        return _cat(parts)[1:]
