"""Publication figures from tidy result rows (columns of :mod:`robustlab.sweep.schema`).

Every figure draws the predictor rows (:func:`robustlab.report.rows.predictor_rows`) of
one measurement (eps, method, region), stated in its title. Conventions shared by all: a
line per sweep (and config hash), never two experiments pooled; one y scale per figure,
shared by its panels; the mean over seeds as the line and each seed as a faint point beside
it; on width axes a dotted vertical line where the parameter count p equals the number of
training points N (where that width lies within the swept ones).

:data:`STUDY_FIGURES` show any sweep (P against each swept axis first);
:data:`CLAIM_FIGURES` show the paper's claims. Each figure's caption is written from the
rows it draws (:func:`robustlab.report.captions.caption`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from ..claims import Protocol
from .axis_figures import p_against
from .captions import caption
from .claim_figures import fit_control, p_across_pn, p_vs_depth, p_vs_width
from .regime_figures import (
    laziness_vs_depth,
    p_init_theory,
    p_init_vs_final,
    weight_change_vs_width,
)
from .results import AXES
from .worst_figures import worst_vs_average

__all__ = ["CLAIM_FIGURES", "FIGURES", "STUDY_FIGURES", "caption", "figures", "save_figure"]

FIGURES: dict[str, Callable[..., Figure | None]] = {
    **{f"p_by_{axis}": partial(p_against, axis=axis) for axis in AXES},
    "worst_vs_average": worst_vs_average,
    "p_init_theory": p_init_theory,
    "p_init_vs_final": p_init_vs_final,
    "weight_change_vs_width": weight_change_vs_width,
    "laziness_vs_depth": laziness_vs_depth,
    "p_across_pn": p_across_pn,
    "p_vs_depth": p_vs_depth,
    "p_vs_width": p_vs_width,
    "fit_control": fit_control,
}
"""Figure name -> drawing function (returns None when the rows lack its data), in the
order a report shows them; ``p_by_AXIS``: P against each axis of
:data:`robustlab.report.results.AXES` that a sweep varies."""

CLAIM_FIGURES = ("p_across_pn", "p_vs_depth", "p_vs_width", "fit_control")
"""The figures of the paper's claims: drawn for the claims section only."""

STUDY_FIGURES = tuple(name for name in FIGURES if name not in CLAIM_FIGURES)
"""The figures of any study: P against each swept axis, the worst case, P at init, laziness."""


def figures(
    df: pd.DataFrame,
    out_dir: str | Path,
    *,
    formats: Sequence[str] = ("png", "pdf"),
    protocol: Protocol | None = None,
    names: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write the report's figures (:data:`FIGURES`, each only when the rows hold its data)
    to ``out_dir`` as ``NAME.FORMAT``; returns the paths written, in :data:`FIGURES` order.

    The laziness thresholds of ``protocol`` (default :class:`~robustlab.claims.Protocol`)
    are drawn on the regime checks. ``names``: only these figures (default all);
    ``progress``: called with ``"figure i/n: NAME"`` before each is drawn.
    """
    thresholds = (protocol or Protocol()).thresholds
    wanted = list(FIGURES) if names is None else list(names)
    unknown = [n for n in wanted if n not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure {unknown[0]!r}; choices: {', '.join(FIGURES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if df.empty:
        return written
    todo = [(n, FIGURES[n]) for n in FIGURES if n in wanted]
    for i, (name, draw) in enumerate(todo, 1):
        if progress is not None:
            progress(f"figure {i}/{len(todo)}: {name}")
        fig = draw(df, **thresholds)
        if fig is not None:
            written += save_figure(fig, out, name, formats)
    return written


def save_figure(fig: Figure, out: Path, name: str, formats: Sequence[str]) -> list[Path]:
    """Save ``fig`` as ``out/NAME.FORMAT`` for each format (PDFs without a creation date,
    so the same figure gives the same bytes); returns the paths."""
    paths = []
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        meta = {"CreationDate": None} if fmt == "pdf" else None  # reproducible bytes
        fig.savefig(path, format=fmt, dpi=150, metadata=meta)
        paths.append(path)
    return paths
