"""What the ``robustlab`` command prints: result rows as a table, CSV or JSON on stdout,
summary lines, and progress on stderr (only on a terminal, never with --quiet, so stdout and
redirected output stay clean). The library never prints; this module does, for the CLI."""

from __future__ import annotations

import json
import math
import sys
from contextlib import contextmanager

__all__ = [
    "FORMATS",
    "advance",
    "claims_table",
    "emit",
    "progress_bar",
    "questions_lines",
    "reproduce_lines",
    "status",
    "summary_line",
    "sweep_progress",
    "tracking_status",
]

FORMATS = ["table", "csv", "json"]  # what emit prints


def emit(rows: list[dict], fmt: str) -> None:
    """Print ``rows`` in ``fmt`` (one of :data:`FORMATS`), columns in the first row's order."""
    import pandas as pd

    df = pd.DataFrame(rows, columns=list(rows[0].keys()))
    if fmt == "json":
        # NaN/inf (e.g. theory columns that do not apply for k > 1) are not JSON: null
        clean = [
            {c: None if isinstance(v, float) and not math.isfinite(v) else v for c, v in r.items()}
            for r in rows
        ]
        print(json.dumps(clean, indent=2, default=float, allow_nan=False))
    elif fmt == "csv":
        print(df.to_csv(index=False), end="")
    else:
        print(df.to_string(index=False, float_format=lambda v: f"{v:.6g}"))


