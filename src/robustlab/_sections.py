"""One reader from plain mappings (YAML sections) to frozen config dataclasses.

A config dataclass checks its own fields in ``__post_init__``, naming each bad value by its
field (``steps: expected a positive integer, got 0``). :class:`Section` adds what reading it
from a YAML document needs, once for every config:

- :meth:`Section.from_dict` rejects unknown keys and missing required ones
  (``train: unknown key 'epochs' (allowed: ...)``) and builds the dataclass;
- every error raised while the section is built carries the section's YAML path
  (``train.steps: expected a positive integer, got 0``), whether it is built from a mapping
  or in Python: the section's checks (:meth:`Section._check`) run inside :func:`at_path`,
  which puts the section's path in front of the path the error carries;
- :meth:`Section.to_dict` writes plain data back, leaving out fields the mapping does not
  hold (``_omit``) and fields added after a section's first release while they keep their
  default (``_added``), so an existing config keeps its canonical form and its hashes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, ClassVar

from ._checks import ConfigError, _check_keys, _fail, _mapping, _thaw

__all__ = ["Section", "at_path"]


@contextlib.contextmanager
def at_path(path: str) -> Iterator[None]:
    """Put ``path`` in front of the path of a :class:`~robustlab._checks.ConfigError` raised
    inside (``train`` and ``steps`` -> ``train.steps``, ``data`` and ``classes[1]`` ->
    ``data.classes[1]``); any other ValueError becomes a ConfigError at ``path``."""
    try:
        yield
    except ConfigError as err:
        raise err.under(path) from None
    except ValueError as err:
        raise ConfigError(path, str(err)) from None


class Section:
    """Mixin for a frozen dataclass read from the YAML mapping at ``_path``.

    Its ``__post_init__`` runs :meth:`_check` inside ``with at_path(self._path)``, so an
    error names its YAML path however the section is built. A subclass of a library config
    (``TrainSpec(Section, TrainConfig)``) runs the library's own checks by default.
    """

    _path: ClassVar[str] = ""
    _omit: ClassVar[tuple[str, ...]] = ()  # fields that are not keys of the mapping
    _added: ClassVar[tuple[str, ...]] = ()  # written only when they differ from the default
    _omit_reason: ClassVar[str] = ""  # why, e.g. " (regime and alpha are grid axes)"

    def __post_init__(self) -> None:
        with at_path(self._path):
            self._check()

    def _check(self) -> None:
        """Check and normalise the fields, naming a bad value by its field (default: the
        library config's checks)."""
        library = self._library()
        if library is not None:
            library.__post_init__(self)

    @classmethod
    def keys(cls, d: Mapping[str, Any]) -> tuple[str, ...]:
        """The keys a mapping may hold (default: the fields, less ``_omit``)."""
        return tuple(f.name for f in fields(cls) if f.init and f.name not in cls._omit)

    @classmethod
    def required(cls) -> tuple[str, ...]:
        """Keys without a default."""
        return tuple(
            f.name
            for f in fields(cls)
            if f.default is MISSING and f.default_factory is MISSING and f.name not in cls._omit
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]):
        """Build from a mapping: unknown or missing keys and bad values raise ValueError
        naming their YAML path."""
        d = _mapping(cls._path, d)
        omitted = [k for k in d if k in cls._omit]
        if omitted:  # a field of the library config that this section does not hold
            _fail(cls._path, f"key {omitted[0]!r} is not set here{cls._omit_reason}")
        _check_keys(cls._path, d, cls.keys(d), cls.required())
        return cls(**cls._arguments(d))

    @classmethod
    def read(cls, value: Any):
        """The section from a mapping, an instance of itself, or an instance of the library
        config it extends (e.g. a ``TrainConfig`` for the sweep's ``TrainSpec``)."""
        if isinstance(value, cls):
            return value
        library = cls._library()
        if library is not None and isinstance(value, library):
            return cls(**_values(value, library))
        return cls.from_dict(value)

    @classmethod
    def _library(cls) -> type | None:
        """The library config this section extends (``TrainConfig``, ``DataConfig``), if any."""
        bases = [b for b in cls.__mro__[1:] if is_dataclass(b) and not issubclass(b, Section)]
        return bases[0] if bases else None

    def as_library(self, **changes: Any):
        """This section as its library config, with ``changes`` (e.g. a run's regime)."""
        library = self._library()
        return library(**{**_values(self, library), **changes})

    @classmethod
    def _arguments(cls, d: Mapping[str, Any]) -> dict[str, Any]:
        """The constructor's keyword arguments from a mapping with known keys."""
        return dict(d)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, dicts, numbers, strings) that :meth:`from_dict` reads back."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in self._omit or (f.name in self._added and value == _default(f)):
                continue
            out[f.name] = _thaw(value)
        return out


def _values(obj: Any, cls: type) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(cls)}


def _default(f) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default
