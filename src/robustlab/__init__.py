"""robustlab: how width, depth, initialization and training change average robustness.

Implements and extends Zhu, Liu, Chrysos & Cevher, "Robustness in deep learning: the good
(width), the bad (depth), and the ugly (initialization)", NeurIPS 2022.

Every public name loads on first use (PEP 562), so ``import robustlab`` and
``robustlab --help`` start fast; torch loads with the first network or metric, pandas,
scipy and matplotlib with the claims, sweeps and reports that need them.
"""

from __future__ import annotations

import importlib

from ._version import __version__ as __version__

# the submodule that defines each public name: the one list of robustlab's top-level names
_EXPORTS = {
    "init": ("InitScheme", "custom", "get_init", "init_schemes"),
    "measure": ("measure_at_init", "measure_saved"),
    "metrics": (
        "AdversarialResult",
        "StabilityResult",
        "adversarial",
        "laziness",
        "perturbation_stability",
    ),
    "models": (
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
    "training": ("TrainConfig", "TrainResult", "train", "train_ensemble"),
}
_NAMES = {name: module for module, names in _EXPORTS.items() for name in names}
_SUBMODULES = ("claims", "data", "metrics", "models", "report", "sweep", "theory", "training")

__all__ = sorted(("__version__", *_SUBMODULES, *_NAMES))


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
