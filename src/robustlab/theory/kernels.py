"""Infinite-width NNGP and NTK of robustlab's bias-free ReLU MLPs (arc-cosine recursion).

The network is ``rl.mlp(d, m, L, init=...)`` with one output and no biases,

    h^1 = c_1 W_1 x,   h^l = c_l W_l relu(h^{l-1}) (l = 2..L),   f(x) = h^L,

whose stored weights have i.i.d. N(0, v_l) entries and forward multipliers c_l; the
effective variances are s_l = c_l^2 v_l (``get_init(init).variances(d, m)`` gives (s1, s2,
s3) of the first, hidden and last layers, ``.weight_variances`` the v's: v = s under the
standard parameterization, v = 1 under ``ntk_param``). Everything reduces to the cosine
rho = x.x' / (|x| |x'|) and the normalised arc-cosine functions of Cho & Saul (2009),

    kappa_0(rho) = (pi - arccos rho) / pi,
    kappa_1(rho) = (sqrt(1 - rho^2) + (pi - arccos rho) rho) / pi,

with E[relu(u) relu(v)] = sqrt(ab)/2 kappa_1(rho) and E[relu'(u) relu'(v)] = kappa_0(rho)/2
for (u, v) Gaussian with variances a, b and correlation rho.
"""

from __future__ import annotations

import math

import torch

from .._checks import check_positive_int
from ..init import InitScheme, get_init

__all__ = ["nngp", "ntk"]

# Width at which a scheme's kernels are compared to decide whether they depend on width.
_PROBE_WIDTH = 1 << 20
# kappa_0'(rho) = 1 / (pi sqrt(1 - rho^2)) is infinite at rho = +-1 (the NTK has a kink on
# its diagonal); the derivative uses 1 - rho^2 >= this floor, a bound of ~3e5.
_SLOPE_FLOOR = 1e-12


def _kappa0_slope(rho: torch.Tensor) -> torch.Tensor:
    """d kappa_0 / d rho = 1 / (pi sqrt(1 - rho^2)), with 1 - rho^2 floored (see above)."""
    return 1.0 / (math.pi * torch.sqrt(torch.clamp(1.0 - rho * rho, min=_SLOPE_FLOOR)))


class _Kappa0(torch.autograd.Function):
    """kappa_0 with the floored derivative (arccos' is -inf at +-1: a naive graph gives NaN)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(rho):
        return 1.0 - torch.arccos(rho) / math.pi

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        (rho,) = ctx.saved_tensors
        return grad * _kappa0_slope(rho)

    @staticmethod
    def jvp(ctx, tangent):
        (rho,) = ctx.saved_tensors
        return tangent * _kappa0_slope(rho)


class _Kappa1(torch.autograd.Function):
    """kappa_1 with its exact derivative kappa_0 (finite at rho = 1, where the formula is not)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(rho):
        root = torch.sqrt(torch.clamp(1.0 - rho * rho, min=0.0))
        return (root + (math.pi - torch.arccos(rho)) * rho) / math.pi

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        (rho,) = ctx.saved_tensors
        return grad * _Kappa0.apply(rho)  # differentiable: double backward works

    @staticmethod
    def jvp(ctx, tangent):
        (rho,) = ctx.saved_tensors
        return tangent * _Kappa0.apply(rho)


def layer_variances(
    init: str | InitScheme, in_dim: int, width: int, depth: int
) -> tuple[list[float], list[float]]:
    """Per-layer effective variances s_l and stored-weight variances v_l, l = 1..L.

    Layer 1 takes the scheme's first-layer value, layers 2..L-1 the hidden one, layer L the
    last one (a depth-1 network is its first layer), as ``rl.mlp`` assigns them.
    """
    d = check_positive_int("in_dim", in_dim)
    m = check_positive_int("width", width)
    L = check_positive_int("depth", depth)
    scheme = get_init(init)
    s1, s2, s3 = scheme.variances(d, m, 1)
    v1, v2, v3 = scheme.weight_variances(d, m, 1)
    if L == 1:
        return [s1], [v1]
    return [s1] + [s2] * (L - 2) + [s3], [v1] + [v2] * (L - 2) + [v3]


