"""Training: config, losses, functional optimizers, ``lr="auto"``, regimes, ensembles."""

from .config import LOSSES, OPTIMIZERS, REGIMES, TrainConfig
from .lr import auto_lr, ntk_top_eigenvalue
from .regimes import AlphaScaled, Linearized, Regime, get_regime
from .trainer import TrainResult, train, train_ensemble

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "REGIMES",
    "AlphaScaled",
    "Linearized",
    "Regime",
    "TrainConfig",
    "TrainResult",
    "auto_lr",
    "get_regime",
    "ntk_top_eigenvalue",
    "train",
    "train_ensemble",
]
