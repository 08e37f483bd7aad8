"""Execute one group of cells: build, measure at init, train as one ensemble, measure again.

A group holds cells that share data, architecture, regime and training spec and differ in
init scheme, alpha and seed (``Cell.group_key``); they are trained together by
``train_ensemble`` (vmap). This module is pure: it returns rows and never touches the store,
so it runs the same in the driver, in worker processes and in Ray tasks.
"""

from __future__ import annotations

import math
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import torch

from .._checks import first_line
from .._sections import at_path
from ..data.config import DataConfig
from ..metrics import (
    adversarial,
    exact_from_gradients,
    input_gradients,
    laziness,
    perturbation_stability,
)
from ..models import build_model, build_user_model
from ..models.user import builder_path, check_builder
from ..theory import grad_sq_norm, lazy_limit_p
from ..training import train_ensemble
from ..training.eigen_cache import EigenCache
from ..training.losses import accuracy, get_loss, loss_value
from ..training.regimes import get_regime
from .config import Cell
from .schema import WORST_METHODS

__all__ = ["GROUP_THREADS", "CellOutcome", "check_config", "group_threads", "run_group"]

BATCH_ORDER_SEED = 12345  # minibatch order is fixed per group (shared by its members)
# torch's intra-op threads for every group, wherever it runs (the driver, a worker process,
# a Ray task): a parallel reduction splits its sum by thread, so its last bits depend on the
# count (the empirical NTK's did: 2 threads against 1 changed ntk_change by 5e-7 relative).
# Fixed, every stored number is a function of its cell's config and seed alone.
GROUP_THREADS = 1
PROBE_POINTS = 32  # most points for the empirical-NTK change (cost grows as their square)
PROBE_MIN, PROBE_SHARE = 8, 0.05  # fewest points; the probe's FLOPs against training's


def probe_points(n_train: int, steps: int, k: int) -> int:
    """Points of the empirical-NTK probe, sized by its cost.

    The two NTKs (initial and trained network) on n points with k outputs take about
    20 n^2 k p FLOPs (n k columns, each a VJP, 4 n p, and a JVP, 6 n p) against 6 N p T
    for training N points for T steps. n is the largest number of points keeping the
    probe within PROBE_SHARE of training, clipped to [PROBE_MIN, PROBE_POINTS]: the cap
    binds for the presets (one output, N T >= 5e5), the share for many outputs or short
    runs (k = 10, width 256, depth 6: 32 points, 320 NTK columns, took 0.64 s beside 2.9 s
    of training on 794 points for 200 steps; 15 points take 0.25 s).
    """
    n = math.isqrt(int(PROBE_SHARE * 6 * n_train * steps / (20 * k)))
    return max(PROBE_MIN, min(PROBE_POINTS, n))


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


