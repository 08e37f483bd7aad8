"""How much a verdict hangs on choices: each claim re-judged across protocol variants.

The variants form a grid: the points P is measured on (test, train), the level of fit
(the target training loss, or the looser ``checkpoint_loss`` when runs recorded it), the
swept range (all of it, without its smallest, without its largest value) and the seeds
(all of them, and each one left out: a seed draws the data, so this is the data draws).
At the claim's own level of fit the matched-fit rule applies as in the main protocol; at
the other level every run that has rows there counts. A variant without rows (no
train-point or checkpoint measurements) is skipped. The share of
variants whose verdict equals the main protocol's is ``robust_share``.
"""

from __future__ import annotations

import pandas as pd

from ._judge import base_rows, judge
from .catalog import CLAIMS, Claim
from .protocol import Protocol

__all__ = ["sensitivity"]


def _bases(df: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    out = {}
    for points in ("test", "train"):
        for at in ("final", "checkpoint"):
            b = base_rows(df, at=at, points=points)
            if (b["reached_target"] > 0).any() if at == "checkpoint" else len(b):
                out[(points, at)] = b
    return out


def _claim_bases(c: Claim, bases):
    """The claim's own level keeps the matched-fit rule; at the other level the runs that
    have rows there count as they are (the point is how the verdict moves with the fit)."""
    out = {}
    for (points, at), b in bases.items():
        if at != c.fit:
            b = b[b["reached_target"] > 0] if at == "checkpoint" else b
            b = b.assign(reached_target=1.0)
        out[(points, at)] = b
    return out


def _variants(c: Claim, bases, protocol: Protocol):
    main = bases.get(("test", c.fit))
    if main is None:
        return
    _, used = judge(c, main, protocol)
    if used.empty:
        return
    lo, hi = used[c.axis].min(), used[c.axis].max()
    seeds = sorted(used["seed"].unique())
    for (points, at), base in bases.items():
        for rng, keep in (("full", None), ("without lowest", lo), ("without highest", hi)):
            b = base if keep is None else base[base[c.axis] != keep]
            drops = [None] + (seeds if len(seeds) >= 3 else [])
            for s in drops:
                bs = b if s is None else b[b["seed"] != s]
                out, _ = judge(c, bs, protocol)
                yield {
                    "claim": c.id, "points": points, "fit": at, "range": rng,
                    "seeds": "all" if s is None else f"without {s}", "verdict": out["verdict"],
                    "slope": out.get("slope", float("nan")),
                    "ci_low": out.get("ci_low", float("nan")),
                    "ci_high": out.get("ci_high", float("nan")),
                }  # fmt: skip


def sensitivity(
    df: pd.DataFrame, protocol: Protocol | None = None, *, claims: tuple[Claim, ...] = CLAIMS
) -> pd.DataFrame:
    """Every claim re-judged on every variant under ``protocol`` (default
    :class:`Protocol`): one row per (claim, points, fit, range, seeds) with its verdict,
    slope and interval."""
    protocol = protocol or Protocol()
    bases = _bases(df)
    rows = [r for c in claims for r in _variants(c, _claim_bases(c, bases), protocol)]
    cols = ["claim", "points", "fit", "range", "seeds", "verdict", "slope", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=cols)
