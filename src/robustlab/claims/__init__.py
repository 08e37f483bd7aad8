"""Claims C1..C5 of Zhu et al. (NeurIPS 2022) as testable hypotheses (DESIGN §1).

``evaluate(df)`` turns tidy result rows into one verdict per claim, with the scaling
exponent, its bootstrap confidence interval over seeds and the reason behind the verdict.
"""

from .evaluate import CLAIMS, VERDICTS, Claim, evaluate, fit_slope

__all__ = ["CLAIMS", "VERDICTS", "Claim", "evaluate", "fit_slope"]
