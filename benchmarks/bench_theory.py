"""Benchmark: the lazy limit's P against training one wide linearized network to convergence.

Data: ``rl.data.load("sphere", n_train=1000, n_test=1000, in_dim=10, teacher="relu")``
(labels +-1); network: bias-free ReLU MLP, He init, depth L = 8, one output; eps = 0.1,
region = ball; CPU.

(a) ``lazy_limit``: ``rl.theory.lazy_limit(x_train, y_train, x_test, init="he", depth=8,
    eps=0.1)`` -- the expected P over initialization of the infinite-width network trained
    to convergence, float64, best of R repeats after a warm-up.
(b) training: ``rl.train(rl.mlp(10, 1024, 8, init="he"), ds,
    rl.TrainConfig(regime="linearized", lr="auto", target_loss=1e-3))`` -- one width-1024
    linearized (Taylor) network, float32, full-batch gradient descent on the mse loss until
    the training loss reaches 1e-3 (the C3/C4 presets' target). One step costs about three
    passes of a 7.3M-parameter network over 1,000 points, and convergence takes thousands
    of steps, so by default the run is *extrapolated*: the set-up (the ``lr="auto"`` power
    iteration) and the per-step time are measured on short runs, and the number of steps
    to the target is predicted from the infinite-width training curve

        E loss(t) = (1 / 2N) sum_i (1 - z_i)^(2t) ((U^T y)_i^2 + (U^T K U)_ii),
        Theta = U diag(lambda) U^T,  z_i = lr lambda_i / N,  lr = N / lambda_max

    (Theta, K the NTK and NNGP on the training points); the network's measured loss after
    the timed steps is printed beside the curve's value as a check. The extrapolation is
    an underestimate: a finite network converges more slowly than the infinite-width curve
    (with ``--quick --full`` on 2 cores: 930 steps against the curve's 694), so the ratio
    is conservative. ``--full`` trains for real to the target (capped at ``--max-steps``)
    and reports the measured time instead.

    ratio = training time / lazy_limit time        (target >= 20)

(c) the mean alone: ``lazy_limit(..., parts=("mean",))`` -- the kernel-regression part
    (mean gradient mu = G A y, ``p_kernel``), what sweeps of the mean function need --
    against the full ``lazy_limit`` (a), on the same data in d = 10 and d = 784 (sphere,
    relu teacher), He, depth 8, N = 1000 training and test points (300 with --quick);
    best of R repeats after a warm-up (the full one at d = 784 once: ~30 s, ~20 GB).

    mean_speedup = full lazy_limit time / mean-only time      (target >= 5, each d)

(d) kernels (``--kernels``, instead of (a)-(c)): ``rl.theory.nngp(x, None, "he", 8)`` and
    ``rl.theory.ntk(x, None, "he", 8, 1024)`` for N = 1000 and 2048 standard Gaussian
    points in d = 784 against themselves, float64, median of 5 calls after a warm-up
    (--quick: N = 1000 only, 3 calls, N = 4000 below). Target: each <= 0.5 s at N = 1000.
    Then N = 10,000 (``--big N``; 0 skips it) in a fresh process, reporting both times and
    that process's peak RSS (VmHWM, else getrusage) against the 800 MB output: nngp / ntk
    evaluate in row blocks, so their temporaries stay bounded. Accuracy: the max relative
    error against the recursion in 50-digit arithmetic (mpmath) on the diagonal, near it
    (x + h delta, h = 1e-9 .. 1e-3) and off it.
    Where neural-tangents is importable, its ``stax.serial(Dense(1024, W_std, b_std=None,
    parameterization='standard'), Relu(), ..., Dense(1, ...))`` kernel_fn, jitted, float64
    (jax_enable_x64), is timed on the same points in the same run (after its compile) and
    compared: W_std^2 = s_l * fan_in with s_l the He variances, so both compute the same
    kernels (the table shows their max relative difference off and on the diagonal, and
    the mpmath line NT's own error: NT takes arccos of the rounded cosine, so its NTK is
    off by ~1e-8 on the diagonal). XLA uses every core, torch ``--threads`` (default: all).
    NT is never a robustlab dependency; its environment (CPython 3.11, Linux x86-64, torch
    the CPU build that robustlab's environment has):

        python3 -m venv /tmp/ntenv
        /tmp/ntenv/bin/pip install neural-tangents==0.6.5 jax==0.4.30 jaxlib==0.4.30 \
            tensorflow-cpu==2.17.1 numpy==1.26.4 torch==2.13.0
        PYTHONPATH=src /tmp/ntenv/bin/python benchmarks/bench_theory.py --kernels \
            --json kernels.json

    (robustlab's own imports need only torch and numpy there; TF_CPP_MIN_LOG_LEVEL=3
    quiets TensorFlow's start-up lines). Run by robustlab's own python, the script times
    robustlab alone.

Usage: python benchmarks/bench_theory.py [--quick] [--full] [--json PATH] [--threads T]
       python benchmarks/bench_theory.py --kernels [--quick] [--big N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

import robustlab as rl
from robustlab.theory import lazy_limit, nngp, ntk
from robustlab.theory.kernels import layer_variances

TARGET_RATIO = 20.0
MEAN_TARGET = 5.0  # (c): full lazy_limit / mean-only path
MEAN_DIMS = (10, 784)


def steps_to_target(ds, depth: int, target: float) -> tuple[int, Callable[[int], float]]:
    """Steps of GD (lr = N / lambda_max) for the infinite-width expected loss to reach target."""
    x, y = ds.x_train.double(), ds.y_train.double()
    n = x.shape[0]
    lam, u = torch.linalg.eigh(ntk(x, x, "he", depth, 1024))
    lam = lam.clamp(min=0.0)
    z = lam / lam[-1]
    uy2 = (u.T @ y).pow(2)
    uku = (u.T @ nngp(x, x, "he", depth) @ u).diagonal()

    def loss(t: int) -> float:
        return float(0.5 / n * ((1 - z).pow(2 * t) * (uy2 + uku)).sum())

    lo, hi = 0, 1
    while loss(hi) > target:
        lo, hi = hi, hi * 2
        if hi > 10**9:
            raise RuntimeError("the infinite-width loss never reaches the target")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if loss(mid) > target else (lo, mid)
    return hi, loss


def timed(fn, repeats: int = 1) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def mean_case(n: int, d: int, depth: int, eps: float, repeats: int) -> dict:
    """(c) at dimension d: the full lazy_limit and the mean-only path, timed on the same data."""
    ds = rl.data.load("sphere", n_train=n, n_test=n, in_dim=d, seed=0, teacher="relu")
    ds = ds.to(dtype=torch.float64)
    args, kw = (ds.x_train, ds.y_train, ds.x_test), {"init": "he", "depth": depth, "eps": eps}

    def mean():
        return lazy_limit(*args, parts=("mean",), **kw)

    mean()  # warm-up
    mean_t, m = timed(mean, repeats)
    full_t, f = timed(lambda: lazy_limit(*args, **kw), 1 if d > 100 else repeats)
    diff = (m.grad_mean - f.grad_mean).abs().max() / f.grad_mean.abs().max()
    return {
        "in_dim": d,
        "full_time_s": full_t,
        "mean_time_s": mean_t,
        "mean_speedup": full_t / mean_t,
        "p": f.p,
        "p_kernel": m.p_kernel,
        "p_kernel_full": f.p_kernel,
        "grad_mean_max_rel_diff": float(diff),
    }


# ----------------------------------------------------------------------------- (d) kernels
KERNEL_TARGET_S = 0.5  # (d): NNGP and NTK, N = 1000, d = 784, depth 8, float64, each
KERNEL_D, KERNEL_DEPTH, KERNEL_WIDTH = 784, 8, 1024


def kernel_inputs(n: int, seed: int = 0) -> torch.Tensor:
    """(n, 784) standard Gaussian points, float64 (norms ~28, cosines ~N(0, 1/784))."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, KERNEL_D, generator=gen, dtype=torch.float64)


