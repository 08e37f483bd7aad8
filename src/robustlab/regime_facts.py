"""What each training regime is, as plain data (no torch): the one home of these facts.

The claims layer reads a regime's facts (which result rows hold its fitted predictor,
whether that predictor keeps the initialization's function, whether training is lazy by
construction) without importing torch; :mod:`robustlab.training.regimes` builds its
:class:`~robustlab.training.Regime` objects, which add the behaviour (the predictor's
outputs, the modules to measure), from this table.

- ``standard``: g = f(x; w), the network as initialized, plain gradient descent.
- ``linearized``: g = f(x; w0) + J_w f(x; w0) (w - w0), the first-order Taylor model
  (Lee et al., NeurIPS 2019, arXiv 1902.06720): lazy exactly at any width, and it keeps
  the initialization's own function f(x; w0).
- ``lazy``: g = alpha (f(x; w) - f(x; w0)), loss / alpha^2 (Chizat, Oyallon & Bach,
  NeurIPS 2019): centred, so g carries nothing of f(x; w0) and cannot test an
  initialization claim.
- ``mean_field``: g = f(x; w) for the two-layer mean-field network
  f(x) = (1/m) sum_j a_j relu(w_j . x) (non-lazy).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REGIME_FACTS", "REGIMES", "RegimeFacts", "regime_facts", "twinned_regimes"]


@dataclass(frozen=True)
class RegimeFacts:
    """One training regime, as data.

    Attributes:
        name: registry key (the ``regime`` value of configs and result rows).
        summary: one line for tables and reports.
        measured: the ``model`` labels of the functions measured after training, the
            fitted predictor first (``network`` = f(x; w_T), ``centred`` = alpha (f - f0),
            ``linearized`` = the Taylor model at w_T).
        alpha_scaled: the predictor is alpha (f - f0) and the loss is divided by alpha^2.
        linearized: the predictor is the first-order Taylor model around w0.
        parameterization: the parameterization the network must have
            (:data:`robustlab.init.PARAMETERIZATIONS`; None: any); ``mean_field`` builds its
            networks with the two-layer mean-field one.
        keeps_init_function: whether the fitted predictor contains f(x; w0), i.e. whether
            it can test a claim about the initialization (False for centred predictors).
        lazy_by_construction: the predictor is linear in w, so training is lazy exactly.
        twin_of: a regime whose runs this one pairs with (same w0, same data): a sweep trains
            both in one group and reports, for each run of ``twin_of``, how far it is from
            this regime's run (``linearized`` pairs with ``standard``).
    """

    name: str
    summary: str
    measured: tuple[str, ...] = ("network",)
    alpha_scaled: bool = False
    linearized: bool = False
    parameterization: str | None = None
    keeps_init_function: bool = True
    lazy_by_construction: bool = False
    twin_of: str = ""

    @property
    def predictor_label(self) -> str:
        """The ``model`` label of the fitted predictor's result rows."""
        return self.measured[0]


REGIME_FACTS: dict[str, RegimeFacts] = {
    r.name: r
    for r in (
        RegimeFacts("standard", "the network as initialized, gradient descent"),
        RegimeFacts(
            "lazy",
            "alpha-scaling alpha (f - f0) (Chizat et al. 2019): centred, lazy for large alpha",
            measured=("centred", "network"),
            alpha_scaled=True,
            keeps_init_function=False,
        ),
        RegimeFacts(
            "mean_field",
            "two-layer mean-field network (1/m) sum_j a_j relu(w_j . x): non-lazy",
            parameterization="mean_field",
        ),
        RegimeFacts(
            "linearized",
            "first-order Taylor model around w0 (Lee et al. 2019): lazy exactly",
            measured=("linearized",),
            linearized=True,
            lazy_by_construction=True,
            twin_of="standard",
        ),
    )
}

REGIMES: tuple[str, ...] = tuple(REGIME_FACTS)  # the names, in registry order


def regime_facts(name: str) -> RegimeFacts:
    """The facts of the regime called ``name``."""
    if name not in REGIME_FACTS:
        raise ValueError(f"unknown regime {name!r}; choices: {', '.join(REGIMES)}")
    return REGIME_FACTS[name]


def twinned_regimes() -> tuple[str, ...]:
    """The regimes whose runs a sweep pairs with a twin (``twin_of`` of another regime)."""
    return tuple(dict.fromkeys(r.twin_of for r in REGIME_FACTS.values() if r.twin_of))
