"""Read what a pickle would import, without running it (``pickletools`` only decodes).

Used to word the refusal of a file that holds pickled Python objects (a whole model saved
with ``torch.save(model)``) and to vet the pickled parts of a ``torch.export`` archive before
torch opens it. Safety never rests on this scan: model files are opened with
``torch.load(weights_only=True)``, and ``torch.export`` archives are loaded with torch's
weights-only mode forced (models/io.py); the scan only names what was found.
"""

from __future__ import annotations

import io
import json
import pickletools
import zipfile
from pathlib import Path

__all__ = ["foreign_globals", "unsafe_export_parts"]

# what torch.save writes for tensors and state dicts (and weights_only=True accepts)
_TENSOR_MODULES = ("torch", "torch._utils", "torch._tensor", "torch.serialization")
_PLAIN = {("collections", "OrderedDict"), ("builtins", "set"), ("__builtin__", "set")}
_STRINGS = ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "STRING", "BINSTRING")


def _globals(data: bytes) -> list[str]:
    """``module.name`` of every global the pickle streams in ``data`` import (GLOBAL and
    STACK_GLOBAL), over every pickle in sequence: a legacy ``torch.save`` stream is
    several pickles back to back (magic number, protocol, system info, the object, the
    storage keys), and the object is not the first."""
    found: list[str] = []
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        start = stream.tell()
        found += _one_pickle(stream)
        if stream.tell() <= start:  # not a pickle (raw storage bytes follow): stop
            break
    return found


def _one_pickle(stream: io.BytesIO) -> list[str]:
    """Globals of the pickle at the stream's position; leaves the stream after its STOP."""
    found, strings, memo = [], [], {}
    try:
        for op, arg, _ in pickletools.genops(stream):
            if op.name == "GLOBAL":
                module, _, name = str(arg).partition(" ")
                found.append(f"{module}.{name}")
            elif op.name in _STRINGS:
                strings.append(str(arg))
            elif op.name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
                memo[arg] = strings[-1]
            elif op.name == "MEMOIZE" and strings:
                memo[len(memo)] = strings[-1]
            elif op.name in ("BINGET", "LONG_BINGET", "GET") and arg in memo:
                strings.append(memo[arg])
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
    except Exception:  # a truncated or non-pickle stream: report what was decoded
        stream.seek(0, io.SEEK_END)  # nothing after a broken pickle is decoded
    return found


def _is_foreign(qualname: str) -> bool:
    module, _, name = qualname.rpartition(".")
    if (module, name) in _PLAIN:
        return False
    return not (module in _TENSOR_MODULES and (name.startswith("_rebuild") or "Storage" in name))


def _pickles_of(blob: bytes, depth: int = 0) -> list[bytes]:
    """Every pickle-bearing part of a torch.save blob: in a zip, every ``.pkl`` entry and,
    recursively, every entry that is itself a zip or a legacy stream (``.pt``); else the
    blob itself (a legacy stream: all its pickles are decoded by :func:`_globals`)."""
    if depth > 4 or not zipfile.is_zipfile(io.BytesIO(blob)):
        return [blob]
    parts: list[bytes] = []
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        for name in z.namelist():
            if name.endswith(".pkl"):
                parts.append(z.read(name))
            elif name.endswith((".pt", ".pth", ".bin")):
                parts += _pickles_of(z.read(name), depth + 1)
    return parts


def _foreign_in(blob: bytes) -> list[str]:
    """Foreign globals of every pickle in a torch.save blob."""
    return [g for part in _pickles_of(blob) for g in _globals(part) if _is_foreign(g)]


def foreign_globals(path: Path) -> list[str]:
    """Globals in a saved file that are not tensor/state-dict plumbing, e.g.
    ``torch.nn.modules.linear.Linear`` or ``posix.mkdir``: code that unpickling would run."""
    return _foreign_in(Path(path).read_bytes())


def unsafe_export_parts(path: Path) -> list[str]:
    """Parts of a ``torch.export`` archive that torch would unpickle with weights_only=False
    (pickled weights/constants, custom or opaque objects, legacy payloads) or whose pickles
    import foreign globals. Empty for an ordinary exported program."""
    bad = []
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.endswith("_config.json"):
                config = json.loads(z.read(name) or b"{}").get("config", {})
                for fqn, meta in config.items():
                    pickled = bool(meta.get("use_pickle"))
                    path_name = str(meta.get("path_name", ""))
                    if pickled or path_name.startswith(("custom_obj", "opaque_obj")):
                        bad.append(f"{fqn} ({path_name})")
            elif name.endswith((".pt", ".pkl", ".pth", ".bin")):
                strange = _foreign_in(z.read(name))
                if strange:
                    bad.append(f"{name} ({strange[0]})")
    return bad
