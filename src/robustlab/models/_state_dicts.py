"""State dicts that robustlab did not write: finding one in a loaded object, building the
user's own ``nn.Module`` class for it, and saying on one line why it does not fit (for
:func:`robustlab.load_model`, :mod:`robustlab.models.io`).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping

import torch
from torch import nn

from .._checks import first_line, joined_lines, short

__all__ = ["misfit", "state_dict", "user_class"]


def state_dict(obj: object) -> Mapping[str, torch.Tensor] | None:
    """The state dict in a loaded object: itself, or under a conventional key."""

    def is_state(o: object) -> bool:
        return isinstance(o, Mapping) and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in o.items()
        )

    if is_state(obj):
        return obj  # type: ignore[return-value]
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict"):
            if is_state(obj.get(key)):
                return obj[key]
    return None


def user_class(model_class: str | type, model_kwargs: object) -> nn.Module:
    """Instantiate ``package.module:Class`` (or a class) with keyword arguments."""
    cls = model_class
    if isinstance(model_class, str):
        module_name, sep, attr = model_class.partition(":")
        if not sep or not module_name or not attr:
            raise ValueError(
                f"model class must look like package.module:Class, got {model_class!r}"
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ValueError(
                f"cannot import {module_name!r} for model class {model_class!r}: {first_line(err)}"
            ) from None
        cls = module
        for part in attr.split("."):
            if not hasattr(cls, part):
                raise ValueError(f"module {module_name!r} has no attribute {attr!r}")
            cls = getattr(cls, part)
    # checked before any call: only a Module class is ever called (a function could be
    # os:system, or torch:load with weights_only=False)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"model class {short(model_class)} is not a torch.nn.Module class")
    if isinstance(model_kwargs, str):
        try:
            model_kwargs = json.loads(model_kwargs)
        except json.JSONDecodeError as err:
            raise ValueError(f"model kwargs are not valid JSON: {err}") from None
    kwargs = {} if model_kwargs is None else model_kwargs
    if not isinstance(kwargs, dict):
        raise ValueError(f"model kwargs must be a JSON object (a dict), got {short(kwargs)}")
    try:
        model = cls(**kwargs)
    except Exception as err:
        name = getattr(cls, "__name__", str(cls))
        raise ValueError(f"{name}(**{short(kwargs)}) failed: {first_line(err)}") from None
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"model class {model_class!r} built a {type(model).__name__}, not a torch.nn.Module"
        )
    return model


_LISTED = 5  # keys named per kind of misfit in an error; the rest are counted


def _listed(items: list[str]) -> str:
    """'a, b, c': at most _LISTED items, then how many more."""
    more = f", +{len(items) - _LISTED} more" if len(items) > _LISTED else ""
    return ", ".join(items[:_LISTED]) + more


def misfit(model: nn.Module, state: Mapping[str, torch.Tensor], err: BaseException) -> str:
    """Why ``state`` does not load into ``model``, on one line (the CLI shows one line):
    missing, unexpected and mis-sized keys, each named up to _LISTED times and counted.
    torch's whole message, its lines joined, where keys and shapes agree (a load hook)."""
    own = model.state_dict()

    def dims(t: torch.Tensor) -> str:  # torch.Size([16, 4]) -> 16x4
        return "x".join(map(str, t.shape)) or "scalar"

    kinds = {
        "missing": [k for k in own if k not in state],
        "unexpected": [k for k in state if k not in own],
        "size mismatch in": [
            f"{k}: file {dims(v)} vs model {dims(own[k])}"
            for k, v in state.items()
            if k in own and v.shape != own[k].shape
        ],
    }
    parts = [
        f"{kind} {len(keys)} key{'s' if len(keys) != 1 else ''} ({_listed(keys)})"
        for kind, keys in kinds.items()
        if keys
    ]
    return "; ".join(parts) or joined_lines(err)  # torch's whole message
