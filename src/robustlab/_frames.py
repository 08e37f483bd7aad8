"""Result frames as the analysis layers read them (pandas only, no torch).

The one home of two facts every reader of result rows needs:

- what a row without a column means (:func:`with_defaults`): rows of a store written before
  the column existed (:func:`robustlab.sweep.store.load` defaults them when it reads the
  store), of a CSV, or made by hand;
- which rows are the *predictor rows* that claims judge and figures draw
  (:func:`predictor_rows`): status ``ok``, measured at the asked stage on test points, of
  the function each regime fitted, with P > 0 (the worst case on pgd rows).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from .regime_facts import REGIME_FACTS

__all__ = [
    "DEFAULTS",
    "UNKNOWN",
    "measured",
    "numpy_dtypes",
    "predictor_mask",
    "predictor_rows",
    "predictors",
    "with_defaults",
]

# What a missing column or value means: rows written before ``sweep_hash`` and ``points``
# existed belong to one config of their sweep ("" when unnamed) and were measured on test
# points.
DEFAULTS = {"sweep": "", "sweep_hash": "", "points": "test"}
# Columns the analyses read that rows from elsewhere may lack: missing means unknown (None
# for text, NaN for numbers). ``reached_target`` is derived (:func:`with_defaults`).
UNKNOWN = {"model": None, "cell": None, "config_json": None} | dict.fromkeys(
    ("train_loss", "target_loss", "rel_weight_change", "ntk_change", "grad_lin_dev",
     "y_f0_ratio", "lr_halvings", "theory_grad_sq", "steps", "label_scale", "p_lazy_limit"),
    np.nan,
)  # fmt: skip


def numpy_dtypes(df: pd.DataFrame) -> pd.DataFrame:
    """Nullable columns (the store's ``Int64`` / ``string``) -> numpy ones, so comparisons
    give plain booleans: integers with NA become float (NaN), pd.NA strings become None."""
    cols = {}
    for name, s in df.items():
        if isinstance(s.dtype, pd.StringDtype) and s.dtype.na_value is pd.NA:
            cols[name] = s.astype(object).where(s.notna(), None)
        elif pd.api.types.is_extension_array_dtype(s.dtype) and pd.api.types.is_numeric_dtype(s):
            kind = "int64" if pd.api.types.is_integer_dtype(s) and s.notna().all() else "float64"
            cols[name] = pd.Series(s.to_numpy(dtype=kind, na_value=np.nan), index=s.index)
    return df.assign(**cols) if cols else df


def _reached(df: pd.DataFrame) -> pd.Series:
    """``reached_target`` where known, else whether ``train_loss <= target_loss`` where both
    are known, else 1: a run counts as having reached its target unless it is known to have
    missed it (the matched-fit rule excludes only those), as floats."""
    known = df["reached_target"] if "reached_target" in df else pd.Series(np.nan, df.index)
    by_loss = (df["train_loss"] <= df["target_loss"]).astype(float)
    by_loss = by_loss.where(df["target_loss"].notna() & df["train_loss"].notna())
    return known.where(known.notna(), by_loss).fillna(1.0).astype(float)


def with_defaults(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` in numpy dtypes (:func:`numpy_dtypes`) with the columns of :data:`DEFAULTS`
    (missing columns and values filled; names as text), of :data:`UNKNOWN` (added where
    missing) and ``reached_target`` (filled where unknown, see :func:`_reached`)."""
    df = numpy_dtypes(df)
    add = {c: v for c, v in UNKNOWN.items() if c not in df.columns}
    df = df.assign(**add) if add else df
    filled = {c: df[c].fillna(v) if c in df.columns else v for c, v in DEFAULTS.items()}
    filled["sweep"] = pd.Series(filled["sweep"], index=df.index).astype(str)
    filled["sweep_hash"] = pd.Series(filled["sweep_hash"], index=df.index).astype(str)
    return df.assign(**filled, reached_target=_reached(df))


def _predictor_label(regime: object, at: object) -> str | None:
    """The ``model`` label of the function a regime fits (at initialization: the network);
    None for a regime this version does not know."""
    facts = REGIME_FACTS.get(str(regime))
    if facts is None:
        return None
    return "network" if at == "init" else facts.predictor_label


def predictor_mask(df: pd.DataFrame) -> pd.Series:
    """True on the rows of the function each regime fitted (its ``predictor_label``; at
    ``stage = init`` the network), the rows claims are judged on and figures draw. Rows
    without a ``model`` label (older stores) count as the predictor; rows of regimes this
    version does not know never do. Needs the columns ``regime``, ``stage`` and ``model``."""
    label = pd.Series(
        [_predictor_label(r, a) for r, a in zip(df["regime"], df["stage"], strict=True)],
        index=df.index,
        dtype=object,
    )
    return label.notna() & ((df["model"] == label) | df["model"].isna())


def measured(df: pd.DataFrame, stages: str | Iterable[str], points: str = "test") -> pd.DataFrame:
    """The rows of finished runs (status ``ok``) measured at ``stages`` (one or several) on
    ``points``; ``df`` as :func:`with_defaults` returns it."""
    levels = {stages} if isinstance(stages, str) else set(stages)
    return df[(df["status"] == "ok") & df["stage"].isin(levels) & (df["points"] == points)]


def predictors(d: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``d`` of the function each regime fitted (:func:`predictor_mask`) whose
    P (the worst case ``worst_value`` on pgd rows) is finite and > 0: log P exists."""
    d = d[predictor_mask(d)]
    value = d["p_value"] if "worst_value" not in d else d["p_value"].fillna(d["worst_value"])
    p = pd.to_numeric(value, errors="coerce")
    return d[np.isfinite(p) & (p > 0)]


def predictor_rows(
    df: pd.DataFrame, stages: str | Iterable[str], points: str = "test"
) -> pd.DataFrame:
    """The predictor rows of result rows ``df`` (see the module docstring) measured at
    ``stages`` on ``points``, with the defaults of :func:`with_defaults`."""
    return predictors(measured(with_defaults(df), stages, points))
