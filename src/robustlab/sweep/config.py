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
from collections.abc import Mapping, Sequence
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
    _freeze,
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
from ..models.user import GRID_ARGUMENTS, OWN, is_builder
from ..models.user import PARAMETERIZATIONS as BUILDER_PARAMETERIZATIONS
from ..theory.lazy_moments import limit_bytes
from ..training.config import LOSSES, OPTIMIZERS, REGIMES, TrainConfig
from ..training.regimes import get_regime
from ._yaml import read_yaml
from .overrides import apply_overrides

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
    if isinstance(value, str) and value.strip().lower() == OWN:  # a builder's own init
        return OWN
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
    """The network family (``mlp``, ``cnn``, ``resnet``: :mod:`robustlab.models.families`),
    or a builder of the user's own, ``"package.module:name"`` (:mod:`robustlab.models.user`),
    called with ``kwargs`` besides the width, depth, input shape and output size.

    ``in_shape`` is the shape of one input the network takes (default: the data's own,
    e.g. (1, 28, 28) for MNIST); image families need (C, H, W). ``norm`` is the ResNet's
    normalisation (None or ``"batch"``). The builder is only named here: it is imported
    when a sweep runs (:func:`robustlab.sweep.cells.check_config`), never when a config is
    read back from a store.
    """

    family: str = "mlp"
    bias: bool = False
    in_shape: tuple[int, ...] | None = None
    norm: str | None = None
    kwargs: FrozenMap = field(default_factory=FrozenMap)

    _path = "model"
    _added = ("in_shape", "norm", "kwargs")

    def __post_init__(self) -> None:
        if not (self.family in MODEL_FAMILIES or is_builder(self.family)):
            _fail(
                "model.family",
                f"expected one of {', '.join(MODEL_FAMILIES)} or a builder "
                f"'package.module:name', got {short(self.family)}",
            )
        _bool("model.bias", self.bias)
        if self.user and self.bias:
            _fail(
                "model.bias",
                "a builder's network has the biases its builder gives it; pass its own "
                "options in model.kwargs",
            )
        if self.in_shape is not None:
            shape = _items("model.in_shape", self.in_shape, _int, distinct=False)
            _set(self, "in_shape", shape)
        if self.norm is not None:
            if self.user or "norm" not in get_family(self.family).options:
                _fail("model.norm", f"model family {self.family!r} takes no norm")
            _choice(tuple(k for k in NORMS if k is not None))("model.norm", self.norm)
        kwargs = _freeze("model.kwargs", _mapping("model.kwargs", self.kwargs))
        if kwargs and not self.user:
            _fail(
                "model.kwargs",
                f"model family {self.family!r} takes no kwargs: they are passed to a builder "
                "'package.module:name'",
            )
        for name in GRID_ARGUMENTS:
            if name in kwargs:
                _fail(f"model.kwargs.{name}", "robustlab passes it from the grid and the data")
        _set(self, "kwargs", kwargs)

    @property
    def user(self) -> bool:
        """Whether ``family`` names a builder of the user's own."""
        return is_builder(self.family)

    @property
    def parameterizations(self) -> tuple[str, ...]:
        """The init parameterizations the family's networks take."""
        if self.user:
            return BUILDER_PARAMETERIZATIONS
        return get_family(self.family).parameterizations

    def builder_kwargs(self) -> dict[str, Any]:
        """The builder's fixed keyword arguments as plain data (lists, dicts)."""
        return _thaw(self.kwargs)

    def options(self) -> dict[str, Any]:
        """The family's own keyword options (e.g. ``norm``) that are set."""
        return {"norm": self.norm} if self.norm is not None else {}


@dataclass(frozen=True)
class GridSpec(Section):
    """The axes of the sweep; every combination (with every seed) is one :class:`Cell`.

    ``width`` and ``depth`` take an int, a list, or an inclusive range string
    ``"start:stop"`` / ``"start:stop:step"``. ``alpha`` is the alpha-scaling factor of
    Chizat, Oyallon & Bach (2019), used only by regime ``lazy``. ``label_scale`` (optional,
    not swept by default): label scales c, each cell's targets multiplied by its c (the data
    option ``label_scale``, set in the cell's data section, so cells of different c have
    different configs and train in different groups); not with ``data.label_scale``.
    """

    width: tuple[int, ...]
    depth: tuple[int, ...]
    init: tuple[str, ...] = ("lecun",)
    regime: tuple[str, ...] = ("standard",)
    alpha: tuple[float, ...] = (1.0,)
    label_scale: tuple[float, ...] | None = None

    _path = "grid"
    _added = ("label_scale",)  # written only when swept: other configs keep their hashes

    def __post_init__(self) -> None:
        _set(self, "width", _int_axis("grid.width", self.width))
        _set(self, "depth", _int_axis("grid.depth", self.depth))
        _set(self, "init", _items("grid.init", self.init, _init_name))
        _set(self, "regime", _items("grid.regime", self.regime, _choice(REGIMES)))
        _set(self, "alpha", _items("grid.alpha", self.alpha, _positive))
        if self.label_scale is not None:
            _set(self, "label_scale", _items("grid.label_scale", self.label_scale, _positive))

    @property
    def label_scales(self) -> tuple[float | None, ...]:
        """The swept label scales; (None,) when not swept (the data's own targets)."""
        return self.label_scale or (None,)