def angular(
    rho: torch.Tensor,
    s: list[float],
    v: list[float],
    width: int,
    *,
    slopes: bool = False,
    fixed_patterns: bool = False,
) -> tuple[torch.Tensor, ...]:
    """NNGP and NTK divided by |x| |x'|, as functions of the cosine rho (any shape).

    Returns ``(k, theta)``, or ``(k, theta, dk/drho, dtheta/drho)`` with ``slopes=True``
    (propagated by hand in forward mode, no graph: the lazy limit's input gradients).
    The recursion, with D_1 = s_1, rho_1 = rho and for l = 1..L-1
    ``D_{l+1} = D_l m s_{l+1} / 2``, ``rho_{l+1} = kappa_1(rho_l)``,
    ``dot_l = (m s_{l+1} / 2) kappa_0(rho_l)``, is
    ``k = D_L rho_L`` and ``theta = sum_l (D_l rho_l / v_l) prod_{j=l}^{L-1} dot_j``.

    ``fixed_patterns=True`` holds the dot_j factors constant in ``dtheta/drho``: the
    large-width limit of the autograd derivative of a finite network's empirical NTK in
    its first argument, where the ReLU patterns 1[h > 0] (whose expectation is
    kappa_0) are piecewise constant in x and contribute nothing almost everywhere.
    """
    big_d = s[0]
    r = rho
    theta = r * (big_d / v[0])
    if slopes:
        dr = torch.ones_like(rho)
        dtheta = dr * (big_d / v[0])
    for l in range(1, len(s)):
        half = width * s[l] / 2.0
        k0 = _Kappa0.apply(r)
        dot = k0 * half
        if slopes:
            dtheta = dtheta * dot
            if not fixed_patterns:
                dtheta = dtheta + theta * (_kappa0_slope(r) * dr * half)
            dr = k0 * dr  # kappa_1' = kappa_0
        r = _Kappa1.apply(r)
        big_d = big_d * half
        theta = theta * dot + r * (big_d / v[l])
        if slopes:
            dtheta = dtheta + dr * (big_d / v[l])
    if slopes:
        return r * big_d, theta, dr * big_d, dtheta
    return r * big_d, theta


def _prepare(x1, x2, dtype):
    for name, x in (("x1", x1), ("x2", x2)):
        if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[0] < 1:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a tensor of shape (N, d) with N >= 1, got {shape}")
    a = x1.reshape(x1.shape[0], -1).to(dtype)
    b = x2.reshape(x2.shape[0], -1).to(dtype)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x1 and x2 differ in dimension: {a.shape[1]} vs {b.shape[1]}")
    return a, b


