"""Theory: closed forms at init (:mod:`.closed_forms`), kernels, the lazy limit.

Theory knows no torch modules: everything here is a function of numbers. The
infinite-width kernels (``nngp``, ``ntk``: :mod:`.kernels`) and the P of the lazily trained
infinite-width network (``lazy_limit``: :mod:`.lazy`, :mod:`.lazy_moments`,
:mod:`.after_training`) are functions of tensors of points.
"""

from __future__ import annotations

from .after_training import after_training_table
from .closed_forms import (
    REGIONS,
    expected_grad_sq_norm,
    grad_sq_norm,
    init_stability_bound,
    init_table,
    kappa,
    law_of_robustness_floor,
    rms_factor,
)
from .kernels import nngp, ntk
from .lazy import LazyLimitResult, lazy_limit, lazy_limit_p

__all__ = [
    "REGIONS",
    "LazyLimitResult",
    "after_training_table",
    "expected_grad_sq_norm",
    "grad_sq_norm",
    "init_stability_bound",
    "init_table",
    "kappa",
    "law_of_robustness_floor",
    "lazy_limit",
    "lazy_limit_p",
    "nngp",
    "ntk",
    "rms_factor",
]