@dataclass(frozen=True)
class TrainSpec(Section, TrainConfig):
    """The sweep's ``train`` section: the trainer's own
    :class:`~robustlab.training.TrainConfig` (same fields, defaults and checks), less
    ``regime`` and ``alpha``, which are grid axes (``grid.regime``, ``grid.alpha``)."""

    _path = "train"
    _omit = ("regime", "alpha")
    _omit_reason = ": regime and alpha are grid axes (grid.regime, grid.alpha)"
    # written only when set, so configs that leave them out keep their hashes
    _added = ("checkpoint_loss", "lr_backoff", "blowup", "power_iters", "lr_probe", "plateau")

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
        self._check_inits()
        if self.grid.label_scale is not None and "label_scale" in self.data.options:
            _fail(
                "grid.label_scale",
                "data.label_scale is set too; give the label scale in one place (the grid "
                "sweeps it, the data section fixes it)",
            )
        for regime in self.grid.regime:
            self._check_parameterization(regime, get_regime(regime).parameterization)
        self._check_size()

    def _check_size(self) -> None:
        """At most MAX_CELLS cells, and the largest cell within this machine's memory: a
        lower bound of what it holds at once, counted before anything runs."""
        g = self.grid
        swept = (g.label_scale,) if g.label_scale else ()  # label scales: an axis when swept
        axes = (g.width, g.depth, g.init, g.regime, g.alpha, *swept, self.seeds)
        n_cells = math.prod(len(a) for a in axes)
        if n_cells > MAX_CELLS:
            scales = " x label scales" if g.label_scale else ""
            _fail(
                "grid",
                f"{' x '.join(str(len(a)) for a in axes)} (widths x depths x inits x regimes x "
                f"alphas{scales} x seeds) = {n_cells} cells; at most {MAX_CELLS}: split the sweep",
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

    def _check_inits(self) -> None:
        """``own`` for a builder's network only; every scheme with a parameterization the
        family takes (a builder's plain layers have no forward multipliers)."""
        taken = self.model.parameterizations
        for i, init in enumerate(self.grid.init):
            if init == OWN:
                if not self.model.user:
                    _fail(
                        f"grid.init[{i}]",
                        f"init 'own' keeps a builder's own weights; model family "
                        f"{self.model.family!r} draws them from a scheme",
                    )
                continue
            param = get_init(init).parameterization
            if param not in taken:
                _fail(
                    f"grid.init[{i}]",
                    f"init {init!r} has the {param} parameterization, which model family "
                    f"{self.model.family!r} does not have (its layers have no forward "
                    "multipliers); use a standard scheme or 'own'",
                )

    def _check_parameterization(self, regime: str, name: str | None) -> None:
        """A regime that needs a parameterization (mean field) gets one for every init, on
        this model family, at every depth: checked here, before any cell runs."""
        if name is None:
            return
        param = PARAMETERIZATIONS[name]
        if name not in self.model.parameterizations:
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
            if key == "claims" and not value:
                continue  # unset: a config without claims keeps its canonical form and hash
            out[key] = list(value) if key in ("seeds", "claims") else value.to_dict()
        return out

    @cached_property
    def hash(self) -> str:
        """First 16 hex digits of sha256 of the canonical JSON of :meth:`to_dict`."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
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
        and seed, and the regime up to twins (a ``linearized`` run is trained beside its
        ``standard`` twin, same w0 and data, so the group can compare them). The data is the
        cell's own (its label scale included)."""
        c = self.config
        regime = get_regime(self.regime).twin_of or self.regime  # twins share a group
        return (self.data, c.model, self.width, self.depth, regime, c.train, c.measure)

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
