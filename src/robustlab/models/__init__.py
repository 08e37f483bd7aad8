"""Network families (MLP now; CNN/ResNet later), their specs and safe (de)serialisation."""

from .io import load_model, save_model
from .mlp import MLP, MLPSpec, check_positive_int, mlp, mlp_from_spec, reinit

__all__ = [
    "MLP",
    "MLPSpec",
    "check_positive_int",
    "load_model",
    "mlp",
    "mlp_from_spec",
    "reinit",
    "save_model",
]
