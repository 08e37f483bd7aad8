"""The lazy limit's gradient law: mean and covariance of the input gradient.

The formulas are stated in :mod:`robustlab.theory.lazy`; this module computes them, and
:mod:`._lazy_summary` the P values from them (:func:`project`, :func:`summarize`,
:func:`summarize_mean`, importable from here).

For N training points, n evaluation points in dimension d: the NTK and NNGP on the
training points (N x N), one factorization (Cholesky when converged, an eigendecomposition
for t steps), then per block of evaluation points the d x N gradient matrices G and H
(closed form from the kernels' slopes in the cosine) and two (N x N) @ (N x c d) products.
Cost O(N^3 + n d N^2), memory O(N^2 + chunk d N).

The mean alone (:func:`limit_mean`, ``lazy_limit(..., parts=("mean",))``) needs neither the
NNGP nor the covariance: Theta(X, X) on one triangle, one solve w = A y (a Cholesky solve
when converged), and per evaluation point mu = G w formed without G, as
u (sum_j along_j w_j) + sum_j across_j w_j (u_j - u) (:func:`_slope_terms`): two
(n, N) @ (N, .) products. Cost O(N^3 / 3 + n N d) and the kernel recursion on N^2 / 2 + n N
pairs; memory O(N^2 + n d).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .._checks import check_memory, check_positive_int
from ..init import InitScheme, get_init
from ._lazy_summary import COV_NUMBERS, project, summarize, summarize_mean
from .kernels import _NEAR, angular, cosines, layer_variances, unit_difference, width_free

__all__ = [
    "DEFAULT_JITTER",
    "INF_WIDTH",
    "COV_NUMBERS",
    "LimitMean",
    "LimitMoments",
    "LimitProblem",
    "limit_bytes",
    "limit_mean",
    "limit_moments",
    "mean_bytes",
    "project",
    "summarize",
    "summarize_mean",
]

INF_WIDTH = 1 << 40  # "m = infinity": the O(1/m) terms of the NTK are ~1e-12, below the jitter
DEFAULT_JITTER = 1e-10  # relative to mean diag Theta(X, X)
MAX_JITTER = 1e-4
# Kernel pairs per block of the mean path's recursion: its ~40 temporaries (1 MiB each in
# float64) stay in cache; whole (1000, 1000) blocks run ~3x slower on two cores.
_PAIR_BLOCK = 1 << 17
# Pairs per block of the mean path's cosines (128 MiB of norms and cosines in float64):
# large blocks keep kernels.cosines on its sparse near-pair path (its dense one, taken for
# small blocks, forms u_j - u for every pair).
_COSINE_BLOCK = 1 << 23


@dataclass(frozen=True)
class LimitMean:
    """The mean of the limit's input gradient at n points, for labels y (no covariance).

    ``mu`` (n, d) = G A y, the gradient of the kernel-regression function
    x -> Theta(x, X) A y, which is E_init f_t(x); ``f0_var`` = D_L (Cov grad f_0 = D_L I);
    ``lr`` / ``step_ratio`` (None when converged), ``jitter`` (relative) / ``jitter_abs`` as
    used; ``width`` the m the kernels were evaluated at (INF_WIDTH for m -> infinity).
    """

    mu: torch.Tensor
    f0_var: float  # D_L
    lr: float | None
    step_ratio: float | None
    jitter: float
    jitter_abs: float
    width: int
    n_train: int


@dataclass(frozen=True)
class LimitMoments(LimitMean):
    """The Gaussian law of the limit's input gradient at n points, for labels y: the mean
    (:class:`LimitMean`) and ``cov`` (n, d, d), the covariance over initialization;
    ``qy2`` = |Q y|^2 and ``qkq`` = tr(Q K Q), Q = I - Theta A the residual operator, so
    E loss = (qy2 + qkq) / 2N.
    """

    cov: torch.Tensor
    qy2: float  # |Q y|^2, Q = I - Theta A (residual operator)
    qkq: float  # tr(Q K Q)


def _cholesky(theta: torch.Tensor, jitter: float) -> tuple[torch.Tensor, float, float]:
    """Lower Cholesky factor of Theta + jitter_abs I, jitter_abs = rel * mean diag Theta,
    with rel = ``jitter`` multiplied by 10 (up to MAX_JITTER) while the factorization fails.

    Returns ``(chol, rel, jitter_abs)``. Reads the lower triangle of ``theta`` only.
    """
    n = theta.shape[0]
    eye = torch.eye(n, dtype=theta.dtype, device=theta.device)
    scale = float(theta.diagonal().mean())
    rel = jitter
    while True:
        chol, info = torch.linalg.cholesky_ex(theta + (rel * scale) * eye)
        if int(info) == 0:
            return chol, rel, rel * scale
        if rel * 10 > MAX_JITTER:
            raise ValueError(
                f"Theta(X, X) is not positive definite even with jitter {rel:g} x its mean "
                "diagonal; are there duplicated training points?"
            )
        rel = max(rel * 10, 1e-14)


def _spectral(theta: torch.Tensor, t: int, lr: float | str):
    """The t-step filters of Theta = U diag(lambda) U^T (lower triangle read).

    Returns ``(u, filt, decay, lr_used, step_ratio)`` with z = lr lambda / N,
    ``decay`` = (1 - z)^t and ``filt`` = (1 - (1 - z)^t) / lambda, so that
    A_t = U diag(filt) U^T and Q_t = U diag(decay) U^T; ``lr="auto"`` takes
    lr = N / lambda_max. Refuses an lr for which gradient descent diverges (z >= 2).
    """
    n = theta.shape[0]
    lam, u = torch.linalg.eigh(theta)
    lam = torch.clamp(lam, min=0.0)  # rounding can leave tiny negative eigenvalues
    lam_max = float(lam[-1])
    step = n / lam_max if lr == "auto" else lr  # "auto": 1 / lambda_max((1/N) Theta), as rl.train
    z = lam * (step / n)
    if float(z[-1]) >= 2.0:
        raise ValueError(
            f"lr={step:g} makes gradient descent diverge on this NTK: it needs lr < "
            f"2 N / lambda_max = {2 * n / lam_max:g}"
        )
    decay = torch.pow(1.0 - z, t)  # (1 - z)^t, exact for an integer t (1 - z may be < 0)
    # (1 - (1 - z)^t) / lambda without cancellation for small z; -> t lr / N as lambda -> 0
    low = torch.clamp(z, max=0.5)
    filt_low = -torch.expm1(t * torch.log1p(-low)) / torch.clamp(lam, min=1e-300)
    filt_low = torch.where(lam > 0, filt_low, torch.full_like(lam, t * step / n))
    filt = torch.where(z < 0.5, filt_low, (1.0 - decay) / torch.clamp(lam, min=1e-300))
    return u, filt, decay, step, float(z[-1])


def _train_operator(theta: torch.Tensor, t: int | None, lr: float | str, jitter: float):
    """A_t and the residual operator Q_t = I - Theta A_t, both (N, N), and what was used.

    Returns ``(A, Q, lr_used, step_ratio, jitter_rel, jitter_abs)``. Converged (t None):
    Cholesky of Theta + jitter_abs I (:func:`_cholesky`); then Q = jitter_abs A exactly.
    Finite t: eigendecomposition Theta = U diag(lambda) U^T, A = U diag((1 - (1 - z)^t) /
    lambda) U^T with z = lr lambda / N, Q = U diag((1 - z)^t) U^T (:func:`_spectral`); no
    jitter is needed.
    """
    if t is None:
        chol, rel, jit_abs = _cholesky(theta, jitter)
        a = torch.cholesky_inverse(chol)
        a = 0.5 * (a + a.T)
        return a, jit_abs * a, None, None, rel, jit_abs
    u, filt, decay, step, ratio = _spectral(theta, t, lr)
    return (u * filt) @ u.T, (u * decay) @ u.T, step, ratio, 0.0, 0.0


def _train_weights(theta: torch.Tensor, y: torch.Tensor, t: int | None, lr, jitter: float):
    """w = A_t y (N,) without forming A_t, and ``(lr_used, step_ratio, rel, jitter_abs)``:
    one Cholesky solve when converged, U (filt * U^T y) after t steps (as
    :func:`_train_operator`)."""
    if t is None:
        chol, rel, jit_abs = _cholesky(theta, jitter)
        return torch.cholesky_solve(y[:, None], chol)[:, 0], None, None, rel, jit_abs
    u, filt, _, step, ratio = _spectral(theta, t, lr)
    return u @ (filt * (u.T @ y)), step, ratio, 0.0, 0.0


def limit_bytes(n_train: int, n_eval: int, d: int, chunk: int = 256, itemsize: int = 8) -> int:
    """A lower bound of the bytes :func:`limit_moments` holds at once: the kernel, the NTK
    and the two training operators on the training points (4 N^2), the covariances at the
    evaluation points (n d^2) and one chunk's differences (chunk N d)."""
    return itemsize * (4 * n_train * n_train + n_eval * d * d + min(n_eval, chunk) * n_train * d)


