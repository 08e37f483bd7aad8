"""Drawing primitives shared by the figures: panels with one y scale, means beside seeds.

Every figure of panels has one skeleton (:func:`panel_figure`): a figure of n panels (rows
of at most :data:`NCOLS`, unused axes hidden), in each panel its lines (by default one per
line key: :func:`key_lines`), its reference lines, its x axis (log at the measured widths,
or integer depths; the width where p = N marked when asked), a title and a legend; the y
label on the first panel; one log y scale shared by all panels.

Matplotlib's object-oriented API on the Agg canvas (``Figure`` + ``FigureCanvasAgg``): no
pyplot, no global state, no display needed. A line is the mean over seeds of one line key
(:func:`robustlab.report.rows.line_labels`) against the swept axis; each seed's value is
drawn as a faint point just beside the mean, so the spread is visible without error bars.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from .rows import pn_width

__all__ = ["PN_GID", "REF_GID", "Panel", "colors", "draw_line", "finish", "key_lines",
           "log_axis", "log_y", "mark_pn", "mark_pns", "new_figure", "panel_figure", "panels_by",
           "spaced", "xscale"]  # fmt: skip

PN_GID = "p=N"  # gid of the vertical p = N marker lines (tests and readers find them by it)
REF_GID = "reference"  # gid of horizontal reference lines (thresholds, target losses)
W_LABEL = "width m (hidden units)"
D_LABEL = "depth L (weight matrices)"
P_LABEL = (
    r"$P(f,\epsilon)=\mathbb{E}_x\mathbb{E}_{x'}\,\|J_f(x)(x'-x)\|_2$" + "\n(lower = more robust)"
)
MARKERS = "osD^v<>ph*"
_SEED_SHIFT = {"log": 1.045, "linear": 0.09}  # seeds sit this far right of their mean
# a panel is 4.3 in wide, about 3.3 in of it the axes; at most two panels side by side, so a
# figure is shown at (nearly) its own size on a page 1250 px wide and 6 pt text stays >= 11 px
PANEL_IN, AXES_IN, NCOLS = 4.3, 3.3, 2
_CHAR_IN = 0.09  # width of one character of a 10 pt tick label, inches (with its margin)


def colors(keys) -> dict:
    """Line key -> a tab10 color, in sorted key order (stable across a figure's panels)."""
    return {k: colormaps["tab10"](i % 10) for i, k in enumerate(sorted(set(keys)))}


def new_figure(n_panels: int, title: str, *, ncols: int = NCOLS) -> tuple[Figure, list]:
    """A figure of ``n_panels`` panels (rows of at most ``ncols``) sharing one y scale."""
    cols = min(n_panels, ncols)
    rows = -(-n_panels // cols)
    fig = Figure(figsize=(PANEL_IN * cols, 3.5 * rows + 0.4), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    fig.suptitle(title.replace(" (", "\n(", 1), fontsize=9)  # the slice on its own line
    return fig, list(axes[:n_panels])


def draw_line(ax, g: pd.DataFrame, x: str, y: str, *, color, label: str, ls: str = "-",
              marker: str = "o", xscale: str = "log") -> bool:  # fmt: skip
    """Mean of ``y`` over the rows at each ``x`` (the seeds) as a line, each row as a faint
    point beside it. Rows with y <= 0 or NaN are left out (log axes). False when fewer than
    two x values remain (nothing drawn)."""
    g = g[np.isfinite(g[y].to_numpy(float)) & (g[y].to_numpy(float) > 0)]
    if g[x].nunique() < 2:
        return False
    means = g.groupby(x)[y].mean().sort_index()
    ax.plot(means.index, means.to_numpy(), ls=ls, marker=marker, ms=4, lw=1.4, color=color,
            label=label)  # fmt: skip
    xs = g[x].to_numpy(float)
    xs = xs * _SEED_SHIFT["log"] if xscale == "log" else xs + _SEED_SHIFT["linear"]
    ax.scatter(xs, g[y], s=7, color=color, alpha=0.3, lw=0, marker=marker)
    return True


def pn_inside(g: pd.DataFrame) -> float:
    """The width where p = N for the rows ``g`` (one sweep and depth) when it lies within
    their swept widths (NaN otherwise: every width is on one side of p = N)."""
    m = pn_width(g)
    inside = np.isfinite(m) and g["width"].min() <= m <= g["width"].max()
    return m if inside else float("nan")


def mark_pn(ax, g: pd.DataFrame, *, color, label: str) -> float:
    """Vertical line at the width where p = N for the rows ``g`` (one sweep and depth), only
    within the swept widths: outside them the legend says which side every width is on, and
    the axis keeps the measured range. Returns the width drawn (NaN: none)."""
    m = pn_inside(g)
    if np.isfinite(m):
        ax.axvline(m, color=color, ls=(0, (1, 2)), lw=1.3, gid=PN_GID,
                   label=f"p = N at m = {m:.3g} ({label})")  # fmt: skip
    elif np.isfinite(pn_width(g)):
        side = ">" if pn_width(g) < g["width"].min() else "<"
        ax.plot([], [], ls="none", label=f"p {side} N at every width ({label})")
    return m


def _label(v: float) -> str:
    return f"{v:g}"


def spaced(ticks, lo: float, hi: float, axes_in: float = AXES_IN) -> list[float]:
    """The ``ticks`` whose labels do not overlap on a log axis from ``lo`` to ``hi`` drawn
    ``axes_in`` inches wide: from the left, a tick is kept when the distance to the last kept
    one is at least half of both labels' widths plus a gap."""
    ticks = sorted({float(t) for t in ticks if lo <= t <= hi})
    if len(ticks) < 2 or hi <= lo:
        return ticks
    inch_per_log = axes_in / (1.1 * math.log(hi / lo))  # matplotlib's 5% margin each side
    kept = [ticks[0]]
    for t in ticks[1:]:
        need = (len(_label(kept[-1])) + len(_label(t))) / 2 * _CHAR_IN + 0.12
        if math.log(t / kept[-1]) * inch_per_log >= need:
            kept.append(t)
    return kept


def log_axis(axis, values, label: str = "", *, at_values: bool = True) -> None:
    """Log scale on ``axis`` (``ax.xaxis`` or ``ax.yaxis``) labelled as plain numbers that do
    not overlap (:func:`spaced`), no minor labels: at the measured ``values`` themselves
    (``at_values``: a swept axis), or at 1, 2, 5 (else 1..9) times powers of ten within
    their range; matplotlib's own labels when fewer than two of those fall inside."""
    ax = axis.axes
    (ax.set_xscale if axis is ax.xaxis else ax.set_yscale)("log")
    if label:
        axis.set_label_text(label)
    v = np.asarray([x for x in values if np.isfinite(x) and x > 0], float)
    if not len(v):
        return
    lo, hi = float(v.min()), float(v.max())
    if at_values:
        ticks = spaced(v, lo, hi)
    else:
        decades = range(math.floor(math.log10(lo)), math.floor(math.log10(hi)) + 1)
        ticks = []
        for subs in ((1, 2, 5), range(1, 10)):
            ticks = spaced([k * 10.0**p for p in decades for k in subs], lo, hi)
            if len(ticks) >= 2:
                break
        if len(ticks) < 2:
            return
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda x, _: _label(float(f"{x:.6g}"))))
    axis.set_minor_locator(NullLocator())


def width_axis(ax, widths) -> None:
    """Log x axis labelled at the measured widths (those whose labels fit) as plain numbers."""
    log_axis(ax.xaxis, list(widths), W_LABEL)


def depth_axis(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(D_LABEL)


def finish(ax, *, title: str = "", legend_title: str | None = None) -> None:
    """Title and a legend (only when something is labelled: an empty legend warns)."""
    ax.set_title(title, fontsize=8)
    handles, labels = ax.get_legend_handles_labels()
    keep = [(h, lab) for h, lab in zip(handles, labels, strict=True) if not lab.startswith("_")]
    if keep:
        ax.legend(*zip(*keep, strict=True), fontsize=6, title=legend_title, title_fontsize=7)


def log_y(axes) -> None:
    """One log y scale for the figure's (shared) panels; a flat figure (every value equal,
    e.g. every run at its target loss) gets a range of a factor 1.5 each way."""
    ys = np.array([ax.dataLim.intervaly for ax in axes], float).ravel()
    ys = ys[np.isfinite(ys) & (ys > 0)]
    if len(ys) and ys.max() <= ys.min() * (1 + 1e-6):  # equal up to rounding
        axes[0].set_ylim(ys.min() / 1.5, ys.max() * 1.5)
    for ax in axes:
        ax.set_yscale("log")


def xscale(x: str) -> str:
    """The scale of a swept column on the x axis: log for widths, linear for depths."""
    return "log" if x == "width" else "linear"


def mark_pns(ax, d: pd.DataFrame, cmap: dict) -> None:
    """A p = N line (:func:`mark_pn`) per (sweep, config, depth) of the keyed width rows
    ``d``, in the color of its first line."""
    for (sweep, _, _), g in d.groupby(["sweep", "sweep_hash", "depth"], sort=True):
        mark_pn(ax, g, color=cmap[g["_key"].iloc[0]], label=sweep or "rows")


@dataclass(frozen=True)
class Panel:
    """One panel of :func:`panel_figure`.

    Attributes:
        rows: the panel's rows, keyed (a ``_key`` column names each row's line).
        x: the swept column on the x axis (``width``: log, ``depth``: linear).
        y: the column drawn on the y axis.
        title: the panel's title.
        of: what the panel shows, for the figure's own hooks (a regime, a claim, ...).
    """

    rows: pd.DataFrame
    x: str
    y: str
    title: str = ""
    of: object = None


def panels_by(d: pd.DataFrame, col: str, x: str, y: str, title: str) -> list[Panel]:
    """A panel per value v of ``col`` in the keyed rows ``d``, in sorted order, titled
    ``title.format(v)``."""
    return [Panel(d[d[col] == v], x, y, title.format(v)) for v in sorted(d[col].unique())]


def key_lines(ax, p: Panel, cmap: dict, then: Callable | None = None) -> None:
    """A line per ``_key`` of the panel's rows, in sorted key order: the mean over seeds
    with the seeds beside it (:func:`draw_line`), a marker per line by rank; after each,
    ``then(ax, key, rows, drawn)`` when given."""
    for i, (key, g) in enumerate(p.rows.groupby("_key", sort=True)):
        drawn = draw_line(ax, g, p.x, p.y, color=cmap[key], label=key,
                          marker=MARKERS[i % len(MARKERS)], xscale=xscale(p.x))  # fmt: skip
        if then is not None:
            then(ax, key, g, drawn)


def panel_figure(
    title: str,
    panels: Sequence[Panel],
    *,
    ylabel: str,
    cmap: dict | None = None,
    lines: Callable = key_lines,
    refs: Callable | None = None,
    pn: bool = False,
    axis: Callable | None = None,
    label_rows: bool = False,
) -> Figure:
    """A figure of ``panels`` (see the module docstring), each drawn in this order:
    ``lines(ax, panel, cmap)``, ``refs(ax, panel)`` (reference lines) when given, the x axis
    (``axis(ax, panel)`` when given, else :func:`width_axis` for widths, with the p = N
    lines of :func:`mark_pns` when ``pn``, and :func:`depth_axis` for depths), then its
    title and legend (:func:`finish`).

    ``cmap``: line key -> color for the whole figure; None gives each panel its own
    (:func:`colors` of its keys). ``ylabel`` goes on the first panel, or on the first of
    each row with ``label_rows``; then one log y scale (:func:`log_y`).
    """
    fig, axes = new_figure(len(panels), title)
    for ax, p in zip(axes, panels, strict=True):
        colors_ = colors(p.rows["_key"]) if cmap is None else cmap
        lines(ax, p, colors_)
        if refs is not None:
            refs(ax, p)
        if axis is not None:
            axis(ax, p)
        elif p.x == "width":
            width_axis(ax, p.rows["width"])
            if pn:
                mark_pns(ax, p.rows, colors_)
        else:
            depth_axis(ax)
        finish(ax, title=p.title)
    for ax in axes[::NCOLS] if label_rows else axes[:1]:
        ax.set_ylabel(ylabel, fontsize=8)
    log_y(axes)
    return fig
