"""Result frames as the analysis layers read them (pandas only, no torch)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .regime_facts import REGIME_FACTS

__all__ = ["numpy_dtypes", "predictor_mask"]


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
