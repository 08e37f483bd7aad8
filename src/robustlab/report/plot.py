"""Drawing primitives shared by the figures: panels with one y scale, means beside seeds.

Matplotlib's object-oriented API on the Agg canvas (``Figure`` + ``FigureCanvasAgg``): no
pyplot, no global state, no display needed. A line is the mean over seeds of one line key
(:func:`robustlab.report.rows.line_labels`) against the swept axis; each seed's value is
drawn as a faint point just beside the mean, so the spread is visible without error bars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from .rows import pn_width

__all__ = ["PN_GID", "REF_GID", "colors", "draw_line", "finish", "log_y", "mark_pn", "new_figure"]

PN_GID = "p=N"  # gid of the vertical p = N marker lines (tests and readers find them by it)
REF_GID = "reference"  # gid of horizontal reference lines (thresholds, target losses)
W_LABEL = "width m (hidden units)"
D_LABEL = "depth L (weight matrices)"
P_LABEL = (
    r"$P(f,\epsilon)=\mathbb{E}_x\mathbb{E}_{x'}\,\|J_f(x)(x'-x)\|_2$" + "\n(lower = more robust)"
)
MARKERS = "osD^v<>ph*"
_SEED_SHIFT = {"log": 1.045, "linear": 0.09}  # seeds sit this far right of their mean


def colors(keys) -> dict:
    """Line key -> a tab10 color, in sorted key order (stable across a figure's panels)."""
    return {k: colormaps["tab10"](i % 10) for i, k in enumerate(sorted(set(keys)))}


def new_figure(n_panels: int, title: str, *, ncols: int = 3) -> tuple[Figure, list]:
    """A figure of ``n_panels`` panels (rows of at most ``ncols``) sharing one y scale."""
    cols = min(n_panels, ncols)
    rows = -(-n_panels // cols)
    fig = Figure(figsize=(4.3 * cols, 3.5 * rows + 0.4), dpi=150, layout="constrained")
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


def mark_pn(ax, g: pd.DataFrame, *, color, label: str) -> float:
    """Vertical line at the width where p = N for the rows ``g`` (one sweep and depth);
    returns that width (NaN: nothing drawn)."""
    m = pn_width(g)
    if np.isfinite(m):
        ax.axvline(m, color=color, ls=(0, (1, 2)), lw=1.3, gid=PN_GID,
                   label=f"p = N at m = {m:.3g} ({label})")  # fmt: skip
    return m


def width_axis(ax, widths) -> None:
    """Log x axis labelled at the measured widths (those that fit) as plain numbers."""
    ax.set_xscale("log")
    ticks = []
    for w in sorted(set(widths)):
        if not ticks or w >= 1.4 * ticks[-1]:  # closer labels would overlap
            ticks.append(w)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(W_LABEL)


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
