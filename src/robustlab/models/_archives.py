"""Model archives that are not pickles: TorchScript and ``torch.export`` programs, found by
the names inside their zip files and loaded without unpickling anything (for
:func:`robustlab.load_model`, :mod:`robustlab.models.io`).

A ``torch.export`` program runs at the batch sizes it was exported for; any number of points
goes through it in chunks of those sizes (:class:`_ExportedBatches`).
"""

from __future__ import annotations

import contextlib
import os
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn
from torch.utils import _pytree as pytree

from .._checks import first_line
from ._pickles import unsafe_export_parts

__all__ = ["ARCHIVE_KINDS", "archive_kind", "load_archive"]


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


def archive_kind(path: Path) -> str:
    """``"torch.export"`` or ``"TorchScript"`` for those archives, "" for any other file."""
    names = _zip_names(path)
    return "torch.export" if _is_export(names) else "TorchScript" if _is_torchscript(names) else ""


ARCHIVE_KINDS = {"torch.export": _load_export, "TorchScript": _load_torchscript}


def load_archive(path: Path, kind: str) -> nn.Module:
    """The module in the archive ``path`` of ``kind`` (:func:`archive_kind`)."""
    return ARCHIVE_KINDS[kind](path)
