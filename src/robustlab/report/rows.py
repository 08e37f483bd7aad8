"""The rows a figure draws, the key of each line, and the width where p = N.

A figure draws the *predictor* rows: status ``ok``, measured on test points (``points``
missing = test), of the function each regime fitted (``model`` = the regime's predictor
label: ``network`` for standard and mean-field runs, ``linearized`` for the Taylor model; at
initialization every regime's predictor is the network itself). Lines never pool two
experiments: a line's key always holds the sweep, and its config hash too when one sweep
name holds more than one config.

Rows without a column (older stores, a CSV, rows made by hand) read it as
:func:`robustlab._frames.with_defaults` says: ``sweep`` / ``sweep_hash`` as "", ``points`` as
test, the training-outcome columns as NaN.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from .._frames import DEFAULTS, UNKNOWN
from .._frames import predictor_rows as _predictor_rows

__all__ = ["keyed", "level_loss", "line_labels", "one_measurement", "pn_width", "predictor_rows"]

# measurement choices (not experiments): one value per figure, preferred value first
_MEASUREMENT = (("method", "exact"), ("region", "ball"), ("eps", None))


def predictor_rows(df: pd.DataFrame, at: str | Iterable[str]) -> pd.DataFrame:
    """Predictor rows (see module docstring; :func:`robustlab._frames.predictor_rows`)
    measured ``at`` (one stage or several), with P > 0 (the worst case on pgd rows)."""
    if df.empty or not {"status", "stage", "p_value", "regime"} <= set(df.columns):
        columns = [*df.columns, *DEFAULTS, *UNKNOWN, "reached_target"]
        return pd.DataFrame(columns=list(dict.fromkeys(columns)))
    return _predictor_rows(df, at)


def one_measurement(d: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Keep one eps, method and region (the preferred one when present, else the most
    frequent); returns the rows and a description of the choice for the figure title."""
    desc = []
    for col, prefer in _MEASUREMENT:
        if col not in d.columns or d[col].isna().all():
            continue
        counts = d[col].value_counts()
        v = prefer if prefer in counts.index else counts.index[0]
        d = d[d[col] == v]
        desc.append(f"{col}={v:g}" if isinstance(v, float) else f"{col}={v}")
    return d, ", ".join(desc)


def line_labels(d: pd.DataFrame, extra: Sequence[str] = ()) -> pd.Series:
    """One label per row naming its line: the sweep (with ``#hash`` when that sweep name holds
    several configs), then each column of ``extra`` whose value varies within ``d``."""
    tag = {}  # (sweep, hash) -> shown name: the hash's shortest distinct prefix, >= 8 chars
    for sweep, hashes in d.groupby("sweep")["sweep_hash"].unique().items():
        k = 8
        while len({h[:k] for h in hashes}) < len(hashes):
            k += 1
        for h in hashes:
            tag[(sweep, h)] = sweep if len(hashes) == 1 else f"{sweep} #{h[:k]}"
    parts = [[tag[k] for k in zip(d["sweep"], d["sweep_hash"], strict=True)]]
    for col in extra:
        if col in d.columns and d[col].nunique(dropna=False) > 1:
            text = [f"{v:g}" if isinstance(v, float) else str(v) for v in d[col]]
            parts.append(text if col in ("init", "regime") else [f"{col}={v}" for v in text])
    labels = [", ".join(v for v in row if v) or "rows" for row in zip(*parts, strict=True)]
    return pd.Series(labels, index=d.index, dtype=object)


def keyed(d: pd.DataFrame, x: str, extra: Sequence[str], by: Sequence[str] = ()) -> pd.DataFrame:
    """Rows with a ``_key`` column (:func:`line_labels`), keeping only the lines (``_key``
    and ``by``) with at least two values of ``x``; labels are then made again on what is
    left, so they name only what still tells the drawn lines apart."""
    if d.empty:
        return d.assign(_key=pd.Series(dtype=object))
    d = d.assign(_key=line_labels(d, extra))
    d = d[d.groupby(["_key", *by])[x].transform("nunique") >= 2]
    return d.assign(_key=line_labels(d, extra)) if len(d) else d


def pn_width(g: pd.DataFrame) -> float:
    """The width m* where the parameter count p(m) equals the training-set size N.

    ``g``: rows of one architecture family (one sweep, depth and data) at several widths. The
    count of an MLP is quadratic in the width, p(m) = a m^2 + b m + c (a = 0 at depth 2), so a
    polynomial of degree min(2, widths - 1) is fitted to the measured (m, p) pairs (exact for
    MLPs) and m* is the smallest positive root of p(m) = N. One width: p taken linear in m.
    NaN when N varies or nothing is known.
    """
    u = g[["width", "n_params", "n_train"]].dropna().drop_duplicates("width")
    if u.empty or u["n_train"].nunique() != 1:
        return float("nan")
    n = float(u["n_train"].iloc[0])
    m, p = u["width"].to_numpy(float), u["n_params"].to_numpy(float)
    if len(m) == 1:
        return float(m[0] * n / p[0])
    c, b, a = np.polynomial.polynomial.polyfit(m, p - n, 2) if len(m) > 2 else (
        *np.polynomial.polynomial.polyfit(m, p - n, 1), 0.0)  # fmt: skip
    disc = b * b - 4 * a * c
    if disc < 0:
        return float("nan")
    # the stable quadratic formula: c / q stays exact as a -> 0 (a linear count)
    q = -0.5 * (b + np.copysign(np.sqrt(disc), b))
    roots = np.array([q / a if a else np.inf, c / q if q else np.nan])
    pos = roots[np.isfinite(roots) & (roots > 0)]
    return float(pos.min()) if len(pos) else float("nan")


def level_loss(g: pd.DataFrame, at: str) -> float:
    """The training loss a run aims for at level ``at``: ``target_loss`` at ``final``, the
    sweep config's ``train.checkpoint_loss`` at ``checkpoint``; NaN when unknown."""
    if at == "final":
        known = "target_loss" in g.columns and g["target_loss"].notna().any()
        return float(g["target_loss"].median()) if known else float("nan")
    if at != "checkpoint" or "config_json" not in g.columns or g["config_json"].isna().all():
        return float("nan")
    try:
        cfg = json.loads(g["config_json"].dropna().iloc[0])
    except (TypeError, ValueError):  # not the canonical JSON of a cell config
        return float("nan")
    value = cfg.get("train", {}).get("checkpoint_loss") if isinstance(cfg, dict) else None
    return float(value) if isinstance(value, (int, float)) else float("nan")
