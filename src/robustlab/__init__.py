"""robustlab: how width, depth, initialization and training change average robustness.

Implements and extends Zhu, Liu, Chrysos & Cevher, "Robustness in deep learning: the good
(width), the bad (depth), and the ugly (initialization)", NeurIPS 2022. See DESIGN.md.
"""

from . import metrics, theory
from ._version import __version__
from .init import InitScheme, custom, get_init, init_schemes
from .metrics import StabilityResult, perturbation_stability
from .models import MLP, MLPSpec, load_model, mlp, save_model

__all__ = [
    "MLP",
    "InitScheme",
    "MLPSpec",
    "StabilityResult",
    "__version__",
    "custom",
    "get_init",
    "init_schemes",
    "load_model",
    "metrics",
    "mlp",
    "perturbation_stability",
    "save_model",
    "theory",
]
