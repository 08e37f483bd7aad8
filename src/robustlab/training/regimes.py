"""Training regimes as objects in one registry: what is fitted, and what is measured.

A :class:`Regime` is a regime's facts (:mod:`robustlab.regime_facts`: how the trained
predictor g(x; w) is built from the network f(x; w) and its initialization w0, how the loss
is scaled, which parameterization it needs, which functions a sweep measures) with the
behaviour those facts imply. Code elsewhere asks the regime (``regime.output(...)``,
``regime.predictor(...)``, ``regime.measured``), never tests its name.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields

import torch
from torch import nn
from torch.func import functional_call

from .._func import jvp
from ..regime_facts import REGIME_FACTS, REGIMES, RegimeFacts, regime_facts, twinned_regimes

__all__ = ["REGIMES", "AlphaScaled", "Linearized", "Regime", "get_regime", "twinned_regimes"]


@dataclass(frozen=True)
class Regime(RegimeFacts):
    """One training regime: its facts (:class:`~robustlab.regime_facts.RegimeFacts`) and
    the behaviour they imply."""

    @classmethod
    def of(cls, facts: RegimeFacts) -> Regime:
        """The regime with these facts."""
        return cls(**{f.name: getattr(facts, f.name) for f in fields(facts)})

    def output(self, model, params, params0, x, alpha, f0) -> torch.Tensor:
        """The predictor's outputs g(x; params), shape (B, k), in functional form.

        ``params0`` (w0) is used by ``linearized``; ``f0`` = f(x; w0) and ``alpha`` by
        ``lazy``. Everything is ``torch.func``-transformable (vmap/grad).
        """

        def f(p):
            out = functional_call(model, p, (x,))
            return out.reshape(out.shape[0], -1)

        if self.linearized:
            tangent = {k: params[k] - params0[k] for k in params}
            out0, dout = jvp(f, (params0,), (tangent,))
            return out0 + dout
        out = f(params)
        return alpha * (out - f0) if self.alpha_scaled else out

    def loss_scale(self, alpha):
        """Factor on the loss whose gradient is followed: 1 / alpha^2 under alpha-scaling."""
        return 1.0 / (alpha * alpha) if self.alpha_scaled else 1.0

    def predictor(self, model: nn.Module, initial: nn.Module, alpha: float) -> nn.Module:
        """The fitted function as a module (``model`` holds w_T, ``initial`` w0)."""
        if self.alpha_scaled:
            return AlphaScaled(model, initial, alpha)
        if self.linearized:
            return Linearized(model, initial)
        return model

    def laziness_pair(self, model, initial, alpha) -> tuple[nn.Module, nn.Module]:
        """(before, after) whose parameters the laziness diagnostics compare: the Taylor
        models under ``linearized`` (their NTK is constant by construction, and measured),
        the networks f(x; w0), f(x; w_T) otherwise."""
        if self.linearized:
            return Linearized(initial, initial), Linearized(model, initial)
        return initial, model

    def measured_models(self, model, initial, alpha) -> dict[str, nn.Module]:
        """``{label: module}`` for every function measured after training."""
        out = {self.predictor_label: self.predictor(model, initial, alpha)}
        if self.alpha_scaled:  # the uncentred network beside the centred predictor
            out["network"] = model
        return out


def _frozen_copy(module: nn.Module) -> nn.Module:
    frozen = copy.deepcopy(module)
    for p in frozen.parameters():
        p.requires_grad_(False)
    return frozen


class AlphaScaled(nn.Module):
    """``g(x) = alpha * (f(x; w) - f(x; w0))`` (Chizat, Oyallon & Bach, NeurIPS 2019).

    Large alpha keeps w near w0 at any width (lazy training). The initial network w0 is held
    frozen (a private copy without gradients), so g(x) = 0 at w = w0 exactly, and P of g
    measures only what training added to f.
    """

    def __init__(self, model: nn.Module, initial: nn.Module, alpha: float) -> None:
        super().__init__()
        self.model = model
        self.initial = _frozen_copy(initial)
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, ...) -> (N, k)."""
        return self.alpha * (self.model(x) - self.initial(x))


class Linearized(nn.Module):
    """``f_lin(x; w) = f(x; w0) + J_w f(x; w0) (w - w0)`` (Lee et al., NeurIPS 2019).

    ``model`` holds w: its parameters are this module's only parameters, so parameter
    metrics (weight change, the empirical NTK, which is J_w f(x; w0) and so constant) see
    the Taylor model's own variables. w0 is copied from ``initial`` into buffers. The product
    J_w f(x; w0) (w - w0) is one forward-mode JVP (``torch.func.jvp``, the Jacobian is never
    built); input gradients flow through it (reverse over forward).
    """

    def __init__(self, model: nn.Module, initial: nn.Module) -> None:
        super().__init__()
        self.model = model
        self._names = [name for name, _ in initial.named_parameters()]
        for i, (_, p) in enumerate(initial.named_parameters()):
            self.register_buffer(f"w0_{i}", p.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, ...) -> (N, k)."""
        p0 = {name: getattr(self, f"w0_{i}") for i, name in enumerate(self._names)}
        p = dict(self.model.named_parameters())
        return _REGISTRY["linearized"].output(self.model, p, p0, x, 1.0, None)


_REGISTRY: dict[str, Regime] = {name: Regime.of(f) for name, f in REGIME_FACTS.items()}


def get_regime(name: str | Regime) -> Regime:
    """The :class:`Regime` called ``name`` (a Regime is returned as is)."""
    if isinstance(name, Regime):
        return name
    return _REGISTRY[regime_facts(name).name]
