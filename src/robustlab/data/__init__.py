"""Data layer: synthetic sphere-teacher data, MNIST-1D, digits, user files, local MNIST/CIFAR.

``load(name, ...)`` returns a `Dataset` of tensors; nothing is ever downloaded.
"""

from .config import DataConfig
from .dataset import Dataset
from .images import read_idx
from .loader import load
from .points import load_points
from .registry import datasets
from .synthetic import sample_sphere

__all__ = ["DataConfig", "Dataset", "datasets", "load", "load_points", "read_idx", "sample_sphere"]
