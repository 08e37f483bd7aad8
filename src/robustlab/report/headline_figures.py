"""The report's headline figures: Protocol 2's evidence, drawn from the rows and the
assessment (never judged again here).

- :func:`p_at_each_n`: P against p/N, a line per N, the mean peak p/N of each N marked;
- :func:`peak_width_vs_n`: the width at the peak against N, with C12-peak's exponent and
  the slope of proportional growth;
- :func:`depth_slope_vs_ratio`: d log P / d depth against ||y|| / ||f0(X)|| per init, the
  finite runs and the lazy limit, with the crossover ratios r*.

Each takes the result rows and the :class:`~robustlab.claims.Assessment` and returns a
``Figure``, or None when nothing of it can be drawn; panels the data cannot fill are left
out. :func:`finding_figures` writes those that can be drawn (``NAME.png`` / ``.pdf``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from ..claims import Assessment, t_interval
from ..claims.questions import _width_rows
from . import plot as pl
from ._figures import save_figure
from .finding_texts import INIT_WORDS, LABEL_WORDS, RATIO, plain

__all__ = ["FINDING_FIGURES", "depth_slope_vs_ratio", "finding_figures", "loss_at_each_n",
           "p_at_each_n",
           "peak_width_vs_n"]  # fmt: skip

PN_LABEL = "p/N (parameters / training points)"
SLOPE_LABEL = "d log P / d depth (per layer)"
_INIT_ORDER = ("lecun", "he", "ntk")


def _models(keys) -> list[tuple[str, str]]:
    """(dataset, label model) panels in a stable order."""
    return sorted({(str(d), str(m)) for d, m in keys})


def _n_colors(ns) -> dict:
    """N -> a color of the viridis map, light to dark with N (stable across panels)."""
    ns = sorted(set(ns))
    steps = np.linspace(0.85, 0.0, len(ns)) if len(ns) > 1 else [0.3]
    return {n: colormaps["viridis"](s) for n, s in zip(ns, steps, strict=True)}


def _measurement(d: pd.DataFrame) -> str:
    """The measurement of the rows (eps, method, region), every value where they vary."""
    parts = []
    for col in ("eps", "method", "region"):
        values = sorted({v for v in d[col].dropna()}, key=str) if col in d else []
        if values:
            parts.append(f"{col}=" + "/".join(f"{v:g}" if isinstance(v, float) else str(v)
                                              for v in values))  # fmt: skip
    return ", ".join(parts)


def mean_peaks(a: Assessment, dataset: str, labels: str) -> pd.Series:
    """N -> the mean over seeds of the per-seed peak p/N (seeds without an interior peak
    left out), as C12-peak's ``peak_p_over_n`` gives it."""
    p = a.peaks[(a.peaks["dataset"] == dataset) & (a.peaks["labels"] == labels)]
    return p.groupby("n_train")["peak_p_over_n"].mean().dropna()


def _at_each_n(df: pd.DataFrame, a: Assessment, column: str, title: str, ylabel: str,
               marks) -> Figure | None:  # fmt: skip
    """``column`` (> 0) of Protocol 2's width rows against p/N, a panel per (data set, label
    model): per N the geometric mean over the seeds and inits at each width, a dotted line
    at p = N; ``marks(ax, g, curves, cmap)`` adds what the figure marks (``curves``: N ->
    (p/N, mean log value) sorted by p/N) and returns the per-N legend suffixes."""
    d = _width_rows(df)
    d = d[np.isfinite(d[column].to_numpy(float)) & (d[column] > 0)]
    if d.empty:
        return None
    d = d.assign(log_v=np.log(d[column].to_numpy(float)),
                 ratio=d["n_params"].to_numpy(float) / d["n_train"].to_numpy(float))  # fmt: skip
    panels = _models(d[["dataset", "labels"]].itertuples(index=False))
    cmap = _n_colors(d["n_train"])
    fig, axes = pl.new_figure(len(panels), f"{title}, {_measurement(d)})")
    for ax, (dataset, labels) in zip(axes, panels, strict=True):
        g = d[(d["dataset"] == dataset) & (d["labels"] == labels)]
        curves = {n: h.groupby("width").agg(log_v=("log_v", "mean"), ratio=("ratio", "first"))
                  .sort_values("ratio") for n, h in g.groupby("n_train", sort=True)}  # fmt: skip
        suffix = marks(ax, g, curves, cmap)
        for i, (n, c) in enumerate(curves.items()):
            ax.plot(c["ratio"], np.exp(c["log_v"]), marker=pl.MARKERS[i % 10], ms=3.5, lw=1.4,
                    color=cmap[n], label=f"N = {int(n)}{suffix.get(n, '')}")  # fmt: skip
        ax.axvline(1.0, color="0.3", ls=(0, (1, 2)), lw=1.2, gid=pl.PN_GID, label="p = N")
        pl.log_axis(ax.xaxis, g["ratio"], PN_LABEL, at_values=False)
        pl.finish(ax, title=f"{dataset} data, {LABEL_WORDS.get(labels, labels)}")
    axes[0].set_ylabel(ylabel, fontsize=8)
    pl.log_y(axes)
    pl.log_axis(axes[0].yaxis, np.exp(d["log_v"]), at_values=False)
    return fig


