"""Worst-case robustness: projected gradient ascent with random restarts (PGD).

Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards deep learning models resistant to
adversarial attacks", ICLR 2018 (arXiv 1706.06083). Over the same region as P, with
``norm="l2"`` the ball ``||x' - x||_2 <= eps`` and ``norm="linf"`` the cube
``||x' - x||_inf <= eps`` (intersected with the box ``clip=(lo, hi)`` when given), PGD
approximately solves, per point x,

- without labels: ``max_{x'} ||f(x') - f(x)||_2`` (|f(x') - f(x)| for k = 1), the worst case
  beside the average P (Wu et al., NeurIPS 2021, call it perturbation stability too);
- with labels ``y``: ``min_{x'} margin(x')``, margin = true logit minus the largest other
  (``y f`` for one output); the point is robust when the minimum stays > 0, and the
  fraction of robust points is the robust accuracy.

Each restart starts from a uniform random point of the region; step t moves along the
norm's steepest-ascent direction, ``alpha_t g / ||g||_2`` (L2) or ``alpha_t sign(g)``
(L-inf), then projects back onto the region (and clamps into the box). By default the step
follows a cosine schedule from 2 eps down, ``alpha_t = eps (1 + cos(pi t / steps))`` (large
first steps as in APGD, Croce & Hein, ICML 2020; on a linear model the L2 iterates then
converge to the optimum, where Madry et al.'s constant ``2.5 eps / steps`` stalls about 1.5%
short of it whatever the number of steps); a given ``step_size`` is used at every step. The
best iterate over all steps and restarts is kept. PGD finds a lower bound on the true
maximum (an upper bound on the smallest margin).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .._checks import check_positive, check_positive_int
from ._state import as_input, call, check_clip, check_eps, frozen, probe
from .outputs import check_labels, check_output
from .regions import REGIONS, Region, get_region

__all__ = ["NORMS", "AdversarialResult", "Norm", "adversarial", "norm_of_region"]


def _l2_step(g: torch.Tensor, alpha: float) -> torch.Tensor:  # (B, d) -> (B, d)
    norm = torch.linalg.vector_norm(g, dim=1, keepdim=True)
    return alpha * g / norm.clamp_min(torch.finfo(g.dtype).tiny)


def _l2_project(delta: torch.Tensor, eps: float) -> torch.Tensor:
    norm = torch.linalg.vector_norm(delta, dim=1, keepdim=True)
    return delta * (eps / norm.clamp_min(torch.finfo(delta.dtype).tiny)).clamp(max=1.0)


@dataclass(frozen=True)
class Norm:
    """One threat model: its region, ascent step and projection (all on flat (B, d) rows)."""

    name: str
    region: Region  # random starts are uniform in it
    step: Callable[[torch.Tensor, float], torch.Tensor]
    project: Callable[[torch.Tensor, float], torch.Tensor]
    doc: str = ""


NORMS: dict[str, Norm] = {
    n.name: n
    for n in (
        Norm("l2", REGIONS["ball"], _l2_step, _l2_project, "||x' - x||_2 <= eps"),
        Norm(
            "linf",
            REGIONS["linf_ball"],
            lambda g, alpha: alpha * g.sign(),
            lambda delta, eps: delta.clamp(-eps, eps),
            "||x' - x||_inf <= eps",
        ),
    )
}


def norm_of_region(region: str) -> str:
    """The threat model whose worst case stands beside P on ``region``: ``"l2"`` for the
    L2 ball and for the sphere (searched over its ball, whose worst case it equals for a
    linear f), ``"linf"`` for the cube ``linf_ball``; ValueError naming the choices."""
    get_region(region)
    return "linf" if region == "linf_ball" else "l2"


@dataclass(frozen=True)
class AdversarialResult:
    """The worst case found by PGD.

    ``objective`` is ``"change"`` (no labels): ``per_point`` (N,) is the largest
    ``||f(x') - f(x)||_2`` found per point and ``value`` its mean (compare with P: the ratio
    worst / average); or ``"margin"`` (labels given): ``per_point`` is the smallest margin
    found, ``robust_accuracy`` the fraction of points whose margin stayed > 0 and
    ``clean_accuracy`` the fraction with margin(x) > 0. ``stderr`` is over points.
    ``x_adv`` (N, ...) holds the worst x' per point. Tensors are float64 on the CPU
    (``x_adv``: x's dtype, on its device). ``step_size`` is None for the cosine schedule.
    """

    value: float
    stderr: float
    objective: str
    norm: str
    eps: float
    steps: int
    restarts: int
    step_size: float | None
    n_points: int
    robust_accuracy: float | None
    clean_accuracy: float | None
    per_point: torch.Tensor = field(repr=False)
    x_adv: torch.Tensor = field(repr=False)


def _step_sizes(eps: float, steps: int, step_size: float | None) -> list[float]:
    """alpha_t for t = 0..steps-1: constant, or the cosine schedule eps (1 + cos(pi t / steps))."""
    if step_size is not None:
        return [step_size] * steps
    return [eps * (1.0 + math.cos(math.pi * t / steps)) for t in range(steps)]


@dataclass(frozen=True)
class _Attack:
    """One PGD attack's settings: radius, threat model (norm), steps, restarts, step sizes
    per step, input box, and whether it maximises the margin loss."""

    eps: float
    norm: Norm
    steps: int
    restarts: int
    alphas: object
    clip: tuple[float, float] | None
    margin: bool


def _pgd_chunk(f, x0, y0, attack: _Attack, generator):
    """Best objective (to maximise) and its x' for one chunk of points (B, d) rows."""
    eps, norm, steps, restarts = attack.eps, attack.norm, attack.steps, attack.restarts
    alphas, clip, margin = attack.alphas, attack.clip, attack.margin
    b, d = x0.shape
    base = None if margin else f(x0, y0).detach()

    def objective(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = f(z, y0)  # (B, k)
        if margin:
            return -out[:, 0], -out[:, 0]
        diff = out - base
        sq = diff.pow(2).sum(1)  # smooth at x' = x, same ascent direction as the norm
        return sq.sqrt(), sq

    best = torch.full((b,), -math.inf, dtype=x0.dtype, device=x0.device)
    best_x = x0.clone()
    for _ in range(restarts):
        start = norm.region.unit(b, d, generator, x0.dtype).to(x0.device) * eps
        delta = start if clip is None else (x0 + start).clamp(*clip) - x0
        for t in range(steps + 1):
            z = (x0 + delta).detach().requires_grad_(t < steps)
            with torch.set_grad_enabled(t < steps):
                value, smooth = objective(z)
            better = value.detach() > best
            best = torch.where(better, value.detach(), best)
            best_x[better] = z.detach()[better]
            if t == steps:
                break
            (g,) = torch.autograd.grad(smooth.sum(), z)
            delta = norm.project(delta + norm.step(g, alphas[t]), eps)
            if clip is not None:
                delta = (x0 + delta).clamp(*clip) - x0
    return best, best_x


def adversarial(
    model: Callable,
    x: torch.Tensor,
    eps: float,
    *,
    norm: str = "l2",
    steps: int = 20,
    restarts: int = 3,
    step_size: float | None = None,
    y: torch.Tensor | None = None,
    output: object = None,
    clip: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
    chunk_size: int = 1024,
    progress: Callable[[int, int], None] | None = None,
) -> AdversarialResult:
    """Worst case of ``model`` around each point of ``x`` by PGD with random restarts.

    Args:
        model: any callable, as for :func:`perturbation_stability`; left in the mode and
            with the ``requires_grad`` flags it had (it runs in eval mode).
        x: points (N, ...), passed to the model in this shape.
        eps: radius of the threat region (> 0).
        norm: ``"l2"`` (``||x' - x||_2 <= eps``) or ``"linf"`` (``||x' - x||_inf <= eps``).
        steps: ascent steps per restart.
        restarts: random starts per point (each uniform in the region).
        step_size: alpha, the same at every step; None (default): the cosine schedule
            ``alpha_t = eps (1 + cos(pi t / steps))``, from 2 eps down.
        y: labels (N,): the objective becomes the margin of the selected logits (class
            indices, or {-1, +1} for one output) and robust accuracy is reported.
        output: which output is measured (index, dict key, callable, or a tuple of those;
            ``"margin"`` is implied by ``y``); see :mod:`robustlab.metrics.outputs`.
        clip: ``(lo, hi)``: every x' stays in this input box (x must lie in it).
        generator: the source of the random starts.
        chunk_size: points attacked together.
        progress: called as ``progress(points_done, n_points)`` after each chunk.
    """
    eps = check_eps(eps)
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choices: {', '.join(NORMS)}")
    threat = NORMS[norm]
    steps = check_positive_int("steps", steps, floats=False)
    restarts = check_positive_int("restarts", restarts, floats=False)
    chunk_size = check_positive_int("chunk_size", chunk_size, floats=False)
    if step_size is not None:
        step_size = check_positive("step_size", step_size)
    alphas = _step_sizes(eps, steps, step_size)
    steps_out = check_output(output)
    if "label" in steps_out:
        raise ValueError("with y the attack lowers the margin; output='label' does not apply")
    x = as_input(model, x)
    y = check_labels(y, x.shape[0], x.device)
    clip = check_clip(clip, x)
    margin = y is not None
    if margin and "margin" not in steps_out:
        steps_out = (*steps_out, "margin")
    _, y = probe(model, x, steps_out, y)
    n, d = x.shape[0], x[0].numel()
    shape = tuple(x.shape)

    def f(z: torch.Tensor, rows_y: torch.Tensor | None) -> torch.Tensor:  # (B, d) -> (B, k)
        return call(model, z.reshape(z.shape[0], *shape[1:]), shape, output=steps_out, y=rows_y)

    flat = x.reshape(n, d)
    attack = _Attack(eps, threat, steps, restarts, alphas, clip, margin)
    bests, xs, clean = [], [], []
    with frozen(model), torch.enable_grad():
        for start in range(0, n, chunk_size):
            x0 = flat[start : start + chunk_size]
            y0 = None if y is None else y[start : start + chunk_size]
            best, best_x = _pgd_chunk(f, x0, y0, attack, generator)
            bests.append(best.double().cpu())
            xs.append(best_x.detach())
            if margin:
                with torch.no_grad():
                    clean.append(f(x0, y0)[:, 0].double().cpu())
            if progress is not None:
                progress(start + x0.shape[0], n)
    per_point = torch.cat(bests)
    robust = clean_acc = None
    if margin:
        per_point = -per_point  # the smallest margin found
        robust = float((per_point > 0).double().mean())
        clean_acc = float((torch.cat(clean) > 0).double().mean())
    stderr = float(per_point.std()) / math.sqrt(n) if n > 1 else 0.0
    return AdversarialResult(
        float(per_point.mean()),
        stderr,
        "margin" if margin else "change",
        norm,
        eps,
        steps,
        restarts,
        None if step_size is None else float(step_size),
        n,
        robust,
        clean_acc,
        per_point,
        torch.cat(xs).reshape(shape),
    )