@contextmanager
def group_threads() -> Iterator[None]:
    """Run the block with GROUP_THREADS intra-op threads; restore the count after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(GROUP_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@lru_cache(maxsize=64)
def _dataset(config: DataConfig, dtype: str):
    """One data draw (a seed varies the network *and* the data it is trained on)."""
    return config.load().to(dtype=getattr(torch, dtype))


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


def _points(ds, cell: Cell) -> dict[str, torch.Tensor]:
    """The point sets P is measured on (``measure.point_sets``), each cut to ``measure.points``."""
    n = cell.measure.points
    test = ds.x_test if ds.x_test.shape[0] else ds.x_train
    sets = {"test": test, "train": ds.x_train}
    return {name: sets[name][:n] for name in cell.measure.point_sets}


class _Gradients:
    """Input gradients computed once per (function, point set) and shared by every eps,
    the gradient norm column and the linearization deviation."""

    def __init__(self) -> None:
        self._cache: dict[tuple, torch.Tensor] = {}

    def get(self, key: tuple, model, x: torch.Tensor) -> torch.Tensor:
        if key not in self._cache:
            self._cache[key] = input_gradients(model, x).double().cpu()  # (n, d)
        return self._cache[key]


def _measure(model, points: dict, cell: Cell, moment: str, which: str, grads, key) -> list[dict]:
    """Rows of P for every point set x eps x method; ``exact`` from one gradient per point:
    per point eps kappa_d ||grad f(x)|| (the identity E|g . delta| = eps kappa_d ||g||).
    ``pgd`` rows hold the worst case mean_x max ||f(x') - f(x)|| over the same region in
    ``worst_value`` (``p_value`` stays NULL: a worst case is not P)."""
    m = cell.measure
    rows = []
    for on, x in points.items():
        k = model(x[:1]).reshape(1, -1).shape[1]
        g = grads.get((*key, on), model, x) if k == 1 else None
        norms = None if g is None else torch.linalg.vector_norm(g, dim=1)
        gen = torch.Generator().manual_seed(cell.seed)
        for eps in m.eps:
            for method in m.methods:
                if method == "exact" and k != 1:
                    continue
                if method == "exact":
                    r = exact_from_gradients(g, eps, m.region)
                    value, se = r.value, r.stderr
                elif method == "pgd":  # worst case over the same region (L2 or L-infinity)
                    norm = "linf" if m.region == "linf_ball" else "l2"
                    r = adversarial(model, x, eps, norm=norm, generator=gen)
                    value, se = r.value, r.stderr
                else:
                    r = perturbation_stability(
                        model, x, eps, method=method, region=m.region,
                        n_samples=m.n_samples, generator=gen,
                    )  # fmt: skip
                    value, se = r.value, r.stderr
                worst = method in WORST_METHODS
                columns = ("worst_value", "worst_stderr") if worst else ("p_value", "p_stderr")
                measured = dict(zip(columns, (value, se), strict=True))
                rows.append(
                    {
                        "stage": moment, "eps": eps, "method": method, "region": m.region,
                        "model": which, "points": on, **measured,
                        "grad_norm": math.nan if norms is None else float(norms.mean()),
                    }
                )  # fmt: skip
    return rows


def _theory_grad_sq(spec) -> float:
    """Closed-form E||grad_x f||^2 at init where one exists (ReLU MLPs; biases start at 0),
    from the variances the network records (any scheme and parameterization)."""
    if getattr(spec, "family", "mlp") != "mlp":
        return math.nan
    return grad_sq_norm(spec.variances, spec.in_dim, spec.width, spec.depth, spec.out_dim)


def _base_row(cell: Cell, ds, net) -> dict:
    spec = net.spec
    # (s1, s2, s3) for MLPs; one per layer for CNNs, ResNets and builders' networks (none
    # under init 'own': the builder's own weights)
    v = spec.variances or (math.nan,)
    s1, s2, s3 = v[0], v[1] if len(v) > 2 else math.nan, v[-1]
    with torch.no_grad():
        f0 = net(ds.x_train).reshape(ds.x_train.shape[0], -1)
    y = ds.y_train.to(f0.dtype).reshape(f0.shape[0], -1) if ds.y_train.is_floating_point() else None
    return {
        "sweep": cell.sweep,
        "sweep_hash": cell.config.hash,
        "cell": cell.hash,
        "seed": cell.seed,
        "data_seed": cell.data.draw(cell.seed).seed,
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
        "theory_grad_sq": _theory_grad_sq(spec),
        "target_loss": cell.train.target_loss,
        "y_f0_ratio": float(torch.linalg.norm(y) / torch.linalg.norm(f0))
        if y is not None
        else math.nan,
        "label_scale": float(ds.meta["options"]["label_scale"]),  # c: y_f0_ratio scales with it
        "config_json": cell.config_json(),
    }


def _train(cells: list[Cell], nets: list, datasets: list) -> list:
    """Train the group's networks, one vmapped ensemble per (regime, forward function).

    Init schemes under the NTK parameterization (``ntk_param``) have their own forward
    multipliers and twin regimes their own objective, so each needs its own ensemble. Each
    network trains on its own seed's data draw. Every ensemble draws minibatches from its own
    generator with the same seed, so each network sees the batches it would see alone.
    """
    by_forward: dict[tuple, list[int]] = {}
    for i, (c, net) in enumerate(zip(cells, nets, strict=True)):
        by_forward.setdefault((c.regime, tuple(net.spec.multipliers)), []).append(i)
    results: list = [None] * len(nets)
    lr_cache = EigenCache()  # twins and alpha variants share w0 and data: one power iteration
    for members in by_forward.values():
        trained = train_ensemble(
            [nets[i] for i in members],
            [datasets[i] for i in members],
            cells[members[0]].train_config(),
            alphas=[cells[i].alpha for i in members],
            generator=torch.Generator().manual_seed(BATCH_ORDER_SEED),
            seeds=[cells[i].seed for i in members],
            lr_cache=lr_cache,
        )
        for i, res in zip(members, trained, strict=True):
            results[i] = res
    return results


def run_group(
    cells: list[Cell], *, dtype: str = "float32", device: str = "cpu", paths: tuple[str, ...] = ()
) -> list[CellOutcome]:
    """Run one group of cells; a failure marks the group's cells ``failed`` and returns.

    It runs with :data:`GROUP_THREADS` threads (restored after), so its rows are the same
    bits in the driver, in a worker process and in a Ray task. ``paths``: folders appended to
    ``sys.path`` where missing, so that a worker imports the sweep's model builder from where
    the driver did (:func:`check_config` returns them); appended, they shadow no module.
    """
    t0 = time.perf_counter()
    sys.path.extend(p for p in dict.fromkeys(paths) if p not in sys.path)
    try:
        with group_threads():
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


def _out_dim(ds, loss: str) -> int:
    n_classes = ds.n_classes if ds.task == "multiclass" else 0
    return get_loss(loss).out_dim(n_classes if n_classes > 2 else 1)


def _twins(cells: list[Cell]) -> dict[int, int]:
    """Index of each cell's twin run (e.g. standard -> linearized: same init, seed, alpha)."""
    twin_of = {(get_regime(c.regime).twin_of, c.init, c.seed, c.alpha): j
               for j, c in enumerate(cells)}  # fmt: skip
    out = {}
    for i, c in enumerate(cells):
        j = twin_of.get((c.regime, c.init, c.seed, c.alpha))
        if j is not None:
            out[i] = j
    return out


def _grad_lin_dev(g_t: torch.Tensor, g_lin: torch.Tensor, g_0: torch.Tensor) -> float:
    """||g_T - g_lin,T||_F / ||g_T - g_0||_F over the measured points (all (n, d) entries):
    how far the trained network's input gradients are from its exact linearization's,
    relative to how far training moved them."""
    den = float(torch.linalg.norm(g_t - g_0))
    return float(torch.linalg.norm(g_t - g_lin)) / den if den > 0 else math.nan


def check_config(config) -> tuple[str, ...]:
    """Resolve what a sweep needs before any cell runs: its data set (name, files, options,
    every data seed) and its first network on that data. A ValueError names the sweep.
    The data sets are cached for the groups that run in this process, so they are built with
    the groups' thread count (:data:`GROUP_THREADS`).

    A builder of the user's own (``model.family: package.module:name``) is imported and
    builds one network at each (width, depth) of the grid, checked for what the sweep needs
    (:func:`robustlab.models.user.check_builder`); its errors start with ``model.family:``.
    Returns the folders the workers need on ``sys.path`` to import it (none for a built-in
    family), for :func:`run_group`'s ``paths``.
    """
    cell = config.cells()[0]
    model = config.model
    try:
        with group_threads():
            # a split can depend on the seed (class balance of a subset): every draw is checked
            for seed in dict.fromkeys(config.seeds):
                ds = _dataset(config.data.draw(seed), "float32")
            for data in dict.fromkeys(c.data for c in config.cells()):  # each label scale
                _dataset(data.draw(cell.seed), "float32")
            ds = _dataset(cell.data.draw(cell.seed), "float32")
            if not model.user:  # a builder's networks are checked below, at every shape
                net = build_model(
                    model.family, model.in_shape or ds.x_shape, cell.width, cell.depth,
                    _out_dim(ds, config.train.loss), init=cell.init, bias=model.bias,
                    parameterization=get_regime(cell.regime).parameterization,
                    **model.options(),
                )  # fmt: skip
                with torch.no_grad():
                    net(ds.x_train[:1])
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        first = first_line(err)
        raise ValueError(f"sweep {config.name!r}: {first}") from None
    if not model.user:
        return ()
    in_shape = tuple(model.in_shape or ds.x_shape)
    if math.prod(in_shape) != ds.in_dim:
        raise ValueError(
            f"model.in_shape: {in_shape} holds {math.prod(in_shape)} values, but the data's "
            f"inputs hold {ds.in_dim}"
        )
    with at_path("model.family"):
        check_builder(
            model.family, model.builder_kwargs(), in_shape, _out_dim(ds, config.train.loss),
            [(c.width, c.depth) for c in config.cells()], config.grid.init,
        )  # fmt: skip
    path = builder_path(model.family)
    return () if path is None else (path,)


def _network(c: Cell, in_shape, out_dim: int, dtype: str, device: str):
    """The cell's network at init, drawn from its seed: the family's (a generator seeded with
    it), or the user's builder's (:func:`robustlab.models.build_user_model`)."""
    if c.model.user:
        return build_user_model(
            c.model.family, in_shape, c.width, c.depth, out_dim, init=c.init,
            kwargs=c.model.builder_kwargs(), seed=c.seed, dtype=getattr(torch, dtype),
            device=device,
        )  # fmt: skip
    return build_model(
        c.model.family,
        in_shape,
        c.width,
        c.depth,
        out_dim,
        init=c.init,
        bias=c.model.bias,
        generator=torch.Generator().manual_seed(c.seed),
        parameterization=get_regime(c.regime).parameterization,
        dtype=getattr(torch, dtype),
        device=device,
        **c.model.options(),
    )


def _run_group(cells: list[Cell], dtype: str, device: str, t0: float) -> list[CellOutcome]:
    first = cells[0]
    datasets = [_dataset(first.data.draw(c.seed), dtype).to(device=device) for c in cells]
    out_dim = _out_dim(datasets[0], first.train.loss)
    in_shape = first.model.in_shape or datasets[0].x_shape
    nets = [_network(c, in_shape, out_dim, dtype, device) for c in cells]
    grads = _Gradients()
    points = [_points(ds, c) for ds, c in zip(datasets, cells, strict=True)]
    bases = [_base_row(c, ds, net) for c, ds, net in zip(cells, datasets, nets, strict=True)]
    rows: list[list[dict]] = []
    for i, (c, net, ds) in enumerate(zip(cells, nets, datasets, strict=True)):
        r = []
        if "init" in c.measure.at:
            reg = get_regime(c.regime)
            stats = _fit_stats(net, ds, c.train.loss) if not reg.alpha_scaled else {}
            init_rows = _measure(net, points[i], c, "init", "network", grads, (i, "init"))
            r += [{**bases[i], **stats, **m} for m in init_rows]
        rows.append(r)
    results = _train(cells, nets, datasets)
    twins = _twins(cells)
    outcomes = []
    for i, (c, res, r) in enumerate(zip(cells, results, rows, strict=True)):
        common = {"lr": res.lr, "steps": res.steps, "lr_final": res.lr_final,
                  "lr_halvings": res.lr_halvings, "stop_reason": res.stop_reason}  # fmt: skip
        if res.diverged:
            r = [{**row, **common, "status": "diverged", "message": res.reason} for row in r]
            r.append(
                {
                    **bases[i],
                    **common,
                    "stage": "final",
                    "status": "diverged",
                    "message": res.reason,
                }
            )
            outcomes.append(
                CellOutcome(c.hash, c.sweep, "diverged", res.reason, c.config_json(), 0.0, r)
            )
            continue
        r = _final_rows(i, c, res, r, bases[i], datasets[i], points[i], common, grads)
        outcomes.append(CellOutcome(c.hash, c.sweep, "ok", "", c.config_json(), 0.0, r))
    _add_twin_deviation(cells, results, outcomes, twins, points, grads)
    # wall time of the group, shared equally by its cells
    dt = (time.perf_counter() - t0) / len(cells)
    return [
        CellOutcome(
            o.cell_hash, o.sweep, o.status, o.message, o.config_json, dt,
            [{**row, "time_s": dt} for row in o.rows],
        )
        for o in outcomes
    ]  # fmt: skip


_CELL_FACTS = ("rel_weight_change", "ntk_change", "pattern_flip", "lr", "steps", "lr_final",
               "lr_halvings", "reached_target", "stop_reason")  # fmt: skip


def _final_rows(i, c: Cell, res, r, base, ds, pts, common, grads) -> list[dict]:
    """The cell's rows after training: facts of the run on every row, P of each measured
    function at the end of training (and at the checkpoint loss, when asked)."""
    reg = get_regime(c.regime)
    measured = reg.measured_models(res.model, res.initial_model, res.config.alpha)
    pred = measured[reg.predictor_label]
    extra = {**common, "reached_target": int(res.reached_target),
             **_fit_stats(pred, ds, c.train.loss)}  # fmt: skip
    if c.measure.laziness:
        before, after = reg.laziness_pair(res.model, res.initial_model, res.config.alpha)
        k = _out_dim(ds, c.train.loss)
        probe = probe_points(ds.x_train.shape[0], c.train.steps, k)
        lz = laziness(before, after, ds.x_train, probe=probe)
        extra.update({k: lz[k] for k in ("rel_weight_change", "ntk_change", "pattern_flip")})
    r = [{**row, **{k: v for k, v in extra.items() if k in _CELL_FACTS}} for row in r]
    if "final" in c.measure.at:
        limit = _lazy_limits(c, ds, pts) if c.measure.lazy_limit else {}
        for label, module in measured.items():
            ms = _measure(module, pts, c, "final", label, grads, (i, "final", label))
            if label == reg.predictor_label:
                ms = [m | {"p_lazy_limit": limit.get((m["points"], m["eps"]))} for m in ms]
            r += [{**base, **extra, **m} for m in ms]
    ckpt = res.checkpoint_predictor()
    if ckpt is not None:  # train.checkpoint_loss set and reached
        facts = {**extra, **_fit_stats(ckpt, ds, c.train.loss), "steps": res.checkpoint_step}
        label = reg.predictor_label
        ms = _measure(ckpt, pts, c, "checkpoint", label, grads, (i, "checkpoint", label))
        r += [{**base, **facts, **m} for m in ms]
    return [{**row, "status": "ok", "message": ""} for row in r]


def _add_twin_deviation(cells, results, outcomes, twins, points, grads) -> None:
    """``grad_lin_dev`` on every row of a run whose twin (its linearization) trained too."""
    for i, j in twins.items():
        if outcomes[i].status != "ok" or outcomes[j].status != "ok":
            continue
        twin = get_regime(cells[j].regime)
        on = next(iter(points[i]))
        x = points[i][on]
        g_t = grads.get((i, "final", "network", on), results[i].model, x)
        g_0 = grads.get((i, "init", on), results[i].initial_model, x)
        lin = results[j].predictor()
        g_lin = grads.get((j, "final", twin.predictor_label, on), lin, x)
        dev = _grad_lin_dev(g_t, g_lin, g_0)
        outcomes[i].rows[:] = [{**row, "grad_lin_dev": dev} for row in outcomes[i].rows]


def _lazy_limits(c: Cell, ds, pts: dict) -> dict:
    """``{(point set, eps): P}`` of the cell's infinite-width lazy limit, trained on the same
    data to convergence (:func:`robustlab.theory.lazy_limit_p`): the limit of the Taylor
    model for ``linearized`` cells, of the network's own gradient for the others. Empty
    where no limit applies (not a one-output MLP trained with mse under a regime that keeps
    f(x; w0) and no mean-field parameterization, or a scheme without an infinite-width
    limit such as xavier)."""
    reg = get_regime(c.regime)
    ok = (c.model.family == "mlp" and not c.model.bias and c.train.loss == "mse"
          and reg.keeps_init_function and reg.parameterization is None
          and ds.y_train.is_floating_point()
          and c.measure.region in ("ball", "sphere"))  # fmt: skip
    if not ok:
        return {}
    model = "linearized" if reg.linearized else "network"
    out = {}
    try:
        for on, x in pts.items():
            for eps in c.measure.eps:
                out[(on, eps)] = lazy_limit_p(
                    ds.x_train.double(), ds.y_train.double(), x.double(), init=c.init,
                    depth=c.depth, eps=eps, region=c.measure.region, model=model, seed=c.seed,
                )  # fmt: skip
    except ValueError:  # e.g. a scheme whose function has no infinite-width limit
        return {}
    return out
