"""The checks of a sweep config that read several of its sections, run by
:class:`~robustlab.sweep.config.SweepConfig` once its sections are read: each init with a
parameterization the model family takes, each regime's parameterization on that family and
depth, the label scale set in one place, and the sweep's size (cells and memory).

Every error is a :class:`~robustlab._checks.ConfigError` at the YAML path of the value at
fault (``grid.init[1]``, ``grid.regime``, ...), before any cell runs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .._checks import MAX_CELLS, _fail, check_memory
from ..init import PARAMETERIZATIONS, get_init
from ..models._mlp import n_params
from ..models.user import OWN
from ..theory.lazy_moments import limit_bytes
from ..training.regimes import get_regime

if TYPE_CHECKING:
    from .config import SweepConfig

__all__ = ["check_across"]


def check_across(config: SweepConfig) -> None:
    """Every check below, in the order a reader fixes them: inits, label scale, regimes,
    then the size."""
    check_inits(config)
    if config.grid.label_scale is not None and "label_scale" in config.data.options:
        _fail(
            "grid.label_scale",
            "data.label_scale is set too; give the label scale in one place (the grid "
            "sweeps it, the data section fixes it)",
        )
    for regime in config.grid.regime:
        check_parameterization(config, regime, get_regime(regime).parameterization)
    check_size(config)


def check_size(config: SweepConfig) -> None:
    """At most MAX_CELLS cells, and the largest cell within this machine's memory: a
    lower bound of what it holds at once, counted before anything runs."""
    g = config.grid
    swept = (g.label_scale,) if g.label_scale else ()  # label scales: an axis when swept
    axes = (g.width, g.depth, g.init, g.regime, g.alpha, *swept, config.seeds)
    n_cells = math.prod(len(a) for a in axes)
    if n_cells > MAX_CELLS:
        scales = " x label scales" if g.label_scale else ""
        _fail(
            "grid",
            f"{' x '.join(str(len(a)) for a in axes)} (widths x depths x inits x regimes x "
            f"alphas{scales} x seeds) = {n_cells} cells; at most {MAX_CELLS}: split the sweep",
        )
    m, L = max(g.width), max(g.depth)
    d = config.data.in_dim or 1  # unknown until read for data other than sphere: 1
    n = config.data.n_train or 0
    points = min(config.measure.points, config.data.n_test or config.measure.points)
    batch = min(config.train.batch_size or n, n)
    lazy = limit_bytes(n, 0, 1) if config.measure.lazy_limit else 0
    parts = {  # bytes of float32 weights and their gradients; activations; points
        "grid.width": 4 * 2 * n_params(d if config.model.family == "mlp" else 1, m, L),
        "data.n_train": 4 * batch * m * (L - 1) + lazy,
        "measure.points": 4 * points * d,
    }
    check_memory(
        max(parts, key=parts.__getitem__),
        f"a cell of width {m} and depth {L} with {n} training and {points} measured points",
        sum(parts.values()),
        "use narrower or shallower networks or fewer points",
    )


def check_inits(config: SweepConfig) -> None:
    """``own`` for a builder's network only; every scheme with a parameterization the
    family takes (a builder's plain layers have no forward multipliers)."""
    model = config.model
    for i, init in enumerate(config.grid.init):
        if init == OWN:
            if not model.user:
                _fail(
                    f"grid.init[{i}]",
                    f"init 'own' keeps a builder's own weights; model family "
                    f"{model.family!r} draws them from a scheme",
                )
            continue
        param = get_init(init).parameterization
        if param not in model.parameterizations:
            _fail(
                f"grid.init[{i}]",
                f"init {init!r} has the {param} parameterization, which model family "
                f"{model.family!r} does not have (its layers have no forward "
                "multipliers); use a standard scheme or 'own'",
            )


def check_parameterization(config: SweepConfig, regime: str, name: str | None) -> None:
    """A regime that needs a parameterization (mean field) gets one for every init, on
    the model family, at every depth."""
    if name is None:
        return
    param = PARAMETERIZATIONS[name]
    if name not in config.model.parameterizations:
        _fail(
            "grid.regime",
            f"regime {regime!r} needs {param.doc}, which model family "
            f"{config.model.family!r} does not have",
        )
    for i, init in enumerate(config.grid.init):
        try:
            get_init(init).with_parameterization(name)
        except ValueError as err:
            _fail(f"grid.init[{i}]", f"regime {regime!r}: {err}")
    for depth in config.grid.depth:
        if param.depth is not None and depth != param.depth:
            _fail(
                "grid.depth",
                f"regime {regime!r} is {param.doc} and needs depth {param.depth}, got "
                f"depth {depth}",
            )
