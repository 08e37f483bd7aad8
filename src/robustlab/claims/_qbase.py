"""Protocol 2's common parts: its protocol object, the rows it reads, one verdict row of
per-seed slopes, and the range-trimming variants (see :mod:`robustlab.claims.questions`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._frames import predictor_rows
from .estimators import equivalence, t_pvalue
from .stats import t_interval

__all__ = ["FLAT_MARGIN", "SECOND_LEVEL", "QuestionsProtocol", "label_model", "label_models"]

FLAT_MARGIN = math.log(1.05)  # flat: |effect across the swept range| < 5% (in log P)
SECOND_LEVEL = "second level of fit"  # the variant judged at the runs' checkpoint level


@dataclass(frozen=True)
class QuestionsProtocol:
    """Every choice of Protocol 2, in one place (``docs/claims.md``, "Protocol 2").

    Attributes:
        below, above: C1 uses the widths with p/N <= ``below``, C2 those with p/N >= ``above``.
        level: confidence level of the intervals and 1 - the Holm family-wise error.
        flat_margin: the equivalence margin on log P across the swept range.
        peak_share: the share of seeds that must show an interior peak at every N.
        exponent_margin: proportional growth means an exponent within 1 +- this margin.
        peak_level: the level of the exponent's interval for ``supported`` (two one-sided
            tests at (1 - peak_level) / 2 each).
        late_share: a checkpoint level of fit is a meaningful second level (a fragility
            factor) only when every run of the claim reached it at a step >= this share of
            the steps it ran in all.
    """

    below: float = 0.5
    above: float = 2.0
    level: float = 0.95
    flat_margin: float = FLAT_MARGIN
    peak_share: float = 0.8
    exponent_margin: float = 0.25
    peak_level: float = 0.90
    late_share: float = 0.2


def label_model(config_json: object) -> str:
    """``gauss`` (regression targets plus Gaussian noise), ``flip`` (+-1 labels with flips),
    ``clean`` or ``other``, read from a cell's config JSON (its ``data`` section)."""
    try:
        data = json.loads(str(config_json)).get("data", {})
    except (ValueError, AttributeError):
        return "other"
    options = data.get("options", data)
    noise = float(options.get("label_noise", 0.0) or 0.0)
    if options.get("task") == "regression":
        return "gauss" if noise > 0 else "clean"
    flips = noise + float(options.get("label_flip", 0.0) or 0.0)
    return "flip" if flips > 0 else "clean"


def _rows(df: pd.DataFrame, points: str = "test", stage: str = "final") -> pd.DataFrame:
    """The predictor rows (:func:`robustlab._frames.predictor_rows`) of P at ``stage``
    on ``points``, pgd rows left out, with a ``labels`` column (:func:`label_model`); rows
    written before the label scale existed have c = 1."""
    missing = {"label_scale": 1.0, "p_lazy_limit": math.nan, "config_json": None}
    df = df.assign(**{k: v for k, v in missing.items() if k not in df})
    df = df.assign(label_scale=df["label_scale"].fillna(1.0))
    d = predictor_rows(df, stage, points)
    d = d[d["method"] != "pgd"]
    if d.empty:
        return d.assign(labels=pd.Series(dtype=str))
    return d.assign(labels=label_models(d["config_json"]))


def label_models(config_json: pd.Series) -> list[str]:
    """:func:`label_model` of each row's config JSON (each distinct config parsed once);
    ``other`` where a row has none."""
    models = {c: label_model(c) for c in config_json.dropna().unique()}
    return [models.get(c, "other") for c in config_json]


def _verdict_row(slopes: np.ndarray, span: float, sign: int, protocol: QuestionsProtocol) -> dict:
    """Slope, interval, p-value and the flat test of per-seed slopes over a range ``span``."""
    mean, low, high = t_interval(slopes, protocol.level)
    flat, flat_p = (
        equivalence(slopes, protocol.flat_margin / span)
        if span > 0 and len(slopes) >= 2
        else (False, math.nan)
    )
    return {
        "expected_sign": "+" if sign > 0 else "-",
        "slope": mean,
        "ci_low": low,
        "ci_high": high,
        "p": t_pvalue(slopes),
        "flat": flat,
        "flat_p": flat_p,
        "effect": math.exp(mean * span) if math.isfinite(mean) else math.nan,
        "n_seeds": len(slopes),
    }


def _trimmed(x: pd.Series, by: pd.Series, mask: np.ndarray, variant: str | None) -> np.ndarray:
    """``mask`` less the rows at the lowest (or highest) value of ``x`` among the masked rows
    of each value of ``by``, for the variants that trim the swept range."""
    if variant not in ("without the lowest value", "without the highest value"):
        return mask
    inside = x.where(mask)
    edge = inside.groupby(by).transform("min" if "lowest" in variant else "max")
    return mask & (x != edge).to_numpy()


def _second_level(checkpoints: pd.DataFrame, g: pd.DataFrame, share: float) -> pd.DataFrame | None:
    """The checkpoint rows of the runs in ``g`` (final rows), or None where the checkpoint
    level is no meaningful second level of fit: a run of ``g`` did not reach it, or reached
    it before ``share`` of the steps it ran (a level every run passes in a few steps is
    still the initialization's, not a second trained state)."""
    cells = g["cell"].unique()
    c = checkpoints[checkpoints["cell"].isin(cells)]
    if len(cells) == 0 or c["cell"].nunique() < len(cells):
        return None
    ran = g.groupby("cell")["steps"].max()
    late = c["steps"].to_numpy(float) >= share * c["cell"].map(ran).to_numpy(float)
    return c if bool(late.all()) else None
