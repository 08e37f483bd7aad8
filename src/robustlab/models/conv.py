"""Plain ReLU CNNs under a named initialization scheme.

``f(x) = c_L W_L GAP(relu(c_{L-1} K_{L-1} * ... relu(c_1 K_1 * x)))``: L - 1 convolutions
K_l of ``width`` channels (kernel k x k, stride 1, "same" padding), ReLU after each, a global
average pool (GAP) over the spatial positions, and a linear head W_L (out_dim x width).
Depth L counts the weight layers, as for the MLP.

Init (:meth:`robustlab.init.InitScheme.layer_init`): K_1 has role "first" with fan_in =
C k^2, fan_out = width k^2; K_2..K_{L-1} "hidden" with fan_in = fan_out = width k^2; W_L
"last" with fan_in = width, fan_out = out_dim. So He gives Var = 2 / (C_in k^2) per kernel
entry (He et al., ICCV 2015), LeCun 1 / (C_in k^2).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .._checks import check_positive_int
from ..init import InitScheme, get_init
from ._layers import (
    ImageSpec,
    ScaledConv2d,
    ScaledLinear,
    attach_spec,
    build_image_net,
    check_in_shape,
    spec_from_dict,
)

__all__ = ["CNN", "CNNSpec", "cnn", "cnn_from_spec"]


@dataclasses.dataclass(frozen=True)
class CNNSpec(ImageSpec):
    """Everything needed to rebuild a CNN (travels with saved models and result rows).

    Per-layer tuples (L entries, forward order): ``fan_in``, effective ``variances`` (of
    ``c * W``), ``weight_variances`` (stored weights) and forward ``multipliers`` c.
    """

    family = "cnn"

    @property
    def n_params(self) -> int:
        """Number of trainable parameters p."""
        k2, m, c = self.kernel_size**2, self.width, self.in_shape[0]
        p = c * m * k2 + (self.depth - 2) * m * m * k2 + m * self.out_dim
        if self.bias:
            p += (self.depth - 1) * m + self.out_dim
        return p


class CNN(nn.Module):
    """ReLU CNN with ``depth`` weight layers; see :func:`cnn`."""

    def __init__(self, spec: CNNSpec) -> None:
        super().__init__()
        self.spec = spec
        self.in_shape: tuple[int, int, int] = spec.in_shape  # a plain tuple: scriptable
        c, m, k, L = spec.in_shape[0], spec.width, spec.kernel_size, spec.depth
        mult = spec.multipliers
        self.convs = nn.ModuleList(
            ScaledConv2d(
                c if i == 0 else m, m, k, padding=k // 2, bias=spec.bias, multiplier=mult[i]
            )
            for i in range(L - 1)
        )
        self.head = ScaledLinear(m, spec.out_dim, bias=spec.bias, multiplier=mult[-1])
        attach_spec(self, "cnn")

    def weight_layers(self) -> list[nn.Module]:
        """The L weight layers in forward order."""
        return [*self.convs, self.head]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) (or (N, C*H*W)) -> (N, out_dim)."""
        c, height, width = self.in_shape
        h = x.reshape(x.shape[0], c, height, width)
        for conv in self.convs:
            h = torch.relu(conv(h))
        return self.head(h.mean(dim=(2, 3)))  # global average pool: (N, m, H, W) -> (N, m)

    def extra_repr(self) -> str:
        s = self.spec
        return f"in_shape={s.in_shape}, width={s.width}, depth={s.depth}, init={s.init}"


def cnn(
    in_shape: tuple[int, int, int],
    width: int,
    depth: int,
    out_dim: int = 1,
    init: str | InitScheme = "lecun",
    bias: bool = False,
    generator: torch.Generator | None = None,
    *,
    kernel_size: int = 3,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> CNN:
    """Build a ReLU CNN: ``depth - 1`` conv layers of ``width`` channels, GAP, linear head.

    Args:
        in_shape: (C, H, W) of one input; inputs (N, C, H, W) or flattened (N, C*H*W).
        width: channels of every conv layer (m).
        depth: weight layers L >= 2 (L - 1 convolutions and the head).
        out_dim: outputs k.
        init: a scheme of the registry; each layer draws N(0, v) with the scheme's variance
            for its role and fans (see the module docstring), biases start at 0.
        kernel_size: odd k; padding k // 2 keeps H x W.
        generator: the same state gives the same weights.
    """
    shape = check_in_shape(in_shape)
    m = check_positive_int("width", width)
    L = check_positive_int("depth", depth)
    k = check_positive_int("out_dim", out_dim)
    ks = check_positive_int("kernel_size", kernel_size)
    if L < 2:
        raise ValueError(f"a CNN needs depth >= 2 (convolutions and a head), got {L}")
    if ks % 2 == 0:
        raise ValueError(f"kernel_size must be odd (same padding), got {ks}")
    scheme = get_init(init)
    return build_image_net(CNN, CNNSpec, shape, m, L, k, scheme, bias, ks, L - 2, generator,
                           dtype, device)  # fmt: skip


def cnn_from_spec(spec: CNNSpec | dict, dtype: torch.dtype = torch.float32) -> CNN:
    """Rebuild an (uninitialised-weights) CNN from its spec or spec dict."""
    return CNN(spec_from_dict(CNNSpec, spec)).to(dtype=dtype)
