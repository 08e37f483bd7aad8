"""The protocol of the claims: every choice a verdict depends on, in one frozen object.

A verdict is only as honest as its protocol was fixed before the verdict was looked at;
this object is that protocol. Each default is written here once: the judge, the
sensitivity variants, the laziness-threshold grid, the report's prose and the CLI's
defaults all read it from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["Protocol"]


def _check_share(name: str, value: Any, *, open_low: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (0 < value < 1 if open_low else 0 <= value <= 1):
        bounds = "in (0, 1)" if open_low else "in [0, 1]"
        raise ValueError(f"{name}: expected a number {bounds}, got {value!r}")


def _check_positive(name: str, value: Any) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value <= 0:
        raise ValueError(f"{name}: expected a positive number, got {value!r}")


@dataclass(frozen=True)
class Protocol:
    """How claims are judged (:func:`robustlab.claims.assess`).

    Attributes:
        lazy_threshold: C3/C4 judged on measured (standard) runs need every run's relative
            weight change and NTK change at or below this (linearized runs are lazy exactly).
        nonlazy_threshold: C5 needs every mean-field run's weight change at or above this.
        level: confidence level of the t interval over per-seed slopes.
        robust_share: a directional verdict must hold in at least this share of the
            sensitivity variants, else it is reported ``fragile``.
        max_excluded: more than this share of a claim's runs missing their target training
            loss makes the verdict ``not converged``.
        lazy_grid, nonlazy_grid: the laziness thresholds every claim is re-judged at (the
            main pair is added when it is not on the grid).
    """

    lazy_threshold: float = 0.1
    nonlazy_threshold: float = 0.3
    level: float = 0.95
    robust_share: float = 0.8
    max_excluded: float = 0.2
    lazy_grid: tuple[float, ...] = (0.05, 0.1, 0.2)
    nonlazy_grid: tuple[float, ...] = (0.2, 0.3, 0.5)

    def __post_init__(self) -> None:
        _check_positive("lazy_threshold", self.lazy_threshold)
        _check_positive("nonlazy_threshold", self.nonlazy_threshold)
        _check_share("level", self.level, open_low=True)
        _check_share("robust_share", self.robust_share, open_low=False)
        _check_share("max_excluded", self.max_excluded, open_low=False)
        for name in ("lazy_grid", "nonlazy_grid"):
            grid = getattr(self, name)
            if not isinstance(grid, (tuple, list)) or not grid:
                raise ValueError(f"{name}: expected a non-empty tuple of thresholds")
            for v in grid:
                _check_positive(name, v)
            object.__setattr__(self, name, tuple(float(v) for v in grid))

    @property
    def thresholds(self) -> dict[str, float]:
        """``{"lazy_threshold": ..., "nonlazy_threshold": ...}`` (drawn on the figures)."""
        return {"lazy_threshold": self.lazy_threshold, "nonlazy_threshold": self.nonlazy_threshold}

    def threshold_pairs(self) -> list[tuple[float, float]]:
        """Every (lazy, non-lazy) pair of the grid, the main pair included, sorted."""
        lazy = sorted({*self.lazy_grid, self.lazy_threshold})
        nonlazy = sorted({*self.nonlazy_grid, self.nonlazy_threshold})
        return [(a, b) for a in lazy for b in nonlazy]

    def at_thresholds(self, lazy: float, nonlazy: float) -> Protocol:
        """This protocol with other laziness thresholds."""
        return replace(self, lazy_threshold=lazy, nonlazy_threshold=nonlazy)

    def as_dict(self) -> dict[str, Any]:
        """The protocol's fields (for the report and stored outputs)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
