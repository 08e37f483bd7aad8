"""Protocol 2's depth questions: C3, C4-he, C4-ntk per label scale, the shape of log P in
depth, and the crossover ratio r* (see :mod:`robustlab.claims.questions`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ._qbase import SECOND_LEVEL, QuestionsProtocol, _rows, _second_level, _trimmed, _verdict_row
from .estimators import crossover
from .stats import seed_slopes, t_interval

__all__ = ["DEPTH_CLAIMS", "crossovers", "depth_questions", "depth_shape", "depth_slopes"]

# claim -> (init, expected sign of d log P / d depth) on linearized runs
DEPTH_CLAIMS = {"C3": ("lecun", -1), "C4-he": ("he", +1), "C4-ntk": ("ntk", +1)}


def depth_questions(
    df: pd.DataFrame, protocol: QuestionsProtocol | None = None, variant: str | None = None
) -> pd.DataFrame:
    """C3, C4-he, C4-ntk per (dataset, label scale) on the linearized runs: one row each;
    ``variant`` as in :func:`width_questions` (the range trimmed in depth)."""
    protocol = protocol or QuestionsProtocol()
    d = _rows(df, "train" if variant == "training points" else "test")
    d = d[d["regime"] == "linearized"]
    if len(d):
        keep = _trimmed(d["depth"], d["label_scale"], np.ones(len(d), bool), variant)
        d = d[keep]
    checkpoints = _rows(df, "test", "checkpoint") if variant == SECOND_LEVEL else None
    out = []
    for claim, (init, sign) in DEPTH_CLAIMS.items():
        for (dataset, c), g in d[d["init"] == init].groupby(["dataset", "label_scale"]):
            if checkpoints is not None:
                g = _second_level(checkpoints, g, protocol.late_share)
                if g is None:
                    continue
            x = g["depth"].to_numpy(float)
            _, slopes = seed_slopes(x, np.log(g["p_value"].to_numpy(float)), g["seed"].to_numpy())
            out.append(
                {
                    "claim": claim,
                    "dataset": dataset,
                    "label_scale": float(c),
                    "y_f0_ratio": float(g["y_f0_ratio"].median()),
                    **_verdict_row(slopes, float(x.max() - x.min()), sign, protocol),
                    **(depth_shape(g, protocol) if variant is None else {}),
                    "train_loss_max": float(g["train_loss"].max()),
                }
            )
    return pd.DataFrame(out)


def depth_shape(g: pd.DataFrame, protocol: QuestionsProtocol | None = None) -> dict:
    """How log P depends on depth L, per seed (the paper's abstract contrasts exponential and
    polynomial growth in depth):

    - ``shape``: the better of log P = a + b L (``exponential``) and log P = a + b log L
      (``polynomial``) by the pooled residual sum of squares over seeds (each seed its own
      intercept and slope); ``shape_seeds``: in how many seeds that fit is the better one.
    - ``step_first``: the mean over seeds of log P(L_min + 1) - log P(L_min) (the first
      step, 2 -> 3 in the presets) with its t interval; ``tail_slope``: the mean over
      seeds of the slope of log P on L over L >= L_min + 1, per layer.
    """
    protocol = protocol or QuestionsProtocol()
    rss = {"exponential": [], "polynomial": []}
    steps, tails = [], []
    for _, h in g.groupby("seed"):
        by_depth = np.log(h["p_value"].to_numpy(float))
        depth = h["depth"].to_numpy(float)
        mean = pd.Series(by_depth).groupby(depth).mean()
        if len(mean) < 3:
            continue
        L, y = mean.index.to_numpy(float), mean.to_numpy()
        for name, x in (("exponential", L), ("polynomial", np.log(L))):
            fit = np.polyval(np.polyfit(x, y, 1), x)
            rss[name].append(float(np.sum((y - fit) ** 2)))
        steps.append(float(y[1] - y[0]))
        tails.append(float(np.polyfit(L[1:], y[1:], 1)[0]) if len(L) >= 3 else math.nan)
    if not steps:
        return {"shape": "", "shape_seeds": ""}
    e, q = np.asarray(rss["exponential"]), np.asarray(rss["polynomial"])
    shape = "exponential" if e.sum() <= q.sum() else "polynomial"
    better = int(np.sum(e <= q)) if shape == "exponential" else int(np.sum(q < e))
    step, step_lo, step_hi = t_interval(steps, protocol.level)
    tail, tail_lo, tail_hi = t_interval(tails, protocol.level)
    return {
        "shape": shape,
        "shape_seeds": f"{better} of {len(steps)}",
        "step_first": step,
        "step_first_low": step_lo,
        "step_first_high": step_hi,
        "tail_slope": tail,
        "tail_low": tail_lo,
        "tail_high": tail_hi,
    }


def depth_slopes(df: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, init, label scale, seed) of the linearized runs: ``y_f0_ratio`` (its
    median over depths) and the least-squares slope of log P on depth, from the finite runs
    (``finite_slope``) and from the exact lazy limit (``limit_slope``, nan where no limit
    was computed); the points behind :func:`crossovers` and the report's crossover figure."""
    d = _rows(df)
    d = d[d["regime"] == "linearized"]
    out = []
    for (dataset, init, c, seed), h in d.groupby(["dataset", "init", "label_scale", "seed"]):
        row = {"dataset": dataset, "init": init, "label_scale": float(c), "seed": seed,
               "y_f0_ratio": float(h["y_f0_ratio"].median())}  # fmt: skip
        for source, column in (("finite", "p_value"), ("limit", "p_lazy_limit")):
            v = pd.to_numeric(h[column], errors="coerce").to_numpy(float)
            ok = np.isfinite(v) & (v > 0)
            depth = h["depth"].to_numpy(float)[ok]
            fit = np.unique(depth).size >= 2
            row[f"{source}_slope"] = np.polyfit(depth, np.log(v[ok]), 1)[0] if fit else math.nan
        out.append(row)
    cols = ["dataset", "init", "label_scale", "seed", "y_f0_ratio", "finite_slope", "limit_slope"]
    return pd.DataFrame(out, columns=cols)


def crossovers(df: pd.DataFrame, protocol: QuestionsProtocol | None = None) -> pd.DataFrame:
    """Per (dataset, init): r* where d log P / d depth changes sign against
    u = log(y_f0_ratio) (:func:`~.estimators.crossover` on :func:`depth_slopes`), from the
    finite linearized runs and from the lazy limit."""
    protocol = protocol or QuestionsProtocol()
    slopes = depth_slopes(df)
    out = []
    for (dataset, init), g in slopes.groupby(["dataset", "init"]):
        row = {"dataset": dataset, "init": init}
        for source in ("finite", "limit"):
            h = g[np.isfinite(g[f"{source}_slope"])]
            r, lo, hi, n = crossover(
                np.log(h["y_f0_ratio"].to_numpy(float)), h[f"{source}_slope"].to_numpy(float),
                h["seed"].to_numpy(), protocol.level,
            )  # fmt: skip
            row |= {f"{source}_r": r, f"{source}_low": lo, f"{source}_high": hi,
                    f"{source}_seeds": n}  # fmt: skip
        out.append(row)
    return pd.DataFrame(out)
