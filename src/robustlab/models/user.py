"""Networks of the user's own: a builder ``"package.module:name"`` as a sweep's model family.

A builder is a callable importable as ``package.module:name`` (a function, or an ``nn.Module``
class) that robustlab calls with keyword arguments::

    builder(width=m, depth=L, in_shape=shape, out_dim=k, **kwargs)

``in_shape`` (a tuple: one example's shape, e.g. (d,) or (C, H, W)) and ``out_dim`` are passed
only when the builder takes them (a parameter of that name, or ``**kwargs``); ``width`` and
``depth`` it must take. It returns an ``nn.Module`` that maps a batch (N, *in_shape) to
(N, out_dim), or to (N,) when out_dim is 1.

:func:`build_user_model` calls it with torch's global RNG seeded by the run's seed and put
back after (:func:`robustlab._rng.seeded_rng`), then, unless init is :data:`OWN`, draws its
linear and convolutional weights by fan-in (:func:`.fan_in.reinit_by_fan_in`) from a
``torch.Generator`` seeded with the same seed. The result is a :class:`UserNet`: the built
module, inputs (N, d) reshaped to (N, *in_shape), outputs (N, out_dim) as the built-in
families give them, and a :class:`UserSpec` recording the builder and what was drawn.

Importing the builder runs its module: a sweep file that names one is code, to be run only
when trusted, like a Python script.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._checks import check_positive_int, first_line, short
from .._rng import seeded_rng
from ..init import InitScheme, get_init
from .fan_in import layer_fans, plan_fan_in, reinit_by_fan_in, weight_layers

__all__ = [
    "GRID_ARGUMENTS",
    "OWN",
    "PARAMETERIZATIONS",
    "UserNet",
    "UserSpec",
    "build_user_model",
    "builder_arguments",
    "builder_path",
    "check_builder",
    "import_builder",
    "is_builder",
]

OWN = "own"  # the init that keeps the builder's own weights
PARAMETERIZATIONS = ("standard",)  # plain nn.Linear / nn.Conv layers have no forward multiplier
GRID_ARGUMENTS = ("width", "depth", "in_shape", "out_dim")  # what robustlab passes itself
PROBE_PARAMS = 1 << 24  # values (64 MiB in float32) up to which the check runs on the CPU
_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_REF = re.compile(rf"{_DOTTED}:{_DOTTED}")
_MAX_REF = 300


def is_builder(family: object) -> bool:
    """Whether ``family`` names a builder: ``"package.module:name"`` (dotted identifiers)."""
    return isinstance(family, str) and len(family) <= _MAX_REF and bool(_REF.fullmatch(family))


def import_builder(ref: str) -> Callable[..., nn.Module]:
    """The callable ``ref`` = ``"package.module:name"`` names (``name`` may be dotted: a class
    attribute), imported from ``sys.path``.

    Raises:
        ValueError: a malformed ref, a module that cannot be imported (or raises as it runs),
            a missing name, or a name that is not callable.
    """
    if not is_builder(ref):
        raise ValueError(f"a builder must look like package.module:name, got {short(ref)}")
    module_name, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as err:  # an ImportError, or whatever the module raised as it ran
        raise ValueError(f"cannot import {ref!r}: {first_line(err)}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"cannot import {ref!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"builder {ref!r} is not callable (its type is {type(obj).__name__})")
    return obj


def builder_path(ref: str) -> str | None:
    """The ``sys.path`` directory the builder's module was imported from (the folder above
    its top package), for worker processes whose ``sys.path`` may lack it; None for a
    module without a file. Imports the module if it is not imported yet."""
    module_name = ref.partition(":")[0]
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
    file = getattr(module, "__file__", None)
    if not file:
        return None
    path = Path(os.path.abspath(file))  # not resolved: a symlinked folder stays as imported
    up = module_name.count(".") + (path.name == "__init__.py")  # one folder per package level
    return str(path.parents[up])


def _where(args: Mapping[str, Any]) -> str:
    return f"width={args['width']}, depth={args['depth']}"


def builder_arguments(
    builder: Callable[..., nn.Module],
    ref: str,
    *,
    width: int,
    depth: int,
    in_shape: tuple[int, ...],
    out_dim: int,
    kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The keyword arguments ``builder`` is called with: width and depth, in_shape and
    out_dim where its signature takes them (a parameter of that name or ``**kwargs``; all of
    them for a callable without a readable signature), and ``kwargs``.

    Raises:
        ValueError: ``kwargs`` naming one of :data:`GRID_ARGUMENTS`, or a builder that cannot
            be called with these arguments (no ``width``/``depth`` keyword, an unknown or a
            missing argument), with its signature.
    """
    kwargs = dict(kwargs or {})
    clash = [k for k in GRID_ARGUMENTS if k in kwargs]
    if clash:
        raise ValueError(f"kwargs set {clash[0]!r}, which robustlab passes from the grid and data")
    grid = {"width": width, "depth": depth, "in_shape": tuple(in_shape), "out_dim": out_dim}
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):  # no signature to read (a C function): pass everything
        return {**grid, **kwargs}
    params = signature.parameters.values()
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    for name in ("width", "depth"):
        if name not in named and not takes_any:
            raise ValueError(
                f"builder {ref!r} must take the keyword argument {name}=; its signature is "
                f"{short(str(signature))}"
            )
    args = {k: v for k, v in grid.items() if k in named or takes_any or k in ("width", "depth")}
    args.update(kwargs)
    try:
        signature.bind(**args)
    except TypeError as err:
        raise ValueError(
            f"builder {ref!r} cannot be called with {', '.join(args)}: {first_line(err)} "
            f"(its signature is {short(str(signature))}; fixed arguments go in model.kwargs)"
        ) from None
    return args


