"""ReLU ResNets of basic blocks (He, Zhang, Ren & Sun, CVPR 2016) under an init scheme.

    h_0     = relu(N(c_0 K_0 * x))                                   stem, role "first"
    h_b     = relu(h_{b-1} + N(c K_b2 * relu(N(c K_b1 * h_{b-1}))))   b = 1..depth, "hidden"
    f(x)    = c_L W_L GAP(h_depth)                                   head, role "last"

All convolutions have ``width`` channels, kernel k x k, stride 1 and "same" padding, so the
identity shortcut needs no projection; N is BatchNorm (``norm="batch"``) or nothing
(``norm=None``). ``depth`` counts the residual blocks: 2 depth + 2 weight layers.

Init through each layer's fans, as for :func:`robustlab.cnn` (stem fan_in = C k^2, block
convs width k^2, head width); BatchNorm starts at weight 1, bias 0, running mean 0 and
variance 1 (the identity in eval mode, which the metrics use). Without normalisation the
shortcut adds the variances: under He init the activations grow about 2x per block.
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

__all__ = ["NORMS", "ResNet", "ResNetSpec", "resnet", "resnet_from_spec"]

NORMS = {None: lambda channels: nn.Identity(), "batch": nn.BatchNorm2d}


@dataclasses.dataclass(frozen=True)
class ResNetSpec(ImageSpec):
    """Everything needed to rebuild a ResNet; per-layer tuples in forward order (stem,
    block 1 conv 1, block 1 conv 2, ..., head)."""

    norm: str | None = None  # None or "batch"

    family = "resnet"

    @property
    def n_params(self) -> int:
        """Number of trainable parameters p (BatchNorm's affine pairs included)."""
        k2, m, c = self.kernel_size**2, self.width, self.in_shape[0]
        p = c * m * k2 + 2 * self.depth * m * m * k2 + m * self.out_dim
        if self.bias:
            p += (2 * self.depth + 1) * m + self.out_dim
        if self.norm == "batch":
            p += 2 * m * (2 * self.depth + 1)
        return p


class _Block(nn.Module):
    """relu(h + N(conv2(relu(N(conv1(h))))))."""

    def __init__(self, m: int, k: int, bias: bool, norm, mult: tuple[float, float]) -> None:
        super().__init__()
        self.conv1 = ScaledConv2d(m, m, k, padding=k // 2, bias=bias, multiplier=mult[0])
        self.norm1 = norm(m)
        self.conv2 = ScaledConv2d(m, m, k, padding=k // 2, bias=bias, multiplier=mult[1])
        self.norm2 = norm(m)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        r = torch.relu(self.norm1(self.conv1(h)))
        return torch.relu(h + self.norm2(self.conv2(r)))


class ResNet(nn.Module):
    """ReLU ResNet with ``depth`` basic blocks; see :func:`resnet`."""

    def __init__(self, spec: ResNetSpec) -> None:
        super().__init__()
        self.spec = spec
        self.in_shape: tuple[int, int, int] = spec.in_shape  # a plain tuple: scriptable
        c, m, k, mult = spec.in_shape[0], spec.width, spec.kernel_size, spec.multipliers
        norm = NORMS[spec.norm]
        self.stem = ScaledConv2d(c, m, k, padding=k // 2, bias=spec.bias, multiplier=mult[0])
        self.stem_norm = norm(m)
        self.blocks = nn.ModuleList(
            _Block(m, k, spec.bias, norm, (mult[1 + 2 * b], mult[2 + 2 * b]))
            for b in range(spec.depth)
        )
        self.head = ScaledLinear(m, spec.out_dim, bias=spec.bias, multiplier=mult[-1])
        attach_spec(self, "resnet")

    def weight_layers(self) -> list[nn.Module]:
        """The 2 depth + 2 weight layers in forward order."""
        convs = [conv for b in self.blocks for conv in (b.conv1, b.conv2)]
        return [self.stem, *convs, self.head]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) (or (N, C*H*W)) -> (N, out_dim)."""
        c, height, width = self.in_shape
        h = torch.relu(self.stem_norm(self.stem(x.reshape(x.shape[0], c, height, width))))
        for block in self.blocks:
            h = block(h)
        return self.head(h.mean(dim=(2, 3)))  # global average pool: (N, m, H, W) -> (N, m)

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"in_shape={s.in_shape}, width={s.width}, blocks={s.depth}, init={s.init}, "
            f"norm={s.norm}"
        )


def resnet(
    in_shape: tuple[int, int, int],
    width: int,
    depth: int,
    out_dim: int = 1,
    init: str | InitScheme = "lecun",
    bias: bool = False,
    generator: torch.Generator | None = None,
    *,
    norm: str | None = None,
    kernel_size: int = 3,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> ResNet:
    """Build a ReLU ResNet: a conv stem, ``depth`` basic blocks, GAP and a linear head.

    Args:
        in_shape: (C, H, W) of one input; inputs (N, C, H, W) or flattened (N, C*H*W).
        width: channels of every convolution (m).
        depth: residual blocks (>= 1), each two convolutions.
        out_dim: outputs k.
        init: a scheme of the registry, drawn per layer through its fans (module docstring).
        norm: None or ``"batch"`` (BatchNorm2d after every convolution).
        kernel_size: odd k; padding k // 2 keeps H x W.
        generator: the same state gives the same weights.
    """
    shape = check_in_shape(in_shape)
    m = check_positive_int("width", width)
    blocks = check_positive_int("depth", depth)
    k = check_positive_int("out_dim", out_dim)
    ks = check_positive_int("kernel_size", kernel_size)
    if ks % 2 == 0:
        raise ValueError(f"kernel_size must be odd (same padding), got {ks}")
    if not (norm is None or (isinstance(norm, str) and norm in NORMS)):
        raise ValueError(f"unknown norm {norm!r}; choices: None, 'batch'")
    scheme = get_init(init)
    return build_image_net(ResNet, ResNetSpec, shape, m, blocks, k, scheme, bias, ks,
                           2 * blocks, generator, dtype, device, norm=norm)  # fmt: skip


def resnet_from_spec(spec: ResNetSpec | dict, dtype: torch.dtype = torch.float32) -> ResNet:
    """Rebuild an (uninitialised-weights) ResNet from its spec or spec dict."""
    return ResNet(spec_from_dict(ResNetSpec, spec)).to(dtype=dtype)
