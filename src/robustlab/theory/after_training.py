"""The lazy limit's P by scheme, depth and label scale on one data set, as tidy rows.

Backs ``robustlab theory --after-training``. In the lazy limit the kernel-regression part
(the mean gradient) is shared by every scheme whose NTK has the same shape (LeCun and He:
their networks differ by the factor 2^(-L/2) at equal draws), while the initialization part
(what survives of f_0) scales with the scheme. Scaling the labels by c multiplies the first
by c and leaves the second alone, so whether depth hurts depends on |y| / |f_0(X)|: the
label scale is an axis of the table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import torch

from .._checks import check_positive_int
from ..init import get_init
from .lazy import check_eps_region, check_model, check_t_lr
from .lazy_moments import DEFAULT_JITTER, LimitProblem, limit_moments, project, summarize

__all__ = ["after_training_table", "SPHERE_DEFAULTS"]

# The data of the C3/C4 presets: sphere points labelled by a random one-hidden-layer ReLU
# teacher (binary +-1 labels).
SPHERE_DEFAULTS = {"teacher": "relu"}


def after_training_table(
    *,
    data: str = "sphere",
    n_train: int = 100,
    n_test: int = 500,
    in_dim: int | None = None,
    seed: int = 0,
    data_options: Mapping | None = None,
    inits: Iterable[str] = ("lecun", "he", "ntk"),
    depths: Iterable[int] = range(2, 9),
    eps: float = 0.1,
    label_scales: Iterable[float] = (1.0,),
    steps: int | None = None,
    lr: float | str | None = None,
    widths: Iterable[int | None] = (None,),
    models: Iterable[str] = ("network",),
    region: str = "ball",
    n_directions: int = 1024,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Rows of :func:`~robustlab.theory.lazy_limit` over inits x depths x widths x label scales.

    The data come from ``robustlab.data.load(data, n_train=..., n_test=..., in_dim=...,
    seed=..., **data_options)`` in float64 (for ``sphere`` the teacher defaults to ``relu``,
    the data of the C3/C4 presets); P is measured on the test split (the training split
    when the test split is empty). Labels must be scalar (binary +-1 or regression); the
    network is trained on ``label_scale * y``. ``steps`` None means trained to convergence;
    ``widths`` None means m -> infinity. ``models``: ``"network"`` (P of the limit
    function, which wide networks trained lazily approach) and/or ``"linearized"`` (the
    limit of P of the linearized regime's Taylor models); see
    :func:`~robustlab.theory.lazy_limit`.

    Each row: the data and network settings, then ``p`` (mean-abs P), ``p_stderr``,
    ``p_rms``, ``p_kernel`` / ``p_init`` (the kernel-regression and initialization parts),
    ``rms_kernel`` / ``rms_init`` (p_rms^2 = rms_kernel^2 + rms_init^2), ``init_share`` =
    rms_init^2 / p_rms^2, ``p_at_init`` (untrained), ``train_loss`` (expected), ``lr``,
    ``step_ratio`` and ``jitter``. ``progress(done, total)`` is called after each
    (init, depth, width, model).
    """
    from ..data import load

    t, lr = check_t_lr(steps, lr)
    eps = check_eps_region(eps, region)
    n_directions = check_positive_int("n_directions", n_directions)
    models = [check_model(v) for v in models]
    opts = dict(SPHERE_DEFAULTS) if data == "sphere" else {}
    opts.update(data_options or {})
    ds = load(
        data,
        n_train=n_train,
        n_test=n_test,
        in_dim=in_dim,
        seed=seed,
        dtype=torch.float64,
        **opts,
    )
    if ds.task == "multiclass":
        raise ValueError(
            f"the lazy limit needs scalar labels (binary or regression); {data!r} has "
            f"{ds.n_classes} classes (pick two with classes=[a, b])"
        )
    x, y = ds.x_train, ds.y_train.to(torch.float64)
    x_eval = ds.x_test if ds.n_test else ds.x_train
    schemes = [get_init(i) for i in inits]
    depths, widths, scales = list(depths), list(widths), [float(c) for c in label_scales]
    for c in scales:
        if not math.isfinite(c):
            raise ValueError(f"label scales must be finite numbers, got {c}")
    combos = [(s, L, w, v) for s in schemes for L in depths for w in widths for v in models]
    rows = []
    for done, (scheme, depth, width, model) in enumerate(combos, 1):
        problem = LimitProblem(x, y, x_eval, scheme, depth, width, t, lr, DEFAULT_JITTER, model)
        mom = limit_moments(problem, 256)
        proj = project(mom, n_directions, seed)
        for c in scales:
            out = summarize(mom, c, eps, region, proj)
            rows.append(
                {
                    "data": data,
                    "n_train": ds.n_train,
                    "n_eval": x_eval.shape[0],
                    "in_dim": ds.in_dim,
                    "model": model,
                    "init": scheme.name,
                    "depth": depth,
                    "width": math.inf if width is None else width,
                    "label_scale": c,
                    "eps": eps,
                    "region": region,
                    "steps": "converged" if t is None else t,
                    **{k: out[k] for k in _NUMBERS},
                    "init_share": out["rms_init"] ** 2 / out["p_rms"] ** 2
                    if out["p_rms"] > 0
                    else math.nan,
                    "lr": math.nan if mom.lr is None else mom.lr,
                    "step_ratio": math.nan if mom.step_ratio is None else mom.step_ratio,
                    "jitter": mom.jitter,
                }
            )
        if progress is not None:
            progress(done, len(combos))
    return rows


_NUMBERS = (
    "p",
    "p_stderr",
    "p_rms",
    "p_kernel",
    "p_init",
    "rms_kernel",
    "rms_init",
    "p_at_init",
    "train_loss",
)
