"""The user's results as a frame: P by the swept axes, per init, regime and stage, over seeds.

:func:`p_by_axes` is the one computation behind the report's results tables; the HTML only
lays its rows out (:mod:`robustlab.report.results_html`). It reads the predictor rows
(:func:`robustlab.report.rows.predictor_rows`: status ok, test points, the function each
regime fitted) at every stage measured, and for each group of runs that differ only in their
seed gives the mean of P with its standard error and Student t interval over the seeds,
``mean +- t_{S-1, (1+level)/2} sd / sqrt(S)``, and, where a worst case was measured (method
``pgd`` over the same region), the worst case and the per-run ratio worst / P likewise.

An *experiment* (:func:`experiments`) is one sweep, or several sweeps whose runs differ only
in the data's size N or input dimension d (and the sweep's name): the data are not a grid
axis, so a study of N runs one sweep per N (``data.n_train=...`` overrides with new names),
and those sweeps are read as one experiment along N. Anything else that differs (the
training, the measurement, the data's other options) keeps the sweeps apart.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from .rows import predictor_rows

__all__ = ["AXES", "STAGES", "experiments", "p_by_axes", "swept"]

AXES = ("width", "depth", "n_train", "in_dim", "alpha")
"""The axes a study may sweep, in the order tables and figures show them (N = ``n_train``)."""

STAGES = ("init", "checkpoint", "final")
"""The stages P is measured at, in order (``checkpoint``: the looser training loss)."""

_MEASUREMENT = ("eps", "region", "method")
# what tells two groups apart (the seed is what a group averages over)
KEYS = ("experiment", "experiment_id", "dataset", "regime", "init", "stage", *_MEASUREMENT,
        *AXES)  # fmt: skip
_CELL_AXES = ("sweep", "width", "depth", "init", "regime", "alpha", "seed")  # of a cell config
_DATA_AXES = ("n_train", "in_dim")  # data options an experiment may vary across its sweeps


def _experiment_of(config_json: str) -> str:
    """The config of a cell less its grid axes, sweep name and data size / dimension."""
    try:
        cfg = json.loads(config_json)
    except (TypeError, ValueError):
        return ""
    if not isinstance(cfg, dict):
        return ""
    rest = {k: v for k, v in cfg.items() if k not in _CELL_AXES}
    if isinstance(rest.get("data"), dict):
        rest["data"] = {k: v for k, v in rest["data"].items() if k not in _DATA_AXES}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def experiments(d: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per row of ``d`` (with ``sweep``, ``sweep_hash`` and ``config_json``): the label and
    the id of its experiment (see the module docstring). Rows without a readable cell config
    are their own sweep's experiment. The label is the sweep's name (``#hash`` added when one
    name holds several configs), or the names of the sweeps joined by " + "."""
    if d.empty:
        empty = pd.Series(dtype=object, index=d.index)
        return empty, empty
    cfg = d["config_json"] if "config_json" in d.columns else pd.Series(None, index=d.index)
    cache = {c: _experiment_of(c) for c in cfg.dropna().unique()}
    own = d["sweep"].astype(str) + "#" + d["sweep_hash"].astype(str)
    ids = pd.Series([cache.get(c, "") for c in cfg], index=d.index, dtype=object)
    ids = ids.where(ids != "", "sweep:" + own)
    several = d.groupby("sweep")["sweep_hash"].nunique()
    names = {}
    for i, g in d.groupby(ids, sort=False):
        shown = []
        for (sweep, h), _ in g.groupby(["sweep", "sweep_hash"], sort=True):
            shown.append(f"{sweep} #{h[:8]}" if several.get(sweep, 1) > 1 else (sweep or "rows"))
        names[i] = " + ".join(shown) if len(shown) < 4 else f"{shown[0]} + {len(shown) - 1} more"
    return ids.map(names), ids


_RUN = ("cell", "stage", "eps", "region")  # a worst case is paired with P on these
_WORST = ("pgd",)


def swept(frame: pd.DataFrame, columns=AXES) -> list[str]:
    """The ``columns`` of ``frame`` that take more than one value (NaN counts as one)."""
    return [c for c in columns if c in frame.columns and frame[c].nunique(dropna=False) > 1]