def cosines(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """|x_i| |x'_j| (N1, N2) and the cosines rho_ij clamped to [-1, 1] (0 where a norm is 0)."""
    na = torch.linalg.vector_norm(a, dim=1)
    nb = torch.linalg.vector_norm(b, dim=1)
    norms = na[:, None] * nb[None, :]
    tiny = torch.finfo(a.dtype).tiny
    rho = (a @ b.T) / torch.clamp(norms, min=tiny)
    return norms, torch.clamp(rho, -1.0, 1.0)


def width_free(init: str | InitScheme, d: int, depth: int, which: int) -> bool:
    """Whether the kernel ``which`` (0 NNGP, 1 NTK) at rho = 1 is the same at widths M, 2M."""
    one = torch.ones((), dtype=torch.float64)
    vals = [
        float(angular(one, *layer_variances(init, d, w, depth), w)[which])
        for w in (_PROBE_WIDTH, 2 * _PROBE_WIDTH)
    ]
    return math.isclose(vals[0], vals[1], rel_tol=1e-9)


def nngp(
    x1: torch.Tensor,
    x2: torch.Tensor | None,
    init: str | InitScheme,
    depth: int,
    width: int | None = None,
    *,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """NNGP kernel K(x1, x2) = lim_m E[f(x1) f(x2)] of ``rl.mlp(d, m, depth, init=init)``.

    The output of the network at initialization converges to a Gaussian process with this
    covariance (Neal 1996; Lee et al., ICLR 2018). Recursion over the L layers
    (Cho & Saul, NeurIPS 2009; Arora et al., NeurIPS 2019, eq. 4 without biases):

        Sigma^1(x, x') = s_1 x.x'
        Sigma^l(x, x') = m s_l E_{(u,v) ~ N(0, Sigma^{l-1})}[relu(u) relu(v)]      l = 2..L
                       = (m s_l / 2) sqrt(Sigma^{l-1}(x,x) Sigma^{l-1}(x',x')) kappa_1(rho_{l-1})
        K(x, x') = Sigma^L(x, x') = D_L |x| |x'| kappa_1^{(L-1)}(rho),
        D_L = s_1 prod_{l=2}^{L} (m s_l / 2)

    Symbols -> arguments: x, x' = rows of ``x1``, ``x2``; L = ``depth``; m = ``width``;
    d = the inputs' dimension; (s_1, s_l hidden, s_L) = ``get_init(init).variances(d, m)``,
    the variances of the *effective* weights c_l W_l (so ``ntk_param`` has the same K as a
    standard network with those variances). The diagonal is exact at every width:
    E f(x)^2 = D_L |x|^2.

    For lecun, he, ntk and ntk_param the products m s_l make K independent of m and
    ``width`` may be omitted; schemes whose K changes with m (xavier: K ~ 1/m, a custom
    constant s2: K grows as m^(L-2)) need ``width``.

    Args:
        x1: (N1, ...) points (flattened to (N1, d)); cast to ``dtype``.
        x2: (N2, ...) points, or None for ``x1``.
        init: scheme name or :class:`~robustlab.InitScheme` (``custom(...)`` included).
        depth: L >= 1 weight layers.
        width: hidden width m (optional, see above).
        dtype: computation and output dtype (float64 by default).

    Returns:
        (N1, N2) tensor, differentiable in x1 and x2 by autograd (first and second
        derivatives; on the diagonal the arc-cosine derivatives are taken at their limits).
    """
    a, b = _prepare(x1, x1 if x2 is None else x2, dtype)
    L = check_positive_int("depth", depth)
    if width is None:
        if not width_free(init, a.shape[1], L, 0):
            raise ValueError(
                f"the NNGP of init {get_init(init).name!r} depends on the width; pass width="
            )
        width = _PROBE_WIDTH
    s, v = layer_variances(init, a.shape[1], width, L)
    norms, rho = cosines(a, b)
    return norms * angular(rho, s, v, width)[0]


def ntk(
    x1: torch.Tensor,
    x2: torch.Tensor | None,
    init: str | InitScheme,
    depth: int,
    width: int,
    *,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """NTK Theta(x1, x2): the large-width expectation of the empirical NTK of ``rl.mlp``.

    The empirical NTK of a network f(x; theta) is sum_theta df(x)/dtheta df(x')/dtheta over
    its trainable parameters -- here the *stored* weights W_l of ``rl.mlp(d, m, L,
    init=init)`` (Jacot et al., NeurIPS 2018; Arora et al., NeurIPS 2019, eq. 5 without
    biases). Since df/dW_l = c_l delta_l a_{l-1}^T, layer l contributes
    c_l^2 (a_{l-1}.a'_{l-1}) (delta_l.delta'_l) -> Sigma^l / v_l times the backward factors:

        Theta(x, x') = sum_{l=1}^{L} (Sigma^l(x, x') / v_l) prod_{j=l}^{L-1} Sigmadot^j(x, x')
        Sigmadot^j(x, x') = m s_{j+1} E_{N(0, Sigma^j)}[relu'(u) relu'(v)]
                          = (m s_{j+1} / 2) kappa_0(rho_j)

    with Sigma^l, rho_l = kappa_1^{(l-1)}(rho) as in :func:`nngp` and v_l the variance of
    the stored weights of layer l.

    Symbols -> arguments: as in :func:`nngp`; v_l = ``get_init(init).weight_variances``.

    Scale: under the *standard* parameterization (lecun, he, ntk, xavier, custom) v_l = s_l
    and the hidden and last layers contribute Sigma^l / s_l ~ m, so Theta grows linearly with
    ``width`` (what gradient descent on ``rl.mlp`` actually sees: its stable step ~ 1/m).
    Under ``ntk_param`` (v_l = 1) Theta does not depend on m (Jacot et al.'s limit).

    Args:
        x1: (N1, ...) points (flattened to (N1, d)); cast to ``dtype``.
        x2: (N2, ...) points, or None for ``x1``.
        init: scheme name or :class:`~robustlab.InitScheme`.
        depth: L >= 1 weight layers.
        width: hidden width m (required: it sets the scale under standard parameterization).
        dtype: computation and output dtype (float64 by default).

    Returns:
        (N1, N2) tensor, differentiable in x1 and x2 by autograd. On the diagonal
        (x1_i = x2_j) Theta has a kink (kappa_0 is not differentiable at rho = 1); autograd
        returns the symmetric (zero-slope) derivative there.
    """
    a, b = _prepare(x1, x1 if x2 is None else x2, dtype)
    L = check_positive_int("depth", depth)
    m = check_positive_int("width", width)
    s, v = layer_variances(init, a.shape[1], m, L)
    norms, rho = cosines(a, b)
    return norms * angular(rho, s, v, m)[1]
