"""torch.func helpers shared by every layer (metrics, training, theory)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

__all__ = ["jvp"]


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
