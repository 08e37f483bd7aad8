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
# its diagonal). There (c = 1 - rho = 0 exactly, i.e. parallel inputs) the slope is set to
# this finite value: it only ever multiplies dc/dx = 0, so the derivative is the symmetric
# (zero-slope) one; everywhere else the slope is exact, however close to the diagonal.
_DIAGONAL_SLOPE = 1e6 / math.pi
# Pairs with 1 - rho below this get 1 - rho from their unit vectors' difference, not from
# the dot product (whose rounding error, ~sqrt(d) ulp, is all of 1 - rho near the diagonal).
_NEAR = 0.05
# Pairs per block of that recomputation (keeps its (pairs, d) difference bounded).
_NEAR_BLOCK_ELEMS = 1 << 22
# Below this angle sin t - t cos t is summed as its series (the direct form cancels).
_SERIES_ANGLE = 0.5


def _angle(c: torch.Tensor) -> torch.Tensor:
    """t = arccos(1 - c) from the complement c = 1 - rho in [0, 2], exact as c -> 0.

    t = 2 arcsin(sqrt(c / 2)) (since 1 - cos t = 2 sin^2(t/2)); for c > 1 the mirrored
    form pi - 2 arcsin(sqrt(1 - c/2)) keeps arcsin away from its infinite slope at 1.
    """
    half = torch.clamp(0.5 * c, 0.0, 1.0)
    low = 2.0 * torch.arcsin(torch.sqrt(half))
    high = math.pi - 2.0 * torch.arcsin(torch.sqrt(1.0 - half))
    return torch.where(half <= 0.5, low, high)


def _sin_minus_t_cos(t: torch.Tensor) -> torch.Tensor:
    """S(t) = sin t - t cos t >= 0, by its series sum_k (-1)^(k+1) 2k t^(2k+1) / (2k+1)!
    below 0.5 (8 terms: relative error < 1e-17) and directly above."""
    small = torch.clamp(t, max=_SERIES_ANGLE)
    t2 = small * small
    term, series = small * t2 / 3.0, torch.zeros_like(t)  # k = 1: 2 t^3 / 3!
    for k in range(1, 9):
        series = series + term
        term = -term * t2 / (2 * k * (2 * k + 3))  # ratio of terms k+1 and k
    return torch.where(t <= _SERIES_ANGLE, series, torch.sin(t) - t * torch.cos(t))


def _kappa0_slope(c: torch.Tensor) -> torch.Tensor:
    """d kappa_0 / d rho = 1 / (pi sqrt(1 - rho^2)) at rho = 1 - c, where 1 - rho^2 =
    c (2 - c); ``_DIAGONAL_SLOPE`` where that is 0 (see above)."""
    q = c * (2.0 - c)
    inside = q > 0
    root = torch.sqrt(torch.where(inside, q, torch.ones_like(q)))  # no inf in either branch
    return torch.where(inside, 1.0 / (math.pi * root), torch.full_like(q, _DIAGONAL_SLOPE))


class _Kappa0(torch.autograd.Function):
    """kappa_0(rho) = 1 - t / pi as a function of c = 1 - rho (t from :func:`_angle`), with
    the derivative d/dc = -kappa_0'(rho), finite on the diagonal (arccos' is -inf at +-1:
    a naive graph gives NaN; see ``_DIAGONAL_SLOPE``)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(c):
        return 1.0 - _angle(c) / math.pi

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        (c,) = ctx.saved_tensors
        return -grad * _kappa0_slope(c)

    @staticmethod
    def jvp(ctx, tangent):
        (c,) = ctx.saved_tensors
        return -tangent * _kappa0_slope(c)


class _Comp1(torch.autograd.Function):
    """1 - kappa_1(rho) as a function of c = 1 - rho: with t = arccos rho,
    1 - kappa_1 = (1 - cos t) - (sin t - t cos t) / pi = c - S(t) / pi, which keeps its
    relative precision as c -> 0 (the next layer's complement). Its derivative in c is
    kappa_1'(rho) = kappa_0(rho), finite at rho = 1, where the arccos form is not."""

    generate_vmap_rule = True

    @staticmethod
    def forward(c):
        return torch.clamp(c - _sin_minus_t_cos(_angle(c)) / math.pi, min=0.0)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        (c,) = ctx.saved_tensors
        return grad * _Kappa0.apply(c)  # differentiable: double backward works

    @staticmethod
    def jvp(ctx, tangent):
        (c,) = ctx.saved_tensors
        return tangent * _Kappa0.apply(c)


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
    comp: torch.Tensor,
    s: list[float],
    v: list[float],
    width: int,
    *,
    slopes: bool = False,
    fixed_patterns: bool = False,
) -> tuple[torch.Tensor, ...]:
    """NNGP and NTK divided by |x| |x'|, as functions of c = 1 - rho (any shape), where
    rho is the cosine of the two inputs (:func:`cosines` gives c exactly on the diagonal).

    Returns ``(k, theta)``, or ``(k, theta, dk/drho, dtheta/drho)`` with ``slopes=True``
    (propagated by hand in forward mode, no graph: the lazy limit's input gradients).
    The recursion, with D_1 = s_1, rho_1 = rho and for l = 1..L-1
    ``D_{l+1} = D_l m s_{l+1} / 2``, ``rho_{l+1} = kappa_1(rho_l)``,
    ``dot_l = (m s_{l+1} / 2) kappa_0(rho_l)``, is
    ``k = D_L rho_L`` and ``theta = sum_l (D_l rho_l / v_l) prod_{j=l}^{L-1} dot_j``.
    Each layer carries c_l = 1 - rho_l (exact near rho = 1, where rho_l itself rounds
    to 1 and arccos would amplify the rounding; see :class:`_Comp1`).

    ``fixed_patterns=True`` holds the dot_j factors constant in ``dtheta/drho``: the
    large-width limit of the autograd derivative of a finite network's empirical NTK in
    its first argument, where the ReLU patterns 1[h > 0] (whose expectation is
    kappa_0) are piecewise constant in x and contribute nothing almost everywhere.
    """
    big_d = s[0]
    c = comp
    theta = (1.0 - c) * (big_d / v[0])
    if slopes:
        dr = torch.ones_like(comp)
        dtheta = dr * (big_d / v[0])
    for l in range(1, len(s)):
        half = width * s[l] / 2.0
        k0 = _Kappa0.apply(c)
        dot = k0 * half
        if slopes:
            dtheta = dtheta * dot
            if not fixed_patterns:
                dtheta = dtheta + theta * (_kappa0_slope(c) * dr * half)
            dr = k0 * dr  # kappa_1' = kappa_0
        c = _Comp1.apply(c)
        big_d = big_d * half
        theta = theta * dot + (1.0 - c) * (big_d / v[l])
        if slopes:
            dtheta = dtheta + dr * (big_d / v[l])
    if slopes:
        return (1.0 - c) * big_d, theta, dr * big_d, dtheta
    return (1.0 - c) * big_d, theta


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


