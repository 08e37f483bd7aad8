"""The sweep config's YAML reader: plain data, bounded in size, depth and expansion.

A sweep config is a few hundred bytes of mappings, lists and scalars, so the reader refuses,
with one line naming the file (and the line and column where it applies):

- a file larger than :data:`MAX_BYTES`, before parsing it;
- a mapping that repeats a key (YAML forbids it; PyYAML would keep the last one silently);
- nesting deeper than :data:`MAX_DEPTH` levels (PyYAML's composer would recurse until a
  RecursionError);
- more than :data:`MAX_VALUES` values once every alias is expanded (an alias bomb: nine
  aliases of nine aliases of ... is 9^9 values in 300 bytes), and an alias inside its own
  anchor (a value that contains itself);
- an integer of more than :data:`MAX_INT_CHARS` characters (Python refuses to convert
  4300 digits; the config's own checks bound every integer far lower).

Parsing is PyYAML's SafeLoader (tags of Python objects are refused) with YAML 1.2 numbers:
``2:6`` stays a string (YAML 1.1 reads it as the base-60 int 126) and ``1e-3`` is a float
(YAML 1.1 reads it as a string). Anchors and aliases within the bounds are plain YAML.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .._checks import short

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_INT_CHARS", "MAX_VALUES", "parse_yaml", "read_yaml"]

MAX_BYTES = 1 << 20  # 1 MiB
MAX_DEPTH = 32  # a sweep config nests 3 levels (grid: width: [...])
MAX_VALUES = 100_000  # scalars, lists and mappings, aliases expanded
MAX_INT_CHARS = 1000
_PROBLEM_CHARS = 160  # of a parser's own message (it may quote the text it stopped at)


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that a sweep config must not be."""


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 numbers, unique keys and bounded depth and expansion."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._values = 0
        self._sizes: dict[int, int] = {}  # id of an anchored node -> its values, expanded

    def _count(self, n: int, mark: yaml.Mark) -> None:
        self._values += n
        if self._values > MAX_VALUES:
            raise _Refused(
                None, None, f"more than {MAX_VALUES} values once aliases are expanded", mark
            )

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = self.anchors.get(event.anchor)
            if node is not None:  # (an undefined alias is the composer's own error)
                if id(node) not in self._sizes:  # still being composed: it holds itself
                    problem = f"alias *{event.anchor[:40]} inside its own anchor"
                    raise _Refused(None, None, problem, event.start_mark)
                self._count(self._sizes[id(node)], event.start_mark)
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise _Refused(None, None, f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
        self._depth += 1
        before = self._values
        self._count(1, event.start_mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        if event.anchor is not None:
            self._sizes[id(node)] = self._values - before
        return node

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                    key_node, yaml.ScalarNode
                ):
                    continue  # merged keys may be overridden; other keys are refused later
                key = self.construct_object(key_node)
                if key in first:
                    line = first[key].start_mark.line + 1
                    problem = f"duplicate key {short(key)} (first on line {line})"
                    raise yaml.constructor.ConstructorError(
                        None, None, problem, key_node.start_mark
                    )
                first[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    if len(node.value) > MAX_INT_CHARS:
        problem = f"an integer of {len(node.value)} characters (at most {MAX_INT_CHARS})"
        raise _Refused(None, None, problem, node.start_mark)
    return loader.construct_yaml_int(node)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if not tag.endswith((":int", ":float"))]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"
        r"|^[-+]?[0-9]+[eE][-+]?[0-9]+$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
    ),
    list("-+.0123456789"),
)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def read_yaml(path: Path) -> Any:
    """The plain data of the YAML file at ``path``; a one-line ValueError naming the file
    if it cannot be read, is not YAML, or passes a bound of the module docstring."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise ValueError(
                f"config file '{path}' is larger than {MAX_BYTES >> 20} MiB; a sweep config "
                "needs a few hundred bytes"
            )
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise ValueError(f"cannot read config file '{path}': {reason}") from None
    return parse_yaml(text, f"config file '{path}'")


def parse_yaml(text: str, source: str) -> Any:
    """The plain data of the YAML ``text`` (a file's, or one value's, such as a command-line
    override's); a one-line ValueError ``{source} is not valid YAML: ...`` (or ``is
    refused``, past a bound of the module docstring) if it cannot be read."""
    if len(text) > MAX_BYTES:
        raise ValueError(f"{source} is larger than {MAX_BYTES >> 20} MiB")
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        if len(problem) > _PROBLEM_CHARS:
            problem = problem[: _PROBLEM_CHARS - 3] + "..."
        what = "is refused" if isinstance(err, _Refused) else "is not valid YAML"
        raise ValueError(f"{source} {what}: {problem}{where}") from None
