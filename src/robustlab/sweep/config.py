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

Every validation error is a ``ValueError`` whose message starts with the path of the
offending value, e.g. ``grid.width[2]: expected a positive integer, got -3``.

A :class:`Cell` is one point of the grid with one seed; its hash (of its full config as
canonical JSON) identifies its rows in the results store and is what resume checks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .._checks import (
    MAX_AXIS,
    MAX_CELLS,
    FrozenMap,
    _bool,
    _check_keys,
    _choice,
    _fail,
    _int,
    _int_axis,
    _items,
    _mapping,
    _nonneg_int,
    _ordered,
    _positive,
    _set,
    _string,
    _thaw,
    check_memory,
    short,
)
from .._sections import Section, at_path
from ..data.config import DataConfig, option_names
from ..init import PARAMETERIZATIONS, get_init
from ..metrics.regions import get_region
from ..metrics.stability import METHODS as _METHODS
from ..metrics.stability import REGIONS
from ..models.families import FAMILY_NAMES, get_family
from ..models.mlp import n_params
from ..models.resnet import NORMS
from ..theory.lazy_moments import limit_bytes
from ..training.config import LOSSES, OPTIMIZERS, REGIMES, TrainConfig
from ..training.regimes import get_regime
from ._yaml import read_yaml

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

# the average-case methods of perturbation_stability, and "pgd": the worst case over the same
# region by projected gradient ascent (rl.metrics.adversarial, 20 steps, 3 restarts)
METHODS = (*(m for m in _METHODS if m != "auto"), "pgd")
MOMENTS = ("init", "final")  # plus "checkpoint" rows when train.checkpoint_loss is set
POINT_SETS = ("test", "train")
MODEL_FAMILIES = FAMILY_NAMES


def _init_name(path: str, value: object) -> str:
    try:
        # the canonical name: 'LeCun' -> 'lecun', 'custom(1, 2, 3)' -> 'custom(1,2,3)'
        return get_init(value).name  # type: ignore[arg-type]
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


# --- the sections -------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSpec(Section, DataConfig):
    """The sweep's ``data`` section: the data layer's own :class:`~robustlab.data.DataConfig`
    (same fields, checks and options), written flat in YAML, with one difference:

    ``seed``: ``"run"`` (default) draws the data with each run's seed, so a seed varies
    the network *and* its training set (and, for generated data, the teacher and the test
    points); an integer fixes one draw for every run. :meth:`draw` gives a run's draw.
    """

    seed: str | int = "run"

    _path = "data"
    _omit = ("options",)
    _omit_reason = ": write a data set's options as keys of the data section itself"

    def __post_init__(self) -> None:
        with at_path("data"):
            DataConfig.__post_init__(self)

    def _check_seed(self) -> None:
        if self.seed != "run":
            super()._check_seed()

    @classmethod
    def keys(cls, d: Mapping[str, Any]) -> tuple[str, ...]:
        """The fields and every data set's options (the data set's own check then says
        which of them it takes, after their values are checked)."""
        return (*super().keys(d), *option_names())

    @classmethod
    def _arguments(cls, d: Mapping[str, Any]) -> dict[str, Any]:
        own = super().keys(d)
        options = {k: v for k, v in d.items() if k not in own}
        return {**{k: v for k, v in d.items() if k in own}, "options": options}

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), **{k: _thaw(v) for k, v in self.options.items()}}

    def draw(self, run_seed: int) -> DataConfig:
        """The data layer's config of the draw of a run with seed ``run_seed``."""
        return self.as_library(seed=run_seed if self.seed == "run" else self.seed)


@dataclass(frozen=True)
class ModelSpec(Section):
    """The network family (``mlp``, ``cnn``, ``resnet``: :mod:`robustlab.models.families`).

    ``in_shape`` is the shape of one input the network takes (default: the data's own,
    e.g. (1, 28, 28) for MNIST); image families need (C, H, W). ``norm`` is the ResNet's
    normalisation (None or ``"batch"``).
    """

    family: str = "mlp"
    bias: bool = False
    in_shape: tuple[int, ...] | None = None
    norm: str | None = None

    _path = "model"
    _added = ("in_shape", "norm")

    def __post_init__(self) -> None:
        _choice(MODEL_FAMILIES)("model.family", self.family)
        _bool("model.bias", self.bias)
        if self.in_shape is not None:
            shape = _items("model.in_shape", self.in_shape, _int, distinct=False)
            _set(self, "in_shape", shape)
        if self.norm is not None:
            if "norm" not in get_family(self.family).options:
                _fail("model.norm", f"model family {self.family!r} takes no norm")
            _choice(tuple(k for k in NORMS if k is not None))("model.norm", self.norm)

    def options(self) -> dict[str, Any]:
        """The family's own keyword options (e.g. ``norm``) that are set."""
        return {"norm": self.norm} if self.norm is not None else {}


