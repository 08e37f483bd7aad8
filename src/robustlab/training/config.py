"""The trainer's configuration: one frozen dataclass, validated at construction."""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass

from .._checks import (
    MAX_STEPS,
    _bool,
    _choice,
    _fail,
    _int,
    _nonneg_int,
    _number,
    _set,
    check_positive,
    short,
)
from .losses import LOSSES, get_loss
from .optim import OPTIMIZERS, get_optimizer
from .regimes import REGIMES, get_regime

__all__ = ["LOSSES", "OPTIMIZERS", "PLATEAU_EVERY", "PLATEAU_MIN_STEPS", "REGIMES", "TrainConfig"]

# fewest steps before the plateau rule may stop a run: its last fifth is then >= 10 steps, and
# the first steps at lr="auto" (fast fall, back-offs) are never read as a plateau
PLATEAU_MIN_STEPS = 50
# the rule is checked every this many steps: a check is about 10 us of (E,) tensor operations,
# so it adds about 1 us a step, and a plateau lasts far longer than 10 steps
PLATEAU_EVERY = 10


def check_lr(path: str, value: object) -> str | float:
    """``"auto"`` or a positive number."""
    if value == "auto":
        return "auto"
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and value > 0:
        return check_positive(path, value)
    _fail(path, f'expected a positive number or "auto", got {short(value)}')


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
        steps: step budget; ``target_loss`` stops earlier once the training loss reaches it,
            and so does ``plateau`` once the loss stops falling.
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
        plateau: optional, in (0, 1). With L(t) the run's recorded training loss after t
            updates (the history: full batch for ``gd``, the step's minibatch for ``sgd`` and
            ``adam``), a run stops at the first step t in 50, 60, 70, ... (t >=
            ``PLATEAU_MIN_STEPS`` = 50, a multiple of ``PLATEAU_EVERY`` = 10, budget step
            included when it is one) at which

                L(s) - L(t) < plateau * L(s),   s = floor(4 t / 5),

            i.e. its relative decrease (L(s) - L(t)) / L(s) over the last fifth of the steps
            run is below ``plateau`` (a rise counts as no decrease). Checked for every member
            of an ensemble at once; a member that stops keeps its weights while the others go
            on. ``target_loss`` is checked first, at every step.
            ``TrainResult.stop_reason`` says which rule stopped a run. None (default): never.
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
    plateau: float | None = None

    def __post_init__(self) -> None:
        get_optimizer(self.optimizer)
        get_loss(self.loss)
        _choice(REGIMES)("regime", self.regime)
        _set(self, "lr", check_lr("lr", self.lr))
        _set(self, "steps", _int("steps", self.steps, maximum=MAX_STEPS))
        for key in ("target_loss", "checkpoint_loss"):
            if getattr(self, key) is not None:
                _set(self, key, check_positive(key, getattr(self, key)))
        if self.batch_size is not None:
            _set(self, "batch_size", _int("batch_size", self.batch_size))
        in_unit = lambda x: 0 <= x < 1  # noqa: E731
        _set(self, "momentum", _number("momentum", self.momentum, "a number in [0, 1)", in_unit))
        _set(self, "alpha", check_positive("alpha", self.alpha))
        _set(self, "max_retries", _nonneg_int("max_retries", self.max_retries))
        _bool("lr_backoff", self.lr_backoff)
        _set(self, "blowup", check_positive("blowup", self.blowup))
        _set(self, "power_iters", _int("power_iters", self.power_iters, maximum=MAX_STEPS))
        _set(self, "lr_probe", _int("lr_probe", self.lr_probe))
        if self.plateau is not None:
            plateau = _number("plateau", self.plateau, "a number in (0, 1)", lambda x: 0 < x < 1)
            _set(self, "plateau", plateau)
        both = self.checkpoint_loss is not None and self.target_loss is not None
        if both and self.checkpoint_loss <= self.target_loss:
            _fail(
                "checkpoint_loss",
                f"must be above target_loss ({self.target_loss:g}), got {self.checkpoint_loss:g}",
            )
        if not get_regime(self.regime).alpha_scaled and self.alpha != 1.0:
            _fail(
                "alpha",
                f"only the lazy regime uses alpha (alpha-scaling), got {self.alpha} with "
                f"regime {self.regime!r}",
            )

    def to_dict(self) -> dict:
        """Plain-dict form."""
        return asdict(self)
