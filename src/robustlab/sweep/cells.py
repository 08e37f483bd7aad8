"""Execute one group of cells: build, measure at init, train as one ensemble, measure again.

A group holds cells that share data, architecture, regime and training spec and differ in
init scheme, alpha and seed (``Cell.group_key``); they are trained together by
``train_ensemble`` (vmap). This module is pure: it returns rows and never touches the store,
so it runs the same in the driver, in worker processes and in Ray tasks.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass
from functools import lru_cache

import torch

from .. import data as rl_data
from ..metrics import input_gradients, laziness, perturbation_stability
from ..models import mlp
from ..theory import expected_grad_sq_norm
from ..train import TrainConfig, train_ensemble
from ..train.losses import accuracy, loss_value
from .config import Cell

__all__ = ["CellOutcome", "run_group"]

BATCH_ORDER_SEED = 12345  # minibatch order is fixed per group (shared by its members)
PROBE_POINTS = 32  # points for the empirical-NTK change (cost grows as their square)


@dataclass(frozen=True)
class CellOutcome:
    """What a cell produced: status, message, wall time and its result rows."""

    cell_hash: str
    sweep: str
    status: str
    message: str
    config_json: str
    time_s: float
    rows: list[dict]


@lru_cache(maxsize=4)
def _dataset(spec_json: str, dtype: str):
    import json

    spec = json.loads(spec_json)
    name = spec.pop("name")
    classes = spec.pop("classes", None)
    options = {k: v for k, v in spec.items() if k not in ("n_train", "n_test", "in_dim", "sphere")}
    ds = rl_data.load(
        name,
        n_train=spec.get("n_train"),
        n_test=spec.get("n_test"),
        in_dim=spec.get("in_dim"),
        classes=classes,
        sphere=bool(spec.get("sphere", False)),
        seed=0,
        **options,
    )
    return ds.to(dtype=getattr(torch, dtype))


def _train_config(cell: Cell) -> TrainConfig:
    t = cell.train
    return TrainConfig(
        optimizer=t.optimizer,
        loss=t.loss,
        lr=t.lr,
        steps=t.steps,
        target_loss=t.target_loss,
        batch_size=t.batch_size,
        momentum=t.momentum,
        regime=cell.regime,
        alpha=cell.alpha,
        max_retries=t.max_retries,
    )


def _fit_stats(model, ds, loss_name: str) -> dict:
    out = {}
    with torch.no_grad():
        for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
            if x is None or x.shape[0] == 0:
                continue
            g = model(x).reshape(x.shape[0], -1)
            out[f"{split}_loss"] = float(loss_value(loss_name, g, y))
            out[f"{split}_acc"] = float(accuracy(g, y))
    return out


def _measure(model, x, cell: Cell, moment: str, which: str) -> list[dict]:
    m = cell.measure
    rows = []
    k = model(x[:1]).reshape(1, -1).shape[1]
    grad_norm = math.nan
    if k == 1:
        grad_norm = float(torch.linalg.vector_norm(input_gradients(model, x), dim=1).mean())
    gen = torch.Generator().manual_seed(cell.seed)
    for eps in m.eps:
        for method in m.methods:
            if method == "exact" and k != 1:
                continue
            r = perturbation_stability(
                model,
                x,
                eps,
                method=method,
                region=m.region,
                n_samples=m.n_samples,
                generator=gen,
            )
            rows.append(
                {
                    "at": moment,
                    "eps": eps,
                    "method": method,
                    "region": m.region,
                    "model": which,
                    "p_value": r.value,
                    "p_stderr": r.stderr,
                    "grad_norm": grad_norm,
                }
            )
    return rows


def _base_row(cell: Cell, ds, net) -> dict:
    spec = net.spec
    s1, s2, s3 = spec.variances
    return {
        "sweep": cell.sweep,
        "cell": cell.hash,
        "seed": cell.seed,
        "width": cell.width,
        "depth": cell.depth,
        "init": cell.init,
        "regime": cell.regime,
        "alpha": cell.alpha,
        "dataset": str(cell.data.name),
        "in_dim": spec.in_dim,
        "out_dim": spec.out_dim,
        "n_train": int(ds.x_train.shape[0]),
        "n_params": spec.n_params,
        "s1": s1,
        "s2": s2,
        "s3": s3,
        "theory_grad_sq": expected_grad_sq_norm(
            cell.init, spec.in_dim, spec.width, spec.depth, spec.out_dim
        )
        if not spec.mean_field
        else (spec.in_dim * s1 / 2) * (spec.width * s3) * spec.out_dim,
        "config_json": cell.config_json(),
    }


def _train(cells: list[Cell], nets: list, ds) -> list:
    """Train the group's networks, one vmapped ensemble per forward function.

    Init schemes under the NTK parameterization (``ntk_param``) have their own forward
    multipliers, so they cannot share one vmapped forward with standard-parameterization
    schemes. Every ensemble draws minibatches from its own generator with the same seed, so
    each network sees the batches it would see alone or in the whole group.
    """
    cfg = _train_config(cells[0])
    by_forward: dict[tuple[float, ...], list[int]] = {}
    for i, net in enumerate(nets):
        by_forward.setdefault(tuple(net.spec.multipliers), []).append(i)
    results: list = [None] * len(nets)
    for members in by_forward.values():
        trained = train_ensemble(
            [nets[i] for i in members],
            ds,
            cfg,
            alphas=[cells[i].alpha for i in members],
            generator=torch.Generator().manual_seed(BATCH_ORDER_SEED),
        )
        for i, res in zip(members, trained, strict=True):
            results[i] = res
    return results


def run_group(
    cells: list[Cell], *, dtype: str = "float32", device: str = "cpu"
) -> list[CellOutcome]:
    """Run one group of cells; a failure marks the group's cells ``failed`` and returns."""
    t0 = time.perf_counter()
    try:
        return _run_group(cells, dtype, device, t0)
    except Exception as err:  # recorded, the sweep goes on
        msg = f"{type(err).__name__}: {err}".strip().splitlines()[0]
        tb = traceback.format_exc(limit=3)
        dt = (time.perf_counter() - t0) / len(cells)
        return [
            CellOutcome(
                c.hash,
                c.sweep,
                "failed",
                f"{msg} | {tb[-300:]}",
                c.config_json(),
                dt,
                [{"status": "failed", "message": msg}],
            )
            for c in cells
        ]


