"""Regime wrappers (DESIGN §1 "Regimes")."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["AlphaScaled"]


class AlphaScaled(nn.Module):
    """``g(x) = alpha * (f(x; w) - f(x; w0))`` (Chizat, Oyallon & Bach, NeurIPS 2019).

    Large alpha keeps w near w0 at any width (lazy training). The initial network w0 is held
    frozen (its parameters are buffers of a private copy), so g(x) = 0 at w = w0 exactly,
    and P of g measures only what training added to f.
    """

    def __init__(self, model: nn.Module, initial: nn.Module, alpha: float) -> None:
        super().__init__()
        self.model = model
        frozen = copy.deepcopy(initial)
        for p in frozen.parameters():
            p.requires_grad_(False)
        self.initial = frozen
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, ...) -> (N, k)."""
        return self.alpha * (self.model(x) - self.initial(x))
