"""Initialization schemes: one frozen object per scheme, held in a registry.

Notation (docs/definitions.md): an MLP of depth L has weights W_1 (m x d), W_2..W_{L-1} (m x m) and
W_L (k x m). A scheme fixes the *effective* variances (s1, s2, s3) of the entries of the
first, hidden and last weight matrices, i.e. the variance of ``multiplier * W`` entries.

A parameterization (one object per kind, in :data:`PARAMETERIZATIONS`) says how the
stored weights and forward multipliers c realise those variances:

- ``standard``: the stored weights are N(0, s) and the forward multiplier is 1;
- ``ntk`` (Jacot et al. 2018): the stored weights are N(0, 1) and the layer multiplies its
  output by sqrt(s). The function at init has the same law; gradient descent does not.
- ``mean_field`` (Mei, Montanari & Nguyen 2018): two layers, the first as ``standard``, the
  output weights a_j ~ N(0, 1) with multiplier 1/m, so f(x) = (1/m) sum_j a_j relu(w_j . x)
  (effective s3 = 1/m^2). :meth:`InitScheme.as_mean_field` gives any standard scheme's
  mean-field version; a network built from it records ``parameterization="mean_field"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ._checks import check_positive_int, short

Variance = float | Callable[[int, int, int], float]

__all__ = [
    "PARAMETERIZATIONS",
    "ROLES",
    "InitScheme",
    "Parameterization",
    "custom",
    "get_init",
    "init_schemes",
    "register",
]

ROLES = ("first", "hidden", "last")  # a layer's place: W_1, W_2..W_{L-1}, W_L


def _eval(v: Variance, d: int, m: int, k: int) -> float:
    out = float(v(d, m, k)) if callable(v) else float(v)
    if not math.isfinite(out) or out <= 0:
        raise ValueError(f"an init variance must be a positive finite number, got {out}")
    return out


@dataclass(frozen=True)
class Parameterization:
    """How effective variances s are split into (stored-weight variance, forward multiplier).

    Attributes:
        name: registry key (``InitScheme.parameterization``).
        split: ``(role, s, width) -> (weight variance, multiplier)`` with multiplier^2 *
            weight variance = s; ``role`` indexes :data:`ROLES`.
        depth: the only depth it is defined for (None: any).
        layers: whether it applies to any layer type (CNNs, ResNets), not only MLPs.
        doc: what a network with it is, for messages.
        derive: ``scheme -> scheme`` under this parameterization, for the ones any scheme
            can be given (mean field); None: only schemes defined with it have it.
    """

    name: str
    split: Callable[[int, float, int], tuple[float, float]]
    depth: int | None = None
    layers: bool = True
    doc: str = ""
    derive: Callable[[InitScheme], InitScheme] | None = None


def _mean_field_s3(d: int, m: int, k: int) -> float:
    return 1.0 / (m * m)  # a_j ~ N(0, 1) times 1/m


def _mean_field_split(role: int, s: float, width: int) -> tuple[float, float]:
    return (1.0, 1.0 / width) if role == 2 else (s, 1.0)


PARAMETERIZATIONS: dict[str, Parameterization] = {
    p.name: p
    for p in (
        Parameterization("standard", lambda role, s, m: (s, 1.0), doc="a standard network"),
        Parameterization(
            "ntk", lambda role, s, m: (1.0, math.sqrt(s)), doc="an NTK-parameterized network"
        ),
        Parameterization(
            "mean_field",
            _mean_field_split,
            depth=2,
            layers=False,
            doc="the two-layer mean-field network",
            derive=lambda scheme: scheme.as_mean_field(),
        ),
    )
}


@dataclass(frozen=True)
class InitScheme:
    """A named initialization: entries of W_1, W_hidden, W_L ~ N(0, s1), N(0, s2), N(0, s3).

    Attributes:
        name: registry name (``custom(...)`` schemes carry their numbers in the name).
        s1, s2, s3: variances, each a number or a function ``(in_dim, width, out_dim) -> float``.
        parameterization: a key of :data:`PARAMETERIZATIONS`: ``"standard"`` (weights carry
            the variance), ``"ntk"`` (weights are N(0, 1); the forward pass multiplies by
            sqrt(s)) or ``"mean_field"`` (see :meth:`as_mean_field`).
        doc: one line stating the variances and the source.
    """

    name: str
    s1: Variance
    s2: Variance
    s3: Variance
    parameterization: str = "standard"
    doc: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"parameterization: expected one of {', '.join(PARAMETERIZATIONS)}, got "
                f"{self.parameterization!r}"
            )

    def as_mean_field(self) -> InitScheme:
        """The two-layer mean-field version: first layer N(0, s1) as in this scheme, output
        weights a_j ~ N(0, 1) times 1/m (effective s3 = 1/m^2); Mei, Montanari & Nguyen
        (PNAS 2018), Luo et al. (JMLR 2021). Only a standard-parameterization scheme has one."""
        if self.parameterization == "mean_field":
            return self
        if self.parameterization != "standard":
            raise ValueError(
                f"init {self.name!r} has the {self.parameterization} parameterization; "
                "the mean-field network needs a standard one"
            )
        return replace(self, s3=_mean_field_s3, parameterization="mean_field")

    def with_parameterization(self, name: str | None) -> InitScheme:
        """This scheme under parameterization ``name`` (None: as it is): derived where the
        parameterization says how (:meth:`as_mean_field`); any other must be the scheme's own."""
        if name is None or name == self.parameterization:
            return self
        derive = PARAMETERIZATIONS[name].derive if name in PARAMETERIZATIONS else None
        if derive is None:
            raise ValueError(f"init {self.name!r} has no {name} parameterization")
        return derive(self)

    def _split(self, in_dim: int, width: int, out_dim: int) -> list[tuple[float, float]]:
        split = PARAMETERIZATIONS[self.parameterization].split
        s = self.variances(in_dim, width, out_dim)
        return [split(role, s[role], width) for role in range(3)]

    def variances(self, in_dim: int, width: int, out_dim: int = 1) -> tuple[float, float, float]:
        """Effective variances (s1, s2, s3) for input dim d, width m, output dim k."""
        return (
            _eval(self.s1, in_dim, width, out_dim),
            _eval(self.s2, in_dim, width, out_dim),
            _eval(self.s3, in_dim, width, out_dim),
        )

    def weight_variances(
        self, in_dim: int, width: int, out_dim: int = 1
    ) -> tuple[float, float, float]:
        """Variances of the stored weights: the effective ones, or 1 under NTK parameterization
        (and for the mean-field output weights)."""
        return tuple(v for v, _ in self._split(in_dim, width, out_dim))  # type: ignore[return-value]

    def multipliers(self, in_dim: int, width: int, out_dim: int = 1) -> tuple[float, float, float]:
        """Forward multipliers (c1, c2, c3): 1 for standard, sqrt(s) under NTK
        parameterization, (1, 1, 1/m) for the mean-field network."""
        return tuple(c for _, c in self._split(in_dim, width, out_dim))  # type: ignore[return-value]

    def layer_variance(self, role: str, fan_in: int, fan_out: int) -> float:
        """Effective variance of one layer's weights (of ``multiplier * W``), any layer type.

        The scheme's functions of (d, m, k) are read per layer, with the layer's own fans in
        the places they take in an MLP (where they reproduce :meth:`variances` exactly):

        - ``"first"``: s1(d=fan_in, m=fan_out, k=fan_out)
        - ``"hidden"``: s2(d=fan_in, m=fan_in, k=fan_out)
        - ``"last"``: s3(d=fan_in, m=fan_in, k=fan_out)

        For a convolution, fan_in = C_in * kh * kw and fan_out = C_out * kh * kw (He et al.,
        ICCV 2015; Glorot & Bengio, AISTATS 2010): He gives 2 / (C_in kh kw), LeCun
        1 / (C_in kh kw). A linear layer has fan_in = in_features, fan_out = out_features.
        """
        if role not in ROLES:
            raise ValueError(f"unknown layer role {role!r}; choices: {', '.join(ROLES)}")
        for name, value in (("fan_in", fan_in), ("fan_out", fan_out)):
            check_positive_int(name, value, floats=False)
        i = ROLES.index(role)
        d, m, k = (fan_in, fan_out, fan_out) if i == 0 else (fan_in, fan_in, fan_out)
        return _eval((self.s1, self.s2, self.s3)[i], d, m, k)

    def layer_init(self, role: str, fan_in: int, fan_out: int) -> tuple[float, float]:
        """(variance of the stored weights, forward multiplier) of one layer.

        Standard parameterization: (s, 1); NTK parameterization: (1, sqrt(s)), with s the
        :meth:`layer_variance`. Either way ``multiplier * W`` has entries of variance s.
        """
        param = PARAMETERIZATIONS[self.parameterization]
        if not param.layers:
            raise ValueError(f"the {param.name} parameterization is defined for MLPs only")
        return param.split(ROLES.index(role), self.layer_variance(role, fan_in, fan_out), fan_in)


