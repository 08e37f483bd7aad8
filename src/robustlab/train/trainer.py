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
from .regimes import get_regime

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
    checkpoint_model: nn.Module | None = field(default=None, repr=False)
    checkpoint_step: int | None = None

    @property
    def reached_target(self) -> bool:
        """Whether the final training loss is at or below ``config.target_loss`` (True when
        no target was set and the run did not diverge)."""
        if self.diverged:
            return False
        target = self.config.target_loss
        return target is None or self.history["loss"][-1] <= target

    def predictor(self) -> nn.Module:
        """The function that was fitted (the regime's predictor at w_T): the network,
        alpha (f - f0) under ``lazy``, the Taylor model under ``linearized``."""
        return get_regime(self.config.regime).predictor(
            self.model, self.initial_model, self.config.alpha
        )

    def checkpoint_predictor(self) -> nn.Module | None:
        """The regime's predictor at the ``checkpoint_loss`` weights (None if not reached)."""
        if self.checkpoint_model is None:
            return None
        return get_regime(self.config.regime).predictor(
            self.checkpoint_model, self.initial_model, self.config.alpha
        )


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
    is_mf = bool(getattr(getattr(model, "spec", None), "mean_field", False))
    if get_regime(config.regime).mean_field and not is_mf:
        raise ValueError(
            f"regime {config.regime!r} needs a network built with mlp(..., mean_field=True)"
        )
    return k


def _objective(model: nn.Module, loss_name: str, regime):
    """(params, params0, x, y, alpha, f0) -> (scaled loss, (loss, accuracy)) of the regime's
    predictor; the gradient is taken of the scaled loss (loss / alpha^2 under alpha-scaling)."""

    def fn(params, params0, x, y, alpha, f0):
        out = regime.output(model, params, params0, x, alpha, f0)  # (B, k)
        loss = loss_value(loss_name, out, y)
        return loss * regime.loss_scale(alpha), (loss.detach(), accuracy(out.detach(), y))

    return fn


RISE_TOL = 1e-4  # relative loss rise that counts as "the loss went up" (above float noise)


@dataclass
class _Data:
    """Training inputs of an ensemble: shared (N, ...) or one set per model (E, N, ...)."""

    x: torch.Tensor
    y: torch.Tensor
    per_model: bool
    f0: torch.Tensor | None  # (E, N, k) f(x; w0) for alpha-scaled regimes

    def batch(self, idx):
        """The minibatch ``idx`` (None = everything), keeping the model axis if per model."""
        if idx is None:
            return self.x, self.y, self.f0
        f0 = None if self.f0 is None else self.f0[:, idx]
        if self.per_model:
            return self.x[:, idx], self.y[:, idx], f0
        return self.x[idx], self.y[idx], f0

    def member(self, i: int) -> _Data:
        """The data of model ``i`` alone, as a one-model ensemble."""
        f0 = None if self.f0 is None else self.f0[i : i + 1]
        if self.per_model:
            return _Data(self.x[i : i + 1], self.y[i : i + 1], True, f0)
        return _Data(self.x, self.y, False, f0)


@dataclass
class _Fit:
    """What the step loop returns, per model of the stack (E,)."""

    params: dict[str, torch.Tensor]
    steps: torch.Tensor
    reason: list[str]
    hist_loss: torch.Tensor  # (E, T + 1)
    hist_acc: torch.Tensor
    lr_final: torch.Tensor
    halvings: torch.Tensor
    ckpt_params: dict[str, torch.Tensor] | None
    ckpt_step: torch.Tensor  # -1 where the checkpoint loss was never reached


def _masked(mask: torch.Tensor, new: dict, old: dict) -> dict:
    """Per-model choice between two stacked parameter dicts: ``new`` where ``mask`` (E,)."""
    m = mask.to(next(iter(new.values())).device)
    return {
        k: torch.where(m.reshape((-1,) + (1,) * (v.ndim - 1)), v, old[k]) for k, v in new.items()
    }


