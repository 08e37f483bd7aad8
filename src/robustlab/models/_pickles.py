"""Read what a pickle would import, without running it (``pickletools`` only decodes).

Used to word the refusal of a file that holds pickled Python objects (a whole model saved
with ``torch.save(model)``) and to vet the pickled parts of a ``torch.export`` archive before
torch opens it. Safety never rests on this scan: model files are opened with
``torch.load(weights_only=True)``; the scan only names what was found.
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
    """``module.name`` of every global a pickle stream imports (GLOBAL and STACK_GLOBAL)."""
    found, strings, memo = [], [], {}
    try:
        for op, arg, _ in pickletools.genops(data):
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
        pass
    return found


def _is_foreign(qualname: str) -> bool:
    module, _, name = qualname.rpartition(".")
    if (module, name) in _PLAIN:
        return False
    return not (module in _TENSOR_MODULES and (name.startswith("_rebuild") or "Storage" in name))


def _pickle_of(blob: bytes) -> bytes:
    """The pickle stream of a torch.save blob (zip: its data.pkl) or the blob itself."""
    if zipfile.is_zipfile(io.BytesIO(blob)):
        with zipfile.ZipFile(io.BytesIO(blob)) as z:
            names = [n for n in z.namelist() if n.endswith("data.pkl")]
            return z.read(names[0]) if names else b""
    return blob


def foreign_globals(path: Path) -> list[str]:
    """Globals in a saved file that are not tensor/state-dict plumbing, e.g.
    ``torch.nn.modules.linear.Linear`` or ``posix.mkdir``: code that unpickling would run."""
    return [g for g in _globals(_pickle_of(Path(path).read_bytes())) if _is_foreign(g)]


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
            elif name.endswith(".pt") or name.endswith(".pkl"):
                strange = [g for g in _globals(_pickle_of(z.read(name))) if _is_foreign(g)]
                if strange:
                    bad.append(f"{name} ({strange[0]})")
    return bad
