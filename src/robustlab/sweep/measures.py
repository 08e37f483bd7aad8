"""What a cell measures on a function: P for every point set x eps x method, the gradients
it comes from (shared), the lazy limit beside it, and the sizes of the laziness probe.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from ..metrics import adversarial, exact_from_gradients, input_gradients, perturbation_stability
from ..theory import lazy_limit_p
from ..training.regimes import get_regime
from .rows import Row
from .schema import WORST_METHODS

if TYPE_CHECKING:
    from .config import Cell
    from .runs import Run

__all__ = [
    "PROBE_MIN",
    "PROBE_POINTS",
    "PROBE_SHARE",
    "Gradients",
    "grad_lin_dev",
    "lazy_limits",
    "measure",
    "point_sets",
    "probe_points",
]

PROBE_POINTS = 32  # most points for the empirical-NTK change (cost grows as their square)
PROBE_MIN, PROBE_SHARE = 8, 0.05  # fewest points; the probe's FLOPs against training's


def probe_points(n_train: int, steps: int, k: int) -> int:
    """Points of the empirical-NTK probe, sized by its cost.

    The two NTKs (initial and trained network) on n points with k outputs take about
    20 n^2 k p FLOPs (n k columns, each a VJP, 4 n p, and a JVP, 6 n p) against 6 N p T
    for training N points for T steps. n is the largest number of points keeping the
    probe within PROBE_SHARE of training, clipped to [PROBE_MIN, PROBE_POINTS]: the cap
    binds for the presets (one output, N T >= 5e5), the share for many outputs or short
    runs (k = 10, width 256, depth 6: 32 points, 320 NTK columns, took 0.64 s beside 2.9 s
    of training on 794 points for 200 steps; 15 points take 0.25 s).
    """
    n = math.isqrt(int(PROBE_SHARE * 6 * n_train * steps / (20 * k)))
    return max(PROBE_MIN, min(PROBE_POINTS, n))


def point_sets(ds, cell: Cell) -> dict[str, torch.Tensor]:
    """The point sets P is measured on (``measure.point_sets``), each cut to ``measure.points``."""
    n = cell.measure.points
    test = ds.x_test if ds.x_test.shape[0] else ds.x_train
    sets = {"test": test, "train": ds.x_train}
    return {name: sets[name][:n] for name in cell.measure.point_sets}


class Gradients:
    """Input gradients computed once per (run, stage, function, point set) and shared by every
    eps, the gradient norm column and the linearization deviation."""

    def __init__(self) -> None:
        self._cache: dict[tuple, torch.Tensor] = {}

    def get(self, key: tuple, model, x: torch.Tensor) -> torch.Tensor:
        """(n, d) float64 gradients of ``model`` at ``x``, computed the first time ``key`` asks."""
        if key not in self._cache:
            self._cache[key] = input_gradients(model, x).double().cpu()  # (n, d)
        return self._cache[key]


def measure(run: Run, model, stage: str, label: str) -> list[Row]:
    """Rows of P of ``model`` (the function called ``label``) at ``stage``, for every point set
    x eps x method of the run's cell, over the run's base row.

    ``exact`` comes from one gradient per point: per point eps kappa_d ||grad f(x)|| (the
    identity E|g . delta| = eps kappa_d ||g||). ``pgd`` rows hold the worst case
    mean_x max ||f(x') - f(x)|| over the same region in ``worst_value`` (``p_value`` stays
    NULL: a worst case is not P).
    """
    m = run.cell.measure
    rows = []
    for on, x in run.points.items():
        k = model(x[:1]).reshape(1, -1).shape[1]
        g = run.grads.get((run.index, stage, label, on), model, x) if k == 1 else None
        norms = None if g is None else torch.linalg.vector_norm(g, dim=1)
        gen = torch.Generator().manual_seed(run.cell.seed)
        for eps in m.eps:
            for method in m.methods:
                if method == "exact" and k != 1:
                    continue
                if method == "exact":
                    r = exact_from_gradients(g, eps, m.region)
                elif method == "pgd":  # worst case over the same region (L2 or L-infinity)
                    norm = "linf" if m.region == "linf_ball" else "l2"
                    r = adversarial(model, x, eps, norm=norm, generator=gen)
                else:
                    r = perturbation_stability(
                        model, x, eps, method=method, region=m.region,
                        n_samples=m.n_samples, generator=gen,
                    )  # fmt: skip
                worst = method in WORST_METHODS
                columns = ("worst_value", "worst_stderr") if worst else ("p_value", "p_stderr")
                rows.append(
                    Row(
                        run.base, dict(zip(columns, (r.value, r.stderr), strict=True)),
                        stage=stage, eps=eps, method=method, region=m.region, model=label,
                        points=on, grad_norm=math.nan if norms is None else float(norms.mean()),
                    )
                )  # fmt: skip
    return rows


def grad_lin_dev(g_t: torch.Tensor, g_lin: torch.Tensor, g_0: torch.Tensor) -> float:
    """||g_T - g_lin,T||_F / ||g_T - g_0||_F over the measured points (all (n, d) entries):
    how far the trained network's input gradients are from its exact linearization's,
    relative to how far training moved them."""
    den = float(torch.linalg.norm(g_t - g_0))
    return float(torch.linalg.norm(g_t - g_lin)) / den if den > 0 else math.nan


def lazy_limits(run: Run) -> dict[tuple[str, float], float]:
    """``{(point set, eps): P}`` of the cell's infinite-width lazy limit, trained on the same
    data to convergence (:func:`robustlab.theory.lazy_limit_p`): the limit of the Taylor
    model for ``linearized`` cells, of the network's own gradient for the others. Empty
    where no limit applies (not a one-output MLP trained with mse under a regime that keeps
    f(x; w0) and no mean-field parameterization, or a scheme without an infinite-width
    limit such as xavier)."""
    c, ds = run.cell, run.dataset
    reg = get_regime(c.regime)
    ok = (c.model.family == "mlp" and not c.model.bias and c.train.loss == "mse"
          and reg.keeps_init_function and reg.parameterization is None
          and ds.y_train.is_floating_point()
          and c.measure.region in ("ball", "sphere"))  # fmt: skip
    if not ok:
        return {}
    model = "linearized" if reg.linearized else "network"
    out = {}
    try:
        for on, x in run.points.items():
            for eps in c.measure.eps:
                out[(on, eps)] = lazy_limit_p(
                    ds.x_train.double(), ds.y_train.double(), x.double(), init=c.init,
                    depth=c.depth, eps=eps, region=c.measure.region, model=model, seed=c.seed,
                )  # fmt: skip
    except ValueError:  # e.g. a scheme whose function has no infinite-width limit
        return {}
    return out