@dataclass(frozen=True)
class GridSpec(Section):
    """The axes of the sweep; every combination (with every seed) is one :class:`Cell`.

    ``width`` and ``depth`` take an int, a list, or an inclusive range string
    ``"start:stop"`` / ``"start:stop:step"``. ``alpha`` is the alpha-scaling factor of
    Chizat, Oyallon & Bach (2019), used only by regime ``lazy``.
    """

    width: tuple[int, ...]
    depth: tuple[int, ...]
    init: tuple[str, ...] = ("lecun",)
    regime: tuple[str, ...] = ("standard",)
    alpha: tuple[float, ...] = (1.0,)

    _path = "grid"

    def __post_init__(self) -> None:
        _set(self, "width", _int_axis("grid.width", self.width))
        _set(self, "depth", _int_axis("grid.depth", self.depth))
        _set(self, "init", _items("grid.init", self.init, _init_name))
        _set(self, "regime", _items("grid.regime", self.regime, _choice(REGIMES)))
        _set(self, "alpha", _items("grid.alpha", self.alpha, _positive))


@dataclass(frozen=True)
class TrainSpec(Section, TrainConfig):
    """The sweep's ``train`` section: the trainer's own
    :class:`~robustlab.training.TrainConfig` (same fields, defaults and checks), less
    ``regime`` and ``alpha``, which are grid axes (``grid.regime``, ``grid.alpha``)."""

    _path = "train"
    _omit = ("regime", "alpha")
    _omit_reason = ": regime and alpha are grid axes (grid.regime, grid.alpha)"
    # written only when set, so configs that leave them out keep their hashes
    _added = ("checkpoint_loss", "lr_backoff", "blowup", "power_iters", "lr_probe")

    def __post_init__(self) -> None:
        with at_path("train"):
            TrainConfig.__post_init__(self)
            if (self.regime, self.alpha) != (TrainConfig.regime, TrainConfig.alpha):
                _fail("regime", "set regimes and alpha in the grid (grid.regime, grid.alpha)")

    def for_run(self, regime: str, alpha: float) -> TrainConfig:
        """The trainer's config of one run of this sweep."""
        return self.as_library(regime=regime, alpha=alpha)


@dataclass(frozen=True)
class MeasureSpec(Section):
    """What is measured on each cell: perturbation stability P at radii ``eps``.

    ``eps``, ``methods`` and ``at`` are sets: they are stored sorted (``at`` and
    ``methods`` in their canonical order), so listing them differently changes no hash.
    ``point_sets``: measure P on the test points, the training points, or both.
    ``lazy_limit``: also record, on each trained cell's rows, P of the infinite-width lazy
    limit trained on the same data (``p_lazy_limit``; :func:`robustlab.theory.lazy_limit_p`).
    """

    eps: tuple[float, ...] = (0.1,)
    methods: tuple[str, ...] = ("exact",)
    points: int = 1000
    region: str = "ball"
    n_samples: int = 64
    at: tuple[str, ...] = ("init", "final")
    laziness: bool = True
    point_sets: tuple[str, ...] = ("test",)
    lazy_limit: bool = False

    _path = "measure"
    _added = ("point_sets", "lazy_limit")

    def __post_init__(self) -> None:
        _set(self, "eps", tuple(sorted(_items("measure.eps", self.eps, _positive))))
        methods = _items("measure.methods", self.methods, _choice(METHODS))
        _set(self, "methods", _ordered(methods, METHODS))
        _set(self, "points", _int("measure.points", self.points))
        _choice(REGIONS)("measure.region", self.region)
        if "exact" in self.methods and get_region(self.region).kappa is None:
            _fail(
                "measure.methods",
                f"'exact' has no closed form on region {self.region!r}; use 'jacobian' or 'mc'",
            )
        _set(self, "n_samples", _int("measure.n_samples", self.n_samples))
        _set(self, "at", _ordered(_items("measure.at", self.at, _choice(MOMENTS)), MOMENTS))
        _bool("measure.laziness", self.laziness)
        _bool("measure.lazy_limit", self.lazy_limit)
        _set(
            self,
            "point_sets",
            _ordered(
                _items("measure.point_sets", self.point_sets, _choice(POINT_SETS)), POINT_SETS
            ),
        )


