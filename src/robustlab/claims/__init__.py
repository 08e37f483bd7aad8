"""The paper's claims as testable hypotheses: verdicts with calibrated intervals.

``evaluate(df)`` turns tidy result rows into one verdict per claim (C1, C2, C3, C4-he,
C4-ntk, C5) with the slope, its t interval over per-seed slopes, the effect across the swept
range, the fit control and the sensitivity of the verdict (see :mod:`.judge`).
"""

from .catalog import CLAIMS, VERDICTS, Claim
from .judge import COLUMNS, base_rows, evaluate, judge
from .sensitivity import robust_share, sensitivity
from .stats import effect, monotone, plateau_fit, seed_slopes, t_interval

__all__ = [
    "CLAIMS",
    "COLUMNS",
    "VERDICTS",
    "Claim",
    "base_rows",
    "effect",
    "evaluate",
    "judge",
    "monotone",
    "plateau_fit",
    "robust_share",
    "seed_slopes",
    "sensitivity",
    "t_interval",
]
