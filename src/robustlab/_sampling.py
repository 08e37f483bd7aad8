"""Uniform points on the unit sphere and in the unit ball: the one sampler every layer uses.

- sphere S^{d-1}: a standard Gaussian vector divided by its norm (its law is rotation
  invariant, so the direction is uniform);
- ball B^d: a uniform direction times U^(1/d), U ~ Uniform(0, 1) (the volume of B(0, r)
  grows as r^d).

Torch generators draw torch tensors on the generator's device; a NumPy ``Generator`` draws a
float64 NumPy array (the data layer's generated data sets are NumPy-seeded).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["generator_device", "uniform_ball", "uniform_sphere"]


def generator_device(generator: torch.Generator | None) -> torch.device | str:
    """The device a generator draws on (CPU for the default generator)."""
    return generator.device if generator is not None else "cpu"


def uniform_sphere(
    n: int,
    d: int,
    generator: torch.Generator | np.random.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor | np.ndarray:
    """(n, d) points uniform on the unit sphere S^{d-1} (normalised Gaussians)."""
    if isinstance(generator, np.random.Generator):
        g = generator.standard_normal((n, d))
        return g / np.linalg.norm(g, axis=1, keepdims=True)
    z = torch.randn(n, d, generator=generator, dtype=dtype, device=generator_device(generator))
    return z / torch.linalg.vector_norm(z, dim=1, keepdim=True)


def uniform_ball(
    n: int, d: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(n, d) points uniform in the unit ball B^d: a uniform direction times U^(1/d)."""
    z = uniform_sphere(n, d, generator, dtype)
    u = torch.rand(n, 1, generator=generator, dtype=dtype, device=generator_device(generator))
    return z * u.pow(1.0 / d)
