"""One assessment of the claims: judged once, rendered by every view.

:func:`assess` judges every claim of :data:`robustlab.claims.CLAIMS` on result rows under
one :class:`~robustlab.claims.Protocol` and returns a frozen :class:`Assessment`: the
verdicts with their evidence, the per-group verdicts, the sensitivity variants and the
verdicts across the laziness-threshold grid. ``reproduce``, the HTML report and the CLI
render it and never judge again.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ._judge import judge_claims
from ._sensitivity import sensitivity as variants_of
from .protocol import Protocol

__all__ = ["Assessment", "assess", "evaluate"]


@dataclass(frozen=True)
class Assessment:
    """The claims judged on one set of rows under one protocol.

    Attributes:
        protocol: the :class:`Protocol` that produced everything below.
        claims: one row per claim (:data:`robustlab.claims.COLUMNS`): verdict, slope and
            its interval, effect, fit control, evidence beside the verdict, robust share.
        groups: one row per (claim, group): the same facts within each group.
        sensitivity: every claim re-judged on every variant
            (:func:`robustlab.claims.sensitivity`).
        thresholds: the main verdicts (before the sensitivity check) at every pair of
            laziness thresholds of ``protocol.threshold_pairs()``; long table: claim,
            verdict, slope, lazy_threshold, nonlazy_threshold.
    """

    protocol: Protocol
    claims: pd.DataFrame
    groups: pd.DataFrame
    sensitivity: pd.DataFrame
    thresholds: pd.DataFrame


def _threshold_grid(df: pd.DataFrame, protocol: Protocol, main: pd.DataFrame) -> pd.DataFrame:
    """Main verdicts at each threshold pair; the protocol's own pair is ``main`` itself."""
    out = []
    for lazy, nonlazy in protocol.threshold_pairs():
        if (lazy, nonlazy) == (protocol.lazy_threshold, protocol.nonlazy_threshold):
            c = main.assign(verdict=main["primary_verdict"])
        else:
            c, _ = judge_claims(df, protocol.at_thresholds(lazy, nonlazy))
        out.append(c[["claim", "verdict", "slope"]].assign(
            lazy_threshold=lazy, nonlazy_threshold=nonlazy))  # fmt: skip
    return pd.concat(out, ignore_index=True)


def assess(rows: pd.DataFrame, protocol: Protocol | None = None) -> Assessment:
    """Judge the claims on result rows (the columns of :mod:`robustlab.sweep.schema`,
    e.g. ``rl.sweep.load(store)``) under ``protocol`` (default :class:`Protocol`).

    The sensitivity variants are computed once and serve the fragile check; the threshold
    grid re-judges the main verdicts at the other laziness thresholds.
    """
    protocol = protocol or Protocol()
    variants = variants_of(rows, protocol)
    claims, groups = judge_claims(rows, protocol, variants)
    grid = _threshold_grid(rows, protocol, claims)
    return Assessment(protocol, claims, groups, variants, grid)


def evaluate(
    df: pd.DataFrame,
    protocol: Protocol | None = None,
    *,
    sensitivity: bool = True,
    by_group: bool = False,
) -> pd.DataFrame:
    """The claims table alone (:attr:`Assessment.claims`), or with ``by_group`` the
    per-group table; ``sensitivity=False`` skips the variants (no ``fragile`` mark, no
    ``robust_share``). Use :func:`assess` for everything at once."""
    protocol = protocol or Protocol()
    variants = variants_of(df, protocol) if sensitivity and not by_group else None
    claims, groups = judge_claims(df, protocol, variants)
    return groups if by_group else claims
