"""Bias-free ReLU MLPs under a named initialization scheme (docs/definitions.md).

``f(x) = c_L W_L relu(c_{L-1} W_{L-1} ... relu(c_1 W_1 x))`` with W_1 (m x d), hidden
W_l (m x m), W_L (k x m); the multipliers c_l are 1 except under the NTK parameterization
(and for the mean-field output, c_L = 1/m). Inputs of shape (N, ...) are flattened to (N, d).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .._checks import check_memory, check_positive_int
from ..init import PARAMETERIZATIONS, InitScheme, get_init
from ._layers import attach_spec

__all__ = ["MLP", "MLPSpec", "mlp", "mlp_from_spec", "n_params", "reinit"]

MEAN_FIELD = "mean_field"  # the parameterization robustlab's mean-field MLPs record


def n_params(in_dim: int, width: int, depth: int, out_dim: int = 1, bias: bool = False) -> int:
    """Number of trainable parameters p of an MLP: d m + (L - 2) m^2 + m k weights (d k for
    L = 1), plus (L - 1) m + k biases with ``bias``."""
    d, m, k, L = in_dim, width, out_dim, depth
    if L == 1:
        return d * k + (k if bias else 0)
    return d * m + (L - 2) * m * m + m * k + ((L - 1) * m + k if bias else 0)


@dataclass(frozen=True)
class MLPSpec:
    """Everything needed to rebuild an MLP (travels with saved models and result rows).

    ``variances`` are the effective (s1, s2, s3) of docs/definitions.md, i.e. of ``c * W``;
    ``weight_variances`` those of the stored weights; ``multipliers`` the forward c's;
    ``parameterization`` the scheme's (``"standard"``, ``"ntk"`` or ``"mean_field"``;
    ``mean_field`` says the same for the last).
    """

    in_dim: int
    width: int
    depth: int
    out_dim: int
    init: str
    bias: bool
    mean_field: bool
    variances: tuple[float, float, float]
    weight_variances: tuple[float, float, float]
    multipliers: tuple[float, float, float]
    parameterization: str = "standard"

    family = "mlp"

    def __post_init__(self) -> None:
        # ``mean_field`` is the parameterization's old flag: records written before mean field
        # was a parameterization say mean_field=True, parameterization="standard"
        if self.mean_field:
            object.__setattr__(self, "parameterization", MEAN_FIELD)
        object.__setattr__(self, "mean_field", self.parameterization == MEAN_FIELD)

    @property
    def n_params(self) -> int:
        """Number of trainable parameters p."""
        return n_params(self.in_dim, self.width, self.depth, self.out_dim, self.bias)

    def to_dict(self) -> dict:
        """Plain-dict form (JSON/YAML friendly)."""
        return asdict(self)


class MLP(nn.Module):
    """ReLU MLP with ``depth`` weight layers; see :func:`mlp`."""

    def __init__(self, spec: MLPSpec) -> None:
        super().__init__()
        self.spec = spec
        d, m, k, L = spec.in_dim, spec.width, spec.out_dim, spec.depth
        dims = [d] + [m] * (L - 1) + [k]
        self.layers = nn.ModuleList(
            nn.Linear(dims[i], dims[i + 1], bias=spec.bias) for i in range(L)
        )
        c1, c2, c3 = spec.multipliers
        self._mult = [c1] + [c2] * (L - 2) + [c3] if L > 1 else [c1]
        attach_spec(self, "mlp")

    def layer_roles(self) -> list[int]:
        """Index into (s1, s2, s3) of each layer: 0 first, 1 hidden, 2 last."""
        L = self.spec.depth
        return [0] if L == 1 else [0] + [1] * (L - 2) + [2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, ...) -> (N, k)."""
        h = x.reshape(x.shape[0], -1)
        last = len(self.layers) - 1
        for i, (layer, c) in enumerate(zip(self.layers, self._mult, strict=True)):
            h = layer(h)
            if c != 1.0:
                h = h * c
            if i < last:
                h = torch.relu(h)
        return h

    def preactivations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Pre-activations of the L-1 hidden ReLU layers, each (N, m) (for pattern flips)."""
        h = x.reshape(x.shape[0], -1)
        out = []
        for layer, c in zip(self.layers[:-1], self._mult[:-1], strict=True):
            h = layer(h) * c
            out.append(h)
            h = torch.relu(h)
        return out

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"in_dim={s.in_dim}, width={s.width}, depth={s.depth}, out_dim={s.out_dim}, "
            f"init={s.init}"
        )


def mlp(
    in_dim: int,
    width: int,
    depth: int,
    out_dim: int = 1,
    init: str | InitScheme = "lecun",
    bias: bool = False,
    generator: torch.Generator | None = None,
    *,
    mean_field: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> MLP:
    """Build a ReLU MLP with L = ``depth`` weight layers and i.i.d. Gaussian weights.

    Entries of W_1, W_hidden, W_L are N(0, s1), N(0, s2), N(0, s3) with (s1, s2, s3) from the
    scheme ``init`` (table in docs/definitions.md); biases start at 0. ``mean_field=True``
    (depth 2 only; the same as ``init=get_init(init).as_mean_field()``) gives the mean-field
    network ``f(x) = (1/m) sum_j a_j relu(w_j . x)`` of Mei, Montanari & Nguyen (2018) / Luo
    et al. (2021): a_j ~ N(0, 1), w_j ~ N(0, s1), output multiplier 1/m.
    The same ``generator`` state gives the same weights.
    """
    d = check_positive_int("in_dim", in_dim)
    m = check_positive_int("width", width)
    L = check_positive_int("depth", depth)
    k = check_positive_int("out_dim", out_dim)
    p = n_params(d, m, L, k, bool(bias))
    check_memory("width", f"an MLP of {p} parameters", 4 * p, "use a narrower or shallower one")
    scheme = get_init(init).as_mean_field() if mean_field else get_init(init)
    need = PARAMETERIZATIONS[scheme.parameterization].depth
    if need is not None and need != L:
        raise ValueError(
            f"{scheme.parameterization} needs a network of depth {need}, got depth {L}"
        )
    wv = scheme.weight_variances(d, m, k)
    mult = scheme.multipliers(d, m, k)
    eff = tuple(c * c * v for c, v in zip(mult, wv, strict=True))
    spec = MLPSpec(
        d,
        m,
        L,
        k,
        scheme.name,
        bool(bias),
        False,  # set from the parameterization
        eff,
        wv,
        mult,
        scheme.parameterization,
    )  # type: ignore[arg-type]
    model = MLP(spec).to(dtype=dtype, device=device)
    reinit(model, generator)
    return model


@torch.no_grad()
def reinit(model: MLP, generator: torch.Generator | None = None) -> MLP:
    """Draw fresh weights for ``model`` from its spec (in place); biases are set to 0."""
    wv = model.spec.weight_variances
    for role, layer in zip(model.layer_roles(), model.layers, strict=True):
        w = layer.weight
        noise = torch.randn(w.shape, generator=generator, dtype=torch.float64, device="cpu")
        w.copy_(noise * math.sqrt(wv[role]))
        if layer.bias is not None:
            layer.bias.zero_()
    return model


def mlp_from_spec(spec: MLPSpec | dict, dtype: torch.dtype = torch.float32) -> MLP:
    """Rebuild an (uninitialised-weights) MLP from its spec or spec dict."""
    if isinstance(spec, dict):
        spec = MLPSpec(
            **{
                **spec,
                **{k: tuple(spec[k]) for k in ("variances", "weight_variances", "multipliers")},
            }
        )
    return MLP(spec).to(dtype=dtype)