def median_time(fn, repeats: int) -> tuple[float, list[float], object]:
    """Median wall time of ``repeats`` calls after one warm-up call, all times, a result."""
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def mp_kernels(x: list[float], y: list[float], s: list[float], v: list[float], m: int):
    """(NNGP, NTK) in 50-digit arithmetic (robustlab.theory._highprec), as floats."""
    from robustlab.theory._highprec import arccos_kernels

    k, theta = arccos_kernels(x, y, s, v, m)
    return float(k), float(theta)


def reference_pairs(x: torch.Tensor) -> dict[str, list[tuple[int, torch.Tensor]]]:
    """Pairs (row i of x, a point) checked against mpmath: the diagonal, x_i + h delta at
    h = 1e-9, 1e-6, 1e-3 (near it) and other rows of x (off it)."""
    gen = torch.Generator().manual_seed(1)
    delta = torch.randn(KERNEL_D, generator=gen, dtype=torch.float64)
    return {
        "diagonal": [(i, x[i]) for i in (0, 1, 2)],
        "near": [(i, x[i] + h * delta) for i, h in ((3, 1e-9), (4, 1e-6), (5, 1e-3))],
        "off": [(i, x[j]) for i, j in ((0, 1), (2, 7), (10, 500))],
    }


def agreement(x: torch.Tensor, evaluate) -> dict[str, dict[str, float]]:
    """Max relative error against :func:`mp_kernels` per pair kind and kernel, where
    ``evaluate(a, b)`` returns (NNGP, NTK) of rows a (n, d), b (1, d) as two (n,) arrays."""
    s, v = layer_variances("he", KERNEL_D, KERNEL_WIDTH, KERNEL_DEPTH)
    out = {}
    for kind, pairs in reference_pairs(x).items():
        err = {"nngp": 0.0, "ntk": 0.0}
        for i, y in pairs:
            got = evaluate(x[i : i + 1], y[None])
            want = mp_kernels(x[i].tolist(), y.tolist(), s, v, KERNEL_WIDTH)
            for name, g, w in zip(("nngp", "ntk"), got, want, strict=True):
                err[name] = max(err[name], abs(float(g[0]) - w) / abs(w))
        out[kind] = err
    return out


