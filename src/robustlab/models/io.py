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

import contextlib
import importlib
import json
import os
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.utils import _pytree as pytree

from .._atomic import atomic_write
from .._checks import first_line, joined_lines, short
from ..init import get_init
from ._layers import METADATA_KEY
from ._pickles import foreign_globals, unsafe_export_parts
from .conv import CNNSpec, cnn_from_spec
from .mlp import MLPSpec, mlp, mlp_from_spec
from .resnet import ResNetSpec, resnet_from_spec

__all__ = ["FAMILIES", "load_model", "save_model"]

# family name -> (spec class, rebuild from spec or spec dict)
FAMILIES = {
    "mlp": (MLPSpec, mlp_from_spec),
    "cnn": (CNNSpec, cnn_from_spec),
    "resnet": (ResNetSpec, resnet_from_spec),
}
HOW_TO_SAVE = (
    "save the weights with torch.save(model.state_dict(), 'model.pt') and pass "
    "--model-class package.module:Class [--model-kwargs JSON], or save TorchScript "
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


def _zip_names(path: Path) -> list[str]:
    if not zipfile.is_zipfile(path):
        return []
    with zipfile.ZipFile(path) as z:
        return z.namelist()


def _is_export(names: list[str]) -> bool:
    return any(n.endswith("archive_format") for n in names) and any(
        "/models/" in n and n.endswith(".json") for n in names
    )


def _is_torchscript(names: list[str]) -> bool:
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def _load_torchscript(path: Path) -> nn.Module:
    try:
        with warnings.catch_warnings():
            # torch >= 2.10 deprecates TorchScript; loading a user's archive is still
            # supported and the warning is noise on the CLI (and an error under -W error)
            warnings.filterwarnings(
                "ignore", message=r"`torch\.jit\.load` is", category=DeprecationWarning
            )
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as err:  # corrupt archive: report, don't trace
        raise ValueError(
            f"cannot load TorchScript model {str(path)!r}: {first_line(err)}"
        ) from None


@contextlib.contextmanager
def _weights_only_forced():
    """Make every ``torch.load`` inside the block weights-only, even where the caller asks
    for ``weights_only=False`` (torch.export's loader does so for legacy and pickled
    records): torch reads ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` at each call."""
    key = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
    old = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def _load_export(path: Path) -> nn.Module:
    """``torch.export.load(path).module()``, after checking that torch will unpickle nothing
    outside weights_only (it falls back to full unpickling for some payloads)."""
    unsafe = unsafe_export_parts(path)
    if unsafe:
        raise ValueError(
            f"cannot load model file {str(path)!r}: the torch.export archive holds pickled "
            f"objects ({unsafe[0]}), which robustlab never unpickles; export a program whose "
            "weights and constants are plain tensors"
        )
    try:
        with _weights_only_forced():
            program = torch.export.load(str(path))
            module = program.module()
    except Exception as err:
        raise ValueError(
            f"cannot load torch.export model {str(path)!r}: {first_line(err)}"
        ) from None
    try:
        rows = _batch_range(program)
    except (TypeError, ValueError, AttributeError):  # a symbolic bound: call it as it is
        rows = None
    if rows is None or rows == (1, None):  # takes any batch already (or unknown: as it is)
        return module
    return _ExportedBatches(module, *rows)


def _batch_range(program: torch.export.ExportedProgram) -> tuple[int, int | None] | None:
    """(lo, hi): the rows the program's one input takes in its first dim, hi None for no
    upper bound; (30, 30) for one exported at batch 30 without a dynamic batch. None where
    it cannot be read (several inputs, a size derived from another)."""
    import sympy  # torch.export's own dependency: its size bounds are sympy numbers

    names = program.graph_signature.user_inputs
    if len(names) != 1:
        return None
    val = next((n.meta.get("val") for n in program.graph.nodes if n.name == names[0]), None)
    if not isinstance(val, torch.Tensor) or val.ndim == 0:
        return None
    size = val.shape[0]
    if isinstance(size, int):  # exported without a dynamic batch: that size only
        return size, size
    bounds = program.range_constraints.get(size.node.expr)
    if bounds is None:
        return None
    hi = int(bounds.upper) if isinstance(bounds.upper, sympy.Integer) else None  # not int_oo
    return max(1, int(bounds.lower)), hi


class _ExportedBatches(nn.Module):
    """A torch.export program called with any number of rows.

    A program takes the batch sizes it was exported for: the example input's alone, or
    ``lo..hi`` with ``dynamic_shapes=({0: torch.export.Dim("batch", min=lo, max=hi)},)``.
    ``forward`` runs x (N, ...) in chunks of at most ``hi`` rows, pads a chunk of fewer than
    ``lo`` rows with copies of its last row (detached: no gradient or tangent flows through
    them) and keeps the chunk's own rows of every output tensor, so N rows in give N rows
    out. Rows are independent in a program exported in eval mode (its mode is fixed), so
    the padding changes no kept row.
    """

    def __init__(self, program: nn.Module, lo: int, hi: int | None):
        super().__init__()
        self.program, self.lo, self.hi = program, lo, hi

    def forward(self, x: torch.Tensor) -> object:
        n = x.shape[0]
        if n == 0 or (self.lo <= n and (self.hi is None or n <= self.hi)):
            return self.program(x)
        step = n if self.hi is None else self.hi
        chunks, spec = [], None
        for start in range(0, n, step):
            xc = x[start : start + step]
            b = xc.shape[0]
            if b < self.lo:  # (b, ...) -> (lo, ...)
                pad = xc[-1:].detach().expand(self.lo - b, *xc.shape[1:])
                xc = torch.cat([xc, pad])
            leaves, spec = pytree.tree_flatten(self.program(xc))
            chunks.append([t[:b] if isinstance(t, torch.Tensor) and t.ndim else t for t in leaves])
        # per output leaf: the chunks' rows in order; a leaf that is no per-row tensor as is
        leaves = [
            torch.cat(parts) if isinstance(parts[0], torch.Tensor) and parts[0].ndim else parts[0]
            for parts in zip(*chunks, strict=True)
        ]
        return pytree.tree_unflatten(leaves, spec)


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
            raise ValueError(
                f"cannot load model file {str(path)!r}: it holds a pickled Python object "
                f"({found[0]}; a whole model saved with torch.save(model)?), which robustlab "
                f"never unpickles; {HOW_TO_SAVE}"
            ) from None
        raise ValueError(f"cannot load model file {str(path)!r}: {first_line(err)}") from None


def _state_dict(obj: object) -> Mapping[str, torch.Tensor] | None:
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


def _user_class(model_class: str | type, model_kwargs: object) -> nn.Module:
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


_LISTED = 5  # keys named per kind of misfit in an error; the rest are counted


def _listed(items: list[str]) -> str:
    """'a, b, c': at most _LISTED items, then how many more."""
    more = f", +{len(items) - _LISTED} more" if len(items) > _LISTED else ""
    return ", ".join(items[:_LISTED]) + more


def _misfit(model: nn.Module, state: Mapping[str, torch.Tensor], err: BaseException) -> str:
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
    names = _zip_names(path)
    kind = "torch.export" if _is_export(names) else "TorchScript" if _is_torchscript(names) else ""
    if kind and model_class is not None:
        raise ValueError(f"{where} is a {kind} archive; --model-class applies to state dicts")
    if kind == "torch.export":
        return _load_export(path)
    if kind == "TorchScript":
        return _load_torchscript(path)
    obj = _load_weights_only(path)
    state = _state_dict(obj)
    record = getattr(state, "_metadata", {}).get("", {}).get(METADATA_KEY) if state else None
    if isinstance(obj, Mapping) and "state_dict" in obj and "spec" in obj and model_class is None:
        model, state = _from_record(obj, where), obj["state_dict"]
    elif state is None:
        raise ValueError(f"{where} holds neither a robustlab model nor a state dict of tensors")
    elif model_class is not None:
        model = _user_class(model_class, model_kwargs)
    elif record is not None:
        model = _from_record(record, where)
        if spec:
            _check_shape_flags(model, spec, where)
    elif spec is None:
        raise ValueError(
            f"{where} holds only a state dict: give the network's shape (--in-dim, --width, "
            "--depth, --out-dim, --init) or its class (--model-class package.module:Class)"
        )
    elif spec.get("init") is None:
        raise ValueError(
            f"{where} holds a state dict without robustlab's record of the network: give "
            "--init (the weights do not carry the forward multipliers of ntk_param or mean "
            "field), or save it with robustlab.save_model"
        )
    else:
        model = mlp(**spec)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        why = _misfit(model, state, err)
        raise ValueError(
            f"the weights in {where} do not fit the network ({type(model).__name__}): {why}"
        ) from None
    floats = [t for t in state.values() if t.is_floating_point()]
    return model.to(floats[0].dtype if floats else torch.float32)
