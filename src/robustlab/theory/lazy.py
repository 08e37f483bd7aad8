"""Perturbation stability of the infinite-width network trained in the lazy (linearized) regime.

A bias-free ReLU MLP of width m -> infinity, trained by full-batch gradient descent on
robustlab's mse loss (1/N) sum_i 0.5 (f(x_i) - y_i)^2, is its own linearization around the
initialization (Jacot et al., NeurIPS 2018; Lee et al., NeurIPS 2019, arXiv 1902.06720).
Its function after t steps of size lr is, exactly,

    f_t(x) = f_0(x) + Theta(x, X) A_t (y - f_0(X)),
    A_t = Theta^{-1} (I - (I - (lr/N) Theta)^t)   (t = None: A = Theta^{-1}, converged)

with Theta = Theta(X, X) the NTK (deterministic) and f_0 ~ GP(0, K), K the NNGP kernel
(:mod:`robustlab.theory.kernels`). Its input gradient at a test point x is Gaussian over
the initialization:

    g(x) ~ N(mu(x), C(x)),   mu = G A y,   C = D_L I - H A G^T - G A H^T + G A K A G^T

with G = grad_x Theta(x, X), H = grad_x K(x, X) (d x N each), K = K(X, X) and
D_L I = Cov grad f_0(x) (isotropic for ReLU networks; D_L = K(x, x) / |x|^2).

Two gradients, two limits (``model``). ``"network"``: g is the gradient of the limit
function f_t itself; wide networks trained as initialized (robustlab's ``standard``
regime, lazily) approach it (checked by the tests at widths 16 and 256). ``"linearized"``:
the limit of the autograd input gradients of finite-width *Taylor models*
f(x; w0) + J_w f(x; w0) (w - w0) (robustlab's ``linearized`` regime). In J_w f(x; w0) the
ReLU patterns 1[h(x) > 0] are piecewise constant in x, so autograd never differentiates
them, while their large-width average kappa_0 is smooth: G then holds the Sigmadot factors
of the NTK fixed (:func:`~robustlab.theory.kernels.angular`, ``fixed_patterns``). The
Taylor model's values converge to f_t, its almost-everywhere gradient to this other limit
(the pattern jumps, O(1/m) each and O(m) of them, make up the difference). Under standard
parameterization the two agree at depth 2 (the pattern terms are O(1/m) there) and differ
by ~10-20% from depth 3 on; under ``ntk_param`` they differ at every depth.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .._checks import check_positive_int
from ..init import InitScheme, get_init
from ._lazy_checks import (
    PARTS,
    as_labels,
    as_points,
    check_eps_region,
    check_jitter,
    check_label_scale,
    check_model,
    check_parts,
    check_t_lr,
)
from .lazy_moments import (
    DEFAULT_JITTER,
    MAX_JITTER,
    LimitProblem,
    limit_mean,
    limit_moments,
    project,
    summarize,
    summarize_mean,
)

__all__ = ["LazyLimitResult", "lazy_limit", "lazy_limit_p"]


@dataclass(frozen=True)
class LazyLimitResult:
    """Expected perturbation stability over initialization of the trained lazy limit.

    P values of ``model`` (see the module docstring; x over the test points, delta uniform
    in the eps-ball or on its sphere, the expectation over the initialization exact):

    - ``p`` = mean_x E_delta E_init |g(x).delta| with g(x) ~ N(mu, C): the mean-abs P,
      the expectation of what ``rl.perturbation_stability(net, x_test, eps)`` returns for
      a random network of the ensemble. E_init |N(a, s^2)| is exact; the delta average
      is Monte Carlo over ``n_directions`` seeded unit directions per test point (the
      radius is integrated exactly); ``p_stderr`` is its standard error (over directions,
      for these test points).
    - ``p_rms`` = sqrt(mean_x E_init E_delta (g.delta)^2)
      = eps sqrt(c mean_x (|mu|^2 + tr C)), c = 1/(d+2) (ball) or 1/d (sphere): exact.
    - ``p_kernel`` = eps kappa_d mean_x |mu(x)|: the P of the kernel-regression part alone
      (the mean function, as if f_0 were 0); exact.
    - ``p_init`` = mean_x E_delta sqrt(2/pi) sqrt(delta^T C delta): the P of the
      initialization part alone (what is left of f_0 after training: y = 0); same deltas.
    - ``rms_kernel``, ``rms_init``: the two terms of p_rms^2 = rms_kernel^2 + rms_init^2.
    - ``p_at_init`` = eps r_d sqrt(2/pi) sqrt(D_L): P of the untrained network (t = 0),
      r_d = d/(d+1) (ball) or 1 (sphere).
    - ``train_loss``: the expected training loss E_init mean_i 0.5 (f_t(x_i) - y_i)^2.

    ``lr`` is the step used (None when t is None) for the width-m network (m = 2^40 when
    ``width`` is None, where only ``step_ratio`` = lr lambda_max(Theta(X, X)) / N means
    anything: 1 for ``lr="auto"``, < 2 for stability), ``jitter`` the relative ridge added to
    Theta(X, X) for the converged solve (``jitter_abs`` = jitter * mean diag Theta; 0 on the
    finite-t path, which needs none). ``width`` None means the m -> infinity limit.
    ``per_point`` (n,), ``grad_mean`` (n, d) and ``grad_cov`` (n, d, d) are the per-point
    P, mu and C. ``label_scale`` = c: the network was trained on the labels c y (mu scales
    with c, C does not).

    ``parts`` says what was computed (:data:`PARTS`). ``("mean", "cov")``, the default: all
    of the above. ``("mean",)``: the mean gradient mu(x) = G A (c y) alone, the gradient of
    the kernel-regression function x -> Theta(x, X) A (c y) = E_init f_t(x), i.e. the limit
    network's function minus f_0's contribution f_0(x) - Theta(x, X) A f_0(X). Of the P
    values only those of that function are then known: ``p_kernel`` (its P,
    eps kappa_d mean_x |mu(x)|, exact) and ``rms_kernel``, plus ``p_at_init`` (D_L only).
    ``p_kernel`` is not the expected P of the trained networks: it is a lower bound of
    ``p`` (E|a + Z| >= |a| for every delta) that equals it only when f_0 = 0. Everything
    that needs C -- ``p``, ``p_stderr``, ``p_rms``, ``p_init``, ``rms_init``,
    ``train_loss`` -- is NaN, ``per_point`` and ``grad_cov`` are None, and
    ``n_directions`` is 0 (nothing is sampled).
    """

    p: float
    p_stderr: float
    p_rms: float
    p_kernel: float
    p_init: float
    rms_kernel: float
    rms_init: float
    p_at_init: float
    train_loss: float
    model: str
    init: str
    variances: tuple[float, float, float]
    depth: int
    width: int | None
    eps: float
    region: str
    t: int | None
    lr: float | None
    step_ratio: float | None
    jitter: float
    jitter_abs: float
    n_train: int
    n_test: int
    in_dim: int
    n_directions: int
    seed: int
    label_scale: float
    parts: tuple[str, ...]
    per_point: torch.Tensor | None = field(repr=False, compare=False)
    grad_mean: torch.Tensor = field(repr=False, compare=False)
    grad_cov: torch.Tensor | None = field(repr=False, compare=False)

    def row(self) -> dict:
        """The scalar fields as a dict (one tidy result row)."""
        out = asdict(self)
        for k in ("per_point", "grad_mean", "grad_cov"):
            out.pop(k)
        out["variances"] = tuple(self.variances)
        return out

    def to_frame(self):
        """A one-row pandas DataFrame of :meth:`row`."""
        import pandas as pd

        return pd.DataFrame([self.row()])


def lazy_limit(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    *,
    init: str | InitScheme,
    depth: int,
    eps: float,
    region: str = "ball",
    t: int | None = None,
    lr: float | str | None = None,
    width: int | None = None,
    model: str = "network",
    n_directions: int = 1024,
    seed: int = 0,
    jitter: float = DEFAULT_JITTER,
    dtype: torch.dtype = torch.float64,
    chunk: int = 256,
    parts: str | tuple[str, ...] = PARTS,
    label_scale: float | Iterable[float] = 1.0,
) -> LazyLimitResult | tuple[LazyLimitResult, ...]:
    """Expected P over initialization of the infinite-width linearized network after training.

    See the module docstring for f_t, A_t, mu and C, and :class:`LazyLimitResult` for what
    each number averages. ``parts=("mean",)`` computes mu alone -- the kernel-regression
    part, ``p_kernel``, all a sweep of the mean function needs -- without the NNGP, the
    covariance or the Monte Carlo over deltas: O(N^3 / 3 + n N d) instead of
    O(N^3 + n d N^2 + n K d^2). ``label_scale`` may be a sequence of c: the kernels and the
    factorization are computed once and serve every c (mu is linear in the labels, C does
    not depend on them), one result per c, each as a separate call with that c gives.

    The network is ``rl.mlp(d, m, depth, init=init)`` (one output, no biases); training is
    full-batch gradient descent on the mse loss mean_i 0.5 (f(x_i) - y_i)^2, i.e.
    f <- f - (lr/N) Theta (f - y) on the training points, for ``t`` steps exactly
    ((I - (lr/N) Theta)^t, not the gradient-flow exponential) or to convergence
    (``t=None``, the minimum-norm interpolant around f_0).

    Width and step size. Under the standard parameterization the NTK grows linearly with m
    (:func:`~robustlab.theory.ntk`), so a *numeric* ``lr`` only means something for a given
    width: pass ``width`` = the network's m, and the kernels are the large-width kernels of
    that network. ``lr=None`` / ``"auto"`` takes lr = N / lambda_max(Theta(X, X)) -- what
    ``rl.train``'s ``lr="auto"`` computes, half the stability limit -- which makes
    (lr/N) Theta independent of the NTK's scale; at convergence the scale does not matter
    either. ``width=None`` is the limit m -> infinity (kernels evaluated at m = 2^40, where
    the O(1/m) terms are ~1e-12); it needs a scheme whose NNGP has a finite nonzero limit
    (lecun, he, ntk, ntk_param; not xavier or constant custom variances) and, for a
    standard-parameterization scheme at finite t, ``lr="auto"``.

    Args:
        x_train: (N, d) training inputs X.
        y_train: (N,) or (N, 1) float labels y.
        x_test: (n, d) points where P is measured. At a training point the limit function
            has a kink (the NTK's kappa_0 at x = x_j): ``model="network"`` takes the
            symmetric (zero-slope) derivative of that term there; ``"linearized"`` has no
            such term and is continuous.
        init: scheme name or :class:`~robustlab.InitScheme`.
        depth: L >= 1 weight layers.
        eps: perturbation radius.
        region: ``"ball"`` (delta uniform in the eps-ball, the default) or ``"sphere"``.
        t: gradient-descent steps, or None for the converged network.
        lr: step size (numeric, or None / ``"auto"``; unused when t is None).
        width: the network's width m, or None for m -> infinity (see above).
        model: ``"network"`` (gradient of the limit function; wide lazily trained networks)
            or ``"linearized"`` (limit of the Taylor model's autograd gradient); see the
            module docstring.
        n_directions: Monte Carlo directions of delta for ``p`` and ``p_init``.
        seed: seed of those directions (the only randomness; no network is drawn).
        jitter: ridge added to Theta(X, X) for the converged solve, relative to its mean
            diagonal; multiplied by 10 (up to 1e-4) while the Cholesky factorization
            fails. The value used is reported.
        dtype: computation dtype (float64 by default).
        chunk: test points per block (memory ~ 3 * chunk * d * N numbers) when "cov" is
            computed; the mean alone runs in blocks of pairs (memory ~ N^2).
        parts: ``("mean", "cov")`` (the default: everything) or ``("mean",)`` (mu and the
            numbers it fixes; the others NaN, see :class:`LazyLimitResult`).
        label_scale: c, the network being trained on c * y_train (1 by default), or a
            sequence of them.

    Returns:
        A frozen :class:`LazyLimitResult` (``.to_frame()`` for a DataFrame row); a tuple of
        them, one per c in order, when ``label_scale`` is a sequence.

    References: Jacot, Gabriel & Hongler, NeurIPS 2018; Lee et al., NeurIPS 2019
    (arXiv 1902.06720), eqs. 9-11; Arora et al., NeurIPS 2019 (arXiv 1904.11955).
    """
    eps = check_eps_region(eps, region)
    jitter = check_jitter(jitter, MAX_JITTER)
    depth = check_positive_int("depth", depth)
    n_directions = check_positive_int("n_directions", n_directions)
    chunk = check_positive_int("chunk", chunk)
    t, lr = check_t_lr(t, lr)
    model = check_model(model)
    parts = check_parts(parts)
    scales, batched = check_label_scale(label_scale)
    x = as_points("x_train", x_train, dtype)
    xt = as_points("x_test", x_test, dtype).to(x.device)
    if xt.shape[1] != x.shape[1]:
        raise ValueError(f"x_test has dimension {xt.shape[1]}, x_train {x.shape[1]}")
    y = as_labels(y_train, x.shape[0], dtype).to(x.device)
    scheme = get_init(init)
    problem = LimitProblem(x, y, xt, scheme, depth, width, t, lr, jitter, model)
    if "cov" in parts:
        mom = limit_moments(problem, chunk)
        proj = project(mom, n_directions, seed, chunk)
        outs = [summarize(mom, c, eps, region, proj) for c in scales]
        cov = mom.cov
    else:
        mom = limit_mean(problem)
        outs = [summarize_mean(mom, c, eps, region) for c in scales]
        cov, n_directions = None, 0
    d = x.shape[1]
    results = tuple(
        LazyLimitResult(
            **{k: v for k, v in out.items() if k not in ("per_point", "grad_mean")},
            model=model,
            init=scheme.name,
            variances=scheme.variances(d, mom.width, 1),
            depth=depth,
            width=None if width is None else mom.width,
            eps=eps,
            region=region,
            t=t,
            lr=mom.lr,
            step_ratio=mom.step_ratio,
            jitter=mom.jitter,
            jitter_abs=mom.jitter_abs,
            n_train=x.shape[0],
            n_test=xt.shape[0],
            in_dim=d,
            n_directions=n_directions,
            seed=seed,
            label_scale=c,
            parts=parts,
            per_point=out["per_point"],
            grad_mean=out["grad_mean"],
            grad_cov=cov,
        )
        for c, out in zip(scales, outs, strict=True)
    )
    return results if batched else results[0]


def lazy_limit_p(
    x_train: torch.Tensor, y_train: torch.Tensor, x_eval: torch.Tensor, **options: Any
) -> float:
    """The lazy limit's P (mean-abs form) for one trained cell:
    ``lazy_limit(x_train, y_train, x_eval, **options).p``.

    ``options`` are the keywords of :func:`lazy_limit` (``init``, ``depth`` and ``eps``
    required; by default converged, m -> infinity). For a sweep: the cell's training data,
    its evaluation points and eps; ``model`` ``"linearized"`` for cells of the linearized
    regime (P of Taylor models), ``"network"`` for networks trained as initialized. P needs
    both parts of the gradient law and one label scale, so ``parts`` and a sequence of label
    scales are refused. Cost for N training and n evaluation points in dimension d:
    O(N^3 + n d N^2) (about 1 s on two CPU cores for N = n = 1000, d = 10), no network is
    built.
    """
    if "parts" in options:
        raise ValueError("lazy_limit_p computes P, which needs every part: drop parts=")
    if check_label_scale(options.get("label_scale", 1.0))[1]:
        raise ValueError("lazy_limit_p takes one label_scale; lazy_limit takes a sequence")
    return lazy_limit(x_train, y_train, x_eval, **options).p
