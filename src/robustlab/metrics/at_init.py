"""P of random networks at initialization, against the closed form (docs/definitions.md)."""

from __future__ import annotations

import math

import torch

from .._checks import check_memory
from .._sampling import uniform_sphere
from ..models._mlp import check_positive_int, mlp, n_params
from ..theory import expected_grad_sq_norm, init_stability_bound
from ._adversarial import adversarial, norm_of_region
from .regions import get_region
from .stability import CHUNK, exact_from_gradients, input_gradients, perturbation_stability

__all__ = [
    "TABLE_COLUMNS",
    "WORST_COLUMNS",
    "sphere_points",
    "stability_at_init",
    "stability_table",
    "worst_at_init",
]

# the summary columns of stability_table, in order
TABLE_COLUMNS = (
    "init",
    "width",
    "depth",
    "eps",
    "method",
    "seeds",
    "points",
    "p_mean",
    "p_stderr",
    "p_bound_theory",
    "grad_sq_measured",
    "grad_sq_theory",
)
# the columns of a worst case alone (worst_at_init): the P and theory columns do not apply
WORST_COLUMNS = ("init", "width", "depth", "eps", "method", "seeds", "points", "worst_mean",
                 "worst_stderr")  # fmt: skip


def sphere_points(
    n: int, d: int, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """n points uniform on the unit sphere S^{d-1}: (n, d) (normalised Gaussians)."""
    return uniform_sphere(n, d, generator, dtype)


DEFAULT_POINTS = 1000  # evaluation points of stability_at_init


def check_size(
    in_dim: int,
    width: int,
    depth: int,
    points: int = DEFAULT_POINTS,
    out_dim: int = 1,
    dtype: torch.dtype = torch.float32,
) -> None:
    """Refuse, before any allocation, a measurement whose arrays cannot fit this machine's
    memory: the network's weights, the points and their input gradients (points, d), and
    the activations of one chunk of points through the hidden layers."""
    d, m = check_positive_int("in_dim", in_dim), check_positive_int("width", width)
    L, n = check_positive_int("depth", depth), check_positive_int("points", points)
    floats = n_params(d, m, L, out_dim) + 2 * n * d + min(n, CHUNK) * m * (L - 1)
    check_memory(
        "points" if 2 * n * d > floats / 2 else "width",
        f"measuring {n} points of dimension {d} on networks of width {m} and depth {L}",
        floats * dtype.itemsize,
        "use fewer points or a smaller in_dim, width or depth",
    )


def _draw(
    init: str,
    in_dim: int,
    width: int,
    depth: int,
    out_dim: int,
    seed: int,
    points: int,
    dtype: torch.dtype,
    device: torch.device | str | None,
) -> tuple[torch.nn.Module, torch.Tensor, torch.Generator]:
    """Seed ``seed``'s network (drawn with ``torch.Generator().manual_seed(seed)``), its
    points (n, d) on S^{d-1} and the generator that drew them (seeded ``10_000 + seed``),
    which then draws the perturbations or PGD's random starts."""
    generator = torch.Generator().manual_seed(seed)
    net = mlp(in_dim, width, depth, out_dim, init=init, generator=generator, dtype=dtype,
              device=device)  # fmt: skip
    gen = torch.Generator().manual_seed(10_000 + seed)
    return net, sphere_points(points, in_dim, generator=gen, dtype=dtype), gen


def _over_seeds(values: list[float], single_stderr: float) -> tuple[float, float]:
    """The mean over seeds and its standard error (sample sd / sqrt(seeds)); with one seed,
    that seed's own standard error over points."""
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, single_stderr
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values))


