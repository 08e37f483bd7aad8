"""Network families (MLP, CNN, ResNet), their specs and safe (de)serialisation."""

from .conv import CNN, CNNSpec, cnn, cnn_from_spec
from .families import FAMILY_NAMES, Family, build_model, get_family
from .io import FAMILIES, load_model, save_model
from .mlp import MLP, MLPSpec, check_positive_int, mlp, mlp_from_spec, reinit
from .resnet import ResNet, ResNetSpec, resnet, resnet_from_spec

__all__ = [
    "CNN",
    "FAMILIES",
    "FAMILY_NAMES",
    "Family",
    "MLP",
    "CNNSpec",
    "MLPSpec",
    "ResNet",
    "ResNetSpec",
    "build_model",
    "check_positive_int",
    "cnn",
    "cnn_from_spec",
    "get_family",
    "load_model",
    "mlp",
    "mlp_from_spec",
    "reinit",
    "resnet",
    "resnet_from_spec",
    "save_model",
]