def _seeds(value: object) -> tuple[int, ...]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return tuple(range(_int("seeds", value, maximum=MAX_AXIS)))
    if not isinstance(value, (list, tuple)):
        _fail(
            "seeds",
            f"expected a positive integer or a list of non-negative integers, got {short(value)}",
        )
    return _items("seeds", value, _nonneg_int)


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
    fixed draw: its ``seed``)."""

    name: str
    data: DataSpec
    model: ModelSpec = field(default_factory=ModelSpec)
    grid: GridSpec
    seeds: tuple[int, ...] = (0,)
    train: TrainSpec = field(default_factory=TrainSpec)
    measure: MeasureSpec = field(default_factory=MeasureSpec)

    def __post_init__(self) -> None:
        _set(self, "name", _string("name", self.name))
        for key, cls in _SECTIONS.items():
            _set(self, key, cls.read(getattr(self, key)))
        _set(self, "seeds", _seeds(self.seeds))
        for regime in self.grid.regime:
            self._check_parameterization(regime, get_regime(regime).parameterization)
        self._check_size()

    def _check_size(self) -> None:
        """At most MAX_CELLS cells, and the largest cell within this machine's memory: a
        lower bound of what it holds at once, counted before anything runs."""
        g = self.grid
        axes = (g.width, g.depth, g.init, g.regime, g.alpha, self.seeds)
        n_cells = math.prod(len(a) for a in axes)
        if n_cells > MAX_CELLS:
            _fail(
                "grid",
                f"{' x '.join(str(len(a)) for a in axes)} (widths x depths x inits x regimes x "
                f"alphas x seeds) = {n_cells} cells; at most {MAX_CELLS}: split the sweep",
            )
        m, L = max(g.width), max(g.depth)
        d = self.data.in_dim or 1  # unknown until read for data other than sphere: 1
        n = self.data.n_train or 0
        points = min(self.measure.points, self.data.n_test or self.measure.points)
        batch = min(self.train.batch_size or n, n)
        lazy = limit_bytes(n, 0, 1) if self.measure.lazy_limit else 0
        parts = {  # bytes of float32 weights and their gradients; activations; points
            "grid.width": 4 * 2 * n_params(d if self.model.family == "mlp" else 1, m, L),
            "data.n_train": 4 * batch * m * (L - 1) + lazy,
            "measure.points": 4 * points * d,
        }
        check_memory(
            max(parts, key=parts.__getitem__),
            f"a cell of width {m} and depth {L} with {n} training and {points} measured points",
            sum(parts.values()),
            "use narrower or shallower networks or fewer points",
        )

    def _check_parameterization(self, regime: str, name: str | None) -> None:
        """A regime that needs a parameterization (mean field) gets one for every init, on
        this model family, at every depth: checked here, before any cell runs."""
        if name is None:
            return
        param = PARAMETERIZATIONS[name]
        if name not in get_family(self.model.family).parameterizations:
            _fail(
                "grid.regime",
                f"regime {regime!r} needs {param.doc}, which model family "
                f"{self.model.family!r} does not have",
            )
        for i, init in enumerate(self.grid.init):
            try:
                get_init(init).with_parameterization(name)
            except ValueError as err:
                _fail(f"grid.init[{i}]", f"regime {regime!r}: {err}")
        for depth in self.grid.depth:
            if param.depth is not None and depth != param.depth:
                _fail(
                    "grid.depth",
                    f"regime {regime!r} is {param.doc} and needs depth {param.depth}, got "
                    f"depth {depth}",
                )

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
            out[key] = list(value) if key == "seeds" else value.to_dict()
        return out

    @cached_property
    def hash(self) -> str:
        """First 16 hex digits of sha256 of the canonical JSON of :meth:`to_dict`."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def cells(self) -> list[Cell]:
        """Every (width, depth, init, regime, alpha, seed), the last varying fastest.

        Regimes other than ``lazy`` ignore alpha: their cells take alpha = 1.0, and cells
        that differ only in alpha collapse into one.
        """
        g = self.grid
        seen: set[tuple[Any, ...]] = set()
        out = []
        for w, d, i, r, a, s in itertools.product(
            g.width, g.depth, g.init, g.regime, g.alpha, self.seeds
        ):
            axes = (w, d, i, r, a if get_regime(r).alpha_scaled else 1.0, s)
            if axes not in seen:
                seen.add(axes)
                out.append(Cell(*axes, config=self))
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
    """

    width: int
    depth: int
    init: str
    regime: str
    alpha: float
    seed: int
    config: SweepConfig = field(repr=False)

    @property
    def sweep(self) -> str:
        return self.config.name

    @property
    def data(self) -> DataSpec:
        return self.config.data

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
            "data": c.data.to_dict(),
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
        and seed, and the regime up to twins (a ``linearized`` run is trained beside its
        ``standard`` twin, same w0 and data, so the group can compare them)."""
        c = self.config
        regime = get_regime(self.regime).twin_of or self.regime  # twins share a group
        return (c.data, c.model, self.width, self.depth, regime, c.train, c.measure)

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


# --- YAML ---------------------------------------------------------------------------------


def load_config(source: str | os.PathLike[str] | Mapping[str, Any] | SweepConfig) -> SweepConfig:
    """Load and validate a sweep config from a YAML file path or an already-parsed mapping.

    The file is read by :func:`robustlab.sweep._yaml.read_yaml`: plain data, bounded in
    size, nesting and alias expansion, with unique keys.

    Raises:
        ValueError: unreadable, oversized or invalid YAML (one line naming the file), or an
            invalid config (the message starts with the path of the bad value).
    """
    if isinstance(source, SweepConfig):
        return source
    if isinstance(source, Mapping):
        return SweepConfig.from_dict(source)
    path = Path(source)
    document = read_yaml(path)
    if not isinstance(document, Mapping):
        raise ValueError(f"config file '{path}' must hold a mapping (name:, data:, grid:, ...)")
    return SweepConfig.from_dict(document)