def _call(builder: Callable[..., nn.Module], ref: str, args: dict[str, Any], seed: int):
    """``builder(**args)`` with the global RNG seeded by ``seed`` and put back after; a
    ValueError saying what went wrong where it raises or returns something else."""
    with seeded_rng(seed):
        try:
            net = builder(**args)
        except Exception as err:
            raise ValueError(
                f"builder {ref!r} raised at {_where(args)}: {type(err).__name__}: {first_line(err)}"
            ) from None
    if not isinstance(net, nn.Module):
        raise ValueError(
            f"builder {ref!r} returned a {type(net).__name__} at {_where(args)}, not a "
            "torch.nn.Module"
        )
    return net


@dataclasses.dataclass(frozen=True)
class UserSpec:
    """What a builder's network was built from and drawn with (travels in result rows).

    ``layers``, ``fan_in``, ``fan_out``: the linear and convolutional layers in the order
    they were drawn (:func:`.fan_in.weight_layers`); ``variances``: the variance each was
    drawn with, empty under init ``own`` (the builder's own weights).
    """

    builder: str
    kwargs: dict[str, Any]
    in_shape: tuple[int, ...]
    width: int
    depth: int
    out_dim: int
    init: str
    n_params: int
    layers: tuple[str, ...]
    fan_in: tuple[int, ...]
    fan_out: tuple[int, ...]
    variances: tuple[float, ...]
    parameterization: str = "standard"

    @property
    def family(self) -> str:
        """The model family of a sweep: the builder's ``package.module:name``."""
        return self.builder

    @property
    def in_dim(self) -> int:
        """d, the number of values in one input."""
        return math.prod(self.in_shape)

    @property
    def weight_variances(self) -> tuple[float, ...]:
        """The stored weights' variances: the effective ones (no forward multipliers)."""
        return self.variances

    @property
    def multipliers(self) -> tuple[float, ...]:
        """Forward multipliers: 1 for every layer (plain ``nn.Linear`` / ``nn.Conv``)."""
        return (1.0,) * len(self.layers)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON friendly)."""
        return dataclasses.asdict(self)


class UserNet(nn.Module):
    """A builder's network as robustlab runs it: ``net`` (the built module) and its ``spec``.

    Inputs (N, d) or (N, *in_shape) reach ``net`` as (N, *in_shape); its outputs (N, k), or
    (N,) for k = 1, leave as (N, k), as the built-in families' do.
    """

    def __init__(self, net: nn.Module, spec: UserSpec) -> None:
        super().__init__()
        self.net = net
        self.spec = spec
        self.in_shape: tuple[int, ...] = tuple(spec.in_shape)
        self.out_dim = int(spec.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, d) or (N, *in_shape) -> (N, out_dim)."""
        n = x.shape[0]
        return self.net(x.reshape(n, *self.in_shape)).reshape(n, self.out_dim)

    def extra_repr(self) -> str:
        s = self.spec
        return f"builder={s.builder}, width={s.width}, depth={s.depth}, init={s.init}"


def _ref_of(builder: str | Callable[..., nn.Module]) -> str:
    if isinstance(builder, str):
        return builder
    return f"{getattr(builder, '__module__', '?')}:{getattr(builder, '__qualname__', '?')}"


