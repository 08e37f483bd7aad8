"""Command-line overrides of a sweep config: ``key.path=value`` (Hydra's form, without lists).

``robustlab sweep CONFIG.yaml train.steps=5 grid.width=[4,8]`` reads CONFIG.yaml, sets
``train.steps`` to 5 and ``grid.width`` to [4, 8], and only then reads the result as a sweep
config, so an override is checked exactly like the same key written in the file (an unknown
key or a bad value fails with the config reader's own message, naming its path) and is part
of the config the store records.

- The path is keys joined by dots; it names mappings only (no list indices: set a whole
  list, ``grid.width=[4,8]``). A key missing on the way is created as a mapping
  (``model.norm=batch`` without a ``model:`` section); a key that holds something other than
  a mapping cannot be stepped through (``seeds.n=3`` with ``seeds: 5`` is an error).
- The value is one YAML value, read by the config's own bounded YAML reader
  (:func:`robustlab.sweep._yaml.parse_yaml`): ``5`` is an int, ``1e-3`` a float, ``auto`` a
  string, ``"2:6"`` and ``2:6`` the string of a range, ``[4, 8]`` a list, ``{steps: 5}`` a
  mapping, ``null`` (or nothing after ``=``) None. The value replaces what the key held,
  a whole mapping or list included.
- Overrides apply in order; a later one wins.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from .._checks import SHORT, short
from ._yaml import parse_yaml

__all__ = ["apply_overrides", "parse_override"]

_EXAMPLE = "e.g. train.steps=500 or grid.width=[16,32]"


def _named(path: str) -> str:
    """The path as an error message starts with it (cut like any value shown)."""
    return path if len(path) <= SHORT else path[: SHORT - 3] + "..."


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """``"a.b=value"`` -> ``(("a", "b"), value)``, the value read as YAML.

    Raises:
        ValueError: no ``=``, an empty key in the path, a list index, or a value that is
            not valid YAML; the message starts with the path where there is one.
    """
    if not isinstance(text, str) or "=" not in text:
        raise ValueError(f"override {short(text)}: expected KEY.PATH=VALUE, {_EXAMPLE}")
    path, value = text.split("=", 1)
    keys = tuple(path.split("."))
    if not all(k.strip() for k in keys):
        raise ValueError(
            f"override {short(text)}: expected keys joined by dots before '=', {_EXAMPLE}"
        )
    if any("[" in k for k in keys):
        raise ValueError(
            f"{_named(path)}: an override sets a whole list, not one item of it, "
            "e.g. grid.width=[16,32]"
        )
    return keys, parse_yaml(value, f"{_named(path)}: value {short(value)}")


def apply_overrides(mapping: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of the config ``mapping`` with each ``key.path=value`` of ``overrides`` set,
    in order (see the module docstring); ``mapping`` itself is left unchanged.

    Raises:
        ValueError: a malformed override (:func:`parse_override`), or a path that steps
            through a key holding something other than a mapping; the message starts with
            the override's path.
    """
    if isinstance(overrides, str):  # one override, not its characters
        overrides = [overrides]
    out = copy.deepcopy(dict(mapping))
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for i, key in enumerate(keys[:-1]):
            held = node.get(key)
            if held is None:
                held = node[key] = {}
            elif isinstance(held, Mapping):
                held = node[key] = dict(held)
            else:
                path, where = _named(".".join(keys)), _named(".".join(keys[: i + 1]))
                raise ValueError(
                    f"{path}: cannot set a key inside {where}, which holds {short(held)}, "
                    "not a mapping"
                )
            node = held
        node[keys[-1]] = value
    return out
