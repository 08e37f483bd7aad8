"""Which cells train together: one key, read at three levels.

A cell's :class:`EnsembleKey` holds

- ``group``: what must be equal for cells to run in one :func:`~.cells.run_group` call
  (:meth:`SweepConfig.groups <robustlab.sweep.config.SweepConfig.groups>`): everything but
  init, alpha and seed, and the regime up to twins. A group runs in chunks of at most
  :data:`MAX_ENSEMBLE` cells (:func:`split_group`);
- ``regime``: inside a chunk, one vmapped ensemble per regime and forward function
  (:func:`ensembles`: init schemes under the NTK parameterization have their own forward
  multipliers, twin regimes their own objective);
- ``init``, ``seed`` (and the regime's parameterization): the initial network and its data
  draw (:attr:`EnsembleKey.network`), built once per chunk, and ``lr="auto"`` resolved once
  for it;
- ``alpha``: with the network, what a run and its twin share (:func:`twins`: a
  ``linearized`` run beside its ``standard`` one, same w0 and data).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from ..training.regimes import get_regime

if TYPE_CHECKING:
    from .config import Cell

__all__ = ["MAX_ENSEMBLE", "EnsembleKey", "ensembles", "split_group", "twins"]

MAX_ENSEMBLE = 64  # cells trained together at most (bounds memory)

T = TypeVar("T")


@dataclass(frozen=True)
class EnsembleKey:
    """Where a cell trains: its group, ensemble, initial network and twin (module docstring)."""

    group: tuple[Any, ...]
    regime: str
    init: str
    seed: int
    alpha: float

    @classmethod
    def of(cls, cell: Cell) -> EnsembleKey:
        """The key of ``cell``. Its group: data (the cell's own, label scale included), model,
        width, depth, regime up to twins (a twin shares its run's group), train and measure."""
        c = cell.config
        family = get_regime(cell.regime).twin_of or cell.regime
        group = (cell.data, c.model, cell.width, cell.depth, family, c.train, c.measure)
        return cls(group, cell.regime, cell.init, cell.seed, cell.alpha)

    @property
    def network(self) -> tuple[str, int, str | None]:
        """The initial network within the group: init scheme, seed (of the weights and of the
        data draw) and the regime's parameterization."""
        return (self.init, self.seed, get_regime(self.regime).parameterization)

    @property
    def twinned(self) -> EnsembleKey | None:
        """The key of the run this one is the twin of (its ``twin_of`` regime), or None."""
        of = get_regime(self.regime).twin_of
        return replace(self, regime=of) if of else None


def split_group(group: list[T]) -> list[list[T]]:
    """The group in order, in chunks of at most :data:`MAX_ENSEMBLE` cells."""
    return [group[i : i + MAX_ENSEMBLE] for i in range(0, len(group), MAX_ENSEMBLE)]


def ensembles(keys: Sequence[EnsembleKey], multipliers: Sequence[tuple]) -> list[list[int]]:
    """Indices of the members of each vmapped ensemble: one per (regime, forward multipliers
    of the network), in order of first appearance."""
    out: dict[tuple, list[int]] = {}
    for i, (key, forward) in enumerate(zip(keys, multipliers, strict=True)):
        out.setdefault((key.regime, tuple(forward)), []).append(i)
    return list(out.values())


def twins(keys: Sequence[EnsembleKey]) -> dict[int, int]:
    """``{i: j}``: run j is run i's twin (e.g. standard -> linearized: same init, seed, alpha)."""
    index = {key: i for i, key in enumerate(keys)}
    pairs = {index[k.twinned]: j for j, k in enumerate(keys) if k.twinned in index}
    return dict(sorted(pairs.items()))
