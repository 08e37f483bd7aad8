"""Network families (MLP, CNN, ResNet), their specs and safe (de)serialisation."""

from .conv import CNN, CNNSpec, cnn, cnn_from_spec
from .io import FAMILIES, load_model, save_model
from .mlp import MLP, MLPSpec, check_positive_int, mlp, mlp_from_spec, reinit
from .resnet import ResNet, ResNetSpec, resnet, resnet_from_spec

__all__ = [
    "CNN",
    "FAMILIES",
    "MLP",
    "CNNSpec",
    "MLPSpec",
    "ResNet",
    "ResNetSpec",
    "check_positive_int",
    "cnn",
    "cnn_from_spec",
    "load_model",
    "mlp",
    "mlp_from_spec",
    "reinit",
    "resnet",
    "resnet_from_spec",
    "save_model",
]
