"""Measurements on a model: perturbation stability, input gradients, laziness."""

from .laziness import empirical_ntk, laziness
from .stability import (
    StabilityResult,
    input_gradients,
    perturbation_stability,
    sample_perturbations,
)

__all__ = [
    "StabilityResult",
    "empirical_ntk",
    "input_gradients",
    "laziness",
    "perturbation_stability",
    "sample_perturbations",
]
