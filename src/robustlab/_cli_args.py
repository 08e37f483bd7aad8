"""The words of the ``robustlab`` command line turned into values (argparse ``type=``
functions; no torch, no heavy imports).

Each raises :class:`argparse.ArgumentTypeError`, which argparse turns into the one line
``argument --flag: message`` (exit 2). Ranges ``a:b[:step]`` are read by the config's own
grammar (:func:`robustlab._checks._int_axis`), so ``--width 16:64:16`` on the command line
and ``width: "16:64:16"`` in a sweep YAML mean the same integers and fail the same way.
"""

from __future__ import annotations

import argparse
import math

from ._checks import MAX_AXIS, MAX_INT, _int_axis, short

__all__ = [
    "UsageError",
    "clip",
    "float_list",
    "init_list",
    "int_list",
    "method_list",
    "mlflow_uri",
    "output_selector",
    "positive_float",
    "positive_int",
    "seed",
    "seed_count",
    "shape",
]


class UsageError(ValueError):
    """Bad command-line input."""


def _decimal(text: str) -> int | None:
    """The integer ``text`` writes in decimal (a sign allowed), None if it writes none; one
    beyond int64 is an error (and never converted: Python refuses 4300 digits)."""
    text = text.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit()):
        return None
    if len(digits) > len(str(MAX_INT)) or abs(int(text)) > MAX_INT:
        raise argparse.ArgumentTypeError(f"{short(text)} is out of range (at most {MAX_INT})")
    return int(text)


def int_list(text: str) -> list[int]:
    """'2:12' (inclusive), '2:12:2', '16,32,64' or '8' -> list of ints (at most MAX_AXIS,
    a range counted before it is expanded)."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if ":" in part:
            try:  # the config's range grammar; its message without a YAML path
                out.extend(_int_axis("", part))
            except ValueError as err:
                raise argparse.ArgumentTypeError(str(err).removeprefix(": ")) from None
        elif (value := _decimal(part)) is not None:
            out.append(value)  # 0 or negative: refused by main, naming the flag
        else:
            raise argparse.ArgumentTypeError(
                f"expected integers or a range like 2:12, got {short(part)}"
            )
        if len(out) > MAX_AXIS:
            raise argparse.ArgumentTypeError(f"more than {MAX_AXIS} values in {short(text)}")
    return out


def init_list(text: str) -> list[str]:
    """'lecun,he,custom(1,0.5,2)' -> ['lecun', 'he', 'custom(1,0.5,2)']: commas inside
    parentheses belong to a custom scheme, not to the list."""
    names, depth, current = [], 0, ""
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth <= 0:
            names.append(current)
            current = ""
        else:
            current += ch
    names = [n.strip() for n in [*names, current] if n.strip()]
    if not names:
        raise UsageError(f"--init needs at least one scheme name, got {short(text)}")
    return names


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {short(text)}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {v:g}")
    return v


def float_list(text: str) -> list[float]:
    """'0.1,1,3' -> [0.1, 1.0, 3.0] (finite numbers)."""
    try:
        out = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers like 0.1,1,3, got {short(text)}"
        ) from None
    if not all(math.isfinite(v) for v in out):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {short(text)}")
    return out


def _int_in(text: str, minimum: int = 1, maximum: int = MAX_INT) -> int:
    """An integer in [minimum, maximum] written in decimal."""
    kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    v = _decimal(text)
    if v is None or v < minimum:
        got = short(text) if v is None else v
        raise argparse.ArgumentTypeError(f"expected {kind}, got {got}")
    if v > maximum:
        raise argparse.ArgumentTypeError(f"expected at most {maximum}, got {v}")
    return v


def positive_int(text: str) -> int:
    return _int_in(text)


def seed_count(text: str) -> int:
    """--seeds: how many networks, 1..MAX_AXIS."""
    return _int_in(text, 1, MAX_AXIS)


def seed(text: str) -> int:
    """--seed: 0..2**63 - 1, what a generator and the store hold."""
    return _int_in(text, 0)


def output_selector(text: str):
    """--output: 'margin', 'label', a dict key, an index, or several joined by commas."""
    parts = [p.strip() for p in text.split(",")]
    if not all(parts):
        raise argparse.ArgumentTypeError(
            f"expected e.g. 0, logits, margin or logits,margin: {short(text)}"
        )
    steps = tuple(int(p) if p.lstrip("-").isdigit() else p for p in parts)
    return steps[0] if len(steps) == 1 else steps


def shape(text: str) -> tuple[int, ...]:
    """--input-shape '1,28,28' -> (1, 28, 28)."""
    try:
        dims = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected e.g. 1,28,28, got {short(text)}") from None
    if not all(v >= 1 for v in dims):
        raise argparse.ArgumentTypeError(f"expected positive sizes, got {short(text)}")
    return dims


def clip(text: str) -> tuple[float, float]:
    """--clip '0,1' -> (0.0, 1.0)."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI like 0,1, got {short(text)}") from None
    return lo, hi


def method_list(text: str) -> list[str]:
    """--methods 'exact,pgd' -> ['exact', 'pgd'], checked by the library."""
    from .measure import split_methods

    names = [name.strip() for name in text.split(",")]
    try:
        split_methods(names)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return names


def mlflow_uri(text: str) -> str:
    """--mlflow URI: a tracking URI. A word like ``train.steps=5`` is an override that
    argparse gave to --mlflow (its URI is optional): refused, with how to write both."""
    name = text.split("=", 1)[0]
    if "=" in text and name and all(part.isidentifier() for part in name.split(".")):
        raise argparse.ArgumentTypeError(
            f"{short(text)} is a config override, not a tracking URI: put the overrides "
            "before --mlflow, or write --mlflow=URI"
        )
    return text
