"""Network families as one registry: how a sweep (or any caller) builds a network by name.

Each :class:`Family` builds its networks from an input shape, width, depth and output size
under a named initialization (the scheme registry of :mod:`robustlab.init`). A sweep's
``model.family`` is a key of :data:`FAMILIES`, or a builder of the user's own
(``"package.module:name"``, :mod:`.user`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..init import PARAMETERIZATIONS, InitScheme, get_init
from ._mlp import mlp
from ._resnet import resnet
from .conv import cnn

__all__ = ["FAMILY_NAMES", "Family", "build_model", "get_family"]


@dataclass(frozen=True)
class Family:
    """A network family.

    Attributes:
        name: registry key.
        build: ``(in_shape, width, depth, out_dim, init, bias, generator, dtype, device,
            **options) -> nn.Module``.
        image: needs inputs of shape (C, H, W) (``in_shape`` with three entries).
        options: the extra keyword options it takes (e.g. ``norm`` for ResNets).
        mlp: built from whole-network (d, m, k) variances, so it takes every
            parameterization; the other families only those defined per layer
            (``Parameterization.layers``).
    """

    name: str
    build: Callable[..., nn.Module]
    image: bool = False
    options: tuple[str, ...] = ()
    mlp: bool = False

    @property
    def parameterizations(self) -> tuple[str, ...]:
        """The init parameterizations (:data:`robustlab.init.PARAMETERIZATIONS`) it takes."""
        return tuple(n for n, p in PARAMETERIZATIONS.items() if self.mlp or p.layers)


def _mlp(in_shape, width, depth, out_dim, init, bias, generator, dtype, device, **kw):
    return mlp(math.prod(in_shape), width, depth, out_dim, init=init, bias=bias,
               generator=generator, dtype=dtype, device=device, **kw)  # fmt: skip


def _cnn(in_shape, width, depth, out_dim, init, bias, generator, dtype, device):
    return cnn(tuple(in_shape), width, depth, out_dim, init=init, bias=bias,
               generator=generator, dtype=dtype, device=device)  # fmt: skip


def _resnet(in_shape, width, depth, out_dim, init, bias, generator, dtype, device, norm=None):
    return resnet(tuple(in_shape), width, depth, out_dim, init=init, bias=bias,
                  generator=generator, norm=norm, dtype=dtype, device=device)  # fmt: skip


_REGISTRY: dict[str, Family] = {
    f.name: f
    for f in (
        Family("mlp", _mlp, mlp=True),
        Family("cnn", _cnn, image=True),
        Family("resnet", _resnet, image=True, options=("norm",)),
    )
}
FAMILY_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def get_family(name: str) -> Family:
    """The family called ``name``; a ValueError naming the choices otherwise."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model family {name!r}; choices: {', '.join(FAMILY_NAMES)}")
    return _REGISTRY[name]


def build_model(
    family: str,
    in_shape: tuple[int, ...],
    width: int,
    depth: int,
    out_dim: int = 1,
    *,
    init: str | InitScheme = "lecun",
    bias: bool = False,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    parameterization: str | None = None,
    mean_field: bool = False,
    **options,
) -> nn.Module:
    """Build a network of ``family`` for inputs of shape ``in_shape`` (one example).

    Raises:
        ValueError: unknown family, an image family on inputs that are not (C, H, W),
            a ``parameterization`` the family or the scheme does not have (e.g. the two-layer
            mean-field one on a CNN; ``mean_field=True`` is ``parameterization="mean_field"``),
            or an unknown option.
    """
    fam = get_family(family)
    shape = tuple(int(s) for s in in_shape)
    if fam.image and len(shape) != 3:
        raise ValueError(
            f"model family {family!r} needs image inputs of shape (C, H, W), got {shape}; "
            "use image data or set model.in_shape"
        )
    unknown = set(options) - set(fam.options)
    if unknown:
        raise ValueError(f"model family {family!r} takes no option {sorted(unknown)[0]!r}")
    if mean_field:  # the flag of rl.mlp(..., mean_field=True)
        parameterization = parameterization or "mean_field"
    if parameterization is not None and parameterization not in fam.parameterizations:
        raise ValueError(f"model family {family!r} has no {parameterization} parameterization")
    init = get_init(init).with_parameterization(parameterization)
    return fam.build(shape, width, depth, out_dim, init, bias, generator, dtype, device, **options)