def progress_bar(total: int | None, desc: str, quiet: bool):
    """A tqdm bar on stderr, drawn only on a terminal and not with --quiet."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=quiet or not sys.stderr.isatty(), file=sys.stderr)


def advance(bar, done: int, total: int) -> None:
    """Move a tqdm bar to ``done`` of ``total`` (a library's ``progress(done, total)``)."""
    bar.total = total
    bar.update(done - bar.n)


@contextmanager
def status(prefix: str, quiet: bool):
    """Yield a callback that shows each step of long work (``"figure 3/9: p_by_width"``) on
    one line of stderr with the time so far, cleared at the end; like the progress bars, only
    on a terminal and not with --quiet, so stdout and redirected output stay clean."""
    import time

    show, start = not quiet and sys.stderr.isatty(), time.monotonic()

    def say(text: str) -> None:
        if show:
            sys.stderr.write(f"\r\033[K{prefix}: {text} ({time.monotonic() - start:.0f} s)")
            sys.stderr.flush()

    try:
        yield say
    finally:
        if show:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


@contextmanager
def sweep_progress(quiet: bool):
    """Yield a callback feeding a tqdm bar from the runner's Progress: cells done of all,
    the group started last of all groups, failures, ETA; shown from the sweep's start."""
    state: dict = {}

    def update(p) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = progress_bar(p.total, "cells", quiet)
        bar.n = p.done
        running = f" ({p.running} running)" if p.running > 1 else ""
        bar.set_postfix_str(
            f"group {p.started}/{p.groups}{running}, failed {p.failed}, diverged {p.diverged}",
            refresh=False,
        )
        bar.refresh()

    try:
        yield update
    finally:
        if "bar" in state:
            state["bar"].close()


def summary_line(s) -> str:
    """One line of a :class:`~robustlab.sweep.SweepSummary`, with its notes."""
    return (
        f"{s.name}: {s.total} cells, {s.skipped} already stored, ran {s.ok} ok, "
        f"{s.diverged} diverged, {s.failed} failed in {s.time_s:.1f} s -> {s.store}"
    ) + s.notes


def tracking_status(s) -> int:
    """Print where the cells were logged to MLflow; exit status 1 when the logging stopped
    (every result is in the store all the same)."""
    if s.tracking_note:
        print(s.tracking_note)
    if not s.tracking_error:
        return 0
    print(
        f"robustlab: error: MLflow logging stopped: {s.tracking_error}; every result is in "
        "the store: run the same command again to log the cells MLflow lacks",
        file=sys.stderr,
    )
    return 1


def claims_table(df) -> str:
    """The claims as an aligned table (signed, 3 significant digits)."""
    cols = ["claim", "verdict", "slope", "ci_low", "ci_high", "effect", "monotone", "n_runs",
            "n_excluded", "train_loss_max", "robust_share"]  # fmt: skip
    view = df[cols].rename(
        columns={"n_excluded": "excl", "train_loss_max": "loss_max", "robust_share": "robust"}
    )
    return view.to_string(index=False, float_format=lambda v: f"{v:+.3g}")


# Protocol 2's table as printed: the row keys, the verdict and its evidence, the control
QUESTION_COLUMNS = {"claim": "claim", "dataset": "data", "labels": "labels",
                    "label_scale": "c", "y_f0_ratio": "y/f0", "verdict": "verdict",
                    "slope": "slope", "ci_low": "ci_low", "ci_high": "ci_high",
                    "effect": "effect", "holds_on": "holds", "control": "protocol 1"}  # fmt: skip
CROSSOVER_COLUMNS = ["dataset", "init", "finite_r", "finite_low", "finite_high", "finite_seeds",
                     "limit_r", "limit_low", "limit_high", "limit_seeds"]  # fmt: skip
SHAPE_COLUMNS = {"claim": "claim", "dataset": "data", "label_scale": "c", "shape": "shape",
                 "shape_seeds": "seeds", "step_first": "2->3", "step_first_low": "low",
                 "step_first_high": "high", "tail_slope": "tail/layer", "tail_low": "low",
                 "tail_high": "high"}  # fmt: skip


def _fmt(v) -> str:
    return f"{v:+.3g}"


def questions_lines(table, crossovers) -> None:
    """Print Protocol 2's table (:attr:`~robustlab.claims.Assessment.table`): the verdicts,
    the peak rows' exponents, Holm's family, the depth shape and the crossover ratios r*."""
    q = table[table["protocol"] == 2]
    view = q[list(QUESTION_COLUMNS)].rename(columns=QUESTION_COLUMNS)
    plain = {c: (lambda v: "" if v != v else f"{v:.3g}") for c in ("c", "y/f0", "effect")}
    print(view.to_string(index=False, float_format=_fmt, na_rep="", formatters=plain))
    family = int(q["p_holm"].notna().sum())
    print(f"  Holm's adjustment over the {family} directional rows (C1, C2, C3, C4-*).")
    for _, r in q[q["claim"] == "C12-peak"].iterrows():
        print(f"  C12-peak {r['dataset']}/{r['labels']}: interior peak in >= "
              f"{r['peak_share_min']:.0%} of seeds at every N; peak p/N {r['peak_p_over_n']}; "
              f"exponent of peak width in N {r['exponent']:.3g} [{r['exponent_low']:.3g}, "
              f"{r['exponent_high']:.3g}] (proportional: 1)")  # fmt: skip
    for _, r in q[q["reversed_by"].fillna("") != ""].iterrows():
        print(f"  {r['claim']} {r['dataset']}: fragile, reversed by {r['reversed_by']}")
    depth = q[q["shape"].fillna("") != ""] if "shape" in q else q.iloc[0:0]
    if len(depth):
        print()
        print("Depth shape (log P against depth; per-step effects in log P):")
        shape = depth[list(SHAPE_COLUMNS)].rename(columns=SHAPE_COLUMNS)
        print(shape.to_string(index=False, float_format=_fmt, na_rep=""))
    if len(crossovers):
        print()
        print("Crossover ratio r* = ||y|| / ||f0(X)|| where d log P / d depth changes sign:")
        r = crossovers[CROSSOVER_COLUMNS]
        print(r.to_string(index=False, float_format=lambda v: f"{v:.3g}", na_rep="none"))
    for _, r in table[table["protocol"] == 1].iterrows():
        print(
            f"  {r['claim']} (Protocol 1): {r['verdict']}, slope {r['slope']:+.3g} "
            f"[{r['ci_low']:+.3g}, {r['ci_high']:+.3g}]"
            + (f"; {r['reason']}" if isinstance(r.get("reason"), str) and r["reason"] else "")
        )


def reproduce_lines(res) -> None:
    """Print a :class:`~robustlab.reproduce.ReproduceResult`: the sweeps' summary, the
    claims with their reasons, and the files written."""
    print(summary_line(res.summary))
    print()
    if res.presets == 2 and (res.claims["protocol"] == 2).any():
        questions_lines(res.claims, res.assessment.crossovers)
    else:
        print(claims_table(res.claims))
        for _, row in res.claims.iterrows():
            if isinstance(row["reason"], str) and row["reason"]:
                print(f"  {row['claim']}: {row['reason']}")
    print()
    print(f"claims: {res.claims_csv}")
    for label, path in (("crossovers", res.crossovers_csv), ("protocol 1 (control)",
                        res.protocol1_csv), ("sensitivity", res.sensitivity_csv)):  # fmt: skip
        if path is not None:
            print(f"{label}: {path}")
    print(f"report: {res.report}")
