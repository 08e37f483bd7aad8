"""Saving and loading models without unpickling arbitrary objects.

Formats :func:`load_model` reads, found by content (not by file name):

- a robustlab model file (:func:`save_model`): ``{"family", "spec", "state_dict"}``;
- a state dict (``torch.save(model.state_dict(), path)``, also nested under a
  ``"state_dict"`` / ``"model_state_dict"`` key): rebuilt from robustlab's record in its
  metadata (every robustlab network adds one), or from a robustlab MLP shape, or as the
  user's own class (``model_class="package.module:Class"`` with ``model_kwargs``);
- TorchScript (``torch.jit.script(model).save(path)`` or ``torch.jit.trace``);
- a ``torch.export`` archive (``torch.export.save(program, "model.pt2")``), run through
  ``torch.export.load(path).module()`` at the batch sizes it was exported for (any number
  of points goes through in chunks of those sizes).

Files are opened with ``torch.load(weights_only=True)``: a pickled Python object (a whole
model saved with ``torch.save(model)``) is refused, never unpickled, with a message saying
how to save it instead.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .._atomic import atomic_write
from .._checks import ConfigError, first_line
from ..init import get_init
from ._archives import archive_kind, load_archive
from ._layers import METADATA_KEY
from ._mlp import MLPSpec, mlp, mlp_from_spec
from ._pickles import foreign_globals
from ._resnet import ResNetSpec, resnet_from_spec
from ._state_dicts import misfit, state_dict, user_class
from .conv import CNNSpec, cnn_from_spec

__all__ = ["FAMILIES", "load_model", "save_model"]

# family name -> (spec class, rebuild from spec or spec dict)
FAMILIES = {
    "mlp": (MLPSpec, mlp_from_spec),
    "cnn": (CNNSpec, cnn_from_spec),
    "resnet": (ResNetSpec, resnet_from_spec),
}
HOW_TO_SAVE = (
    "save the weights with torch.save(model.state_dict(), 'model.pt') and pass "
    "model_class ('package.module:Class', and model_kwargs), or save TorchScript "
    "(torch.jit.script(model).save('model.pt')) or torch.export "
    "(torch.export.save(torch.export.export(model, (x,)), 'model.pt2'))"
)


def save_model(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``{"family", "spec": spec dict, "state_dict": tensors}`` atomically.

    ``model`` is a robustlab network (:func:`robustlab.mlp`, :func:`robustlab.cnn`,
    :func:`robustlab.resnet`); its spec records everything needed to rebuild it, forward
    multipliers (NTK parameterization, mean field) included. The file loads with
    ``torch.load(path, weights_only=True)``: plain containers and tensors.
    """
    spec = getattr(model, "spec", None)
    if getattr(spec, "family", None) not in FAMILIES:
        raise ValueError(
            "save_model saves robustlab networks (mlp, cnn, resnet); for another module, "
            "save torch.save(model.state_dict(), path) and load it with its class"
        )
    path = Path(path)
    payload = {"family": spec.family, "spec": spec.to_dict(), "state_dict": model.state_dict()}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _load_weights_only(path: Path) -> object:
    try:
        with warnings.catch_warnings():
            # protocol-4 pickles: torch warns before refusing them; the refusal is ours
            warnings.filterwarnings(
                "ignore", message=r"Detected pickle protocol", category=UserWarning
            )
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        found = foreign_globals(path)
        if found:
            raise ConfigError(
                "",
                f"cannot load model file {str(path)!r}: it holds a pickled Python object "
                f"({found[0]}; a whole model saved with torch.save(model)?), which robustlab "
                f"never unpickles; {HOW_TO_SAVE}",
                ("model_class", "model_kwargs"),
            ) from None
        raise ValueError(f"cannot load model file {str(path)!r}: {first_line(err)}") from None


