"""The trainer: ``train`` and ``train_ensemble`` over one step loop.

The loop (:func:`_fit`) asks a step (:func:`~.step.make_step`) for gradients, books each run in a
:class:`~.run_state.RunState` (back-off, divergence, checkpoint, target, history) and lets
the functional optimizer update the stacked parameters. Divergence is detected per model and
retried alone with half the step.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch
from torch import nn

from .._rng import seeded_rng
from .batched_mlp import supports
from .config import TrainConfig
from .ensemble import (
    PROBE_POINTS,
    check_same_forward,
    ensemble_data,
    ensemble_inputs,
    evaluating,
    members_vmap,
    stack,
    stack_buffers,
    unstack_into,
)
from .losses import get_loss
from .lr import auto_lr
from .optim import get_optimizer, init_state, update
from .regimes import get_regime
from .result import TrainResult
from .run_state import RunState
from .step import Batches, check_step_kind, make_step

__all__ = ["TrainResult", "resolve_auto_lr", "train", "train_ensemble"]


def _check(model: nn.Module, config: TrainConfig, x: torch.Tensor, y: torch.Tensor) -> int:
    with torch.no_grad(), evaluating(model):
        k = model(x[:1]).reshape(1, -1).shape[1]
    get_loss(config.loss).check(k, y)
    need = get_regime(config.regime).parameterization
    has = getattr(getattr(model, "spec", None), "parameterization", None)
    if need is not None and has != need:
        raise ValueError(
            f"regime {config.regime!r} needs a network built with the {need} "
            f"parameterization: init=get_init(name).with_parameterization({need!r}), or "
            "mlp(..., mean_field=True)"
        )
    return k


@dataclass(frozen=True)
class _Members:
    """The runs one step loop trains: stacked initial params, (E,) step sizes, and which
    runs halve their step when the loss rises (``lr="auto"`` back-off)."""

    stacked: dict[str, torch.Tensor]
    lrs: torch.Tensor
    adapt: torch.Tensor


def _fit(step, members: _Members, data, cfg: TrainConfig, generator):
    """Run the step loop of ``step`` (:func:`~.step.make_step`) on ``members``; returns the
    finished :class:`RunState`.

    The loss is evaluated at w_0, ..., w_T (T = ``cfg.steps``): the point after the last
    update is checked for divergence like every other, and the histories have T + 1 columns.
    """
    batches = Batches(cfg, data, generator)
    params = {k: v.clone() for k, v in members.stacked.items()}
    opt = init_state(cfg.optimizer, params)
    run = RunState(cfg, members.lrs, members.adapt)
    for t in range(cfg.steps + 1):
        x, y, f0 = batches.at(t)
        last = t == cfg.steps  # evaluate the final weights only; no update follows
        if last:
            loss, acc = step.value(params, x, y, f0)
        else:
            grads, loss, acc = step.grads(params, x, y, f0)
        params, undo = run.record(t, params, loss, acc)
        if last or not run.any_active:
            break
        run.remember(params)
        # an undone run waits one iteration: its gradient was taken at the rejected point
        params, opt = update(cfg, params, grads, opt, run.lrs, run.active & ~undo, t)
    run.buffers = step.buffers
    return run.finish(params)


def _history(run: RunState, i: int, steps: int) -> dict[str, list[float]]:
    last = min(steps + 1, run.hist_loss.shape[1])
    return {
        "step": list(range(last)),
        "loss": run.hist_loss[i, :last].tolist(),
        "accuracy": run.hist_acc[i, :last].tolist(),
    }


def _result(run: RunState, j: int, initial: nn.Module, cfg: TrainConfig, retries: int):
    """Member ``j`` of a finished step loop as a :class:`TrainResult`."""
    reason = run.reason[j]
    if reason and retries:
        reason = f"{reason} (after {retries} retries with halved steps)"
    steps = int(run.steps[j])
    ckpt = None
    if run.ckpt_params is not None and int(run.ckpt_step[j]) >= 0 and not reason:
        ckpt = unstack_into(initial, run.ckpt_params, j, run.buffers)
    return TrainResult(
        model=unstack_into(initial, run.params, j, run.buffers) if not reason else initial,
        initial_model=initial,
        config=cfg,
        diverged=bool(reason),
        reason=reason,
        lr=float(cfg.lr),
        steps=steps,
        retries=retries,
        history=_history(run, j, steps),
        lr_final=float(run.lrs[j]),
        lr_halvings=int(run.halvings[j]),
        checkpoint_model=ckpt,
        checkpoint_step=int(run.ckpt_step[j]) if ckpt is not None else None,
        stop_reason="diverged" if reason else run.stop_reason(j),
    )


def train_ensemble(
    models: list[nn.Module],
    dataset,
    config: TrainConfig,
    *,
    alphas: list[float] | None = None,
    lrs: list[float | str] | None = None,
    generator: torch.Generator | None = None,
    step: str = "auto",
    seeds: list[int] | None = None,
    auto_lrs: list[float | None] | None = None,
) -> list[TrainResult]:
    """Train models of one architecture together as a vmapped ensemble.

    Models may differ in weights (seed, init scheme), alpha, step size and training data
    (``dataset`` may be a list with one dataset of equal shape per model); everything else
    comes from ``config``. Minibatch indices (sgd/adam with ``batch_size``) are shared by
    all members, so member i equals ``train(models[i], ...)`` with the same generator
    state. A member that diverges is retried alone with half its step (``max_retries``).
    ``step`` picks the step's implementation (``auto``, ``vmap``, ``batched_mlp``): ``auto`` runs
    robustlab MLPs on the hand-written batched step, anything else on ``torch.func``.
    ``auto_lrs``: one per model, the step ``lr="auto"`` resolves to where the caller resolved
    it already (:func:`resolve_auto_lr`; a sweep does once per initial network, for every
    ensemble that trains it), None where it is resolved here; such a member starts there
    and backs off like any ``auto`` member.

    Members whose training forward cannot run under ``vmap`` over them (one that draws random
    numbers, such as dropout: each member's draws would depend on the others; see
    :func:`~.ensemble.members_vmap`) are trained one after another, each as
    ``train(models[i], ...)`` with the same generator state. ``seeds``: one per model; a
    member trained alone then runs with torch's global RNG seeded by its seed (and put back
    after, :func:`robustlab._rng.seeded_rng`), so its random draws are reproducible and its
    own; None leaves the global RNG to the caller, as plain PyTorch training does.
    """
    check_step_kind(step)
    if not models:
        raise ValueError("train_ensemble needs at least one model")
    E = len(models)
    alphas = [config.alpha] * E if alphas is None else list(alphas)
    lrs_in = [config.lr] * E if lrs is None else list(lrs)
    if len(alphas) != E or len(lrs_in) != E or (auto_lrs is not None and len(auto_lrs) != E):
        raise ValueError("alphas, lrs and auto_lrs must have one entry per model")
    # validated here, before any work: a bad alpha or lr raises TrainConfig's ValueError
    configs = [replace(config, alpha=a, lr=v) for a, v in zip(alphas, lrs_in, strict=True)]
    check_same_forward(models)
    base = models[0]
    p0 = next(base.parameters())
    if seeds is not None and len(seeds) != E:
        raise ValueError("seeds must have one entry per model")
    if _alone(models, dataset, config):
        members = {"alphas": alphas, "lrs": lrs_in, "auto_lrs": auto_lrs, "seeds": seeds}
        return _one_by_one(models, dataset, config, generator, step, members)
    if seeds is not None and E == 1:
        with seeded_rng(seeds[0], p0.device):
            return train_ensemble(models, dataset, config, alphas=alphas, lrs=lrs_in,
                                  generator=generator, step=step, auto_lrs=auto_lrs)  # fmt: skip
    initial = [copy.deepcopy(m) for m in models]
    stacked, buffers = stack(models), stack_buffers(models)
    data = ensemble_data(dataset, E, base, get_regime(config.regime), stacked, p0.dtype, p0.device)
    _check(base, config, *data.first())
    alpha_t = torch.tensor([c.alpha for c in configs], dtype=p0.dtype, device=p0.device)
    lr_vals, adapt = _step_sizes(base, stacked, data, config, lrs_in, auto_lrs)
    state = generator.get_state() if generator is not None else None
    lr_t = torch.tensor(lr_vals, dtype=p0.dtype, device=p0.device)
    loop = make_step(base, config, data, stacked, alpha_t, E > 1, step, buffers)
    run = _fit(loop, _Members(stacked, lr_t, adapt), data, config, generator)
    results = []
    for i in range(E):
        retries, lr_i, run_i, j = 0, lr_vals[i], run, i
        while run_i.reason[j] and retries < config.max_retries:  # alone, with half the step
            retries, lr_i, j = retries + 1, lr_i / 2, 0
            if generator is not None:
                generator.set_state(state)
            one = {k: v[i : i + 1] for k, v in stacked.items()}
            one_buf = {k: v[i : i + 1] for k, v in buffers.items()}
            lr_1 = torch.tensor([lr_i], dtype=p0.dtype, device=p0.device)
            alone = data.member(i)
            loop = make_step(base, config, alone, one, alpha_t[i : i + 1], False, step, one_buf)
            run_i = _fit(loop, _Members(one, lr_1, adapt[i : i + 1]), alone, config, generator)
        results.append(_result(run_i, j, initial[i], replace(configs[i], lr=lr_i), retries))
    return results


def _probe(dataset, p0: torch.Tensor) -> torch.Tensor:
    """The first training inputs (of the first model's data), as the models hold numbers."""
    first = dataset[0] if isinstance(dataset, (list, tuple)) else dataset
    return first.x_train[:PROBE_POINTS].to(device=p0.device, dtype=p0.dtype)


def _member(dataset, i: int):
    """Model ``i``'s dataset: its own in a list of them, else the shared one."""
    return dataset[i] if isinstance(dataset, (list, tuple)) else dataset


def _alone(models: list[nn.Module], dataset, config: TrainConfig) -> bool:
    """Whether an ensemble of ``models`` trains its members one by one (they do not vmap)."""
    p0 = next(models[0].parameters())
    return (
        len(models) > 1
        and not supports(models[0], config)
        and not members_vmap(models, _probe(dataset, p0))
    )


def _one_by_one(models, dataset, config, generator, step, members: dict):
    """Each member trained alone, from the same generator state (the ensemble's fallback).
    ``members``: train_ensemble's per-model lists (``alphas``, ``lrs``, ...; or None)."""
    state = generator.get_state() if generator is not None else None
    results = []
    for i, model in enumerate(models):
        if generator is not None:
            generator.set_state(state)
        one = {name: None if v is None else [v[i]] for name, v in members.items()}
        results += train_ensemble(
            [model], _member(dataset, i), config, generator=generator, step=step, **one
        )
    return results


def resolve_auto_lr(models, dataset, config: TrainConfig, which=None) -> list[float | None]:
    """The step ``lr="auto"`` gives each model where ``which`` is True (all by default; None
    elsewhere), as ``train_ensemble(models, dataset, config)`` resolves it at init: one power
    iteration over those members on ``models[0]``'s forward function (:func:`~.lr.auto_lr`),
    or each member alone where the ensemble trains them one by one. A caller that trains one
    initial network in several ensembles (a sweep's twins and alpha variants) resolves it
    once and passes it on (``train_ensemble(..., auto_lrs=...)``).
    """
    which = [True] * len(models) if which is None else list(which)
    check_same_forward(models)
    if _alone(models, dataset, config):
        return [
            resolve_auto_lr([m], _member(dataset, i), config)[0] if w else None
            for i, (m, w) in enumerate(zip(models, which, strict=True))
        ]
    base = models[0]
    p0 = next(base.parameters())
    stacked = stack(models)
    data = ensemble_inputs(dataset, len(models), p0.dtype, p0.device)
    _check(base, config, *data.first())
    with evaluating(base):  # at init; BatchNorm on its running statistics
        return auto_lr(base, stacked, data.x, config, which, per_model=data.per_model)


def _step_sizes(base, stacked, data, config: TrainConfig, lrs_in: list, auto_lrs):
    """Each member's starting step (``auto`` resolved at init, where ``auto_lrs`` has no
    value) and whether it may back off."""
    auto = [v == "auto" for v in lrs_in]
    given = [None] * len(auto) if auto_lrs is None else auto_lrs
    need = [a and g is None for a, g in zip(auto, given, strict=True)]
    with evaluating(base):  # at init; BatchNorm on its running statistics
        found = auto_lr(base, stacked, data.x, config, need, per_model=data.per_model)
    lr_vals = [
        float(v) if v != "auto" else given[i] if given[i] is not None else found[i]
        for i, v in enumerate(lrs_in)
    ]
    full = get_optimizer(config.optimizer).full_batch
    return lr_vals, torch.tensor([a and config.lr_backoff and full for a in auto])


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
