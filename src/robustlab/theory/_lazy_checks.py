"""Checks of the lazy limit's arguments (:func:`robustlab.theory.lazy_limit` and the
after-training table): each returns the value in the form the computation uses, or raises a
ValueError that names the argument and what it accepts."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import torch

from .._checks import short

__all__ = [
    "MODELS",
    "PARTS",
    "as_labels",
    "as_points",
    "check_eps_region",
    "check_jitter",
    "check_label_scale",
    "check_model",
    "check_parts",
    "check_t_lr",
]

MODELS = ("network", "linearized")
# The parts of the gradient law g ~ N(mu, C) that lazy_limit computes: "mean" (mu, the
# kernel-regression part) and "cov" (C, what is left of f_0); P itself needs both.
PARTS = ("mean", "cov")


def as_points(name: str, x: object, dtype: torch.dtype) -> torch.Tensor:
    """``x`` (N, ...) as finite points (N, d) of ``dtype``."""
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[0] < 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a tensor of shape (N, d) with N >= 1, got {shape}")
    x = x.reshape(x.shape[0], -1).to(dtype)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def as_labels(y: object, n: int, dtype: torch.dtype) -> torch.Tensor:
    """``y`` (n,) or (n, 1) float labels as (n,) of ``dtype``."""
    if not isinstance(y, torch.Tensor) or not y.is_floating_point():
        raise ValueError(
            "y_train must be a float tensor of shape (N,) or (N, 1) (one output: binary "
            "+-1 or regression labels)"
        )
    if y.numel() != n or (y.ndim == 2 and y.shape[1] != 1) or y.ndim > 2:
        raise ValueError(f"y_train must have shape ({n},) or ({n}, 1), got {tuple(y.shape)}")
    return y.reshape(n).to(dtype)


def check_eps_region(eps: object, region: object) -> float:
    """eps as a float (positive, finite) after checking region is ``ball`` or ``sphere``."""
    if region not in ("ball", "sphere"):
        raise ValueError(f"region must be one of ball, sphere, got {region!r}")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 < eps < math.inf:
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    return float(eps)


def check_model(model: object) -> str:
    """``model`` if it is one of :data:`MODELS`, else a ValueError listing them."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    return str(model)


def check_parts(parts: object) -> tuple[str, ...]:
    """``parts`` (a name or a sequence of names from :data:`PARTS`) as a tuple in PARTS
    order; it must include ``"mean"`` (the covariance alone would save no time)."""
    names = (parts,) if isinstance(parts, str) else parts
    if not isinstance(names, (tuple, list)):
        raise ValueError(
            f"parts must be a tuple of names from {', '.join(PARTS)}, got {short(parts)}"
        )
    for name in names:
        if name not in PARTS:
            raise ValueError(f"parts must name some of {', '.join(PARTS)}, got {short(name)}")
    if "mean" not in names:
        raise ValueError(f'parts must include "mean" (("mean",) or {PARTS}), got {short(parts)}')
    return tuple(p for p in PARTS if p in names)


def check_label_scale(label_scale: object) -> tuple[list[float], bool]:
    """(the label scales c as floats, whether a sequence was given): a finite number, or a
    non-empty sequence of them."""
    if isinstance(label_scale, torch.Tensor):
        label_scale = label_scale.tolist()  # 0-d: a number, 1-d: a list
    batched = not isinstance(label_scale, numbers.Real)
    if batched and (isinstance(label_scale, str) or not isinstance(label_scale, Iterable)):
        raise ValueError(
            f"label_scale must be a number or a sequence of numbers, got {short(label_scale)}"
        )
    scales = list(label_scale) if batched else [label_scale]
    if not scales:
        raise ValueError("label_scale must not be an empty sequence")
    for c in scales:
        if isinstance(c, bool) or not isinstance(c, numbers.Real) or not math.isfinite(c):
            raise ValueError(f"label scales must be finite numbers, got {short(c)}")
    return [float(c) for c in scales], batched


def check_t_lr(t: object, lr: object) -> tuple[int | None, float | str]:
    """(t as an int >= 0 or None for converged, lr as a positive float or ``"auto"`` for
    None / ``"auto"``)."""
    if t is not None:
        if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0:
            raise ValueError(f"t must be None (converged) or an integer >= 0, got {t!r}")
        t = int(t)
    if lr is None or lr == "auto":
        return t, "auto"
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (0 < lr < math.inf):
        raise ValueError(f'lr must be a positive number, "auto" or None, got {lr!r}')
    return t, float(lr)


def check_jitter(jitter: object, most: float) -> float:
    """``jitter`` as a float in [0, ``most``]."""
    if not isinstance(jitter, numbers.Real) or not 0 <= jitter <= most:
        raise ValueError(f"jitter must be a number in [0, {most:g}], got {jitter!r}")
    return float(jitter)
