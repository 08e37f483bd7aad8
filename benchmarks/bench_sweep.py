"""Benchmark: batched sweep ensembles against the loop a researcher writes, and the FLOP rate.

Part 1 (speedup). A sweep of small MLPs on two-class MNIST-1D (classes 0 and 1: 794
training and 206 test points, d = 40): init lecun/he/ntk x width 16/32/64/128 x depth
2/4/6 x 8 seeds = 288 cells, full-batch GD on the mse loss, 200 steps, ``lr="auto"``
(the sweep's default), exact P at eps = 0.1 on the test points after training only (no init
measurement, no laziness). It is timed

- batched, in this process: ``robustlab.sweep.run(..., executor="serial")``; the cells of
  each (width, depth) train together as one vmapped ensemble;
- batched, two worker processes: ``executor="local", workers=2`` (worker start-up and
  dataset generation in the workers included);
- as the plain loop a researcher writes, one model at a time (:func:`plain_cell`): a
  ``torch.nn.Sequential`` of bias-free ``nn.Linear`` and ``nn.ReLU`` holding the cell's
  initial weights (copied from robustlab's network for the same cell, so both train the
  same function), full-batch GD with ``torch.optim.SGD`` and autograd on the loss
  0.5 mean_n (f(x_n) - y_n)^2 for the same number of steps, at the step robustlab's
  ``lr="auto"`` picked for the cell, halved with the last step undone whenever the loss
  rises (robustlab's back-off, which ``lr="auto"`` turns on; without it the deep LeCun cells
  train another function); then P the plain way: ``torch.autograd.grad`` of the output sum
  at the test points, P = eps kappa_d mean ||grad|| (kappa_d from ``robustlab.theory``).
  Timed: building the network, copying the weights in, the steps and P. Not timed: the
  data (loaded once per seed), the initial draw and the step size, read from the batched
  sweep's rows: a researcher would have to compute it too (a power iteration on the NTK),
  so leaving it out favours the plain loop and makes ``speedup_plain`` conservative;
- as robustlab's per-model loop: ``run_group([cell])`` for each cell alone, i.e. the same
  work without batching (no store writes; they take milliseconds).

Both loops run the same cells, interleaved cell by cell so that a change of load hits both
alike, on ``GROUP_THREADS`` torch thread(s), the count every batched group runs with. With
``--loop-cells stratified`` (the default) they run one seed of every (init, width, depth)
and their times are scaled by the number of cells; ``--loop-cells all`` runs every cell.

speedup_plain = plain loop time / batched serial time, overall and by width: what a user
gains over the loop they would write. Targets (issue "Theory at the speed of the field's
reference"): at least 4x on the grid, at least 8x over the cells of width <= 32; each is
also given in CPU time (``speedup_plain_cpu``). speedup = robustlab's per-model loop time /
batched serial time (issue 12's ratio; reported, no longer a target: both of its sides run
robustlab's own hand-written step, ``training.batched_mlp``, so it measures batching
alone); the local executor's speedup is reported beside it.

Like for like: the plain loop's final training loss, P and number of halvings are compared
with the batched sweep's rows for every cell it ran (float32: relative differences, the
median and the largest), and for the first seed's cells of width <= 32 both robustlab
(``run_group(..., dtype="float64")``) and the plain loop are rerun in float64, where they
must agree to within ``PLAIN_RTOL_F64`` (a check, like the targets).

floor_ratio = batched serial time / (the sweep's training FLOPs, 3 x 2 x N x params per step
and model, at the matmul rate of part 2 measured in the same run), overall and by width:
how far the whole batched sweep (lr="auto", measurement and bookkeeping included) is from
the time its training products alone need; floor_ratio_cpu is the same ratio in this
process's CPU time against the matmul rate measured in CPU time, which other processes' load
does not stretch. Targets: floor_ratio at most 1.5, floor_ratio_cpu at most 1.4.
speedup_plain_bound = plain loop time / that floor: the most any batching could gain over
the plain loop on this machine.

Part 2 (peak fraction). One compute-bound cell (width 1024, depth 4, 512 sphere points in
d = 40, full-batch GD with a fixed step) is trained for a few steps; its achieved FLOP/s,
counting 3 x 2 x N x params FLOPs per step (forward, and backward for inputs and weights),
is divided by the rate of torch.mm on the same shapes (each layer's forward, input-grad and
weight-grad products), measured in the same run. Target: at least 70%.

Load: other processes share the machine; the load average (1 min) is recorded at the start
and end of each part, and every time is also taken as this process's CPU time
(``*_cpu_s``), which other processes' load does not stretch (the local executor's workers
are other processes, so it has only a wall time).

In-process runs use ``--threads`` torch threads (default 1, what each of the local
executor's two workers gets on a 2-core machine), so every timing uses one core per process.

Usage: python benchmarks/bench_sweep.py [--json PATH] [--loop-cells all|stratified] [--quick]
``--quick`` is a smoke run (2 seeds, 40 steps, a width-256 peak cell, one repeat); its
numbers are not the benchmark's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from torch import nn

import robustlab as rl
from robustlab.sweep import load, load_config
from robustlab.sweep.cells import GROUP_THREADS, group_threads, run_group
from robustlab.training import TrainConfig, train
from robustlab.training.run_state import RISE_TOL

SMALL_WIDTH = 32  # the narrow cells, where a per-model loop wastes the most
SPEEDUP_PLAIN_TARGET, SMALL_SPEEDUP_PLAIN_TARGET = 4.0, 8.0  # overall, width <= SMALL_WIDTH
FLOOR_TARGET, FLOOR_CPU_TARGET = 1.5, 1.4
PEAK_TARGET = 0.7
PLAIN_RTOL_F64 = 1e-9  # plain loop vs robustlab in float64 (measured: below 1e-15)
# (steps, seeds, peak width, peak steps, peak repeats): the benchmark and a smoke run
FULL = {"steps": 200, "seeds": 8, "peak_width": 1024, "peak_steps": 10, "peak_repeats": 3}
QUICK = {"steps": 40, "seeds": 2, "peak_width": 256, "peak_steps": 3, "peak_repeats": 1}


def sweep_config(steps: int, seeds: int, lr: str | float) -> dict:
    return {
        "name": "bench-sweep",
        "data": {"name": "mnist1d", "classes": [0, 1]},
        "grid": {"width": [16, 32, 64, 128], "depth": [2, 4, 6], "init": ["lecun", "he", "ntk"]},
        "seeds": seeds,
        "train": {"optimizer": "gd", "loss": "mse", "lr": lr, "steps": steps},
        "measure": {"eps": [0.1], "methods": ["exact"], "at": ["final"], "laziness": False},
    }


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def timed_cpu(fn):
    """(wall s, this process's CPU s, result)."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def cell_flops(c) -> float:
    """Training FLOPs of one cell: 3 x 2 x N x params per step (forward, input and weight
    gradients), the count the matmul rate turns into a time."""
    return 6 * 794 * c.train.steps * rl.mlp(40, c.width, c.depth).spec.n_params


def final_p(rows) -> dict[str, float]:
    return {r["cell"]: float(r["p_value"]) for r in rows if r.get("stage") == "final"}


def plain_mlp(in_dim: int, width: int, depth: int) -> nn.Sequential:
    """The bias-free ReLU MLP as a researcher writes it: depth nn.Linear, ReLU between."""
    dims = [in_dim] + [width] * (depth - 1) + [1]
    layers: list[nn.Module] = []
    for k_in, k_out in zip(dims[:-1], dims[1:], strict=True):
        layers += [nn.Linear(k_in, k_out, bias=False), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def plain_cell(cell, w0: list[torch.Tensor], lr: float, ds) -> tuple[float, float, int]:
    """One cell the way a researcher writes it: (final training loss, P, step halvings).

    ``w0`` are the initial weights, one (fan_out, fan_in) tensor per layer; ``ds`` the cell's
    data (``x_train`` (N, d), ``y_train`` (N,) in {-1, +1}, ``x_test``). Full-batch GD with
    torch.optim.SGD on 0.5 mean_n (f(x_n) - y_n)^2 for ``cell.train.steps`` steps; the loss
    is evaluated at w_0..w_T, and where it rose by more than RISE_TOL (relative) the last
    step is undone and the step halved, as robustlab's ``lr="auto"`` back-off does (the
    undone step counts against the budget). P = eps kappa_d mean_x ||grad_x f(x)||_2 over
    the first ``cell.measure.points`` test points (Zhu et al., NeurIPS 2022: E|g . delta| =
    eps kappa_d ||g|| for delta uniform in the eps-ball or sphere, ``cell.measure.region``).
    """
    x, y = ds.x_train, ds.y_train.reshape(-1, 1)  # (N, d), (N, 1)
    net = plain_mlp(x.shape[1], cell.width, cell.depth).to(x.dtype)
    params = list(net.parameters())
    with torch.no_grad():
        for p, w in zip(params, w0, strict=True):
            p.copy_(w)
    opt = torch.optim.SGD(params, lr=lr)
    kept = [p.detach().clone() for p in params]  # the weights before the last step
    prev, halvings = math.inf, 0
    for t in range(cell.train.steps + 1):
        loss = 0.5 * (net(x) - y).pow(2).sum(1).mean()
        value = loss.item()
        if t > 0 and not value <= prev * (1 + RISE_TOL):  # the loss rose: undo, halve
            with torch.no_grad():
                for p, k in zip(params, kept, strict=True):
                    p.copy_(k)
            for group in opt.param_groups:
                group["lr"] /= 2
            halvings += 1
            continue
        prev = value
        if t == cell.train.steps:
            break
        with torch.no_grad():
            for p, k in zip(params, kept, strict=True):
                k.copy_(p)
        opt.zero_grad()
        loss.backward()
        opt.step()
    xt = ds.x_test[: cell.measure.points].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(net(xt).sum(), xt)  # (n, d): the one output's input gradient
    kappa = rl.theory.kappa(xt.shape[1], cell.measure.region)
    p_value = cell.measure.eps[0] * kappa * torch.linalg.vector_norm(g, dim=1).mean()
    return prev, float(p_value), halvings


class PlainInputs:
    """What the plain loop gets untimed: each seed's data and each cell's initial weights
    (robustlab's draw for the cell, so both loops train the same function)."""

    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        self.dtype = dtype
        self._data: dict = {}

    def data(self, cell):
        key = cell.data.draw(cell.seed)
        if key not in self._data:
            self._data[key] = key.load().to(dtype=self.dtype)
        return self._data[key]

    def weights(self, cell) -> list[torch.Tensor]:
        d = self.data(cell).x_train.shape[1]
        gen = torch.Generator().manual_seed(cell.seed)  # as run_group draws the cell's network
        net = rl.mlp(d, cell.width, cell.depth, 1, init=cell.init, generator=gen, dtype=self.dtype)
        return [layer.weight.detach().clone() for layer in net.layers]


def rel_diffs(a: dict, b: dict) -> list[float]:
    """|a - b| / |b| over the keys of ``a``, sorted."""
    return sorted(abs(a[k] - b[k]) / abs(b[k]) for k in a)


def check_float64(cells) -> dict:
    """robustlab (``run_group`` of one cell) and the plain loop, both in float64, on ``cells``:
    the largest relative differences of the final training loss and of P, and how many cells
    halved their step as often on both sides."""
    inputs = PlainInputs(torch.float64)
    loss_rl, p_rl, loss_pl, p_pl, same_halvings = {}, {}, {}, {}, 0
    for c in cells:
        (o,) = run_group([c], dtype="float64")
        (row,) = [r for r in o.rows if r.get("stage") == "final"]
        with group_threads():
            loss, p, halvings = plain_cell(c, inputs.weights(c), row["lr"], inputs.data(c))
        loss_rl[c.hash], p_rl[c.hash] = row["train_loss"], row["p_value"]
        loss_pl[c.hash], p_pl[c.hash] = loss, p
        same_halvings += int(halvings == row["lr_halvings"])
    return {
        "f64_cells": len(cells),
        "f64_max_rel_diff_loss_plain_vs_robustlab": rel_diffs(loss_pl, loss_rl)[-1],
        "f64_max_rel_diff_p_plain_vs_robustlab": rel_diffs(p_pl, p_rl)[-1],
        "f64_same_halvings": same_halvings,
    }


def by_width_sum(times: dict, cells) -> dict[int, float]:
    """{width: sum of ``times[cell.hash]`` over ``cells``}."""
    out: dict[int, float] = {}
    for c in cells:
        out[c.width] = out.get(c.width, 0.0) + times[c.hash]
    return out


def bench_speedup(args, tmp: Path) -> dict:
    cfg = load_config(sweep_config(args.steps, args.seeds, args.lr))
    cells = cfg.cells()
    groups = cfg.groups()
    # generate MNIST-1D once before any timing (cached per process; workers pay it themselves)
    run_group([cells[0]])
    load0 = os.getloadavg()[0]

    ticks: list[float] = []  # the serial executor finishes groups in order
    cpu_ticks: list[float] = []

    def tick(p):
        if p.event != "stored":  # a group's end, not the sweep's or a group's start
            return
        ticks.append(p.elapsed_s)
        cpu_ticks.append(time.process_time())

    c_start = time.process_time()
    t_serial, c_serial, summary = timed_cpu(
        lambda: rl.sweep.run(cfg, tmp / "serial.db", executor="serial", progress=tick)
    )
    if summary.ok != len(cells):
        raise RuntimeError(f"batched sweep: {summary}")
    t_local, summary_l = timed(
        lambda: rl.sweep.run(cfg, tmp / "local.db", executor="local", workers=args.workers)
    )
    if summary_l.ok != len(cells):
        raise RuntimeError(f"local sweep: {summary_l}")
    batched = load(tmp / "serial.db")
    rows = {c: r for c, r in zip(batched["cell"], batched.to_dict("records"), strict=True)}

    if args.loop_cells == "all":
        loop_cells = cells
    else:  # the first seed of every (init, width, depth)
        first = cfg.seeds[0]
        loop_cells = [c for c in cells if c.seed == first]
    scale = len(cells) / len(loop_cells)
    inputs = PlainInputs()
    wall: dict[str, dict] = {"loop": {}, "plain": {}}  # {side: {cell hash: s}}
    cpu: dict[str, dict] = {"loop": {}, "plain": {}}
    outcomes, plain = [], {}
    with group_threads():  # the plain loop on the batched groups' thread count
        warm = loop_cells[0]  # torch.optim's first step loads more of torch: not timed
        plain_cell(warm, inputs.weights(warm), rows[warm.hash]["lr"], inputs.data(warm))
        for c in loop_cells:  # interleaved: a change of load hits both loops alike
            dt, dc, (o,) = timed_cpu(lambda c=c: run_group([c]))
            outcomes.append(o)
            wall["loop"][c.hash], cpu["loop"][c.hash] = dt, dc
            w0, lr, ds = inputs.weights(c), rows[c.hash]["lr"], inputs.data(c)
            dt, dc, plain[c.hash] = timed_cpu(partial(plain_cell, c, w0, lr, ds))
            wall["plain"][c.hash], cpu["plain"][c.hash] = dt, dc
    load1 = os.getloadavg()[0]
    # per width, scaled to the whole grid
    loop_by_width = {w: v * scale for w, v in by_width_sum(wall["loop"], loop_cells).items()}
    loop_cpu_by_width = {w: v * scale for w, v in by_width_sum(cpu["loop"], loop_cells).items()}
    plain_by_width = {w: v * scale for w, v in by_width_sum(wall["plain"], loop_cells).items()}
    plain_cpu_by_width = {w: v * scale for w, v in by_width_sum(cpu["plain"], loop_cells).items()}
    t_loop_run = sum(wall["loop"].values())
    t_plain_run = sum(wall["plain"].values())
    t_loop, t_plain = t_loop_run * scale, t_plain_run * scale
    c_loop, c_plain = sum(loop_cpu_by_width.values()), sum(plain_cpu_by_width.values())
    batched_by_width: dict[int, float] = {}
    batched_cpu_by_width: dict[int, float] = {}
    cpu_starts = [c_start, *cpu_ticks[:-1]]
    for g, start, end, c0, c1 in zip(
        groups, [0.0, *ticks[:-1]], ticks, cpu_starts, cpu_ticks, strict=True
    ):
        w = g[0].width
        batched_by_width[w] = batched_by_width.get(w, 0.0) + end - start
        batched_cpu_by_width[w] = batched_cpu_by_width.get(w, 0.0) + c1 - c0
    # the training FLOPs alone (3 x 2 x N x params per step), without lr=auto or measurement
    flops_by_width: dict[int, float] = {}
    for c in cells:
        flops_by_width[c.width] = flops_by_width.get(c.width, 0.0) + cell_flops(c)
    train_flops = sum(flops_by_width.values())
    small = [w for w in loop_by_width if w <= SMALL_WIDTH]

    def small_ratio(num: dict, den: dict) -> float:
        return sum(num[w] for w in small) / sum(den[w] for w in small)

    # sanity: the loops reproduce the batched numbers
    batched_p = {k: float(r["p_value"]) for k, r in rows.items()}
    loop_p = {k: v for o in outcomes for k, v in final_p(o.rows).items()}
    rel = rel_diffs(loop_p, batched_p)
    max_rel, median_rel = rel[-1], rel[len(rel) // 2]
    local = load(tmp / "local.db")
    local_p = dict(zip(local["cell"], local["p_value"].astype(float), strict=True))
    max_rel_local = rel_diffs(local_p, batched_p)[-1]
    rel_p_plain = rel_diffs({k: v[1] for k, v in plain.items()}, batched_p)
    rel_loss_plain = rel_diffs(
        {k: v[0] for k, v in plain.items()}, {k: float(r["train_loss"]) for k, r in rows.items()}
    )
    same_halvings = sum(int(v[2] == rows[k]["lr_halvings"]) for k, v in plain.items())
    with_halvings = sum(int(rows[k]["lr_halvings"] > 0) for k in plain)
    f64_cells = [c for c in loop_cells if c.width <= SMALL_WIDTH and c.seed == cfg.seeds[0]]
    return {
        "cells": len(cells),
        "groups": len(groups),
        "ensemble_size": max(len(g) for g in groups),
        "n_train": 794,
        "steps": args.steps,
        "lr": args.lr,
        "load_avg_speedup": [load0, load1],
        "batched_serial_s": t_serial,
        "batched_serial_cpu_s": c_serial,
        "batched_local_s": t_local,
        "local_workers": args.workers,
        "loop_threads": GROUP_THREADS,
        "loop_cells_run": len(loop_cells),
        "loop_measured_s": t_loop_run,
        "loop_s": t_loop,
        "loop_cpu_s": c_loop,
        "plain_measured_s": t_plain_run,
        "plain_s": t_plain,
        "plain_cpu_s": c_plain,
        "loop_scaled": len(loop_cells) != len(cells),
        "loop_method": (
            "every cell"
            if len(loop_cells) == len(cells)
            else f"the first seed of every (init, width, depth), {len(loop_cells)} cells, "
            f"time scaled by {len(cells)}/{len(loop_cells)}"
        ),
        "plain_method": (
            "torch.nn.Sequential (bias-free nn.Linear, nn.ReLU) with robustlab's initial "
            "weights, torch.optim.SGD full batch on 0.5 mean (f - y)^2 with autograd, "
            "robustlab's lr='auto' step (not timed) and its back-off, P from "
            "torch.autograd.grad at the test points"
        ),
        "by_width": {
            str(w): {
                "loop_s": loop_by_width[w],
                "plain_s": plain_by_width[w],
                "batched_serial_s": batched_by_width[w],
                "speedup": loop_by_width[w] / batched_by_width[w],
                "speedup_plain": plain_by_width[w] / batched_by_width[w],
                "loop_cpu_s": loop_cpu_by_width[w],
                "plain_cpu_s": plain_cpu_by_width[w],
                "batched_serial_cpu_s": batched_cpu_by_width[w],
                "speedup_cpu": loop_cpu_by_width[w] / batched_cpu_by_width[w],
                "speedup_plain_cpu": plain_cpu_by_width[w] / batched_cpu_by_width[w],
                "train_tflop": flops_by_width[w] / 1e12,
            }
            for w in sorted(loop_by_width)
        },
        "train_tflop": train_flops / 1e12,
        "speedup_plain": t_plain / t_serial,
        "speedup_plain_cpu": c_plain / c_serial,
        f"speedup_plain_width_le_{SMALL_WIDTH}": small_ratio(plain_by_width, batched_by_width),
        f"speedup_plain_cpu_width_le_{SMALL_WIDTH}": small_ratio(
            plain_cpu_by_width, batched_cpu_by_width
        ),
        "speedup": t_loop / t_serial,
        "speedup_cpu": c_loop / c_serial,
        f"speedup_width_le_{SMALL_WIDTH}": small_ratio(loop_by_width, batched_by_width),
        f"speedup_cpu_width_le_{SMALL_WIDTH}": small_ratio(loop_cpu_by_width, batched_cpu_by_width),
        "speedup_local": t_loop / t_local,
        "speedup_plain_local": t_plain / t_local,
        # float32 rounding differs between the vmapped and the single-model step; a few deep
        # cells amplify it over 200 steps (in float64 the two agree to ~1e-12)
        "max_rel_diff_p_loop_vs_batched": max_rel,
        "median_rel_diff_p_loop_vs_batched": median_rel,
        "max_rel_diff_p_local_vs_serial": max_rel_local,
        # the plain loop against the batched rows, float32; back-off halvings amplify rounding
        "max_rel_diff_p_plain_vs_batched": rel_p_plain[-1],
        "median_rel_diff_p_plain_vs_batched": rel_p_plain[len(rel_p_plain) // 2],
        "max_rel_diff_loss_plain_vs_batched": rel_loss_plain[-1],
        "median_rel_diff_loss_plain_vs_batched": rel_loss_plain[len(rel_loss_plain) // 2],
        "plain_same_halvings": same_halvings,
        "plain_cells_with_halvings": with_halvings,
        **check_float64(f64_cells),
    }


def mm_rate(shapes: list[tuple[int, int, int]], repeats: int) -> tuple[float, float]:
    """FLOP/s of torch.mm over the (n, k) @ (k, m) products in ``shapes``: (wall, CPU time)."""
    pairs = [(torch.randn(n, k), torch.randn(k, m)) for n, k, m in shapes]
    flops = sum(2 * n * k * m for n, k, m in shapes)
    for a, b in pairs:  # warm-up
        torch.mm(a, b)
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(repeats):
        for a, b in pairs:
            torch.mm(a, b)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return flops * repeats / wall, flops * repeats / cpu


def bench_peak(args) -> dict:
    n, d, m, depth = args.peak_points, 40, args.peak_width, args.peak_depth
    ds = rl.data.load("sphere", n_train=n, n_test=1, in_dim=d, seed=0)
    net = rl.mlp(d, m, depth, init="he", generator=torch.Generator().manual_seed(0))
    p = net.spec.n_params
    cfg = TrainConfig(optimizer="gd", loss="mse", lr=1e-3, steps=args.peak_steps)
    train(net, ds, TrainConfig(optimizer="gd", loss="mse", lr=1e-3, steps=2))  # warm-up
    # the step's products: per layer (k_in -> k_out) forward X W^T, input grad G W, weight
    # grad G^T X (the first layer's input grad is not needed but counted in 3 x 2 N p too)
    dims = [d] + [m] * (depth - 1) + [1]
    shapes = []
    for k_in, k_out in zip(dims[:-1], dims[1:], strict=True):
        shapes += [(n, k_in, k_out), (n, k_out, k_in), (k_out, n, k_in)]
    # best of a few interleaved repeats on both sides: other processes share the machine
    load0 = os.getloadavg()[0]
    t_train = c_train = math.inf
    reference = reference_cpu = 0.0
    for _ in range(args.peak_repeats):
        dt, dc, res = timed_cpu(lambda: train(net, ds, cfg))
        if res.diverged or res.steps != args.peak_steps:
            raise RuntimeError(f"peak cell: {res.reason or res.steps}")
        t_train, c_train = min(t_train, dt), min(c_train, dc)
        wall, cpu = mm_rate(shapes, repeats=args.peak_steps)
        reference, reference_cpu = max(reference, wall), max(reference_cpu, cpu)
    flops_step = 3 * 2 * n * p
    achieved = flops_step * args.peak_steps / t_train
    achieved_cpu = flops_step * args.peak_steps / c_train
    return {
        "peak_width": m,
        "peak_depth": depth,
        "peak_points": n,
        "peak_params": p,
        "peak_steps": args.peak_steps,
        "train_step_s": t_train / args.peak_steps,
        "achieved_gflops": achieved / 1e9,
        "mm_gflops": reference / 1e9,
        "mm_gflops_cpu": reference_cpu / 1e9,
        "peak_fraction": achieved / reference,
        "peak_fraction_cpu": achieved_cpu / reference_cpu,
        "load_avg_peak": [load0, os.getloadavg()[0]],
    }


def floor_ratios(out: dict) -> None:
    """floor_ratio = batched time / (training FLOPs at the matmul rate), overall and by
    width, in wall time and in CPU time (each against the rate measured the same way), and
    the most batching could gain over either loop (loop time / that floor)."""
    rate, rate_cpu = out["mm_gflops"] * 1e9, out["mm_gflops_cpu"] * 1e9
    out["compute_floor_s"] = out["train_tflop"] * 1e12 / rate
    out["compute_floor_cpu_s"] = out["train_tflop"] * 1e12 / rate_cpu
    out["speedup_bound"] = out["loop_s"] / out["compute_floor_s"]
    out["speedup_plain_bound"] = out["plain_s"] / out["compute_floor_s"]
    out["floor_ratio"] = out["batched_serial_s"] / out["compute_floor_s"]
    out["floor_ratio_cpu"] = out["batched_serial_cpu_s"] / out["compute_floor_cpu_s"]
    for row in out["by_width"].values():
        row["floor_s"] = row["train_tflop"] * 1e12 / rate
        row["floor_cpu_s"] = row["train_tflop"] * 1e12 / rate_cpu
        row["floor_ratio"] = row["batched_serial_s"] / row["floor_s"]
        row["floor_ratio_cpu"] = row["batched_serial_cpu_s"] / row["floor_cpu_s"]
        row["speedup_plain_bound"] = row["plain_s"] / row["floor_s"]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the results as a JSON object here")
    ap.add_argument("--loop-cells", choices=("stratified", "all"), default="stratified")
    ap.add_argument(
        "--quick", action="store_true", help=f"smoke run: {QUICK} unless given (default {FULL})"
    )
    ap.add_argument("--steps", type=int)
    ap.add_argument("--seeds", type=int)
    ap.add_argument("--lr", default="auto", help='"auto" (default) or a fixed step')
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads in this process")
    ap.add_argument("--peak-width", type=int)
    ap.add_argument("--peak-depth", type=int, default=4)
    ap.add_argument("--peak-points", type=int, default=512)
    ap.add_argument("--peak-steps", type=int)
    ap.add_argument("--peak-repeats", type=int)
    ap.add_argument("--skip-speedup", action="store_true", help="run part 2 only")
    args = ap.parse_args()
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.lr = args.lr if args.lr == "auto" else float(args.lr)
    return args


def main() -> int:
    args = parse_args()
    torch.set_num_threads(args.threads)

    out: dict = {
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "torch": torch.__version__,
        "robustlab": rl.__version__,
        "quick": args.quick,
        "load_avg_start": os.getloadavg()[0],
    }
    if not args.skip_speedup:
        with tempfile.TemporaryDirectory() as tmp:
            out.update(bench_speedup(args, Path(tmp)))
    out.update(bench_peak(args))
    out["load_avg_end"] = os.getloadavg()[0]
    checks = [("peak fraction", out["peak_fraction"], ">=", PEAK_TARGET)]
    if not args.skip_speedup:
        floor_ratios(out)
        small = out[f"speedup_plain_width_le_{SMALL_WIDTH}"]
        f64_p = out["f64_max_rel_diff_p_plain_vs_robustlab"]
        f64_loss = out["f64_max_rel_diff_loss_plain_vs_robustlab"]
        checks = [
            ("speedup_plain", out["speedup_plain"], ">=", SPEEDUP_PLAIN_TARGET),
            (f"speedup_plain, width <= {SMALL_WIDTH}", small, ">=", SMALL_SPEEDUP_PLAIN_TARGET),
            ("floor ratio (wall)", out["floor_ratio"], "<=", FLOOR_TARGET),
            ("floor ratio (CPU time)", out["floor_ratio_cpu"], "<=", FLOOR_CPU_TARGET),
            *checks,
            ("plain = robustlab in float64, P", f64_p, "<=", PLAIN_RTOL_F64),
            ("plain = robustlab in float64, loss", f64_loss, "<=", PLAIN_RTOL_F64),
        ]
    out["targets"] = {
        "speedup_plain": SPEEDUP_PLAIN_TARGET,
        f"speedup_plain_width_le_{SMALL_WIDTH}": SMALL_SPEEDUP_PLAIN_TARGET,
        "floor_ratio": FLOOR_TARGET,
        "floor_ratio_cpu": FLOOR_CPU_TARGET,
        "peak_fraction": PEAK_TARGET,
        "f64_max_rel_diff_plain_vs_robustlab": PLAIN_RTOL_F64,
    }
    passed = [v >= t if op == ">=" else v <= t for _, v, op, t in checks]
    out["pass"] = bool(all(passed))

    if args.quick:
        print("QUICK SMOKE RUN (fewer seeds and steps): not the benchmark's numbers")
    print(f"robustlab {out['robustlab']}, torch {out['torch']}, {out['cpu_count']} CPUs,")
    print(
        f"{args.threads} torch thread(s) per process, load average {out['load_avg_start']:.1f} "
        f"at the start, {out['load_avg_end']:.1f} at the end"
    )
    if not args.skip_speedup:
        report_speedup(out, args)
    print(
        f"\npeak: width {out['peak_width']}, depth {out['peak_depth']}, N={out['peak_points']}, "
        f"{out['peak_params']} params, {out['train_step_s'] * 1e3:.1f} ms/step"
    )
    print(
        f"training {out['achieved_gflops']:.1f} GFLOP/s, torch.mm {out['mm_gflops']:.1f} "
        f"GFLOP/s on the same shapes: {100 * out['peak_fraction']:.0f}% of the matmul rate "
        f"({100 * out['peak_fraction_cpu']:.0f}% in CPU time)"
    )
    print()
    for (name, value, op, target), ok in zip(checks, passed, strict=True):
        print(f"{'PASS' if ok else 'FAIL'}  {name} {value:.3g} (target {op} {target:g})")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, allow_nan=False) + "\n")
    return 0


def report_speedup(out: dict, args) -> None:
    scaled = (
        f" ({out['loop_cells_run']} cells run, one seed per (init, width, depth), "
        f"scaled x{out['cells'] / out['loop_cells_run']:g})"
        if out["loop_scaled"]
        else ""
    )
    s = " (scaled)" if out["loop_scaled"] else ""
    print(
        f"\nsweep: {out['cells']} cells in {out['groups']} groups of {out['ensemble_size']}, "
        f"mnist1d 2-class (N=794), gd mse, {args.steps} steps, lr={args.lr}; load average "
        f"{out['load_avg_speedup'][0]:.1f} -> {out['load_avg_speedup'][1]:.1f}"
    )
    print(f"{'run':<40}{'time (s)':>10}{'batched':>10}{'CPU (s)':>10}{'batched':>10}")
    print("  (the 'batched' columns: this run's time / the batched serial time)")
    for name, t, c in (
        (f"plain torch loop{s}", out["plain_s"], out["plain_cpu_s"]),
        (f"robustlab per-model loop{s}", out["loop_s"], out["loop_cpu_s"]),
        ("batched, serial executor", out["batched_serial_s"], out["batched_serial_cpu_s"]),
    ):
        print(f"{name:<40}{t:>10.1f}{t / out['batched_serial_s']:>10.2f}{c:>10.1f}", end="")
        print(f"{c / out['batched_serial_cpu_s']:>10.2f}")
    print(f"{f'batched, local executor ({args.workers} workers)':<40}", end="")
    print(f"{out['batched_local_s']:>10.1f}")
    if scaled:
        print(
            f"loop times measured: plain {out['plain_measured_s']:.1f} s, robustlab "
            f"{out['loop_measured_s']:.1f} s{scaled}; {out['loop_threads']} torch thread(s)"
        )
    print(
        f"speedup_plain {out['speedup_plain']:.2f}x ({out['speedup_plain_cpu']:.2f}x in CPU "
        f"time; local executor {out['speedup_plain_local']:.2f}x); speedup against robustlab's "
        f"own loop {out['speedup']:.2f}x ({out['speedup_cpu']:.2f}x CPU; local "
        f"{out['speedup_local']:.2f}x)"
    )
    print(
        f"\n{'width':<7}{'plain (s)':>10}{'loop (s)':>9}{'batched (s)':>12}"
        f"{'speedup_plain':>14}{'(CPU)':>7}{'speedup':>9}{'(CPU)':>7}"
    )
    for w, r in out["by_width"].items():
        print(
            f"{w:<7}{r['plain_s']:>10.1f}{r['loop_s']:>9.1f}{r['batched_serial_s']:>12.1f}"
            f"{r['speedup_plain']:>14.2f}{r['speedup_plain_cpu']:>7.2f}{r['speedup']:>9.2f}"
            f"{r['speedup_cpu']:>7.2f}"
        )
    k = f"width_le_{SMALL_WIDTH}"
    print(
        f"{'<=' + str(SMALL_WIDTH):<7}{'':>31}{out[f'speedup_plain_{k}']:>14.2f}"
        f"{out[f'speedup_plain_cpu_{k}']:>7.2f}{out[f'speedup_{k}']:>9.2f}"
        f"{out[f'speedup_cpu_{k}']:>7.2f}"
    )
    print(f"\n{'width':<7}{'floor (s)':>10}{'floor ratio':>12}{'(CPU)':>7}{'plain / floor':>15}")
    for w, r in out["by_width"].items():
        print(
            f"{w:<7}{r['floor_s']:>10.1f}{r['floor_ratio']:>12.2f}{r['floor_ratio_cpu']:>7.2f}"
            f"{r['speedup_plain_bound']:>15.2f}"
        )
    print(
        f"{'all':<7}{out['compute_floor_s']:>10.1f}{out['floor_ratio']:>12.2f}"
        f"{out['floor_ratio_cpu']:>7.2f}{out['speedup_plain_bound']:>15.2f}"
    )
    print(
        f"\nplain loop vs batched rows, float32, {out['loop_cells_run']} cells: train loss "
        f"median {out['median_rel_diff_loss_plain_vs_batched']:.1e}, max "
        f"{out['max_rel_diff_loss_plain_vs_batched']:.1e}; P median "
        f"{out['median_rel_diff_p_plain_vs_batched']:.1e}, max "
        f"{out['max_rel_diff_p_plain_vs_batched']:.1e} (relative); step halvings equal in "
        f"{out['plain_same_halvings']}/{out['loop_cells_run']} cells "
        f"({out['plain_cells_with_halvings']} cells halve)"
    )
    print(
        f"plain loop vs robustlab, float64, {out['f64_cells']} cells of width <= "
        f"{SMALL_WIDTH}: max relative difference of the train loss "
        f"{out['f64_max_rel_diff_loss_plain_vs_robustlab']:.1e}, of P "
        f"{out['f64_max_rel_diff_p_plain_vs_robustlab']:.1e}; step halvings equal in "
        f"{out['f64_same_halvings']}/{out['f64_cells']}"
    )
    print(
        f"relative difference of P, robustlab loop vs batched: median "
        f"{out['median_rel_diff_p_loop_vs_batched']:.1e}, max "
        f"{out['max_rel_diff_p_loop_vs_batched']:.1e} (float32); local vs serial: max "
        f"{out['max_rel_diff_p_local_vs_serial']:.1e}"
    )
    print(
        f"the sweep's training alone is {out['train_tflop']:.2f} TFLOP: "
        f"{out['compute_floor_s']:.1f} s at the matmul rate of part 2 "
        f"({out['compute_floor_cpu_s']:.1f} CPU s), so no batching can make it more than "
        f"{out['speedup_plain_bound']:.1f}x faster than the plain loop "
        f"({out['speedup_bound']:.1f}x than robustlab's loop) on this machine; the batched "
        f"sweep takes {out['floor_ratio']:.2f}x that floor "
        f"({out['floor_ratio_cpu']:.2f}x in CPU time)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
