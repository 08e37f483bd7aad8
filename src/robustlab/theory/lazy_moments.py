"""The lazy limit's gradient law: mean and covariance of the input gradient, and P from them.

The formulas are stated in :mod:`robustlab.theory.lazy`; this module computes them.
For N training points, n evaluation points in dimension d: the NTK and NNGP on the
training points (N x N), one factorization (Cholesky when converged, an eigendecomposition
for t steps), then per block of evaluation points the d x N gradient matrices G and H
(closed form from the kernels' slopes in the cosine) and two (N x N) @ (N x c d) products.
Cost O(N^3 + n d N^2), memory O(N^2 + chunk d N).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._checks import check_memory, check_positive_int
from ..init import get_init
from .kernels import angular, cosines, layer_variances, unit_difference, width_free

__all__ = [
    "DEFAULT_JITTER",
    "INF_WIDTH",
    "LimitMoments",
    "limit_bytes",
    "limit_moments",
    "project",
    "summarize",
]

INF_WIDTH = 1 << 40  # "m = infinity": the O(1/m) terms of the NTK are ~1e-12, below the jitter
DEFAULT_JITTER = 1e-10  # relative to mean diag Theta(X, X)
MAX_JITTER = 1e-4


@dataclass(frozen=True)
class LimitMoments:
    """The Gaussian law of the limit's input gradient at n points, for labels y.

    ``mu`` (n, d) and ``cov`` (n, d, d): mean and covariance over initialization;
    ``f0_var`` = D_L (Cov grad f_0 = D_L I); ``qy2`` = |Q y|^2 and ``qkq`` = tr(Q K Q),
    Q = I - Theta A the residual operator, so E loss = (qy2 + qkq) / 2N; ``lr`` /
    ``step_ratio`` (None when converged), ``jitter`` (relative) / ``jitter_abs`` as used;
    ``width`` the m the kernels were evaluated at (INF_WIDTH for m -> infinity).
    """

    mu: torch.Tensor
    cov: torch.Tensor
    f0_var: float  # D_L
    qy2: float  # |Q y|^2, Q = I - Theta A (residual operator)
    qkq: float  # tr(Q K Q)
    lr: float | None
    step_ratio: float | None
    jitter: float
    jitter_abs: float
    width: int
    n_train: int


def _train_operator(theta: torch.Tensor, t: int | None, lr: float | str, jitter: float):
    """A_t and the residual operator Q_t = I - Theta A_t, both (N, N), and what was used.

    Returns ``(A, Q, lr_used, step_ratio, jitter_rel, jitter_abs)``. Converged (t None):
    Cholesky of Theta + jitter_abs I; then Q = jitter_abs A exactly. Finite t: eigendecomposition
    Theta = U diag(lambda) U^T, A = U diag((1 - (1 - z)^t) / lambda) U^T with
    z = lr lambda / N, Q = U diag((1 - z)^t) U^T; no jitter is needed.
    """
    n = theta.shape[0]
    eye = torch.eye(n, dtype=theta.dtype, device=theta.device)
    if t is None:
        scale = float(theta.diagonal().mean())
        rel = jitter
        while True:
            chol, info = torch.linalg.cholesky_ex(theta + (rel * scale) * eye)
            if int(info) == 0:
                break
            if rel * 10 > MAX_JITTER:
                raise ValueError(
                    f"Theta(X, X) is not positive definite even with jitter {rel:g} x its mean "
                    "diagonal; are there duplicated training points?"
                )
            rel = max(rel * 10, 1e-14)
        a = torch.cholesky_inverse(chol)
        a = 0.5 * (a + a.T)
        return a, (rel * scale) * a, None, None, rel, rel * scale
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
    return (u * filt) @ u.T, (u * decay) @ u.T, step, float(z[-1]), 0.0, 0.0


def limit_bytes(n_train: int, n_eval: int, d: int, chunk: int = 256, itemsize: int = 8) -> int:
    """A lower bound of the bytes :func:`limit_moments` holds at once: the kernel, the NTK
    and the two training operators on the training points (4 N^2), the covariances at the
    evaluation points (n d^2) and one chunk's differences (chunk N d)."""
    return itemsize * (4 * n_train * n_train + n_eval * d * d + min(n_eval, chunk) * n_train * d)


