"""Measurements on a model: perturbation stability, worst case (PGD), input gradients and
Jacobians, laziness."""

from ._adversarial import AdversarialResult, adversarial
from ._laziness import empirical_ntk, laziness
from .jacobian import input_jacobians
from .stability import (
    METHODS,
    REGIONS,
    StabilityResult,
    exact_from_gradients,
    input_gradients,
    perturbation_stability,
    sample_perturbations,
)

__all__ = [
    "METHODS",
    "REGIONS",
    "AdversarialResult",
    "StabilityResult",
    "adversarial",
    "empirical_ntk",
    "exact_from_gradients",
    "input_gradients",
    "input_jacobians",
    "laziness",
    "perturbation_stability",
    "sample_perturbations",
]
