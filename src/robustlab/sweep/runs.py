"""A cell's run in its group (:class:`Run`), and the group's runs built (:class:`GroupBuild`):
its data draws, each initial network once, each cell's run.

Cells of one group share data (one draw per seed), architecture and regime family; the
cells that differ only in regime (twins) or alpha share their initial network
(:attr:`~.ensembles.EnsembleKey.network`). :class:`GroupBuild` builds each such network
once and hands every cell a copy of its own: a forward in training mode (BatchNorm) updates
a network's buffers, and a cell's must not see its twin's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from ..data.config import DataConfig
from ..models import build_model, build_user_model
from ..training.losses import get_loss
from ..training.regimes import get_regime
from ..training.result import TrainResult
from .config import Cell
from .ensembles import EnsembleKey
from .measures import Gradients, point_sets
from .rows import Row, base_row

__all__ = ["GroupBuild", "Run", "build_network", "load_dataset", "out_dim"]


@lru_cache(maxsize=64)
def load_dataset(config: DataConfig, dtype: str):
    """One data draw (a seed varies the network *and* the data it is trained on)."""
    return config.load().to(dtype=getattr(torch, dtype))


def out_dim(ds, loss: str) -> int:
    """The network's outputs for the data's task under ``loss``."""
    n_classes = ds.n_classes if ds.task == "multiclass" else 0
    return get_loss(loss).out_dim(n_classes if n_classes > 2 else 1)


def build_network(cell: Cell, in_shape, k: int, dtype: str = "float32", device: str = "cpu"):
    """The cell's network at init with ``k`` outputs, drawn from its seed: the family's (a
    generator seeded with it), or the user's builder's
    (:func:`robustlab.models.build_user_model`)."""
    c = cell
    if c.model.user:
        return build_user_model(
            c.model.family, in_shape, c.width, c.depth, k, init=c.init,
            kwargs=c.model.builder_kwargs(), seed=c.seed, dtype=getattr(torch, dtype),
            device=device,
        )  # fmt: skip
    return build_model(
        c.model.family, in_shape, c.width, c.depth, k, init=c.init, bias=c.model.bias,
        generator=torch.Generator().manual_seed(c.seed),
        parameterization=get_regime(c.regime).parameterization, dtype=getattr(torch, dtype),
        device=device, **c.model.options(),
    )  # fmt: skip


@dataclass(frozen=True)
class Run:
    """What a cell's rows need.

    Attributes:
        index: the cell's place in its group (it keys the shared gradients).
        cell: the cell.
        key: its :class:`~.ensembles.EnsembleKey`.
        net: its network at init (its own copy; training leaves it as it is).
        dataset: its data draw.
        points: ``{point set: (n, ...) inputs}`` P is measured on.
        base: the cell's facts (:func:`~.rows.base_row`), on every one of its rows.
        grads: input gradients, shared by the group's runs.
        result: the training result; None until :meth:`trained`.
    """

    index: int
    cell: Cell
    key: EnsembleKey
    net: nn.Module
    dataset: Any
    points: dict[str, torch.Tensor]
    base: Row
    grads: Gradients
    result: TrainResult | None = None

    def trained(self, result: TrainResult) -> Run:
        """This run with its training result."""
        return replace(self, result=result)


class GroupBuild:
    """The runs of one group's cells (in ``dtype`` on ``device``), sharing one gradient cache:
    each data draw loaded once, each initial network built once."""

    def __init__(self, cells: list[Cell], dtype: str, device: str) -> None:
        self.cells, self.dtype, self.device = cells, dtype, device
        self.grads = Gradients()
        self._data: dict[int, object] = {}
        self._nets: dict[tuple, nn.Module] = {}
        first = self.dataset(cells[0].seed)
        self.out_dim = out_dim(first, cells[0].train.loss)
        self.in_shape = cells[0].model.in_shape or first.x_shape

    def dataset(self, seed: int):
        """The group's data drawn with ``seed``, on the group's device."""
        if seed not in self._data:
            draw = load_dataset(self.cells[0].data.draw(seed), self.dtype)
            self._data[seed] = draw.to(device=self.device)
        return self._data[seed]

    def network(self, cell: Cell, key: EnsembleKey) -> nn.Module:
        """A copy of ``cell``'s initial network (built the first time its key asks)."""
        if key.network not in self._nets:
            self._nets[key.network] = build_network(
                cell, self.in_shape, self.out_dim, self.dtype, self.device
            )
        return copy.deepcopy(self._nets[key.network])

    def runs(self) -> list[Run]:
        """One run per cell, in order: network, data, point sets and base row (untrained)."""
        out = []
        for i, cell in enumerate(self.cells):
            key = EnsembleKey.of(cell)
            net, ds = self.network(cell, key), self.dataset(cell.seed)
            points = point_sets(ds, cell)
            out.append(Run(i, cell, key, net, ds, points, base_row(cell, ds, net), self.grads))
        return out
