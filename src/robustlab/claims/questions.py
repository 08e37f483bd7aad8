"""Protocol 2 (``docs/claims.md``): the paper's questions as they are, judged on result rows.

Where Protocol 1 gives each claim one verdict at a matched level of fit, Protocol 2 asks:

- **C1 / C2** (width, below / above p = N): the slope of log P on log width over the widths
  with p/N <= 0.5 / >= 2, at each run's own end of training (the fit is shown, never
  matched), per data set and label model, pooled over N with a free intercept per (N, init).
- **C12-peak**: does P peak in the interior near p = N, and does the peak width grow in
  proportion to N? Per seed and N the peak of the mean log P over the inits
  (:func:`~.estimators.peak_location`), then the exponent of peak width against N
  (:func:`~.estimators.scaling_exponent`).
- **C3 / C4-he / C4-ntk** (depth, linearized runs) per label scale c, with the shape of
  log P in depth (:func:`depth_shape`: exponential or polynomial, first step and tail), and per
  initialization the ratio r* = ||y|| / ||f0(X)|| where d log P / d depth changes sign
  (:func:`~.estimators.crossover`), from the finite runs and from the exact lazy limit.

Verdicts: ``supported`` / ``contradicted here`` when the two-sided t test over seeds rejects
a zero slope after Holm's adjustment over the family of directional verdicts in the table
(:func:`~.estimators.holm`); ``flat`` when two one-sided tests put the effect across the
swept range within :data:`FLAT_MARGIN` (:func:`~.estimators.equivalence`); else
``inconclusive``. A supported or contradicted slope is ``fragile`` when a meaningful factor
reverses its sign (:func:`variants`: the training points, the swept range without its lowest
or highest value; and another data set): the column ``reversed_by`` names them. Leaving a
seed out is not a factor (it measures lost power). This module imports no torch.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ._qbase import (
    FLAT_MARGIN,
    SECOND_LEVEL,
    QuestionsProtocol,
    _rows,
    _second_level,
    _trimmed,
    _verdict_row,
    label_model,
)
from ._qdepth import DEPTH_CLAIMS, crossovers, depth_questions, depth_shape, depth_slopes
from .estimators import holm, peak_location, seed_exponents
from .stats import seed_slopes, t_interval

__all__ = [
    "DEPTH_CLAIMS",
    "FLAT_MARGIN",
    "VARIANTS",
    "QuestionsProtocol",
    "crossovers",
    "depth_questions",
    "depth_shape",
    "depth_slopes",
    "label_model",
    "peaks",
    "questions",
    "variants",
    "width_questions",
]


def width_questions(
    df: pd.DataFrame, protocol: QuestionsProtocol | None = None, variant: str | None = None
) -> pd.DataFrame:
    """C1, C2 and C12-peak per (dataset, label model): one row each (see module docstring).

    Rows used: standard two-layer runs at the final stage. Per seed, log P on log width with
    a free intercept per (N, init) (:func:`~.stats.seed_slopes`); the t test over seeds.
    ``variant`` (one of :data:`VARIANTS`) re-judges C1 and C2 on the training points,
    without the lowest / highest width of each claim's range at each N, or at the runs'
    checkpoint level where that is a second level of fit (no row where it is not:
    :func:`~._qbase._second_level`).
    """
    protocol = protocol or QuestionsProtocol()
    d = _width_rows(df, "train" if variant == "training points" else "test")
    checkpoints = _rows(df, "test", "checkpoint") if variant == SECOND_LEVEL else None
    out = []
    for (dataset, labels), g in d.groupby(["dataset", "labels"], sort=True):
        ratio = g["n_params"].to_numpy(float) / g["n_train"].to_numpy(float)
        base = {"dataset": dataset, "labels": labels, "n_train": _ns(g)}
        for claim, mask, sign in (
            ("C1", ratio <= protocol.below, +1),
            ("C2", ratio >= protocol.above, -1),
        ):
            h = g[_trimmed(g["width"], g["n_train"], mask, variant)]
            if checkpoints is not None:
                h = _second_level(checkpoints, h, protocol.late_share)
                if h is None:
                    continue
            groups = (h["n_train"].astype(str) + "/" + h["init"].astype(str)).to_numpy()
            _, slopes = seed_slopes(
                np.log(h["width"].to_numpy(float)), np.log(h["p_value"].to_numpy(float)),
                h["seed"].to_numpy(), groups,
            )  # fmt: skip
            out.append(
                {
                    "claim": claim,
                    **base,
                    **_verdict_row(slopes, _span(h), sign, protocol),
                    "p_over_n": _range((h["n_params"] / h["n_train"]).to_numpy(float)),
                    "train_loss_max": float(h["train_loss"].max()),
                }
            )
        if variant is None:
            out.append({"claim": "C12-peak", **base, **_peak(g, protocol)})
    return pd.DataFrame(out)


def _width_rows(df: pd.DataFrame, points: str = "test") -> pd.DataFrame:
    """The final rows of the width sweeps: standard two-layer runs of sweeps with three or
    more widths (a depth preset's standard twins at depth 2 say nothing about the width
    curve)."""
    d = _rows(df, points)
    d = d[(d["regime"] == "standard") & (d["depth"] == 2)]
    return d[d.groupby("sweep")["width"].transform("nunique") >= 3]


def _seed_peaks(g: pd.DataFrame) -> pd.DataFrame:
    """Per (N, seed) of one width study ``g``: ``log_peak``, the log width of the peak of
    mean log P over the inits (:func:`~.estimators.peak_location`; nan without an interior
    peak), and ``peak_p_over_n``, the parameter count there over N."""
    logs = g.assign(log_p=np.log(g["p_value"].to_numpy(float)))
    curves = logs.groupby(["n_train", "seed", "width"])["log_p"].mean().reset_index()
    per_width = float(np.median(g["n_params"].to_numpy(float) / g["width"].to_numpy(float)))
    out = []
    for (n, seed), c in curves.groupby(["n_train", "seed"]):
        c = c.sort_values("width")
        x = np.log(c["width"].to_numpy(float))
        at = peak_location(x, c["log_p"].to_numpy()) if len(c) >= 3 else math.nan
        out.append({"n_train": n, "seed": seed, "log_peak": at,
                    "peak_p_over_n": math.exp(at) * per_width / n})  # fmt: skip
    return pd.DataFrame(out, columns=["n_train", "seed", "log_peak", "peak_p_over_n"])


def peaks(df: pd.DataFrame) -> pd.DataFrame:
    """The per-seed peaks behind C12-peak: one row per (dataset, label model, N, seed) with
    ``log_peak`` (log width at the peak, nan where the highest point is an end) and
    ``peak_p_over_n``; read by the report's figures."""
    d = _width_rows(df)
    parts = [_seed_peaks(g).assign(dataset=k[0], labels=k[1])
             for k, g in d.groupby(["dataset", "labels"], sort=True)]  # fmt: skip
    cols = ["dataset", "labels", "n_train", "seed", "log_peak", "peak_p_over_n"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def _ns(g: pd.DataFrame) -> str:
    return ",".join(str(int(n)) for n in sorted(g["n_train"].unique()))


def _span(g: pd.DataFrame) -> float:
    """The mean (over N) span of log width of the rows: the range the effect is given for."""
    if g.empty:
        return math.nan
    spans = g.groupby("n_train")["width"].agg(lambda w: math.log(w.max() / w.min()))
    return float(spans.mean())


def _range(values: np.ndarray) -> str:
    return f"{values.min():.2g}-{values.max():.2g}" if values.size else ""


def _peak(g: pd.DataFrame, protocol: QuestionsProtocol) -> dict:
    """Per (N, seed) the peak of mean log P over the inits; the share of interior peaks per
    N, the mean peak p/N per N, and the exponent of peak width against N."""
    p = _seed_peaks(g)
    if p.empty:
        return {"verdict_basis": "no runs"}
    share = p.groupby("n_train")["log_peak"].apply(lambda v: float(np.isfinite(v).mean()))
    where = p.groupby("n_train")["peak_p_over_n"].mean()  # nan peaks skipped
    pn = {int(n): where[n] for n in where.index}
    # the exponent of each seed once; its t interval at both levels of the rule
    slopes = seed_exponents(
        np.log(p["n_train"].to_numpy(float)), p["log_peak"].to_numpy(), p["seed"].to_numpy()
    )
    k, k_lo, k_hi = t_interval(slopes, protocol.level)
    _, k90_lo, k90_hi = t_interval(slopes, protocol.peak_level)
    lo, hi = 1 - protocol.exponent_margin, 1 + protocol.exponent_margin
    interior = bool((share >= protocol.peak_share).all()) and len(share) >= 3
    if interior and lo < k90_lo and k90_hi < hi:
        verdict = "supported"
    elif (share < 0.5).any() or (math.isfinite(k_lo) and (k_hi < lo or k_lo > hi)):
        verdict = "contradicted here"
    else:
        verdict = "inconclusive"
    return {
        "verdict": verdict,
        "peak_share_min": float(share.min()),
        "peak_p_over_n": ", ".join(f"N={n}: {v:.2f}" for n, v in pn.items()),
        "exponent": k,
        "exponent_low": k_lo,
        "exponent_high": k_hi,
        "n_seeds": int(p["seed"].nunique()),
    }


# the meaningful factors a verdict must survive (Protocol 2, "fragile"); the data set is a
# fifth, read across the table's rows. The second level of fit counts only for claims whose
# every run reached its checkpoint level late (QuestionsProtocol.late_share).
VARIANTS = ("training points", "without the lowest value", "without the highest value",
            SECOND_LEVEL)  # fmt: skip
_ROW_KEYS = ["claim", "dataset", "labels", "label_scale"]


def variants(df: pd.DataFrame, protocol: QuestionsProtocol | None = None) -> pd.DataFrame:
    """Every directional claim re-judged under each of :data:`VARIANTS`: one row per
    (claim, dataset, label model or scale, variant) with its slope and interval."""
    protocol = protocol or QuestionsProtocol()
    out = []
    for variant in VARIANTS:
        t = pd.concat(
            [width_questions(df, protocol, variant), depth_questions(df, protocol, variant)],
            ignore_index=True,
        )
        if len(t):
            out.append(t.assign(variant=variant))
    if not out:
        return pd.DataFrame(columns=[*_ROW_KEYS, "variant", "slope", "ci_low", "ci_high"])
    v = pd.concat(out, ignore_index=True)
    for key in _ROW_KEYS:
        if key not in v:
            v[key] = np.nan
    return v[[*_ROW_KEYS, "variant", "slope", "ci_low", "ci_high", "n_seeds"]]


def _reversed_by(table: pd.DataFrame, var: pd.DataFrame) -> list[str]:
    """Per row of ``table``, the factors whose slope has the other sign than a significant
    main slope ("; "-joined; "" where none or the slope is not significant): the variants of
    the same row (:func:`variants`; NaN keys match NaN keys) and another data set."""
    significant = table["verdict"].isin(["supported", "contradicted here"])
    main = table.assign(row=np.arange(len(table)))[significant.to_numpy()]
    pairs = main[["row", *_ROW_KEYS, "slope"]].merge(
        var[[*_ROW_KEYS, "variant", "slope"]], on=_ROW_KEYS, suffixes=("", "_variant")
    )
    flipped = pairs[np.sign(pairs["slope_variant"]) == -np.sign(pairs["slope"])]
    factors = flipped.groupby("row")["variant"].agg(list).to_dict()
    # the same claim (at the same label scale) significant with the other sign elsewhere
    across = main[["row", "claim", "label_scale", "dataset", "slope"]].merge(
        main[["claim", "label_scale", "dataset", "slope"]], on=["claim", "label_scale"]
    )
    other = across[
        (across["dataset_x"] != across["dataset_y"])
        & (np.sign(across["slope_y"]) == -np.sign(across["slope_x"]))
    ]
    for row in other["row"].unique():
        factors.setdefault(row, []).append("data set")
    return ["; ".join(factors.get(i, [])) for i in range(len(table))]


def questions(
    df: pd.DataFrame,
    protocol: QuestionsProtocol | None = None,
    *,
    fragility: bool = True,
    judged_variants: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The Protocol 2 table: width and depth rows, with Holm's adjustment over the
    directional rows (C1, C2, C3, C4-*) and the verdict of each row; ``fragility=False``
    skips the variants (no ``fragile`` verdict: a faster upper bound on the directional
    verdicts, for simulations). ``judged_variants``: :func:`variants` of the same rows and
    protocol where the caller has them already (they are not judged again)."""
    protocol = protocol or QuestionsProtocol()
    table = pd.concat(
        [width_questions(df, protocol), depth_questions(df, protocol)], ignore_index=True
    )
    if table.empty:
        return table
    directional = table["claim"] != "C12-peak"
    p = table["p"].where(directional) if "p" in table else pd.Series(np.nan, table.index)
    table["p_holm"] = holm(p.to_numpy(float))
    alpha = 1 - protocol.level
    for i in np.flatnonzero(directional.to_numpy()):
        row = table.iloc[i]
        significant = row["p_holm"] < alpha
        sign = 1 if row["expected_sign"] == "+" else -1
        if not np.isfinite(row["slope"]):  # no seed had a slope (e.g. one width per N)
            verdict = "no data"
        elif significant and np.sign(row["slope"]) == sign:
            verdict = "supported"
        elif significant:
            verdict = "contradicted here"
        elif row["flat"]:
            verdict = "flat"
        else:
            verdict = "inconclusive"
        table.loc[table.index[i], "verdict"] = verdict
    for key in _ROW_KEYS:
        if key not in table:
            table[key] = np.nan
    if fragility:
        var = variants(df, protocol) if judged_variants is None else judged_variants
        table["reversed_by"] = _reversed_by(table, var)
    else:
        table["reversed_by"] = ""
    fragile = table["reversed_by"] != ""
    table.loc[fragile, "verdict"] = "fragile"
    table.attrs["family"] = int(np.isfinite(p.to_numpy(float)).sum())
    return table
