"""Value checks shared by every layer (no torch, no heavy imports).

Each ``_check(path, value)`` takes the dotted path of the value it checks (a YAML path such
as ``grid.width[2]``, or a field name) and fails with a ``ValueError`` whose message starts
with that path: ``grid.width[2]: expected a positive integer, got -3``. Config dataclasses
check their fields with these in ``__post_init__``; :mod:`robustlab._sections` reads them
from mappings and prefixes the section's path.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

__all__ = ["FrozenMap", "check_positive_int"]


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` as an int if it is a positive integer, else raise a ValueError naming it."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int,))
        and not (isinstance(value, float) and value.is_integer())
    ):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _fail(path: str, message: str) -> NoReturn:
    raise ValueError(f"{path}: {message}")


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # normalising a frozen dataclass in __post_init__


def _int(path: str, value: object, *, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (an integral float such as 2.0 counts; a bool does not)."""
    integral = isinstance(value, numbers.Integral) or (
        isinstance(value, float) and value.is_integer()
    )
    if isinstance(value, bool) or not integral or int(value) < minimum:  # type: ignore[call-overload]
        kind = {1: "a positive integer", 0: "a non-negative integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
        _fail(path, f"expected {kind}, got {value!r}")
    return int(value)  # type: ignore[call-overload]


def _nonneg_int(path: str, value: object) -> int:
    return _int(path, value, minimum=0)


def _number(
    path: str,
    value: object,
    what: str = "a positive number",
    ok: Callable[[float], bool] = lambda x: x > 0,
) -> float:
    """A finite real (not a bool) for which ``ok`` holds, as a float."""
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    x = float(value) if real else math.nan  # type: ignore[arg-type]
    if not (math.isfinite(x) and ok(x)):
        _fail(path, f"expected {what}, got {value!r}")
    return x


def _positive(path: str, value: object) -> float:
    return _number(path, value)


def _bool(path: str, value: object) -> bool:
    if not isinstance(value, bool):
        _fail(path, f"expected true or false, got {value!r}")
    return value


def _string(path: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(path, f"expected a non-empty string, got {value!r}")
    return value.strip()


def _choice(choices: tuple[str, ...]) -> Callable[[str, object], str]:
    def check(path: str, value: object) -> str:
        if not isinstance(value, str) or value not in choices:
            _fail(path, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    return check


def _items(
    path: str, value: object, check: Callable[[str, Any], Any], *, distinct: bool = True
) -> tuple[Any, ...]:
    """A non-empty list of checked items (distinct unless ``distinct=False``, e.g. a shape);
    a single scalar counts as a list of one."""
    if isinstance(value, (list, tuple)):
        if not value:
            _fail(path, "expected a non-empty list, got []")
        out = tuple(check(f"{path}[{i}]", v) for i, v in enumerate(value))
        for i, v in enumerate(out):
            if distinct and v in out[:i]:
                _fail(f"{path}[{i}]", f"duplicate value {value[i]!r}")
        return out
    if isinstance(value, Mapping):
        _fail(path, f"expected a list or a single value, got a mapping {dict(value)!r}")
    return (check(path, value),)


_RANGE = re.compile(r"^\s*(-?\d+)\s*:\s*(-?\d+)\s*(?::\s*(-?\d+)\s*)?$")


def _int_axis(path: str, value: object) -> tuple[int, ...]:
    """Positive ints from an int, a list of ints, or an inclusive range "a:b" / "a:b:step"."""
    if isinstance(value, str):
        m = _RANGE.match(value)
        if not m:
            _fail(
                path,
                f'expected an int, a list of ints or a range "start:stop[:step]", got {value!r}',
            )
        start, stop, step = int(m[1]), int(m[2]), int(m[3] or 1)
        if start < 1 or step < 1 or stop < start:
            _fail(path, f"bad range {value!r}: need 1 <= start <= stop and step >= 1")
        return tuple(range(start, stop + 1, step))
    return _items(path, value, _int)


def _ordered(items: tuple[str, ...], order: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(items, key=order.index))


class FrozenMap(Mapping[str, Any]):
    """A read-only, hashable mapping with string keys (sorted); values are frozen plain data."""

    __slots__ = ("_data",)

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._data = dict(sorted((items or {}).items()))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(tuple(self._data.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self) == dict(other)

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


def _freeze(path: str, value: object) -> Any:
    """Plain YAML data made hashable: lists -> tuples, mappings -> FrozenMap."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return _number(path, value, "a finite number", lambda x: True)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(f"{path}[{i}]", v) for i, v in enumerate(value))
    if isinstance(value, Mapping):
        for k in value:
            if not isinstance(k, str):
                _fail(path, f"mapping keys must be strings, got {k!r}")
        return FrozenMap({k: _freeze(f"{path}.{k}", v) for k, v in value.items()})
    _fail(path, f"expected plain data (numbers, strings, lists, mappings), got {value!r}")


def _thaw(value: Any) -> Any:
    if isinstance(value, FrozenMap):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _mapping(path: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(path, f"expected a mapping of keys to values, got {value!r}")
    return value


def _check_keys(path: str, d: Mapping[str, Any], allowed: tuple[str, ...], required=()) -> None:
    for key in d:
        if key not in allowed:
            _fail(path, f"unknown key {key!r} (allowed: {', '.join(allowed)})")
    for key in required:
        if key not in d:
            _fail(path, f"missing required key {key!r}")
