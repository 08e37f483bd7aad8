"""The rows of one cell's run (:class:`~.runs.Run`), stage by stage.

Measured at init (:func:`init_rows`), then, once the run trained with its ensemble, at the
end of training and at the checkpoint loss (:func:`final_rows`), or marked diverged
(:func:`diverged_rows`); a run whose twin (its linearization) trained too gains the
deviation of its gradients from the twin's (:func:`twin_deviation`).
"""

from __future__ import annotations

from typing import Any

from ..metrics import laziness
from ..training.regimes import get_regime
from ..training.result import TrainResult
from .measures import grad_lin_dev, lazy_limits, measure, probe_points
from .rows import Row, fit_stats
from .runs import Run, out_dim

__all__ = ["diverged_rows", "final_rows", "init_rows", "twin_deviation"]

# the run's facts, on every row of the cell (the init rows too) once it trained
_CELL_FACTS = ("rel_weight_change", "ntk_change", "pattern_flip", "lr", "steps", "lr_final",
               "lr_halvings", "reached_target", "stop_reason")  # fmt: skip


def init_rows(run: Run) -> list[Row]:
    """P of the network at init (when ``measure.at`` asks), with its fit where it has one
    (not under alpha-scaling, whose predictor is 0 at init)."""
    c = run.cell
    if "init" not in c.measure.at:
        return []
    alpha_scaled = get_regime(c.regime).alpha_scaled
    stats = {} if alpha_scaled else fit_stats(run.net, run.dataset, c.train.loss)
    return [row.with_(stats) for row in measure(run, run.net, "init", "network")]


def _steps(res: TrainResult) -> dict[str, Any]:
    return {"lr": res.lr, "steps": res.steps, "lr_final": res.lr_final,
            "lr_halvings": res.lr_halvings, "stop_reason": res.stop_reason}  # fmt: skip


def diverged_rows(run: Run, rows: list[Row]) -> list[Row]:
    """The init ``rows`` and one ``final`` row, marked diverged with the reason."""
    res = run.result
    mark = {**_steps(res), "status": "diverged", "message": res.reason}
    return [row.with_(mark) for row in rows] + [run.base.with_(mark, stage="final")]


def final_rows(run: Run, rows: list[Row]) -> list[Row]:
    """The init ``rows`` and P of each measured function at the end of training (and at the
    checkpoint loss, when asked), all with the facts of the run (step, fit, laziness)."""
    c, res, ds = run.cell, run.result, run.dataset
    reg = get_regime(c.regime)
    measured = reg.measured_models(res.model, res.initial_model, res.config.alpha)
    pred = measured[reg.predictor_label]
    extra = {**_steps(res), "reached_target": int(res.reached_target),
             **fit_stats(pred, ds, c.train.loss)}  # fmt: skip
    if c.measure.laziness:
        before, after = reg.laziness_pair(res.model, res.initial_model, res.config.alpha)
        k = out_dim(ds, c.train.loss)
        probe = probe_points(ds.x_train.shape[0], c.train.steps, k)
        lz = laziness(before, after, ds.x_train, probe=probe)
        extra.update({k: lz[k] for k in ("rel_weight_change", "ntk_change", "pattern_flip")})
    out = [row.with_({k: v for k, v in extra.items() if k in _CELL_FACTS}) for row in rows]
    if "final" in c.measure.at:
        limit = lazy_limits(run) if c.measure.lazy_limit else {}
        for label, module in measured.items():
            ms = measure(run, module, "final", label)
            if label == reg.predictor_label:
                ms = [m.with_(p_lazy_limit=limit.get((m["points"], m["eps"]))) for m in ms]
            out += [m.with_(extra) for m in ms]
    ckpt = res.checkpoint_predictor()
    if ckpt is not None:  # train.checkpoint_loss set and reached
        facts = {**extra, **fit_stats(ckpt, ds, c.train.loss), "steps": res.checkpoint_step}
        out += [m.with_(facts) for m in measure(run, ckpt, "checkpoint", reg.predictor_label)]
    return [row.with_(status="ok", message="") for row in out]


def twin_deviation(run: Run, twin: Run) -> float:
    """``grad_lin_dev`` of a trained run from its trained twin (its linearization), on the
    run's first point set (:func:`~.measures.grad_lin_dev`)."""
    on = next(iter(run.points))
    x = run.points[on]
    g_t = run.grads.get((run.index, "final", "network", on), run.result.model, x)
    g_0 = run.grads.get((run.index, "init", "network", on), run.result.initial_model, x)
    label = get_regime(twin.cell.regime).predictor_label
    g_lin = twin.grads.get((twin.index, "final", label, on), twin.result.predictor(), x)
    return grad_lin_dev(g_t, g_lin, g_0)
