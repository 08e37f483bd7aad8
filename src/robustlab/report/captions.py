"""The caption under each figure, written from the rows it draws.

A caption states only what the data hold: the regimes, stages, panels and input dimensions
of the rows (no number copied from the presets, no regime the store has no run of). The
claims' figures are captioned with the claims they show; the study's figures mention no
claim unless the report shows the claims section (``claims=True``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from ..claims import Protocol
from ..theory import REGIONS as KAPPA_REGIONS
from ..theory import kappa
from .axis_figures import AXIS_LABEL, STAGE_LS, STAGE_TEXT, axis_rows
from .claim_figures import PN_REGIMES, depth_rows, width_rows
from .plot import pn_inside
from .regime_figures import laziness_panels, weight_change_rows
from .results import STAGES
from .rows import one_measurement, pn_width, predictor_rows
from .worst_figures import worst_panels

__all__ = ["caption"]

_LS_WORD = {"-": "solid", "--": "dashed", ":": "dotted"}
_WORD = {"regime": "regime", "width": "width", "depth": "depth", "n_train": "N",
         "in_dim": "input dimension", "alpha": "alpha", "dataset": "data set"}  # fmt: skip
_REGION = {"ball": "L2 ball", "sphere": "L2 sphere"}


def _join(items: Iterable[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = [str(v) for v in items]
    return " and ".join(items) if len(items) < 3 else ", ".join(items[:-1]) + " and " + items[-1]


def _values(d: pd.DataFrame, col: str) -> list:
    if col not in d.columns:
        return []
    return sorted({v for v in d[col] if not (isinstance(v, float) and np.isnan(v))}, key=str)


def _num(v) -> str:
    return f"{v:g}" if isinstance(v, (int, float, np.number)) else str(v)


def _pn_sentence(d: pd.DataFrame) -> str:
    """Where p = N lies against the swept widths of the rows (per sweep and depth)."""
    inside = outside = False
    for _, g in d.groupby(["sweep", "sweep_hash", "depth", "n_train"], sort=True):
        inside |= bool(np.isfinite(pn_inside(g)))
        outside |= bool(np.isfinite(pn_width(g)) and not np.isfinite(pn_inside(g)))
    parts = []
    if inside:
        parts.append(
            "Dotted vertical lines: the width where the parameter count p equals the number "
            "of training points N."
        )
    if outside:
        parts.append(
            "Where p = N lies outside the swept widths, the legend says which side they are on."
        )
    return " ".join(parts)


def _axis_caption(df: pd.DataFrame, axis: str, claims: bool) -> str:
    a = axis_rows(df, axis)
    d = a.rows
    stages = [s for s in STAGES if s in set(d["stage"])]
    words = {c: _WORD.get(c, c) for c in (*a.panels, *a.shades)}
    text = f"P ({a.desc}) against {AXIS_LABEL[axis]}: the line is the mean over seeds, each "
    text += "seed a faint point beside it. "
    if len(a.panels) > 1 or d["regime"].nunique() > 1:
        text += f"A panel per {_join(words[c] for c in a.panels)}"
    else:
        text += f"The {_join(_values(d, 'regime'))} runs"
    text += "; a color per init" if d["init"].nunique() > 1 else f" (init {d['init'].iloc[0]})"
    if a.shades:
        text += f", shaded light to dark by {_join(words[c] for c in a.shades)}"
    if d["sweep"].nunique() > 1:
        text += f"; a marker per experiment ({_join(_values(d, 'sweep'))})"
    if len(stages) > 1:
        styles = [f"{_LS_WORD[STAGE_LS[s]]} {STAGE_TEXT[s]}" for s in reversed(stages)]
        text += f"; {_join(styles)}."
    else:
        text += f"; all {STAGE_TEXT[stages[0]]}." if stages else "."
    if axis == "width":
        text += " " + _pn_sentence(d)
    return text.strip()


def _worst(df: pd.DataFrame, claims: bool) -> str:
    panels = worst_panels(df)
    axes = [x for x, _ in panels]
    pgd = pd.concat([rows for _, rows in panels]) if panels else pd.DataFrame()
    text = (
        "Worst case beside average: the PGD worst case over the same region (projected gradient "
        f"ascent with restarts) divided by P, per run after training, against {_join(axes)}."
    )
    linear = []
    for (dim, region), _ in pgd.groupby(["in_dim", "region"], sort=True) if len(pgd) else []:
        if region in KAPPA_REGIONS and np.isfinite(dim) and dim >= 1:
            ratio = 1 / kappa(int(dim), region)
            linear.append(f"{ratio:.3g} at d = {int(dim)} on the {_REGION[region]}")
    if linear:
        text += f" A function linear on the region gives 1/kappa_d: {_join(linear)}."
    return text


def _init_theory(df: pd.DataFrame, claims: bool) -> str:
    d, desc = one_measurement(predictor_rows(df, "init"))
    dims = ", ".join(_num(v) for v in _values(d, "in_dim"))
    return (
        f"P at initialization ({desc}; the line is the mean over seeds, each seed a faint point) "
        "and the closed-form Jensen bound eps kappa_d sqrt(E||grad_x f||^2) of a bias-free ReLU "
        f"MLP (dashed), at d = {dims}: against depth at the largest width, against width at "
        "the smallest depth, where those vary."
    )


def _init_vs_final(df: pd.DataFrame, claims: bool) -> str:
    return (
        "P at initialization against P after training, one point per run (same measurement); "
        "dashed: y = x (below it, training left the run more robust than it started)."
    )


def _weight_change(df: pd.DataFrame, claims: bool, protocol: Protocol) -> str:
    d = weight_change_rows(df)
    regimes = _values(d, "regime")
    t = protocol.thresholds
    lazy, nonlazy = t["lazy_threshold"], t["nonlazy_threshold"]
    whose = "the laziness thresholds of the verdicts" if claims else "reference levels"
    return (
        "Relative weight change ||W_T - W_0||_F / ||W_0||_F after training against width, a "
        f"panel per regime ({_join(regimes)}); {whose}: lazy <= {lazy:g} dashed, non-lazy "
        f">= {nonlazy:g} dotted. " + _pn_sentence(d)
    ).strip()


def _laziness(df: pd.DataFrame, claims: bool) -> str:
    words = {
        "rel_weight_change": "the relative weight change",
        "ntk_change": "the relative change of the empirical NTK",
        "grad_lin_dev": "the deviation of the trained input gradient from the linearized "
        "twin's (same w0 and data), relative to what training changed",
    }
    panels = laziness_panels(df)
    parts = [words[col] for col, _, _ in panels]
    d = pd.concat([rows for _, _, rows in panels]) if panels else pd.DataFrame()
    regimes = _join(_values(d, "regime"))
    return f"How lazy the {regimes} runs were, against depth: {_join(parts)}, a panel each."


# --- the claims' figures (shown in the claims section only) ------------------------------


def _fit_control(df: pd.DataFrame, claims: bool) -> str:
    regimes = set(predictor_rows(df, "final")["regime"])
    text = (
        "Fit control: the final training loss of every run a claim uses, against its swept "
        "axis, at the claim's level of fit (C1 at the looser checkpoint loss, the others at "
        "the target loss; dotted: the loss aimed for). A verdict compares runs fitted equally "
        "well only where these lines are flat; crosses are runs that missed the level and are "
        "excluded from the verdict (counted in n_excluded)."
    )
    if {"linearized", "standard"} <= regimes:
        text += " C3/C4: the standard runs beside the linearized ones are dashed."
    return text


def _lazy_limit(d: pd.DataFrame) -> str:
    has = "p_lazy_limit" in d.columns and d["p_lazy_limit"].notna().any()
    return " Thin dotted: the infinite-width lazy limit of the same runs." if has else ""


def _across_pn(df: pd.DataFrame, claims: bool) -> str:
    d = predictor_rows(df, ("checkpoint", "final"))
    d = d[d["regime"].isin(PN_REGIMES)]
    stages = set(d["stage"])
    sides = []
    if "checkpoint" in stages:
        sides.append("C1 is the slope where p < N (at the checkpoint loss)")
    if "final" in stages:
        sides.append("C2 the slope where p > N (at the target loss)")
    return (
        f"P against width in the {_join(_values(d, 'regime'))} width sweeps across p = N: "
        f"{_join(sides)}. The star marks where the mean P peaks; the legend gives that width's "
        "p/N. " + _pn_sentence(d) + _lazy_limit(d)
    ).strip()


def _vs_depth(df: pd.DataFrame, claims: bool) -> str:
    d, _ = depth_rows(df)
    regimes = set(d["regime"])
    inits = _join(_values(d, "init"))
    styles = []
    if "linearized" in regimes:
        styles.append("linearized runs (lazy exactly, judged by C3/C4) solid")
    if "standard" in regimes:
        beside = " (reported beside)" if "linearized" in regimes else ""
        styles.append(f"standard runs{beside} dashed")
    if "mean_field" in regimes:
        styles.append("mean-field runs dash-dotted")
    return (
        f"P after training against depth, a panel per initialization ({inits}): "
        f"{_join(styles)}.{_lazy_limit(d)}"
    )


def _vs_width(df: pd.DataFrame, claims: bool) -> str:
    d, _ = width_rows(df)
    regimes = _values(d, "regime")
    c5 = "; mean-field: C5" if "mean_field" in regimes else ""
    return (
        f"P after training against width for the {_join(regimes)} runs (not judged across "
        f"p = N{c5}). " + _pn_sentence(d) + _lazy_limit(d)
    ).strip()


_CAPTIONS: dict[str, Callable[[pd.DataFrame, bool], str]] = {
    "worst_vs_average": _worst,
    "p_init_theory": _init_theory,
    "p_init_vs_final": _init_vs_final,
    "laziness_vs_depth": _laziness,
    "fit_control": _fit_control,
    "p_across_pn": _across_pn,
    "p_vs_depth": _vs_depth,
    "p_vs_width": _vs_width,
}


def caption(
    name: str, df: pd.DataFrame, *, protocol: Protocol | None = None, claims: bool = False
) -> str:
    """The caption of figure ``name`` (:data:`robustlab.report.FIGURES`) drawn from ``df``.

    Args:
        name: the figure's name.
        df: the result rows the figure was drawn from.
        protocol: whose laziness thresholds the regime figure draws (default
            :class:`~robustlab.claims.Protocol`).
        claims: whether the report shows the claims section (the study's captions then say
            which thresholds are the verdicts').
    """
    if name.startswith("p_by_"):
        return _axis_caption(df, name.removeprefix("p_by_"), claims)
    if name == "weight_change_vs_width":
        return _weight_change(df, claims, protocol or Protocol())
    if name not in _CAPTIONS:
        raise ValueError(f"unknown figure {name!r}")
    return _CAPTIONS[name](df, claims)
