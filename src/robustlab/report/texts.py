"""The report's fixed prose: what each verdict means, the definitions, the notes on scale.

The numbers quoted here come from the assessment's protocol
(:class:`robustlab.claims.Protocol`), so the text cannot drift from what judged the claims.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..claims import Protocol

__all__ = ["THRESHOLD_NOTE", "Y_F0_NOTE", "claim_definitions", "definitions", "sensitivity_note",
           "verdict_meanings"]  # fmt: skip


def verdict_meanings(protocol: Protocol) -> dict[str, str]:
    """Verdict -> its meaning; one entry per :data:`robustlab.claims.VERDICTS`."""
    share, excluded = f"{protocol.robust_share:.0%}", f"{protocol.max_excluded:.0%}"
    return {
        "supported": "the t interval of the slope excludes 0 on the side the claim predicts, and "
        f"that holds in at least {share} of the sensitivity variants.",
        "contradicted": "the interval excludes 0 on the opposite side: the data go against the "
        f"claim (in at least {share} of the sensitivity variants).",
        "inconclusive": "the interval contains 0, or there are too few seeds or distinct "
        "widths/depths to fit a slope.",
        "fragile": "the main protocol gives a directional verdict (supported or contradicted; "
        f"shown as the main verdict) that holds in fewer than {share} of the "
        "sensitivity variants (data seeds, training vs test points, level of fit, swept range): "
        "it hangs on those choices.",
        "not converged": f"more than {excluded} of the claim's runs missed the target "
        "training loss, so the runs are not fitted equally well and no slope is judged.",
        "regime not reached": "the claim has runs, but not in its regime: no widths on its side "
        "of p = N, or a sweep whose runs are not all lazy / non-lazy as measured.",
        "no data": "no runs of the kind the claim is about (alpha-scaled, centred runs are refused "
        "for the initialization claims: they remove the initialization's own function).",
    }


Y_F0_NOTE = (
    "y_f0_ratio is the label-to-f_0 scale ||y|| / ||f_0(X)||: the norm of the training labels "
    "over the norm of the initial network's outputs on the training inputs (median over the "
    "claim's runs). The He depth trend depends on it in the lazy limit: there the trained "
    "function is f_0 plus a kernel regression of the residual, "
    "f(x) = f_0(x) + Theta(x, X) Theta(X, X)^-1 (y - f_0(X)), so P after training mixes the "
    "input gradients of the initial function with those of the fit of the labels, in a "
    "proportion set by this ratio (large: the fit of y dominates; small: f_0 does)."
)


def sensitivity_note(protocol: Protocol) -> str:
    """What the sensitivity table shows, with the protocol's robust share."""
    share = f"{protocol.robust_share:.0%}"
    return (
        "Share of the re-judged variants (each data seed left out in turn, P on training instead "
        "of test points, the other level of fit, the swept range without its lowest or highest "
        "value) whose verdict equals the main verdict, per claim and level of each factor. A "
        f"directional verdict must hold in at least {share} of all variants, else it is "
        f"reported as fragile; shares below {share} are marked."
    )


THRESHOLD_NOTE = (
    "Each claim re-judged with other laziness thresholds (run with "
    "<code>robustlab reproduce --lazy-threshold T1 --nonlazy-threshold T2</code>). The lazy "
    "threshold bounds the relative weight change and NTK change of every run of a sweep "
    "judged on measured laziness; runs of the linearized regime are lazy by construction and "
    "do not depend on it. The non-lazy threshold is the least weight change of every "
    "mean-field run (C5). Main verdicts (before the sensitivity check); a framed cell differs "
    "from the verdict at the thresholds of this report."
)


_REGIME_TEXT = {
    "standard": "standard f(x; w), the network as initialized, plain gradient descent",
    "linearized": "linearized f_lin(x; w) = f(x; w0) + J_w f(x; w0) (w - w0), the\n"
    "  first-order Taylor model around initialization (Lee et al. 2019), lazy exactly at any "
    "width\n  and keeping f(x; w0)",
    "lazy": "lazy alpha (f(x; w) - f(x; w0)), the loss divided by alpha^2 (Chizat et al. "
    "2019): centred,\n  lazy for large alpha",
    "mean_field": "mean_field (1/m) sum_j a_j relu(w_j . x), two-layer, non-lazy",
}


