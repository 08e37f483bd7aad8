"""P against each swept axis: the user's study at a glance, whatever it was designed to test.

One figure per axis that an experiment varies (width, depth, N, input dimension, alpha;
:func:`robustlab.report.results.experiments`). Small multiples: a panel per regime and per
value of the other swept axes (while that makes at most :data:`MAX_PANELS` panels; axes left
over shade the lines instead), a line per initialization (its color), a marker per
experiment, the stage by line style (after training solid, at the checkpoint loss dashed,
at initialization dotted). One legend for the figure, below its panels; a panel's own
legend holds only its p = N marks. Same conventions as
:mod:`robustlab.report.claim_figures`: the mean over seeds as the line, each seed a faint
point beside it, one y scale per figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..regime_facts import REGIMES
from . import plot as pl
from .results import AXES, STAGES, experiments
from .rows import keyed, one_measurement, predictor_rows

__all__ = ["AXIS_LABEL", "MAX_PANELS", "STAGE_LS", "STAGE_TEXT", "AxisRows", "axis_rows",
           "p_against"]  # fmt: skip

AXIS_LABEL = {"width": pl.W_LABEL, "depth": pl.D_LABEL, "n_train": "training points N",
              "in_dim": "input dimension d", "alpha": "alpha (output scale)"}  # fmt: skip
SHORT = {"width": "m", "depth": "L", "n_train": "N", "in_dim": "d", "alpha": "alpha",
         "dataset": "data"}  # fmt: skip
STAGE_LS = {"final": "-", "checkpoint": "--", "init": ":"}
STAGE_TEXT = {"final": "after training", "checkpoint": "at the checkpoint loss",
              "init": "at initialization"}  # fmt: skip
MAX_PANELS = 8  # beyond this an axis shades the lines instead of splitting the panels


@dataclass(frozen=True)
class AxisRows:
    """What :func:`p_against` draws for one axis.

    Attributes:
        rows: predictor rows of one measurement, every stage, with ``sweep`` / ``sweep_hash``
            set to the experiment's label and id and ``_key`` naming the line; every line
            has at least two values of the axis within its regime and stage.
        desc: the measurement (``method=exact, region=ball, eps=0.1``).
        panels: the columns with a panel per value (``regime`` first).
        shades: the other swept columns, drawn as shades of a line's color.
    """

    rows: pd.DataFrame
    desc: str
    panels: tuple[str, ...]
    shades: tuple[str, ...]


def _ranked(d: pd.DataFrame, col: str) -> list:
    values = set(d[col].dropna())
    return [r for r in REGIMES if r in values] + sorted(values - set(REGIMES), key=str) if (
        col == "regime") else sorted(values, key=lambda v: (str(type(v)), v))  # fmt: skip


def axis_rows(df: pd.DataFrame, axis: str) -> AxisRows:
    """The rows and layout of :func:`p_against` for ``axis``: the other axes that vary
    within an experiment get a panel per value, fewest values first, while the panels
    number at most :data:`MAX_PANELS`; the rest shade the lines."""
    if axis not in AXES:
        raise ValueError(f"unknown axis {axis!r}; choices: {', '.join(AXES)}")
    d, desc = one_measurement(predictor_rows(df, STAGES))
    if axis not in d.columns or d.empty:
        return AxisRows(d.iloc[:0], desc, ("regime",), ())
    d = d[d[axis].notna()]
    label, ident = experiments(d)  # sweeps along N or d are one experiment: one line
    d = d.assign(sweep=label, sweep_hash=ident)
    by_experiment = d.groupby("sweep_hash")
    others = [c for c in (*(a for a in AXES if a != axis), "dataset")
              if c in d.columns and by_experiment[c].nunique(dropna=False).max() > 1]  # fmt: skip
    d = keyed(d, axis, ["init", *others], by=["regime", "stage"])
    panels, shades = ["regime"], []
    for c in sorted(others, key=lambda c: d[c].nunique()):
        fits = len(d) and d.groupby([*panels, c], dropna=False).ngroups <= MAX_PANELS
        (panels if fits else shades).append(c)
    return AxisRows(d, desc, tuple(panels), tuple(shades))


def _shade(rgb, k: int, n: int):
    """The k-th of n shades of ``rgb``, light to dark (the color itself when n == 1)."""
    if n < 2:
        return rgb
    t = k / (n - 1)  # 0: mixed with white, 1: mixed with black
    base = np.asarray(rgb)
    light, dark = base + (1 - base) * 0.55, base * 0.55
    return tuple((1 - t) * light + t * dark)


def _title(key: tuple, cols: tuple[str, ...]) -> str:
    parts = [f"regime {key[0]}"]
    parts += [f"{SHORT[c]} = {v:g}" if isinstance(v, float) else f"{SHORT[c]} = {v}"
              for c, v in zip(cols[1:], key[1:], strict=True)]  # fmt: skip
    return ", ".join(parts)


def p_against(df: pd.DataFrame, axis: str, **_) -> Figure | None:
    """P against ``axis`` (one of :data:`~robustlab.report.results.AXES`) in small multiples
    (see the module docstring); on width axes the width where p = N dotted where it lies
    within the swept widths. None when no experiment varies ``axis`` on a line of at least
    two values."""
    a = axis_rows(df, axis)
    d = a.rows
    if d.empty:
        return None
    panel_keys = [k if isinstance(k, tuple) else (k,)
                  for k, _ in d.groupby(list(a.panels), sort=False, dropna=False)]  # fmt: skip
    order = {c: _ranked(d, c) for c in a.panels}
    panel_keys.sort(key=lambda k: [order[c].index(v) for c, v in zip(a.panels, k, strict=True)])
    inits = sorted(set(d["init"]))
    base = {i: to_rgb(c) for i, c in pl.colors(inits).items()}
    exps = sorted(set(d["sweep"]))
    marker = {x: pl.MARKERS[i % len(pl.MARKERS)] for i, x in enumerate(exps)}
    shades = sorted({tuple(r) for r in d[list(a.shades)].itertuples(index=False)}, key=str)
    scale = "linear" if axis == "depth" else "log"
    handles: dict[str, object] = {}  # the figure's legend: a line per label, the stages

    def lines(ax, p: pl.Panel, _) -> None:
        rows = p.rows
        stages = [s for s in reversed(STAGES) if (rows["stage"] == s).any()]  # final first
        for (exp, init, *sh), g in rows.groupby(["sweep", "init", *a.shades], sort=True):
            color = _shade(base[init], shades.index(tuple(sh)), len(shades))
            parts = [exp] if len(exps) > 1 else []
            parts += [init] + [f"{SHORT[c]}={v:g}" if isinstance(v, float) else f"{SHORT[c]}={v}"
                               for c, v in zip(a.shades, sh, strict=True)]  # fmt: skip
            label = ", ".join(parts)
            drawn = [pl.draw_line(ax, g[g["stage"] == stage], axis, "p_value", color=color,
                                  label=f"_{label}", ls=STAGE_LS[stage], marker=marker[exp],
                                  xscale=scale) for stage in stages]  # fmt: skip
            if any(drawn) and label not in handles:
                handles[label] = Line2D([], [], color=color, marker=marker[exp], ms=4, lw=1.4)
        for s in stages if len(stages) > 1 else ():
            handles.setdefault(STAGE_TEXT[s], Line2D([], [], color="0.35", ls=STAGE_LS[s]))

    def x_axis(ax, p: pl.Panel) -> None:  # a panel's own legend holds its p = N marks only
        rows = p.rows
        if axis == "width":
            pl.width_axis(ax, rows["width"])
            pn_by = ["sweep", "n_train", "depth"]  # p(m) = N for one experiment, N and depth
            tell = [c for c in pn_by if rows[c].nunique() > 1]
            for values, g in rows.groupby(pn_by, sort=True):
                named = dict(zip(pn_by, values, strict=True))
                text = ", ".join(
                    str(named[c]) if c == "sweep" else f"{SHORT[c]} = {named[c]:g}" for c in tell
                )
                pl.mark_pn(ax, g, color="0.3", label=text or f"N = {named['n_train']:g}")
        elif axis == "depth":
            pl.depth_axis(ax)
        else:
            pl.log_axis(ax.xaxis, rows[axis], AXIS_LABEL[axis])

    panels = [
        pl.Panel(d[np.logical_and.reduce([d[c] == v for c, v in zip(a.panels, key, strict=True)])],
                 axis, "p_value", _title(key, a.panels))
        for key in panel_keys
    ]  # fmt: skip
    fig = pl.panel_figure(f"P against {AXIS_LABEL[axis]} ({a.desc})", panels, ylabel=pl.P_LABEL,
                          cmap={}, lines=lines, axis=x_axis, label_rows=True)  # fmt: skip
    ncols = 3 if len(panels) > 1 else 2
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", fontsize=6,
               ncols=ncols, frameon=False)  # fmt: skip
    width, height = fig.get_size_inches()  # room for the legend's rows (many sweeps: many)
    fig.set_size_inches(width, height + 0.12 * math.ceil(len(handles) / ncols))
    return fig
