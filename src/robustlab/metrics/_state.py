"""Shared input checks and the model-state guard used by every metric."""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["as_input", "check_eps", "frozen", "jvp", "model_dtype_device"]


def check_eps(eps: object) -> float:
    """Return eps as a float if it is a positive finite number, else raise ValueError."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps):
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps!r}")
    return float(eps)


def model_dtype_device(model: nn.Module) -> tuple[torch.dtype | None, torch.device | None]:
    """dtype and device of the model's first parameter (or buffer); (None, None) if it has none."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype, t.device
    return None, None


def as_input(model: nn.Module, x: object) -> torch.Tensor:
    """Validate x (shape (N, ...), N >= 1, finite) and cast it to the model's dtype and device."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor of shape (N, ...), got {type(x).__name__}")
    if x.ndim < 2 or x.shape[0] < 1:
        raise ValueError(
            f"x must have shape (N, ...) with N >= 1 points, got shape {tuple(x.shape)}"
        )
    dtype, device = model_dtype_device(model)
    if not x.is_floating_point():
        x = x.to(dtype or torch.get_default_dtype())
    if dtype is not None:
        x = x.to(dtype=dtype, device=device)
    # a finite sum proves every entry finite (NaN and inf propagate): one pass, no (N, d)
    # boolean temporary; only a non-finite sum (maybe an overflow) needs the full check
    if not torch.isfinite(x.sum()) and not torch.isfinite(x).all():
        raise ValueError("x contains NaN or infinite values")
    return x.detach()


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode with parameters not requiring grad; restore both on exit.

    Metrics never mutate the model: mode flags of every submodule and each parameter's
    ``requires_grad`` are put back exactly as found, even when the body raises.
    """
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            p.requires_grad_(flag)


def call(model: nn.Module, x: torch.Tensor, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """model(x) reshaped to (N, k); a shape mismatch becomes a ValueError that names the shapes.

    ``shape`` is the shape to report: the user's whole x when ``x`` is a chunk of it.
    """
    try:
        out = model(x)
    except RuntimeError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        shown = tuple(x.shape) if shape is None else tuple(shape)
        raise ValueError(f"x of shape {shown} does not fit the model: {first}") from None
    return out.reshape(out.shape[0], -1)


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