def p_at_each_n(df: pd.DataFrame, a: Assessment) -> Figure | None:
    """P against p/N, a panel per (data set, label model) of Protocol 2's width rows
    (``robustlab.claims.questions._width_rows``): per N the geometric mean of P over the
    seeds and inits at each width (exp of the mean log P, the curve C12-peak reads), a star
    at the mean peak p/N of that N (``a.peaks``) and a dotted line at p = N."""

    def stars(ax, g, curves, cmap) -> dict:
        dataset, labels = g["dataset"].iloc[0], g["labels"].iloc[0]
        peaks = mean_peaks(a, dataset, labels)
        suffix = {}
        for n, c in curves.items():
            at = peaks.get(n, np.nan)
            if np.isfinite(at):  # the star sits on the line (log-log interpolation)
                y = np.exp(np.interp(np.log(at), np.log(c["ratio"]), c["log_v"]))
                ax.plot(
                    [at], [y], marker="*", ms=13, color=cmap[n], mec="k", mew=0.6, lw=0, zorder=3
                )  # above the lines, drawn after it
                suffix[n] = f", peak p/N {plain(at)}"
        return suffix

    return _at_each_n(df, a, "p_value", "P against p/N at each N (Protocol 2's width runs",
                      pl.P_LABEL, stars)  # fmt: skip


def loss_at_each_n(df: pd.DataFrame, a: Assessment) -> Figure | None:
    """The fit beside P: the training loss at the end of training against p/N, panels and
    lines as in :func:`p_at_each_n` (geometric mean over seeds and inits), with the
    presets' target loss dashed where the rows record one. Protocol 2 shows the fit of each
    width, it never matches it."""

    def targets(ax, g, curves, cmap) -> dict:
        t = pd.to_numeric(g["target_loss"], errors="coerce").dropna().unique()
        for v in t[t > 0]:
            ax.axhline(float(v), color="0.3", ls=(0, (3, 2)), lw=1.0, gid=pl.REF_GID,
                       label=f"target {plain(float(v))}")  # fmt: skip
        return {}

    title = "Training loss at the end against p/N at each N (the fit, shown beside P; width runs"
    return _at_each_n(df, a, "train_loss", title, "training loss (half MSE) at the end",
                      targets)  # fmt: skip


