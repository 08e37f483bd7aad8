"""The report's opening when the assessment carries Protocol 2's verdicts: the findings
(:mod:`robustlab.report.finding_texts`), the headline figures
(:mod:`robustlab.report.headline_figures`) and Protocol 2's tables (the verdicts with their
evidence, the shape of log P in depth, the crossover ratios r*). Columns that do not apply to
a row stay empty. Everything is rendered from the :class:`~robustlab.claims.Assessment`."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..claims import Assessment
from ..claims.questions import QuestionsProtocol
from .finding_captions import finding_caption
from .finding_texts import LABEL_WORDS, RATIO, Finding, findings, plain, preamble, signed
from .headline_figures import finding_figures
from .markup import e, figure, missing, table, td, verdict_cell

__all__ = ["SECTIONS", "question_meanings", "questions_html"]

SECTIONS = (("findings", "Findings"), ("headline", "Headline figures"),
            ("protocol-2", "Protocol 2 tables"))  # fmt: skip
"""The sections this module writes: (anchor, title), in the page's order."""


def question_meanings(qp: QuestionsProtocol) -> dict[str, str]:
    """Protocol 2's verdict -> its meaning, with the protocol's own numbers."""
    alpha, band = f"{1 - qp.level:.0%}", f"{1 - qp.exponent_margin:g}-{1 + qp.exponent_margin:g}"
    return {
        "supported": "the two-sided t test of the slope over seeds rejects 0 after Holm's "
        f"adjustment (family-wise {alpha}) on the side the claim predicts. C12-peak: every N "
        f"shows an interior peak in at least {qp.peak_share:.0%} of the seeds and the "
        f"{qp.peak_level:.0%} interval of the peak-width exponent lies within {band}.",
        "contradicted here": "the test rejects 0 on the other side: a verdict on the trend in "
        "this setting, not on the paper. C12-peak: no interior peak at some N in more than "
        f"half the seeds, or the {qp.level:.0%} interval of the exponent lies outside {band}.",
        "flat": "two one-sided tests put the effect on P across the swept range within "
        f"{math.expm1(qp.flat_margin):.0%}.",
        "inconclusive": "neither a significant slope nor a flat one.",
        "fragile": "a significant slope whose sign a meaningful factor reverses (the training "
        "points, the swept range without its lowest or highest value, a second level of fit "
        "reached late, another data set): the column 'reversed by' names it.",
    }


def _finding(f: Finding) -> str:
    verdict = ""
    if f.verdict:
        cls = e(f.verdict.replace(" ", "-"))
        verdict = f': <span class="verdict v-{cls}">{e(f.verdict)}</span>'
    body = f": {e(f.body)}" if f.body else ""
    return f"<li><b>{e(f.head)}</b>{verdict}{body}</li>"


def _findings_section(a: Assessment, df: pd.DataFrame) -> str:
    groups = "".join(
        f'<h3 class="fgroup">{e(title)}</h3><ul class="findings">'
        + "".join(_finding(f) for f in items)
        + "</ul>"
        for title, items in findings(a, df)
    )
    return f'<h2 id="findings">Findings</h2><p class=note>{e(preamble(a))}</p>{groups}'


