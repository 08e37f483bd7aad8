"""The device computations run on, checked before any work starts."""

from __future__ import annotations

import torch

from ._checks import short

__all__ = ["check_device"]


def check_device(device: str | None) -> str:
    """The device to run on, checked before any work: ``auto`` is CUDA when it is
    available, else the CPU; ``cuda`` (or ``cuda:N``) must be available here."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {short(device)}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available here; use device cpu")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise ValueError(f"device {device!r}: this machine has {n} CUDA device(s) (cuda:0..)")
    return str(dev)