def _kernel_width(init, d: int, depth: int, width: int | None, t, lr) -> int:
    """The m the kernels are evaluated at: ``width``, or INF_WIDTH for None after checking
    that the scheme has an infinite-width limit (and, for a numeric lr at finite t, an NTK
    that does not grow with m)."""
    if width is not None:
        return check_positive_int("width", width)
    if not width_free(init, d, depth, 0):
        raise ValueError(
            f"init {get_init(init).name!r} has no finite nonzero infinite-width NNGP (its "
            "f_0 scale changes with the width); pass width="
        )
    if lr != "auto" and t is not None and not width_free(init, d, depth, 1):
        raise ValueError(
            f"a numeric lr needs the network's width: the NTK of {get_init(init).name!r} "
            'grows with m (standard parameterization); pass width= or lr="auto"'
        )
    return INF_WIDTH


def _layers(x: torch.Tensor, init, depth: int, width: int | None, t, lr):
    """``(m, s, v, D_L)``: the width the kernels are evaluated at (:func:`_kernel_width`),
    the layers' effective and stored-weight variances, and D_L = K(x, x) / |x|^2, the NNGP
    at c = 1 - rho = 0 (Cov grad f_0(x) = D_L I)."""
    m = _kernel_width(init, x.shape[1], depth, width, t, lr)
    s, v = layer_variances(init, x.shape[1], m, depth)
    return m, s, v, float(angular(torch.zeros((), dtype=x.dtype), s, v, m)[0])


