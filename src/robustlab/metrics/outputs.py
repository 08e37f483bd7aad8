"""Which output of a model a metric measures: ``output=`` and labels ``y=``.

A model may return one tensor (N, k), or a tuple, list or dict of them. ``output`` picks
the quantity f whose stability is measured, as one selector or a tuple of selectors
applied left to right:

- ``None``: the model's output, which must be one tensor;
- an ``int`` i: element i of a tuple/list (or key i of a dict); on a tensor, column i
  (logit i) of its (N, k) form;
- a ``str`` key: that entry of a dict;
- ``"margin"``: the true-class logit minus the largest other one, ``z_y - max_{j != y} z_j``
  (needs ``y``, class indices 0..k-1). For one output (k = 1) it is the binary margin
  ``y * z`` with y in {-1, +1} (robustlab's binary labels). Negative means misclassified;
- ``"label"``: the true-class logit ``z_y`` (needs ``y``);
- a callable: ``output(out) -> tensor``, given whatever the model returned.

E.g. ``output=("logits", "margin")`` for a model returning ``{"logits": z, "aux": a}``.
The labels are those of the clean points: a perturbed point keeps its point's label.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

__all__ = ["LABELLED", "OutputSelector", "check_labels", "check_output", "select"]

LABELLED = ("margin", "label")  # the selectors that read y
OutputSelector = int | str | Callable[[Any], torch.Tensor]


def check_output(output: object) -> tuple:
    """Validate ``output=`` and return it as a tuple of selectors (empty for None)."""
    steps = tuple(output) if isinstance(output, (tuple, list)) else (output,)
    if output is None:
        return ()
    for step in steps:
        ok = callable(step) or (isinstance(step, (int, str)) and not isinstance(step, bool))
        if not ok:
            raise ValueError(
                f"output must be an index, a dict key, 'margin', 'label', a callable or a tuple "
                f"of those, got {step!r}"
            )
    return steps


def needs_labels(steps: tuple) -> bool:
    """Whether the selectors read labels (``"margin"`` or ``"label"``)."""
    return any(isinstance(s, str) and s in LABELLED for s in steps)


def check_labels(y: object, n: int, device: torch.device | None) -> torch.Tensor | None:
    """Labels as a (N,) tensor on ``device`` (values are checked against k on first use)."""
    if y is None:
        return None
    if not isinstance(y, torch.Tensor):
        raise ValueError(f"y must be a torch.Tensor of shape (N,), got {type(y).__name__}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"y must have shape ({n},) to match x, got shape {tuple(y.shape)}")
    return y.detach().to(device)


def _describe(out: object) -> str:
    if isinstance(out, Mapping):
        return f"a dict with keys {sorted(map(str, out))}"
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of {len(out)} outputs"
    if isinstance(out, torch.Tensor):
        return f"a tensor of shape {tuple(out.shape)}"
    return f"a {type(out).__name__}"


def _as_rows(out: object, step: object) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        hint = "choose one with output= (an index, a dict key or a callable)"
        if step is not None:
            hint = f"select the logits first, e.g. output=(0, {step!r})"
        raise ValueError(f"the model returns {_describe(out)}; {hint}")
    return out.reshape(out.shape[0], -1)  # (N, ...) -> (N, k)


def _margin(z: torch.Tensor, y: torch.Tensor | None, label_only: bool) -> torch.Tensor:
    """(rows, k) logits and (rows,) labels -> (rows, 1) margin or true-class logit."""
    name = "label" if label_only else "margin"
    if y is None:
        raise ValueError(f"output={name!r} needs the labels: pass y= (N,)")
    k = z.shape[1]
    if k == 1:
        if label_only:
            raise ValueError("output='label' needs k >= 2 logits; the output has k = 1")
        return z * y.to(z.dtype).reshape(-1, 1)  # binary margin y f, y in {-1, +1}
    idx = y.long().reshape(-1, 1)
    true = z.gather(1, idx)  # (rows, 1)
    if label_only:
        return true
    others = z.masked_fill(torch.nn.functional.one_hot(idx[:, 0], k).bool(), float("-inf"))
    return true - others.amax(1, keepdim=True)


def select(out: object, steps: Sequence, y: torch.Tensor | None = None) -> torch.Tensor:
    """Apply the selectors to a model output; returns (N, k)."""
    for step in steps:
        if callable(step) and not isinstance(step, str):
            out = step(out)
        elif isinstance(step, str) and step in LABELLED:
            out = _margin(_as_rows(out, step), y, step == "label")
        elif isinstance(out, Mapping):
            if step not in out:
                raise ValueError(f"output={step!r} is not a key of the model's {_describe(out)}")
            out = out[step]
        elif isinstance(out, (tuple, list)) and isinstance(step, int):
            if not -len(out) <= step < len(out):
                raise ValueError(f"output={step} but the model returns {_describe(out)}")
            out = out[step]
        elif isinstance(out, torch.Tensor) and isinstance(step, int):
            z = _as_rows(out, None)
            if not -z.shape[1] <= step < z.shape[1]:
                raise ValueError(f"output={step} but the output has k = {z.shape[1]} columns")
            out = z[:, step : step + 1 if step != -1 else None]
        else:
            raise ValueError(f"output={step!r} does not apply: the model returns {_describe(out)}")
    return _as_rows(out, None)


def validate_labels(z: torch.Tensor, steps: tuple, y: torch.Tensor | None) -> torch.Tensor | None:
    """Check labels against the logits that ``"margin"``/``"label"`` read; cast to index/sign.

    ``z`` is the (rows, k) tensor the labelled selector receives. Returns y ready for use:
    int64 class indices (k >= 2) or float signs (k = 1).
    """
    if y is None or not needs_labels(steps):
        return y
    k = z.shape[1]
    if k == 1:
        if "label" in steps:
            raise ValueError("output='label' needs k >= 2 logits; the output has k = 1")
        if not bool(((y == 1) | (y == -1)).all()):
            raise ValueError("output='margin' on one output needs labels in {-1, +1}")
        return y.to(z.dtype)
    if y.is_floating_point() and not bool((y == y.round()).all()):
        raise ValueError("y must hold class indices 0..k-1, got non-integer values")
    bad = (y < 0) | (y >= k)
    if bool(bad.any()):
        raise ValueError(f"y must hold class indices 0..{k - 1}, got {y[bad][0].item()!r}")
    return y.long()


def logits_before_labels(out: object, steps: tuple) -> torch.Tensor | None:
    """The (rows, k) tensor the first labelled selector reads (None without one)."""
    for i, step in enumerate(steps):
        if isinstance(step, str) and step in LABELLED:
            return _as_rows(select(out, steps[:i]) if i else out, step)
    return None
