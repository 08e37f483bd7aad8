"""Network families (MLP, CNN, ResNet), their specs and safe (de)serialisation, and networks
of the user's own builders (:mod:`.user`)."""

from .._checks import check_positive_int  # the size check the builders use, public here too
from ._mlp import MLP, MLPSpec, mlp, mlp_from_spec, reinit
from ._resnet import ResNet, ResNetSpec, resnet, resnet_from_spec
from .conv import CNN, CNNSpec, cnn, cnn_from_spec
from .families import FAMILY_NAMES, Family, build_model, get_family
from .fan_in import reinit_by_fan_in
from .io import FAMILIES, load_model, save_model
from .user import UserNet, UserSpec, build_user_model

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
    "UserNet",
    "UserSpec",
    "build_model",
    "build_user_model",
    "check_positive_int",
    "cnn",
    "cnn_from_spec",
    "get_family",
    "load_model",
    "mlp",
    "mlp_from_spec",
    "reinit",
    "reinit_by_fan_in",
    "resnet",
    "resnet_from_spec",
    "save_model",
]