def _norms(x: torch.Tensor) -> torch.Tensor:
    """|x_i| (N,) of the rows of x (N, d), clamped to the smallest positive number."""
    return torch.clamp(torch.linalg.vector_norm(x, dim=1), min=torch.finfo(x.dtype).tiny)


def _unit_and_scale(xc: torch.Tensor, nc: torch.Tensor):
    """|x| (c,), u = x / |x| (c, d) and |x_j| = (|x| |x_j|) / |x| (c, N) from ``cosines``'
    norms ``nc`` (c, N); norms clamped (:func:`_norms`)."""
    nxc = _norms(xc)
    return nxc, xc / nxc[:, None], nc / nxc[:, None]


def _slope_terms(val, slope, cc, scale):
    """The coefficients of grad_x k(x, x_j) for k = |x| |x_j| S(rho), S = ``val`` with
    dS/drho = ``slope`` (c, N):

        grad_x k(x, x_j) = along_j u + across_j (u_j - u),
        along_j = |x_j| (S + (1 - rho) S'),   across_j = |x_j| S',

    from grad_x [|x||x_j| S(rho)] = |x_j| (S u + S' (u_j - rho u)) with
    u_j - rho u = (u_j - u) + (1 - rho) u: S' ~ 1/sqrt(1 - rho) near the diagonal multiplies
    u_j - u, of size sqrt(1 - rho), which callers form without cancellation there.
    ``cc`` = 1 - rho, ``scale`` = |x_j| (c, N).
    """
    return scale * (val + cc * slope), scale * slope


