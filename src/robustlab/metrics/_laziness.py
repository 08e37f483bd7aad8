"""How far training moved a network from its initialization (docs/definitions.md, "Regimes").

Three diagnostics of lazy training (Chizat, Oyallon & Bach 2019; Jacot et al. 2018):
relative weight change, relative change of the empirical NTK on a probe batch, and the
fraction of ReLU activation patterns that flipped.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call, vmap

from .._func import ntk_vector_product
from ._state import as_input, frozen

__all__ = ["empirical_ntk", "laziness"]


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in model.named_parameters()}


def empirical_ntk(model: nn.Module, x: torch.Tensor, *, chunk: int = 64) -> torch.Tensor:
    """Empirical NTK K = J J^T on points x: (n k, n k), J the (n k x p) parameter Jacobian.

    Built a block of columns at a time from NTK-vector products K e_j = J (J^T e_j)
    (a VJP then a JVP), so at most ``chunk`` rows of J^T exist at once.
    """
    x = as_input(model, x)
    params = _params(model)
    n = x.shape[0]

    def f(p):
        return functional_call(model, p, (x,)).reshape(-1)  # (n k,)

    with frozen(model):
        out, column = ntk_vector_product(f, params)
        nk = out.shape[0]
        eye = torch.eye(nk, dtype=x.dtype, device=x.device)
        cols = [vmap(column)(eye[i : i + chunk]) for i in range(0, nk, chunk)]
    del n
    return torch.cat(cols).T.detach()


def _pattern_flip(initial: nn.Module, trained: nn.Module, x: torch.Tensor) -> float:
    pre0 = getattr(initial, "preactivations", None)
    pre1 = getattr(trained, "preactivations", None)
    if pre0 is None or pre1 is None:
        return math.nan
    with torch.no_grad():
        a0, a1 = pre0(x), pre1(x)
    if not a0:
        return 0.0
    flips = sum(int(((u > 0) != (v > 0)).sum()) for u, v in zip(a0, a1, strict=True))
    return flips / sum(u.numel() for u in a0)


def laziness(
    initial_model: nn.Module,
    trained_model: nn.Module,
    x: torch.Tensor,
    *,
    probe: int = 128,
    ntk: bool = True,
) -> dict:
    """Laziness diagnostics of a training run.

    Returns a dict with
    - ``rel_weight_change``: ||w_T - w_0||_2 / ||w_0||_2 over all parameters;
    - ``rel_weight_change_per_layer``: ||W_T - W_0||_F / ||W_0||_F per parameter tensor;
    - ``ntk_change``: ||K_T - K_0||_F / ||K_0||_F of the empirical NTK on the first ``probe``
      points of x (NaN when ``ntk=False``);
    - ``kernel_distance``: 1 - <K_0, K_T>_F / (||K_0||_F ||K_T||_F) (Fort et al. 2020);
    - ``pattern_flip``: fraction of (point, hidden unit) pairs on x whose ReLU sign differs
      between the two networks (NaN for models without ``preactivations``).
    """
    x = as_input(trained_model, x)
    p0, p1 = _params(initial_model), _params(trained_model)
    if p0.keys() != p1.keys():
        raise ValueError("initial and trained models have different parameters")
    per_layer = {}
    num = den = 0.0
    for k in p0:
        diff = float(torch.linalg.vector_norm((p1[k] - p0[k]).double()))
        base = float(torch.linalg.vector_norm(p0[k].double()))
        per_layer[k] = diff / base if base > 0 else math.nan
        num += diff * diff
        den += base * base
    out = {
        "rel_weight_change": math.sqrt(num / den) if den > 0 else math.nan,
        "rel_weight_change_per_layer": per_layer,
        "ntk_change": math.nan,
        "kernel_distance": math.nan,
        "pattern_flip": _pattern_flip(initial_model, trained_model, x),
    }
    if ntk:
        xp = x[:probe]
        k0 = empirical_ntk(initial_model, xp).double()
        k1 = empirical_ntk(trained_model, xp).double()
        n0, n1 = torch.linalg.norm(k0), torch.linalg.norm(k1)
        out["ntk_change"] = float(torch.linalg.norm(k1 - k0) / n0)
        out["kernel_distance"] = float(1 - (k0 * k1).sum() / (n0 * n1))
    return out
