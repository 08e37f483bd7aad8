"""Publication figures from tidy result rows (columns of :mod:`robustlab.sweep.schema`).

Every figure draws the predictor rows (:func:`robustlab.report.rows.predictor_rows`) of
one measurement (eps, method, region), stated in its title. Conventions shared by all: a
line per sweep (and config hash), never two experiments pooled; one y scale per figure,
shared by its panels; the mean over seeds as the line and each seed as a faint point beside
it; on width axes a dotted vertical line where the parameter count p equals the number of
training points N.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from ..claims import Protocol
from .claim_figures import fit_control, p_across_pn, p_vs_depth, p_vs_width
from .regime_figures import (
    laziness_vs_depth,
    p_init_theory,
    p_init_vs_final,
    weight_change_vs_width,
)
from .worst_figures import worst_vs_average

__all__ = ["CAPTIONS", "FIGURES", "figures"]

FIGURES: dict[str, Callable[..., Figure | None]] = {
    "fit_control": fit_control,
    "p_across_pn": p_across_pn,
    "p_vs_depth": p_vs_depth,
    "p_vs_width": p_vs_width,
    "weight_change_vs_width": weight_change_vs_width,
    "laziness_vs_depth": laziness_vs_depth,
    "p_init_theory": p_init_theory,
    "p_init_vs_final": p_init_vs_final,
    "worst_vs_average": worst_vs_average,
}
"""Figure name -> drawing function (returns None when the rows lack its data)."""

CAPTIONS = {
    "fit_control": "Fit control: the final training loss of every run a claim uses, against "
    "its swept axis, at the claim's level of fit (C1 at the looser checkpoint loss, the others "
    "at the target loss; dotted: the loss aimed for). A verdict compares runs fitted equally "
    "well only where these lines are flat; crosses are runs that missed the level and are "
    "excluded from the verdict (counted in n_excluded). C3/C4: the standard runs beside the "
    "linearized ones are dashed.",
    "p_across_pn": "P against width in the width sweep across p = N (dotted vertical line): "
    "C1 is the slope left of it (at the checkpoint loss), C2 right of it (at the target loss). "
    "The star marks where the mean P peaks; the legend gives that width's p/N.",
    "p_vs_depth": "P after training against depth, a panel per initialization: linearized "
    "runs (lazy exactly, judged by C3/C4) solid, standard runs of the same shapes and seeds "
    "(reported beside) dashed.",
    "p_vs_width": "P after training against width for the runs not judged across p = N "
    "(mean-field: C5), p = N marked.",
    "weight_change_vs_width": "Relative weight change against width, per sweep; dashed and "
    "dotted: the lazy and non-lazy thresholds of the verdicts.",
    "laziness_vs_depth": "How lazy the standard runs were, against depth: weight change, "
    "empirical NTK change, and the deviation of the trained input gradient from the linearized "
    "twin's (same w0 and data), relative to what training changed.",
    "p_init_theory": "P at initialization (points) and the closed-form Jensen bound (dashed).",
    "p_init_vs_final": "P at initialization against P after training, one point per run.",
    "worst_vs_average": "Worst case beside average: the PGD worst case over the same region "
    "(projected gradient ascent with restarts) divided by P, per run, against width and "
    "depth. A function linear on the region gives 1/kappa_d on the L2 ball (about 4.25 at "
    "d = 10).",
}
"""Figure name -> the caption the report prints under it."""


def figures(
    df: pd.DataFrame,
    out_dir: str | Path,
    *,
    formats: Sequence[str] = ("png", "pdf"),
    protocol: Protocol | None = None,
) -> list[Path]:
    """Write the report's figures (:data:`FIGURES`, each only when the rows hold its data)
    to ``out_dir`` as ``NAME.FORMAT``; returns the paths written, in :data:`FIGURES` order.

    The laziness thresholds of ``protocol`` (default :class:`~robustlab.claims.Protocol`)
    are drawn on the regime checks.
    """
    thresholds = (protocol or Protocol()).thresholds
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if df.empty:
        return written
    for name, draw in FIGURES.items():
        fig = draw(df, **thresholds)
        if fig is None:
            continue
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            meta = {"CreationDate": None} if fmt == "pdf" else None  # reproducible bytes
            fig.savefig(path, format=fmt, dpi=150, metadata=meta)
            written.append(path)
    return written
