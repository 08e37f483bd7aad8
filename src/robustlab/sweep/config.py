"""Sweep configuration: frozen dataclasses, loaded from YAML and validated at the boundary.

A sweep is a grid of network shapes x initializations x training regimes x seeds, trained
on one dataset and measured the same way. The public YAML format::

    name: width-depth-demo
    data: {name: mnist1d, classes: [0, 1], n_train: 1000, n_test: 500, sphere: true}
    model: {family: mlp, bias: false}
    grid:
      width: [16, 32, 64, 128]
      depth: "2:6"            # inclusive range; "2:12:2" with a step; a list; or one int
      init: [lecun, he, ntk]
      regime: [lazy]          # standard | linearized | lazy | mean_field
      alpha: [100]            # alpha-scaling, only used by regime lazy; default [1.0]
    seeds: 4                  # n -> seeds 0..n-1, or an explicit list
    train: {optimizer: gd, loss: mse, lr: auto, steps: 500, target_loss: 1.0e-3}
    measure: {eps: [0.01, 0.1], methods: [exact], points: 1000, at: [init, final]}
    # claims: [C1, C2]        # optional: the paper's claims a sweep tests (report section)

Every validation error is a :class:`~robustlab._checks.ConfigError` (a ``ValueError``)
carrying the path of the offending value: ``str(err)`` reads
``grid.width[2]: expected a positive integer, got -3``.

The sections are :mod:`robustlab.sweep._specs`; the checks that read several of them,
:mod:`robustlab.sweep._across`.

A :class:`Cell` is one point of the grid with one seed; its hash (of its full config as
canonical JSON) identifies its rows in the results store and is what resume checks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .._checks import (
    MAX_AXIS,
    FrozenMap,
    _check_keys,
    _choice,
    _fail,
    _int,
    _items,
    _mapping,
    _nonneg_int,
    _ordered,
    _set,
    _string,
    short,
)
from .._sections import Section
from ..metrics.stability import REGIONS
from ..training.config import LOSSES, OPTIMIZERS, REGIMES, TrainConfig
from ..training.regimes import get_regime
from ._across import check_across
from ._specs import (
    METHODS,
    MODEL_FAMILIES,
    MOMENTS,
    DataSpec,
    GridSpec,
    MeasureSpec,
    ModelSpec,
    TrainSpec,
)
from ._yaml import read_yaml
from .ensembles import EnsembleKey
from .overrides import apply_overrides
from .schema import identity

__all__ = [
    "LOSSES",
    "METHODS",
    "MODEL_FAMILIES",
    "MOMENTS",
    "OPTIMIZERS",
    "REGIMES",
    "REGIONS",
    "Cell",
    "DataSpec",
    "FrozenMap",
    "GridSpec",
    "MeasureSpec",
    "ModelSpec",
    "SweepConfig",
    "TrainSpec",
    "load_config",
]


def _seeds(value: object) -> tuple[int, ...]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return tuple(range(_int("seeds", value, maximum=MAX_AXIS)))
    if not isinstance(value, (list, tuple)):
        _fail(
            "seeds",
            f"expected a positive integer or a list of non-negative integers, got {short(value)}",
        )
    return _items("seeds", value, _nonneg_int)


def _claim_ids(value: object) -> tuple[str, ...]:
    """``claims``: the ids of the paper's claims (:mod:`robustlab.claims.catalog`) a sweep was
    designed to test, in catalog order; empty (the default) for a study of the user's own."""
    from ..claims.catalog import CLAIMS  # plain data; imported here, the claims layer is above

    if value is None or (isinstance(value, (list, tuple)) and not value):
        return ()
    ids = tuple(c.id for c in CLAIMS)
    return _ordered(_items("claims", value, _choice(ids)), ids)


_SECTIONS: dict[str, type[Section]] = {
    "data": DataSpec,
    "model": ModelSpec,
    "grid": GridSpec,
    "train": TrainSpec,
    "measure": MeasureSpec,
}