@dataclass(frozen=True)
class LimitProblem:
    """The inputs of :func:`limit_moments` and :func:`limit_mean`, already validated:
    x (N, d) training points, y (N,) labels, xt (n, d) evaluation points, of one dtype; the
    init scheme, depth and ``width`` (None: m -> infinity, or an int) of the network; the
    training time ``t`` (inf: converged) and step ``lr`` (a number or ``"auto"``), the
    kernel ``jitter``, and ``model`` ("network" or "linearized")."""

    x: torch.Tensor
    y: torch.Tensor
    xt: torch.Tensor
    init: InitScheme
    depth: int
    width: int | None
    t: float
    lr: float | str
    jitter: float
    model: str = "network"


def limit_moments(problem: LimitProblem, chunk: int) -> LimitMoments:
    """mu (n, d) for labels y and C (n, d, d) at the points xt; see :class:`LimitMoments`.
    ``chunk`` evaluation points at a time. Refused before any allocation when
    :func:`limit_bytes` exceeds this machine's memory.
    """
    x, y, xt, init, depth, width, t, lr, jitter, model = _fields(problem)
    n, d = x.shape
    what = f"the lazy limit on {n} training and {xt.shape[0]} evaluation points of dimension {d}"
    need = limit_bytes(n, xt.shape[0], d, chunk, x.dtype.itemsize)
    check_memory(
        "n_train", what, need, "use fewer points (n_train, n_test) or lower-dimensional data"
    )
    m, s, v, f0_var = _layers(x, init, depth, width, t, lr)
    norms, comp = cosines(x, x)
    k_ang, th_ang = angular(comp, s, v, m)
    kxx, theta = norms * k_ang, norms * th_ang
    a, q, step, ratio, rel, jit_abs = _train_operator(theta, t, lr, jitter)
    ay = a @ y
    qy = q @ y
    qkq = float((q * (kxx @ q)).sum())  # tr(Q K Q^T), Q symmetric

    xn = _norms(x)
    mus, covs = [], []
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    for lo in range(0, xt.shape[0], chunk):
        xc = xt[lo : lo + chunk]
        c = xc.shape[0]
        nc, cc = cosines(xc, x)  # (c, N)
        k_c, th_c, dk_c, dth_c = angular(
            cc, s, v, m, slopes=True, fixed_patterns=model == "linearized"
        )
        nxc, uc, scale = _unit_and_scale(xc, nc)
        # u_j - u: (c, N, d) -> (c, d, N), exact as u_j -> u
        apart = unit_difference(x[None], xc[:, None], xn[None], nxc[:, None]).transpose(1, 2)

        def grad(val, slope, uc=uc, cc=cc, scale=scale, apart=apart):
            along, across = _slope_terms(val, slope, cc, scale)
            return uc[:, :, None] * along[:, None, :] + across[:, None, :] * apart

        g = grad(th_c, dth_c)
        h = grad(k_c, dk_c)
        mus.append(g @ ay)  # (c, d)
        z = (g.reshape(c * d, n) @ a).reshape(c, d, n)  # G A (A symmetric)
        cross = z @ h.transpose(1, 2)  # G A H^T: (c, d, d)
        quad = (z.reshape(c * d, n) @ kxx).reshape(c, d, n) @ z.transpose(1, 2)
        cov = f0_var * eye - cross - cross.transpose(1, 2) + quad
        covs.append(0.5 * (cov + cov.transpose(1, 2)))
    return LimitMoments(
        mu=torch.cat(mus), f0_var=f0_var, lr=step, step_ratio=ratio, jitter=rel,
        jitter_abs=jit_abs, width=m, n_train=n, cov=torch.cat(covs), qy2=float(qy @ qy),
        qkq=qkq,
    )  # fmt: skip


def mean_bytes(n_train: int, n_eval: int, d: int, itemsize: int = 8) -> int:
    """A lower bound of the bytes :func:`limit_mean` holds at once: the norms, cosines and
    NTK on the training points and its factor (4 N^2), the means (n d) and one block's
    norms and cosines (2 min(n N, _COSINE_BLOCK))."""
    return itemsize * (4 * n_train**2 + n_eval * d + 2 * min(n_eval * n_train, _COSINE_BLOCK))