def build_user_model(
    builder: str | Callable[..., nn.Module],
    in_shape: tuple[int, ...],
    width: int,
    depth: int,
    out_dim: int = 1,
    *,
    init: str | InitScheme = "lecun",
    kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> UserNet:
    """Build a network with the user's builder, initialized as a sweep run with ``seed`` does.

    Args:
        builder: ``"package.module:name"`` (imported) or the callable itself.
        in_shape: one input's shape; width, depth, out_dim: passed as the builder takes them
            (:func:`builder_arguments`); kwargs: its fixed keyword arguments.
        init: a scheme of :mod:`robustlab.init` with the standard parameterization: every
            ``nn.Linear`` / ``nn.Conv*`` weight is drawn by fan-in from
            ``torch.Generator().manual_seed(seed)``, biases set to 0
            (:func:`.fan_in.reinit_by_fan_in`); or ``"own"``: the builder's own init.
        seed: seeds the global RNG while the builder runs (put back after) and the draws.

    Returns:
        A :class:`UserNet` in eval mode (the trainer switches it to train mode for its steps;
        the metrics evaluate it in eval mode).
    """
    ref = _ref_of(builder)
    fn = import_builder(builder) if isinstance(builder, str) else builder
    args = builder_arguments(
        fn, ref, width=check_positive_int("width", width), depth=check_positive_int("depth", depth),
        in_shape=tuple(int(s) for s in in_shape), out_dim=check_positive_int("out_dim", out_dim),
        kwargs=kwargs,
    )  # fmt: skip
    net = _call(fn, ref, args, seed).to(dtype=dtype, device=device)
    layers = weight_layers(net)
    fans = [layer_fans(m) for _, m in layers]
    variances: tuple[float, ...] = ()
    name = OWN
    if init != OWN:
        name = get_init(init).name
        plan = reinit_by_fan_in(net, init, torch.Generator().manual_seed(seed))
        variances = plan.weight_variances
    spec = UserSpec(
        builder=ref, kwargs=dict(kwargs or {}), in_shape=tuple(int(s) for s in in_shape),
        width=int(width), depth=int(depth), out_dim=int(out_dim), init=name,
        n_params=sum(p.numel() for p in net.parameters()),
        layers=tuple(n for n, _ in layers), fan_in=tuple(fi for fi, _ in fans),
        fan_out=tuple(fo for _, fo in fans), variances=tuple(variances),
    )  # fmt: skip
    return UserNet(net, spec).eval()


def _probe(fn, ref: str, args: dict[str, Any], in_shape: tuple[int, ...]):
    """The network ``fn(**args)`` and its output on a batch of 2 zero inputs, built on the
    meta device first (nothing allocated): a network of at most :data:`PROBE_PARAMS` values
    is then built and run on the CPU in float32 (faster than a meta forward, whose first call
    loads torch's meta kernels, about a second), a larger one runs on the meta device, or on
    the CPU where something in it has no meta version."""
    try:
        with torch.device("meta"):
            meta = _call(fn, ref, args, 0)
        size = sum(t.numel() for t in (*meta.parameters(), *meta.buffers()))
    except Exception:  # no meta version of something in the builder: the CPU says what fails
        meta, size = None, 0
    if meta is not None and size > PROBE_PARAMS:
        try:
            with torch.no_grad():
                return meta, meta.eval()(torch.zeros(2, *in_shape, device="meta"))
        except Exception:  # a forward without a meta version (or a failing one): on the CPU
            pass
    net = _call(fn, ref, args, 0)
    try:
        with torch.no_grad():
            return net, net.eval()(torch.zeros(2, *in_shape))
    except Exception as err:
        raise ValueError(
            f"builder {ref!r}'s network at {_where(args)} fails on a batch of 2 inputs of "
            f"shape {in_shape}: {type(err).__name__}: {first_line(err)}"
        ) from None


def check_builder(
    ref: str,
    kwargs: Mapping[str, Any] | None,
    in_shape: tuple[int, ...],
    out_dim: int,
    shapes: Iterable[tuple[int, int]],
    inits: Iterable[str] = (),
) -> None:
    """Check before any run that the builder ``ref`` builds what a sweep needs: it imports,
    takes the arguments, and at each (width, depth) of ``shapes`` returns an ``nn.Module``
    mapping a batch of 2 inputs of ``in_shape`` to (2, out_dim) (or (2,) for out_dim 1) whose
    layers every scheme of ``inits`` can draw. One network per shape, large ones on the meta
    device (see :func:`_probe`).

    Raises:
        ValueError: one line saying what is wrong, at which width and depth.
    """
    fn = import_builder(ref)
    shape = tuple(int(s) for s in in_shape)
    want = [(2, out_dim), (2,)] if out_dim == 1 else [(2, out_dim)]
    for width, depth in dict.fromkeys(shapes):
        args = builder_arguments(fn, ref, width=width, depth=depth, in_shape=shape,
                                 out_dim=out_dim, kwargs=kwargs)  # fmt: skip
        net, out = _probe(fn, ref, args, shape)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) not in want:
            got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else short(out)
            raise ValueError(
                f"builder {ref!r}'s network at {_where(args)} maps a batch of 2 inputs of shape "
                f"{shape} to {got}; expected {' or '.join(map(str, want))}"
            )
        for init in dict.fromkeys(inits):
            if init != OWN:
                try:
                    plan_fan_in(net, init)
                except ValueError as err:
                    raise ValueError(f"builder {ref!r} at {_where(args)}: {err}") from None
