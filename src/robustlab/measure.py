"""The library side of ``robustlab measure``: rows of P, and of its worst case, on random
networks at init or on a saved model.

- :func:`measure_saved` (``rl.measure_saved(...)``): load any format
  :func:`robustlab.models.load_model` reads (a robustlab file, a state dict of a robustlab or
  of your own class, TorchScript, a ``torch.export`` archive), read the points with
  :func:`robustlab.data.load_points`, and return rows per eps.
- :func:`measure_at_init`: random MLPs at init on points of the sphere
  (:mod:`robustlab.metrics.at_init`), rows per (init, width, depth, eps).

Both take one method or several (:data:`MEASURE_METHODS`): the average methods of
:func:`robustlab.metrics.perturbation_stability` and ``pgd``, the worst case over the same
region (:func:`robustlab.metrics.adversarial`). With an average method and ``pgd`` each
average row carries the worst case beside P and their ratio ``worst_over_p`` = worst / P
(1 / kappa_d for a linear f on the ball: about 4.25 at d = 10; NaN where P is 0).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Sequence

import torch

from ._checks import ConfigError
from .metrics.at_init import (
    DEFAULT_POINTS,
    TABLE_COLUMNS,
    WORST_COLUMNS,
    check_size,
    stability_at_init,
    worst_at_init,
)
from .metrics.stability import METHODS

__all__ = ["MEASURE_METHODS", "WORST_METHOD", "measure_at_init", "measure_saved", "split_methods"]

WORST_METHOD = "pgd"  # the worst case found by projected gradient ascent, beside P
MEASURE_METHODS = (*METHODS, WORST_METHOD)


def split_methods(methods: str | Sequence[str]) -> tuple[tuple[str, ...], bool]:
    """One method name or several (distinct, each one of :data:`MEASURE_METHODS`) ->
    (the average methods in the order given, whether ``pgd`` is asked); a ValueError names
    a bad name and the choices."""
    names = [methods] if isinstance(methods, str) else list(methods)
    if not names:
        raise ValueError(f"no method given; choices: {', '.join(MEASURE_METHODS)}")
    for i, name in enumerate(names):
        if not isinstance(name, str) or name not in MEASURE_METHODS:
            raise ValueError(f"unknown method {name!r}; choices: {', '.join(MEASURE_METHODS)}")
        if name in names[:i]:
            raise ValueError(f"method {name!r} is given twice")
    return tuple(n for n in names if n != WORST_METHOD), WORST_METHOD in names


def _ratio(worst: float, average: float) -> float:
    """worst / average, NaN where the average is 0 (a constant function: no ratio)."""
    return worst / average if average != 0 else math.nan


def _with_worst(row: dict, p_key: str, worst_key: str, worst: float, stderr: float) -> dict:
    """``row`` (an average method's) with the worst case and worst / P after its P columns."""
    out = {}
    for key, value in row.items():
        out[key] = value
        if key == "p_stderr":
            out.update({worst_key: worst, "worst_stderr": stderr,
                        "worst_over_p": _ratio(worst, row[p_key])})  # fmt: skip
    return out


def measure_at_init(
    inits: Sequence[str],
    in_dim: int,
    widths: Sequence[int],
    depths: Sequence[int],
    eps: Sequence[float],
    *,
    methods: str | Sequence[str] = "auto",
    seeds: int = 10,
    points: int = DEFAULT_POINTS,
    region: str = "ball",
    n_samples: int | None = None,
    out_dim: int = 1,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    progress: Callable[[], None] | None = None,
) -> list[dict]:
    """P, its worst case, or both, of random MLPs at init, over every (init, width, depth,
    eps), the last varying fastest.

    Each average method gives one row of :data:`robustlab.metrics.at_init.TABLE_COLUMNS`
    (:func:`~robustlab.metrics.at_init.stability_at_init`: seeds 0..seeds-1, ``p_mean`` over
    seeds); with ``pgd`` too, ``worst_mean``, ``worst_stderr`` and ``worst_over_p`` =
    worst_mean / p_mean follow ``p_stderr``, the worst case of the same networks and points
    (:func:`~robustlab.metrics.at_init.worst_at_init`). ``pgd`` alone gives one row of
    :data:`~robustlab.metrics.at_init.WORST_COLUMNS` per setting. With one average method
    the rows are :func:`~robustlab.metrics.at_init.stability_table`'s. ``progress()`` is
    called once per network measured (per seed and method).
    """
    averages, worst = split_methods(methods)
    tick = (lambda *_: progress()) if progress is not None else None
    if widths and depths:  # the largest network, before the first is built
        check_size(in_dim, max(widths), max(depths), points, out_dim, dtype)
    common = dict(seeds=seeds, points=points, region=region, out_dim=out_dim, dtype=dtype,
                  device=device, progress=tick)  # fmt: skip
    rows = []
    for init, width, depth, e in itertools.product(inits, widths, depths, eps):
        w = worst_at_init(init, in_dim, width, depth, e, **common) if worst else None
        if not averages:
            rows.append({c: w[c] for c in WORST_COLUMNS})
        for method in averages:
            r = stability_at_init(
                init, in_dim, width, depth, e, method=method, n_samples=n_samples, **common
            )
            row = {c: r[c] for c in TABLE_COLUMNS}
            if w is not None:
                row = _with_worst(row, "p_mean", "worst_mean", w["worst_mean"], w["worst_stderr"])
            rows.append(row)
    return rows


def measure_saved(
    model_path: str | os.PathLike,
    data: str | os.PathLike,
    eps: Sequence[float],
    *,
    method: str | Sequence[str] = "auto",
    region: str = "ball",
    n_samples: int | None = None,
    output: object = None,
    split: str = "all",
    input_shape: tuple[int, ...] | None = None,
    points: int | None = None,
    clip: tuple[float, float] | None = None,
    spec: dict | None = None,
    model_class: str | None = None,
    model_kwargs: str | dict | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """P(f, eps) of the saved model at ``model_path`` on the points of ``data``, per eps.

    Args:
        model_path, spec, model_class, model_kwargs: as :func:`robustlab.models.load_model`.
        data, split, input_shape: as :func:`robustlab.data.load_points` (labels, when the
            file has them, feed ``output="margin"``/``"label"``); ``points`` keeps the first
            that many.
        eps, region, n_samples, output, clip: as
            :func:`robustlab.metrics.perturbation_stability` (perturbations seeded with 0).
        method: one of :data:`MEASURE_METHODS` or several (:func:`split_methods`); ``pgd``
            is :func:`robustlab.metrics.adversarial` with its defaults (20 steps, 3
            restarts, random starts seeded with 0) over the region's norm
            (:func:`~robustlab.metrics.adversarial.norm_of_region`), within ``clip``; it
            measures the change of f, so it refuses the labelled outputs ``margin`` and
            ``label``.
        progress: called as ``progress(points_done, n_points_total)`` over all eps and
            methods.

    Returns:
        Per eps, one dict per average method: model, data, eps, method, (output), region,
        points, p_value, p_stderr, and with ``pgd`` also worst_value, worst_stderr and
        worst_over_p (worst_value / p_value); with ``pgd`` alone one dict whose worst_value
        and worst_stderr take the place of p_value and p_stderr.
    """
    from .data import load_points
    from .metrics import adversarial, perturbation_stability
    from .metrics._adversarial import norm_of_region
    from .metrics.outputs import check_output, needs_labels
    from .models import load_model

    averages, worst = split_methods(method)
    norm = norm_of_region(region)

    model = load_model(model_path, spec, model_class=model_class, model_kwargs=model_kwargs)
    model = model.to(device=device, dtype=dtype)
    x, y = load_points(data, split=split, input_shape=input_shape)
    if points is not None:
        x, y = x[:points], None if y is None else y[:points]
    labelled = needs_labels(check_output(output))
    if labelled and worst:
        raise ConfigError(
            "output",
            f"pgd measures the worst change of f, not of a labelled margin ({output!r}); use "
            "rl.metrics.adversarial(..., y=labels) for robust accuracy",
        )
    if labelled and y is None:
        raise ConfigError("output", f"{output!r} needs labels; {str(data)!r} holds inputs only")
    rows, n = [], x.shape[0]
    jobs = len(eps) * (len(averages) + worst)  # measurements, each of n points
    selected = None
    if output is not None:
        selected = ",".join(map(str, output if isinstance(output, tuple) else (output,)))

    def report(job: int) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        return lambda k, _n: progress(job * n + k, jobs * n)

    def head(e: float, method: str) -> dict:
        row = {"model": str(model_path), "data": str(data), "eps": e, "method": method}
        if selected is not None:
            row["output"] = selected
        return {**row, "region": region, "points": n}

    job = 0
    for e in eps:
        w = None
        if worst:
            w = adversarial(
                model, x, e, norm=norm, output=output, clip=clip,
                generator=torch.Generator(device=device).manual_seed(0), progress=report(job),
            )  # fmt: skip
            job += 1
            if not averages:
                rows.append({**head(e, WORST_METHOD), "worst_value": w.value,
                             "worst_stderr": w.stderr})  # fmt: skip
        for m in averages:
            r = perturbation_stability(
                model, x, e, method=m, region=region, n_samples=n_samples,
                generator=torch.Generator(device=device).manual_seed(0), output=output,
                y=y if labelled else None, clip=clip, progress=report(job),
            )  # fmt: skip
            job += 1
            row = {**head(e, r.method), "p_value": r.value, "p_stderr": r.stderr}
            if w is not None:
                row = _with_worst(row, "p_value", "worst_value", w.value, w.stderr)
            rows.append(row)
    return rows
