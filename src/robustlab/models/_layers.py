"""Pieces shared by the network families: scaled layers, per-layer init, specs on disk.

A layer of any family is initialized from the scheme registry through its fans
(:meth:`robustlab.init.InitScheme.layer_init`): its stored weights are N(0, v) and its output
is multiplied by c, with ``c^2 v`` the scheme's variance for the layer's role and fan-in.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import torch
from torch import nn

from ..init import InitScheme

__all__ = [
    "LayerPlan",
    "ScaledConv2d",
    "ScaledLinear",
    "attach_spec",
    "check_in_shape",
    "draw_weights",
    "plan_layers",
    "spec_from_dict",
]

METADATA_KEY = "robustlab"  # state_dict()._metadata[""][METADATA_KEY] = {family, spec}


class ScaledConv2d(nn.Conv2d):
    """``c * conv(x)``: a 2-D convolution whose output is multiplied by ``multiplier``."""

    def __init__(self, *args, multiplier: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.multiplier = float(multiplier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._conv_forward(x, self.weight, self.bias)  # TorchScript cannot call super()
        return h * self.multiplier if self.multiplier != 1.0 else h


class ScaledLinear(nn.Linear):
    """``c * linear(x)``: a linear layer whose output is multiplied by ``multiplier``."""

    def __init__(self, *args, multiplier: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.multiplier = float(multiplier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.linear(x, self.weight, self.bias)
        return h * self.multiplier if self.multiplier != 1.0 else h


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """What the specs of image networks (CNN, ResNet) share: ``in_shape`` = (C, H, W), the
    shape, the scheme and its parameterization, and per-layer tuples (L entries, forward
    order): ``fan_in``, effective ``variances`` (of ``c * W``), ``weight_variances`` (stored
    weights) and forward ``multipliers`` c."""

    in_shape: tuple[int, int, int]
    width: int
    depth: int
    out_dim: int
    init: str
    bias: bool
    kernel_size: int
    parameterization: str
    fan_in: tuple[int, ...]
    variances: tuple[float, ...]
    weight_variances: tuple[float, ...]
    multipliers: tuple[float, ...]

    @property
    def in_dim(self) -> int:
        """d = C * H * W, the flattened input dimension."""
        c, h, w = self.in_shape
        return c * h * w

    def to_dict(self) -> dict:
        """Plain-dict form (JSON/YAML friendly)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class LayerPlan:
    """Per weight layer, in forward order: role, fans, effective and stored variances,
    multipliers (each a tuple with one entry per layer)."""

    roles: tuple[str, ...]
    fan_in: tuple[int, ...]
    fan_out: tuple[int, ...]
    variances: tuple[float, ...]
    weight_variances: tuple[float, ...]
    multipliers: tuple[float, ...]


def plan_layers(scheme: InitScheme, layers: Sequence[tuple[str, int, int]]) -> LayerPlan:
    """The init of each (role, fan_in, fan_out) layer under ``scheme``."""
    inits = [scheme.layer_init(role, fi, fo) for role, fi, fo in layers]
    return LayerPlan(
        roles=tuple(r for r, _, _ in layers),
        fan_in=tuple(fi for _, fi, _ in layers),
        fan_out=tuple(fo for _, _, fo in layers),
        variances=tuple(c * c * v for v, c in inits),
        weight_variances=tuple(v for v, _ in inits),
        multipliers=tuple(c for _, c in inits),
    )


def check_in_shape(in_shape: object) -> tuple[int, int, int]:
    """``in_shape`` as (C, H, W) of positive ints, else a ValueError saying so."""
    ok = isinstance(in_shape, (tuple, list)) and len(in_shape) == 3
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in in_shape)
    if not ok:
        raise ValueError(
            f"in_shape must be (channels, height, width) of positive integers, got {in_shape!r}"
        )
    return tuple(in_shape)  # type: ignore[return-value]


@torch.no_grad()
def draw_weights(
    layers: Sequence[nn.Module], weight_variances: Sequence[float], generator=None
) -> None:
    """Weights of each layer i.i.d. N(0, v) in order (float64 CPU draws, as the MLP's);
    biases 0. The same generator state gives the same weights on any device/dtype."""
    for layer, v in zip(layers, weight_variances, strict=True):
        w = layer.weight
        noise = torch.randn(w.shape, generator=generator, dtype=torch.float64, device="cpu")
        w.copy_(noise * math.sqrt(v))
        if layer.bias is not None:
            layer.bias.zero_()


def _record_spec(family: str, mod: nn.Module, state_dict, prefix: str, local_metadata) -> None:
    if prefix == "":
        local_metadata[METADATA_KEY] = {"family": family, "spec": mod.spec.to_dict()}


def attach_spec(module: nn.Module, family: str) -> None:
    """Record ``{family, spec}`` in the module's state-dict metadata, so that even a bare
    ``torch.save(model.state_dict(), path)`` can be rebuilt exactly (multipliers included).

    Only when the module is the root of the state dict (prefix ""); loading ignores it. The
    hook is a partial of a module-level function, so the model still pickles and deep-copies.
    """
    register = getattr(module, "register_state_dict_post_hook", None)
    (register or module._register_state_dict_hook)(functools.partial(_record_spec, family))


def spec_from_dict(cls, data: dict):
    """Rebuild a spec dataclass from its dict form (lists become tuples); ValueError on
    missing or unknown keys."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ValueError(f"a {cls.__name__} must be a dict, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown, missing = sorted(set(data) - names), sorted(names - set(data))
    if unknown or missing:
        raise ValueError(f"bad {cls.__name__}: unknown keys {unknown}, missing keys {missing}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def build_image_net(net_cls, spec_cls, shape, width: int, depth: int, out_dim: int, scheme,
                    bias: bool, kernel_size: int, hidden: int, generator, dtype, device,
                    **extra):  # fmt: skip
    """A CNN/ResNet of ``spec_cls`` with ``hidden`` width-to-width conv layers between the
    first conv and the linear head, every layer drawn by ``scheme`` through its fan-in."""
    k2 = kernel_size * kernel_size
    layers = [("first", shape[0] * k2, width * k2)]
    layers += [("hidden", width * k2, width * k2)] * hidden
    layers.append(("last", width, out_dim))
    plan = plan_layers(scheme, layers)
    spec = spec_cls(
        in_shape=shape, width=width, depth=depth, out_dim=out_dim, init=scheme.name,
        bias=bool(bias), kernel_size=kernel_size, parameterization=scheme.parameterization,
        fan_in=plan.fan_in, variances=plan.variances, weight_variances=plan.weight_variances,
        multipliers=plan.multipliers, **extra,
    )  # fmt: skip
    model = net_cls(spec).to(dtype=dtype, device=device)
    draw_weights(model.weight_layers(), spec.weight_variances, generator)
    return model
