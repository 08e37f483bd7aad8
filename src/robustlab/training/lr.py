"""``lr="auto"``: a stable step from the top eigenvalue of the Gauss-Newton matrix.

For a loss l(g) with curvature at most c in g (mse 1, logistic 1/4, softmax-CE 1/2) the
Gauss-Newton matrix is G = (c / n) J^T J, whose top eigenvalue equals c/n times that of the
empirical NTK K = J J^T (n x n, or nk x nk). Gradient descent is stable for lr < 2 / lambda_max;
we take lr = 1 / lambda_max. lambda_max(K) comes from power iteration with K u = J (J^T u),
a VJP then a JVP (torch.func), so the Jacobian is never built. Alpha-scaling leaves G
unchanged (the loss is divided by alpha^2), so the step is the same for any alpha.
"""

from __future__ import annotations

import torch
from torch.func import functional_call, vmap

from .._func import ntk_vector_product
from .batched_mlp import supports
from .losses import curvature_bound
from .optim import get_optimizer
from .stacked_mlp import ntk_product

__all__ = ["auto_lr", "ntk_top_eigenvalue"]


def ntk_top_eigenvalue(
    model,
    stacked: dict,
    x: torch.Tensor,
    iters: int = 30,
    rtol: float = 1e-3,
    *,
    per_model: bool = False,
) -> torch.Tensor:
    """lambda_max of the empirical NTK J J^T on points x, for each of E stacked models: (E,).

    ``x`` is (n, ...) shared by the models, or (E, n, ...) with ``per_model=True``.

    Power iteration from a fixed random start (the same for every model), stopped per model
    after ``iters`` products or once its Rayleigh quotient moved by less than ``rtol``
    (relative) in one iteration. A model's value does not depend on the others in the stack,
    so an ensemble gets the step each member would get alone.
    """
    n = x.shape[1] if per_model else x.shape[0]

    def kv(params, x, u):  # (n, k) -> (n, k)
        def f(p):
            return functional_call(model, p, (x,)).reshape(n, -1)

        return ntk_vector_product(f, params)[1](u)

    E = next(iter(stacked.values())).shape[0]
    with torch.no_grad():
        x1 = x[0, :1] if per_model else x[:1]
        k = functional_call(model, {a: b[0] for a, b in stacked.items()}, (x1,)).numel()
    gen = torch.Generator().manual_seed(0)  # fixed: the step must not depend on training RNG
    u = torch.randn(n, k, generator=gen, dtype=torch.float64).to(x)
    u = (u / torch.linalg.vector_norm(u)).expand(E, n, k)  # (E, n, k), ||u_i|| = 1
    if supports(model):  # one kept forward, then a reverse and a tangent pass per product
        product = ntk_product(model, stacked, x, per_model)
    else:
        batched = vmap(kv, in_dims=(0, 0 if per_model else None, 0))
        product = lambda u, active: batched(stacked, x, u)  # noqa: E731
    lam = torch.zeros(E, dtype=x.dtype, device=x.device)
    done = torch.zeros(E, dtype=torch.bool, device=x.device)
    for _ in range(iters):
        ku = product(u, ~done)  # converged members may be skipped: their values are kept
        quotient = (ku * u).reshape(E, -1).sum(1)  # Rayleigh quotient, ||u|| = 1
        converged = (quotient - lam).abs() <= rtol * quotient.abs()
        lam = torch.where(done, lam, quotient)  # a converged model keeps its value
        done = done | converged
        if bool(done.all()):
            break
        norm = torch.linalg.vector_norm(ku.reshape(E, -1), dim=1).clamp_min(1e-30)
        u = ku / norm.reshape(E, 1, 1)
    return lam


def auto_lr(
    model,
    stacked: dict,
    x: torch.Tensor,
    config,
    which: list[bool],
    *,
    per_model: bool = False,
):
    """Per-model ``auto`` step sizes (None where ``which`` is False); ``x`` as in
    :func:`ntk_top_eigenvalue`. Under ``linearized`` the NTK is that of w0, the same.

    The power iteration runs only for the members that need it, as one stack.
    """
    if not any(which):
        return [None] * len(which)
    fixed = get_optimizer(config.optimizer).auto_lr
    if fixed is not None:  # adam: 1e-3
        return [fixed if w else None for w in which]
    probe = x[:, : config.lr_probe] if per_model else x[: config.lr_probe]
    idx = [i for i, w in enumerate(which) if w]
    sub = {k: v[idx] for k, v in stacked.items()}
    xs = probe[idx] if per_model else probe
    found = ntk_top_eigenvalue(model, sub, xs, config.power_iters, per_model=per_model).tolist()
    lam = torch.zeros(len(which), dtype=torch.float64)
    lam[idx] = torch.tensor(found, dtype=torch.float64)
    n_probe = probe.shape[1] if per_model else probe.shape[0]
    gn = lam.double().cpu() * curvature_bound(config.loss) / n_probe
    out = []
    for w, g in zip(which, gn.tolist(), strict=True):
        if not w:
            out.append(None)
        elif not g > 0 or g != g:
            raise ValueError("lr='auto' failed: the NTK's top eigenvalue is not positive")
        else:
            out.append(1.0 / g)
    return out
