"""Worst case beside average: the ratio of the PGD worst case to P against width and depth.

For a function that is linear on the region the ratio is 1 / kappa_d on the L2 ball (the
caption gives it at the rows' input dimension): the worst direction against the average
one. A ratio that moves with width or depth says the two notions of robustness scale
differently.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import plot as pl
from .rows import keyed, predictor_rows

__all__ = ["worst_panels", "worst_vs_average"]

_AVERAGE = ("exact", "jacobian", "mc")  # the average-case method used, in this preference


def _ratios(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, eps, region) with ``ratio`` = pgd / average P after training."""
    d = predictor_rows(df, "final")
    if d.empty or "pgd" not in set(d["method"]):
        return d.iloc[:0].assign(ratio=pd.Series(dtype=float))
    keys = ["cell", "eps", "region"]
    worst = d[d["method"] == "pgd"].set_index(keys)["worst_value"]
    avg = None
    for m in _AVERAGE:
        rows = d[d["method"] == m].set_index(keys)["p_value"]
        avg = rows if avg is None else avg.combine_first(rows)
    runs = d[d["method"] == "pgd"].set_index(keys)
    ratio = (worst / avg.reindex(worst.index)).rename("ratio")
    out = runs.assign(ratio=ratio).reset_index()
    return out[np.isfinite(out["ratio"].to_numpy(float))]


def worst_panels(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The panels of :func:`worst_vs_average`: (axis, keyed runs with ``ratio``) for width
    and depth, where a line has two values of the axis or more."""
    d = _ratios(df)
    panels = []
    for x, other in (("width", "depth"), ("depth", "width")):
        rows = keyed(d, x, ["init", "regime", other, "eps"])
        if len(rows):
            panels.append((x, rows))
    return panels


def worst_vs_average(df: pd.DataFrame, **_) -> Figure | None:
    """Worst case / average (PGD over the same region / P) against width and depth, a panel
    per swept axis, a line per sweep; None without pgd rows."""
    panels = [pl.Panel(rows, x, "ratio", f"against {x}") for x, rows in worst_panels(df)]
    if not panels:
        return None
    title = "Worst case / average after training (PGD / P)"
    return pl.panel_figure(title, panels, ylabel="worst case / P")
