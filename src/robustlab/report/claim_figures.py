"""Figures of the claims' evidence: the fit control, and P against width and depth.

Each function takes result rows and returns a ``Figure`` (or None when the rows lack its
data). Lines are per sweep (:func:`robustlab.report.rows.line_labels`); the panels of a
figure share one y scale; faint points are the seeds beside their mean.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..claims import CLAIMS, base_rows
from ..regime_facts import regime_facts
from . import plot as pl
from .rows import keyed, level_loss, one_measurement, predictor_rows

__all__ = ["depth_rows", "fit_control", "p_across_pn", "p_vs_depth", "p_vs_width", "width_rows"]

# regimes whose width claims are judged on either side of p = N (C1, C2) and the level of
# fit each side is judged at: one home, the claim catalog
PN_REGIMES = {r for c in CLAIMS if c.side for r in c.regimes}
_SIDE = {"under": "p < N", "over": "p > N"}
_LEVEL = {"final": "the target loss", "checkpoint": "the checkpoint loss"}
REGIME_LS = {"linearized": "-", "standard": "--", "mean_field": "-.", "lazy": ":"}
REGIME_MARKER = {"linearized": "o", "standard": "s", "mean_field": "D", "lazy": "^"}
_SHAPE = ("init", "depth", "width", "alpha", "dataset")  # what else may tell lines apart


def _extra(x: str, *drop: str) -> list[str]:
    return [c for c in _SHAPE if c != x and c not in drop]


def _claim_rows(c, bases: dict) -> tuple[pd.DataFrame, str]:
    """The rows claim ``c`` is judged on (before the p-vs-N side and the laziness tests),
    plus its ``beside`` regime's rows; and the regime it is judged on."""
    base = bases[c.fit]
    if c.inits is not None:
        base = base[base["init"].isin(c.inits)]
    regime = next((r for r in c.regimes if (base["regime"] == r).any()), "")
    main = base[base["regime"] == regime]
    beside = base[base["regime"].isin(c.beside) & base["sweep"].isin(main["sweep"])]
    rows = pd.concat([main, beside])
    return (rows[rows["depth"] == 2] if c.two_layer else rows), regime


def fit_control(df: pd.DataFrame, **_) -> Figure | None:
    """Training loss against the swept axis, a panel per claim, at the claim's level of fit
    (dotted: the loss the runs aim for; x: runs that missed it, excluded from the verdict)."""
    bases = {c.fit: base_rows(df, at=c.fit) for c in CLAIMS}
    panels = []
    for c in CLAIMS:
        rows, regime = _claim_rows(c, bases)
        rows = rows[rows["train_loss"].gt(0)]
        rows = rows.drop_duplicates(["cell", "regime"])  # the loss is a run-level quantity
        rows = keyed(rows, c.axis, _extra(c.axis, "regime"), by=["regime"])
        if len(rows):
            side = f", {_SIDE[c.side]} side" if c.side else ""
            title = f"{c.id}: {regime} runs at {_LEVEL[c.fit]}{side}"
            panels.append(pl.Panel(rows, c.axis, "train_loss", title, of=(c, regime)))
    if not panels:
        return None
    return pl.panel_figure(
        "Fit control: training loss at each claim's level", panels,
        ylabel="training loss (MSE) of the fitted predictor", lines=_fit_lines,
        refs=_fit_refs, pn=True, label_rows=True,
    )  # fmt: skip


def _fit_lines(ax, p: pl.Panel, cmap: dict) -> None:
    """A line per key and regime; the ``beside`` regime's in its own style."""
    c, regime = p.of
    for (key, reg), g in p.rows.groupby(["_key", "regime"], sort=True):
        label = key if reg == regime else f"{key}, {reg} (beside)"
        pl.draw_line(ax, g, p.x, p.y, color=cmap[key], label=label,
                     ls=REGIME_LS.get(reg, "-") if c.beside else "-",
                     marker=REGIME_MARKER.get(reg, "o") if c.beside else "o",
                     xscale=pl.xscale(p.x))  # fmt: skip


def _fit_refs(ax, p: pl.Panel) -> None:
    """The runs that missed their level (x) and the losses the runs aim for (dotted)."""
    c, regime = p.of
    d = p.rows
    missed = d[(d["reached_target"] < 1) & (d["regime"] == regime)]  # the judged runs
    if len(missed):
        ax.scatter(missed[c.axis], missed["train_loss"], marker="x", s=22, color="k",
                   lw=0.8, label="missed its level: excluded")  # fmt: skip
    losses = {level_loss(g, c.fit) for _, g in d.groupby("sweep")}
    for loss in sorted(v for v in losses if np.isfinite(v)):
        ax.axhline(loss, color="0.4", ls=":", lw=1, gid=pl.REF_GID, label=f"aimed for: {loss:g}")


def _limit_line(ax, g: pd.DataFrame, x: str, *, color, label: str) -> None:
    """The infinite-width lazy limit of the same runs (``p_lazy_limit``, mean over seeds)
    as a thin dotted line, where the rows hold it."""
    if "p_lazy_limit" not in g.columns:
        return
    lim = g[np.isfinite(g["p_lazy_limit"].to_numpy(float))]
    if lim[x].nunique() < 2:
        return
    means = lim.groupby(x)["p_lazy_limit"].mean().sort_index()
    ax.plot(means.index, means.to_numpy(), ls=":", lw=1.2, color=color,
            label=f"{label}: infinite-width lazy limit")  # fmt: skip


