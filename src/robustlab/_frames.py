"""Result frames as the analysis layers read them (pandas only, no torch)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["numpy_dtypes"]


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
