"""One assessment of the claims: judged once, rendered by every view.

:func:`assess` judges the rows twice, once per protocol of ``docs/claims.md``, and returns
a frozen :class:`Assessment`:

- Protocol 2 (:mod:`robustlab.claims.questions`, the verdicts): the paper's questions as
  they are: C1, C2 and C12-peak per data set and label model, C3 / C4-he / C4-ntk per data
  set and label scale, Holm's adjustment, flat vs inconclusive, fragility by meaningful
  factors, the crossover ratios r*, the per-seed peaks and depth slopes behind the figures;
- Protocol 1 (:mod:`._judge`, the control): one verdict per claim at a matched level of
  fit, with its per-group verdicts, sensitivity variants and laziness-threshold grid; it
  also judges C5, which Protocol 2 leaves as it was.

``reproduce``, the HTML report and the CLI render it and never judge again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .._frames import with_defaults
from ._judge import judge_claims
from ._qbase import label_models
from ._sensitivity import sensitivity as variants_of
from .catalog import CLAIMS
from .protocol import Protocol
from .questions import (
    DEPTH_CLAIMS,
    QuestionsProtocol,
    crossovers,
    depth_slopes,
    peaks,
    questions,
)
from .questions import variants as question_variants

__all__ = ["Assessment", "assess", "evaluate"]

CLAIM_IDS = tuple(c.id for c in CLAIMS)
QUESTION_CLAIMS = ("C1", "C2", "C12-peak", *DEPTH_CLAIMS)  # what Protocol 2 asks


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
        questions: Protocol 2's table (:func:`~robustlab.claims.questions.questions`), one
            row per claim and data set and label model or label scale, plus the columns
            ``holds_on`` ("k of n data sets" where the claim's verdict is supported, per
            label model or scale) and ``control`` (Protocol 1's verdict of the claim on the
            same rows, from ``claims``); ``attrs["family"]`` is the size of Holm's family.
        crossovers: r* per data set and initialization, finite runs and lazy limit.
        peaks: the per-seed peaks behind C12-peak.
        depth_slopes: the per-seed depth slopes behind ``crossovers``.
        variants: every Protocol 2 row re-judged under each fragility factor.
        questions_protocol: the :class:`QuestionsProtocol` of the four above.

    Protocol 1's frames (``claims`` ... ``thresholds``) keep their meaning as the control.
    """

    protocol: Protocol
    claims: pd.DataFrame
    groups: pd.DataFrame
    sensitivity: pd.DataFrame
    thresholds: pd.DataFrame
    questions: pd.DataFrame = field(default_factory=pd.DataFrame)
    crossovers: pd.DataFrame = field(default_factory=pd.DataFrame)
    peaks: pd.DataFrame = field(default_factory=pd.DataFrame)
    depth_slopes: pd.DataFrame = field(default_factory=pd.DataFrame)
    variants: pd.DataFrame = field(default_factory=pd.DataFrame)
    questions_protocol: QuestionsProtocol = field(default_factory=QuestionsProtocol)

    @property
    def table(self) -> pd.DataFrame:
        """The claims table ``reproduce`` prints and writes: Protocol 2's rows
        (:attr:`questions`), then Protocol 1's rows of the claims Protocol 2 does not ask
        (C5), with the column ``protocol`` (2 or 1). Where Protocol 2 judged nothing, the
        Protocol 1 table (:attr:`claims`)."""
        if self.questions.empty:
            return self.claims.assign(protocol=1)
        asked = set(self.questions["claim"]) | set(QUESTION_CLAIMS)
        rest = self.claims[~self.claims["claim"].isin(asked)]
        keep = [c for c in rest.columns if c in self.questions.columns or c == "reason"]
        return pd.concat(
            [self.questions.assign(protocol=2), rest[keep].assign(protocol=1)], ignore_index=True
        )


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


def _holds_on(table: pd.DataFrame) -> list[str]:
    """Per row: "k of n data sets", k where the same claim (at the same label model or
    label scale) is supported, n where it was judged; "" for a single data set."""
    keys = [f"{c}|{m}|{s}" for c, m, s in table[["claim", "labels", "label_scale"]].to_numpy()]
    judged = table.groupby(keys)["dataset"].transform("nunique")
    held = (table["verdict"] == "supported").groupby(keys).transform("sum")
    return [f"{int(k)} of {int(n)}" if n > 1 else "" for k, n in zip(held, judged, strict=True)]


def _control(rows: pd.DataFrame, table: pd.DataFrame, protocol: Protocol) -> list[str]:
    """Per Protocol 2 row: Protocol 1's main verdict (matched fit, no sensitivity grid) of
    the same claim on the same rows: the row's data set and label model (width claims) or
    label scale (depth claims); "" for C12-peak, which Protocol 1 does not ask."""
    labels = pd.Series(label_models(rows["config_json"]), index=rows.index)
    scale = rows["label_scale"].fillna(1.0)  # rows from with_defaults: the column is there
    out, cache = [], {}
    for claim, dataset, model, c in table[["claim", "dataset", "labels", "label_scale"]].to_numpy():
        if claim not in CLAIM_IDS:
            out.append("")
            continue
        width = isinstance(model, str)
        key = (dataset, model if width else float(c))
        if key not in cache:
            keep = (rows["dataset"] == dataset) & ((labels == model) if width else (scale == c))
            verdicts, _ = judge_claims(rows[keep], protocol)
            cache[key] = dict(zip(verdicts["claim"], verdicts["verdict"], strict=True))
        out.append(cache[key].get(claim, ""))
    return out


def assess(
    rows: pd.DataFrame,
    protocol: Protocol | None = None,
    questions_protocol: QuestionsProtocol | None = None,
) -> Assessment:
    """Judge the claims on result rows (the columns of :mod:`robustlab.sweep.schema`,
    e.g. ``rl.sweep.load(store)``) under Protocol 2 (``questions_protocol``, default
    :class:`QuestionsProtocol`) and, as the control, Protocol 1 (``protocol``, default
    :class:`Protocol`).

    The sensitivity variants of each protocol are computed once and serve its fragile
    check; Protocol 1's threshold grid re-judges its main verdicts at the other laziness
    thresholds.
    """
    protocol = protocol or Protocol()
    qp = questions_protocol or QuestionsProtocol()
    variants = variants_of(rows, protocol)
    claims, groups = judge_claims(rows, protocol, variants)
    grid = _threshold_grid(rows, protocol, claims)
    rows = with_defaults(rows)  # Protocol 2 reads columns that rows from elsewhere may lack
    factors = question_variants(rows, qp)  # judged once: the fragile check and the frame
    table = questions(rows, qp, judged_variants=factors)
    if len(table):
        table = table.assign(holds_on=_holds_on(table), control=_control(rows, table, protocol))
    return Assessment(
        protocol, claims, groups, variants, grid,
        questions=table, crossovers=crossovers(rows, qp), peaks=peaks(rows),
        depth_slopes=depth_slopes(rows), variants=factors,
        questions_protocol=qp,
    )  # fmt: skip


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
