"""Compare two sweep stores row for row: same rows, same values, numbers to a tolerance.

    python scripts/compare_stores.py A/results.db B/results.db [--atol 1e-6]

Rows are matched by (cell, stage, eps, method, region, model, points); wall-clock columns
(time_s, created_at) and the row id are ignored. Prints one line per difference and a
summary; exits 1 if the stores differ. Used to show that a refactor changed no result.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from robustlab.sweep.store import load

KEYS = ["cell", "stage", "eps", "method", "region", "model", "points"]
IGNORED = {"id", "time_s", "created_at"}


def rows(path: str) -> pd.DataFrame:
    df = load(path)  # the store's own reader: read-only, a clear error for a bad file
    df = df.drop(columns=[c for c in df.columns if c in IGNORED])
    keys = [k for k in KEYS if k in df.columns]  # stores from older schemas lack some
    return df.sort_values(keys, na_position="first").reset_index(drop=True)


def compare(a: pd.DataFrame, b: pd.DataFrame, atol: float) -> list[str]:
    out = []
    if set(a.columns) != set(b.columns):
        out.append(f"columns differ: {sorted(set(a.columns) ^ set(b.columns))}")
    if len(a) != len(b):
        return [*out, f"row counts differ: {len(a)} vs {len(b)}"]
    keys = [k for k in KEYS if k in a.columns and k in b.columns]
    keys_a, keys_b = a[keys].astype(str), b[keys].astype(str)
    if not keys_a.equals(keys_b):
        return [*out, "the rows' keys differ"]
    for col in sorted(set(a.columns) & set(b.columns)):
        x, y = a[col], b[col]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            xv = x.astype("float64").to_numpy(na_value=np.nan)
            yv = y.astype("float64").to_numpy(na_value=np.nan)
            bad = ~(np.isclose(xv, yv, rtol=0, atol=atol, equal_nan=True))
        else:
            bad = ((x.astype(str) != y.astype(str)) & ~(x.isna() & y.isna())).to_numpy()
        for i in np.flatnonzero(bad)[:5]:
            out.append(f"{col} row {dict(a.loc[i, keys])}: {x.iloc[i]!r} vs {y.iloc[i]!r}")
        if bad.sum() > 5:
            out.append(f"{col}: {int(bad.sum())} rows differ in all")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="first store (results.db)")
    parser.add_argument("b", help="second store")
    parser.add_argument("--atol", type=float, default=1e-6, help="absolute tolerance")
    args = parser.parse_args()
    try:
        a, b = rows(args.a), rows(args.b)
    except ValueError as err:
        print(f"compare_stores: error: {err}", file=sys.stderr)
        return 2
    diffs = compare(a, b, args.atol)
    for line in diffs:
        print(line)
    print(f"{len(a)} vs {len(b)} rows, {len(a.columns)} columns compared (atol {args.atol:g}): "
          + ("identical" if not diffs else f"{len(diffs)} differences"))  # fmt: skip
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
