"""The paper's claims as testable hypotheses: verdicts with calibrated intervals.

``assess(rows, protocol)`` judges every claim (C1, C2, C3, C4-he, C4-ntk, C5) once under a
:class:`Protocol` and returns an :class:`Assessment`: the verdicts with the slope, its t
interval over per-seed slopes, the effect across the swept range, the fit control, the
per-group verdicts, the sensitivity variants and the laziness-threshold grid (see
:mod:`._judge`). Nothing here imports torch.
"""

from ._judge import COLUMNS, base_rows, judge, robust_share
from ._sensitivity import sensitivity
from .assessment import Assessment, assess, evaluate
from .catalog import CLAIMS, VERDICTS, Claim
from .protocol import Protocol
from .stats import effect, monotone, plateau_fit, seed_slopes, t_interval

__all__ = [
    "CLAIMS",
    "COLUMNS",
    "VERDICTS",
    "Assessment",
    "Claim",
    "Protocol",
    "assess",
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
