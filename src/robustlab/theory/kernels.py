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
for (u, v) Gaussian with variances a, b and correlation rho. One layer of the recursion,
exact and differentiable at rho = 1, is :mod:`robustlab.theory._arccos`.
"""

from __future__ import annotations

import math

import torch

from .._checks import check_positive_int
from ..init import InitScheme, get_init
from ._arccos import ArcCos, kappa0_slope

__all__ = ["nngp", "ntk"]

# Width at which a scheme's kernels are compared to decide whether they depend on width.
_PROBE_WIDTH = 1 << 20
# Pairs with 1 - rho below this get 1 - rho from their unit vectors' difference, not from
# the dot product (whose rounding error, ~sqrt(d) ulp, is all of 1 - rho near the diagonal).
_NEAR = 0.05
# Memory for the temporaries of one block. nngp / ntk run the recursion in row blocks of
# x1 with at most _BLOCK_ARRAYS arrays of (rows, N2) entries alive at once, and the
# near-diagonal recomputation in chunks of pairs with at most _NEAR_ARRAYS arrays of
# (pairs, d) entries alive (both counted in tests/test_kernels_blocks.py); only the
# (N1, N2) output and the (N, d) unit vectors are allocated whole.
_BLOCK_BYTES = 1 << 27
_BLOCK_ARRAYS = 12
_NEAR_ARRAYS = 6
# At most this many pairs per block, so that its temporaries stay in cache (as whole
# (1000, 1000) arrays they made nngp / ntk 1.1x to 1.8x slower on 1 and 2 cores).
_CACHE_PAIRS = 1 << 17


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
    nngp_only: bool = False,
) -> tuple[torch.Tensor, ...]:
    """NNGP and NTK divided by |x| |x'|, as functions of c = 1 - rho (any shape), where
    rho is the cosine of the two inputs (:func:`cosines` gives c exactly on the diagonal).

    Returns ``(k, theta)``, ``(k,)`` with ``nngp_only=True`` (theta's work skipped), or
    ``(k, theta, dk/drho, dtheta/drho)`` with ``slopes=True`` (propagated by hand in
    forward mode, no graph: the lazy limit's input gradients).
    The recursion, with D_1 = s_1, rho_1 = rho and for l = 1..L-1
    ``D_{l+1} = D_l m s_{l+1} / 2``, ``rho_{l+1} = kappa_1(rho_l)``,
    ``dot_l = (m s_{l+1} / 2) kappa_0(rho_l)``, is
    ``k = D_L rho_L`` and ``theta = sum_l (D_l rho_l / v_l) prod_{j=l}^{L-1} dot_j``.
    Each layer carries c_l = 1 - rho_l (exact near rho = 1, where rho_l itself rounds
    to 1 and arccos would amplify the rounding) and takes kappa_0(rho_l) and c_{l+1} from
    one angle (:class:`~robustlab.theory._arccos.ArcCos`).

    ``fixed_patterns=True`` holds the dot_j factors constant in ``dtheta/drho``: the
    large-width limit of the autograd derivative of a finite network's empirical NTK in
    its first argument, where the ReLU patterns 1[h > 0] (whose expectation is
    kappa_0) are piecewise constant in x and contribute nothing almost everywhere.
    """
    if nngp_only and slopes:
        raise ValueError("angular: slopes=True needs theta; drop nngp_only")
    big_d = s[0]
    c = comp
    if nngp_only:
        for l in range(1, len(s)):
            c = ArcCos.apply(c)[1]
            big_d = big_d * (width * s[l] / 2.0)
        return ((1.0 - c) * big_d,)
    theta = (1.0 - c) * (big_d / v[0])
    if slopes:
        dr = torch.ones_like(comp)
        dtheta = dr * (big_d / v[0])
    for l in range(1, len(s)):
        half = width * s[l] / 2.0
        k0, c_next = ArcCos.apply(c)
        dot = k0 * half
        if slopes:
            dtheta = dtheta * dot
            if not fixed_patterns:
                dtheta = dtheta + theta * (kappa0_slope(c) * dr * half)
            dr = k0 * dr  # kappa_1' = kappa_0
        c = c_next
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


def _units(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """|x_i| (N,) and u_i = x_i / |x_i| (N, d), u_i = 0 where |x_i| = 0."""
    n = torch.linalg.vector_norm(x, dim=1)
    return n, x / torch.clamp(n, min=torch.finfo(x.dtype).tiny)[:, None]


def _near_chunk(d: int, itemsize: int = 8) -> int:
    """Pairs per chunk of the near-diagonal recomputation: ``_NEAR_ARRAYS`` arrays of
    (pairs, d) entries of ``itemsize`` bytes within ``_BLOCK_BYTES``; at least one."""
    return max(1, _BLOCK_BYTES // (_NEAR_ARRAYS * itemsize * d))


def _complement(
    dots: torch.Tensor, a: torch.Tensor, b: torch.Tensor, na: torch.Tensor, nb: torch.Tensor
) -> torch.Tensor:
    """c_ij = 1 - rho_ij (N1, N2) from the unit vectors' dot products ``dots`` = u_a u_b^T,
    the rows a (N1, d), b (N2, d) and their norms na, nb (see :func:`cosines`)."""
    tiny = torch.finfo(a.dtype).tiny
    comp = torch.clamp(1.0 - dots, 0.0, 2.0)  # (N1, N2)
    with torch.no_grad():
        near = (comp < _NEAR) & (na[:, None] > 0) & (nb[None, :] > 0)
    chunk = _near_chunk(a.shape[1], comp.element_size())
    if comp.numel() <= chunk:  # small: one dense pass (vmap-safe)
        safe_a, safe_b = torch.clamp(na, min=tiny), torch.clamp(nb, min=tiny)
        exact = _near_comp(a[:, None], b[None], safe_a[:, None], safe_b[None])
        return torch.where(near, exact, comp)
    rows, cols = near.nonzero(as_tuple=True)
    if rows.numel():
        exact = torch.cat(
            [
                _near_comp(a[i], b[j], na[i], nb[j])
                for i, j in zip(rows.split(chunk), cols.split(chunk), strict=True)
            ]
        )
        comp = comp.index_put((rows, cols), exact)
    return comp


def cosines(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """|x_i| |x'_j| (N1, N2) and c_ij = 1 - rho_ij in [0, 2], rho the cosine (c = 1 where a
    norm is 0).

    c = 1 - u.u' from the unit vectors' dot product, except where that is below 0.05:
    there c = |u - u'|^2 / 2 (the same quantity, since |u| = |u'| = 1) from the inputs'
    difference (:func:`_near_comp`), whose rounding error is relative, so c = 0 exactly
    on the diagonal and the angle is exact near it. Differentiable in a and b (first and
    second derivatives).
    """
    (na, ua), (nb, ub) = _units(a), _units(b)
    return na[:, None] * nb[None, :], _complement(ua @ ub.T, a, b, na, nb)


def _block_rows(n1: int, n2: int, itemsize: int = 8) -> int:
    """Rows of x1 per block of :func:`nngp` / :func:`ntk` on (n1, n2) pairs: at most
    ``_CACHE_PAIRS`` pairs per block and ``_BLOCK_ARRAYS`` temporaries of (rows, n2)
    entries of ``itemsize`` bytes within ``_BLOCK_BYTES``; at least one row."""
    fit = _BLOCK_BYTES // (_BLOCK_ARRAYS * itemsize * n2)
    return max(1, min(n1, fit, _CACHE_PAIRS // n2))


def _kernel(
    a: torch.Tensor, b: torch.Tensor | None, s: list[float], v: list[float], width: int, which: int
) -> torch.Tensor:
    """|x||x'| angular(c)[which] (0 NNGP, 1 NTK) for rows a (N1, d), b (N2, d) (None: a).

    The dot products u_a u_b^T are one (N1, N2) product (so the blocks below never change
    their rounding); the rest runs in blocks of :func:`_block_rows` rows, each overwriting
    its own rows of that product with the kernel, so memory is the output plus one block's
    temporaries. Where autograd records (inputs that require grad) the blocks are
    concatenated instead: the graph holds every block's temporaries anyway.
    """
    na, ua = _units(a)
    nb, ub = (na, ua) if b is None else _units(b)
    b = a if b is None else b
    dots = ua @ ub.T  # (N1, N2)
    n1, n2 = dots.shape
    rows = _block_rows(n1, n2, dots.element_size())

    def block(lo: int, hi: int) -> torch.Tensor:  # rows lo:hi of the kernel, (hi - lo, N2)
        comp = _complement(dots[lo:hi], a[lo:hi], b, na[lo:hi], nb)
        ang = angular(comp, s, v, width, nngp_only=which == 0)[which]
        return na[lo:hi, None] * nb[None, :] * ang

    if rows >= n1:
        return block(0, n1)
    spans = [(lo, min(lo + rows, n1)) for lo in range(0, n1, rows)]
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        return torch.cat([block(lo, hi) for lo, hi in spans])
    for lo, hi in spans:
        dots[lo:hi] = block(lo, hi)
    return dots


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

    Memory: the output, the (N, d) unit vectors and at most 128 MiB of temporaries
    (``_BLOCK_BYTES``) whatever N1 and N2, unless autograd records the call: x1 is taken
    in row blocks (see ``_kernel``; N1 = N2 = 10,000 needs the 800 MB output and ~100 MB
    more). ``x2=None`` (or x2 the same tensor as x1) reuses x1's unit vectors.
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
    return _kernel(a, None if x2 is None or x2 is x1 else b, s, v, width, 0)


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
        returns the symmetric (zero-slope) derivative there. Memory: as in :func:`nngp`.
    """
    a, b = _prepare(x1, x1 if x2 is None else x2, dtype)
    L = check_positive_int("depth", depth)
    m = check_positive_int("width", width)
    s, v = layer_variances(init, a.shape[1], m, L)
    return _kernel(a, None if x2 is None or x2 is x1 else b, s, v, m, 1)
