"""Synthetic data: points uniform on the unit sphere labelled by a random teacher."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .._sampling import uniform_sphere
from .raw import Raw, Request, rng

SPHERE_OPTIONS = {
    "teacher": "linear",
    "teacher_width": 8,
    "label_noise": 0.0,
    "noise_on_test": False,
}
TEACHERS = ("linear", "relu")
DEFAULT_DIM, DEFAULT_N = 10, 1000
# Stream ids (see raw.rng): the teacher, each split and the noise draw independently.
_TEACHER, _TRAIN, _TEST, _NOISE_TRAIN, _NOISE_TEST, _REFERENCE = 10, 11, 12, 13, 14, 15
_REFERENCE_SIZE = 1 << 14


def sample_sphere(n: int, d: int, generator: np.random.Generator) -> np.ndarray:
    """(n, d) float64 points uniform on the unit sphere S^{d-1} (normalized Gaussians)."""
    return uniform_sphere(n, d, generator)


def mean_relu_projection(d: int) -> float:
    """E[relu(u_1)] for u uniform on S^{d-1}: Gamma(d/2) / (2 sqrt(pi) Gamma((d+1)/2))."""
    return math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / (2 * math.sqrt(math.pi))


def make_teacher(
    kind: str, d: int, width: int, generator: np.random.Generator
) -> Callable[[np.ndarray], np.ndarray]:
    """A random teacher f: (n, d) -> (n,) with E_x f(x) = 0 for x uniform on S^{d-1}.

    ``"linear"``: f(x) = w . x, w ~ N(0, I_d).
    ``"relu"``: f(x) = sum_j a_j (relu(w_j . x) - ||w_j|| c_d), w_j ~ N(0, I_d),
    a_j ~ N(0, 1/width), with c_d = `mean_relu_projection(d)` so the mean is exactly 0
    and the binary labels sign(f) are balanced in expectation over the teacher.
    """
    if kind == "linear":
        w = generator.standard_normal(d)
        return lambda x: x @ w
    w = generator.standard_normal((width, d))
    a = generator.standard_normal(width) / math.sqrt(width)
    offset = np.linalg.norm(w, axis=1) * mean_relu_projection(d)  # (width,)
    return lambda x: (np.maximum(x @ w.T, 0.0) - offset) @ a


def _task(req: Request) -> str:
    # option types and ranges are checked by DataConfig; this is what only sphere knows
    task = "binary" if req.options["task"] == "auto" else req.options["task"]
    if task not in ("binary", "regression"):
        raise ValueError(f"sphere supports task='binary' or 'regression'; got {task!r}")
    return task


def load_sphere(req: Request) -> Raw:
    """Points uniform on S^{d-1} (d = ``in_dim``, default 10) labelled by a random teacher.

    ``task="binary"``: y = sign(f(x) - median f) in {-1, +1}, so the classes are
    balanced (the median is 0 for linear; for relu it is estimated on 2**14 reference
    points; with a tiny ``teacher_width`` f has an atom where all units are off, so the
    balance is only approximate). Each *training* label is flipped with probability
    ``label_noise`` (test labels too when ``noise_on_test=True``).
    ``task="regression"``: y = f(x) / std(f) (the mean is exactly 0; the std is exact for
    linear, estimated on the reference points for relu), plus N(0, label_noise**2) noise.
    Train, test, teacher, reference and noise use separate seeded streams, so changing
    ``n_train`` never changes the test set or the teacher.
    """
    d = DEFAULT_DIM if req.in_dim is None else req.in_dim
    task = _task(req)
    teacher, width = req.options["teacher"], req.options["teacher_width"]
    noise = float(req.options["label_noise"])
    n_train = DEFAULT_N if req.n_train is None else req.n_train
    n_test = DEFAULT_N if req.n_test is None else req.n_test

    f = make_teacher(teacher, d, width, rng(req.seed, _TEACHER))
    x_train = sample_sphere(n_train, d, rng(req.seed, _TRAIN))
    x_test = sample_sphere(n_test, d, rng(req.seed, _TEST))
    y_train, y_test = f(x_train), f(x_test)
    if teacher == "linear":
        # f(-x) = -f(x): median 0; Var(w . x) = ||w||^2 / d for x uniform on S^{d-1}.
        median, std = 0.0, float(np.linalg.norm(f(np.eye(d)))) / math.sqrt(d)
    else:
        reference = f(sample_sphere(_REFERENCE_SIZE, d, rng(req.seed, _REFERENCE)))
        median, std = float(np.median(reference)), float(reference.std())
    if task == "binary":
        y_train, y_test = (np.where(y >= median, 1.0, -1.0) for y in (y_train, y_test))
    else:
        y_train, y_test = y_train / std, y_test / std

    noisy = [(y_train, _NOISE_TRAIN)]
    if req.options["noise_on_test"]:
        noisy.append((y_test, _NOISE_TEST))
    for y, stream in noisy:  # in place
        gen = rng(req.seed, stream)
        if task == "binary":
            flip = gen.random(len(y)) < noise
            y[flip] = -y[flip]
        else:
            y += noise * gen.standard_normal(len(y))
    return Raw(
        x_train,
        y_train,
        x_test,
        y_test,
        source="synthetic:sphere",
        classes=[-1.0, 1.0] if task == "binary" else None,
        regression=task == "regression",
        sized=True,
        meta={"teacher": teacher, "in_dim": d},
    )
