"""The sections of a sweep config (``data``, ``model``, ``grid``, ``train``, ``measure``):
frozen dataclasses read by :class:`robustlab._sections.Section`, each checking its own
fields (an error names the field; the section's YAML path is put in front of it).

``data`` and ``train`` are the library's own configs (:class:`~robustlab.data.DataConfig`,
:class:`~robustlab.training.TrainConfig`); ``model``, ``grid`` and ``measure`` exist only in
sweeps. What depends on several sections (a regime's parameterization on the model family,
the sweep's size) is checked by :class:`robustlab.sweep.config.SweepConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._checks import (
    FrozenMap,
    _bool,
    _choice,
    _fail,
    _freeze,
    _int,
    _int_axis,
    _items,
    _mapping,
    _ordered,
    _set,
    _thaw,
    check_positive,
    short,
)
from .._sections import Section
from ..data.config import DataConfig, option_names
from ..init import get_init
from ..metrics.regions import get_region
from ..metrics.stability import METHODS as _METHODS
from ..metrics.stability import REGIONS
from ..models._resnet import NORMS
from ..models.families import FAMILY_NAMES, get_family
from ..models.user import GRID_ARGUMENTS, OWN, is_builder
from ..models.user import PARAMETERIZATIONS as BUILDER_PARAMETERIZATIONS
from ..training.config import REGIMES, TrainConfig

__all__ = [
    "METHODS",
    "MODEL_FAMILIES",
    "MOMENTS",
    "POINT_SETS",
    "DataSpec",
    "GridSpec",
    "MeasureSpec",
    "ModelSpec",
    "TrainSpec",
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
        message = str(err)
    _fail(path, message)


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

    def _check(self) -> None:
        if not (self.family in MODEL_FAMILIES or is_builder(self.family)):
            _fail(
                "family",
                f"expected one of {', '.join(MODEL_FAMILIES)} or a builder "
                f"'package.module:name', got {short(self.family)}",
            )
        _bool("bias", self.bias)
        if self.user and self.bias:
            _fail(
                "bias",
                "a builder's network has the biases its builder gives it; pass its own "
                "options in model.kwargs",
            )
        if self.in_shape is not None:
            shape = _items("in_shape", self.in_shape, _int, distinct=False)
            _set(self, "in_shape", shape)
        if self.norm is not None:
            if self.user or "norm" not in get_family(self.family).options:
                _fail("norm", f"model family {self.family!r} takes no norm")
            _choice(tuple(k for k in NORMS if k is not None))("norm", self.norm)
        kwargs = _freeze("kwargs", _mapping("kwargs", self.kwargs))
        if kwargs and not self.user:
            _fail(
                "kwargs",
                f"model family {self.family!r} takes no kwargs: they are passed to a builder "
                "'package.module:name'",
            )
        for name in GRID_ARGUMENTS:
            if name in kwargs:
                _fail(f"kwargs.{name}", "robustlab passes it from the grid and the data")
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

    def _check(self) -> None:
        _set(self, "width", _int_axis("width", self.width))
        _set(self, "depth", _int_axis("depth", self.depth))
        _set(self, "init", _items("init", self.init, _init_name))
        _set(self, "regime", _items("regime", self.regime, _choice(REGIMES)))
        _set(self, "alpha", _items("alpha", self.alpha, check_positive))
        if self.label_scale is not None:
            _set(self, "label_scale", _items("label_scale", self.label_scale, check_positive))

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

    def _check(self) -> None:
        super()._check()  # the trainer's own checks
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

    def _check(self) -> None:
        _set(self, "eps", tuple(sorted(_items("eps", self.eps, check_positive))))
        methods = _items("methods", self.methods, _choice(METHODS))
        _set(self, "methods", _ordered(methods, METHODS))
        _set(self, "points", _int("points", self.points))
        _choice(REGIONS)("region", self.region)
        if "exact" in self.methods and get_region(self.region).kappa is None:
            _fail(
                "methods",
                f"'exact' has no closed form on region {self.region!r}; use 'jacobian' or 'mc'",
            )
        _set(self, "n_samples", _int("n_samples", self.n_samples))
        _set(self, "at", _ordered(_items("at", self.at, _choice(MOMENTS)), MOMENTS))
        _bool("laziness", self.laziness)
        _bool("lazy_limit", self.lazy_limit)
        point_sets = _items("point_sets", self.point_sets, _choice(POINT_SETS))
        _set(self, "point_sets", _ordered(point_sets, POINT_SETS))