def peak_width_vs_n(df: pd.DataFrame, a: Assessment) -> Figure | None:
    """The width at the peak of P against N, a panel per (data set, label model) with
    peaks: each seed's (faint), the geometric mean per N, a line of slope C12-peak's
    exponent through the means, and a dashed line of slope 1 (proportional growth)."""
    p = a.peaks[np.isfinite(a.peaks["log_peak"].to_numpy(float))] if len(a.peaks) else a.peaks
    q = a.questions
    rows = q[q["claim"] == "C12-peak"] if "claim" in q else q
    panels = [k for k in _models(p[["dataset", "labels"]].itertuples(index=False))
              if ((rows["dataset"] == k[0]) & (rows["labels"] == k[1])).any()]  # fmt: skip
    if not panels:
        return None
    fig, axes = pl.new_figure(len(panels), "Width at the peak of P against N (C12-peak)")
    for ax, (dataset, labels) in zip(axes, panels, strict=True):
        g = p[(p["dataset"] == dataset) & (p["labels"] == labels)]
        r = rows[(rows["dataset"] == dataset) & (rows["labels"] == labels)].iloc[0]
        n = g["n_train"].to_numpy(float)
        ax.scatter(n * 1.03, np.exp(g["log_peak"]), s=9, color="C0", alpha=0.35, lw=0,
                   label="each seed")  # fmt: skip
        means = g.groupby("n_train")["log_peak"].mean()
        ax.plot(means.index, np.exp(means), "o", ms=6, color="C0", label="mean over seeds")
        x = np.log(means.index.to_numpy(float))
        if len(x) >= 2:
            xs = np.linspace(x.min(), x.max(), 20)
            x0, y0 = x.mean(), means.mean()  # both lines pass through the means' centre
            k = r["exponent"]
            if np.isfinite(k):
                iv = f" [{plain(r['exponent_low'])}, {plain(r['exponent_high'])}]"
                ax.plot(np.exp(xs), np.exp(y0 + k * (xs - x0)), "-", color="C0", lw=1.4,
                        label=f"slope {plain(k)}{iv}: {r['verdict']}")  # fmt: skip
            ax.plot(np.exp(xs), np.exp(y0 + (xs - x0)), "--", color="0.4", lw=1.1,
                    gid=pl.REF_GID, label="slope 1 (proportional growth)")  # fmt: skip
        pl.log_axis(ax.xaxis, n, "N (training points)")
        pl.finish(ax, title=f"{dataset} data, {LABEL_WORDS.get(labels, labels)}")
    axes[0].set_ylabel("width m at the peak of P (hidden units)", fontsize=8)
    pl.log_y(axes)
    widths = np.exp(p["log_peak"].to_numpy(float))
    lo, hi = axes[0].get_ylim()
    decades = range(int(np.floor(np.log10(lo))), int(np.floor(np.log10(hi))) + 1)
    ticks = [k * 10.0**e for e in decades for k in range(1, 10)]  # 1..9 per decade: 10, 20, 30
    pl.log_axis(axes[0].yaxis, [t for t in ticks if widths.min() <= t <= hi])
    return fig


def _init_colors(inits) -> dict:
    order = [i for i in _INIT_ORDER if i in set(inits)] + sorted(set(inits) - set(_INIT_ORDER))
    return {init: colormaps["tab10"](i) for i, init in enumerate(order)}


def depth_slope_vs_ratio(df: pd.DataFrame, a: Assessment) -> Figure | None:
    """d log P / d depth against ||y|| / ||f0(X)||, a panel per data set, a color per init:
    each seed's finite slope (faint), their mean per label scale with its t interval, the
    lazy limit's mean per label scale (dashed, open markers), 0, and r* (``a.crossovers``:
    finite solid, limit dotted)."""
    s = a.depth_slopes
    if s.empty or not np.isfinite(s["finite_slope"].to_numpy(float)).any():
        return None
    s = s[np.isfinite(s["y_f0_ratio"].to_numpy(float)) & (s["y_f0_ratio"] > 0)]
    datasets = sorted(s["dataset"].unique())
    cmap = _init_colors(s["init"])
    level = a.questions_protocol.level
    # one panel per row, each wide enough for the legend of three inits below it
    title = f"d log P / d depth against {RATIO} (linearized)"
    fig, axes = pl.new_figure(len(datasets), title, ncols=1)
    fig.set_size_inches(pl.PANEL_IN * 1.5, fig.get_size_inches()[1] + 0.6 * len(datasets))
    for ax, dataset in zip(axes, datasets, strict=True):
        g = s[s["dataset"] == dataset]
        entries = []
        for init in cmap:
            h = g[g["init"] == init]
            if len(h):
                entries += _init_slopes(ax, h, a, cmap[init], level)
        ax.axhline(0.0, color="k", lw=0.8, gid=pl.REF_GID)
        pl.log_axis(ax.xaxis, g["y_f0_ratio"], f"{RATIO} (label scale over f0 scale)",
                    at_values=False)  # fmt: skip
        ax.set_title(f"{dataset} data", fontsize=8)
        handles, labels = zip(*entries, strict=True)
        ax.legend(handles, labels, fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.16),
                  ncol=len(entries) // _ENTRIES)  # fmt: skip
    axes[0].set_ylabel(SLOPE_LABEL, fontsize=8)
    return fig


