"""The data layer's configuration: one frozen dataclass naming a dataset draw.

:func:`robustlab.data.load` builds a :class:`DataConfig` from its arguments and loads it; a
sweep's ``data:`` section is one too (:class:`robustlab.sweep.DataSpec`). Everything that
can be checked without reading the data is checked here, once: the dataset name resolves
(built-in, ``mnist:DIR``/``cifar10:DIR``, or a file path with a known suffix), every option
is one the dataset takes, and every value has its type and range. What depends on the data
itself (classes present, sizes available, the label column of a CSV) is checked by
:meth:`DataConfig.load`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .._checks import (
    FrozenMap,
    _bool,
    _choice,
    _fail,
    _freeze,
    _int,
    _items,
    _mapping,
    _nonneg_int,
    _number,
    _set,
    _string,
    check_memory,
    check_positive,
    short,
)
from .dataset import Dataset
from .registry import (
    BUILTINS,
    COMMON_OPTIONS,
    PREFIXES,
    SUBSET_CHOICES,
    SUFFIXES,
    TASK_CHOICES,
    resolve,
)
from .synthetic import TEACHERS

__all__ = ["OPTION_CHECKS", "DataConfig", "option_names"]

DTYPES = ("float32", "float64")
_TORCH_DTYPES = {torch.float32: "float32", torch.float64: "float64"}


def _dtype(path: str, value: object) -> str:
    return _choice(DTYPES)(path, _TORCH_DTYPES.get(value, value))  # type: ignore[arg-type]


def _label_column(path: str, value: object) -> str | int:
    if isinstance(value, str):
        return _string(path, value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value  # negative counts from the end, as in Python
    _fail(path, f"expected a column name or an integer index, got {short(value)}")


def _header(path: str, value: object) -> bool | None:
    return None if value is None else _bool(path, value)


def _label(path: str, value: object) -> Any:
    """A class label: an integer, a finite number or a name (CSV class names)."""
    if isinstance(value, str):
        return _string(path, value)
    _number(path, value, "a class label (a number or a name)", math.isfinite)
    return _freeze(path, value)  # an int stays an int


def _group(path: str, value: object) -> tuple[Any, ...]:
    """One class of a grouped ``classes``: a non-empty list of distinct labels."""
    if not isinstance(value, (list, tuple)):
        _fail(path, f"expected a group (a list of labels) like the other items, got {short(value)}")
    return _items(path, value, _label)


def _classes(path: str, value: object) -> tuple[Any, ...]:
    """The classes of the task, in index order: two or more distinct labels, or two or more
    disjoint non-empty groups of labels (a list of lists), each group one class."""
    given = value.tolist() if hasattr(value, "tolist") else value  # tensor, array
    grouped = isinstance(given, (list, tuple)) and any(isinstance(v, (list, tuple)) for v in given)
    classes = _items(path, given, _group if grouped else _label, distinct=not grouped)
    if len(classes) < 2:
        _fail(path, f"expected at least two classes, got {short(value)}")
    seen: dict[Any, int] = {}  # label -> the group holding it
    for i, group in enumerate(classes if grouped else ()):
        for label in group:
            if label in seen:
                _fail(
                    f"{path}[{i}]",
                    f"label {short(label)} is in group {seen[label]} too; groups must be disjoint",
                )
            seen[label] = i
    return classes


def _fraction(path: str, value: object) -> float:
    return _number(path, value, "a number in (0, 1)", lambda x: 0 < x < 1)


def _pca(path: str, value: object) -> int | None:
    return None if value is None else _int(path, value)  # k <= min(n_train, d): pipeline


# One check per option name, whatever dataset takes it (``path`` is the option's name, or
# its YAML path in a sweep). Options with no entry take any plain data.
OPTION_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "standardize": _bool,
    "dtype": _dtype,
    "subset": _choice(SUBSET_CHOICES),
    "task": _choice(TASK_CHOICES),
    "teacher": _choice(TEACHERS),
    "teacher_width": _int,
    "label_noise": lambda p, v: _number(p, v, "a number >= 0", lambda x: x >= 0),
    "label_scale": check_positive,
    "pca": _pca,
    "label_flip": lambda p, v: _number(p, v, "a number in [0, 1)", lambda x: 0 <= x < 1),
    "noise_on_test": _bool,
    "test_fraction": _fraction,
    "label_column": _label_column,
    "header": _header,
    "delimiter": _string,
    "num_samples": lambda p, v: _int(p, v, minimum=20),
    "generator_seed": _nonneg_int,
}


@dataclass(frozen=True)
class DataConfig:
    """One dataset draw: the arguments of :func:`robustlab.data.load`, checked.

    Attributes:
        name: a built-in name (``sphere``, ``mnist1d``, ``digits``), ``mnist:DIR``,
            ``cifar10:DIR``, or a path to a ``.npz``/``.pt``/``.csv``/``.npy`` file.
        classes: the classes to keep, in index order (two: a -> -1, b -> +1); or groups of
            labels, each group one class (``[[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]``: digits 0-4
            -> -1, 5-9 -> +1); groups are disjoint and non-empty.
        n_train, n_test: sizes (a seeded subset; the sample sizes of ``sphere``).
        in_dim: the sphere's dimension; for other data, the dimension it must have (k
            with the ``pca: k`` option).
        sphere: project each input onto the unit sphere (after ``standardize`` and
            ``pca``). Off by default for every data set: the ``sphere`` data set draws its
            points on the sphere itself; ``digits`` and the others need ``sphere: true``.
        seed: the draw (subsets, splits, generated data).
        options: the dataset's own options (see :func:`robustlab.data.datasets` and
            ``OPTION_CHECKS``), as given; defaults are filled in by :meth:`load`.
    """

    name: str
    classes: tuple[Any, ...] | None = None
    n_train: int | None = None
    n_test: int | None = None
    in_dim: int | None = None
    sphere: bool = False
    seed: int = 0
    options: FrozenMap = field(default_factory=FrozenMap)

    def __post_init__(self) -> None:
        name = os.fspath(self.name) if isinstance(self.name, os.PathLike) else self.name
        _set(self, "name", _string("name", name))
        try:
            source = resolve(self.name)[0]
        except ValueError as err:
            _fail("name", str(err))
        if self.classes is not None:
            _set(self, "classes", _classes("classes", self.classes))
        for key in ("n_train", "n_test", "in_dim"):  # P is measured on test points: n_test >= 1
            if getattr(self, key) is not None:
                _set(self, key, _int(key, getattr(self, key)))
        self._check_memory()
        _bool("sphere", self.sphere)
        self._check_seed()
        options = _mapping("options", self.options)
        checked = {k: OPTION_CHECKS.get(k, _freeze)(k, v) for k, v in options.items()}
        noise = checked.get("label_noise", 0.0)
        if checked.get("task", "auto") != "regression" and noise > 1:
            _fail(
                "label_noise",
                f"expected a number in [0, 1], got {options['label_noise']!r} (a flip "
                "probability; task 'regression' takes a noise std >= 0)",
            )
        source.resolve_options(options)  # unknown option: names the allowed ones
        _set(self, "options", FrozenMap(checked))

    def _check_seed(self) -> None:
        _set(self, "seed", _nonneg_int("seed", self.seed))

    def _check_memory(self) -> None:
        """The draw's inputs, (n_train + n_test, in_dim) of at least 4-byte floats, against
        this machine's memory (a data set read from a file is no bigger than the file)."""
        n, d = (self.n_train or 0) + (self.n_test or 0), self.in_dim or 1
        check_memory(
            "in_dim" if d > n else "n_train",
            f"a draw of {n} points of dimension {d}",
            4 * n * d,
            "ask for fewer points (n_train, n_test) or a smaller in_dim",
        )

    def load(self) -> Dataset:
        """Read or generate the data and return it as tensors (see :func:`~.loader.load`)."""
        from .pipeline import build
        from .raw import Request

        source, target = resolve(self.name)
        options = source.resolve_options(dict(self.options))
        req = Request(target, self.n_train, self.n_test, self.in_dim, self.seed, options)
        # groups travel as lists: that is how build tells a group from a label
        classes = (
            [list(c) if isinstance(c, tuple) else c for c in self.classes]
            if self.classes is not None
            else None
        )
        return build(self.name, source.loader(req), req, classes, self.sphere)


def option_names(name: str | None = None) -> tuple[str, ...]:
    """The options dataset ``name`` takes (common ones first); every dataset's for None."""
    sources = (
        [resolve(name)[0]]
        if name is not None
        else [*BUILTINS.values(), *PREFIXES.values(), *SUFFIXES.values()]
    )
    return tuple(dict.fromkeys([*COMMON_OPTIONS, *(k for src in sources for k in src.options)]))
