"""The report's findings: one sentence per verdict of Protocol 2, written from the assessment.

:func:`findings` turns an :class:`~robustlab.claims.Assessment` into groups of sentences: the
width claims per data set and label model (C1, C2, C12-peak), which label model shows a peak,
the depth claims per data set and label scale (C3, C4-he, C4-ntk), the crossover ratio r* per
data set and initialization, and C5 as Protocol 1 judged it. Every number in a sentence is
formatted from the assessment's frames (``questions``, ``peaks``, ``crossovers``,
``depth_slopes``, ``table``) by :func:`signed` or :func:`plain`, and every verdict is the
table's own word; the only thing read from the result rows is the swept depths, which the
depth rows of the table do not carry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from ..claims import CLAIMS, Assessment
from ..claims._qbase import _rows
from ..claims.questions import DEPTH_CLAIMS

__all__ = ["INIT_WORDS", "LABEL_WORDS", "Finding", "findings", "plain", "preamble", "signed"]

LABEL_WORDS = {"flip": "flipped labels", "gauss": "Gaussian-noise labels",
               "clean": "clean labels"}  # fmt: skip
INIT_WORDS = {"lecun": "LeCun", "he": "He", "ntk": "NTK"}
# what each claim of Protocol 2 says, short; C5 keeps the catalog's statement
STATEMENTS = {
    "C1": "below p = N, wider is less robust",
    "C2": "above p = N, wider is more robust",
    "C12-peak": "P peaks in the interior near p = N, at a width growing in proportion to N",
    "C3": "LeCun init, lazy training: deeper is more robust",
    "C4-he": "He init, lazy training: deeper is less robust",
    "C4-ntk": "NTK init, lazy training: deeper is less robust",
}
RATIO = "||y||/||f0(X)||"


def _ok(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _g3(v: float, sign: str = "") -> str:
    """3 significant digits, trailing zeros kept (0.930), no bare trailing point (100)."""
    return format(v, f"{sign}#.3g").rstrip(".").replace(".e", "e")


def signed(v) -> str:
    """A slope or log-effect as the findings write it: signed, 3 significant digits."""
    return _g3(v, "+") if _ok(v) else "n/a"


def plain(v) -> str:
    """A ratio, factor or exponent as the findings write it: 3 significant digits."""
    return _g3(v) if _ok(v) else "n/a"


def _iv(lo, hi, fmt: Callable = signed) -> str:
    return f"[{fmt(lo)}, {fmt(hi)}]" if _ok(lo) and _ok(hi) else "(no interval)"


def _text(v) -> str:
    return v if isinstance(v, str) else ""


@dataclass(frozen=True)
class Finding:
    """One sentence: what it is about (``head``), the table's verdict (None for a
    measurement such as r*), and what the data show (``body``)."""

    head: str
    verdict: str | None
    body: str

    @property
    def text(self) -> str:
        return ": ".join(p for p in (self.head, self.verdict, self.body) if p)


def preamble(a: Assessment) -> str:
    """The line above the findings: what they are, and Holm's family size."""
    family = int(a.questions["p_holm"].notna().sum()) if "p_holm" in a.questions else 0
    level = f"{a.questions_protocol.level:.0%}"
    return (
        "Empirical trends in the stated settings (data set, label model or label scale, swept "
        f"range, seeds), judged by Protocol 2; intervals are {level} t intervals over seeds. "
        '"contradicted here" is a verdict on a trend in one setting, not on the paper. '
        f"Holm's adjustment runs over the family of {family} directional verdicts "
        "(C1, C2, C3, C4-*)."
    )


def _tail(r: pd.Series) -> str:
    """Fragility, the data sets that agree, and Protocol 1's verdict on the same rows."""
    out = ""
    if _text(r.get("reversed_by")):
        out += f" The slope's sign is reversed by: {r['reversed_by']}."
    if _text(r.get("holds_on")):
        out += f" Supported on {r['holds_on']} data sets."
    if _text(r.get("control")):
        out += f" Protocol 1 (matched fit) said: {r['control']}."
    return out


def _slope_text(r: pd.Series, unit: str, over: str, flat_margin: float) -> str:
    """``log P changes by SLOPE [interval] UNIT over OVER (seeds, Holm p; effect)``."""
    if not _ok(r.get("slope")):
        return f"no slope could be fitted ({int(r.get('n_seeds', 0))} seeds)"
    holm = f", Holm-adjusted p {r['p_holm']:.2g}" if _ok(r.get("p_holm")) else ""
    text = (
        f"log P changes by {signed(r['slope'])} {_iv(r['ci_low'], r['ci_high'])} {unit} over "
        f"{over} ({int(r['n_seeds'])} seeds{holm}; P x{plain(r['effect'])} across that range)"
    )
    if r["verdict"] == "flat":
        text += f", within {math.expm1(flat_margin):.0%} by two one-sided tests"
    return text


