"""Reports: publication figures and a self-contained HTML page from tidy result rows.

``figures(df, out_dir)`` writes the PNG/PDF figures (:data:`FIGURES`: the fit control, P
against width across p = N, against depth, the regime checks, P at init); ``write_html(df,
path)`` writes one HTML file with the claims, the evidence beside each verdict, the
per-group verdicts, their sensitivity (variants and laziness thresholds), definitions,
embedded figures, configs and run summary, rendering one
:class:`~robustlab.claims.Assessment`; ``build(store, out_html)`` does both from a results
store, assessing the claims once there.
"""

from .figures import CAPTIONS, FIGURES, figures
from .html import build, write_html
from .robustness import sensitivity_shares

__all__ = [
    "CAPTIONS",
    "FIGURES",
    "build",
    "figures",
    "sensitivity_shares",
    "write_html",
]
