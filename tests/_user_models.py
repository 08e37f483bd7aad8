"""Networks of a user's own, as a user would write them, for tests/test_user_builders.py:
plain torch modules built by functions that take width= and depth= (and in_shape=, out_dim=
when they want them). Each failure mode robustlab must refuse has its builder here too."""

from __future__ import annotations

import math

import torch
from torch import nn


def mlp(width: int, depth: int, in_shape: tuple[int, ...], out_dim: int, act: str = "relu"):
    """A ReLU (or tanh) MLP with biases: depth linear layers, width hidden units."""
    dims = [math.prod(in_shape)] + [width] * (depth - 1) + [out_dim]
    layers: list[nn.Module] = [nn.Flatten()]
    for i in range(depth):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < depth - 1:
            layers.append(nn.ReLU() if act == "relu" else nn.Tanh())
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """depth - 1 3x3 convolutions of width channels, ReLU, global average pool, linear head."""

    def __init__(self, width: int, depth: int, in_shape: tuple[int, ...], out_dim: int) -> None:
        super().__init__()
        channels = [in_shape[0]] + [width] * (depth - 1)
        self.convs = nn.ModuleList(
            nn.Conv2d(channels[i], channels[i + 1], 3, padding=1) for i in range(depth - 1)
        )
        self.head = nn.Linear(width, out_dim)

    def forward(self, x):
        for conv in self.convs:
            x = conv(x).relu()
        return self.head(x.mean(dim=(2, 3)))


def scalar_mlp(width: int, depth: int, in_shape):
    """No out_dim parameter (so none is passed) and one output per input: (N,)."""
    return _Squeeze(mlp(width, depth, in_shape, 1))


class _Squeeze(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).squeeze(1)  # (N, 1) -> (N,)


def dropout_mlp(width: int, depth: int, in_shape, out_dim: int):
    """An MLP with dropout after each hidden layer: its training forward draws random masks."""
    net = mlp(width, depth, in_shape, out_dim)
    layers = []
    for layer in net:
        layers.append(layer)
        if isinstance(layer, nn.ReLU):
            layers.append(nn.Dropout(0.25))
    return nn.Sequential(*layers)


def needs_values(width: int, depth: int, in_shape, out_dim: int):
    """Reads a weight's value while it builds, which a meta tensor has not: checked on the CPU."""
    net = mlp(width, depth, in_shape, out_dim)
    with torch.no_grad():
        net[1].weight.mul_(1.0 / float(net[1].weight.abs().max()))
    return net


class _Bare(nn.Module):
    def __init__(self, d: int, k: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(d, k))

    def forward(self, x):
        return x.flatten(1) @ self.w


def no_layers(width: int, depth: int, in_shape, out_dim: int):
    """A linear map held in a bare nn.Parameter: no nn.Linear for a scheme to draw."""
    return _Bare(math.prod(in_shape), out_dim)


def raises(width: int, depth: int):
    """Fails when called at depth 3 (a width-depth combination it does not support)."""
    if depth == 3:
        raise ZeroDivisionError("no depth 3 here")
    return mlp(width, depth, (6,), 1)


def not_a_module(width: int, depth: int):
    return [width, depth]


def wrong_shape(width: int, depth: int, in_shape):
    return mlp(width, depth, in_shape, 2)  # two outputs where the sweep needs one


def no_depth(width: int):
    return nn.Linear(6, width)


NOT_CALLABLE = 3
