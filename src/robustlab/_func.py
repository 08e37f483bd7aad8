"""torch.func helpers shared by every layer (metrics, training, theory)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

__all__ = ["jvp", "ntk_vector_product"]


def jvp(func: Callable, primals: tuple, tangents: tuple):
    """``torch.func.jvp`` without torch's own TorchScript deprecation warning.

    On first use, forward-mode AD registers its decompositions with ``torch.jit.script``,
    which torch >= 2.10 flags with a DeprecationWarning that is not about our code; under
    ``-W error`` (the test suite's setting) it would abort the first JVP of a process.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.script` is", category=DeprecationWarning
        )
        return torch.func.jvp(func, primals, tangents)


def ntk_vector_product(func: Callable, params: object) -> tuple[object, Callable]:
    """``(func(params), kv)`` with ``kv(u) = K u = J (J^T u)``, K = J J^T the empirical NTK
    of ``func`` at ``params`` and J = d func / d params: a VJP (J^T u) then a JVP (J v), so
    J is never built (Jacot et al., NeurIPS 2018, for K).

    ``u`` and ``K u`` have the shape of ``func``'s output; ``kv`` composes with ``vmap``
    (over u, or over ``params`` and u together).
    """
    out, pull = torch.func.vjp(func, params)

    def kv(u: torch.Tensor) -> torch.Tensor:
        (jt_u,) = pull(u)
        return jvp(func, (params,), (jt_u,))[1]

    return out, kv