def neural_tangents_fns():
    """NT's kernel_fn for the same network, jitted, as (nngp(x), ntk(x), evaluate(a, b),
    versions); or a string saying why not. stax.Dense(parameterization='standard') draws
    W ~ N(0, W_std^2 / fan_in), so W_std^2 = s_l * fan_in; no biases (b_std=None)."""
    try:
        import jax
        import neural_tangents as nt
        from neural_tangents import stax
    except ImportError as e:
        return f"neural-tangents not importable here ({e})"
    jax.config.update("jax_enable_x64", True)
    s, _ = layer_variances("he", KERNEL_D, KERNEL_WIDTH, KERNEL_DEPTH)
    fan_in = [KERNEL_D] + [KERNEL_WIDTH] * (KERNEL_DEPTH - 1)
    layers = []
    for l in range(KERNEL_DEPTH):
        out_dim = 1 if l == KERNEL_DEPTH - 1 else KERNEL_WIDTH
        w_std = math.sqrt(s[l] * fan_in[l])
        layers.append(stax.Dense(out_dim, W_std=w_std, b_std=None, parameterization="standard"))
        if l < KERNEL_DEPTH - 1:
            layers.append(stax.Relu())
    kernel_fn = jax.jit(stax.serial(*layers)[2], static_argnames="get")

    def run(a, b, get):
        x1 = jax.numpy.asarray(a.numpy())
        x2 = None if b is None else jax.numpy.asarray(b.numpy())
        return kernel_fn(x1, x2, get=get).block_until_ready()

    def evaluate(a, b):
        return [torch.from_numpy(np.array(run(a, b, g))[:, 0]) for g in ("nngp", "ntk")]

    versions = {"neural_tangents": nt.__version__, "jax": jax.__version__}
    return (lambda x: run(x, None, "nngp"), lambda x: run(x, None, "ntk"), evaluate, versions)