def definitions(
    protocol: Protocol, regimes: Iterable[str] | None = None, *, worst: bool = True
) -> str:
    """The definitions block of the report: P, kappa_d, the init identity, the worst case
    (``worst``: the rows hold one), the ``regimes`` present (default every regime),
    laziness, the spread over seeds. ``protocol`` is the assessment's; its thresholds are
    stated by :func:`claim_definitions`."""
    shown = list(_REGIME_TEXT) if regimes is None else [r for r in _REGIME_TEXT if r in regimes]
    text = _P_TEXT + (_WORST_TEXT if worst else "")
    if shown:
        text += "Regimes: " + ";\n  ".join(_REGIME_TEXT[r] for r in shown) + ".\n"
    text += _LAZINESS_TEXT
    if "linearized" in shown:
        text += _GRAD_LIN_DEV
    return text + _SPREAD


def claim_definitions(protocol: Protocol) -> str:
    """How the claims are judged: laziness tests, scaling exponents, matched fit, plateau,
    with the protocol's exclusion share."""
    return _CLAIM_DEFINITIONS.format(max_excluded=f"{protocol.max_excluded:.0%}")


_P_TEXT = """\
P(f, eps) = E_{x ~ data} E_{x' ~ U(B_2(x, eps))} ||J_f(x) (x' - x)||_2    (lower = more robust)
  J_f(x): k x d input Jacobian; x' uniform in the L2 ball of radius eps (or on its sphere).
  For k = 1: E_{delta ~ U(B(0, eps))} |g . delta| = eps * kappa_d * ||g||_2, exactly, with
kappa_d = d/(d+1) * Gamma(d/2) / (sqrt(pi) * Gamma((d+1)/2))   (ball; sphere: without d/(d+1))
E ||grad_x f(x)||^2 = (d s1/2) (m s2/2)^(L-2) (m s3)   at initialization (bias-free ReLU MLP,
  W_1, W_l, W_L entries ~ N(0, s1), N(0, s2), N(0, s3); exact in expectation at any width)
  Jensen: P_init <= eps * kappa_d * sqrt(E ||grad_x f||^2)
"""
_WORST_TEXT = """\
Worst case (method pgd): projected gradient ascent with restarts on ||f(x') - f(x)|| over the
  same region (Madry et al. 2018); worst / P is 1/kappa_d for a function linear on the ball.
"""
_LAZINESS_TEXT = """\
Laziness, measured: relative weight change ||W_T - W_0||_F / ||W_0||_F over the whole network
  and the relative change of the empirical NTK on a probe batch.
"""
_GRAD_LIN_DEV = """\
grad_lin_dev = ||grad_x f_T - grad_x f_lin,T|| / ||grad_x f_T - grad_x f_0|| over the measured
  points: how far a standard run's input gradient is from its linearized twin's (same w0,
  same data), relative to what training changed (0: lazy as far as P is concerned).
"""
_SPREAD = """\
Over seeds: each seed draws its own network (and data); tables give the mean over the S seeds
  +- its standard error sd / sqrt(S), and the t interval mean +- t_{S-1} sd / sqrt(S)."""

_CLAIM_DEFINITIONS = """\
Laziness tests: a run is lazy when its weight change and NTK change are both <= the lazy
  threshold, non-lazy when its weight change is >= the non-lazy threshold; tested per sweep
  (every run of a sweep qualifies, or the claim's verdict is "regime not reached").
Scaling exponent: slope b of log P = a_g + b log m (width) or log P = a_g + b L (depth), a
  free intercept a_g per group (fixed effects); each seed s (its own weights and data draw)
  gets its own slope b_s; interval: mean(b) +- t_{{S-1}} sd(b) / sqrt(S) over the S seeds.
Effect: exp(b * span), the factor by which P changes from the first to the last swept value
  (0.93 = 7% more robust), with the interval's ends. Monotone: the per-value means of log P
  move in one direction.
Matched fit: a run whose training loss missed its target is excluded and counted
  (n_excluded); more than {max_excluded} excluded: "not converged". C1 compares its runs
  at the looser checkpoint loss (under-parameterized networks cannot fit noisy labels).
Plateau: P = P_inf + c m^(-gamma) fitted beside the power law where P levels off with
  width (C2, C5); the claim is about the sign of c.
Source: Zhu, Liu, Chrysos & Cevher, "Robustness in deep learning: the good (width), the bad
  (depth), and the ugly (initialization)", NeurIPS 2022 (arXiv 2209.07263)."""
