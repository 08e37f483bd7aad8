"""What every method of P takes about one measurement: the model, its points, eps and the
region, and how to run it (chunk size, output selection, labels, progress)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .regions import Region

__all__ = ["Task"]


@dataclass(frozen=True)
class Task:
    """One measurement of P, checked by :func:`robustlab.metrics.perturbation_stability`.

    Attributes:
        model: the network (a callable on a batch of inputs).
        x: the points (N, *input shape).
        eps: the radius of the region.
        region: the region of perturbations (:mod:`robustlab.metrics.regions`).
        chunk: the most points (or rows of one batched call) per call of the model.
        steps: the output selection applied to what the model returns
            (:mod:`robustlab.metrics.outputs`).
        y: labels (N,) where the output selection needs them, else None.
        progress: called as ``progress(points_done, n_points)`` after each chunk.
    """

    model: Callable
    x: torch.Tensor
    eps: float
    region: Region
    chunk: int
    steps: tuple = ()
    y: torch.Tensor | None = None
    progress: Callable[[int, int], None] | None = None