def _width(r: pd.Series, a: Assessment) -> Finding:
    head = (
        f"{r['claim']} ({STATEMENTS[r['claim']]}), {r['dataset']} data, "
        f"{LABEL_WORDS.get(r['labels'], r['labels'])}"
    )
    if r["claim"] == "C12-peak":
        return Finding(head, r["verdict"], _peak(r, a))
    over = f"p/N {r['p_over_n']}"
    body = _slope_text(r, "per unit of log width", over, a.questions_protocol.flat_margin)
    body += f"; training loss at most {plain(r['train_loss_max'])}."
    return Finding(head, r["verdict"], body + _tail(r))


def _peak(r: pd.Series, a: Assessment) -> str:
    """Where P peaks per N (mean over seeds of the per-seed peak p/N, ``a.peaks``) and the
    exponent of the peak width in N with the protocol's band for proportional growth."""
    p = a.peaks[(a.peaks["dataset"] == r["dataset"]) & (a.peaks["labels"] == r["labels"])]
    where = p.groupby("n_train")["peak_p_over_n"].mean().dropna()
    qp = a.questions_protocol
    band = f"{1 - qp.exponent_margin:g}-{1 + qp.exponent_margin:g}"
    text = ""
    if len(where):
        ns = ", ".join(f"{int(n)}" for n in where.index)
        text = f"P peaks at p/N {', '.join(plain(v) for v in where)} for N = {ns}; "
    share = r.get("peak_share_min")
    if _ok(share):
        text += f"an interior peak in at least {share:.0%} of the seeds at every N"
        # the rule that decides when a peak is missing (docs/claims.md, C12-peak)
        text += " (absent in more than half at some N: contradicted); " if share < 0.5 else "; "
    if not _ok(r.get("exponent")):
        return text + "no exponent of the peak width in N could be estimated."
    return text + (
        f"the peak width grows as N^{plain(r['exponent'])} "
        f"{_iv(r['exponent_low'], r['exponent_high'], plain)} (proportional growth is 1; "
        f"supported needs the {qp.peak_level:.0%} interval within {band})."
    )


def _peak_models(q: pd.DataFrame, a: Assessment, dataset: str) -> Finding | None:
    """Which label model shows an interior peak on ``dataset`` (C12-peak's share of seeds
    with one, against the protocol's required share)."""
    rows = q[(q["claim"] == "C12-peak") & (q["dataset"] == dataset)]
    if rows.empty:
        return None
    need = a.questions_protocol.peak_share
    parts = []
    for _, r in rows.iterrows():
        share = r.get("peak_share_min")
        shows = "shows" if _ok(share) and share >= need else "does not show"
        seen = f"{share:.0%}" if _ok(share) else "n/a"
        parts.append(
            f"under {LABEL_WORDS.get(r['labels'], r['labels'])} P {shows} an interior peak "
            f"(in at least {seen} of the seeds at every N, {need:.0%} required; C12-peak "
            f"{r['verdict']})"
        )
    return Finding(f"Which label model shows a peak, {dataset} data", None, "; ".join(parts) + ".")


def _depths(df: pd.DataFrame | None) -> dict:
    """(dataset, init, label scale) -> (shallowest, deepest) depth of the linearized runs."""
    if df is None or df.empty:
        return {}
    d = _rows(df)
    d = d[d["regime"] == "linearized"]
    g = d.groupby(["dataset", "init", "label_scale"])["depth"]
    lo, hi = g.min(), g.max()
    return {k: (int(lo[k]), int(hi[k])) for k in lo.index}


def _depth(r: pd.Series, a: Assessment, depths: dict) -> Finding:
    init = DEPTH_CLAIMS[r["claim"]][0]
    span = depths.get((r["dataset"], init, r["label_scale"]))
    over = f"depths {span[0]}-{span[1]}" if span else "the swept depths"
    first = f"{span[0]} -> {span[0] + 1}" if span else "(shallowest to next)"
    head = (
        f"{r['claim']} ({STATEMENTS[r['claim']]}), {r['dataset']} data, label scale "
        f"c = {r['label_scale']:g} ({RATIO} = {plain(r['y_f0_ratio'])})"
    )
    body = _slope_text(r, "per layer", over, a.questions_protocol.flat_margin)
    if _text(r.get("shape")):
        body += (
            f"; the first step {first} changes log P by {signed(r['step_first'])} "
            f"{_iv(r['step_first_low'], r['step_first_high'])}, the tail by "
            f"{signed(r['tail_slope'])} {_iv(r['tail_low'], r['tail_high'])} per layer; "
            f"log P is closer to {r['shape']} in depth ({r['shape_seeds']} seeds)"
        )
    return Finding(head, r["verdict"], body + "." + _tail(r))


def _direction(s: pd.DataFrame) -> str:
    """How depth acts on each side of r*, or throughout, from the mean finite slope per
    label scale (``a.depth_slopes`` of one data set and init)."""
    means = s.groupby("label_scale")["finite_slope"].mean().dropna().sort_index()
    if means.empty:
        return ""
    word = {True: "less robust (P grows with depth)", False: "more robust (P falls with depth)"}
    lo, hi = means.iloc[0] > 0, means.iloc[-1] > 0
    if (means > 0).all() or (means < 0).all():
        where = "at every label scale" if len(means) > 1 else "there"
        return f"; deeper is {word[lo]} {where}"
    if lo != hi:
        return f"; deeper is {word[lo]} below r* and {word[hi]} above it"
    return ""