def _from_record(record: object, where: str) -> nn.Module:
    """Rebuild a robustlab network from ``{"family", "spec"}``."""
    if not isinstance(record, Mapping):
        raise ValueError(f"{where}: robustlab's record of the network is not a dict")
    family = record.get("family", "mlp")
    if family not in FAMILIES:
        raise ValueError(
            f"{where}: unknown network family {family!r}; choices: {', '.join(FAMILIES)}"
        )
    try:
        return FAMILIES[family][1](record["spec"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{where}: bad {family} spec: {first_line(err)}") from None


def _check_shape_flags(model: nn.Module, spec: dict, where: str) -> None:
    """The network recorded in the file against the shape given by the caller."""
    recorded = model.spec
    for key in ("in_dim", "width", "depth", "out_dim"):
        given = spec.get(key)
        if given is not None and getattr(recorded, key, given) != given:
            raise ValueError(
                f"the weights in {where} do not fit the network given: the file records "
                f"{key}={getattr(recorded, key)}, not {given}"
            )
    init = spec.get("init")
    if init is not None and get_init(init).name != recorded.init:
        raise ValueError(f"{where} records init={recorded.init!r}, not {init!r}")


def load_model(
    path: str | os.PathLike,
    spec: dict | None = None,
    *,
    model_class: str | type | None = None,
    model_kwargs: dict | str | None = None,
) -> nn.Module:
    """Load a saved model of any format in the module docstring; see there.

    Args:
        path: the model file.
        spec: :func:`robustlab.mlp` arguments (in_dim, width, depth, out_dim, init, bias,
            mean_field) for a state dict that carries no robustlab record. ``init`` is
            required then: the weights do not say which forward multipliers (NTK
            parameterization, mean field) they need. With a record, given keys must agree.
        model_class: for a state dict of the user's own network: ``"package.module:Class"``
            (imported) or the class itself, built as ``Class(**model_kwargs)``.
        model_kwargs: a dict or a JSON object string.

    Raises:
        ValueError: missing, unreadable, corrupt or pickled-object file; a state dict that
            does not fit; a bad class or kwargs.
    """
    path = Path(path)
    where = repr(str(path))
    if not path.is_file():
        raise ValueError(f"model file {where} not found")
    kind = archive_kind(path)
    if kind and model_class is not None:
        raise ConfigError("model_class", f"applies to state dicts; {where} is a {kind} archive")
    if kind:
        return load_archive(path, kind)
    obj = _load_weights_only(path)
    state = state_dict(obj)
    record = getattr(state, "_metadata", {}).get("", {}).get(METADATA_KEY) if state else None
    if isinstance(obj, Mapping) and "state_dict" in obj and "spec" in obj and model_class is None:
        model, state = _from_record(obj, where), obj["state_dict"]
    elif state is None:
        raise ValueError(f"{where} holds neither a robustlab model nor a state dict of tensors")
    elif model_class is not None:
        model = user_class(model_class, model_kwargs)
    elif record is not None:
        model = _from_record(record, where)
        if spec:
            _check_shape_flags(model, spec, where)
    elif spec is None:
        raise ConfigError(
            "",
            f"{where} holds only a state dict: give the network's shape (in_dim, width, "
            "depth, out_dim, init) or its class as 'package.module:Class' (model_class)",
            ("in_dim", "width", "depth", "out_dim", "init", "model_class"),
        )
    elif spec.get("init") is None:
        raise ConfigError(
            "",
            f"{where} holds a state dict without robustlab's record of the network: give "
            "init, the scheme of its weights (they do not carry the forward multipliers of "
            "ntk_param or mean field), or save it with robustlab.save_model",
            ("init",),
        )
    else:
        model = mlp(**spec)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        why = misfit(model, state, err)
        raise ValueError(
            f"the weights in {where} do not fit the network ({type(model).__name__}): {why}"
        ) from None
    floats = [t for t in state.values() if t.is_floating_point()]
    return model.to(floats[0].dtype if floats else torch.float32)
