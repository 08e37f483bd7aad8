"""The captions of the headline figures (:mod:`robustlab.report.headline_figures`), written
from the rows and the assessment they draw: the data sets, label models, N, seeds, inits
and the crossovers there are, never a number copied from a preset."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ..claims import Assessment
from ..claims.questions import _width_rows
from .captions import _join
from .finding_texts import INIT_WORDS, LABEL_WORDS, RATIO

__all__ = ["finding_caption"]


def _models(d: pd.DataFrame) -> str:
    pairs = sorted({(str(a), str(b)) for a, b in d[["dataset", "labels"]].itertuples(index=False)})
    return _join(f"{a} data with {LABEL_WORDS.get(b, b)}" for a, b in pairs)


def _p_at_each_n(df: pd.DataFrame, a: Assessment) -> str:
    d = _width_rows(df)
    ns = _join(str(int(n)) for n in sorted(d["n_train"].unique()))
    inits = _join(INIT_WORDS.get(i, i) for i in sorted(d["init"].unique()))
    return (
        f"P after training (test points) against p/N for the standard two-layer width runs "
        f"Protocol 2 judges, a panel per data set and label model ({_models(d)}); a line per "
        f"N (N = {ns}): at each width the geometric mean of P over the "
        f"{d['seed'].nunique()} seeds and the {inits} inits (exp of the mean log P, the curve "
        "whose peak C12-peak reads). Stars: the mean over seeds of each seed's peak p/N "
        "(seeds without an interior peak left out). Dotted vertical line: p = N."
    )


def _loss_at_each_n(df: pd.DataFrame, a: Assessment) -> str:
    d = _width_rows(df)
    stops = d["stop_reason"].value_counts() if "stop_reason" in d else pd.Series(dtype=int)
    why = _join(f"{int(k)} by {r}" for r, k in stops.items())
    return (
        "The training loss at the end of training of the same runs, against p/N, a line per "
        "N (geometric mean over seeds and inits): each width trained to its own convergence, "
        "the fit shown beside P, never matched. Dashed: the target loss; dotted: p = N. "
        + (f"The runs stopped: {why}." if why else "")
    )


def _peak_width_vs_n(df: pd.DataFrame, a: Assessment) -> str:
    p = a.peaks
    found = np.isfinite(p["log_peak"].to_numpy(float))
    level = f"{a.questions_protocol.level:.0%}"
    return (
        "The width m at which P peaks against N, a panel per data set and label model "
        f"({_models(p[found])}): each seed's peak (faint points; {int(found.sum())} of "
        f"{len(p)} seed curves have an interior peak), the geometric mean per N (dots), a "
        "line through the means with C12-peak's exponent, the mean over seeds of each seed's "
        f"slope of log peak width on log N (legend: with its {level} t interval and the "
        "verdict), and a dashed line of slope 1: a peak width in proportion to N."
    )


def _depth_slope_vs_ratio(df: pd.DataFrame, a: Assessment) -> str:
    s = a.depth_slopes
    inits = _join(INIT_WORDS.get(i, i) for i in sorted(s["init"].unique()))
    has_limit = s["limit_slope"].notna().any()
    c = a.crossovers
    none = c[~np.isfinite(c["finite_r"].to_numpy(float))] if len(c) else c
    text = (
        f"The slope of log P on depth of the linearized runs against {RATIO} (labels over "
        f"the initial network's outputs), a panel per data set, a color per init ({inits}): "
        "each seed's slope at each label scale c (faint points), their mean per c with its "
        f"{a.questions_protocol.level:.0%} t interval over seeds (error bars, at the "
        f"geometric mean ratio of that c)"
    )
    text += (
        ", and the exact infinite-width lazy limit's mean slope per c (dashed, open squares). "
        if has_limit
        else ". "
    )
    text += (
        "Above 0, deeper is less robust. Vertical lines: the crossover ratio r* where the "
        "slope changes sign (finite runs solid, lazy limit dotted)"
    )
    if len(none):
        pairs = none[["init", "dataset"]].itertuples(index=False)
        who = _join(f"{INIT_WORDS.get(i, i)} on {d} data" for i, d in pairs)
        text += f"; no sign change in the swept range for {who}"
    return text + "."


_CAPTIONS: dict[str, Callable[[pd.DataFrame, Assessment], str]] = {
    "p_at_each_n": _p_at_each_n,
    "loss_at_each_n": _loss_at_each_n,
    "peak_width_vs_n": _peak_width_vs_n,
    "depth_slope_vs_ratio": _depth_slope_vs_ratio,
}


def finding_caption(name: str, df: pd.DataFrame, a: Assessment) -> str:
    """The caption of headline figure ``name`` drawn from ``df`` and ``a``."""
    if name not in _CAPTIONS:
        raise ValueError(f"unknown headline figure {name!r}; choices: {', '.join(_CAPTIONS)}")
    return _CAPTIONS[name](df, a)