_ENTRIES = 4  # legend entries per init: finite, lazy limit, r* finite, r* limit


def _init_slopes(ax, h: pd.DataFrame, a: Assessment, color, level: float) -> list[tuple]:
    """One init's seeds, means with t intervals, lazy limit and r* marks on ``ax``; returns
    its :data:`_ENTRIES` legend entries (handle, label), a column of the legend."""
    init = h["init"].iloc[0]
    name = INIT_WORDS.get(init, init)
    ax.scatter(h["y_f0_ratio"], h["finite_slope"], s=8, color=color, alpha=0.35, lw=0)
    per = []
    for _, c in h.groupby("label_scale", sort=True):
        finite = c["finite_slope"].dropna().to_numpy(float)
        mean, lo, hi = t_interval(finite, level) if len(finite) else (np.nan,) * 3
        limit = c["limit_slope"].dropna()
        x = float(np.exp(np.log(c["y_f0_ratio"]).mean()))
        per.append((x, mean, lo, hi, limit.mean() if len(limit) else np.nan))
    x, mean, lo, hi, lim = (np.array(v, float) for v in zip(*per, strict=True))
    err = np.vstack([mean - lo, hi - mean])
    bars = ax.errorbar(x, mean, yerr=np.where(np.isfinite(err), err, 0.0), fmt="o-", ms=4,
                       lw=1.2, capsize=2.5, color=color)  # fmt: skip
    entries = [(bars, f"{name}: finite, mean [{level:.0%} t]")]
    if np.isfinite(lim).sum() >= 2:
        (line,) = ax.plot(x, lim, ls="--", marker="s", ms=4, mfc="none", lw=1.1, color=color)
        entries.append((line, f"{name}: lazy limit"))
    else:
        entries.append((ax.plot([], [], ls="none")[0], f"{name}: no lazy limit"))
    rows = a.crossovers
    keep = (rows["dataset"] == h["dataset"].iloc[0]) & (rows["init"] == init) if len(rows) else []
    r = rows[keep].iloc[0] if len(rows) and keep.any() else None
    for source, ls in (("finite", "-"), ("limit", ":")):
        at = r[f"{source}_r"] if r is not None else np.nan
        if np.isfinite(at):
            mark = ax.axvline(at, color=color, ls=ls, lw=1.0, alpha=0.9)
            entries.append((mark, f"{name}: r* {source} {plain(at)}"))
        else:
            entries.append((ax.plot([], [], ls="none")[0], f"{name}: no r* {source}"))
    return entries


FINDING_FIGURES: dict[str, Callable[[pd.DataFrame, Assessment], Figure | None]] = {
    "p_at_each_n": p_at_each_n,
    "loss_at_each_n": loss_at_each_n,
    "peak_width_vs_n": peak_width_vs_n,
    "depth_slope_vs_ratio": depth_slope_vs_ratio,
}
"""The headline figures of a report with Protocol 2's verdicts, in the order shown."""


def finding_figures(
    df: pd.DataFrame,
    a: Assessment,
    out_dir: str | Path,
    *,
    formats: Sequence[str] = ("png", "pdf"),
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write the :data:`FINDING_FIGURES` the rows and ``a`` can draw to ``out_dir`` as
    ``NAME.FORMAT``; returns the paths written. Nothing when ``a`` has no Protocol 2 rows."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if a.questions.empty:
        return written
    for i, (name, draw) in enumerate(FINDING_FIGURES.items(), 1):
        if progress is not None:
            progress(f"headline figure {i}/{len(FINDING_FIGURES)}: {name}")
        fig = draw(df, a)
        if fig is not None:
            written += save_figure(fig, out, name, formats)
    return written
