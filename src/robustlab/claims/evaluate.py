"""The paper's claims C1..C5 (DESIGN §1) as hypotheses on tidy result rows -> verdicts.

Zhu, Liu, Chrysos & Cevher, *Robustness in deep learning: the good (width), the bad
(depth), and the ugly (initialization)*, NeurIPS 2022. Each claim is a sign of a scaling
exponent of the perturbation stability P (lower P = more robust):

- against width (C1, C2, C5): b in log P = a + b log m  (P ~ m^b);
- against depth (C3, C4):     b in log P = a + b L      (P ~ exp(b L)).

Rows used: status ``ok``, ``at == "final"``, ``model == "network"`` (when that column holds
such rows). A group fixes everything but the swept axis, including eps and the method, so
a slope never mixes perturbation radii. Each claim restricts the rows to its regime
(p vs N for C1/C2; the measured relative weight change for C3..C5, DESIGN "Regimes").
The claim's slope is the fixed-effects slope pooled over its groups, its interval the
bootstrap over seeds (see :func:`robustlab.theory.fit.fit_slope`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..theory.fit import fit_slope

__all__ = ["CLAIMS", "VERDICTS", "Claim", "evaluate", "fit_slope"]

VERDICTS = ("supported", "contradicted", "inconclusive", "regime not reached", "no data")


@dataclass(frozen=True)
class Claim:
    """One hypothesis: the sign of d log P / d ``axis`` on the rows of a regime."""

    id: str
    statement: str
    axis: str  # "width" (x = log width) or "depth" (x = depth)
    sign: int  # claimed sign of the slope: +1 = P grows (less robust), -1 = P falls
    keys: tuple[str, ...]  # group columns
    candidates: Callable[[pd.DataFrame], pd.Series]  # rows the claim is about
    regime: Callable[[pd.DataFrame, float, float], tuple[pd.Series, str]]  # mask, why-not

    @property
    def x_label(self) -> str:
        return "log width" if self.axis == "width" else "depth"


# a group never mixes sweeps: two sweeps on "the same" data may differ in labels or training
_W_KEYS = ("sweep", "dataset", "n_train", "init", "depth", "regime", "alpha", "eps", "method")
_D_KEYS = ("sweep", "dataset", "n_train", "init", "width", "regime", "alpha", "eps", "method")


def _trained_as_initialized(d: pd.DataFrame) -> pd.Series:
    """C1/C2 rows: networks trained as parameterized (not the mean-field model of C5)."""
    return d["regime"].isin(("standard", "lazy"))


def _params_side(under: bool):
    def regime(d: pd.DataFrame, lazy: float, nonlazy: float) -> tuple[pd.Series, str]:
        mask = d["n_params"] < d["n_train"] if under else d["n_params"] > d["n_train"]
        r = d.sort_values("n_params", ascending=under).iloc[0]
        p, n = int(r["n_params"]), int(r["n_train"])
        if under:
            return mask, f"no widths with p < N (smallest p={p}, N={n})"
        return mask, f"no widths with p > N (largest p={p}, N={n})"

    return regime


def _lazy(d: pd.DataFrame, lazy: float, nonlazy: float) -> tuple[pd.Series, str]:
    med = d["rel_weight_change"].median()
    return (
        d["rel_weight_change"] <= lazy,
        f"no runs with rel_weight_change <= {lazy:g} (median {med:.3g})",
    )


def _nonlazy(d: pd.DataFrame, lazy: float, nonlazy: float) -> tuple[pd.Series, str]:
    two = d["depth"] == 2
    med = d.loc[two, "rel_weight_change"].median() if two.any() else float("nan")
    why = (
        f"no two-layer runs with rel_weight_change >= {nonlazy:g} (median {med:.3g})"
        if two.any()
        else "no two-layer (depth 2) mean_field runs"
    )
    return two & (d["rel_weight_change"] >= nonlazy), why


def _lazy_rows(inits: tuple[str, ...]):
    return lambda d: d["regime"].isin(("standard", "lazy")) & d["init"].isin(inits)


CLAIMS: tuple[Claim, ...] = (
    Claim("C1", "under-parameterized (p < N): wider => less robust (P grows with width)",
          "width", +1, _W_KEYS, _trained_as_initialized, _params_side(True)),
    Claim("C2", "over-parameterized (p > N): wider => more robust (P falls with width)",
          "width", -1, _W_KEYS, _trained_as_initialized, _params_side(False)),
    Claim("C3", "lazy training, LeCun init: deeper => more robust (P falls with depth)",
          "depth", -1, _D_KEYS, _lazy_rows(("lecun",)), _lazy),
    Claim("C4", "lazy training, He or NTK init: deeper => less robust (P grows with depth)",
          "depth", +1, _D_KEYS, _lazy_rows(("he", "ntk")), _lazy),
    Claim("C5", "non-lazy training (mean-field), two-layer ReLU: wider => more robust",
          "width", -1, ("sweep", "dataset", "n_train", "init", "eps", "method"),
          lambda d: d["regime"] == "mean_field", _nonlazy),
)  # fmt: skip


def _verdict(sign: int, lo: float, hi: float) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "inconclusive"
    if (sign > 0 and lo > 0) or (sign < 0 and hi < 0):
        return "supported"
    if (sign > 0 and hi < 0) or (sign < 0 and lo > 0):
        return "contradicted"
    return "inconclusive"


_NEEDED = ("status", "at", "p_value", "seed", "width", "depth", "init", "regime", "alpha",
           "dataset", "eps", "method", "n_params", "n_train", "rel_weight_change")  # fmt: skip


def _numpy_dtypes(df: pd.DataFrame) -> pd.DataFrame:
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


def _base_rows(df: pd.DataFrame) -> pd.DataFrame:
    df = _numpy_dtypes(df)
    missing = [c for c in _NEEDED if c not in df.columns]
    if missing and len(df):
        raise ValueError(f"result rows lack columns {missing} (see robustlab.sweep.schema)")
    if missing:  # an empty frame without columns: no data for any claim
        return pd.DataFrame(columns=list(_NEEDED))
    if "sweep" not in df.columns:  # rows from elsewhere: one unnamed sweep
        df = df.assign(sweep="")
    d = df[(df["status"] == "ok") & (df["at"] == "final")]
    if "model" in d.columns and (d["model"] == "network").any():
        d = d[d["model"] == "network"]
    p = pd.to_numeric(d["p_value"], errors="coerce")
    return d[np.isfinite(p) & (p > 0)]  # log P needs P > 0


def _fit(c: Claim, d: pd.DataFrame, gid, rng, n_boot: int, level: float) -> dict:
    x = np.log(d["width"].to_numpy(float)) if c.axis == "width" else d["depth"].to_numpy(float)
    slope, lo, hi, how = fit_slope(
        x, np.log(d["p_value"].to_numpy(float)), d["seed"].to_numpy(), n_boot, level, rng,
        groups=gid,
    )  # fmt: skip
    reason = "" if how != "t (OLS)" else "single seed: t interval of the OLS slope"
    if how == "none":
        reason = "too few points for an interval"
    return {
        "verdict": _verdict(c.sign, lo, hi), "slope": slope, "ci_low": lo, "ci_high": hi,
        "ci_method": how, "n": len(d), "n_seeds": d["seed"].nunique(), "reason": reason,
        "median_rel_weight_change": d["rel_weight_change"].median(),
    }  # fmt: skip


def _empty(verdict: str, reason: str, **extra) -> dict:
    nan = float("nan")
    out = {"verdict": verdict, "slope": nan, "ci_low": nan, "ci_high": nan, "ci_method": "none"}
    return out | {"n": 0, "n_seeds": 0, "reason": reason} | extra


def _claim(c, base, lazy, nonlazy, n_boot, level, rng) -> tuple[dict, list[dict]]:
    """Claim-level row and per-group rows of claim ``c`` on the ``base`` rows."""
    cand = base[c.candidates(base)] if len(base) else base
    if cand.empty:
        return _empty("no data", "no rows for this claim", median_rel_weight_change=np.nan), []
    mask, why = c.regime(cand, lazy, nonlazy)
    d = cand[mask.fillna(False).astype(bool)]
    med = cand["rel_weight_change"].median()
    if d.empty:
        return _empty("regime not reached", why, median_rel_weight_change=med), []
    d_med = d["rel_weight_change"].median()
    x_col = c.axis
    keys = list(c.keys)
    groups, fitted = [], []
    for key, g in d.groupby(keys, dropna=False, sort=True):
        row = dict(zip(keys, key, strict=True))
        if g[x_col].nunique() < 2:
            why_g = f"needs >= 2 distinct {x_col}s, got {g[x_col].nunique()}"
            facts = {"n": len(g), "n_seeds": g["seed"].nunique(), "median_rel_weight_change":
                     g["rel_weight_change"].median()}  # fmt: skip
            groups.append(row | _empty("inconclusive", why_g, **facts))
            continue
        fitted.append(g)
        groups.append(row | _fit(c, g, None, rng, n_boot, level))
    if not fitted:
        why = f"no group with >= 2 distinct {x_col}s after filters"
        facts = {"n": len(d), "n_seeds": d["seed"].nunique()}
        return _empty("inconclusive", why, median_rel_weight_change=d_med, **facts), groups
    pooled = pd.concat(fitted)
    gid = np.repeat(np.arange(len(fitted)), [len(g) for g in fitted])
    out = _fit(c, pooled, gid, rng, n_boot, level)
    verdicts = [g["verdict"] for g in groups]
    out |= {
        "n_groups": len(fitted),
        "groups_supported": verdicts.count("supported"),
        "groups_contradicted": verdicts.count("contradicted"),
    }
    return out, groups


def evaluate(
    df: pd.DataFrame,
    *,
    lazy_threshold: float = 0.1,
    nonlazy_threshold: float = 0.3,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    by_group: bool = False,
) -> pd.DataFrame:
    """Judge claims C1..C5 on result rows (columns of :mod:`robustlab.sweep.schema`).

    Verdict ``supported`` when the ``level`` interval of the slope excludes 0 on the
    claimed side, ``contradicted`` when it excludes 0 on the other side, ``inconclusive``
    otherwise; ``regime not reached`` when the claim has rows but none in its regime
    (C1: p < N; C2: p > N; C3/C4: rel_weight_change <= ``lazy_threshold``; C5: depth 2
    and rel_weight_change >= ``nonlazy_threshold``), ``no data`` when it has no rows.

    Returns one row per claim in order C1..C5 with columns ``claim, statement, verdict,
    slope, ci_low, ci_high, ci_method, level, n, n_seeds, n_groups, groups_supported,
    groups_contradicted, x, expected_sign, median_rel_weight_change, reason``; with
    ``by_group=True`` one row per (claim, group) with the group's key columns instead
    (``n_groups`` and the group counts are then absent). ``seed`` seeds the bootstrap.
    """
    base = _base_rows(df)
    rows, group_rows = [], []
    for i, c in enumerate(CLAIMS):
        rng = np.random.default_rng([seed, i])  # per claim: independent of claim order
        out, groups = _claim(c, base, lazy_threshold, nonlazy_threshold, n_boot, level, rng)
        head = {"claim": c.id, "statement": c.statement}
        tail = {"x": c.x_label, "expected_sign": "+" if c.sign > 0 else "-", "level": level}
        rows.append(head | {"n_groups": 0, "groups_supported": 0, "groups_contradicted": 0}
                    | out | tail)  # fmt: skip
        if not groups:  # keep every claim visible in the per-group table
            groups = [{k: out[k] for k in out if k not in ("n_groups",) and "groups_" not in k}]
        group_rows += [head | g | tail for g in groups]
    cols = [
        "claim", "statement", "verdict", "slope", "ci_low", "ci_high", "ci_method", "level",
        "n", "n_seeds", "n_groups", "groups_supported", "groups_contradicted", "x",
        "expected_sign", "median_rel_weight_change", "reason",
    ]  # fmt: skip
    if not by_group:
        return pd.DataFrame(rows, columns=cols)
    keys = list(dict.fromkeys(_W_KEYS + _D_KEYS))
    gcols = cols[:2] + keys + [c for c in cols[2:] if c != "n_groups" and "groups_" not in c]
    out = pd.DataFrame(group_rows).reindex(columns=gcols)
    return out.astype({"width": "Int64", "depth": "Int64"})  # NaN-able integer keys
