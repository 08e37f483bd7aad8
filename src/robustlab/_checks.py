"""Value checks shared by every layer (no torch, no heavy imports).

Each ``_check(path, value)`` takes the dotted path of the value it checks (a YAML path such
as ``grid.width[2]``, a field or a parameter name) and fails with a :class:`ConfigError`
carrying that path: ``str(err)`` reads ``grid.width[2]: expected a positive integer, got -3``.
Every check words its kind of value one way (``expected a positive integer``, ``expected a
positive number``, ...), whoever calls it. Config dataclasses check their fields with these
in ``__post_init__``; :mod:`robustlab._sections` reads them from mappings and puts the
section's path in front (:meth:`ConfigError.under`). Library messages name parameters; the
command line shows them as its flags (:func:`robustlab._errors.flagged`).

The limits on what a config or the command line may ask for live here too, checked when the
value is read, before anything is allocated: integers in range (:data:`MAX_INT`,
:data:`MAX_STEPS`), grid axes and sweeps of bounded size (:data:`MAX_AXIS`,
:data:`MAX_CELLS`, ranges counted before they are expanded), and sizes against this
machine's memory (:func:`check_memory`). A value shown in a message is cut by :func:`short`.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import reprlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

from ._errors import ConfigError

__all__ = [
    "MAX_AXIS",
    "MAX_CELLS",
    "MAX_INT",
    "MAX_STEPS",
    "ConfigError",
    "FrozenMap",
    "check_memory",
    "check_positive",
    "check_positive_int",
    "first_line",
    "joined_lines",
    "memory_limit",
    "range_values",
    "short",
]

MAX_INT = 2**63 - 1  # int64: what torch, numpy and the SQLite store hold (sizes, seeds)
MAX_STEPS = 10**9  # training steps or iterations: days of compute at 0.1 ms a step
MAX_AXIS = 10_000  # values of one grid axis, range, seed list or list of a config
MAX_CELLS = 100_000  # runs of one sweep (each trains a network): more is several sweeps
SHORT = 60  # characters of a value shown in an error message


class _Repr(reprlib.Repr):
    """reprlib's bounded repr (it never walks a whole container), also for FrozenMap."""

    def repr_FrozenMap(self, x: Mapping, level: int) -> str:  # noqa: N802 (reprlib's naming)
        return self.repr_dict(dict(x), level)

    def repr_int(self, x: int, level: int) -> str:
        return _big_int(x) or super().repr_int(x, level)


def _big_int(value: object) -> str | None:
    """How a huge integer is shown (Python refuses the repr of one over 4300 digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of {int(math.log10(abs(value))) + 1} digits"
    return None


_REPR = _Repr()
_REPR.maxlevel, _REPR.maxdict = 3, 4
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = 6
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = SHORT


def short(value: object, limit: int = SHORT) -> str:
    """``repr(value)`` cut to about ``limit`` characters, saying how big a cut value was:
    ``'aaaaaaa...aaa' (1000000 chars)``, ``[[[...]]] (9 items)``. Never builds the whole repr
    of a large or deep value (an alias bomb's would take 300 MB)."""
    text = _big_int(value) or _REPR.repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    if isinstance(value, (str, bytes)) and len(value) > limit - 2:
        return f"{text} ({len(value)} chars)"
    if isinstance(value, (list, tuple, set, frozenset, Mapping)) and "..." in text:
        return f"{text} ({len(value)} item{'s' if len(value) != 1 else ''})"
    return text


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # terminal colour codes in some libraries' errors


def first_line(err: BaseException, limit: int | None = None) -> str:
    """The first line of an error's message, without terminal escape codes, cut to
    ``limit`` characters; the exception's type name when the message is empty."""
    text = _ANSI.sub("", str(err)).strip()
    line = text.splitlines()[0] if text else type(err).__name__
    if limit is not None and len(line) > limit:
        line = line[: limit - 3] + "..."
    return line


def joined_lines(err: BaseException) -> str:
    """An error's whole message on one line (its lines joined), without escape codes."""
    lines = _ANSI.sub("", str(err)).splitlines()
    return " ".join(line.strip() for line in lines if line.strip()) or type(err).__name__


def _bytes(n: float) -> str:
    """``1.23 TB``: decimal units, three significant digits (``10^40 bytes`` beyond 1e18,
    where an int may be too big for a float)."""
    if n >= 1e18:
        return f"10^{int(math.log10(n))} bytes"
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} bytes"


# where a container's memory limit is written (cgroup v2, then v1): a process above it is
# killed by the kernel without a message, whatever the machine's physical memory
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def _cgroup_limit() -> float:
    for name in _CGROUP_LIMITS:
        try:
            with open(name, encoding="ascii") as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():  # "max" (v2) means no limit; v1 writes a huge number instead
            return float(text)
    return math.inf


def memory_limit() -> float:
    """The memory this process may use, in bytes: the machine's physical memory, or the
    container's (cgroup) limit where that is lower; ``inf`` where neither is known."""
    try:
        physical = float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        physical = math.inf
    return min(physical, _cgroup_limit())


