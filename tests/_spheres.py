"""Points on the unit sphere for the theory tests (imported by several test modules)."""

from __future__ import annotations

import torch

F64 = torch.float64
D = 6  # the input dimension of the lazy-limit tests


def sphere(n: int, d: int, seed: int) -> torch.Tensor:
    """n points uniform on S^{d-1}, float64, from a seeded generator."""
    g = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return g / g.norm(dim=1, keepdim=True)


def lazy_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """25 training points with +-1 labels and 12 test points in d = D."""
    x, xt = sphere(25, D, 0), sphere(12, D, 1)
    y = torch.sign(x[:, 0] + 0.3 * x[:, 1])  # +-1 labels
    return x, y, xt