_REGISTRY: dict[str, InitScheme] = {}


def register(scheme: InitScheme) -> InitScheme:
    """Add a scheme to the registry (name must be new) and return it."""
    if scheme.name in _REGISTRY:
        raise ValueError(f"init scheme {scheme.name!r} is already registered")
    _REGISTRY[scheme.name] = scheme
    return scheme


LECUN = register(
    InitScheme(
        "lecun",
        lambda d, m, k: 1.0 / d,
        lambda d, m, k: 1.0 / m,
        lambda d, m, k: 1.0 / m,
        doc="LeCun: variance 1/fan_in (s1=1/d, s2=1/m, s3=1/m). LeCun et al., Efficient BackProp.",
    )
)
HE = register(
    InitScheme(
        "he",
        lambda d, m, k: 2.0 / d,
        lambda d, m, k: 2.0 / m,
        lambda d, m, k: 2.0 / m,
        doc="He/Kaiming: variance 2/fan_in (s1=2/d, s2=2/m, s3=2/m). He et al., ICCV 2015.",
    )
)
NTK = register(
    InitScheme(
        "ntk",
        lambda d, m, k: 2.0 / m,
        lambda d, m, k: 2.0 / m,
        lambda d, m, k: 1.0,
        doc=(
            "NTK initialization (s1=2/m, s2=2/m, s3=1) of Allen-Zhu, Li & Song, ICML 2019; "
            "our reading of the NTK row of Zhu et al., NeurIPS 2022."
        ),
    )
)
XAVIER = register(
    InitScheme(
        "xavier",
        lambda d, m, k: 2.0 / (d + m),
        lambda d, m, k: 1.0 / m,
        lambda d, m, k: 2.0 / (m + k),
        doc="Glorot/Xavier normal (s1=2/(d+m), s2=1/m, s3=2/(m+k)). Glorot & Bengio, AISTATS 2010.",
    )
)
NTK_PARAM = register(
    InitScheme(
        "ntk_param",
        lambda d, m, k: 2.0 / d,
        lambda d, m, k: 2.0 / m,
        lambda d, m, k: 1.0 / m,
        parameterization="ntk",
        doc=(
            "NTK parameterization (Jacot, Gabriel & Hongler, NeurIPS 2018): weights N(0,1), "
            "forward multipliers sqrt(2/d), sqrt(2/m), sqrt(1/m); effective s=(2/d, 2/m, 1/m)."
        ),
    )
)


