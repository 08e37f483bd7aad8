"""Measurements on a model: perturbation stability, input gradients, laziness."""

from .stability import (
    StabilityResult,
    input_gradients,
    perturbation_stability,
    sample_perturbations,
)

__all__ = ["StabilityResult", "input_gradients", "perturbation_stability", "sample_perturbations"]
