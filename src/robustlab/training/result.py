"""The outcome of training one network."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import nn

from .config import TrainConfig
from .regimes import get_regime

__all__ = ["TrainResult"]


@dataclass
class TrainResult:
    """Outcome of training one network.

    ``model`` is the trained network f(x; w_T) (uncentred); ``initial_model`` a copy of
    f(x; w_0). Under the lazy regime the trained *predictor* is
    ``alpha (f(x; w_T) - f(x; w_0))``: :meth:`predictor` builds it. ``history`` holds the
    predictor's training loss and accuracy at w_0, ..., w_steps (``steps + 1`` entries; the
    last is that of the returned model, or of the diverged weights when ``diverged``).
    ``steps`` is the number of updates applied. ``lr`` is the step the run started with,
    ``lr_final`` the step after ``lr_halvings`` back-offs (``TrainConfig.lr_backoff``).
    ``stop_reason`` says why training stopped (``run_state.STOP_REASONS``): ``target`` (the
    training loss reached ``target_loss``), ``plateau`` (``TrainConfig.plateau``'s rule held),
    ``budget`` (all ``steps`` ran) or ``diverged``.
    """

    model: nn.Module
    initial_model: nn.Module
    config: TrainConfig
    diverged: bool
    reason: str
    lr: float
    steps: int
    retries: int
    history: dict[str, list[float]] = field(repr=False)
    lr_final: float = math.nan
    lr_halvings: int = 0
    checkpoint_model: nn.Module | None = field(default=None, repr=False)
    checkpoint_step: int | None = None
    stop_reason: str = "budget"

    @property
    def reached_target(self) -> bool:
        """Whether the final training loss is at or below ``config.target_loss`` (True when
        no target was set and the run did not diverge)."""
        if self.diverged:
            return False
        target = self.config.target_loss
        return target is None or self.history["loss"][-1] <= target

    def predictor(self) -> nn.Module:
        """The function that was fitted (the regime's predictor at w_T): the network,
        alpha (f - f0) under ``lazy``, the Taylor model under ``linearized``."""
        return get_regime(self.config.regime).predictor(
            self.model, self.initial_model, self.config.alpha
        )

    def checkpoint_predictor(self) -> nn.Module | None:
        """The regime's predictor at the ``checkpoint_loss`` weights (None if not reached)."""
        if self.checkpoint_model is None:
            return None
        return get_regime(self.config.regime).predictor(
            self.checkpoint_model, self.initial_model, self.config.alpha
        )