def _crossover(r: pd.Series, a: Assessment) -> Finding:
    """r* from the finite runs and from the lazy limit (``a.crossovers``), how depth acts on
    each side (``a.depth_slopes``), or the swept range where the sign does not change."""
    s = a.depth_slopes[(a.depth_slopes["dataset"] == r["dataset"])
                       & (a.depth_slopes["init"] == r["init"])]  # fmt: skip
    n = int(s["seed"].nunique())

    def seeds(source: str) -> str:
        k = r[f"{source}_seeds"]
        return f"{int(k) if _ok(k) else 0} of {n} seeds"

    def at(source: str) -> str:
        lo, hi = r[f"{source}_low"], r[f"{source}_high"]
        return f"r* = {plain(r[f'{source}_r'])} {_iv(lo, hi, plain)}"

    limit = ""
    if not s["limit_slope"].notna().any():
        limit = "; no lazy limit was computed"
    elif _ok(r["limit_r"]):
        limit = f" and at {at('limit')} in the exact lazy limit ({seeds('limit')})"
    if _ok(r["finite_r"]):
        body = (
            f"d log P / d depth changes sign at {RATIO} = {at('finite')} in the finite "
            f"linearized networks ({seeds('finite')} change sign within the swept range)"
        )
        if not limit:
            limit = f"; the exact lazy limit does not change sign in the range ({seeds('limit')})"
    else:
        ratios = s["y_f0_ratio"]
        body = (
            f"no r* in the finite linearized networks: d log P / d depth changes sign within "
            f"the swept range ({RATIO} {plain(ratios.min())}-{plain(ratios.max())}) in "
            f"{seeds('finite')}"
        )
        if not limit:
            limit = f", nor in the exact lazy limit ({seeds('limit')})"
        elif limit.startswith(" and"):
            limit = f"; the exact lazy limit changes sign at {at('limit')} ({seeds('limit')})"
    if s["label_scale"].nunique() < 2:  # r* needs two label scales or more
        body = f"one label scale only ({RATIO} {plain(s['y_f0_ratio'].median())}): no r*"
        limit = ""
    head = f"{INIT_WORDS.get(r['init'], r['init'])} init, {r['dataset']} data"
    return Finding(head, None, body + limit + _direction(s) + ".")


def _c5(a: Assessment) -> list[Finding]:
    out = []
    statements = {c.id: c.statement for c in CLAIMS}
    table = a.table
    for _, r in table[table["protocol"] == 1].iterrows():
        head = f"{r['claim']} ({statements.get(r['claim'], '')}), Protocol 1 (matched fit)"
        body = _text(r.get("reason"))
        if _ok(r.get("slope")):
            body = (
                f"the slope of log P on log width is {signed(r['slope'])} "
                f"{_iv(r['ci_low'], r['ci_high'])} ({int(r['n_seeds'])} seeds)"
                + (f"; {body}" if body else "")
            )
        out.append(Finding(head, r["verdict"], (body + ".") if body else ""))
    return out


def findings(a: Assessment, df: pd.DataFrame | None = None) -> list[tuple[str, list[Finding]]]:
    """Groups of findings, in the report's order: (group title, its sentences). Empty when
    the assessment has no Protocol 2 rows. ``df``: the rows judged, for the swept depths."""
    q = a.questions
    if q.empty:
        return []
    groups = []
    width = q[q["labels"].notna()] if "labels" in q else q.iloc[0:0]
    for (dataset, labels), g in width.groupby(["dataset", "labels"], sort=True):
        title = f"Width, {dataset} data, {LABEL_WORDS.get(labels, labels)}"
        groups.append((title, [_width(r, a) for _, r in g.iterrows()]))
    for dataset in sorted(width["dataset"].unique()):
        peak = _peak_models(q, a, dataset)
        if peak is not None:
            groups.append((f"Peak, {dataset} data", [peak]))
    depth = q[q["claim"].isin(list(DEPTH_CLAIMS))]
    spans = _depths(df) if len(depth) else {}
    for dataset, g in depth.groupby("dataset", sort=True):
        order = g.assign(_o=g["claim"].map(list(DEPTH_CLAIMS).index))
        order = order.sort_values(["_o", "label_scale"])
        sentences = [_depth(r, a, spans) for _, r in order.iterrows()]
        groups.append((f"Depth, {dataset} data", sentences))
    for dataset, g in a.crossovers.groupby("dataset", sort=True) if len(a.crossovers) else ():
        title = f"Crossover ratio r*, {dataset} data"
        groups.append((title, [_crossover(r, a) for _, r in g.iterrows()]))
    c5 = _c5(a)
    if c5:
        groups.append(("Judged by Protocol 1 only", c5))
    return groups