def _fit(base, stacked, data: _Data, cfg: TrainConfig, lrs, alphas, generator, batched, adapt):
    """Run the step loop on stacked params; returns a :class:`_Fit`.

    The loss is evaluated at w_0, ..., w_T (T = ``cfg.steps``): the point after the last
    update is checked for divergence like every other, and the histories have T + 1 columns.
    ``adapt`` (E,) marks the models whose step is halved, and whose last step is undone,
    whenever their full-batch loss rises.
    """
    lrs = lrs.clone()
    halvings = torch.zeros(lrs.shape[0], dtype=torch.long)
    prev = prev_acc = prev_params = None
    E = lrs.shape[0]
    regime = get_regime(cfg.regime)
    objective = _objective(base, cfg.loss, regime)
    step_fn = grad_and_value(objective, has_aux=True)
    if batched:
        xd = 0 if data.per_model else None
        p0_dim = 0 if regime.linearized else None
        in_dims = (0, p0_dim, xd, xd, 0, 0 if data.f0 is not None else None)
        step_fn, objective = vmap(step_fn, in_dims=in_dims), vmap(objective, in_dims=in_dims)
    params0 = stacked if regime.linearized else None
    params = {k: v.clone() for k, v in stacked.items()}
    state = init_state(cfg.optimizer, params)
    n = data.x.shape[1] if data.per_model else data.x.shape[0]
    bs = cfg.batch_size if cfg.optimizer != "gd" and cfg.batch_size else n
    bs = min(bs, n)
    perm = None
    active = torch.ones(E, dtype=torch.bool)
    steps = torch.full((E,), cfg.steps, dtype=torch.long)
    reason = [""] * E
    loss0 = None
    ckpt = None
    ckpt_step = torch.full((E,), -1, dtype=torch.long)
    hist_loss = torch.full((E, cfg.steps + 1), math.nan, dtype=torch.float64)
    hist_acc = torch.full((E, cfg.steps + 1), math.nan, dtype=torch.float64)
    for t in range(cfg.steps + 1):
        last = t == cfg.steps  # evaluate the final weights only; no update follows
        idx = None
        if bs < n:
            per_epoch = n // bs
            if t % per_epoch == 0:
                perm = torch.randperm(n, generator=generator).to(data.x.device)
            idx = perm[(t % per_epoch) * bs : (t % per_epoch + 1) * bs]
        xb, yb, fb = data.batch(idx)
        if batched:
            args = (params, params0, xb, yb, alphas, fb)
        else:
            p1 = {k: v[0] for k, v in params.items()}
            p01 = None if params0 is None else {k: v[0] for k, v in params0.items()}
            if data.per_model:
                xb, yb = xb[0], yb[0]
            args = (p1, p01, xb, yb, alphas[0], None if fb is None else fb[0])
        if last:
            with torch.no_grad():
                _, (loss, acc) = objective(*args)
        else:
            grads, (_, (loss, acc)) = step_fn(*args)
            if not batched:
                grads = {k: v.unsqueeze(0) for k, v in grads.items()}
        loss_c, acc_c = torch.stack([loss.reshape(-1), acc.reshape(-1)]).detach().double().cpu()
        undo = torch.zeros(E, dtype=torch.bool)  # models whose last step is undone
        if prev is not None and bool(adapt.any()):
            # GD at a stable step lowers the loss; a rise (or a non-finite loss) means the
            # curvature has grown past 2/lr (progressive sharpening): undo that step and halve
            # the model's step from here on
            undo = adapt & active & ~(loss_c <= prev * (1 + RISE_TOL))
            if bool(undo.any()):
                lrs[undo.to(lrs.device)] *= 0.5
                halvings += undo.long()
                params = _masked(undo, prev_params, params)
                loss_c = torch.where(undo, prev, loss_c)
                acc_c = torch.where(undo, prev_acc, acc_c)
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
        if cfg.checkpoint_loss is not None:
            first = done & (ckpt_step < 0) & (loss_c <= cfg.checkpoint_loss)
            if bool(first.any()):
                ckpt = _masked(first, params, ckpt if ckpt is not None else params)
                ckpt = {k: v.clone() for k, v in ckpt.items()}
                ckpt_step[first] = t
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
        params, state = update(cfg, params, grads, state, lrs, active & ~undo, t)
    for i in range(E):
        hist_loss[i, int(steps[i]) + 1 :] = math.nan
    return _Fit(
        params, steps, reason, hist_loss, hist_acc, lrs.double().cpu(), halvings, ckpt, ckpt_step
    )


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


