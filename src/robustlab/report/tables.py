"""The claims tables of the report: verdicts with the fit control, the evidence beside each
verdict, and the per-group verdicts (columns of :data:`robustlab.claims.COLUMNS`).

Claims tables from older code may lack columns; a missing value is shown as an em dash.
"""

from __future__ import annotations

import pandas as pd

from .markup import DASH, e, interval, missing, num, table, td, verdict_cell

__all__ = ["claims_table", "details_table", "groups_table"]

_UNIT = {"log width": "per log width", "depth": "per layer"}


def _get(row: pd.Series, col: str):
    return row[col] if col in row.index else None


def _shape(v) -> str:
    if missing(v):
        return td("")
    return td("monotone") if bool(v) else td("non-monotone", "warn")


def _slope(row: pd.Series) -> str:
    if missing(_get(row, "slope")):
        return td(DASH, "num")
    level = _get(row, "level")
    level = 0.95 if missing(level) else float(level)
    unit = _UNIT.get(str(_get(row, "x")), "")
    method = _get(row, "ci_method")
    how = f"{level:.0%} {'' if missing(method) else e(method)}".strip()
    text = f"{num(_get(row, 'slope'))} {interval(_get(row, 'ci_low'), _get(row, 'ci_high'))}"
    return td(f"{e(text)}<br><small>{e(unit)}; {how}</small>", "num iv", raw=True)


def _effect(row: pd.Series) -> str:
    if missing(_get(row, "effect")):
        return td(DASH, "num")
    lo, hi = _get(row, "x_min"), _get(row, "x_max")
    span = "" if missing(lo) or missing(hi) else f"<br><small>from {num(lo)} to {num(hi)}</small>"
    lohi = interval(_get(row, "effect_low"), _get(row, "effect_high"))
    return td(e(f"{num(_get(row, 'effect'))} {lohi}") + span, "num iv", raw=True)


def _int(v) -> str:
    return td("" if missing(v) else str(int(v)), "num")


def claims_table(claims: pd.DataFrame) -> str:
    """One row per claim: verdict, slope and interval, effect, shape and the fit control."""
    head = ["claim", "statement", "verdict", "main verdict", "slope [interval]",
            "effect on P [interval]", "shape", "fit level", "runs", "excluded",
            "max train loss", "robust share", "reason"]  # fmt: skip
    rows = []
    for _, c in claims.iterrows():
        main = _get(c, "primary_verdict")
        rows.append([
            td(c["claim"]), td(_get(c, "statement"), "text"), verdict_cell(c["verdict"]),
            verdict_cell(main) if not missing(main) and main != c["verdict"] else td(""),
            _slope(c), _effect(c), _shape(_get(c, "monotone")), td(_get(c, "fit")),
            _int(_get(c, "n_runs")), _int(_get(c, "n_excluded")),
            td(num(_get(c, "train_loss_max")), "num"),
            td(num(_get(c, "robust_share"), ".2f"), "num"), td(_get(c, "reason")),
        ])  # fmt: skip
    return table(head, rows, ' id="claims"')


def details_table(claims: pd.DataFrame) -> str:
    """The evidence beside each verdict: sweeps, where P peaks against p = N (C1/C2), the
    plateau (C2/C5), the standard runs beside the linearized ones (C3/C4), y / f_0."""
    head = ["claim", "regime", "sweeps", "seeds", "groups (+/-/all)", "peak p/N",
            "P_inf", "c (gamma)", "beside: regime", "beside: slope [interval]",
            "beside: verdict", "beside: grad_lin_dev", "beside: NTK change",
            "median weight change", "y_f0_ratio"]  # fmt: skip
    rows = []
    for _, c in claims.iterrows():
        groups = "/".join(
            "" if missing(_get(c, k)) else str(int(_get(c, k)))
            for k in ("groups_supported", "groups_contradicted", "n_groups")
        )
        beside = f"{num(_get(c, 'beside_slope'))} " + interval(
            _get(c, "beside_ci_low"), _get(c, "beside_ci_high")
        )
        beside = DASH if missing(_get(c, "beside_slope")) else beside
        gamma = _get(c, "plateau_gamma")
        plateau = num(_get(c, "plateau_c")) + ("" if missing(gamma) else f" ({num(gamma)})")
        rows.append([
            td(c["claim"]), td(_get(c, "regime")), td(_get(c, "sweeps")),
            _int(_get(c, "n_seeds")), td(groups, "num"),
            td(num(_get(c, "peak_p_over_n")), "num"), td(num(_get(c, "p_inf")), "num"),
            td(plateau, "num"), td(_get(c, "beside_regime")),
            td(beside, "num iv"), verdict_cell(_get(c, "beside_verdict")),
            td(num(_get(c, "beside_grad_lin_dev")), "num"),
            td(num(_get(c, "beside_ntk_change")), "num"),
            td(num(_get(c, "median_rel_weight_change")), "num"),
            td(num(_get(c, "y_f0_ratio")), "num"),
        ])  # fmt: skip
    return table(head, rows, ' id="claim-details"')


def groups_table(groups: pd.DataFrame) -> str:
    """One row per (claim, group): a group is one sweep, config, data set, init, regime and
    value of the other axis, i.e. one curve the claim's slope pools by fixed effects."""
    groups = groups.loc[:, ~groups.columns.duplicated()]
    head = ["claim", "sweep", "config", "dataset", "init", "regime", "fixed", "verdict",
            "slope [interval]", "effect [interval]", "shape", "n", "max train loss",
            "reason"]  # fmt: skip
    rows = []
    for _, g in groups.iterrows():
        fixed = [f"{k}={int(g[k])}" for k in ("width", "depth") if k in g and not missing(g[k])]
        sweep_hash = _get(g, "sweep_hash")
        rows.append([
            td(g["claim"]), td(_get(g, "sweep")),
            td("" if missing(sweep_hash) else str(sweep_hash)[:8]), td(_get(g, "dataset")),
            td(_get(g, "init")), td(_get(g, "regime")), td(", ".join(fixed)),
            verdict_cell(g["verdict"]), _slope(g), _effect(g), _shape(_get(g, "monotone")),
            _int(_get(g, "n")), td(num(_get(g, "train_loss_max")), "num"),
            td(_get(g, "reason")),
        ])  # fmt: skip
    return table(head, rows, ' id="groups"')
