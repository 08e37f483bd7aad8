"""Claims C1..C5 judged on tidy result rows: verdicts a reviewer can check.

The protocol, fixed before any verdict is looked at:

1. Rows: status ``ok``, measured at the end of training (``at = final``) on test points,
   of the function each regime fits (``network``; ``linearized`` for the Taylor model).
   Groups never pool experiments: they are keyed by sweep and its config hash.
2. Regime: C1/C2 by p vs N (one width sweep across p = N); C3/C4 on ``linearized`` runs,
   lazy by construction (standard runs of the same shapes are reported beside, with how far
   their input gradients are from their linearization's); C5 on mean-field runs whose
   measured weight change is at least ``nonlazy_threshold``. A measured regime is tested per
   sweep: all its runs qualify, or the verdict is ``regime not reached``. Centred
   (alpha-scaled) rows never judge an initialization claim.
3. Matched fit: a run whose training loss did not reach its ``target_loss`` is excluded and
   counted (``n_excluded``); if more than ``Protocol.max_excluded`` (a fifth) of a claim's
   runs are excluded, the verdict is ``not converged``.
4. Statistics (:mod:`robustlab.claims.stats`): per-seed fixed-effects slopes, t interval
   over seeds; ``supported`` / ``contradicted`` when the interval excludes 0 on the
   claimed / other side, else ``inconclusive``.
5. Sensitivity (:func:`robustlab.claims.sensitivity`): a directional verdict that does not
   hold in at least ``Protocol.robust_share`` (80%) of the re-judged variants is reported as
   ``fragile``.

Every number of this protocol is a field of :class:`~robustlab.claims.Protocol`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .._frames import measured, numpy_dtypes, predictors, with_defaults
from ..regime_facts import regime_facts
from .catalog import CLAIMS, Claim
from .protocol import Protocol
from .stats import CI_T_SEEDS, effect, monotone, plateau_fit, seed_slopes, t_interval

__all__ = ["COLUMNS", "base_rows", "judge", "judge_claims", "robust_share"]

_NEEDED = ("status", "stage", "p_value", "seed", "width", "depth", "init", "regime", "alpha",
           "dataset", "eps", "method", "n_params", "n_train", "rel_weight_change")  # fmt: skip
_ORDER = ("sweep", "sweep_hash", "cell", "eps", "method", "region", "model")
_KEYS = ("sweep", "sweep_hash", "dataset", "n_train", "init", "regime", "alpha", "eps", "method")

COLUMNS = [
    "claim", "statement", "verdict", "slope", "ci_low", "ci_high", "ci_method", "level", "fit",
    "effect", "effect_low", "effect_high", "monotone", "n", "n_runs", "n_seeds", "n_groups",
    "groups_supported", "groups_contradicted", "n_excluded", "train_loss_max", "robust_share",
    "primary_verdict", "x", "x_min", "x_max", "expected_sign", "median_rel_weight_change",
    "median_ntk_change", "regime", "sweeps", "peak_p_over_n", "p_inf", "plateau_c",
    "plateau_gamma", "beside_regime", "beside_slope", "beside_ci_low", "beside_ci_high",
    "beside_verdict", "beside_grad_lin_dev", "beside_ntk_change", "limit_slope", "y_f0_ratio",
    "reason",
]  # fmt: skip


def base_rows(df: pd.DataFrame, *, at: str = "final", points: str = "test") -> pd.DataFrame:
    """The rows claims are judged on: ok, measured ``at`` on ``points``, of the function
    each regime fitted, with P > 0 (log P). For ``at="checkpoint"`` the runs that never
    reached the checkpoint loss appear with their final rows and ``reached_target = 0`` (so
    the matched-fit rule excludes and counts them); sweeps that recorded no checkpoint level
    (no ``train.checkpoint_loss``) contribute their final rows. Columns rows from elsewhere
    lack default as :func:`robustlab._frames.with_defaults` says (``reached_target`` from
    ``train_loss <= target_loss``, or 1 when neither is known)."""
    df = numpy_dtypes(df).reset_index(drop=True)  # a concatenation may repeat labels
    missing = [c for c in _NEEDED if c not in df.columns]
    if missing and len(df):
        raise ValueError(f"result rows lack columns {missing} (see robustlab.sweep.schema)")
    if missing:  # an empty frame without columns: no data for any claim
        return pd.DataFrame(
            columns=list(dict.fromkeys([*_NEEDED, *_KEYS, "cell", "reached_target"]))
        )
    df = with_defaults(df)
    if df["cell"].isna().any():  # rows from elsewhere: a run is one (sweep, shape, seed)
        ident = df[["sweep", "init", "regime", "alpha", "width", "depth", "seed"]].astype(str)
        df = df.assign(cell=df["cell"].where(df["cell"].notna(), ident.agg("/".join, axis=1)))
    df = df[df["method"] != "pgd"]  # worst-case rows are reported beside P, never judged
    d = measured(df, at, points)
    if at != "final":
        fin = measured(df, "final", points)
        recorded = fin["sweep"].isin(d["sweep"]) & fin["sweep_hash"].isin(d["sweep_hash"])
        # runs that never reached this level: their final rows, to be excluded and counted
        missing = fin[recorded & ~fin["cell"].isin(d["cell"])].assign(reached_target=0.0)
        # sweeps that recorded no such level are judged at their final level
        d = pd.concat([d.assign(reached_target=1.0), missing, fin[~recorded]], ignore_index=True)
    d = predictors(d)
    # one order whatever order the cells were stored in (parallel workers finish in any
    # order), so sums over rows, and so the verdicts' last bits, do not depend on it
    order = [c for c in _ORDER if c in d.columns]
    return d.sort_values(order, kind="stable", ignore_index=True, na_position="first")


def _x(c: Claim, d: pd.DataFrame) -> np.ndarray:
    return np.log(d["width"].to_numpy(float)) if c.axis == "width" else d["depth"].to_numpy(float)


def _keys(c: Claim) -> list[str]:
    return [*_KEYS, "depth" if c.axis == "width" else "width"]


def _verdict(sign: int, lo: float, hi: float) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "inconclusive"
    if (sign > 0 and lo > 0) or (sign < 0 and hi < 0):
        return "supported"
    if (sign > 0 and hi < 0) or (sign < 0 and lo > 0):
        return "contradicted"
    return "inconclusive"


def _slope(c: Claim, d: pd.DataFrame, level: float) -> dict:
    """Slope, t interval over per-seed slopes and verdict of the rows ``d``."""
    gid = d.groupby(_keys(c), dropna=False, sort=True).ngroup().to_numpy()
    seeds, slopes = seed_slopes(_x(c, d), np.log(d["p_value"].to_numpy(float)), d["seed"], gid)
    slope, lo, hi = t_interval(slopes, level)
    reason = "" if len(slopes) >= 2 else f"{len(slopes)} seed(s) with a slope: no interval"
    return {"verdict": _verdict(c.sign, lo, hi), "slope": slope, "ci_low": lo, "ci_high": hi,
            "ci_method": CI_T_SEEDS, "n_seeds": len(seeds), "reason": reason}  # fmt: skip


def _candidates(c: Claim, base: pd.DataFrame) -> tuple[pd.DataFrame, str, str]:
    """(rows, regime used, why-not) for claim ``c``: the first regime of ``c.regimes`` with
    rows of the claim's inits; empty rows with the reason when there is none."""
    d = base if c.inits is None else base[base["init"].isin(c.inits)]
    for name in c.regimes:
        rows = d[d["regime"] == name]
        if len(rows):
            return rows, name, ""
    if c.about_init and len(d):
        centred = [r for r in d["regime"].unique() if not regime_facts(r).keeps_init_function]
        if centred:
            return (
                d.iloc[:0],
                "",
                (
                    f"refused: only {', '.join(centred)} (alpha-scaled, centred) rows; the "
                    "centred predictor alpha (f - f0) removes the initialization's function "
                    "f(x; w0), so it cannot test an initialization claim; use regime linearized"
                ),
            )
    return d.iloc[:0], "", "no rows for this claim"