def _headline_section(df: pd.DataFrame, a: Assessment, figures_dir, progress) -> str:
    """The headline figures, embedded; PNG and PDF kept in ``figures_dir`` if given."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(figures_dir) if figures_dir is not None else Path(tmp)
        formats = ("png", "pdf") if figures_dir is not None else ("png",)
        paths = finding_figures(df, a, out, formats=formats, progress=progress)
        figs = "".join(
            figure(p.stem, p.read_bytes(), finding_caption(p.stem, df, a))
            for p in paths
            if p.suffix == ".png"
        )
    figs = figs or "<p>No figure: the rows lack the data for any.</p>"
    return f'<h2 id="headline">Headline figures</h2>{figs}'


def _cell(v, fmt: Callable = plain, cls: str = "num") -> str:
    """A number cell; empty where the column does not apply to the row."""
    if missing(v) or (isinstance(v, str) and not v):
        return td("")
    return td(v if isinstance(v, str) else fmt(v), cls)


def _iv_cell(mid, lo, hi, fmt: Callable = signed) -> str:
    if missing(mid):
        return td("")
    # a no-break space inside the interval: it wraps as one piece under the estimate
    iv = "" if missing(lo) or missing(hi) else f" [{fmt(lo)},\u00a0{fmt(hi)}]"
    return td(f"{fmt(mid)}{iv}", "num iv")


def _holm(v) -> str:
    return td("") if missing(v) else td(f"{v:.2g}", "num")


def _scale(v) -> str:
    return f"{v:g}"


def _labels(v) -> str:
    return td("" if missing(v) else LABEL_WORDS.get(v, v))


# the verdicts table: (header, the columns it shows, its cell); a column empty in every row
# (no label scale in a width-only run, no fragility) is left out of the table
_COLUMNS = (
    ("claim", ("claim",), lambda r: td(r["claim"])),
    ("data set", ("dataset",), lambda r: td(r["dataset"])),
    ("labels", ("labels",), lambda r: _labels(r.get("labels"))),
    ("c", ("label_scale",), lambda r: _cell(r.get("label_scale"), _scale)),
    (RATIO, ("y_f0_ratio",), lambda r: _cell(r.get("y_f0_ratio"))),
    ("verdict", ("verdict",), lambda r: verdict_cell(r["verdict"])),
    ("slope [interval]", ("slope",),
     lambda r: _iv_cell(r.get("slope"), r.get("ci_low"), r.get("ci_high"))),
    ("Holm p", ("p_holm",), lambda r: _holm(r.get("p_holm"))),
    ("effect on P", ("effect",), lambda r: _cell(r.get("effect"))),
    ("seeds", ("n_seeds",), lambda r: _cell(r.get("n_seeds"), lambda v: f"{int(v)}")),
    ("p/N range", ("p_over_n",), lambda r: _cell(r.get("p_over_n"))),
    ("max train loss", ("train_loss_max",), lambda r: _cell(r.get("train_loss_max"))),
    ("peak p/N", ("peak_p_over_n",), lambda r: _cell(r.get("peak_p_over_n"), cls="text")),
    ("peak exponent [interval]", ("exponent",),
     lambda r: _iv_cell(r.get("exponent"), r.get("exponent_low"), r.get("exponent_high"), plain)),
    ("interior peaks (least share)", ("peak_share_min",),
     lambda r: _cell(r.get("peak_share_min"), lambda v: f"{v:.0%}")),
    ("reversed by", ("reversed_by",), lambda r: td(r.get("reversed_by"))),
    ("holds on", ("holds_on",), lambda r: td(r.get("holds_on"))),
    ("Protocol 1 (control)", ("control",), lambda r: verdict_cell(r.get("control") or None)),
)  # fmt: skip


def _filled(q: pd.DataFrame, cols: tuple[str, ...]) -> bool:
    return any(c in q and q[c].map(lambda v: not missing(v) and v != "").any() for c in cols)


def _questions_table(q: pd.DataFrame) -> str:
    shown = [c for c in _COLUMNS if _filled(q, c[1])]
    rows = [[cell(r) for _, _, cell in shown] for _, r in q.iterrows()]
    return table([h for h, _, _ in shown], rows, ' id="questions"')


def _shape_table(q: pd.DataFrame) -> str:
    d = q[q["shape"].fillna("") != ""] if "shape" in q else q.iloc[0:0]
    if d.empty:
        return ""
    head = ["claim", "data set", "c", RATIO, "closer to", "seeds", "first step [interval]",
            "tail, per layer [interval]"]  # fmt: skip
    rows = [
        [td(r["claim"]), td(r["dataset"]), _cell(r["label_scale"], _scale),
         _cell(r["y_f0_ratio"]), td(r["shape"]), td(r["shape_seeds"], "num"),
         _iv_cell(r["step_first"], r["step_first_low"], r["step_first_high"]),
         _iv_cell(r["tail_slope"], r["tail_low"], r["tail_high"])]
        for _, r in d.iterrows()
    ]  # fmt: skip
    return (
        "<h3>Shape of log P in depth</h3><p class=note>Per seed, log P fitted against depth L "
        "(exponential in depth) and against log L (polynomial); 'closer to' is the better "
        "fit by the pooled residual sum of squares, 'seeds' in how many seeds it is the "
        "better one. The first step is the change of log P from the shallowest depth to the "
        "next, the tail the mean per-layer slope beyond it.</p>"
        + table(head, rows, ' id="depth-shape"')
    )


def _crossovers_table(c: pd.DataFrame) -> str:
    if c.empty:
        return ""
    head = ["data set", "init", "finite runs: r* [interval]", "seeds", "lazy limit: r* [interval]",
            "seeds"]  # fmt: skip
    rows = []
    for _, r in c.iterrows():
        cells = [td(r["dataset"]), td(r["init"])]
        for source in ("finite", "limit"):
            if missing(r[f"{source}_r"]):
                cells.append(td("no sign change in the swept range"))
            else:
                cells.append(_iv_cell(r[f"{source}_r"], r[f"{source}_low"], r[f"{source}_high"],
                                      plain))  # fmt: skip
            cells.append(_cell(r[f"{source}_seeds"], lambda v: f"{int(v)}"))
        rows.append(cells)
    return (
        f"<h3>Crossover ratio r*</h3><p class=note>r* = {e(RATIO)} where d log P / d depth "
        "changes sign: per seed the depth slope fitted as a line in log ratio over the label "
        "scales, its root, and the t interval of the roots over the seeds whose root lies in "
        "their swept range ('seeds'); from the finite linearized runs and from the exact lazy "
        "limit.</p>" + table(head, rows, ' id="crossovers"')
    )


def _variants_table(v: pd.DataFrame) -> str:
    """Every directional row under each fragility factor: its slope and interval."""
    if v.empty:
        return ""
    head = ["claim", "data set", "labels", "c", "factor", "slope [interval]", "seeds"]
    rows = [
        [td(r["claim"]), td(r["dataset"]), _labels(r["labels"]), _cell(r["label_scale"], _scale),
         td(r["variant"]), _iv_cell(r["slope"], r["ci_low"], r["ci_high"]),
         _cell(r["n_seeds"], lambda x: f"{int(x)}")]
        for _, r in v.iterrows()
    ]  # fmt: skip
    return (
        "<h3>Fragility, factor by factor</h3><p class=note>Each directional row re-judged "
        "under each meaningful factor (the training points, the swept range without its "
        "lowest or highest value, a second level of fit reached late in training; the data "
        "set is read across the verdicts table). A significant slope whose sign a factor "
        "reverses is 'fragile'. A second level of fit reached within the first fifth of a "
        "run's steps is no factor and has no row.</p>" + table(head, rows, ' id="fragility"')
    )


def _tables_section(a: Assessment) -> str:
    meanings = question_meanings(a.questions_protocol)
    meaning = "".join(
        f'<li><span class="verdict v-{e(k.replace(" ", "-"))}">{e(k)}</span>: {e(v)}</li>'
        for k, v in meanings.items()
    )
    family = int(a.questions["p_holm"].notna().sum()) if "p_holm" in a.questions else 0
    return (
        '<h2 id="protocol-2">Protocol 2 tables</h2><h3>Verdicts</h3>'
        + _questions_table(a.questions)
        + f"<p class=note>Holm's adjustment over the {family} directional rows (C1, C2, C3, "
        "C4-*); C5 is judged by Protocol 1 (the control, below).</p>"
        + f"<h3>What each verdict means</h3><ul>{meaning}</ul>"
        + _shape_table(a.questions)
        + _crossovers_table(a.crossovers)
        + _variants_table(a.variants)
    )


def questions_html(
    df: pd.DataFrame, a: Assessment, figures_dir=None, progress: Callable | None = None
) -> str:
    """The findings, the headline figures and Protocol 2's tables (:data:`SECTIONS`), or ""
    when ``a`` has no Protocol 2 rows."""
    if a.questions.empty:
        return ""
    return (
        _findings_section(a, df)
        + _headline_section(df, a, figures_dir, progress)
        + _tables_section(a)
    )