@dataclass(frozen=True, kw_only=True)
class SweepConfig:
    """A whole sweep. Sections given as mappings are parsed like the YAML ones; ``train``
    and ``data`` may also be a :class:`~robustlab.training.TrainConfig` (with the default
    regime and alpha: those are grid axes) and a :class:`~robustlab.data.DataConfig` (one
    fixed draw: its ``seed``).

    ``claims`` (optional): ids of the paper's claims the sweep was designed to test
    (``[C1, C2]``; :data:`robustlab.claims.CLAIMS`). A store whose sweeps carry claims gets
    the claims section in its report; a config without them (the default) is written
    without the key, so its canonical form and hash are those of earlier versions."""

    name: str
    data: DataSpec
    model: ModelSpec = field(default_factory=ModelSpec)
    grid: GridSpec
    seeds: tuple[int, ...] = (0,)
    train: TrainSpec = field(default_factory=TrainSpec)
    measure: MeasureSpec = field(default_factory=MeasureSpec)
    claims: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _set(self, "name", _string("name", self.name))
        for key, cls in _SECTIONS.items():
            _set(self, key, cls.read(getattr(self, key)))
        _set(self, "seeds", _seeds(self.seeds))
        _set(self, "claims", _claim_ids(self.claims))
        check_across(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SweepConfig:
        """Parse an already-loaded YAML/JSON document."""
        d = _mapping("config", d)
        names = tuple(f.name for f in dataclasses.fields(cls))
        _check_keys("config", d, names, ("name", "data", "grid"))
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, dicts, numbers, strings) that round-trips through load_config."""
        out: dict[str, Any] = {"name": self.name}
        for key in (f.name for f in dataclasses.fields(self)[1:]):
            value = getattr(self, key)
            if key == "claims" and not value:
                continue  # unset: a config without claims keeps its canonical form and hash
            out[key] = list(value) if key in ("seeds", "claims") else value.to_dict()
        return out

    @cached_property
    def hash(self) -> str:
        """First 16 hex digits of sha256 of the canonical JSON of :meth:`to_dict`, less the
        keys that only say how the sweep is reported (``claims``: schema.PRESENTATION_KEYS)."""
        text = json.dumps(identity(self.to_dict()), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def cells(self) -> list[Cell]:
        """Every (width, depth, init, regime, alpha, label scale, seed), the last varying
        fastest (no label scale axis unless ``grid.label_scale`` is set).

        Regimes other than ``lazy`` ignore alpha: their cells take alpha = 1.0, and cells
        that differ only in alpha collapse into one.
        """
        g = self.grid
        seen: set[tuple[Any, ...]] = set()
        out = []
        for w, d, i, r, a, c, s in itertools.product(
            g.width, g.depth, g.init, g.regime, g.alpha, g.label_scales, self.seeds
        ):
            axes = (w, d, i, r, a if get_regime(r).alpha_scaled else 1.0, s)
            if (*axes, c) not in seen:
                seen.add((*axes, c))
                out.append(Cell(*axes, config=self, label_scale=c))
        return out

    def groups(self) -> list[list[Cell]]:
        """Cells that can be trained together as one batched ensemble (see Cell.group_key),
        in order of first appearance in :meth:`cells`."""
        groups: dict[tuple[Any, ...], list[Cell]] = {}
        for cell in self.cells():
            groups.setdefault(cell.group_key(), []).append(cell)
        return list(groups.values())


@dataclass(frozen=True, eq=False)
class Cell:
    """One grid point with one seed: the unit of training, storing and resuming.

    Two cells are equal when their full configs are (whatever sweep they came from).
    ``label_scale``: the cell's point on ``grid.label_scale`` (None when not swept); it is
    written into the cell's data section (:attr:`data`), the one place a cell's config holds it.
    """

    width: int
    depth: int
    init: str
    regime: str
    alpha: float
    seed: int
    config: SweepConfig = field(repr=False)
    label_scale: float | None = None

    @property
    def sweep(self) -> str:
        return self.config.name

    @cached_property
    def data(self) -> DataSpec:
        """The sweep's data section, with the option ``label_scale`` set to this cell's
        label scale where the grid sweeps it."""
        if self.label_scale is None:
            return self.config.data
        options = {**self.config.data.options, "label_scale": self.label_scale}
        return dataclasses.replace(self.config.data, options=options)

    @property
    def model(self) -> ModelSpec:
        return self.config.model

    @property
    def train(self) -> TrainSpec:
        return self.config.train

    @property
    def measure(self) -> MeasureSpec:
        return self.config.measure

    def train_config(self) -> TrainConfig:
        """The trainer's config of this cell's run (the sweep's train section, its regime
        and alpha)."""
        return self.config.train.for_run(self.regime, self.alpha)

    def config_dict(self) -> dict[str, Any]:
        """The cell's full config as plain data: enough to rerun this cell alone."""
        c = self.config
        return {
            "sweep": c.name,
            "data": self.data.to_dict(),
            "model": c.model.to_dict(),
            "width": self.width,
            "depth": self.depth,
            "init": self.init,
            "regime": self.regime,
            "alpha": float(self.alpha),
            "seed": self.seed,
            "train": c.train.to_dict(),
            "measure": c.measure.to_dict(),
        }

    def config_json(self) -> str:
        """Canonical JSON of :meth:`config_dict` (sorted keys, no spaces)."""
        return self._json

    @cached_property
    def _json(self) -> str:
        return json.dumps(
            self.config_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False
        )

    @cached_property
    def hash(self) -> str:
        """First 16 hex digits of sha256(config_json): the cell's identity in the store."""
        return hashlib.sha256(self._json.encode()).hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cell) and self._json == other._json

    def __hash__(self) -> int:
        return hash(self._json)

    def group_key(self) -> tuple[Any, ...]:
        """What must be equal for cells to share one group: everything except init, alpha
        and seed, and the regime up to twins (:class:`~.ensembles.EnsembleKey`)."""
        return EnsembleKey.of(self).group

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Cell:
        """Rebuild a cell from its :meth:`config_dict` (e.g. a stored ``config_json``)."""
        d = _mapping("cell", d)
        axes = ("width", "depth", "init", "regime", "alpha", "seed")
        keys = ("sweep", "data", "model", *axes, "train", "measure")
        _check_keys("cell", d, keys, keys)
        config = SweepConfig(
            name=d["sweep"],
            data=d["data"],
            model=d["model"],
            grid={k: d[k] for k in axes[:-1]},
            seeds=[d["seed"]],
            train=d["train"],
            measure=d["measure"],
        )
        (cell,) = config.cells()
        return cell


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | SweepConfig,
    overrides: Sequence[str] = (),
) -> SweepConfig:
    """Load and validate a sweep config from a YAML file path or an already-parsed mapping.

    The file is read by :func:`robustlab.sweep._yaml.read_yaml`: plain data, bounded in
    size, nesting and alias expansion, with unique keys. ``overrides`` (``"train.steps=5"``,
    ...) are set on the document before it is read
    (:func:`robustlab.sweep.overrides.apply_overrides`), so they are checked like the file's
    own keys and are part of the config.

    Raises:
        ValueError: unreadable, oversized or invalid YAML (one line naming the file), a
            malformed override, or an invalid config (the message starts with the path of
            the bad value).
    """
    if isinstance(source, SweepConfig):
        if not overrides:
            return source
        source = source.to_dict()
    if isinstance(source, Mapping):
        document = source
    else:
        path = Path(source)
        document = read_yaml(path)
        if not isinstance(document, Mapping):
            raise ValueError(f"config file '{path}' must hold a mapping (name:, data:, grid:, ...)")
    return SweepConfig.from_dict(apply_overrides(document, overrides) if overrides else document)
