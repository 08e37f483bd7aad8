"""The trainer's configuration: one frozen dataclass, validated at construction."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .regimes import REGIMES, get_regime

__all__ = ["LOSSES", "OPTIMIZERS", "REGIMES", "TrainConfig"]

OPTIMIZERS = ("gd", "sgd", "adam")
LOSSES = ("mse", "logistic", "cross_entropy")


def _choice(field: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{field}: unknown value {value!r}; choices: {', '.join(choices)}")
    return str(value)


def _pos(field: str, value: object, *, integer: bool = False, allow_none: bool = False):
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value).is_integer()
    if not ok or not math.isfinite(value) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ValueError(f"{field}: expected {kind}, got {value!r}")
    return int(value) if integer else float(value)


@dataclass(frozen=True)
class TrainConfig:
    """How to train one network (docs/definitions.md, "Regimes").

    Attributes:
        optimizer: ``gd`` (full batch), ``sgd`` (minibatch, optional momentum) or ``adam``.
        loss: ``mse`` = mean_i 0.5 ||g(x_i) - y_i||^2 (one-hot targets for class labels),
            ``logistic`` = mean_i log(1 + exp(-y_i g(x_i))) with y in {-1, +1},
            ``cross_entropy`` = mean_i -log softmax(g(x_i))_{y_i}.
        lr: a step size, or ``"auto"``: 1 / lambda_max of the Gauss-Newton matrix
            (1/N) J^T H_loss J at init, by power iteration with JVP/VJP products
            (half the classical GD stability limit 2 / lambda_max). For adam ``auto`` is 1e-3.
        steps: step budget; ``target_loss`` stops earlier once the training loss reaches it.
        regime: a registered :class:`~robustlab.training.regimes.Regime`: ``standard`` (the
            network as initialized), ``linearized`` (the first-order Taylor model around w0,
            Lee et al. 2019), ``lazy`` (alpha-scaling of Chizat, Oyallon & Bach 2019:
            g = alpha (f(x; w) - f(x; w0)), loss divided by alpha^2), ``mean_field`` (a
            two-layer network built with ``mean_field=True``).
        checkpoint_loss: optional looser training-loss level (above ``target_loss``): the
            weights at the first step whose loss is at or below it are kept as well
            (``TrainResult.checkpoint_model``), so P can be compared at two levels of fit.
        max_retries: on divergence (NaN/inf, or loss above ``blowup`` x its initial value)
            restart from the initial weights with half the step, at most this many times.
        lr_backoff: with ``lr="auto"`` and full-batch ``gd``, undo the step and halve the
            step size whenever the training loss rises (by more than 1e-4 relative). The
            curvature of deep LeCun and mean-field networks grows while they fit (progressive
            sharpening), so the step
            that was stable at init stops being stable; GD at a stable step never raises the
            loss, so a rise is the signal. A fixed ``lr`` is never changed.
    """

    optimizer: str = "gd"
    loss: str = "mse"
    lr: float | str = "auto"
    steps: int = 1000
    target_loss: float | None = None
    batch_size: int | None = None
    momentum: float = 0.0
    regime: str = "standard"
    alpha: float = 1.0
    max_retries: int = 3
    checkpoint_loss: float | None = None
    lr_backoff: bool = True
    blowup: float = 1e4
    power_iters: int = 30
    lr_probe: int = 2048

    def __post_init__(self) -> None:
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("loss", self.loss, LOSSES)
        _choice("regime", self.regime, REGIMES)
        if self.lr != "auto":
            if isinstance(self.lr, str):
                raise ValueError(f'lr: expected a number or "auto", got {self.lr!r}')
            _pos("lr", self.lr)
        _pos("steps", self.steps, integer=True)
        _pos("target_loss", self.target_loss, allow_none=True)
        _pos("batch_size", self.batch_size, integer=True, allow_none=True)
        if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
            raise ValueError(f"momentum: expected a number in [0, 1), got {self.momentum!r}")
        _pos("alpha", self.alpha)
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"max_retries: expected an integer >= 0, got {self.max_retries!r}")
        if not isinstance(self.lr_backoff, bool):
            raise ValueError(f"lr_backoff: expected true or false, got {self.lr_backoff!r}")
        _pos("blowup", self.blowup)
        _pos("power_iters", self.power_iters, integer=True)
        _pos("lr_probe", self.lr_probe, integer=True)
        _pos("checkpoint_loss", self.checkpoint_loss, allow_none=True)
        if not get_regime(self.regime).alpha_scaled and self.alpha != 1.0:
            raise ValueError(
                f"alpha: only the lazy regime uses alpha (alpha-scaling), got {self.alpha} with "
                f"regime {self.regime!r}"
            )

    def to_dict(self) -> dict:
        """Plain-dict form."""
        return asdict(self)