def _run_group(cells: list[Cell], dtype: str, device: str, t0: float) -> list[CellOutcome]:
    import json

    first = cells[0]
    ds = _dataset(json.dumps(first.data.to_dict(), sort_keys=True), dtype).to(device=device)
    n_classes = ds.n_classes if ds.task == "multiclass" else 0
    out_dim = n_classes if n_classes > 2 else 1
    if first.train.loss == "cross_entropy":
        out_dim = max(out_dim, 2)
    x_eval = ds.x_test if ds.x_test.shape[0] else ds.x_train
    x_eval = x_eval[: first.measure.points]
    nets = [
        mlp(
            ds.in_dim,
            c.width,
            c.depth,
            out_dim,
            init=c.init,
            bias=c.model.bias,
            generator=torch.Generator().manual_seed(c.seed),
            mean_field=c.regime == "mean_field",
            dtype=getattr(torch, dtype),
            device=device,
        )
        for c in cells
    ]
    rows: list[list[dict]] = []
    for c, net in zip(cells, nets, strict=True):
        base = _base_row(c, ds, net)
        r = []
        if "init" in c.measure.at:
            stats = _fit_stats(net, ds, c.train.loss) if c.regime != "lazy" else {}
            r += [{**base, **stats, **m} for m in _measure(net, x_eval, c, "init", "network")]
        rows.append(r)
    results = _train(cells, nets, ds)
    outcomes = []
    for c, net, res, r in zip(cells, nets, results, rows, strict=True):
        base = _base_row(c, ds, net)
        common = {"lr": res.lr, "steps": res.steps}
        if res.diverged:
            r = [{**row, **common, "status": "diverged", "message": res.reason} for row in r]
            r.append({**base, **common, "at": "final", "status": "diverged", "message": res.reason})
            outcomes.append(
                CellOutcome(c.hash, c.sweep, "diverged", res.reason, c.config_json(), 0.0, r)
            )
            continue
        pred = res.predictor()
        extra = {**common, **_fit_stats(pred, ds, c.train.loss)}
        if c.measure.laziness:
            lz = laziness(res.initial_model, res.model, ds.x_train, probe=PROBE_POINTS)
            extra.update({k: lz[k] for k in ("rel_weight_change", "ntk_change", "pattern_flip")})
        r = [
            {
                **row,
                **{
                    k: v
                    for k, v in extra.items()
                    if k in ("rel_weight_change", "ntk_change", "pattern_flip", "lr", "steps")
                },
            }
            for row in r
        ]
        if "final" in c.measure.at:
            r += [
                {**base, **extra, **m} for m in _measure(res.model, x_eval, c, "final", "network")
            ]
            if c.regime == "lazy":
                r += [{**base, **extra, **m} for m in _measure(pred, x_eval, c, "final", "centred")]
        outcomes.append(
            CellOutcome(
                c.hash,
                c.sweep,
                "ok",
                "",
                c.config_json(),
                0.0,
                [{**row, "status": "ok", "message": ""} for row in r],
            )
        )
    # wall time of the group, shared equally by its cells
    dt = (time.perf_counter() - t0) / len(cells)
    return [
        CellOutcome(
            o.cell_hash,
            o.sweep,
            o.status,
            o.message,
            o.config_json,
            dt,
            [{**row, "time_s": dt} for row in o.rows],
        )
        for o in outcomes
    ]
