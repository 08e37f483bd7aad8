"""The error for bad input, :class:`ConfigError`, and how the command line shows one.

A ConfigError carries the path of the value at fault (``grid.width[2]``, ``steps``), so a
reader that nests configs puts its own path in front (:meth:`ConfigError.under`) instead of
parsing message text. Library messages name parameters, never command-line flags;
:func:`flagged` shows them as the flags that set them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

__all__ = ["ConfigError", "flagged", "join_path"]


class ConfigError(ValueError):
    """Bad input, with the path of the value at fault: ``str(err)`` is ``"path: message"``
    (the message alone when the path is empty).

    ``path`` is dotted with list indices, as the value is reached from what the user gave:
    ``grid.width[2]`` in a sweep config, ``steps`` for a config field or a function's
    parameter. ``names``: other parameters the message names, as bare words (``in_dim``,
    ``model_class``), which the command line shows as its flags (:func:`flagged`). A
    ValueError, so ``except ValueError`` catches it.
    """

    def __init__(self, path: str, message: str, names: tuple[str, ...] = ()) -> None:
        super().__init__(path, message)  # both in args: the error pickles (worker processes)
        self.path, self.message, self.names = path, message, names

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def under(self, path: str) -> ConfigError:
        """The same error with ``path`` in front of its own (``grid`` + ``width[2]`` ->
        ``grid.width[2]``)."""
        return ConfigError(join_path(path, self.path), self.message, self.names)


def join_path(outer: str, inner: str) -> str:
    """``outer`` and ``inner`` as one path: ``grid`` + ``width[2]`` -> ``grid.width[2]``,
    ``seeds`` + ``[1]`` -> ``seeds[1]``."""
    if not (outer and inner):
        return outer or inner
    return f"{outer}{inner}" if inner.startswith("[") else f"{outer}.{inner}"


# a quoted value in a message ('a path', "it's"; not the apostrophe of "network's"): never
# read as a parameter's name
_QUOTED = re.compile(r"""(?<!\w)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")(?!\w)""")


def flagged(
    err: BaseException, argv: Sequence[str], renamed: Mapping[str, str] | None = None
) -> BaseException:
    """How the command line shows ``err``: a :class:`ConfigError` names its parameters by
    their flags. Its path does when ``argv`` set that flag (``output`` -> ``--output``, not
    a YAML key the command has no flag for); the parameters its message names
    (``err.names``) always do. ``renamed`` maps a parameter to its flag's name where they
    differ (``out_dir`` -> ``out``). Any other error comes back as it is."""
    if not isinstance(err, ConfigError):
        return err

    def flag(name: str) -> str:
        return "--" + (renamed or {}).get(name, name).replace("_", "-")

    head = re.split(r"[.\[]", err.path, maxsplit=1)[0]
    path = err.path
    given = any(w == flag(head) or w.startswith(flag(head) + "=") for w in argv)
    if head and (given or head in err.names):
        path = flag(head) + err.path[len(head) :]
    parts = _QUOTED.split(err.message)  # odd parts are quoted values
    for name in err.names:
        word = re.compile(rf"\b{re.escape(name)}\b")
        parts = [p if i % 2 else word.sub(flag(name), p) for i, p in enumerate(parts)]
    return ConfigError(path, "".join(parts))
