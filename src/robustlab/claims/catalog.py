"""The paper's claims as data: what each one says, on which runs it is judged.

Zhu, Liu, Chrysos & Cevher, *Robustness in deep learning: the good (width), the bad
(depth), and the ugly (initialization)*, NeurIPS 2022. Each claim is the sign of a scaling
exponent of the perturbation stability P (lower P = more robust): against log width
(P ~ m^b) or against depth (P ~ exp(b L)).

| id     | claim                                              | judged on                       |
|--------|----------------------------------------------------|---------------------------------|
| C1     | p < N: wider => less robust                        | standard runs with p < N, at    |
|        |                                                    | the looser checkpoint loss      |
| C2     | p > N: wider => more robust                        | standard runs with p > N        |
| C3     | lazy, LeCun: deeper => more robust                 | linearized runs (lazy exactly)  |
| C4-he  | lazy, He: deeper => less robust                    | linearized runs                 |
| C4-ntk | lazy, NTK init: deeper => less robust              | linearized runs                 |
| C5     | non-lazy two-layer: wider => more robust           | mean-field runs, measured       |

C4 is judged per initialization: with the same Gaussian draws the bias-free NTK-init network
is sqrt(d/2) times the He network at init, yet training treats the two scales differently,
so pooling them would hide a disagreement.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CLAIMS", "VERDICTS", "Claim"]

VERDICTS = (
    "supported",
    "contradicted",
    "inconclusive",
    "fragile",
    "not converged",
    "regime not reached",
    "no data",
)


@dataclass(frozen=True)
class Claim:
    """One hypothesis: the sign of d log P / d ``axis`` on the runs it is about.

    Attributes:
        id, statement: as shown in tables.
        axis: ``"width"`` (x = log width) or ``"depth"`` (x = depth).
        sign: claimed sign of the slope: +1 = P grows (less robust), -1 = P falls.
        regimes: the regimes whose fitted predictors are judged, in order of preference
            (the first one with rows is used).
        inits: the initializations the claim is about (None: any).
        side: ``"under"`` (p < N) or ``"over"`` (p > N) for the width claims across p = N.
        two_layer: only depth-2 networks.
        laziness: ``"lazy"`` / ``"nonlazy"``: a regime the runs must be *measured* to be in
            (skipped for regimes lazy by construction), tested per sweep.
        about_init: the claim compares initializations, so a centred (alpha-scaled)
            predictor, which has removed f(x; w0), cannot test it.
        beside: regimes whose runs of the same shapes are reported beside the verdict.
        plateau: also fit ``P = P_inf + c m^(-gamma)`` (curves that level off with width).
        fit: the level of fit P is judged at: ``final`` (the run's ``target_loss``) or
            ``checkpoint`` (its looser ``checkpoint_loss``; C1: under-parameterized networks
            cannot fit noisy labels, so they are compared at a loss they all reach).
    """

    id: str
    statement: str
    axis: str
    sign: int
    regimes: tuple[str, ...]
    inits: tuple[str, ...] | None = None
    side: str | None = None
    two_layer: bool = False
    laziness: str | None = None
    about_init: bool = False
    beside: tuple[str, ...] = ()
    plateau: bool = False
    fit: str = "final"

    @property
    def x_label(self) -> str:
        return "log width" if self.axis == "width" else "depth"


_LAZY_DEPTH = dict(axis="depth", regimes=("linearized", "standard"), laziness="lazy",
                   about_init=True, beside=("standard",))  # fmt: skip

CLAIMS: tuple[Claim, ...] = (
    Claim("C1", "under-parameterized (p < N): wider => less robust (P grows with width)",
          "width", +1, ("standard",), side="under", fit="checkpoint"),
    Claim("C2", "over-parameterized (p > N): wider => more robust (P falls with width)",
          "width", -1, ("standard",), side="over", plateau=True),
    Claim("C3", "lazy training, LeCun init: deeper => more robust (P falls with depth)",
          sign=-1, inits=("lecun",), **_LAZY_DEPTH),
    Claim("C4-he", "lazy training, He init: deeper => less robust (P grows with depth)",
          sign=+1, inits=("he",), **_LAZY_DEPTH),
    Claim("C4-ntk", "lazy training, NTK init: deeper => less robust (P grows with depth)",
          sign=+1, inits=("ntk",), **_LAZY_DEPTH),
    Claim("C5", "non-lazy training (mean-field), two-layer ReLU: wider => more robust",
          "width", -1, ("mean_field",), two_layer=True, laziness="nonlazy", plateau=True),
)  # fmt: skip
