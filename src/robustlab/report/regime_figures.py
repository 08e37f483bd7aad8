"""Figures of the regime checks and of initialization: how lazy the runs were, P at init.

Same conventions as :mod:`robustlab.report.claim_figures`: lines per sweep, one y scale per
figure, seeds as faint points beside their mean.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..claims import Protocol
from ..regime_facts import regime_facts, twinned_regimes
from ..theory import kappa
from . import plot as pl
from .rows import keyed, line_labels, one_measurement, predictor_rows

__all__ = ["JENSEN", "laziness_panels", "laziness_vs_depth", "p_init_theory", "p_init_vs_final",
           "weight_change_rows", "weight_change_vs_width"]  # fmt: skip

JENSEN = "Jensen bound eps*kappa_d*sqrt(E||grad||^2) (dashed)"
_LAZINESS = (
    ("rel_weight_change", r"weight change $\|W_T-W_0\|_F/\|W_0\|_F$"),
    ("ntk_change", "NTK change (relative, probe batch)"),
    ("grad_lin_dev", r"$\|g_T-g_{lin,T}\| / \|g_T-g_0\|$ (input gradients)"),
)


def _run_rows(df: pd.DataFrame) -> pd.DataFrame:
    """One final predictor row per run (the run-level quantities repeat on each row)."""
    d, _ = one_measurement(predictor_rows(df, "final"))
    return d.drop_duplicates("cell") if d["cell"].notna().all() else d


def weight_change_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The runs :func:`weight_change_vs_width` draws: keyed lines of two widths or more."""
    d = _run_rows(df)
    d = d[d["rel_weight_change"].gt(0)]
    return keyed(d, "width", ["init", "depth", "alpha", "dataset"], by=["regime"])