def _side(c: Claim, d: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    if c.side is None:
        return d, ""
    under = c.side == "under"
    keep = d[d["n_params"] < d["n_train"]] if under else d[d["n_params"] > d["n_train"]]
    r = d.sort_values("n_params", ascending=under).iloc[0]
    p, n = int(r["n_params"]), int(r["n_train"])
    what = f"no widths with p < N (smallest p={p}, N={n})" if under else (
        f"no widths with p > N (largest p={p}, N={n})")  # fmt: skip
    return keep, what


def _measured_regime(c: Claim, d: pd.DataFrame, regime: str, protocol: Protocol):
    """Per-sweep regime test: a sweep counts only when all of its runs are in the regime."""
    lazy, nonlazy = protocol.lazy_threshold, protocol.nonlazy_threshold
    if c.two_layer:
        if not (d["depth"] == 2).any():
            return d.iloc[:0], "no two-layer (depth 2) runs"
        d = d[d["depth"] == 2]
    if c.laziness is None or regime_facts(regime).lazy_by_construction:
        return d, ""
    ok_sweeps, why = [], []
    for (sweep, _), g in d.groupby(["sweep", "sweep_hash"], sort=True):
        w = g["rel_weight_change"]
        if c.laziness == "lazy":
            k = g["ntk_change"] if "ntk_change" in g.columns else pd.Series(np.nan, g.index)
            fine = bool((w <= lazy).all() and ((k <= lazy) | k.isna()).all())
            why.append(f"{sweep or 'rows'}: max rel_weight_change {w.max():.3g}, max "
                       f"ntk_change {k.max():.3g} (lazy needs both <= {lazy:g})")  # fmt: skip
        else:
            fine = bool((w >= nonlazy).all())
            why.append(f"{sweep or 'rows'}: min rel_weight_change {w.min():.3g} "
                       f"(non-lazy needs >= {nonlazy:g} on every run)")  # fmt: skip
        if fine:
            ok_sweeps.append(sweep)
    return d[d["sweep"].isin(ok_sweeps)], "; ".join(why)


def _empty(verdict: str, reason: str, **facts) -> dict:
    return {"verdict": verdict, "reason": reason, "ci_method": CI_T_SEEDS, "n": 0} | facts


def _swept(c: Claim, d: pd.DataFrame) -> pd.DataFrame:
    """Only the groups (see :data:`_KEYS`) with at least two values of the claim's axis."""
    n = d.groupby(_keys(c), dropna=False)[c.axis].transform("nunique")
    return d[n >= 2]


def _matched(d: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """Rows of runs that reached their target loss, excluded runs and all runs."""
    runs = d.groupby("cell")["reached_target"].min()
    bad = set(runs.index[runs < 1])
    return d[~d["cell"].isin(bad)], len(bad), len(runs)


def judge(c: Claim, base: pd.DataFrame, protocol: Protocol) -> tuple[dict, pd.DataFrame]:
    """Verdict of claim ``c`` on ``base`` rows (from :func:`base_rows`) under ``protocol``,
    and its rows used.

    Returns the claim-level facts (verdict, slope, interval, ...) without the sensitivity
    check, and the rows the slope was fitted on (empty when there is no verdict).
    """
    cand, regime, why = _candidates(c, base)
    if cand.empty:
        return _empty("no data", why), cand
    med = {"median_rel_weight_change": cand["rel_weight_change"].median(), "regime": regime}
    d, why = _side(c, cand)
    if not d.empty:
        d, why = _measured_regime(c, d, regime, protocol)
    if d.empty:
        return _empty("regime not reached", why, **med), d
    d = _swept(c, d)  # sweeps that do not vary the claim's axis say nothing about it
    if d.empty:
        return _empty("inconclusive", f"no group with >= 2 distinct {c.axis}s", **med), d
    d, n_excl, n_runs = _matched(d)
    facts = med | {"n_excluded": n_excl, "n_runs": n_runs}
    if n_excl > protocol.max_excluded * n_runs:
        why = (f"{n_excl} of {n_runs} runs did not reach their target training loss "
               f"(more than {protocol.max_excluded:.0%})")  # fmt: skip
        return _empty("not converged", why, **facts), d.iloc[:0]
    if d[c.axis].nunique() < 2:
        why = f"needs >= 2 distinct {c.axis}s after filters, got {d[c.axis].nunique()}"
        return _empty("inconclusive", why, **facts), d.iloc[:0]
    out = facts | _slope(c, d, protocol.level) | {"n": len(d)}
    return out, d


def _describe(c: Claim, d: pd.DataFrame, out: dict) -> dict:
    """Effect, shape, fit control and provenance of a judged claim."""
    x = _x(c, d)
    span = float(x.max() - x.min())
    eff = effect(out["slope"], out["ci_low"], out["ci_high"], span)
    gid = d.groupby(_keys(c), dropna=False).ngroup().to_numpy()
    facts = {
        "effect": eff[0], "effect_low": min(eff[1:]), "effect_high": max(eff[1:]),
        "monotone": monotone(x, np.log(d["p_value"].to_numpy(float)), gid, out["slope"]),
        "x_min": float(d[c.axis].min()), "x_max": float(d[c.axis].max()),
        "train_loss_max": float(d["train_loss"].max()) if "train_loss" in d else math.nan,
        "sweeps": ",".join(sorted(set(d["sweep"].astype(str)))),
        "median_ntk_change": d["ntk_change"].median() if "ntk_change" in d else math.nan,
        "y_f0_ratio": d["y_f0_ratio"].median() if "y_f0_ratio" in d else math.nan,
        "n_groups": int(gid.max()) + 1,
    }  # fmt: skip
    if "p_lazy_limit" in d.columns and np.isfinite(d["p_lazy_limit"].to_numpy(float)).all():
        # the same slope of the infinite-width lazy limit on the same data and points
        _, b = seed_slopes(_x(c, d), np.log(d["p_lazy_limit"].to_numpy(float)), d["seed"], gid)
        facts["limit_slope"] = float(np.mean(b)) if len(b) else math.nan
    if c.plateau:
        facts |= dict(zip(("p_inf", "plateau_c", "plateau_gamma"),
                          plateau_fit(d["width"], d["p_value"]), strict=True))  # fmt: skip
    return facts


def _peak(c: Claim, base: pd.DataFrame, d: pd.DataFrame) -> float:
    """p / N at the width where the mean P of the claim's sweep peaks (C1/C2)."""
    if c.side is None or d.empty:
        return math.nan
    rows = base[base["sweep"].isin(d["sweep"].unique()) & base["regime"].isin(d["regime"])]
    means = rows.groupby("width").agg(p=("p_value", "mean"), n_params=("n_params", "first"),
                                      n_train=("n_train", "first"))  # fmt: skip
    top = means["p"].idxmax()
    return float(means.loc[top, "n_params"] / means.loc[top, "n_train"])


def _beside(c: Claim, base: pd.DataFrame, d: pd.DataFrame, level: float) -> dict:
    """The slope of the ``beside`` regime's runs of the same sweeps and inits (not judged)."""
    if not c.beside or d.empty:
        return {}
    rows = base[base["sweep"].isin(d["sweep"].unique()) & base["regime"].isin(c.beside)]
    rows = rows[rows["init"].isin(d["init"].unique())]
    if rows.empty or rows[c.axis].nunique() < 2:
        return {}
    s = _slope(c, rows, level)
    dev = rows["grad_lin_dev"].median() if "grad_lin_dev" in rows else math.nan
    ntk = rows["ntk_change"].median() if "ntk_change" in rows else math.nan
    return {"beside_regime": ",".join(c.beside), "beside_slope": s["slope"],
            "beside_ci_low": s["ci_low"], "beside_ci_high": s["ci_high"],
            "beside_verdict": s["verdict"], "beside_grad_lin_dev": dev,
            "beside_ntk_change": ntk}  # fmt: skip


def _group_rows(c: Claim, d: pd.DataFrame, level: float) -> list[dict]:
    out = []
    for key, g in d.groupby(_keys(c), dropna=False, sort=True):
        row = dict(zip(_keys(c), key, strict=True))
        if g[c.axis].nunique() < 2:
            why = f"needs >= 2 distinct {c.axis}s, got {g[c.axis].nunique()}"
            out.append(row | _empty("inconclusive", why, n=len(g)))
            continue
        s = _slope(c, g, level)
        out.append(row | s | {"n": len(g)} | _describe(c, g, s))
    return out


def judge_claims(
    df: pd.DataFrame, protocol: Protocol, variants: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every claim of :data:`CLAIMS` judged on result rows ``df`` under ``protocol``.

    ``variants`` is the claims' sensitivity table (:func:`robustlab.claims.sensitivity`);
    with it, a directional verdict holding in fewer than ``protocol.robust_share`` of its
    variants becomes ``fragile`` (``robust_share`` records the share). Returns the claims
    table (one row per claim, :data:`COLUMNS`) and the per-group table (one row per claim
    and group).
    """
    level = protocol.level
    bases = {at: base_rows(df, at=at) for at in {c.fit for c in CLAIMS}}
    rows, groups = [], []
    for c in CLAIMS:
        base = bases[c.fit]
        out, used = judge(c, base, protocol)
        head = {"claim": c.id, "statement": c.statement, "x": c.x_label, "level": level,
                "fit": c.fit,
                "expected_sign": "+" if c.sign > 0 else "-"}  # fmt: skip
        if len(used):
            out |= _describe(c, used, out) | _beside(c, base, used, level)
            out["peak_p_over_n"] = _peak(c, base, used)
            per = _group_rows(c, used, level)
            verdicts = [g["verdict"] for g in per]
            out |= {"groups_supported": verdicts.count("supported"),
                    "groups_contradicted": verdicts.count("contradicted")}  # fmt: skip
            groups += [head | g for g in per]
        else:
            groups.append(head | out)
        out["primary_verdict"] = out["verdict"]
        if variants is not None and out["verdict"] in ("supported", "contradicted",
                                                       "inconclusive"):  # fmt: skip
            share = robust_share(variants, c.id, out["verdict"])
            out["robust_share"] = share
            if out["verdict"] != "inconclusive" and share < protocol.robust_share:
                out["reason"] = (
                    f"{out['verdict']} on the main protocol, but in only "
                    f"{share:.0%} of sensitivity variants (< {protocol.robust_share:.0%})"
                )
                out["verdict"] = "fragile"  # fmt: skip
        rows.append(head | out)
    keys = list(dict.fromkeys([*_KEYS, "width", "depth"]))
    cols = COLUMNS[:1] + keys + [c for c in COLUMNS[2:] if c not in keys]
    per_group = pd.DataFrame(groups).reindex(columns=cols)
    out = pd.DataFrame(rows).reindex(columns=COLUMNS)
    for col in ("n", "n_runs", "n_seeds", "n_groups", "groups_supported", "groups_contradicted",
                "n_excluded"):  # fmt: skip
        out[col] = out[col].fillna(0).astype(int)
    out["reason"] = out["reason"].fillna("")
    return out, per_group


def robust_share(table: pd.DataFrame, claim_id: str, verdict: str) -> float:
    """Share of ``claim_id``'s variants in ``table`` (from
    :func:`robustlab.claims.sensitivity`) whose verdict is ``verdict``; nan when it has none."""
    v = table.loc[table["claim"] == claim_id, "verdict"]
    return float((v == verdict).mean()) if len(v) else float("nan")
