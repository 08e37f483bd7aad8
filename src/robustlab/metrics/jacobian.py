"""Exact input Jacobians per point, and P from them (``method="jacobian"``).

For f: R^d -> R^k the k x d Jacobian J_f(x) is built exactly, by k reverse passes (VJPs with
the unit cotangents e_1..e_k after one forward) or, when d < k, by d forward passes (JVPs
with the unit tangents), both with ``torch.func``. Then

    P_x = E_{delta ~ U(R)} ||J_f(x) delta||_2

is estimated by Monte Carlo over delta on J alone (no further network passes; see
:func:`.regions.jacobian_norms`), and the RMS form is exact:
``E ||J delta||^2 = eps^2 ||J||_F^2 c`` with c = 1/(d+2) (ball), 1/d (sphere), 1/3 (cube)
(Zhu et al., NeurIPS 2022; docs/definitions.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from ._state import as_input, call, frozen, jvp, probe
from ._task import Task
from .outputs import check_labels, check_output
from .regions import jacobian_norms

__all__ = ["input_jacobians"]

SAMPLE_BLOCK = 1 << 22  # float64 entries per block of Jacobian samples (32 MiB)


def jacobian_chunks(
    model: Callable,
    x: torch.Tensor,
    k: int,
    chunk: int,
    steps: tuple,
    y: torch.Tensor | None,
) -> Iterator[torch.Tensor]:
    """Yield J_f for consecutive chunks of x: (B, k, d), in the model's dtype and device.

    min(k, d) passes per chunk: k VJPs (reverse) or d JVPs (forward, d < k). A chunk holds
    ``chunk // min(k, d)`` points, so a forward-mode call has at most ``chunk`` rows.
    """
    n, d = x.shape[0], x[0].numel()
    shape = tuple(x.shape)
    per = max(1, chunk // min(k, d))
    with frozen(model):
        for start in range(0, n, per):
            xc = x[start : start + per]
            yc = None if y is None else y[start : start + per]
            b = xc.shape[0]
            if d < k:  # forward mode: row (i, b) carries the tangent e_i
                xs = xc.repeat(d, *([1] * (x.ndim - 1)))  # (d*B, ...)
                eye = torch.eye(d, dtype=x.dtype, device=x.device)
                tangents = eye[:, None, :].expand(d, b, d).reshape(xs.shape)
                ys = None if yc is None else yc.repeat(d)
                _, jv = jvp(
                    lambda z, ys=ys: call(model, z, shape, output=steps, y=ys), (xs,), (tangents,)
                )
                yield jv.reshape(d, b, k).permute(1, 2, 0).detach()  # (d, B, k) -> (B, k, d)
            else:  # reverse mode: one forward, k VJPs
                with torch.enable_grad():
                    out, vjp_fn = torch.func.vjp(
                        lambda z, yc=yc: call(model, z, shape, output=steps, y=yc), xc.detach()
                    )
                    rows = []
                    for j in range(k):
                        cot = torch.zeros_like(out)
                        cot[:, j] = 1
                        rows.append(vjp_fn(cot)[0].reshape(b, d))
                yield torch.stack(rows, 1).detach()  # (B, k, d)


def input_jacobians(
    model: Callable,
    x: torch.Tensor,
    *,
    output: object = None,
    y: torch.Tensor | None = None,
    chunk_size: int = 4096,
) -> torch.Tensor:
    """Exact input Jacobians J_f(x) per point, flattened inputs: (N, ...) -> (N, k, d).

    ``output`` and ``y`` select the measured output as in :func:`perturbation_stability`.
    The model is left in the mode and with the ``requires_grad`` flags it had.
    """
    x = as_input(model, x)
    steps = check_output(output)
    y = check_labels(y, x.shape[0], x.device)
    k, y = probe(model, x, steps, y)
    return torch.cat(list(jacobian_chunks(model, x, k, chunk_size, steps, y)))


def jacobian_stability(
    task: Task, k: int, n_samples: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-point P (Monte Carlo on exact J, ``k`` outputs, ``n_samples`` draws per point),
    its standard error and the exact RMS form."""
    model, x, eps, region, chunk = task.model, task.x, task.eps, task.region, task.chunk
    steps, y, progress = task.steps, task.y, task.progress
    n, d = x.shape[0], x[0].numel()
    width = d if region.extra_dims is None else min(k, d)  # entries per draw per point
    block = max(1, SAMPLE_BLOCK // (n_samples * width))
    means, ses, rms = [], [], []
    done = 0
    for J in jacobian_chunks(model, x, k, chunk, steps, y):
        frob2 = J.double().pow(2).sum((1, 2))
        rms.append((eps * (frob2 * region.rms_factor(d)).sqrt()).cpu())
        for Jb in J.split(block):
            v = jacobian_norms(region, Jb, n_samples, eps, generator)  # (n_samples, b)
            means.append(v.mean(0).cpu())
            if n_samples > 1:
                ses.append((v.std(0) / math.sqrt(n_samples)).cpu())
            else:
                ses.append(torch.full((v.shape[1],), float("nan"), dtype=torch.float64))
        done += J.shape[0]
        if progress is not None:
            progress(done, n)
    return torch.cat(means), torch.cat(ses), torch.cat(rms)