def laziness_panels(df: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """The panels of :func:`laziness_vs_depth`: (column, label, keyed rows) of each laziness
    measure the runs trained beside a linearized twin hold at two depths or more."""
    d = _run_rows(df)
    d = d[d["regime"].isin(twinned_regimes())]  # runs trained beside a linearized twin
    panels = []
    for col, label in _LAZINESS:
        rows = keyed(d[d[col].gt(0)], "depth", ["init", "width", "alpha", "dataset"])
        if len(rows):
            panels.append((col, label, rows))
    return panels


def weight_change_vs_width(
    df: pd.DataFrame,
    lazy_threshold: float = Protocol.lazy_threshold,
    nonlazy_threshold: float = Protocol.nonlazy_threshold,
):
    """Relative weight change against width, a panel per regime, the laziness thresholds
    dashed (lazy) and dotted (non-lazy), p = N marked."""
    d = weight_change_rows(df)
    if d.empty:
        return None
    panels = pl.panels_by(d, "regime", "width", "rel_weight_change", "regime {}")

    def thresholds(ax, p: pl.Panel) -> None:
        ax.axhline(lazy_threshold, ls="--", color="0.3", lw=1, gid=pl.REF_GID,
                   label=f"lazy <= {lazy_threshold:g}")  # fmt: skip
        ax.axhline(nonlazy_threshold, ls=":", color="0.3", lw=1, gid=pl.REF_GID,
                   label=f"non-lazy >= {nonlazy_threshold:g}")  # fmt: skip

    return pl.panel_figure(
        "Regime check: relative weight change after training", panels,
        ylabel=r"$\|W_T-W_0\|_F / \|W_0\|_F$ (whole network)", cmap=pl.colors(d["_key"]),
        refs=thresholds, pn=True,
    )  # fmt: skip


def laziness_vs_depth(
    df: pd.DataFrame, lazy_threshold: float = Protocol.lazy_threshold, **_
) -> Figure | None:
    """How far the standard runs are from lazy, against depth: weight change, NTK change and
    the input gradient's deviation from the linearized twin's, a panel each (one y scale)."""
    panels = [pl.Panel(rows, "depth", col, label) for col, label, rows in laziness_panels(df)]
    if not panels:
        return None

    def threshold(ax, p: pl.Panel) -> None:
        if p.y != "grad_lin_dev":
            ax.axhline(lazy_threshold, ls="--", color="0.3", lw=1, gid=pl.REF_GID,
                       label=f"lazy <= {lazy_threshold:g}")  # fmt: skip

    title = "Regime check: how lazy the standard runs were"
    cmap = pl.colors(pd.concat([p.rows["_key"] for p in panels]))
    ylabel = "relative change during training"
    return pl.panel_figure(title, panels, ylabel=ylabel, cmap=cmap, refs=threshold)


def _init_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """P at init with the closed form, one row per initial network: a linearized run starts
    from its standard twin's w0, so its init rows repeat the twin's and are dropped."""
    d, desc = one_measurement(predictor_rows(df, "init"))
    d = d[d["theory_grad_sq"].gt(0) & (d["out_dim"] == 1)]
    if d.empty:
        return d, desc
    w0 = d["regime"].map(lambda r: regime_facts(r).twin_of or r)  # the regime of w0's network
    ident = ["sweep", "sweep_hash", "init", "width", "depth", "seed", "alpha", "dataset", "regime"]
    d = d.assign(regime=w0).drop_duplicates(ident)
    kap = [kappa(int(n), r if isinstance(r, str) else "ball")
           for n, r in zip(d["in_dim"], d["region"], strict=True)]  # fmt: skip
    d = d.assign(theory=d["eps"] * np.asarray(kap) * np.sqrt(d["theory_grad_sq"]))
    return d.assign(_key=line_labels(d, ["init", "regime", "alpha", "dataset"])), desc


def p_init_theory(df: pd.DataFrame, **_) -> Figure | None:
    """P at init (points, seeds faint) with the Jensen bound eps kappa_d sqrt(E||grad||^2)
    (dashed), against depth at the largest width and against width at the smallest depth."""
    d, desc = _init_rows(df)
    panels = []  # against x, at the fixed axis' value v
    for x, fixed in (("depth", "width"), ("width", "depth")):
        ok = [v for v, g in d.groupby(fixed) if g[x].nunique() >= 2]
        if ok:
            v = ok[-1] if fixed == "width" else ok[0]
            panels.append(pl.Panel(d[d[fixed] == v], x, "p_value", f"{fixed} = {v}"))
    if not panels:
        return None
    cmap = pl.colors(d["_key"])

    def with_bound(ax, p: pl.Panel, cmap: dict) -> None:
        def bound(ax, key: str, g: pd.DataFrame, drawn: bool) -> None:
            if drawn:
                t = g.groupby(p.x)["theory"].mean()
                ax.plot(t.index, t.to_numpy(), ls="--", color=cmap[key], lw=1)

        pl.key_lines(ax, p, cmap, then=bound)

    def legend(ax, p: pl.Panel) -> None:
        ax.plot([], [], ls="--", color="k", lw=1, label=JENSEN)

    return pl.panel_figure(f"P at initialization and theory ({desc})", panels,
                           ylabel="at initialization: " + pl.P_LABEL, cmap=cmap,
                           lines=with_bound, refs=legend)  # fmt: skip


def p_init_vs_final(df: pd.DataFrame, **_) -> Figure | None:
    """P at init against P after training, one point per run (same measurement)."""
    d, desc = one_measurement(predictor_rows(df, ("init", "final")))
    if d.empty or d["cell"].isna().any():
        return None
    on = ["sweep", "sweep_hash", "cell", "eps", "method", "region", "init", "regime"]
    pair = d[d["stage"] == "init"].merge(d[d["stage"] == "final"], on=on, suffixes=("_0", "_T"))
    if pair.empty:
        return None
    pair = pair.assign(_key=line_labels(pair, ["regime"]))
    fig, axes = pl.new_figure(1, f"P at init against P after training, same run ({desc})")
    ax = axes[0]
    cmap, inits = pl.colors(pair["_key"]), sorted(pair["init"].unique())
    for (key, init), h in pair.groupby(["_key", "init"], sort=True):
        ax.scatter(h["p_value_0"], h["p_value_T"], s=14, alpha=0.8, color=cmap[key],
                   marker=pl.MARKERS[inits.index(init) % 10], label=f"{key}, {init}")  # fmt: skip
    both = pair[["p_value_0", "p_value_T"]].to_numpy()
    ax.plot(
        [both.min(), both.max()],
        [both.min(), both.max()],
        "k--",
        lw=1,
        label="y = x",
        gid=pl.REF_GID,
    )
    ax.set(xlabel="P at initialization", ylabel="P after training")
    pl.log_axis(ax.xaxis, both[:, 0], at_values=False)  # labels that do not collide
    pl.finish(ax, legend_title="sweep, regime, init")
    pl.log_y(axes)
    return fig