def _train_ntk(x: torch.Tensor, s: list[float], v: list[float], m: int) -> torch.Tensor:
    """Theta(X, X) (N, N) from the recursion on its lower triangle (what the Cholesky and
    eigendecomposition read) in blocks of rows, mirrored: half the pairs."""
    n = x.shape[0]
    norms, comp = cosines(x, x)
    ang = torch.zeros_like(comp)
    rows = max(1, _PAIR_BLOCK // n)
    for lo in range(0, n, rows):
        hi = min(lo + rows, n)
        ang[lo:hi, :hi] = angular(comp[lo:hi, :hi], s, v, m)[1]
    return norms * (torch.tril(ang) + torch.tril(ang, -1).T)


def _fields(problem: LimitProblem) -> tuple:
    """The problem's fields in order (no copies of its tensors, unlike dataclasses.astuple)."""
    return tuple(getattr(problem, f.name) for f in dataclasses.fields(problem))


def limit_mean(problem: LimitProblem) -> LimitMean:
    """mu (n, d) = G A y at the points xt, without the covariance; see :class:`LimitMean`.

    The problem of :func:`limit_moments`, and its mu up to rounding, computed as

        w = A y                          (one Cholesky solve, or U (filt * U^T y) at finite t)
        mu(x) = u (sum_j along_j w_j) + sum_j across_j w_j (u_j - u)     (:func:`_slope_terms`)

    so G (d x N per point) is never formed. The second sum is (across w) @ U - (sum_j
    across_j w_j) u over the pairs with 1 - rho >= 0.05 (kernels' ``_NEAR``), where u_j - u
    is not small, and from :func:`~.kernels.unit_difference` over the few nearer pairs, so
    it stays exact as x -> x_j. The cosines are taken in blocks of _COSINE_BLOCK pairs,
    the rest in blocks of _PAIR_BLOCK pairs. Refused before any allocation when
    :func:`mean_bytes` exceeds this machine's memory.
    """
    x, y, xt, init, depth, width, t, lr, jitter, model = _fields(problem)
    n, d = x.shape
    what = f"the lazy limit's mean on {n} training and {xt.shape[0]} evaluation points"
    need = mean_bytes(n, xt.shape[0], d, x.dtype.itemsize)
    check_memory("n_train", what, need, "use fewer training points (n_train)")
    m, s, v, f0_var = _layers(x, init, depth, width, t, lr)
    w, step, ratio, rel, jit_abs = _train_weights(_train_ntk(x, s, v, m), y, t, lr, jitter)

    xn = _norms(x)
    ux = x / xn[:, None]  # u_j: (N, d)
    rows = max(1, _PAIR_BLOCK // n)
    outer = max(rows, _COSINE_BLOCK // n)
    mus = []
    for lo in range(0, xt.shape[0], outer):
        xo = xt[lo : lo + outer]
        no, co = cosines(xo, x)  # (r, N)
        for a in range(0, xo.shape[0], rows):
            xc, nc, cc = xo[a : a + rows], no[a : a + rows], co[a : a + rows]
            _, th_c, _, dth_c = angular(
                cc, s, v, m, slopes=True, fixed_patterns=model == "linearized"
            )
            nxc, uc, scale = _unit_and_scale(xc, nc)
            along, across = _slope_terms(th_c, dth_c, cc, scale)
            b = across * w  # (c, N)
            near = cc < _NEAR
            far = torch.where(near, torch.zeros_like(b), b)
            mu = uc * (along @ w - far.sum(1))[:, None] + far @ ux  # (c, d)
            i, j = near.nonzero(as_tuple=True)
            if i.numel():  # u_j - u exact as u_j -> u: (pairs, d)
                diff = unit_difference(x[j], xc[i], xn[j], nxc[i])
                mu = mu.index_add(0, i, b[i, j, None] * diff)
            mus.append(mu)
    return LimitMean(torch.cat(mus), f0_var, step, ratio, rel, jit_abs, m, n)
