"""Perturbation stability P(f, eps) (Zhu et al., NeurIPS 2022; docs/definitions.md).

    P(f, eps) = E_{x ~ data} E_{x' ~ U(R(x, eps))} || J_f(x) (x' - x) ||_2

with R the L2 ball (``region="ball"``), its sphere (``"sphere"``) or the L-infinity ball
(``"linf_ball"``, a cube) of radius eps around x (see :mod:`.regions`); inputs of any shape
(N, ...), perturbed in the flattened space R^d, reach the model in their own shape. Lower is
more robust. f is the model's output picked by ``output=`` (see :mod:`.outputs`).

Methods:
- ``exact`` (k = 1, ball or sphere): ``E|g . delta| = eps * kappa_d * ||g||_2``, so P is
  ``eps * kappa_d * mean_x ||grad_x f(x)||``: one input gradient per point, no sampling.
- ``jacobian``: the exact k x d Jacobian per point (min(k, d) passes), then Monte Carlo over
  delta on J alone; RMS form exact (see :mod:`.jacobian`).
- ``mc``: Monte Carlo over delta with forward-mode JVPs ``J_f(x) delta`` (torch.func.jvp);
  the Jacobian is never built. Any output dimension.
- ``finite_difference``: the nonlinear form ``E ||f(x + delta) - f(x)||_2`` by Monte Carlo;
  with ``clip=(lo, hi)`` the perturbed point is ``clamp(x + delta, lo, hi)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .._checks import check_positive_int
from ._state import as_input, call, check_clip, check_eps, frozen, jvp, probe
from ._task import Task
from .jacobian import jacobian_stability
from .outputs import check_labels, check_output
from .regions import REGIONS as _REGIONS
from .regions import Region, get_region, sample_perturbations

__all__ = [
    "AUTO_JACOBIAN_MAX_PASSES",
    "StabilityResult",
    "exact_from_gradients",
    "input_gradients",
    "perturbation_stability",
    "sample_perturbations",
]

METHODS = ("auto", "exact", "mc", "finite_difference", "jacobian")
REGIONS = tuple(_REGIONS)
# auto picks "jacobian" for k > 1 when J takes at most this many passes, min(k, d): no more
# network passes than mc's default 64 samples, and far more (free) samples of delta
AUTO_JACOBIAN_MAX_PASSES = 64
DEFAULT_SAMPLES = {"mc": 64, "finite_difference": 64, "jacobian": 1024}
CHUNK = 4096  # default points per batched call: bounds the memory of the network's pass


@dataclass(frozen=True)
class StabilityResult:
    """P(f, eps) and its standard error.

    ``stderr`` is over points for ``exact`` (the value is exact per point); for Monte Carlo
    methods it is the standard error of the mean of the per-point estimates (points and
    perturbations both vary). ``per_point`` (N,) and ``per_point_stderr`` (N,; zeros for
    exact) are on the CPU in float64. ``rms`` is the RMS stability
    ``sqrt(E_x E_delta ||J_f(x) delta||^2)`` and ``per_point_rms`` (N,) its per-point form,
    exact from ``eps^2 ||J||_F^2 c`` (``exact`` and ``jacobian`` only; None otherwise).
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
    rms: float | None = None
    per_point_rms: torch.Tensor | None = field(default=None, repr=False)


def _gradient_chunks(
    model: Callable,
    x: torch.Tensor,
    chunk: int,
    need: str,
    hint: str = "",
    steps: tuple = (),
    y: torch.Tensor | None = None,
):
    """Yield grad_x f per chunk of x, flattened (B, d): one forward, one input-only backward.

    Parameters are frozen, so no weight gradients are formed; ``need`` and ``hint`` word the
    error raised for a model with k > 1 outputs.
    """
    with frozen(model), torch.enable_grad():
        for start in range(0, x.shape[0], chunk):
            xc = x[start : start + chunk].detach().requires_grad_(True)  # a leaf, no copy
            yc = None if y is None else y[start : start + chunk]
            out = call(model, xc, shape=tuple(x.shape), output=steps, y=yc)
            if out.shape[1] != 1:
                raise ValueError(f"{need} (k = 1), the model has k = {out.shape[1]}{hint}")
            (g,) = torch.autograd.grad(out.sum(), xc)
            yield g.reshape(g.shape[0], -1)


