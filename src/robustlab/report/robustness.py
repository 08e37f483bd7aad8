"""How much each verdict hangs on choices: the sensitivity variants and the laziness
thresholds, as report tables.

The sensitivity table (from :func:`robustlab.claims.sensitivity`) is summarized per claim
and factor: the share of the variants at each level of a factor whose verdict equals the
claim's main verdict (``primary_verdict``, before the fragile mark). The verdicts across
the laziness thresholds are the assessment's (:attr:`robustlab.claims.Assessment.thresholds`).
"""

from __future__ import annotations

import pandas as pd

from .markup import interval, num, table, td, verdict_cell

__all__ = ["sensitivity_shares", "sensitivity_table", "threshold_table", "variants_table"]
_FACTORS = ("points", "fit", "range", "seeds")


def _main_verdicts(claims: pd.DataFrame) -> pd.Series:
    main = claims["primary_verdict"] if "primary_verdict" in claims else claims["verdict"]
    return main.fillna(claims["verdict"]).set_axis(claims["claim"])


def sensitivity_shares(sens: pd.DataFrame, claims: pd.DataFrame) -> pd.DataFrame:
    """Long table: claim, factor, level, share of its variants with the main verdict, n.

    The ``seeds`` factor has two levels: ``all`` and ``one left out`` (each seed left out in
    turn); the factor ``all variants`` is the share over every variant (``robust_share``).
    """
    t = sens.assign(
        same=sens["verdict"] == sens["claim"].map(_main_verdicts(claims)),
        seeds=sens["seeds"].where(sens["seeds"] == "all", "one left out"),
    )
    rows = []
    for claim, g in t.groupby("claim", sort=False):
        rows.append((claim, "all variants", "", g["same"].mean(), len(g)))
        for f in _FACTORS:
            for level, h in g.groupby(f, sort=False):
                rows.append((claim, f, level, h["same"].mean(), len(h)))
    return pd.DataFrame(rows, columns=["claim", "factor", "level", "share", "n"])


def sensitivity_table(sens: pd.DataFrame, claims: pd.DataFrame, robust_share: float) -> str:
    """Claims x (factor, level) table of the shares; below ``robust_share``: marked."""
    shares = sensitivity_shares(sens, claims)
    if shares.empty:
        return "<p>No sensitivity variants (no claim had rows to re-judge).</p>"
    cols = list(dict.fromkeys(zip(shares["factor"], shares["level"], strict=True)))
    head = ["claim", "main verdict"] + [f"{f}: {lv}" if lv else f for f, lv in cols]
    main = _main_verdicts(claims)
    rows = []
    for claim, g in shares.groupby("claim", sort=False):
        cell = {(f, lv): (s, n) for f, lv, s, n in g[["factor", "level", "share", "n"]].itertuples(
            index=False)}  # fmt: skip
        row = [td(claim), verdict_cell(main.get(claim))]
        for key in cols:
            if key not in cell:
                row.append(td(""))
                continue
            s, n = cell[key]
            low = " low" if s < robust_share else ""
            row.append(f'<td class="num{low}">{num(s, ".2f")} <small>(n={n})</small></td>')
        rows.append(row)
    return table(head, rows, ' id="sensitivity"')


def variants_table(sens: pd.DataFrame) -> str:
    """Every variant with all seeds: its verdict, slope and interval."""
    t = sens[sens["seeds"] == "all"]
    head = ["claim", "points", "fit", "range", "verdict", "slope [interval]"]
    rows = [
        [td(r.claim), td(r.points), td(r.fit), td(r.range), verdict_cell(r.verdict),
         td(f"{num(r.slope)} {interval(r.ci_low, r.ci_high)}", "num")]
        for r in t.itertuples(index=False)
    ]  # fmt: skip
    return table(head, rows, ' id="variants"')


def threshold_table(grid: pd.DataFrame, claims: pd.DataFrame) -> str:
    """Claims x threshold pairs of verdicts; a cell that differs from the main verdict of
    ``claims`` is framed."""
    pairs = list(dict.fromkeys(zip(grid["lazy_threshold"], grid["nonlazy_threshold"],
                                   strict=True)))  # fmt: skip
    head = ["claim", "main verdict"] + [f"lazy <= {a:g}, non-lazy >= {b:g}" for a, b in pairs]
    main = _main_verdicts(claims)
    rows = []
    for claim, g in grid.groupby("claim", sort=False):
        v = {(a, b): x for a, b, x in g[["lazy_threshold", "nonlazy_threshold", "verdict"]]
             .itertuples(index=False)}  # fmt: skip
        row = [td(claim), verdict_cell(main.get(claim))]
        for p in pairs:
            changed = "changed" if v.get(p) != main.get(claim) else ""
            row.append(verdict_cell(v.get(p), changed))
        rows.append(row)
    return table(head, rows, ' id="thresholds"')