def custom(s1: Variance, s2: Variance, s3: Variance) -> InitScheme:
    """A user scheme with variances s1, s2, s3 (numbers or functions of (d, m, k))."""

    def show(v: Variance) -> str:
        return getattr(v, "__name__", "fn") if callable(v) else f"{float(v):g}"

    for v in (s1, s2, s3):
        if not callable(v):
            _eval(v, 1, 1, 1)  # validates positivity early
    return InitScheme(
        f"custom({show(s1)},{show(s2)},{show(s3)})",
        s1,
        s2,
        s3,
        doc="User-given variances (s1, s2, s3).",
    )


_CUSTOM_RE = re.compile(r"^custom\(\s*([^,]+)\s*,\s*([^,]+)\s*,\s*([^,)]+)\s*\)$")


def init_schemes() -> list[str]:
    """Names of the registered schemes (``custom(s1,s2,s3)`` is accepted in addition)."""
    return sorted(_REGISTRY)


def get_init(name: str | InitScheme) -> InitScheme:
    """Look up a scheme by name; ``"custom(s1,s2,s3)"`` with numbers builds a custom one.

    Raises:
        ValueError: for an unknown name, listing the choices.
    """
    if isinstance(name, InitScheme):
        return name
    if not isinstance(name, str):
        raise ValueError(f"init must be a scheme name, got {short(name)}")
    key = name.strip().lower()
    if key in _REGISTRY:
        return _REGISTRY[key]
    match = _CUSTOM_RE.match(key) if len(key) <= 200 else None  # no quadratic regex time
    if match:
        try:
            values = [float(g) for g in match.groups()]
        except ValueError:
            raise ValueError(f"custom init needs three numbers, got {short(name)}") from None
        return custom(*values)
    choices = ", ".join(init_schemes() + ["custom(s1,s2,s3)"])
    raise ValueError(f"unknown init scheme {short(name)}; choices: {choices}")