def input_gradients(
    model: Callable,
    x: torch.Tensor,
    *,
    chunk_size: int = CHUNK,
    output: object = None,
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """grad_x f(x) for a scalar output, flattened: (N, ...) -> (N, d).

    One forward and one input-only backward per chunk. ``output``/``y`` pick the output as in
    :func:`perturbation_stability`. The model is left as found.
    """
    x = as_input(model, x)
    steps = check_output(output)
    y = check_labels(y, x.shape[0], x.device)
    if y is not None:
        _, y = probe(model, x, steps, y)
    need = "input gradients need a scalar output"
    return torch.cat(list(_gradient_chunks(model, x, chunk_size, need, "", steps, y)))


def _exact(task: Task):
    model, x, eps, region, chunk = task.model, task.x, task.eps, task.region, task.chunk
    steps, y, progress = task.steps, task.y, task.progress
    d, n = x[0].numel(), x.shape[0]
    need = "method 'exact' needs a scalar output"
    norms, done = [], 0
    for g in _gradient_chunks(model, x, chunk, need, "; use method='jacobian' or 'mc'", steps, y):
        norms.append(torch.linalg.vector_norm(g, dim=1).double().cpu())
        done += g.shape[0]
        if progress is not None:
            progress(done, n)
    return _exact_per_point(torch.cat(norms), d, eps, region)


def _exact_per_point(grad_norm: torch.Tensor, d: int, eps: float, region: Region):
    """(per point P, zero stderr, per point RMS) from ||grad_x f(x)|| (N,): eps kappa_d ||g||
    and eps sqrt(c(d)) ||g||."""
    per_point = grad_norm * (eps * region.kappa(d))
    per_point_rms = grad_norm * (eps * math.sqrt(region.rms_factor(d)))
    return per_point, torch.zeros_like(per_point), per_point_rms


def _result(per_point, per_se, per_rms, method: str, n_used: int, eps: float, region: str):
    """The :class:`StabilityResult` of per-point values: mean, stderr over points."""
    n = per_point.numel()
    value = float(per_point.mean())
    if n > 1:
        stderr = float(per_point.std(unbiased=True)) / math.sqrt(n)
    else:
        stderr = float(per_se[0]) if method != "exact" else 0.0
    rms = None if per_rms is None else float(per_rms.pow(2).mean().sqrt())
    return StabilityResult(
        value, stderr, method, n, n_used, eps, region, per_point, per_se, rms, per_rms
    )


def exact_from_gradients(grads: torch.Tensor, eps: float, region: str = "ball") -> StabilityResult:
    """P of a one-output model from its input gradients, already computed: ``grads`` (N, d)
    = grad_x f(x) at the N points. The ``exact`` method without a model: per point
    eps kappa_d ||g||_2 (E|g . delta| over the region), so one gradient per point serves
    every eps. Same result as ``perturbation_stability(model, x, eps, method="exact")``.
    """
    eps = check_eps(eps)
    reg = get_region(region)
    if reg.kappa is None:
        raise ValueError(f"method 'exact' has no closed form on region {reg.name!r}")
    grad_norm = torch.linalg.vector_norm(grads.reshape(grads.shape[0], -1), dim=1).double().cpu()
    per_point, per_se, per_rms = _exact_per_point(grad_norm, grads[0].numel(), eps, reg)
    return _result(per_point, per_se, per_rms, "exact", 0, eps, reg.name)


def _sampled(
    task: Task,
    n_samples: int,
    generator: torch.Generator | None,
    finite_difference: bool,
    clip: tuple[float, float] | None = None,
):
    """Per-point P and its standard error from ``n_samples`` draws per point: J delta by a
    JVP, or f(x + delta) - f(x) with ``finite_difference`` (clamped to ``clip``); at most
    ``task.chunk`` rows per batched call."""
    model, x, eps, region, max_rows = task.model, task.x, task.eps, task.region, task.chunk
    steps, y, progress = task.steps, task.y, task.progress
    n, d = x.shape[0], x[0].numel()
    flat = x.reshape(n, d)
    sums = torch.zeros(n, dtype=torch.float64)
    sq = torch.zeros(n, dtype=torch.float64)

    def f(z: torch.Tensor, rows_y: torch.Tensor | None) -> torch.Tensor:  # (rows, d) -> (rows, k)
        return call(
            model, z.reshape(z.shape[0], *x.shape[1:]), tuple(x.shape), output=steps, y=rows_y
        )

    # rows of one batched call = points_per_call * samples_per_call <= max_rows
    s_call = max(1, min(n_samples, max_rows))
    p_call = max(1, max_rows // s_call)
    with frozen(model), torch.no_grad():
        for start in range(0, n, p_call):
            xc = flat[start : start + p_call]  # (B, d)
            yc = None if y is None else y[start : start + p_call]
            b = xc.shape[0]
            base = f(xc, yc) if finite_difference else None
            for s0 in range(0, n_samples, s_call):
                s = min(s_call, n_samples - s0)
                delta = sample_perturbations(
                    s * b, d, eps, region.name, generator=generator, dtype=x.dtype, device=x.device
                )
                xs = xc.repeat(s, 1)  # (s*B, d), sample-major
                ys = None if yc is None else yc.repeat(s)
                if finite_difference:
                    moved = xs + delta if clip is None else (xs + delta).clamp(*clip)
                    change = f(moved, ys) - base.repeat(s, 1)
                else:
                    _, change = jvp(lambda z, ys=ys: f(z, ys), (xs,), (delta,))
                v = torch.linalg.vector_norm(change, dim=1).double().cpu().reshape(s, b)
                sums[start : start + b] += v.sum(0)
                sq[start : start + b] += (v * v).sum(0)
            if progress is not None:
                progress(start + b, n)
    mean = sums / n_samples
    if n_samples > 1:
        var = (sq - n_samples * mean * mean).clamp_min(0) / (n_samples - 1)
        per_point_se = (var / n_samples).sqrt()
    else:
        per_point_se = torch.full_like(mean, float("nan"))
    return mean, per_point_se


def _choose(method: str, k: int, d: int, region: Region) -> str:
    """``auto``: exact for k = 1 on the ball/sphere; jacobian while min(k, d) is at most
    AUTO_JACOBIAN_MAX_PASSES (k = 1 on the cube included); else mc."""
    if method != "auto":
        return method
    if k == 1 and region.kappa is not None:
        return "exact"
    return "jacobian" if min(k, d) <= AUTO_JACOBIAN_MAX_PASSES else "mc"


def perturbation_stability(
    model: Callable,
    x: torch.Tensor,
    eps: float,
    *,
    method: str = "auto",
    region: str = "ball",
    n_samples: int | None = None,
    generator: torch.Generator | None = None,
    chunk_size: int = CHUNK,
    output: object = None,
    y: torch.Tensor | None = None,
    clip: tuple[float, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> StabilityResult:
    """P(f, eps) of ``model`` on the points ``x`` (shape (N, ...), perturbed in R^d flattened).

    Args:
        model: any callable mapping x (N, ...) to a tensor (N, k) or (N,), or to a tuple /
            dict of them (then pick one with ``output``). A module is left in the mode and
            with the ``requires_grad`` flags it had; it runs in eval mode.
        x: evaluation points (N, ...), passed to the model in this shape; cast to the model's
            dtype and device.
        eps: radius of the perturbation region (> 0).
        method: ``"exact"`` (k = 1: eps kappa_d mean ||grad f||; ball or sphere),
            ``"jacobian"`` (exact J per point, Monte Carlo over delta on J), ``"mc"`` (JVP
            Monte Carlo), ``"finite_difference"`` (E ||f(x+delta) - f(x)||), or ``"auto"``:
            exact when k = 1 (ball/sphere), else jacobian when min(k, d) <=
            ``AUTO_JACOBIAN_MAX_PASSES`` (64), else mc.
        region: ``"ball"`` (x' uniform in B_2(x, eps)), ``"sphere"`` (on its boundary) or
            ``"linf_ball"`` (uniform in the cube ||x' - x||_inf <= eps).
        n_samples: perturbations per point for the Monte Carlo methods (default 64 for mc and
            finite_difference, 1024 for jacobian, whose samples need no network pass).
        generator: the source of the perturbations (Monte Carlo methods).
        chunk_size: points per batched call (exact) / rows per batched call (Monte Carlo;
            jacobian: ``chunk_size // min(k, d)`` points), which bounds memory for any N.
        output: what is measured when the model returns several things: an index, a dict
            key, ``"margin"``, ``"label"``, a callable, or a tuple of those applied in turn
            (see :mod:`robustlab.metrics.outputs`).
        y: labels (N,) for ``output="margin"`` / ``"label"``: class indices, or {-1, +1}
            for a margin of one output.
        clip: ``(lo, hi)``, the input box (e.g. (0, 1) for images): finite_difference
            evaluates f at ``clamp(x + delta, lo, hi)``. The linear methods measure
            ``J delta`` over the whole region and refuse it.
        progress: called as ``progress(points_done, n_points)`` after each chunk.
    """
    eps = check_eps(eps)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choices: {', '.join(METHODS)}")
    reg = get_region(region)
    if n_samples is not None:
        n_samples = check_positive_int("n_samples", n_samples, floats=False)
    chunk_size = check_positive_int("chunk_size", chunk_size, floats=False)
    steps = check_output(output)
    x = as_input(model, x)
    y = check_labels(y, x.shape[0], x.device)
    clip = check_clip(clip, x)
    if clip is not None and method != "finite_difference":
        raise ValueError(
            f"clip applies to method='finite_difference' (and rl.metrics.adversarial), not "
            f"{method!r}: the linear methods measure J delta over the whole region"
        )
    k, y = probe(model, x, steps, y)
    d = x[0].numel()
    method = _choose(method, k, d, reg)
    if method == "exact" and reg.kappa is None:
        raise ValueError(
            f"method 'exact' has no closed form on region {reg.name!r}; use method='jacobian' "
            "(the exact gradient, Monte Carlo over the region)"
        )
    if method == "exact" and k != 1:
        raise ValueError(
            f"method 'exact' needs a scalar output (k = 1), the model has k = {k}; "
            "use method='jacobian' or 'mc'"
        )
    n_used = 0 if method == "exact" else n_samples or DEFAULT_SAMPLES[method]
    per_rms = None
    task = Task(model, x, eps, reg, chunk_size, steps, y, progress)
    if method == "exact":
        per_point, per_se, per_rms = _exact(task)
    elif method == "jacobian":
        per_point, per_se, per_rms = jacobian_stability(task, k, n_used, generator)
    else:
        fd = method == "finite_difference"
        per_point, per_se = _sampled(task, n_used, generator, fd, clip)
    return _result(per_point, per_se, per_rms, method, n_used, eps, reg.name)
