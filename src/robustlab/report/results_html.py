"""The results tables of the report: :func:`~robustlab.report.results.p_by_axes` laid out.

One table per experiment (a sweep, or sweeps along N or d: :func:`~robustlab.report.results.
experiments`): a row per regime, init and value of the swept axes, a
column per stage measured (P as mean +- standard error over seeds; the t interval in the
cell's tooltip), then the worst case and worst / P where a worst case was measured. What is
the same on every row of a sweep is said once above its table, not repeated in a column.
"""

from __future__ import annotations

import pandas as pd

from .markup import e, missing, table, td
from .results import AXES, STAGES, swept

__all__ = ["results_tables"]

_STAGE = {"init": "at init", "checkpoint": "at checkpoint", "final": "after training"}
_HEAD = {"width": "width m", "depth": "depth L", "n_train": "N (train)", "in_dim": "d (input)",
         "alpha": "alpha", "eps": "eps", "region": "region", "method": "method",
         "dataset": "data", "regime": "regime", "init": "init"}  # fmt: skip
_DESCRIBE = ("dataset", "regime", "init", *AXES, "eps", "region", "method")


def _value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _stat(row: pd.Series, prefix: str, level: float, most: int) -> str:
    """``mean +- se`` in a number cell (``(n=S)`` when fewer than ``most`` seeds), the t
    interval as its tooltip; empty when missing."""
    mean = row.get(f"{prefix}_mean")
    if missing(mean):
        return td("")
    se, lo, hi = (row.get(f"{prefix}_{k}") for k in ("stderr", "low", "high"))
    seeds = int(row["seeds"])
    text = f"{mean:.3g}" + ("" if missing(se) else f" \u00b1 {se:.2g}")
    text += f" (n={seeds})" if seeds < most else ""
    tip = f"mean over {seeds} seed{'s' * (seeds != 1)}"
    if not (missing(lo) or missing(hi)):
        tip += f"; {level:.0%} t interval [{lo:.3g}, {hi:.3g}]"
    return f'<td class="num" title="{e(tip)}">{e(text)}</td>'


def _one_sweep(g: pd.DataFrame, table_id: str, level: float) -> str:
    """The table of one experiment, with the settings its rows share above it."""
    average = g[g["method"] != "pgd"] if (g["method"] != "pgd").any() else g
    varies = [c for c in _DESCRIBE if c in swept(average, _DESCRIBE)]
    fixed = [f"{_HEAD[c]} = {_value(average[c].iloc[0])}" for c in _DESCRIBE
             if c not in varies and not missing(average[c].iloc[0])]  # fmt: skip
    most = int(g["seeds"].max())
    fixed.append(f"seeds = {most}" + ("" if (g["seeds"] == most).all() else " (fewer: n=)"))
    sweeps = sorted({s for v in g["sweeps"] for s in str(v).split(" + ")})
    if len(sweeps) > 1:
        fixed.append(f"sweeps {', '.join(sweeps)}")
    params = g["n_params"].nunique() > 1
    stages = [s for s in STAGES if (g["stage"] == s).any()]
    worst = [s for s in stages if g.loc[g["stage"] == s, "worst_mean"].notna().any()]
    index = list(varies)
    head = [_HEAD[c] for c in index]
    head += ["p (params)", "p / N"] if params else []
    head += [f"P {_STAGE[s]}" for s in stages]
    head += [h for s in worst for h in (f"worst {_STAGE[s]}", f"worst / P {_STAGE[s]}")]
    rows = []
    for _, r in g.groupby(index, sort=False, dropna=False) if index else [((), g)]:
        first = r.iloc[0]
        at = {s: r[r["stage"] == s].iloc[0] for s in stages if (r["stage"] == s).any()}
        cells = [td(_value(first[c]), "num" if c in AXES else "") for c in index]
        if params:
            cells += [td(_value(int(first["n_params"])), "num"),
                      td(f"{first['p_over_n']:.3g}", "num")]  # fmt: skip
        cells += [_stat(at[s], "p", level, most) if s in at else td("") for s in stages]
        for s in worst:
            cells += [
                _stat(at[s], k, level, most) if s in at else td("") for k in ("worst", "ratio")
            ]
        rows.append(cells)
    return f'<p class="fixed">{e("; ".join(fixed))}</p>' + table(
        head, rows, f' id="{table_id}" class="p-table"'
    )


def results_tables(frame: pd.DataFrame, *, level: float = 0.95) -> str:
    """HTML of :func:`~robustlab.report.results.p_by_axes` rows (made at ``level``): one
    table per experiment, ids ``p-table-1``, ``p-table-2``, ... in the frame's order."""
    if frame.empty:
        return "<p>No P was measured on runs that finished.</p>"
    parts = []
    groups = frame.groupby(["experiment", "experiment_id"], sort=False, dropna=False)
    for i, ((name, _), g) in enumerate(groups, 1):
        parts.append(f"<h3>{e(name)}</h3>{_one_sweep(g, f'p-table-{i}', level)}")
    note = (
        "P (lower = more robust) as the mean over seeds \u00b1 its standard error "
        f"(sd / sqrt(S)); a cell's tooltip gives the {level:.0%} t interval over the S seeds."
    )
    if frame["worst_mean"].notna().any():
        note += " worst: the PGD worst case over the same region; worst / P: per run, then "
        note += "over seeds."
    return f"<p class=note>{e(note)}</p>" + "".join(parts)
