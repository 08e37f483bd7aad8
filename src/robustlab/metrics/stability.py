"""Perturbation stability P(f, eps) (Zhu et al., NeurIPS 2022; DESIGN §1).

    P(f, eps) = E_{x ~ data} E_{x' ~ U(R(x, eps))} || J_f(x) (x' - x) ||_2

with R the L2 ball (``region="ball"``) or sphere (``"sphere"``) of radius eps around x,
inputs of any shape (N, ...) perturbed in the flattened space R^d. Lower is more robust.

Methods:
- ``exact`` (k = 1): ``E|g . delta| = eps * kappa_d * ||g||_2``, so P is
  ``eps * kappa_d * mean_x ||grad_x f(x)||``: one input gradient per point, no sampling.
- ``mc``: Monte Carlo over delta with forward-mode JVPs ``J_f(x) delta`` (torch.func.jvp);
  the Jacobian is never built. Any output dimension.
- ``finite_difference``: the nonlinear form ``E ||f(x + delta) - f(x)||_2`` by Monte Carlo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..theory import kappa
from ._state import as_input, call, check_eps, frozen, jvp

__all__ = ["StabilityResult", "input_gradients", "perturbation_stability", "sample_perturbations"]

METHODS = ("auto", "exact", "mc", "finite_difference")
REGIONS = ("ball", "sphere")


@dataclass(frozen=True)
class StabilityResult:
    """P(f, eps) and its standard error.

    ``stderr`` is over points for ``exact`` (the value is exact per point); for Monte Carlo
    methods it is the standard error of the mean of the per-point estimates (points and
    perturbations both vary). ``per_point`` (N,) and ``per_point_stderr`` (N,; zeros for
    exact) are on the CPU in float64.
    """

    value: float
    stderr: float
    method: str
    n_points: int
    n_samples: int
    eps: float
    region: str
    per_point: torch.Tensor = field(repr=False)
    per_point_stderr: torch.Tensor = field(repr=False)


def sample_perturbations(
    n: int,
    d: int,
    eps: float,
    region: str = "ball",
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """n vectors uniform in the L2 ball (or on the sphere) of radius eps in R^d: (n, d).

    Direction: a normalised standard Gaussian; radius: eps * U^(1/d) for the ball (the
    volume of B(0, r) grows as r^d), eps for the sphere.
    """
    gen_device = generator.device if generator is not None else "cpu"
    z = torch.randn(n, d, generator=generator, dtype=dtype, device=gen_device)
    z = z / torch.linalg.vector_norm(z, dim=1, keepdim=True)
    if region == "ball":
        u = torch.rand(n, 1, generator=generator, dtype=dtype, device=gen_device)
        z = z * u.pow(1.0 / d)
    return (z * eps).to(device)


def _gradient_chunks(model: nn.Module, x: torch.Tensor, chunk: int, need: str, hint: str = ""):
    """Yield grad_x f per chunk of x, flattened (B, d): one forward, one input-only backward.

    Parameters are frozen, so no weight gradients are formed; ``need`` and ``hint`` word the
    error raised for a model with k > 1 outputs.
    """
    with frozen(model), torch.enable_grad():
        for xc in x.split(chunk):
            xc = xc.detach().requires_grad_(True)  # a new leaf sharing x's memory, no copy
            y = call(model, xc, shape=tuple(x.shape))
            if y.shape[1] != 1:
                raise ValueError(f"{need} (k = 1), the model has k = {y.shape[1]}{hint}")
            (g,) = torch.autograd.grad(y.sum(), xc)
            yield g.reshape(g.shape[0], -1)


def input_gradients(model: nn.Module, x: torch.Tensor, *, chunk_size: int = 4096) -> torch.Tensor:
    """grad_x f(x) for a scalar-output model, flattened: (N, ...) -> (N, d).

    One forward and one input-only backward per chunk. The model is left as found.
    """
    x = as_input(model, x)
    need = "input gradients need a scalar output"
    return torch.cat(list(_gradient_chunks(model, x, chunk_size, need)))


def _exact(model: nn.Module, x: torch.Tensor, eps: float, region: str, chunk: int):
    d = x[0].numel()
    need = "method 'exact' needs a scalar output"
    norms = [
        torch.linalg.vector_norm(g, dim=1)
        for g in _gradient_chunks(model, x, chunk, need, "; use method='mc'")
    ]
    per_point = torch.cat(norms).double().cpu() * (eps * kappa(d, region))
    return per_point, torch.zeros_like(per_point)


def _sampled(
    model: nn.Module,
    x: torch.Tensor,
    eps: float,
    region: str,
    n_samples: int,
    generator: torch.Generator | None,
    finite_difference: bool,
    max_rows: int,
):
    n, d = x.shape[0], x[0].numel()
    flat = x.reshape(n, d)
    sums = torch.zeros(n, dtype=torch.float64)
    sq = torch.zeros(n, dtype=torch.float64)

    def f(z: torch.Tensor) -> torch.Tensor:  # (rows, d) -> (rows, k)
        return call(model, z.reshape(z.shape[0], *x.shape[1:]))

    # rows of one batched call = points_per_call * samples_per_call <= max_rows
    s_call = max(1, min(n_samples, max_rows))
    p_call = max(1, max_rows // s_call)
    with frozen(model), torch.no_grad():
        for start in range(0, n, p_call):
            xc = flat[start : start + p_call]  # (B, d)
            b = xc.shape[0]
            base = f(xc) if finite_difference else None
            for s0 in range(0, n_samples, s_call):
                s = min(s_call, n_samples - s0)
                delta = sample_perturbations(
                    s * b, d, eps, region, generator=generator, dtype=x.dtype, device=x.device
                )
                xs = xc.repeat(s, 1)  # (s*B, d), sample-major
                if finite_difference:
                    change = f(xs + delta) - base.repeat(s, 1)
                else:
                    _, change = jvp(f, (xs,), (delta,))
                v = torch.linalg.vector_norm(change, dim=1).double().cpu().reshape(s, b)
                sums[start : start + b] += v.sum(0)
                sq[start : start + b] += (v * v).sum(0)
    mean = sums / n_samples
    if n_samples > 1:
        var = (sq - n_samples * mean * mean).clamp_min(0) / (n_samples - 1)
        per_point_se = (var / n_samples).sqrt()
    else:
        per_point_se = torch.full_like(mean, float("nan"))
    return mean, per_point_se


def perturbation_stability(
    model: nn.Module,
    x: torch.Tensor,
    eps: float,
    *,
    method: str = "auto",
    region: str = "ball",
    n_samples: int = 64,
    generator: torch.Generator | None = None,
    chunk_size: int = 4096,
) -> StabilityResult:
    """P(f, eps) of ``model`` on the points ``x`` (shape (N, ...), perturbed in R^d flattened).

    Args:
        model: maps (N, ...) to (N, k) (or (N,)); left in the mode and with the
            ``requires_grad`` flags it had.
        x: evaluation points; cast to the model's dtype and device.
        eps: radius of the perturbation region (> 0).
        method: ``"exact"`` (k = 1: eps kappa_d mean ||grad f||), ``"mc"`` (JVP Monte Carlo),
            ``"finite_difference"`` (E ||f(x+delta) - f(x)||), or ``"auto"`` (exact when
            k = 1, else mc).
        region: ``"ball"`` (x' uniform in B_2(x, eps)) or ``"sphere"`` (on its boundary).
        n_samples: perturbations per point for the Monte Carlo methods.
        generator: the source of the perturbations (Monte Carlo methods).
        chunk_size: points per batched call (exact) / rows per batched call (Monte Carlo),
            which bounds memory for any N.
    """
    eps = check_eps(eps)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choices: {', '.join(METHODS)}")
    if region not in REGIONS:
        raise ValueError(f"unknown region {region!r}; choices: {', '.join(REGIONS)}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    x = as_input(model, x)
    # one point first: a model that does not take x fails here, naming the user's shape
    with frozen(model), torch.no_grad():
        k = call(model, x[:1], shape=tuple(x.shape)).shape[1]
    if method == "auto":
        method = "exact" if k == 1 else "mc"
    if method == "exact":
        per_point, per_se = _exact(model, x, eps, region, chunk_size)
        n_samples_used = 0
    else:
        per_point, per_se = _sampled(
            model, x, eps, region, n_samples, generator, method == "finite_difference", chunk_size
        )
        n_samples_used = n_samples
    n = per_point.numel()
    value = float(per_point.mean())
    if n > 1:
        stderr = float(per_point.std(unbiased=True)) / math.sqrt(n)
    else:
        stderr = float(per_se[0]) if method != "exact" else 0.0
    return StabilityResult(value, stderr, method, n, n_samples_used, eps, region, per_point, per_se)
