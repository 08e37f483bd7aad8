"""Saving and loading models without unpickling arbitrary objects."""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from .._atomic import atomic_write
from .mlp import MLP, mlp_from_spec

__all__ = ["load_model", "save_model"]


def save_model(model: MLP, path: str | os.PathLike) -> Path:
    """Write ``{"spec": spec dict, "state_dict": tensors}`` atomically (temp file + rename).

    The file loads with ``torch.load(path, weights_only=True)``: plain containers and tensors.
    """
    path = Path(path)
    payload = {"spec": model.spec.to_dict(), "state_dict": model.state_dict()}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())


def load_model(path: str | os.PathLike, spec: dict | None = None) -> nn.Module:
    """Load a model saved by :func:`save_model`, a bare state dict (with ``spec``), or TorchScript.

    ``torch.load(..., weights_only=True)`` only; a TorchScript archive goes through
    ``torch.jit.load``. ``spec`` is a dict of :func:`robustlab.mlp` arguments (in_dim, width,
    depth, out_dim, init, bias) used when the file holds only a state dict.

    Raises:
        ValueError: missing, unreadable or corrupt file; a state dict that does not fit.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file {str(path)!r} not found")
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():
                # torch >= 2.10 deprecates TorchScript; loading a user's archive is still
                # supported and the warning is noise on the CLI (and an error under -W error)
                warnings.filterwarnings(
                    "ignore", message=r"`torch\.jit\.load` is", category=DeprecationWarning
                )
                return torch.jit.load(str(path), map_location="cpu")
        except Exception as err:  # corrupt archive: report, don't trace
            raise ValueError(f"cannot load TorchScript model {str(path)!r}: {err}") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot load model file {str(path)!r}: {first}") from None
    if isinstance(obj, dict) and "state_dict" in obj and "spec" in obj:
        model = mlp_from_spec(obj["spec"])
        state = obj["state_dict"]
    elif isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        if spec is None:
            raise ValueError(
                f"{str(path)!r} holds only a state dict: give the network's shape "
                "(--in-dim, --width, --depth, --out-dim)"
            )
        from .mlp import mlp

        model = mlp(**spec)
        state = obj
    else:
        raise ValueError(f"{str(path)!r} is neither a robustlab model nor a state dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ValueError(f"the weights in {str(path)!r} do not fit the network: {first}") from None
    dtype = next(iter(state.values())).dtype if state else torch.float32
    return model.to(dtype)
