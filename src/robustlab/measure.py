"""Measure a saved model on points from a file: the library side of ``robustlab measure``.

For a Python user this is ``rl.measure_saved(...)``: load any format
:func:`robustlab.models.load_model` reads (a robustlab file, a state dict of a robustlab or
of your own class, TorchScript, a ``torch.export`` archive), read the points with
:func:`robustlab.data.load_points`, and return one row of P per eps.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch

__all__ = ["measure_saved"]


def measure_saved(
    model_path: str | os.PathLike,
    data: str | os.PathLike,
    eps: Sequence[float],
    *,
    method: str = "auto",
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
        eps, method, region, n_samples, output, clip: as
            :func:`robustlab.metrics.perturbation_stability` (perturbations seeded with 0).
        progress: called as ``progress(points_done, n_points_total)`` over all eps.

    Returns:
        One dict per eps: model, data, eps, method, (output), region, points, p_value,
        p_stderr.
    """
    from .data import load_points
    from .metrics import perturbation_stability
    from .metrics.outputs import check_output, needs_labels
    from .models import load_model

    model = load_model(model_path, spec, model_class=model_class, model_kwargs=model_kwargs)
    model = model.to(device=device, dtype=dtype)
    x, y = load_points(data, split=split, input_shape=input_shape)
    if points is not None:
        x, y = x[:points], None if y is None else y[:points]
    labelled = needs_labels(check_output(output))
    if labelled and y is None:
        raise ValueError(f"--output {output!r} needs labels; {str(data)!r} holds inputs only")
    rows, n = [], x.shape[0]
    for i, e in enumerate(eps):
        done = i * n
        r = perturbation_stability(
            model, x, e, method=method, region=region, n_samples=n_samples,
            generator=torch.Generator(device=device).manual_seed(0), output=output,
            y=y if labelled else None, clip=clip,
            progress=None if progress is None else (
                lambda k, _n, done=done: progress(done + k, n * len(eps))),
        )  # fmt: skip
        row = {"model": str(model_path), "data": str(data), "eps": e, "method": r.method}
        if output is not None:
            steps = output if isinstance(output, tuple) else (output,)
            row["output"] = ",".join(map(str, steps))
        row.update(region=region, points=r.n_points, p_value=r.value, p_stderr=r.stderr)
        rows.append(row)
    return rows
