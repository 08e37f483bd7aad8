"""Publication figures from tidy result rows (columns of :mod:`robustlab.sweep.schema`).

Matplotlib's object-oriented API on the Agg canvas (``Figure`` + ``FigureCanvasAgg``): no
pyplot, no global state, no display needed. Each figure is drawn on one *slice* of the
rows, stated in its title: rows with status ``ok`` of the network itself (``model ==
"network"``), one dataset, one eps, one method (``exact`` when present), one region and one
regime (``standard`` when present). Points are means over seeds; error bars are standard
errors over seeds (std / sqrt(n), ddof = 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    NullLocator,
)

from ..claims.judge import _numpy_dtypes  # the store's nullable dtypes -> numpy
from ..theory import kappa

__all__ = ["FIGURES", "figures"]

P_LABEL = (
    r"$P(f,\epsilon)=\mathbb{E}_x\mathbb{E}_{x'}\,\|J_f(x)(x'-x)\|_2$" + "\n(lower = more robust)"
)
W_LABEL = "width m (hidden units)"
D_LABEL = "depth L (weight matrices)"
JENSEN = "Jensen bound eps*kappa_d*sqrt(E||grad||^2) (DESIGN §1)"
_MARKERS = "osD^v<>ph*"


def _color(i: int):
    return colormaps["tab10"](i % 10)


def _pick(d: pd.DataFrame, col: str, prefer=None) -> tuple[pd.DataFrame, object]:
    """Keep one value of ``col``: ``prefer`` when present, else the most frequent."""
    if col not in d.columns or d[col].isna().all():
        return d, None
    counts = d[col].value_counts()
    v = prefer if prefer in counts.index else counts.index[0]
    return d[d[col] == v], v


def _slice(df: pd.DataFrame, at: Sequence[str], regime: str | None = "standard"):
    """Rows of one measurement slice (see module docstring) and its description."""
    d = df[(df["status"] == "ok") & df["at"].isin(at) & df["p_value"].gt(0)]
    if "model" in d.columns and (d["model"] == "network").any():
        d = d[d["model"] == "network"]
    desc = []
    for col, pref in (
        ("dataset", None),
        ("method", "exact"),
        ("region", "ball"),
        ("eps", None),
        ("regime", regime),
        ("alpha", None),
    ):
        if regime is None and col in ("regime", "alpha"):
            continue
        d, v = _pick(d, col, pref)
        if v is not None and col != "alpha":
            desc.append(f"{col}={v:g}" if isinstance(v, float) else f"{col}={v}")
    return d, ", ".join(desc)


def _mean_se(d: pd.DataFrame, keys: list[str], y: str = "p_value") -> pd.DataFrame:
    """Mean and standard error over seeds of ``y`` per ``keys``; (mean, se) columns."""
    g = d.groupby(keys, dropna=False)[y]
    out = g.agg(mean="mean", std="std", n="count").reset_index()
    out["se"] = (out["std"] / np.sqrt(out["n"])).fillna(0.0)
    return out.sort_values(keys)


def _errbar(ax, x, mean, se, **kw) -> None:
    lo = np.minimum(se, 0.999 * mean)  # keep the lower bar positive on a log axis
    ax.errorbar(x, mean, yerr=[lo, se], capsize=2, lw=1.4, ms=4, **kw)


def _axis_ticks(ax, d: pd.DataFrame, x: str) -> None:
    """Widths as plain numbers at the measured widths; depths as integers."""
    if x == "width":
        ax.xaxis.set_major_locator(FixedLocator(sorted(d["width"].dropna().unique())))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_locator(NullLocator())
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _new(n_panels: int, title: str) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(4.2 * n_panels, 3.6), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, n_panels, squeeze=False)[0])
    fig.suptitle(title.replace(" (", "\n(", 1), fontsize=9)  # slice on its own line
    return fig, axes


def _lines(ax, d: pd.DataFrame, line: str, x: str, fmt=str, y: str = "p_value") -> int:
    """One error-bar line of ``y`` per value of ``line`` with >= 2 x values; returns lines drawn."""
    drawn = 0
    for i, (key, g) in enumerate(_mean_se(d, [line, x], y).groupby(line, sort=True)):
        if len(g) >= 2:
            _errbar(
                ax,
                g[x],
                g["mean"],
                g["se"],
                marker=_MARKERS[i % 10],
                color=_color(i),
                label=fmt(key),
            )
            drawn += 1
    return drawn


def _p_vs_width(df: pd.DataFrame, **_) -> Figure | None:
    d, desc = _slice(df, ("final",))
    inits = [i for i, g in d.groupby("init") if g["width"].nunique() >= 2]
    if not inits:
        return None
    fig, axes = _new(len(inits), f"P after training against width ({desc})")
    # a line per (depth, sweep): different experiments are never joined into one line
    sweeps = d["sweep"] if "sweep" in d.columns else [""] * len(d)
    d = d.assign(
        _line=[f"L={a} ({b})" if b else f"L={a}" for a, b in zip(d["depth"], sweeps, strict=True)]
    )
    for ax, init in zip(axes, inits, strict=True):
        _lines(ax, d[d["init"] == init], "_line", "width")
        ax.set(xscale="log", yscale="log", xlabel=W_LABEL, title=f"init {init}")
        _axis_ticks(ax, d[d["init"] == init], "width")
        ax.legend(fontsize=7, title="depth (sweep)")
    axes[0].set_ylabel(P_LABEL, fontsize=8)
    return fig


def _p_vs_depth(df: pd.DataFrame, **_) -> Figure | None:
    d, desc = _slice(df, ("final",))
    widths = [w for w, g in d.groupby("width") if g["depth"].nunique() >= 2][-3:]
    if not widths:
        return None
    fig, axes = _new(len(widths), f"P after training against depth ({desc})")
    sweeps = d["sweep"] if "sweep" in d.columns else [""] * len(d)
    d = d.assign(_line=[f"{a} ({b})" if b else a for a, b in zip(d["init"], sweeps, strict=True)])
    for ax, w in zip(axes, widths, strict=True):
        _lines(ax, d[d["width"] == w], "_line", "depth")
        ax.set(yscale="log", xlabel=D_LABEL, title=f"width m={w}")
        _axis_ticks(ax, d, "depth")
        ax.legend(fontsize=7, title="init")
    axes[0].set_ylabel(P_LABEL, fontsize=8)
    return fig


def _p_init_theory(df: pd.DataFrame, **_) -> Figure | None:
    d, desc = _slice(df, ("init",))
    d = d[d["theory_grad_sq"].gt(0) & (d["out_dim"] == 1)].copy()
    if d.empty:
        return None
    kap = [
        kappa(int(n), r if isinstance(r, str) else "ball")
        for n, r in zip(d["in_dim"], d["region"], strict=True)
    ]
    d["theory"] = d["eps"] * np.asarray(kap) * np.sqrt(d["theory_grad_sq"])
    panels = []  # (x axis, fixed axis, its value)
    for x, fixed in (("depth", "width"), ("width", "depth")):
        ok = [v for v, g in d.groupby(fixed) if g[x].nunique() >= 2]
        if ok:
            panels.append((x, fixed, ok[-1] if fixed == "width" else ok[0]))
    if not panels:
        return None
    fig, axes = _new(len(panels), f"P at initialization and theory ({desc})")
    for ax, (x, fixed, v) in zip(axes, panels, strict=True):
        p = d[d[fixed] == v]
        _lines(ax, p, "init", x)
        for i, (_, g) in enumerate(p.groupby("init", sort=True)):
            t = g.groupby(x)["theory"].mean()
            ax.plot(t.index, t.values, ls="--", color=_color(i), lw=1)
        handles, labels = ax.get_legend_handles_labels()
        handles.append(Line2D([], [], ls="--", color="k", lw=1))
        ax.legend(handles, [*labels, JENSEN], fontsize=6)
        ax.set(
            yscale="log",
            xlabel=W_LABEL if x == "width" else D_LABEL,
            title=f"{fixed} = {v}",
            xscale="log" if x == "width" else "linear",
        )
        _axis_ticks(ax, p, x)
    axes[0].set_ylabel("at initialization: " + P_LABEL, fontsize=8)
    return fig


def _weight_change_vs_width(df: pd.DataFrame, lazy_threshold=0.1, nonlazy_threshold=0.3):
    d = df[(df["status"] == "ok") & (df["at"] == "final") & df["rel_weight_change"].gt(0)]
    if "cell" in d.columns and d["cell"].notna().all():
        d = d.drop_duplicates("cell")  # a cell-level quantity, repeated on each row
    regimes = [r for r, g in d.groupby("regime") if g["width"].nunique() >= 2]
    if not regimes:
        return None
    fig, axes = _new(len(regimes), "Regime check: relative weight change after training")
    for ax, reg in zip(axes, regimes, strict=True):
        g = d[d["regime"] == reg].copy()
        many_alpha = g["alpha"].nunique() > 1
        g["line"] = [
            f"{i}, L={L}" + (f", alpha={a:g}" if many_alpha else "")
            for i, L, a in zip(g["init"], g["depth"], g["alpha"], strict=True)
        ]
        _lines(ax, g, "line", "width", y="rel_weight_change")
        ax.axhline(lazy_threshold, ls="--", color="0.3", lw=1, label=f"lazy <= {lazy_threshold:g}")
        ax.axhline(
            nonlazy_threshold, ls=":", color="0.3", lw=1, label=f"non-lazy >= {nonlazy_threshold:g}"
        )
        ax.set(xscale="log", yscale="log", xlabel=W_LABEL, title=f"regime {reg}")
        _axis_ticks(ax, g, "width")
        ax.legend(fontsize=6)
    axes[0].set_ylabel(r"$\|W_T-W_0\|_F / \|W_0\|_F$ (whole network)", fontsize=8)
    return fig


def _p_init_vs_final(df: pd.DataFrame, **_) -> Figure | None:
    d, desc = _slice(df, ("init", "final"), regime=None)
    if "cell" not in d.columns:
        return None
    on = ["cell", "eps", "method", "region", "init", "regime"]
    pair = d[d["at"] == "init"].merge(d[d["at"] == "final"], on=on, suffixes=("_0", "_T"))
    if pair.empty:
        return None
    fig, axes = _new(1, f"P at init against P after training, same cell ({desc})")
    ax = axes[0]
    inits, regimes = sorted(pair["init"].unique()), sorted(pair["regime"].unique())
    for (init, reg), h in pair.groupby(["init", "regime"], sort=True):
        style = {"color": _color(inits.index(init)), "marker": _MARKERS[regimes.index(reg) % 10]}
        ax.scatter(h["p_value_0"], h["p_value_T"], s=14, alpha=0.8, label=f"{init}, {reg}", **style)
    both = pair[["p_value_0", "p_value_T"]].to_numpy()
    ax.plot([both.min(), both.max()], [both.min(), both.max()], "k--", lw=1, label="y = x")
    ax.set(xscale="log", yscale="log", xlabel="P at initialization", ylabel="P after training")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide within a decade
    ax.legend(fontsize=6, title="init, regime", title_fontsize=7)
    return fig


FIGURES = {
    "p_vs_width": _p_vs_width,
    "p_vs_depth": _p_vs_depth,
    "p_init_theory": _p_init_theory,
    "weight_change_vs_width": _weight_change_vs_width,
    "p_init_vs_final": _p_init_vs_final,
}
"""Figure name -> drawing function (returns None when the rows lack its data)."""


def figures(
    df: pd.DataFrame,
    out_dir: str | Path,
    *,
    formats: Sequence[str] = ("png", "pdf"),
    lazy_threshold: float = 0.1,
    nonlazy_threshold: float = 0.3,
) -> list[Path]:
    """Write the report's figures to ``out_dir`` as ``NAME.FORMAT``; returns the paths written.

    Figures (each only when the rows hold its data): ``p_vs_width`` (P against width,
    log-log, a line per depth, a panel per init), ``p_vs_depth`` (P against depth, log y,
    a line per init, a panel per width for the three largest widths), ``p_init_theory`` (P
    at init against depth and width with the Jensen bound ``eps kappa_d sqrt(E||grad||^2)``
    of DESIGN §1, k = 1 rows), ``weight_change_vs_width`` (relative weight change, a panel
    per regime, dashed lines at the laziness thresholds of :func:`robustlab.claims.evaluate`),
    ``p_init_vs_final`` (P at init against P after training per cell, y = x line).
    """
    df = _numpy_dtypes(df)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in FIGURES.items():
        fig = draw(df, lazy_threshold=lazy_threshold, nonlazy_threshold=nonlazy_threshold)
        if fig is None:
            continue
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            meta = {"CreationDate": None} if fmt == "pdf" else None  # reproducible bytes
            fig.savefig(path, format=fmt, dpi=150, metadata=meta)
            written.append(path)
    return written