def peak_rss_kib() -> tuple[int, str]:
    """This process's peak resident set size in KiB and where it was read: VmHWM in
    /proc/self/status (Linux; it starts afresh at exec), else resource.getrusage's
    ru_maxrss (KiB on Linux), which after a fork and exec still holds the parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]), "VmHWM"
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"


def kernel_child(n: int) -> None:
    """One blocked run at N = n in this (fresh) process: prints a JSON line with the times
    and this process's peak RSS before and after the run (:func:`peak_rss_kib`)."""
    x = kernel_inputs(n)
    ntk(x[:300], x[:1000], "he", KERNEL_DEPTH, KERNEL_WIDTH)  # one-time set-up, 3 blocks
    base, source = peak_rss_kib()
    t0 = time.perf_counter()
    k = nngp(x, None, "he", KERNEL_DEPTH)
    t1 = time.perf_counter()
    corner = k[:4, :4].clone()
    del k
    t2 = time.perf_counter()
    th = ntk(x, None, "he", KERNEL_DEPTH, KERNEL_WIDTH)
    t3 = time.perf_counter()
    peak, _ = peak_rss_kib()
    # spot check: the first rows against small calls (one block each), max relative diff
    small = ntk(x[:4], x, "he", KERNEL_DEPTH, KERNEL_WIDTH)
    check = float(((th[:4] - small).abs() / small.abs()).max())
    check_k = float(((corner - nngp(x[:4], x[:4], "he", KERNEL_DEPTH)).abs() / corner).max())
    print(
        json.dumps(
            {
                "n": n,
                "nngp_time_s": t1 - t0,
                "ntk_time_s": t3 - t2,
                "rss_before_kib": base,
                "rss_peak_kib": peak,
                "rss_source": source,
                "output_bytes": th.numel() * th.element_size(),
                "rows_vs_small_call_max_rel": max(check, check_k),
                "finite": bool(torch.isfinite(th).all()),
                "threads": torch.get_num_threads(),
            }
        )
    )