def unit_difference(
    a: torch.Tensor, b: torch.Tensor, na: torch.Tensor, nb: torch.Tensor
) -> torch.Tensor:
    """u - u' = a / |a| - b / |b| for rows a, b (..., d) of norms na, nb > 0 (...), as
    (a - b) / |a| - b (|a| - |b|) / (|a| |b|) with |a| - |b| = (a - b).(a + b) / (|a| + |b|):
    every term is formed from the difference a - b, so the result keeps its relative
    precision as b -> a (and as b -> lambda a), and is 0 exactly when b = a."""
    diff = a - b
    dn = (diff * (a + b)).sum(-1) / (na + nb)  # |a| - |b|
    return diff / na[..., None] - b * (dn / (na * nb))[..., None]


def _near_comp(a: torch.Tensor, b: torch.Tensor, na: torch.Tensor, nb: torch.Tensor):
    """c = 1 - rho = |u - u'|^2 / 2 (:func:`unit_difference`), exact near the diagonal."""
    return 0.5 * unit_difference(a, b, na, nb).square().sum(-1)


def cosines(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """|x_i| |x'_j| (N1, N2) and c_ij = 1 - rho_ij in [0, 2], rho the cosine (c = 1 where a
    norm is 0).

    c = 1 - u.u' from the unit vectors' dot product, except where that is below 0.05:
    there c = |u - u'|^2 / 2 (the same quantity, since |u| = |u'| = 1) from the inputs'
    difference (:func:`_near_comp`), whose rounding error is relative, so c = 0 exactly
    on the diagonal and the angle is exact near it. Differentiable in a and b (first and
    second derivatives).
    """
    tiny = torch.finfo(a.dtype).tiny
    na = torch.linalg.vector_norm(a, dim=1)
    nb = torch.linalg.vector_norm(b, dim=1)
    ua = a / torch.clamp(na, min=tiny)[:, None]  # (N1, d)
    ub = b / torch.clamp(nb, min=tiny)[:, None]  # (N2, d)
    comp = torch.clamp(1.0 - ua @ ub.T, 0.0, 2.0)  # (N1, N2)
    with torch.no_grad():
        near = (comp < _NEAR) & (na[:, None] > 0) & (nb[None, :] > 0)
    d = a.shape[1]
    if comp.numel() * d <= _NEAR_BLOCK_ELEMS:  # small: one dense pass (vmap-safe)
        safe_a, safe_b = torch.clamp(na, min=tiny), torch.clamp(nb, min=tiny)
        exact = _near_comp(a[:, None], b[None], safe_a[:, None], safe_b[None])
        return na[:, None] * nb[None, :], torch.where(near, exact, comp)
    rows, cols = near.nonzero(as_tuple=True)
    if rows.numel():
        block = max(1, _NEAR_BLOCK_ELEMS // d)
        exact = torch.cat(
            [
                _near_comp(a[i], b[j], na[i], nb[j])
                for i, j in zip(rows.split(block), cols.split(block), strict=True)
            ]
        )
        comp = comp.index_put((rows, cols), exact)
    return na[:, None] * nb[None, :], comp


def width_free(init: str | InitScheme, d: int, depth: int, which: int) -> bool:
    """Whether the kernel ``which`` (0 NNGP, 1 NTK) at rho = 1 is the same at widths M, 2M."""
    zero = torch.zeros((), dtype=torch.float64)  # c = 1 - rho = 0
    vals = [
        float(angular(zero, *layer_variances(init, d, w, depth), w)[which])
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
    norms, comp = cosines(a, b)
    return norms * angular(comp, s, v, width)[0]


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
    norms, comp = cosines(a, b)
    return norms * angular(comp, s, v, m)[1]
