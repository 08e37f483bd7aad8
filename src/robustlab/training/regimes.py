"""Training regimes as objects in one registry: what is fitted, and what is measured.

A :class:`Regime` says how the trained predictor g(x; w) is built from the network
f(x; w) and its initialization w0, how the loss is scaled, which parameterization it
needs and which functions a sweep measures after training. Code elsewhere asks the regime
(``regime.output(...)``, ``regime.predictor(...)``, ``regime.measured``), never tests its name.

- ``standard``: g = f(x; w), the network as initialized, plain gradient descent.
- ``linearized``: g = f(x; w0) + J_w f(x; w0) (w - w0), the first-order Taylor model
  (Lee et al., NeurIPS 2019, arXiv 1902.06720): lazy exactly at any width, and it keeps
  the initialization's own function f(x; w0).
- ``lazy``: g = alpha (f(x; w) - f(x; w0)), loss / alpha^2 (Chizat, Oyallon & Bach,
  NeurIPS 2019): centred, so g carries nothing of f(x; w0) and cannot test an
  initialization claim.
- ``mean_field``: g = f(x; w) for the two-layer mean-field network
  f(x) = (1/m) sum_j a_j relu(w_j . x) (non-lazy).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from .._func import jvp

__all__ = ["REGIMES", "AlphaScaled", "Linearized", "Regime", "get_regime", "twinned_regimes"]


@dataclass(frozen=True)
class Regime:
    """One training regime.

    Attributes:
        name: registry key (the ``regime`` value of configs and result rows).
        summary: one line for tables and reports.
        alpha_scaled: the predictor is alpha (f - f0) and the loss is divided by alpha^2.
        linearized: the predictor is the first-order Taylor model around w0.
        parameterization: the parameterization the network must have
            (:data:`robustlab.init.PARAMETERIZATIONS`; None: any); ``mean_field`` builds its
            networks with the two-layer mean-field one.
        measured: the ``model`` labels of the functions measured after training, the
            fitted predictor first (``network`` = f(x; w_T), ``centred`` = alpha (f - f0),
            ``linearized`` = the Taylor model at w_T).
        keeps_init_function: whether the fitted predictor contains f(x; w0), i.e. whether
            it can test a claim about the initialization (False for centred predictors).
        lazy_by_construction: the predictor is linear in w, so training is lazy exactly.
        twin_of: a regime whose runs this one pairs with (same w0, same data): a sweep trains
            both in one group and reports, for each run of ``twin_of``, how far it is from
            this regime's run (``linearized`` pairs with ``standard``).
    """

    name: str
    summary: str
    measured: tuple[str, ...] = ("network",)
    alpha_scaled: bool = False
    linearized: bool = False
    parameterization: str | None = None
    keeps_init_function: bool = True
    lazy_by_construction: bool = False
    twin_of: str = ""

    @property
    def predictor_label(self) -> str:
        """The ``model`` label of the fitted predictor's result rows."""
        return self.measured[0]

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


_REGISTRY: dict[str, Regime] = {
    r.name: r
    for r in (
        Regime("standard", "the network as initialized, gradient descent"),
        Regime(
            "lazy",
            "alpha-scaling alpha (f - f0) (Chizat et al. 2019): centred, lazy for large alpha",
            measured=("centred", "network"),
            alpha_scaled=True,
            keeps_init_function=False,
        ),
        Regime(
            "mean_field",
            "two-layer mean-field network (1/m) sum_j a_j relu(w_j . x): non-lazy",
            parameterization="mean_field",
        ),
        Regime(
            "linearized",
            "first-order Taylor model around w0 (Lee et al. 2019): lazy exactly",
            measured=("linearized",),
            linearized=True,
            lazy_by_construction=True,
            twin_of="standard",
        ),
    )
}


def get_regime(name: str | Regime) -> Regime:
    """The :class:`Regime` called ``name`` (a Regime is returned as is)."""
    if isinstance(name, Regime):
        return name
    if name not in _REGISTRY:
        raise ValueError(f"unknown regime {name!r}; choices: {', '.join(REGIMES)}")
    return _REGISTRY[name]


REGIMES: tuple[str, ...] = tuple(_REGISTRY)  # the names, in registry order


def twinned_regimes() -> tuple[str, ...]:
    """The regimes whose runs a sweep pairs with a twin (``Regime.twin_of`` of another)."""
    return tuple(dict.fromkeys(r.twin_of for r in _REGISTRY.values() if r.twin_of))
