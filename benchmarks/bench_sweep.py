"""Benchmark: batched sweep ensembles against a per-model loop, and the trainer's FLOP rate.

Part 1 (speedup). A sweep of small MLPs on two-class MNIST-1D (classes 0 and 1: 794
training and 206 test points, d = 40): init lecun/he/ntk x width 16/32/64/128 x depth
2/4/6 x 8 seeds = 288 cells, full-batch GD on the mse loss, 200 steps, ``lr="auto"``
(the sweep's default; both sides compute it the same way, per model), exact P at eps = 0.1
on the test points after training only (no init measurement, no laziness). It is timed

- batched, in this process: ``robustlab.sweep.run(..., executor="serial")``; the cells of
  each (width, depth) train together as one vmapped ensemble;
- batched, two worker processes: ``executor="local", workers=2`` (worker start-up and
  dataset generation in the workers included);
- as a plain per-model loop: ``run_group([cell])`` for each cell alone, i.e. the same work
  without batching (no store writes; they take milliseconds). With ``--loop-cells
  stratified`` (the default) the loop runs one seed of every (init, width, depth) and its
  time is scaled by the number of cells; ``--loop-cells all`` runs every cell.

speedup = loop time / batched time (serial, like for like); the local executor's speedup
is reported beside it. Targets (issue 12): at least 4x on the grid, at least 8x over the
cells of width <= 32. Both sides run robustlab's default step: the hand-written batched MLP
step (``train.batched_mlp``) for an ensemble of one cell as for a group; ``--step vmap``
times the ``torch.func`` step instead.

floor_ratio = batched serial time / (the sweep's training FLOPs, 3 x 2 x N x params per step
and model, at the matmul rate of part 2 measured in the same run), overall and by width:
how far the whole batched sweep (lr="auto", measurement and bookkeeping included) is from
the time its training products alone need. Target: at most 1.5.

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

Usage: python benchmarks/bench_sweep.py [--json PATH] [--loop-cells all|stratified]
       [--step auto|vmap]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

import robustlab as rl
from robustlab.sweep import load, load_config
from robustlab.sweep.cells import run_group
from robustlab.training import TrainConfig, train

SPEEDUP_TARGET = 4.0
SMALL_WIDTH, SMALL_SPEEDUP_TARGET = 32, 8.0  # speedup over the cells of width <= 32
FLOOR_TARGET = 1.5
PEAK_TARGET = 0.7


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
    return {r["cell"]: float(r["p_value"]) for r in rows if r.get("at") == "final"}


def bench_speedup(args, tmp: Path) -> dict:
    cfg = load_config(sweep_config(args.steps, args.seeds, args.lr))
    cells = cfg.cells()
    groups = cfg.groups()
    # generate MNIST-1D once before any timing (cached per process; workers pay it themselves)
    run_group([cells[0]])

    ticks: list[float] = []  # the serial executor finishes groups in order
    cpu_ticks: list[float] = []

    def tick(p):
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

    if args.loop_cells == "all":
        loop_cells = cells
    else:  # the first seed of every (init, width, depth)
        first = cfg.seeds[0]
        loop_cells = [c for c in cells if c.seed == first]
    scale = len(cells) / len(loop_cells)
    loop_by_width: dict[int, float] = {}
    loop_cpu_by_width: dict[int, float] = {}
    outcomes = []
    for c in loop_cells:
        dt, dc, (o,) = timed_cpu(lambda c=c: run_group([c]))
        outcomes.append(o)
        loop_by_width[c.width] = loop_by_width.get(c.width, 0.0) + dt * scale
        loop_cpu_by_width[c.width] = loop_cpu_by_width.get(c.width, 0.0) + dc * scale
    t_loop_run = sum(loop_by_width.values()) / scale
    t_loop = t_loop_run * scale
    c_loop = sum(loop_cpu_by_width.values())
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

    # sanity: the loop reproduces the batched numbers
    batched = load(tmp / "serial.db")
    batched_p = dict(zip(batched["cell"], batched["p_value"].astype(float), strict=True))
    loop_p = {k: v for o in outcomes for k, v in final_p(o.rows).items()}
    rel = sorted(abs(loop_p[k] - batched_p[k]) / abs(batched_p[k]) for k in loop_p)
    max_rel, median_rel = rel[-1], rel[len(rel) // 2]
    local = load(tmp / "local.db")
    local_p = dict(zip(local["cell"], local["p_value"].astype(float), strict=True))
    max_rel_local = max(abs(local_p[k] - batched_p[k]) / abs(batched_p[k]) for k in batched_p)
    return {
        "cells": len(cells),
        "groups": len(groups),
        "ensemble_size": max(len(g) for g in groups),
        "n_train": 794,
        "steps": args.steps,
        "lr": args.lr,
        "batched_serial_s": t_serial,
        "batched_serial_cpu_s": c_serial,
        "batched_local_s": t_local,
        "local_workers": args.workers,
        "loop_cells_run": len(loop_cells),
        "loop_measured_s": t_loop_run,
        "loop_s": t_loop,
        "loop_cpu_s": c_loop,
        "loop_scaled": len(loop_cells) != len(cells),
        "loop_method": (
            "run_group([cell]) for every cell"
            if len(loop_cells) == len(cells)
            else f"run_group([cell]) for the first seed of every (init, width, depth), "
            f"{len(loop_cells)} cells, time scaled by {len(cells)}/{len(loop_cells)}"
        ),
        "by_width": {
            str(w): {
                "loop_s": loop_by_width[w],
                "batched_serial_s": batched_by_width[w],
                "speedup": loop_by_width[w] / batched_by_width[w],
                "loop_cpu_s": loop_cpu_by_width[w],
                "batched_serial_cpu_s": batched_cpu_by_width[w],
                "speedup_cpu": loop_cpu_by_width[w] / batched_cpu_by_width[w],
                "train_tflop": flops_by_width[w] / 1e12,
            }
            for w in sorted(loop_by_width)
        },
        "train_tflop": train_flops / 1e12,
        "speedup": t_loop / t_serial,
        "speedup_cpu": c_loop / c_serial,
        f"speedup_width_le_{SMALL_WIDTH}": sum(loop_by_width[w] for w in small)
        / sum(batched_by_width[w] for w in small),
        f"speedup_cpu_width_le_{SMALL_WIDTH}": sum(loop_cpu_by_width[w] for w in small)
        / sum(batched_cpu_by_width[w] for w in small),
        "speedup_local": t_loop / t_local,
        # float32 rounding differs between the vmapped and the single-model step; a few deep
        # cells amplify it over 200 steps (in float64 the two agree to ~1e-12)
        "max_rel_diff_p_loop_vs_batched": max_rel,
        "median_rel_diff_p_loop_vs_batched": median_rel,
        "max_rel_diff_p_local_vs_serial": max_rel_local,
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
    width, in wall time and in CPU time (each against the rate measured the same way)."""
    rate, rate_cpu = out["mm_gflops"] * 1e9, out["mm_gflops_cpu"] * 1e9
    out["compute_floor_s"] = out["train_tflop"] * 1e12 / rate
    out["speedup_bound"] = out["loop_s"] / out["compute_floor_s"]
    out["floor_ratio"] = out["batched_serial_s"] / out["compute_floor_s"]
    out["floor_ratio_cpu"] = out["batched_serial_cpu_s"] / (out["train_tflop"] * 1e12 / rate_cpu)
    for row in out["by_width"].values():
        row["floor_s"] = row["train_tflop"] * 1e12 / rate
        row["floor_ratio"] = row["batched_serial_s"] / row["floor_s"]
        row["floor_ratio_cpu"] = row["batched_serial_cpu_s"] / (
            row["train_tflop"] * 1e12 / rate_cpu
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the results as a JSON object here")
    ap.add_argument("--loop-cells", choices=("stratified", "all"), default="stratified")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--lr", default="auto", help='"auto" (default) or a fixed step')
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads in this process")
    ap.add_argument("--peak-width", type=int, default=1024)
    ap.add_argument("--peak-depth", type=int, default=4)
    ap.add_argument("--peak-points", type=int, default=512)
    ap.add_argument("--peak-steps", type=int, default=10)
    ap.add_argument("--peak-repeats", type=int, default=3)
    ap.add_argument("--skip-speedup", action="store_true", help="run part 2 only")
    args = ap.parse_args()
    args.lr = args.lr if args.lr == "auto" else float(args.lr)
    torch.set_num_threads(args.threads)

    out: dict = {
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "torch": torch.__version__,
        "robustlab": rl.__version__,
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
        small = out[f"speedup_width_le_{SMALL_WIDTH}"]
        checks = [
            ("speedup", out["speedup"], ">=", SPEEDUP_TARGET),
            (f"speedup, width <= {SMALL_WIDTH}", small, ">=", SMALL_SPEEDUP_TARGET),
            ("floor ratio", out["floor_ratio"], "<=", FLOOR_TARGET),
            *checks,
        ]
    out["targets"] = {
        "speedup": SPEEDUP_TARGET,
        f"speedup_width_le_{SMALL_WIDTH}": SMALL_SPEEDUP_TARGET,
        "floor_ratio": FLOOR_TARGET,
        "peak_fraction": PEAK_TARGET,
    }
    passed = [v >= t if op == ">=" else v <= t for _, v, op, t in checks]
    out["pass"] = bool(all(passed))

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
        print(f"{'PASS' if ok else 'FAIL'}  {name} {value:.2f} (target {op} {target:g})")
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
    print(
        f"\nsweep: {out['cells']} cells in {out['groups']} groups of {out['ensemble_size']}, "
        f"mnist1d 2-class (N=794), gd mse, {args.steps} steps, lr={args.lr}"
    )
    print(f"{'run':<40}{'time (s)':>10}{'speedup':>10}{'CPU (s)':>10}{'speedup':>10}")
    print(f"{'per-model loop' + (' (scaled)' if out['loop_scaled'] else ''):<40}", end="")
    print(f"{out['loop_s']:>10.1f}{1.0:>10.1f}{out['loop_cpu_s']:>10.1f}{1.0:>10.1f}")
    print(f"{'batched, serial executor':<40}{out['batched_serial_s']:>10.1f}", end="")
    print(f"{out['speedup']:>10.1f}{out['batched_serial_cpu_s']:>10.1f}{out['speedup_cpu']:>10.1f}")
    print(f"{f'batched, local executor ({args.workers} workers)':<40}", end="")
    print(f"{out['batched_local_s']:>10.1f}{out['speedup_local']:>10.1f}")
    if scaled:
        print(f"loop time measured {out['loop_measured_s']:.1f} s{scaled}")
    print(
        f"\n{'width':<7}{'loop (s)':>9}{'batched (s)':>12}{'speedup':>9}{'CPU speedup':>12}"
        f"{'floor (s)':>10}{'floor ratio':>12}{'(CPU)':>7}"
    )
    for w, r in out["by_width"].items():
        print(
            f"{w:<7}{r['loop_s']:>9.1f}{r['batched_serial_s']:>12.1f}{r['speedup']:>9.1f}"
            f"{r['speedup_cpu']:>12.1f}{r['floor_s']:>10.1f}{r['floor_ratio']:>12.2f}"
            f"{r['floor_ratio_cpu']:>7.2f}"
        )
    print(
        f"relative difference of P, loop vs batched: median "
        f"{out['median_rel_diff_p_loop_vs_batched']:.1e}, max "
        f"{out['max_rel_diff_p_loop_vs_batched']:.1e} (float32); local vs serial: max "
        f"{out['max_rel_diff_p_local_vs_serial']:.1e}"
    )
    print(
        f"the sweep's training alone is {out['train_tflop']:.2f} TFLOP: "
        f"{out['compute_floor_s']:.1f} s at the matmul rate of part 2, so no batching can make "
        f"it more than {out['speedup_bound']:.1f}x faster than the loop on this machine; the "
        f"batched sweep takes {out['floor_ratio']:.2f}x that floor "
        f"({out['floor_ratio_cpu']:.2f}x in CPU time)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
