"""robustlab: how width, depth, initialization and training change average robustness.

Implements and extends Zhu, Liu, Chrysos & Cevher, "Robustness in deep learning: the good
(width), the bad (depth), and the ugly (initialization)", NeurIPS 2022.

Every public name loads on first use (PEP 562), so ``import robustlab`` and
``robustlab --help`` start fast; torch loads with the first network or metric, pandas,
scipy and matplotlib with the claims, sweeps and reports that need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__

# public name -> the submodule that defines it
_NAMES = {
    **dict.fromkeys(("InitScheme", "custom", "get_init", "init_schemes"), "init"),
    **dict.fromkeys(
        (
            "AdversarialResult",
            "StabilityResult",
            "adversarial",
            "laziness",
            "perturbation_stability",
        ),
        "metrics",
    ),  # fmt: skip
    **dict.fromkeys(
        (
            "CNN",
            "MLP",
            "CNNSpec",
            "MLPSpec",
            "ResNet",
            "ResNetSpec",
            "cnn",
            "load_model",
            "mlp",
            "resnet",
            "save_model",
        ),
        "models",
    ),  # fmt: skip
    **dict.fromkeys(("TrainConfig", "TrainResult", "train", "train_ensemble"), "training"),
    **dict.fromkeys(("measure_at_init", "measure_saved"), "measure"),
}
_SUBMODULES = ("claims", "data", "metrics", "models", "report", "sweep", "theory", "training")

__all__ = [
    "AdversarialResult",
    "CNN",
    "CNNSpec",
    "InitScheme",
    "MLP",
    "MLPSpec",
    "ResNet",
    "ResNetSpec",
    "StabilityResult",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "adversarial",
    "claims",
    "cnn",
    "custom",
    "data",
    "get_init",
    "init_schemes",
    "laziness",
    "load_model",
    "measure_at_init",
    "measure_saved",
    "metrics",
    "mlp",
    "models",
    "perturbation_stability",
    "report",
    "resnet",
    "save_model",
    "sweep",
    "theory",
    "train",
    "train_ensemble",
    "training",
]

if TYPE_CHECKING:  # the names as static tools see them
    from . import claims, data, metrics, models, report, sweep, theory, training
    from .init import InitScheme, custom, get_init, init_schemes
    from .measure import measure_at_init, measure_saved
    from .metrics import (
        AdversarialResult,
        StabilityResult,
        adversarial,
        laziness,
        perturbation_stability,
    )
    from .models import (
        CNN,
        MLP,
        CNNSpec,
        MLPSpec,
        ResNet,
        ResNetSpec,
        cnn,
        load_model,
        mlp,
        resnet,
        save_model,
    )
    from .training import TrainConfig, TrainResult, train, train_ensemble


def __getattr__(name: str):
    """Load a public name (or subpackage) on first use and keep it."""
    if name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    elif name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    else:
        raise AttributeError(f"module 'robustlab' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