def stability_at_init(
    init: str,
    in_dim: int,
    width: int,
    depth: int,
    eps: float,
    *,
    seeds: int = 10,
    points: int = DEFAULT_POINTS,
    method: str = "auto",
    region: str = "ball",
    n_samples: int | None = None,
    out_dim: int = 1,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    progress=None,
) -> dict:
    """P of ``seeds`` random MLPs at init on ``points`` uniform points of S^{d-1}.

    Seed s draws the network with ``torch.Generator().manual_seed(s)`` and the points and
    perturbations with seed ``10_000 + s``. Returns a dict with the per-seed list ``runs``
    (seed, p_value, p_stderr, grad_sq_mean) and the summary: mean P over seeds, its standard
    error over seeds, the measured mean ||grad||^2 (k = 1), and the theory: closed-form
    E||grad||^2 and the Jensen bound eps kappa_d sqrt(E||grad||^2).
    """
    seeds = check_positive_int("seeds", seeds)
    points = check_positive_int("points", points)
    check_size(in_dim, width, depth, points, out_dim, dtype)
    runs = []
    for s in range(seeds):
        net, x, gen = _draw(init, in_dim, width, depth, out_dim, s, points, dtype, device)
        grads = input_gradients(net, x) if out_dim == 1 else None  # (points, d), once
        if grads is not None and method in ("auto", "exact") and get_region(region).kappa:
            res = exact_from_gradients(grads, eps, region)  # what "exact" would compute
        else:
            res = perturbation_stability(
                net, x, eps, method=method, region=region, n_samples=n_samples, generator=gen
            )
        g2 = math.nan if grads is None else float(grads.double().pow(2).sum(1).mean())
        runs.append(
            {
                "seed": s,
                "p_value": res.value,
                "p_stderr": res.stderr,
                "grad_sq_mean": g2,
                "method": res.method,
            }
        )
        if progress is not None:
            progress(s + 1, seeds)
    mean, se = _over_seeds([r["p_value"] for r in runs], runs[0]["p_stderr"])
    g2s = [r["grad_sq_mean"] for r in runs]
    return {
        "init": init,
        "in_dim": in_dim,
        "width": width,
        "depth": depth,
        "out_dim": out_dim,
        "eps": eps,
        "region": region,
        "method": runs[0]["method"],
        "seeds": seeds,
        "points": points,
        "p_mean": mean,
        "p_stderr": se,
        "grad_sq_measured": sum(g2s) / len(g2s),
        "grad_sq_theory": expected_grad_sq_norm(init, in_dim, width, depth, out_dim),
        "p_bound_theory": init_stability_bound(init, in_dim, width, depth, eps, region)
        if out_dim == 1
        else math.nan,
        "runs": runs,
    }


def worst_at_init(
    init: str,
    in_dim: int,
    width: int,
    depth: int,
    eps: float,
    *,
    seeds: int = 10,
    points: int = DEFAULT_POINTS,
    region: str = "ball",
    out_dim: int = 1,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    progress=None,
) -> dict:
    """The worst case beside :func:`stability_at_init`: on the same networks and points,
    per point the largest ``||f(x') - f(x)||_2`` that PGD finds over the region
    (:func:`robustlab.metrics.adversarial` with its defaults, 20 steps and 3 restarts; the
    L2 ball for ``ball`` and ``sphere``, the cube for ``linf_ball``: :func:`norm_of_region`),
    its random starts drawn by the points' generator after the points.

    Returns a dict with the per-seed list ``runs`` (seed, worst_value, worst_stderr) and
    ``worst_mean`` (over seeds), ``worst_stderr`` (over seeds; over points for one seed) and
    the setting (init, in_dim, width, depth, out_dim, eps, region, method ``"pgd"``, seeds,
    points).
    """
    seeds = check_positive_int("seeds", seeds)
    points = check_positive_int("points", points)
    norm = norm_of_region(region)
    check_size(in_dim, width, depth, points, out_dim, dtype)
    runs = []
    for s in range(seeds):
        net, x, gen = _draw(init, in_dim, width, depth, out_dim, s, points, dtype, device)
        res = adversarial(net, x, eps, norm=norm, generator=gen)
        runs.append({"seed": s, "worst_value": res.value, "worst_stderr": res.stderr})
        if progress is not None:
            progress(s + 1, seeds)
    mean, se = _over_seeds([r["worst_value"] for r in runs], runs[0]["worst_stderr"])
    return {
        "init": init,
        "in_dim": in_dim,
        "width": width,
        "depth": depth,
        "out_dim": out_dim,
        "eps": eps,
        "region": region,
        "method": "pgd",
        "seeds": seeds,
        "points": points,
        "worst_mean": mean,
        "worst_stderr": se,
        "runs": runs,
    }


def stability_table(
    inits: list[str],
    in_dim: int,
    widths: list[int],
    depths: list[int],
    eps: list[float],
    *,
    progress=None,
    **kwargs,
) -> list[dict]:
    """:func:`stability_at_init` over every (init, width, depth, eps), the last varying
    fastest: one row of :data:`TABLE_COLUMNS` each. ``kwargs`` go to
    :func:`stability_at_init` (seeds, points, method, region, n_samples, out_dim, dtype,
    device); ``progress()`` is called once per network measured."""
    tick = (lambda *_: progress()) if progress is not None else None
    if widths and depths:  # the largest network, before the first is built
        points, out_dim = kwargs.get("points", DEFAULT_POINTS), kwargs.get("out_dim", 1)
        dtype = kwargs.get("dtype", torch.float32)
        check_size(in_dim, max(widths), max(depths), points, out_dim, dtype)
    rows = []
    for init in inits:
        for width in widths:
            for depth in depths:
                for e in eps:
                    r = stability_at_init(init, in_dim, width, depth, e, progress=tick, **kwargs)
                    rows.append({c: r[c] for c in TABLE_COLUMNS})
    return rows