def check_memory(path: str, what: str, n_bytes: float, fix: str) -> None:
    """Refuse work whose arrays need more than this machine's memory.

    ``n_bytes`` is a lower bound of what the work holds at once (its callers count only
    the arrays it cannot do without), so what is refused cannot run here, while what passes
    may still be too big. The message reads ``path: what needs at least N of memory, more
    than the M this process may use; fix``.
    """
    limit = memory_limit()
    if n_bytes > limit:
        _fail(
            path,
            f"{what} needs at least {_bytes(n_bytes)} of memory, more than the "
            f"{_bytes(limit)} this process may use; {fix}",
        )


def check_positive_int(path: str, value: object, *, floats: bool = True) -> int:
    """``value`` as an int if it is a positive integer (at most :data:`MAX_INT`), else a
    :class:`ConfigError` at ``path``. ``floats=False`` refuses an integral float (2.0) too,
    for arguments where a float means a mistake."""
    return _int(path, value, floats=floats)


def check_positive(path: str, value: object) -> float:
    """``value`` as a float if it is a positive finite real (not a bool), else a
    :class:`ConfigError` at ``path``."""
    return _number(path, value)


def _fail(path: str, message: str) -> NoReturn:
    raise ConfigError(path, message)


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # normalising a frozen dataclass in __post_init__


def _int(
    path: str, value: object, *, minimum: int = 1, maximum: int = MAX_INT, floats: bool = True
) -> int:
    """An integer in [``minimum``, ``maximum``] (an integral float such as 2.0 counts unless
    ``floats=False``; a bool never does)."""
    integral = isinstance(value, numbers.Integral) or (
        floats and isinstance(value, float) and value.is_integer()
    )
    if isinstance(value, bool) or not integral or int(value) < minimum:  # type: ignore[call-overload]
        kind = {1: "a positive integer", 0: "a non-negative integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
        _fail(path, f"expected {kind}, got {short(value)}")
    if int(value) > maximum:  # type: ignore[call-overload]
        _fail(path, f"expected an integer <= {maximum}, got {short(value)}")
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
        _fail(path, f"expected {what}, got {short(value)}")
    return x


def _bool(path: str, value: object) -> bool:
    if not isinstance(value, bool):
        _fail(path, f"expected true or false, got {short(value)}")
    return value


def _string(path: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(path, f"expected a non-empty string, got {short(value)}")
    return value.strip()


def _choice(choices: tuple[str, ...]) -> Callable[[str, object], str]:
    def check(path: str, value: object) -> str:
        if not isinstance(value, str) or value not in choices:
            _fail(path, f"expected one of {', '.join(choices)}, got {short(value)}")
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
        if len(value) > MAX_AXIS:
            _fail(path, f"expected at most {MAX_AXIS} values, got {len(value)}")
        out = tuple(check(f"{path}[{i}]", v) for i, v in enumerate(value))
        seen: set[Any] = set()
        for i, v in enumerate(out):
            if distinct and v in seen:
                _fail(f"{path}[{i}]", f"duplicate value {short(value[i])}")
            seen.add(v)
        return out
    if isinstance(value, Mapping):
        _fail(path, f"expected a list or a single value, got a mapping {short(dict(value))}")
    return (check(path, value),)


_RANGE = re.compile(r"^\s*(-?\d{1,30})\s*:\s*(-?\d{1,30})\s*(?::\s*(-?\d{1,30})\s*)?$")


def range_values(text: str, start: int, stop: int, step: int) -> range:
    """The inclusive range ``start..stop`` by ``step`` written as ``text``, counted before it
    is expanded: at most :data:`MAX_AXIS` values, each at most :data:`MAX_INT`; a ValueError
    (without a path) otherwise."""
    if start < 1 or step < 1 or stop < start:
        raise ValueError(f"bad range {short(text)}: need 1 <= start <= stop and step >= 1")
    if stop > MAX_INT:
        raise ValueError(f"bad range {short(text)}: values must be <= {MAX_INT}")
    count = (stop - start) // step + 1
    if count > MAX_AXIS:
        raise ValueError(f"range {short(text)} has {count} values; at most {MAX_AXIS}")
    return range(start, stop + 1, step)


def _int_axis(path: str, value: object) -> tuple[int, ...]:
    """Positive ints from an int, a list of ints, or an inclusive range "a:b" / "a:b:step"."""
    if isinstance(value, str):
        m = _RANGE.match(value)
        if not m:
            _fail(
                path,
                'expected an int, a list of ints or a range "start:stop[:step]", '
                f"got {short(value)}",
            )
        try:
            return tuple(range_values(value, int(m[1]), int(m[2]), int(m[3] or 1)))
        except ValueError as err:
            _fail(path, str(err))
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
                _fail(path, f"mapping keys must be strings, got {short(k)}")
        return FrozenMap({k: _freeze(f"{path}.{k}", v) for k, v in value.items()})
    _fail(path, f"expected plain data (numbers, strings, lists, mappings), got {short(value)}")


def _thaw(value: Any) -> Any:
    if isinstance(value, FrozenMap):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _mapping(path: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(path, f"expected a mapping of keys to values, got {short(value)}")
    return value


def _check_keys(path: str, d: Mapping[str, Any], allowed: tuple[str, ...], required=()) -> None:
    for key in d:
        if key not in allowed:
            _fail(path, f"unknown key {short(key)} (allowed: {', '.join(allowed)})")
    for key in required:
        if key not in d:
            _fail(path, f"missing required key {short(key)}")
