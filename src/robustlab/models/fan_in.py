"""Any module's linear and convolutional weights drawn by fan-in under a named scheme.

The built-in families know their layers' roles; a module of the user's own is read in the
order it registers its submodules (:meth:`torch.nn.Module.modules`: for ``nn.Sequential`` and
the usual ``__init__`` that creates layers in the order ``forward`` calls them, the forward
order). Every ``nn.Linear`` and ``nn.Conv*`` (``nn.Conv1d/2d/3d`` and the transposed ones) is a
weight layer: the first has the role ``"first"``, the last ``"last"``, the others ``"hidden"``
(one layer alone is ``"first"``, as for a one-layer MLP). Each is drawn i.i.d. N(0, v), v the
scheme's variance for its role and fans (:meth:`robustlab.init.InitScheme.layer_variance`),
its bias set to 0 as in the built-in families (:func:`._layers.draw_weights`). Other parameters
(normalisation, embeddings, a bare ``nn.Parameter``) keep the values their module gave them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..init import InitScheme, get_init
from ._layers import LayerPlan, draw_weights, plan_layers

__all__ = ["layer_fans", "plan_fan_in", "reinit_by_fan_in", "weight_layers"]

_WEIGHT_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)  # _ConvNd: every nn.Conv* and ConvTranspose*


def weight_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, layer)`` of every ``nn.Linear`` and ``nn.Conv*`` in ``module``, in the order
    the module registers them (a layer used twice counts once)."""
    return [(n, m) for n, m in module.named_modules() if isinstance(m, _WEIGHT_LAYERS)]


def layer_fans(layer: nn.Module) -> tuple[int, int]:
    """(fan_in, fan_out) of a linear or convolutional layer.

    ``nn.Linear``: (in_features, out_features). A convolution with kernel k_1 x ... x k_n and
    ``groups`` g: fan_in = (C_in / g) prod k, fan_out = C_out prod k (He et al., ICCV 2015; the
    fans of :func:`robustlab.cnn`). A transposed convolution is counted the same way, which is
    its exact fan-in at stride 1.
    """
    if isinstance(layer, nn.Linear):
        return int(layer.in_features), int(layer.out_features)
    if isinstance(layer, nn.modules.conv._ConvNd):
        k = math.prod(layer.kernel_size)
        return layer.in_channels // layer.groups * k, layer.out_channels * k
    raise ValueError(f"{type(layer).__name__} is not a linear or convolutional layer")


def _roles(n: int) -> list[str]:
    return ["first"] if n == 1 else ["first"] + ["hidden"] * (n - 2) + ["last"]


def plan_fan_in(module: nn.Module, init: str | InitScheme) -> LayerPlan:
    """The per-layer init of ``module``'s weight layers under ``init`` (nothing is drawn).

    Raises:
        ValueError: no weight layer, or a scheme whose layers need forward multipliers
            (``ntk_param``, mean field): a module's own layers have none.
    """
    scheme = get_init(init)
    layers = weight_layers(module)
    if not layers:
        raise ValueError(
            f"init {scheme.name!r} draws nn.Linear and nn.Conv weights by fan-in, and the "
            "network has none; keep its own init with init 'own'"
        )
    fans = [layer_fans(m) for _, m in layers]
    plan = plan_layers(
        scheme, [(r, fi, fo) for r, (fi, fo) in zip(_roles(len(fans)), fans, strict=True)]
    )
    if any(c != 1.0 for c in plan.multipliers):
        raise ValueError(
            f"init {scheme.name!r} has the {scheme.parameterization} parameterization, whose "
            "forward multipliers only robustlab's own layers have; use a standard scheme"
        )
    return plan


@torch.no_grad()
def reinit_by_fan_in(
    module: nn.Module, init: str | InitScheme, generator: torch.Generator | None = None
) -> LayerPlan:
    """Draw every linear and convolutional weight of ``module`` by fan-in (in place).

    Layer l (in :func:`weight_layers` order, role first / hidden / last) gets weights i.i.d.
    N(0, v_l), v_l = ``init.layer_variance(role, fan_in, fan_out)`` (:func:`layer_fans`), drawn
    in float64 on the CPU from ``generator`` layer after layer, so the same generator state
    gives the same weights on any device and dtype; biases are set to 0. Other parameters
    are left alone.

    Returns:
        The :class:`~._layers.LayerPlan` drawn: roles, fans and variances per layer.

    Raises:
        ValueError: as :func:`plan_fan_in`.
    """
    plan = plan_fan_in(module, init)
    draw_weights([m for _, m in weight_layers(module)], plan.weight_variances, generator)
    return plan