def _ensemble_data(dataset, E: int, base, regime, stacked, dtype, device) -> _Data:
    """Shared or per-model training data, with f(x; w0) where the regime needs it."""
    if isinstance(dataset, (list, tuple)):
        if len(dataset) != E:
            raise ValueError(f"got {len(dataset)} datasets for {E} models; pass one per model")
        xy = [_as_xy(ds, dtype, device) for ds in dataset]
        shapes = {(tuple(x.shape), tuple(y.shape)) for x, y in xy}
        if len(shapes) != 1:
            raise ValueError(f"per-model datasets must have equal shapes, got {sorted(shapes)}")
        data = _Data(torch.stack([x for x, _ in xy]), torch.stack([y for _, y in xy]), True, None)
    else:
        x, y = _as_xy(dataset, dtype, device)
        data = _Data(x, y, False, None)
    if regime.alpha_scaled:
        with torch.no_grad():

            def out(p, x):
                return functional_call(base, p, (x,)).reshape(x.shape[0], -1)

            data.f0 = vmap(out, in_dims=(0, 0 if data.per_model else None))(stacked, data.x)
    return data


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

    Models may differ in weights (seed, init scheme), alpha, step size and training data
    (``dataset`` may be a list with one dataset of equal shape per model); everything else
    comes from ``config``. Minibatch indices (sgd/adam with ``batch_size``) are shared by
    all members, so member i equals ``train(models[i], ...)`` with the same generator
    state. A member that diverges is retried alone with half its step (``max_retries``).
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
    initial = [copy.deepcopy(m) for m in models]
    stacked = _stack(models)
    regime = get_regime(config.regime)
    data = _ensemble_data(dataset, E, base, regime, stacked, dtype, device)
    _check(
        base,
        config,
        data.x[0] if data.per_model else data.x,
        data.y[0] if data.per_model else data.y,
    )
    alpha_t = torch.tensor(alphas, dtype=dtype, device=device)
    auto = [v == "auto" for v in lrs_in]
    lr_auto = auto_lr(base, stacked, data.x, config, auto, per_model=data.per_model)
    lr_vals = [float(v) if v != "auto" else lr_auto[i] for i, v in enumerate(lrs_in)]
    lr_t = torch.tensor(lr_vals, dtype=dtype, device=device)
    adapt = torch.tensor([a and config.lr_backoff and config.optimizer == "gd" for a in auto])
    state = generator.get_state() if generator is not None else None
    fit = _fit(base, stacked, data, config, lr_t, alpha_t, generator, E > 1, adapt)
    results = []
    for i in range(E):
        retries, lr_i, fit_i, j = 0, lr_vals[i], fit, i
        while fit_i.reason[j] and retries < config.max_retries:
            retries += 1
            lr_i = lr_i / 2
            if generator is not None:
                generator.set_state(state)
            one = {k: v[i : i + 1] for k, v in stacked.items()}
            lr_1 = torch.tensor([lr_i], dtype=dtype, device=device)
            fit_i = _fit(
                base, one, data.member(i), config, lr_1, alpha_t[i : i + 1], generator, False,
                adapt[i : i + 1],
            )  # fmt: skip
            j = 0
        results.append(_result(fit_i, j, initial[i], replace(configs[i], lr=lr_i), retries))
    return results


def _result(fit: _Fit, j: int, initial: nn.Module, cfg: TrainConfig, retries: int):
    """Member ``j`` of a finished step loop as a :class:`TrainResult`."""
    reason = fit.reason[j]
    if reason and retries:
        reason = f"{reason} (after {retries} retries with halved steps)"
    steps = int(fit.steps[j])
    ckpt = None
    if fit.ckpt_params is not None and int(fit.ckpt_step[j]) >= 0 and not reason:
        ckpt = _unstack_into(initial, fit.ckpt_params, j)
    return TrainResult(
        model=_unstack_into(initial, fit.params, j) if not reason else initial,
        initial_model=initial,
        config=cfg,
        diverged=bool(reason),
        reason=reason,
        lr=float(cfg.lr),
        steps=steps,
        retries=retries,
        history=_history(fit.hist_loss, fit.hist_acc, j, steps),
        lr_final=float(fit.lr_final[j]),
        lr_halvings=int(fit.halvings[j]),
        checkpoint_model=ckpt,
        checkpoint_step=int(fit.ckpt_step[j]) if ckpt is not None else None,
    )


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