def _spread(g: pd.core.groupby.DataFrameGroupBy, col: str, level: float) -> pd.DataFrame:
    """Per group: mean of ``col``, its standard error and t interval over the rows."""
    from scipy import stats  # lazy: the report imports alone

    n = g[col].count()
    mean, sd = g[col].mean(), g[col].std(ddof=1)
    se = sd / np.sqrt(n)
    dof = (n - 1).where(n > 1)  # NaN below two seeds: no interval
    half = stats.t.ppf((1 + level) / 2, dof) * se
    return pd.DataFrame(
        {
            f"{col}_mean": mean,
            f"{col}_stderr": se,
            f"{col}_low": mean - half,
            f"{col}_high": mean + half,
        }  # fmt: skip
    )


def p_by_axes(df: pd.DataFrame, *, level: float = 0.95) -> pd.DataFrame:
    """P by the swept axes: one row per group of runs that differ only in their seed.

    Args:
        df: result rows (columns of :mod:`robustlab.sweep.schema`); older stores' missing
            columns read as missing values.
        level: confidence level of the t intervals over seeds.

    Returns:
        One row per (experiment, experiment_id, dataset, regime, init, stage, eps, region,
        method, width, depth, n_train, in_dim, alpha), in that order, stages in the order of
        :data:`STAGES` (:func:`experiments`), with ``sweeps`` (the names of the sweeps the
        runs come from), ``seeds`` (runs averaged), ``n_params`` (p) and ``p_over_n``;
        ``p_mean``, ``p_stderr`` (sd / sqrt(S), NaN for one seed), ``p_low``, ``p_high``
        (the t interval); and where a ``pgd`` worst case was measured for the same run,
        stage, eps and region, ``worst_*`` (the worst case) and ``ratio_*`` (worst / P per
        run, then over seeds) alike, NaN elsewhere. A run measured by pgd alone has
        ``method`` pgd and no P. Empty (with these columns) when no predictor row is left.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    out_cols = [*KEYS, "sweeps", "seeds", "n_params", "p_over_n",
                *(f"{v}_{s}" for v in ("p", "worst", "ratio")
                  for s in ("mean", "stderr", "low", "high"))]  # fmt: skip
    d = predictor_rows(df, STAGES)
    if d.empty:
        return pd.DataFrame(columns=out_cols)
    d = d.assign(**{c: np.nan for c in (*AXES, "n_params", "seed") if c not in d.columns})
    label, ident = experiments(d)
    d = d.assign(experiment=label, experiment_id=ident)
    avg, worst = d[~d["method"].isin(_WORST)], d[d["method"].isin(_WORST)]
    w = (
        worst[[*_RUN, "worst_value"]]
        .drop_duplicates(list(_RUN))
        .rename(columns={"worst_value": "worst"})
    )
    runs = avg.drop(columns=["worst_value"], errors="ignore").merge(w, on=list(_RUN), how="left")
    alone = worst.merge(avg[list(_RUN)].drop_duplicates(), on=list(_RUN), how="left",
                        indicator=True)  # fmt: skip
    alone = worst[(alone["_merge"] == "left_only").to_numpy()]
    if len(alone):  # runs measured by pgd alone: the worst case without P
        runs = pd.concat([runs, alone.assign(worst=alone["worst_value"], p_value=np.nan)])
    runs = runs.assign(p=pd.to_numeric(runs["p_value"]), worst=pd.to_numeric(runs["worst"]))
    runs = runs.assign(ratio=runs["worst"] / runs["p"])
    if runs.empty:
        return pd.DataFrame(columns=out_cols)
    g = runs.groupby(list(KEYS), dropna=False, sort=False)
    n_params = g["n_params"].first()
    out = pd.concat(
        [g["sweep"].agg(lambda s: " + ".join(sorted(set(s)))).rename("sweeps"),
         g["seed"].nunique(dropna=False).rename("seeds"), n_params.rename("n_params"),
         *(_spread(g, v, level) for v in ("p", "worst", "ratio"))],
        axis=1,
    ).reset_index()  # fmt: skip
    out = out.assign(p_over_n=pd.to_numeric(out["n_params"]) / pd.to_numeric(out["n_train"]))
    order = out["stage"].map({s: i for i, s in enumerate(STAGES)})
    out = out.assign(_order=order).sort_values(
        [
            "experiment",
            "experiment_id",
            "dataset",
            "regime",
            "init",
            *AXES,
            *_MEASUREMENT,
            "_order",
        ],
        kind="stable",
    )
    return out[out_cols].reset_index(drop=True)
