"""Shared input checks and the model-state guard used by every metric."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import torch
from torch import nn

from .._checks import check_positive, first_line
from .._func import jvp
from .outputs import logits_before_labels, select, validate_labels

__all__ = [
    "as_input",
    "call",
    "check_clip",
    "check_eps",
    "frozen",
    "jvp",
    "model_dtype_device",
    "probe",
    "raw_call",
]


def check_eps(eps: object) -> float:
    """Return eps as a float if it is a positive finite number, else raise ValueError."""
    return check_positive("eps", eps)


def model_dtype_device(model: Callable) -> tuple[torch.dtype | None, torch.device | None]:
    """dtype and device of the model's first floating parameter (or buffer); (None, None) if it
    has none or is a plain callable (then x keeps its own)."""
    if not isinstance(model, nn.Module):
        return None, None
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype, t.device
    return None, None


def as_input(model: Callable, x: object) -> torch.Tensor:
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
def frozen(model: Callable) -> Iterator[Callable]:
    """Put ``model`` in eval mode with parameters not requiring grad; restore both on exit.

    Metrics never mutate the model: mode flags of every submodule and each parameter's
    ``requires_grad`` are put back exactly as found, even when the body raises. A plain
    callable is used as it is; a module whose ``eval()`` is not supported (a
    ``torch.export`` program, whose mode was fixed when it was exported) keeps its mode.
    """
    if not isinstance(model, nn.Module):
        yield model
        return
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        # torch.export's GraphModule raises "eval() is not supported": its mode is fixed
        with suppress(NotImplementedError):
            model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            p.requires_grad_(flag)


def call(
    model: Callable,
    x: torch.Tensor,
    shape: tuple[int, ...] | None = None,
    *,
    output: tuple = (),
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """The measured output of model(x) as (N, k); a shape mismatch becomes a ValueError.

    ``shape`` is the shape to report: the user's whole x when ``x`` is a chunk of it.
    ``output`` (selectors of :mod:`.outputs`) picks what is measured, ``y`` are the labels of
    these rows (for ``"margin"``/``"label"``).
    """
    return select(raw_call(model, x, shape), output, y)


def raw_call(model: Callable, x: torch.Tensor, shape: tuple[int, ...] | None = None) -> object:
    """model(x) as returned; a shape mismatch becomes a ValueError that names the shapes."""
    try:
        out = model(x)
    except (RuntimeError, AssertionError) as err:
        if isinstance(err, AssertionError) and "Guard failed" not in str(err):
            raise
        first = first_line(err)
        shown = tuple(x.shape) if shape is None else tuple(shape)
        hint = ""
        if "Guard failed" in first:  # a torch.export program robustlab could not size
            hint = (
                " (a torch.export program takes the shapes it was exported for; robustlab "
                "calls one-input programs at their own batch sizes, so this one has several "
                "inputs or a batch size tied to another: export it with "
                "dynamic_shapes=({0: torch.export.Dim('batch')},))"
            )
        raise ValueError(f"x of shape {shown} does not fit the model: {first}{hint}") from None
    return out


def check_clip(clip: object, x: torch.Tensor) -> tuple[float, float] | None:
    """``clip=(lo, hi)``: the input box, lo < hi, holding every entry of x; None passes."""
    if clip is None:
        return None
    ok = isinstance(clip, (tuple, list)) and len(clip) == 2
    ok = ok and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in clip)
    if not ok or not all(math.isfinite(v) for v in clip) or not clip[0] < clip[1]:
        raise ValueError(
            f"clip must be a pair (lo, hi) of finite numbers with lo < hi, got {clip!r}"
        )
    lo, hi = float(clip[0]), float(clip[1])
    if float(x.min()) < lo or float(x.max()) > hi:
        raise ValueError(
            f"x has values in [{float(x.min()):.4g}, {float(x.max()):.4g}], outside clip=({lo:g}, "
            f"{hi:g}); the points must lie in the input box"
        )
    return lo, hi


def probe(
    model: Callable, x: torch.Tensor, steps: tuple, y: torch.Tensor | None
) -> tuple[int, torch.Tensor | None]:
    """Run one point: k of the measured output, and y checked against the logits it labels.

    A model that does not take x fails here, naming the user's shape.
    """
    with frozen(model), torch.no_grad():
        out = raw_call(model, x[:1], tuple(x.shape))
        y = validate_labels(logits_before_labels(out, steps), steps, y)
        k = select(out, steps, None if y is None else y[:1]).shape[1]
    return k, y
