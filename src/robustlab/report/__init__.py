"""Reports: publication figures and a self-contained HTML page from tidy result rows.

``p_by_axes(df)`` is the study's result as a frame: P by the swept axes, per init, regime and
stage, mean over seeds with its spread. ``figures(df, out_dir)`` writes the PNG/PDF figures
(:data:`FIGURES`: P against each swept axis, the worst case, P at init, the regime checks, and
the claims' figures); ``caption(name, df)`` writes a figure's caption from its rows.
``write_html(df, path)`` writes one HTML file: the results (figures first, then the tables of
P), and, for sweeps that test the paper's claims, the claims section (verdicts, evidence,
sensitivity, the claims' figures) rendering one :class:`~robustlab.claims.Assessment`.
Where the assessment carries Protocol 2's verdicts, the page opens with them: the findings
(``findings(a, df)``, one sentence per verdict), the headline figures
(:data:`FINDING_FIGURES`, written by ``finding_figures(df, a, out_dir)`` and captioned by
``finding_caption``) and Protocol 2's tables, with Protocol 1's section after them as the
control. ``build(store, out_html)`` does both from a results store, deciding from the stored sweep
configs (their ``claims`` key) whether the claims section is shown.
"""

from ._figures import CLAIM_FIGURES, FIGURES, STUDY_FIGURES, caption, figures
from .finding_captions import finding_caption
from .finding_texts import Finding, findings
from .headline_figures import FINDING_FIGURES, finding_figures
from .html import build, claims_wanted, write_html
from .results import AXES, experiments, p_by_axes
from .robustness import sensitivity_shares

__all__ = [
    "AXES",
    "CLAIM_FIGURES",
    "FIGURES",
    "FINDING_FIGURES",
    "STUDY_FIGURES",
    "Finding",
    "build",
    "caption",
    "claims_wanted",
    "experiments",
    "figures",
    "finding_caption",
    "finding_figures",
    "findings",
    "p_by_axes",
    "sensitivity_shares",
    "write_html",
]