def limit_moments(
    x, y, xt, init, depth, width, t, lr, jitter, chunk, model="network"
) -> LimitMoments:
    """mu (n, d) for labels y and C (n, d, d) at the points xt; see :class:`LimitMoments`.

    Inputs already validated: x (N, d), y (N,), xt (n, d) of one dtype; ``lr`` a number or
    ``"auto"``; ``width`` None (m -> infinity) or an int. Refused before any allocation when
    :func:`limit_bytes` exceeds this machine's memory.
    """
    n, d = x.shape
    check_memory(
        "n_train",
        f"the lazy limit on {n} training and {xt.shape[0]} evaluation points of dimension {d}",
        limit_bytes(n, xt.shape[0], d, chunk, x.dtype.itemsize),
        "use fewer points (n_train, n_test) or lower-dimensional data",
    )
    if width is None:
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
        m = INF_WIDTH
    else:
        m = check_positive_int("width", width)
    s, v = layer_variances(init, d, m, depth)
    norms, comp = cosines(x, x)
    k_ang, th_ang = angular(comp, s, v, m)
    kxx, theta = norms * k_ang, norms * th_ang
    a, q, step, ratio, rel, jit_abs = _train_operator(theta, t, lr, jitter)
    ay = a @ y
    qy = q @ y
    qkq = float((q * (kxx @ q)).sum())  # tr(Q K Q^T), Q symmetric
    zero = torch.zeros((), dtype=x.dtype)  # c = 1 - rho = 0
    f0_var = float(angular(zero, s, v, m)[0])  # D_L = K(x, x) / |x|^2

    xn = torch.clamp(torch.linalg.vector_norm(x, dim=1), min=torch.finfo(x.dtype).tiny)
    mus, covs = [], []
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    for lo in range(0, xt.shape[0], chunk):
        xc = xt[lo : lo + chunk]
        c = xc.shape[0]
        nc, cc = cosines(xc, x)  # (c, N)
        k_c, th_c, dk_c, dth_c = angular(
            cc, s, v, m, slopes=True, fixed_patterns=model == "linearized"
        )
        nxc = torch.clamp(torch.linalg.vector_norm(xc, dim=1), min=torch.finfo(x.dtype).tiny)
        uc = xc / nxc[:, None]  # (c, d)
        scale = nc / nxc[:, None]  # |x_j|: (c, N)
        # u_j - u: (c, N, d) -> (c, d, N), exact as u_j -> u
        apart = unit_difference(x[None], xc[:, None], xn[None], nxc[:, None]).transpose(1, 2)

        def grad(val, slope, uc=uc, cc=cc, scale=scale, apart=apart):
            # grad_x [|x||x_j| S(rho)] = |x_j| (S u + S' (u_j - rho u)), with
            # u_j - rho u = (u_j - u) + (1 - rho) u: S' ~ 1/sqrt(1 - rho) near the diagonal
            # multiplies a difference of size sqrt(1 - rho), computed without cancellation
            along = scale * (val + cc * slope)
            across = scale * slope
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
        torch.cat(mus),
        torch.cat(covs),
        f0_var,
        float(qy @ qy),
        qkq,
        step,
        ratio,
        rel,
        jit_abs,
        m,
        n,
    )


def _expected_abs(a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """E|N(a, s^2)| = s sqrt(2/pi) exp(-a^2 / 2 s^2) + a erf(a / (sqrt(2) s)); |a| at s = 0."""
    safe = torch.clamp(s, min=1e-300)
    z = a / (math.sqrt(2.0) * safe)
    return s * math.sqrt(2.0 / math.pi) * torch.exp(-z * z) + a * torch.erf(z)


def project(
    mom: LimitMoments, n_directions: int, seed: int, chunk: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu . u, sqrt(u^T C u)) for ``n_directions`` unit directions u per point: (n, K) each.

    Each point gets its own directions (normalised Gaussians from one generator seeded with
    ``seed``, drawn point by point in order), so the points' Monte Carlo errors are
    independent. mu . u scales with the labels, sqrt(u^T C u) does not: one projection
    serves every label scale.
    """
    n, d = mom.mu.shape
    gen = torch.Generator().manual_seed(seed)
    dots, roots = [], []
    for lo in range(0, n, chunk):
        mc, cc = mom.mu[lo : lo + chunk], mom.cov[lo : lo + chunk]
        g = torch.randn(mc.shape[0], n_directions, d, generator=gen, dtype=torch.float64)
        u = (g / torch.linalg.vector_norm(g, dim=2, keepdim=True)).to(mc)  # (c, K, d)
        dots.append((u @ mc[:, :, None])[..., 0])  # (c, K)
        roots.append(torch.sqrt(torch.clamp(((u @ cc) * u).sum(2), min=0.0)))
    return torch.cat(dots), torch.cat(roots)


def summarize(
    mom: LimitMoments,
    label_scale: float,
    eps: float,
    region: str,
    proj: tuple[torch.Tensor, torch.Tensor],
) -> dict:
    """P, its parts and the expected training loss for labels ``label_scale * y``.

    ``proj`` = :func:`project` (mom, ...); delta = r u with the radius r integrated
    exactly (E r = eps d / (d + 1) in the ball, eps on the sphere).
    """
    from . import kappa, rms_factor  # defined in the package __init__, which imports us

    mu = mom.mu * label_scale
    n, d = mu.shape
    radial = eps * d / (d + 1) if region == "ball" else eps
    s = proj[1]
    h = _expected_abs(proj[0] * label_scale, s)  # (n, K): E_init |g . u| per direction
    k = h.shape[1]
    per_point = radial * h.mean(1)
    var = h.var(1).sum() if k > 1 else torch.tensor(math.nan)
    c = rms_factor(d, region)
    mu2 = float((mu * mu).sum(1).mean())
    tr = float(torch.diagonal(mom.cov, dim1=1, dim2=2).sum(1).mean())
    return {
        "p": float(per_point.mean()),
        "p_stderr": radial * math.sqrt(float(var) / k) / n,
        "p_rms": eps * math.sqrt(c * (mu2 + tr)),
        "p_kernel": eps * kappa(d, region) * float(torch.linalg.vector_norm(mu, dim=1).mean()),
        "p_init": radial * math.sqrt(2 / math.pi) * float(s.mean()),
        "rms_kernel": eps * math.sqrt(c * mu2),
        "rms_init": eps * math.sqrt(c * max(tr, 0.0)),
        "p_at_init": radial * math.sqrt(2 / math.pi) * math.sqrt(mom.f0_var),
        "train_loss": 0.5 * (label_scale**2 * mom.qy2 + mom.qkq) / mom.n_train,
        "per_point": per_point,
        "grad_mean": mu,
    }
