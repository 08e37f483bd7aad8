"""The trainer: one functional step shared by single models and vmapped ensembles.

Parameters live in stacked dicts ``{name: (E, ...)}``; gradients come from
``torch.func.grad_and_value`` over ``functional_call`` (vmapped over the E models of an
ensemble, plain for one model), so training an ensemble equals training its members one by
one up to float rounding. Divergence is detected per model and retried with half the step.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from .config import TrainConfig
from .losses import accuracy, loss_value
from .lr import auto_lr
from .optim import init_state, update
from .regimes import AlphaScaled

__all__ = ["TrainResult", "train", "train_ensemble"]


@dataclass
class TrainResult:
    """Outcome of training one network.

    ``model`` is the trained network f(x; w_T) (uncentred); ``initial_model`` a copy of
    f(x; w_0). Under the lazy regime the trained *predictor* is
    ``alpha (f(x; w_T) - f(x; w_0))``: :meth:`predictor` builds it. ``history`` holds the
    predictor's training loss and accuracy at w_0, ..., w_steps (``steps + 1`` entries; the
    last is that of the returned model, or of the diverged weights when ``diverged``).
    ``steps`` is the number of updates applied. ``lr`` is the step the run started with,
    ``lr_final`` the step after ``lr_halvings`` back-offs (``TrainConfig.lr_backoff``).
    """

    model: nn.Module
    initial_model: nn.Module
    config: TrainConfig
    diverged: bool
    reason: str
    lr: float
    steps: int
    retries: int
    history: dict[str, list[float]] = field(repr=False)
    lr_final: float = math.nan
    lr_halvings: int = 0

    def predictor(self) -> nn.Module:
        """The function that was fitted: the network, or alpha (f - f0) under ``lazy``."""
        if self.config.regime == "lazy":
            return AlphaScaled(self.model, self.initial_model, self.config.alpha)
        return self.model


def _as_xy(dataset, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = dataset.x_train, dataset.y_train
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x_train has {x.shape[0]} points but y_train has {y.shape[0]} labels")
    y = y.to(device) if not y.is_floating_point() else y.to(device=device, dtype=dtype)
    return x.to(device=device, dtype=dtype), y


def _check(model: nn.Module, config: TrainConfig, x: torch.Tensor, y: torch.Tensor) -> int:
    with torch.no_grad():
        k = model(x[:1]).reshape(1, -1).shape[1]
    if config.loss == "logistic" and (k != 1 or not y.is_floating_point()):
        raise ValueError("loss 'logistic' needs one output and labels in {-1, +1}")
    if config.loss == "cross_entropy" and (k < 2 or y.is_floating_point()):
        raise ValueError("loss 'cross_entropy' needs k >= 2 outputs and integer class labels")
    if config.regime == "mean_field" and not getattr(getattr(model, "spec", None), "mean_field", 0):
        raise ValueError("regime 'mean_field' needs a network built with mlp(..., mean_field=True)")
    return k


def _objective(model: nn.Module, loss_name: str, lazy: bool):
    """(params, x, y, alpha, f0) -> (loss / alpha^2, (loss, outputs)); loss of the predictor."""

    def fn(params, x, y, alpha, f0):
        out = functional_call(model, params, (x,))
        out = out.reshape(out.shape[0], -1)  # (B, k)
        if lazy:
            out = alpha * (out - f0)
        loss = loss_value(loss_name, out, y)
        scaled = loss / (alpha * alpha) if lazy else loss
        return scaled, (loss.detach(), accuracy(out.detach(), y))

    return fn


RISE_TOL = 1e-4  # relative loss rise that counts as "the loss went up" (above float noise)


def _fit(base, stacked, x, y, cfg: TrainConfig, lrs, alphas, f0, generator, batched, adapt):
    """Run the step loop on stacked params.

    Returns (params, steps, reason, loss history, accuracy history, final lrs, halvings).
    The loss is evaluated at w_0, ..., w_T (T = ``cfg.steps``): the point after the last
    update is checked for divergence like every other, and the histories have T + 1 columns.
    ``adapt`` (E,) marks the models whose step is halved, and whose last step is undone,
    whenever their full-batch loss rises.
    """
    lrs = lrs.clone()
    halvings = torch.zeros(lrs.shape[0], dtype=torch.long)
    prev = prev_acc = prev_params = None
    E = lrs.shape[0]
    lazy = cfg.regime == "lazy"
    objective = _objective(base, cfg.loss, lazy)
    step_fn = grad_and_value(objective, has_aux=True)
    if batched:
        in_dims = (0, None, None, 0, 0 if lazy else None)
        step_fn, objective = vmap(step_fn, in_dims=in_dims), vmap(objective, in_dims=in_dims)
    params = {k: v.clone() for k, v in stacked.items()}
    state = init_state(cfg.optimizer, params)
    n = x.shape[0]
    bs = cfg.batch_size if cfg.optimizer != "gd" and cfg.batch_size else n
    bs = min(bs, n)
    perm = None
    active = torch.ones(E, dtype=torch.bool)
    steps = torch.full((E,), cfg.steps, dtype=torch.long)
    reason = [""] * E
    loss0 = None
    hist_loss = torch.full((E, cfg.steps + 1), math.nan, dtype=torch.float64)
    hist_acc = torch.full((E, cfg.steps + 1), math.nan, dtype=torch.float64)
    for t in range(cfg.steps + 1):
        last = t == cfg.steps  # evaluate the final weights only; no update follows
        if bs < n:
            per_epoch = n // bs
            if t % per_epoch == 0:
                perm = torch.randperm(n, generator=generator).to(x.device)
            idx = perm[(t % per_epoch) * bs : (t % per_epoch + 1) * bs]
            xb, yb = x[idx], y[idx]
            fb = f0[:, idx] if lazy else None
        else:
            xb, yb, fb = x, y, f0
        if batched:
            args = (params, xb, yb, alphas, fb)
        else:
            p1 = {k: v[0] for k, v in params.items()}
            args = (p1, xb, yb, alphas[0], fb[0] if lazy else None)
        if last:
            with torch.no_grad():
                _, (loss, acc) = objective(*args)
        else:
            grads, (_, (loss, acc)) = step_fn(*args)
            if not batched:
                grads = {k: v.unsqueeze(0) for k, v in grads.items()}
        loss_c, acc_c = torch.stack([loss.reshape(-1), acc.reshape(-1)]).detach().double().cpu()
        keep = torch.zeros(E, dtype=torch.bool)  # models whose last step is undone
        if prev is not None and bool(adapt.any()):
            # GD at a stable step lowers the loss; a rise (or a non-finite loss) means the
            # curvature has grown past 2/lr (progressive sharpening): undo that step and halve
            # the model's step from here on
            keep = adapt & active & ~(loss_c <= prev * (1 + RISE_TOL))
            if bool(keep.any()):
                lrs[keep.to(lrs.device)] *= 0.5
                halvings += keep.long()
                mask = keep.to(x.device)
                params = {
                    k: torch.where(mask.reshape((-1,) + (1,) * (v.ndim - 1)), prev_params[k], v)
                    for k, v in params.items()
                }
                loss_c = torch.where(keep, prev, loss_c)
                acc_c = torch.where(keep, prev_acc, acc_c)
        hist_loss[:, t] = loss_c
        hist_acc[:, t] = acc_c
        if loss0 is None:
            loss0 = loss_c.clamp_min(1e-12)
        bad = active & ~(torch.isfinite(loss_c) & (loss_c <= cfg.blowup * loss0))
        for i in torch.nonzero(bad).flatten().tolist():
            what = "non-finite" if not math.isfinite(loss_c[i]) else f"{loss_c[i]:.3g} (blow-up)"
            reason[i] = f"training loss became {what} at step {t} with lr {float(lrs[i]):.4g}"
            steps[i] = t
        done = active & ~bad
        if cfg.target_loss is not None:
            hit = done & (loss_c <= cfg.target_loss)
            steps[hit] = t
            done = done & ~hit
        active = done
        prev, prev_acc = loss_c, acc_c
        if last or not bool(active.any()):
            break
        if bool(adapt.any()):
            prev_params = {k: v.clone() for k, v in params.items()}
        # an undone model waits one iteration: its gradient was taken at the rejected point
        params, state = update(cfg, params, grads, state, lrs, active & ~keep, t)
    for i in range(E):
        s = int(steps[i])
        hist_loss[i, s + 1 :] = math.nan
    return params, steps, reason, hist_loss, hist_acc, lrs.double().cpu(), halvings


def _check_same_forward(models: list[nn.Module]) -> None:
    """All members must compute the same function of their parameters (one vmapped forward).

    Seeds and variances may differ; parameter shapes and, for MLPs, the architecture and
    forward multipliers (which differ under the NTK parameterization) may not.
    """
    first = models[0]
    shapes0 = [(k, tuple(v.shape)) for k, v in first.named_parameters()]
    spec0 = getattr(first, "spec", None)
    for i, m in enumerate(models[1:], start=1):
        if (
            type(m) is not type(first)
            or [(k, tuple(v.shape)) for k, v in m.named_parameters()] != shapes0
        ):
            raise ValueError(
                f"train_ensemble: model {i} has a different architecture from model 0; "
                "train them in separate ensembles"
            )
        spec = getattr(m, "spec", None)
        if spec0 is not None and spec is not None:
            for f in _FORWARD_FIELDS:
                a, b = getattr(spec0, f, None), getattr(spec, f, None)
                if a != b:
                    raise ValueError(
                        f"train_ensemble: model {i} has {f}={b!r} (init {spec.init!r}) but "
                        f"model 0 has {f}={a!r} (init {spec0.init!r}); they need different "
                        "forward functions, so train them in separate ensembles"
                    )


# MLPSpec fields that change the forward function (init and variances only change weights)
_FORWARD_FIELDS = ("in_dim", "width", "depth", "out_dim", "bias", "mean_field", "multipliers")


def _stack(models: list[nn.Module]):
    params, _ = stack_module_state(models)
    return {k: v.detach() for k, v in params.items()}


def _unstack_into(template: nn.Module, params, i: int) -> nn.Module:
    m = copy.deepcopy(template)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(params[name][i])
    return m


def _history(hist_loss, hist_acc, i: int, steps: int) -> dict[str, list[float]]:
    last = min(steps + 1, hist_loss.shape[1])
    return {
        "step": list(range(last)),
        "loss": hist_loss[i, :last].tolist(),
        "accuracy": hist_acc[i, :last].tolist(),
    }


def train_ensemble(
    models: list[nn.Module],
    dataset,
    config: TrainConfig,
    *,
    alphas: list[float] | None = None,
    lrs: list[float | str] | None = None,
    generator: torch.Generator | None = None,
) -> list[TrainResult]:
    """Train models of one architecture together as a vmapped ensemble.

    Models may differ in weights (seed, init scheme), alpha and step size; everything else
    comes from ``config``. Minibatches (sgd/adam with ``batch_size``) are shared by all
    members, so member i equals ``train(models[i], ...)`` with the same generator state.
    A member that diverges is retried alone with half its step (``config.max_retries``).
    """
    if not models:
        raise ValueError("train_ensemble needs at least one model")
    E = len(models)
    alphas = [config.alpha] * E if alphas is None else list(alphas)
    lrs_in = [config.lr] * E if lrs is None else list(lrs)
    if len(alphas) != E or len(lrs_in) != E:
        raise ValueError("alphas and lrs must have one entry per model")
    # validated here, before any work: a bad alpha or lr raises TrainConfig's ValueError
    configs = [replace(config, alpha=a, lr=v) for a, v in zip(alphas, lrs_in, strict=True)]
    alphas = [float(c.alpha) for c in configs]
    _check_same_forward(models)
    base = models[0]
    dtype = next(base.parameters()).dtype
    device = next(base.parameters()).device
    x, y = _as_xy(dataset, dtype, device)
    _check(base, config, x, y)
    initial = [copy.deepcopy(m) for m in models]
    stacked = _stack(models)
    lazy = config.regime == "lazy"
    alpha_t = torch.tensor(alphas, dtype=dtype, device=device)
    f0 = None
    if lazy:
        with torch.no_grad():
            f0 = vmap(lambda p: functional_call(base, p, (x,)).reshape(x.shape[0], -1))(stacked)
    lr_vals = auto_lr(base, stacked, x, config, [v == "auto" for v in lrs_in], generator)
    lr_vals = [float(v) if v != "auto" else lr_vals[i] for i, v in enumerate(lrs_in)]
    lr_t = torch.tensor(lr_vals, dtype=dtype, device=device)
    adapt = torch.tensor(
        [v == "auto" and config.lr_backoff and config.optimizer == "gd" for v in lrs_in]
    )
    state = generator.get_state() if generator is not None else None
    params, steps, reason, hl, ha, lr_end, halved = _fit(
        base, stacked, x, y, config, lr_t, alpha_t, f0, generator, E > 1, adapt
    )
    results = []
    for i in range(E):
        retries, lr_i = 0, lr_vals[i]
        p_i, s_i, r_i, hl_i, ha_i = params, int(steps[i]), reason[i], hl, ha
        end_i, halved_i = float(lr_end[i]), int(halved[i])
        j = i
        while r_i and retries < config.max_retries:
            retries += 1
            lr_i = lr_i / 2
            if generator is not None:
                generator.set_state(state)
            p_i, s_t, r_l, hl_i, ha_i, lr_e, h_e = _fit(
                base,
                {k: v[i : i + 1] for k, v in stacked.items()},
                x,
                y,
                config,
                torch.tensor([lr_i], dtype=dtype, device=device),
                alpha_t[i : i + 1],
                f0[i : i + 1] if lazy else None,
                generator,
                False,
                adapt[i : i + 1],
            )
            s_i, r_i, j = int(s_t[0]), r_l[0], 0
            end_i, halved_i = float(lr_e[0]), int(h_e[0])
        if r_i and retries:
            r_i = f"{r_i} (after {retries} retries with halved steps)"
        cfg_i = replace(configs[i], alpha=alphas[i], lr=lr_i)
        results.append(
            TrainResult(
                model=_unstack_into(initial[i], p_i, j) if not r_i else initial[i],
                initial_model=initial[i],
                config=cfg_i,
                diverged=bool(r_i),
                reason=r_i,
                lr=lr_i,
                steps=s_i,
                retries=retries,
                history=_history(hl_i, ha_i, j, s_i),
                lr_final=end_i,
                lr_halvings=halved_i,
            )
        )
    return results


def train(
    model: nn.Module,
    dataset,
    config: TrainConfig | None = None,
    *,
    generator: torch.Generator | None = None,
) -> TrainResult:
    """Train one network on ``dataset`` (``x_train``, ``y_train``) as ``config`` says.

    Never raises on divergence: the result is marked ``diverged`` with the reason, after
    ``config.max_retries`` restarts from the initial weights with half the step. The input
    model is not modified; ``result.model`` is a trained copy.
    """
    config = config or TrainConfig()
    return train_ensemble([model], dataset, config, generator=generator)[0]