def p_across_pn(df: pd.DataFrame, **_) -> Figure | None:
    """P against width for the sweeps judged across p = N (C1, C2): a panel per level of fit
    the claims use, the p = N line, and a star at each line's peak (its p/N in the legend)."""
    levels = {c.fit: [] for c in CLAIMS if c.side}
    for c in CLAIMS:
        if c.side:
            levels[c.fit].append(f"{c.id} ({_SIDE[c.side]})")
    d = predictor_rows(df, set(levels))
    d, desc = one_measurement(d[d["regime"].isin(PN_REGIMES)])
    d = keyed(d, "width", _extra("width"))
    present = [at for at in ("checkpoint", "final") if at in levels and (d["stage"] == at).any()]
    if not present:
        return None
    panels = []
    for at in present:
        judges = f"at {_LEVEL[at]}: judges {', '.join(levels[at])}"
        panels.append(pl.Panel(d[d["stage"] == at], "width", "p_value", judges))
    title = f"P against width across p = N ({desc})"
    cmap = pl.colors(d["_key"])
    return pl.panel_figure(title, panels, ylabel=pl.P_LABEL, cmap=cmap, lines=_peak_lines, pn=True)


def _peak_lines(ax, p: pl.Panel, cmap: dict) -> None:
    """A line per key with a star at its peak (p/N there in its label) and its lazy limit."""
    for i, (key, g) in enumerate(p.rows.groupby("_key", sort=True)):
        means = g.groupby("width").agg(p=("p_value", "mean"), n_params=("n_params", "first"),
                                       n_train=("n_train", "first"))  # fmt: skip
        top = means["p"].idxmax()
        ratio = means.loc[top, "n_params"] / means.loc[top, "n_train"]
        pl.draw_line(ax, g, "width", "p_value", color=cmap[key], marker=pl.MARKERS[i % 10],
                     label=f"{key} (peak at p/N = {ratio:.2g})")  # fmt: skip
        ax.plot([top], [means.loc[top, "p"]], marker="*", ms=12, color=cmap[key], lw=0)
        _limit_line(ax, g, "width", color=cmap[key], label=key)


def depth_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The rows :func:`p_vs_depth` draws (keyed lines of two depths or more) and the
    measurement's description."""
    d, desc = one_measurement(predictor_rows(df, "final"))
    return keyed(d, "depth", _extra("depth", "init"), by=["init", "regime"]), desc


def width_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The rows :func:`p_vs_width` draws (regimes not judged across p = N, keyed lines of
    two widths or more) and the measurement's description."""
    d, desc = one_measurement(predictor_rows(df, "final"))
    d = d[~d["regime"].isin(PN_REGIMES)]
    return keyed(d, "width", _extra("width"), by=["regime"]), desc


def p_vs_depth(df: pd.DataFrame, **_) -> Figure | None:
    """P after training against depth, a panel per init; line style per regime (linearized
    solid, standard dashed), color per sweep (and width)."""
    d, desc = depth_rows(df)
    if d.empty:
        return None
    panels = pl.panels_by(d, "init", "depth", "p_value", "init {}")
    title, cmap = f"P after training against depth ({desc})", pl.colors(d["_key"])
    return pl.panel_figure(title, panels, ylabel=pl.P_LABEL, cmap=cmap, lines=_regime_lines)


def _regime_lines(ax, p: pl.Panel, cmap: dict) -> None:
    """A line per key and regime in the regime's style, each with its lazy limit."""
    for (key, reg), g in p.rows.groupby(["_key", "regime"], sort=True):
        pl.draw_line(ax, g, p.x, p.y, color=cmap[key], label=f"{key}, {reg}",
                     ls=REGIME_LS.get(reg, "-"), marker=REGIME_MARKER.get(reg, "v"),
                     xscale=pl.xscale(p.x))  # fmt: skip
        lazy = regime_facts(reg).lazy_by_construction  # its limit is its own: darker
        _limit_line(ax, g, p.x, color="0.1" if lazy else "0.35", label=f"{reg}")


def p_vs_width(df: pd.DataFrame, **_) -> Figure | None:
    """P after training against width for the regimes not judged across p = N (mean-field:
    C5; linearized or alpha-scaled width sweeps), a panel per regime, p = N marked."""
    d, desc = width_rows(df)
    if d.empty:
        return None
    panels = pl.panels_by(d, "regime", "width", "p_value", "regime {}")
    title, cmap = f"P after training against width ({desc})", pl.colors(d["_key"])
    return pl.panel_figure(title, panels, ylabel=pl.P_LABEL, cmap=cmap, lines=_limit_lines, pn=True)


def _limit_lines(ax, p: pl.Panel, cmap: dict) -> None:
    """A line per key (:func:`~.plot.key_lines`), each with its lazy limit."""

    def limit(ax, key: str, g: pd.DataFrame, drawn: bool) -> None:
        _limit_line(ax, g, p.x, color=cmap[key], label=key)

    pl.key_lines(ax, p, cmap, then=limit)