def big_run(n: int, threads: int) -> dict:
    """:func:`kernel_child` in a fresh interpreter, so its peak RSS is this run's alone."""
    cmd = [sys.executable, __file__, "--kernel-child", str(n), "--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    res = json.loads(done.stdout.strip().splitlines()[-1])
    res["rss_peak_mib"] = res["rss_peak_kib"] / 1024
    res["rss_growth_mib"] = (res["rss_peak_kib"] - res["rss_before_kib"]) / 1024
    res["output_mib"] = res["output_bytes"] / 2**20
    return res


def kernel_case(quick: bool, big: int) -> dict:
    """(d): NNGP and NTK of x against itself, robustlab and (where importable) NT."""
    sizes = (1000,) if quick else (1000, 2048)
    repeats = 3 if quick else 5
    nt_fns = neural_tangents_fns()
    rows = []
    for n in sizes:
        x = kernel_inputs(n)
        ours = {
            "nngp": lambda x=x: nngp(x, None, "he", KERNEL_DEPTH),
            "ntk": lambda x=x: ntk(x, None, "he", KERNEL_DEPTH, KERNEL_WIDTH),
        }
        for name, fn in ours.items():
            t, times, out = median_time(fn, repeats)
            row = {"kernel": name, "n": n, "time_s": t, "times_s": times}
            if not isinstance(nt_fns, str):
                nt_fn = nt_fns[0] if name == "nngp" else nt_fns[1]
                t_nt, times_nt, out_nt = median_time(lambda nt_fn=nt_fn, x=x: nt_fn(x), repeats)
                ref = torch.from_numpy(np.array(out_nt))  # a writable copy
                rel = (ref - out).abs() / out.abs()
                eye = torch.eye(n, dtype=torch.bool)
                row |= {
                    "nt_time_s": t_nt,
                    "nt_times_s": times_nt,
                    "nt_over_ours": t_nt / t,
                    "nt_max_rel_diff_off_diagonal": float(rel[~eye].max()),
                    "nt_max_rel_diff_diagonal": float(rel[eye].max()),
                }
            rows.append(row)
    x = kernel_inputs(sizes[0])

    def ours_pairs(a, b):
        return (
            nngp(a, b, "he", KERNEL_DEPTH)[:, 0],
            ntk(a, b, "he", KERNEL_DEPTH, KERNEL_WIDTH)[:, 0],
        )

    agree = {"robustlab": agreement(x, ours_pairs)}
    if not isinstance(nt_fns, str):
        agree["neural_tangents"] = agreement(x, nt_fns[2])
    at_1000 = {r["kernel"]: r["time_s"] for r in rows if r["n"] == 1000}
    return {
        "rows": rows,
        "target_s": KERNEL_TARGET_S,
        "pass": all(t <= KERNEL_TARGET_S for t in at_1000.values()),
        "agreement_max_rel_err": agree,
        "big": big_run(big, torch.get_num_threads()) if big else None,
        "neural_tangents": nt_fns[3] if not isinstance(nt_fns, str) else nt_fns,
        "config": {
            "in_dim": KERNEL_D,
            "depth": KERNEL_DEPTH,
            "width": KERNEL_WIDTH,
            "init": "he",
            "dtype": "float64",
            "repeats": repeats,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "robustlab": rl.__version__,
            "machine": platform.machine(),
            "processor": platform.processor(),
        },
    }


def print_kernel_case(res: dict) -> None:
    cfg = res["config"]
    print(
        f"robustlab bench_theory kernels: x vs itself, d={cfg['in_dim']}, depth "
        f"{cfg['depth']}, He, width {cfg['width']} (NTK), float64, CPU, {cfg['threads']} "
        f"threads, torch {cfg['torch']}, median of {cfg['repeats']} after a warm-up"
    )
    nt = res["neural_tangents"]
    print(nt if isinstance(nt, str) else ", ".join(f"{k} {v}" for k, v in nt.items()))
    head = f"{'kernel':<8}{'N':>7}{'robustlab (s)':>16}{'NT jit (s)':>14}{'NT/ours':>12}"
    head += f"{'NT vs ours off-diag / diag (rel)':>36}"
    print(head)
    print("-" * len(head))
    for r in res["rows"]:
        line = f"{r['kernel']:<8}{r['n']:>7}{r['time_s']:>16.3f}"
        if "nt_time_s" in r:
            diff = f"{r['nt_max_rel_diff_off_diagonal']:.1e} / {r['nt_max_rel_diff_diagonal']:.1e}"
            line += f"{r['nt_time_s']:>14.3f}{r['nt_over_ours']:>11.2f}x{diff:>36}"
        print(line)
    verdict = "PASS" if res["pass"] else "FAIL"
    print(f"{verdict} NNGP and NTK at N = 1000 each <= {res['target_s']:g} s")
    for who, kinds in res["agreement_max_rel_err"].items():
        parts = [f"{k} {e['nngp']:.1e} / {e['ntk']:.1e}" for k, e in kinds.items()]
        print(f"vs 50-digit mpmath, max rel err NNGP / NTK, {who}: " + "; ".join(parts))
    big = res["big"]
    if big:
        print(
            f"blocked N={big['n']}: NNGP {big['nngp_time_s']:.1f} s, NTK {big['ntk_time_s']:.1f} "
            f"s; peak RSS ({big['rss_source']}) {big['rss_peak_mib']:.0f} MiB "
            f"(+{big['rss_growth_mib']:.0f} MiB "
            f"during the run, output {big['output_mib']:.0f} MiB); first rows vs a small "
            f"call: {big['rows_vs_small_call_max_rel']:.1e} rel"
        )


def kernel_main(a: argparse.Namespace) -> None:
    if a.kernel_child:
        kernel_child(a.kernel_child)
        return
    res = kernel_case(a.quick, a.big)
    print_kernel_case(res)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"kernels": res}, f, indent=2)
        print(f"wrote {a.json}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="N = 300 points, 2 repeats")
    p.add_argument("--full", action="store_true", help="train to the target for real")
    p.add_argument("--max-steps", type=int, default=20_000, help="cap for --full")
    p.add_argument("--json", metavar="PATH", help="write the results as a JSON object")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--kernels", action="store_true", help="run (d), the kernel case, only")
    p.add_argument("--big", type=int, default=None, help="(d): N of the blocked run (10000)")
    p.add_argument("--kernel-child", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.kernels or a.kernel_child:
        if a.big is None:
            a.big = 4000 if a.quick else 10_000
        kernel_main(a)
        return

    n, width, depth, eps, target = (300 if a.quick else 1000), 1024, 8, 0.1, 1e-3
    repeats = 2 if a.quick else 3
    s1, s2 = 2, (12 if a.quick else 22)  # short runs whose difference gives the step time
    ds = rl.data.load("sphere", n_train=n, n_test=n, in_dim=10, seed=0, teacher="relu")
    ds64 = ds.to(dtype=torch.float64)

    # (a) the limit
    def limit():
        return lazy_limit(ds64.x_train, ds64.y_train, ds64.x_test, init="he", depth=depth, eps=eps)

    limit()  # warm-up
    limit_t, res = timed(limit, repeats)
    # (c) the mean-only path against the full one
    means = [mean_case(n, d, depth, eps, repeats) for d in MEAN_DIMS]
    mean_speedup = min(c["mean_speedup"] for c in means)

    # (b) one linearized network
    def net():
        return rl.mlp(10, width, depth, init="he", generator=torch.Generator().manual_seed(0))

    def run(steps: int, lr):
        cfg = rl.TrainConfig(regime="linearized", steps=steps, lr=lr, target_loss=target)
        return rl.train(net(), ds, cfg)

    auto_t, first = timed(lambda: run(1, "auto"))
    lr = first.lr
    # same configuration as a real run (lr="auto": its power iteration cancels in t2 - t1,
    # its loss-rise check per step does not)
    t1, _ = timed(lambda: run(s1, "auto"), repeats)
    t2, short = timed(lambda: run(s2, "auto"), repeats)
    step_t = (t2 - t1) / (s2 - s1)
    t_star, curve = steps_to_target(ds, depth, target)
    measured = None
    if a.full:
        full_t, full = timed(lambda: run(a.max_steps, "auto"))
        measured = {
            "time_s": full_t,
            "steps": full.steps,
            "final_loss": full.history["loss"][-1],
            "reached_target": full.history["loss"][-1] <= target,
        }
        train_t = full_t
    else:
        train_t = auto_t + (t_star - 1) * step_t
    ratio = train_t / limit_t

    print(
        f"robustlab bench_theory: sphere d=10 N={n} train / {n} test, He, depth {depth}, "
        f"eps={eps}, CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    head = f"{'what':<44}{'time (s)':>12}{'result':>30}"
    print(head)
    print("-" * len(head))
    print(f"{'lazy_limit (m = inf, converged, float64)':<44}{limit_t:>12.3f}{res.p:>30.5f}")
    lr_text = f"lr = {lr:.4g}"
    print(f"{'train set-up + 1 step (lr=auto)':<44}{auto_t:>12.2f}{lr_text:>30}")
    print(f"{'train: one step, width 1024 (float32)':<44}{step_t:>12.3f}{'':>30}")
    how = "measured (--full)" if a.full else f"{t_star} steps (extrapolated)"
    print(f"{'train to loss 1e-3':<44}{train_t:>12.1f}{how:>30}")
    print(
        f"check: network loss after {s2} steps {short.history['loss'][-1]:.4f}, "
        f"infinite-width curve {curve(s2):.4f}; the curve reaches {target:g} at step {t_star}"
    )
    if measured:
        print(
            f"full run: {measured['steps']} steps, final loss {measured['final_loss']:.3g}, "
            f"reached target: {measured['reached_target']}"
        )
    verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    print(f"{verdict} ratio {ratio:.0f}x (target >= {TARGET_RATIO:g}x)")
    print(f"{'(c) lazy limit, mean only':<44}{'full (s)':>12}{'mean (s)':>12}{'speedup':>18}")
    for c in means:
        what = f"d={c['in_dim']}: p / p_kernel {c['p']:.4f} / {c['p_kernel']:.4f}"
        print(f"{what:<44}{c['full_time_s']:>12.3f}{c['mean_time_s']:>12.3f}", end="")
        print(f"{c['mean_speedup']:>17.1f}x")
    verdict = "PASS" if mean_speedup >= MEAN_TARGET else "FAIL"
    at = "at each d" + (", for N = 1000" if a.quick else "")
    print(f"{verdict} mean_speedup {mean_speedup:.1f}x (target >= {MEAN_TARGET:g}x {at})")

    if a.json:
        out = {
            "ratio": ratio,
            "ratio_target": TARGET_RATIO,
            "ratio_pass": ratio >= TARGET_RATIO,
            "lazy_limit_time_s": limit_t,
            "lazy_limit_p": res.p,
            "lazy_limit_p_stderr": res.p_stderr,
            "lazy_limit_jitter": res.jitter,
            "train_time_s": train_t,
            "train_extrapolated": not a.full,
            "train_setup_and_first_step_s": auto_t,
            "train_step_s": step_t,
            "train_lr": lr,
            "steps_to_target_predicted": t_star,
            "train_loss_after_timed_steps": short.history["loss"][-1],
            "curve_loss_after_timed_steps": curve(s2),
            "full_run": measured,
            "mean_speedup": mean_speedup,
            "mean_speedup_target": MEAN_TARGET,
            "mean_speedup_pass": mean_speedup >= MEAN_TARGET,
            "lazy_mean": means,
            "config": {
                "n_train": n,
                "n_test": n,
                "in_dim": 10,
                "width": width,
                "depth": depth,
                "init": "he",
                "eps": eps,
                "target_loss": target,
                "threads": torch.get_num_threads(),
                "quick": a.quick,
                "torch": torch.__version__,
                "robustlab": rl.__version__,
                "machine": platform.machine(),
                "processor": platform.processor(),
            },
        }
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
