"""An ensemble's parameters and data: stacked weights, shared or per-model training sets.

Parameters live in stacked dicts ``{name: (E, ...)}`` (``torch.func.stack_module_state``);
the data are one (N, ...) set shared by the E models or one set per model (E, N, ...).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

__all__ = [
    "EnsembleData",
    "check_same_forward",
    "ensemble_data",
    "ensemble_inputs",
    "evaluating",
    "members_vmap",
    "stack",
    "stack_buffers",
    "unstack_into",
]

PROBE_POINTS = 8  # inputs of the forward that tells whether the members vmap
# MLPSpec fields that change the forward function (init and variances only change weights)
_FORWARD_FIELDS = ("in_dim", "width", "depth", "out_dim", "bias", "mean_field", "multipliers")


@dataclass
class EnsembleData:
    """Training inputs of an ensemble: shared (N, ...) or one set per model (E, N, ...)."""

    x: torch.Tensor
    y: torch.Tensor
    per_model: bool
    f0: torch.Tensor | None  # (E, N, k) f(x; w0) for alpha-scaled regimes

    @property
    def n(self) -> int:
        """Points per model."""
        return self.x.shape[1] if self.per_model else self.x.shape[0]

    def first(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of model 0, for checks."""
        return (self.x[0], self.y[0]) if self.per_model else (self.x, self.y)

    def batch(self, idx):
        """The minibatch ``idx`` (None = everything), keeping the model axis if per model."""
        if idx is None:
            return self.x, self.y, self.f0
        f0 = None if self.f0 is None else self.f0[:, idx]
        if self.per_model:
            return self.x[:, idx], self.y[:, idx], f0
        return self.x[idx], self.y[idx], f0

    def member(self, i: int) -> EnsembleData:
        """The data of model ``i`` alone, as a one-model ensemble."""
        f0 = None if self.f0 is None else self.f0[i : i + 1]
        if self.per_model:
            return EnsembleData(self.x[i : i + 1], self.y[i : i + 1], True, f0)
        return EnsembleData(self.x, self.y, False, f0)


def _as_xy(dataset, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = dataset.x_train, dataset.y_train
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x_train has {x.shape[0]} points but y_train has {y.shape[0]} labels")
    y = y.to(device) if not y.is_floating_point() else y.to(device=device, dtype=dtype)
    return x.to(device=device, dtype=dtype), y


def ensemble_data(dataset, E: int, base, regime, stacked, dtype, device) -> EnsembleData:
    """Shared (one dataset) or per-model (a list of E) training data, with f(x; w0) where
    the regime needs it."""
    data = ensemble_inputs(dataset, E, dtype, device)
    if regime.alpha_scaled:

        def out(p, x):
            return functional_call(base, p, (x,)).reshape(x.shape[0], -1)

        with torch.no_grad(), evaluating(base):
            data.f0 = vmap(out, in_dims=(0, 0 if data.per_model else None))(stacked, data.x)
    return data


def ensemble_inputs(dataset, E: int, dtype, device) -> EnsembleData:
    """Shared (one dataset) or per-model (a list of E) training data, without f(x; w0)."""
    if isinstance(dataset, (list, tuple)):
        if len(dataset) != E:
            raise ValueError(f"got {len(dataset)} datasets for {E} models; pass one per model")
        xy = [_as_xy(ds, dtype, device) for ds in dataset]
        shapes = {(tuple(x.shape), tuple(y.shape)) for x, y in xy}
        if len(shapes) != 1:
            raise ValueError(f"per-model datasets must have equal shapes, got {sorted(shapes)}")
        return EnsembleData(
            torch.stack([x for x, _ in xy]), torch.stack([y for _, y in xy]), True, None
        )
    return EnsembleData(*_as_xy(dataset, dtype, device), False, None)


def check_same_forward(models: list[nn.Module]) -> None:
    """All members must compute the same function of their parameters (one vmapped forward).

    Seeds and variances may differ; parameter shapes and, for MLPs, the architecture and
    forward multipliers (which differ under the NTK parameterization) may not.
    """
    first = models[0]
    shapes0 = [(k, tuple(v.shape)) for k, v in first.named_parameters()]
    spec0 = getattr(first, "spec", None)
    for i, m in enumerate(models[1:], start=1):
        if (
            type(m) is not type(first)
            or [(k, tuple(v.shape)) for k, v in m.named_parameters()] != shapes0
        ):
            raise ValueError(
                f"train_ensemble: model {i} has a different architecture from model 0; "
                "train them in separate ensembles"
            )
        spec = getattr(m, "spec", None)
        if spec0 is None or spec is None:
            continue
        for f in _FORWARD_FIELDS:
            a, b = getattr(spec0, f, None), getattr(spec, f, None)
            if a != b:
                raise ValueError(
                    f"train_ensemble: model {i} has {f}={b!r} (init {spec.init!r}) but "
                    f"model 0 has {f}={a!r} (init {spec0.init!r}); they need different "
                    "forward functions, so train them in separate ensembles"
                )


def members_vmap(models: list[nn.Module], x: torch.Tensor) -> bool:
    """Whether one training-mode forward of the first two members on ``x`` runs under
    ``vmap`` over them, as the ensemble's step runs it.

    It does not for a network that draws random numbers as it runs (dropout: under vmap
    one member's draws would depend on the others'), which then trains one member at a
    time. Buffers (BatchNorm running statistics) vmap; the members' own are left as they
    were. (A network that branches in Python on a tensor's value, or calls ``.item()``,
    fails here too, and alone where ``torch.func`` transforms it: ``lr="auto"``, the metrics.)
    """
    base = models[0]
    params, buffers = stack(models[:2]), stack_buffers(models[:2])

    def forward(p, b):
        return functional_call(base, {**p, **b}, (x,))

    modes = [(m, m.training) for m in base.modules()]
    base.train()  # dropout and batch statistics on, as in a training step
    try:
        with torch.no_grad():
            vmap(forward)(params, buffers)
    except RuntimeError:  # vmap's refusal; any other error recurs when a member trains alone
        return False
    finally:
        for m, mode in modes:
            m.training = mode
    return True


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode (BatchNorm on its running statistics, which nothing may update
    inside a torch.func transform), its modes restored on exit."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield model.eval()
    finally:
        for m, mode in modes:
            m.training = mode


def stack_buffers(models: list[nn.Module]) -> dict[str, torch.Tensor]:
    """``{name: (E, ...)}`` copies of the models' buffers (e.g. BatchNorm running statistics);
    empty for models without buffers."""
    _, buffers = stack_module_state(models)
    return {k: v.detach().clone() for k, v in buffers.items()}


def stack(models: list[nn.Module]) -> dict[str, torch.Tensor]:
    """``{name: (E, ...)}`` detached copies of the models' parameters."""
    params, _ = stack_module_state(models)
    return {k: v.detach() for k, v in params.items()}


def unstack_into(template: nn.Module, params, i: int, buffers=None) -> nn.Module:
    """A copy of ``template`` holding member ``i`` of the stacked ``params`` (and
    ``buffers``, when given)."""
    m = copy.deepcopy(template)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(params[name][i])
        for name, b in m.named_buffers():
            if buffers and name in buffers:
                b.copy_(buffers[name][i])
    return m
