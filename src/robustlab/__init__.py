"""robustlab: how width, depth, initialization and training change average robustness.

Implements and extends Zhu, Liu, Chrysos & Cevher, "Robustness in deep learning: the good
(width), the bad (depth), and the ugly (initialization)", NeurIPS 2022. See DESIGN.md.
"""

import importlib

from . import metrics
from ._version import __version__
from .init import InitScheme, custom, get_init, init_schemes
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
from .train import TrainConfig, TrainResult, train, train_ensemble

__all__ = [
    "CNN",
    "MLP",
    "AdversarialResult",
    "CNNSpec",
    "InitScheme",
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
    "metrics",
    "mlp",
    "perturbation_stability",
    "report",
    "resnet",
    "save_model",
    "sweep",
    "theory",
    "train",
    "train_ensemble",
]

# pandas, scipy, matplotlib and YAML load with these, when first used (fast start)
_LAZY_SUBMODULES = ("claims", "data", "report", "sweep", "theory")


def __getattr__(name: str):
    """``rl.claims``, ``rl.data``, ``rl.report``, ``rl.sweep``, ``rl.theory`` on first use."""
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'robustlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
