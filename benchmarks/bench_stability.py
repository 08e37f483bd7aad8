"""Benchmark: exact perturbation stability against Monte Carlo at equal accuracy.

Network: bias-free ReLU MLP, d = 784, width m = 1024, depth L = 4, k = 1, float32, CPU;
2,000 evaluation points uniform on the unit sphere; eps = 0.1, region = ball.

(a) ``exact``: P over all points (one input gradient per point), best of R repeats after
    a warm-up.
(b) ``mc``: JVP Monte Carlo run to the same per-point accuracy, a 1% relative standard
    error on each point's value. A pilot (256 samples per point on a few points) measures
    the coefficient of variation CV of ||J delta|| per point; the run uses
    n = ceil((CV / 0.01)^2) samples. That many samples on all 2,000 points would take hours
    on a laptop CPU, so mc is timed on a subset of points and scaled linearly to 2,000
    (mc's cost is linear in points x samples); the achieved median per-point relative
    standard error of the timed run is reported (it should be <= ~1%).
(c) matmul FLOP rate: the GEMMs exact performs (forward x @ W^T per layer, backward
    grad @ W per layer, same shapes), timed back to back, best of R repeats, interleaved
    with the exact repeats so that both see the same machine load.

    speedup       = mc time for 2,000 points / exact time           (target >= 50)
    peak_fraction = exact FLOPs / exact time / matmul FLOP rate      (target >= 0.70)

with exact FLOPs = 2 (multiply-add) * 2 (forward + input-gradient backward) * N
* (d m + (L - 2) m^2 + m k).

A second case, a 10-class CNN (k = 10, where ``exact`` does not apply):

    rl.cnn((3, 16, 16), width 32, depth 4 (3 convolutions + head), out_dim 10, He init,
    float32 CPU; 200 points uniform in [0, 1]^(3x16x16) (d = 768); eps = 0.1, ball.

``jacobian`` (10 reverse passes per point, then Monte Carlo on J) against ``mc`` (JVPs) at
equal per-point accuracy: both estimate the same E ||J delta||, whose per-point coefficient
of variation CV a jacobian pilot measures; both then use n = ceil((CV / 0.01)^2) samples,
a 1% relative standard error per point. jacobian runs on all points (best of R after a
warm-up); mc is timed on a subset in the same run and scaled linearly to all points.

    cnn_ratio = mc time for all points / jacobian time                (target >= 10)

Usage: python benchmarks/bench_stability.py [--quick] [--json PATH] [--threads T]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Callable

import torch

import robustlab as rl
from robustlab.metrics.at_init import sphere_points

TARGET_SPEEDUP = 50.0
TARGET_CNN_RATIO = 10.0
TARGET_PEAK = 0.70
REL_SE_TARGET = 0.01


def best_times(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict:
    """Best wall time of each function over ``repeats`` rounds, after ``warmup`` rounds.

    The functions run interleaved (round-robin), so a burst of load from other processes
    hits all of them alike; the best of several rounds is the least-disturbed one.
    Returns {name: (best, [all times])}.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: (min(ts), ts) for name, ts in times.items()}


def gemms(n: int, d: int, m: int, depth: int, k: int) -> tuple[Callable[[], None], int]:
    """The forward and input-gradient GEMMs of the exact path, as one callable, and FLOPs."""
    gen = torch.Generator().manual_seed(1)
    dims = [d] + [m] * (depth - 1) + [k]
    ws = [torch.randn(dims[i + 1], dims[i], generator=gen) for i in range(depth)]  # (out, in)
    xs = [torch.randn(n, dims[i], generator=gen) for i in range(depth)]  # layer inputs
    gs = [torch.randn(n, dims[i + 1], generator=gen) for i in range(depth)]  # output grads
    flops = sum(2 * 2 * n * dims[i] * dims[i + 1] for i in range(depth))

    def run() -> None:
        for x, w in zip(xs, ws, strict=True):  # forward, as nn.Linear: (n, in) @ (in, out)
            torch.mm(x, w.t())
        for g, w in zip(reversed(gs), reversed(ws), strict=True):  # backward: (n, out) @ (out, in)
            torch.mm(g, w)

    return run, flops


def cnn_case(quick: bool, repeats: int) -> dict:
    """jacobian against mc at equal per-point accuracy on a 10-class CNN (docstring above)."""
    shape, width, depth, k, eps = (3, 16, 16), 32, 4, 10, 0.1
    n_points, mc_points = (50, 4) if quick else (200, 8)
    net = rl.cnn(shape, width, depth, k, init="he", generator=torch.Generator().manual_seed(0))
    x = torch.rand(n_points, *shape, generator=torch.Generator().manual_seed(1))

    def run(method: str, pts: torch.Tensor, n: int, seed: int) -> rl.StabilityResult:
        gen = torch.Generator().manual_seed(seed)
        return rl.perturbation_stability(net, pts, eps, method=method, n_samples=n, generator=gen)

    pilot = run("jacobian", x, 1024, 2)  # cheap: no network pass per sample
    cv = float((pilot.per_point_stderr * math.sqrt(1024) / pilot.per_point).median())
    n = math.ceil((cv / REL_SE_TARGET) ** 2)
    res: dict[str, rl.StabilityResult] = {}

    def jac() -> None:
        res["jacobian"] = run("jacobian", x, n, 3)

    def mc() -> None:
        res["mc"] = run("mc", x[:mc_points], n, 4)

    jac_t, jac_times = best_times({"jacobian": jac}, repeats, warmup=1)["jacobian"]
    run("mc", x[:1], 8, 5)  # warm-up of forward-mode AD
    mc_sub_t, mc_times = best_times({"mc": mc}, 1 if quick else 2, warmup=0)["mc"]
    mc_t = mc_sub_t * n_points / mc_points
    ratio = mc_t / jac_t
    j, m = res["jacobian"], res["mc"]
    rel = {name: float((r.per_point_stderr / r.per_point).median()) for name, r in res.items()}
    se = (m.per_point_stderr.pow(2) + j.per_point_stderr[:mc_points].pow(2)).sum().sqrt()
    z = float((m.per_point - j.per_point[:mc_points]).mean() / (se / mc_points))
    print()
    print(
        f"CNN case: rl.cnn({shape}, width={width}, depth={depth}, out_dim={k}) d=768 k={k}, "
        f"eps={eps}, ball; pilot CV {cv:.4f} -> n_samples = {n} for a 1% per-point SE"
    )
    print(f"{'method':<22}{'points':>8}{'samples':>9}{'time (s)':>12}{'rel SE/pt':>12}")
    for name, pts, t, r in (
        ("jacobian", n_points, jac_t, rel["jacobian"]),
        ("mc (timed)", mc_points, mc_sub_t, rel["mc"]),
        ("mc (extrapolated)", n_points, mc_t, rel["mc"]),
    ):
        print(f"{name:<22}{pts:>8}{n:>9}{t:>12.4f}{r:>12.2%}")
    print(f"mc - jacobian on the timed points: {z:+.2f} SE")
    verdict = "PASS" if ratio >= TARGET_CNN_RATIO else "FAIL"
    print(f"{verdict} cnn_ratio {ratio:.0f}x (target >= {TARGET_CNN_RATIO:g}x)")
    return {
        "cnn_ratio": ratio,
        "cnn_ratio_target": TARGET_CNN_RATIO,
        "cnn_ratio_pass": ratio >= TARGET_CNN_RATIO,
        "jacobian_time_s": jac_t,
        "jacobian_times_s": jac_times,
        "mc_time_s": mc_t,
        "mc_extrapolated": True,
        "mc_points_timed": mc_points,
        "mc_time_timed_points_s": mc_sub_t,
        "mc_times_timed_points_s": mc_times,
        "n_samples": n,
        "pilot_cv_median": cv,
        "jacobian_rel_stderr_median": rel["jacobian"],
        "mc_rel_stderr_median": rel["mc"],
        "mc_minus_jacobian_z": z,
        "jacobian_value": j.value,
        "config": {"in_shape": shape, "width": width, "depth": depth, "out_dim": k,
                   "points": n_points, "eps": eps, "region": "ball"},
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="500 points, mc on 4 points, 3 repeats")
    p.add_argument("--json", metavar="PATH", help="write the results as a JSON object")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)

    d, m, depth, k, eps, region = 784, 1024, 4, 1, 0.1, "ball"
    n_points = 500 if a.quick else 2000
    mc_points = 4 if a.quick else 12
    pilot_samples = 128 if a.quick else 256
    repeats = 3 if a.quick else 7
    mc_repeats = 1 if a.quick else 2

    net = rl.mlp(d, m, depth, k, init="he", generator=torch.Generator().manual_seed(0))
    x = sphere_points(n_points, d, generator=torch.Generator().manual_seed(1))

    # (a) exact over all points and (c) the same GEMMs alone, timed interleaved
    gemm_run, gemm_flops = gemms(n_points, d, m, depth, k)
    timed = best_times(
        {
            "exact": lambda: rl.perturbation_stability(net, x, eps, method="exact", region=region),
            "gemm": gemm_run,
        },
        repeats,
        warmup=2,
    )
    exact_t, exact_times = timed["exact"]
    rate_t, gemm_times = timed["gemm"]
    rate = gemm_flops / rate_t
    exact = rl.perturbation_stability(net, x, eps, method="exact", region=region)
    flops_per_point = 2 * (d * m + (depth - 2) * m * m + m * k)  # one forward, multiply-add
    exact_flops = 2 * flops_per_point * n_points  # forward + input-gradient backward

    # (b) mc: pilot for n_samples, then the timed run on a subset
    xs = x[:mc_points]
    pilot = rl.perturbation_stability(
        net,
        xs,
        eps,
        method="mc",
        region=region,
        n_samples=pilot_samples,
        generator=torch.Generator().manual_seed(2),
    )
    cv = pilot.per_point_stderr * math.sqrt(pilot_samples) / pilot.per_point  # (P,)
    pilot_cv = float(cv.median())
    n_samples = math.ceil((pilot_cv / REL_SE_TARGET) ** 2)
    mc_res: list[rl.StabilityResult] = []

    def run_mc() -> None:
        mc_res.append(
            rl.perturbation_stability(
                net,
                xs,
                eps,
                method="mc",
                region=region,
                n_samples=n_samples,
                generator=torch.Generator().manual_seed(3),
            )
        )

    # warm-up on one point with few samples, then time the full subset
    rl.perturbation_stability(net, xs[:1], eps, method="mc", n_samples=64)
    mc_sub_t, mc_sub_times = best_times({"mc": run_mc}, mc_repeats, warmup=0)["mc"]
    mc = mc_res[-1]
    rel_se = mc.per_point_stderr / mc.per_point
    mc_rel_se_median, mc_rel_se_max = float(rel_se.median()), float(rel_se.max())
    mc_t = mc_sub_t * n_points / mc_points  # linear in points (x samples, fixed here)
    mc_flops_sub = 2 * flops_per_point * mc_points * n_samples  # primal + tangent forward
    # the exact and mc values agree (exact on the same subset, within the mc error)
    exact_sub = exact.per_point[:mc_points]
    mc_vs_exact_z = float(
        (mc.per_point - exact_sub).mean() / (mc.per_point_stderr.pow(2).sum().sqrt() / mc_points)
    )

    speedup = mc_t / exact_t
    exact_rate = exact_flops / exact_t
    peak_fraction = exact_rate / rate

    print(
        f"robustlab bench_stability: d={d} m={m} L={depth} k={k} float32 CPU, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, eps={eps}, {region}"
    )
    cols = ("points", 8), ("samples", 9), ("time (s)", 12), ("rel SE/pt", 12), ("FLOP/s", 11)
    head = f"{'method':<22}" + "".join(f"{c:>{w}}" for c, w in cols)
    print(head)
    print("-" * len(head))
    print(f"{'exact':<22}{n_points:>8}{'-':>9}{exact_t:>12.4f}{0.0:>12.2%}{exact_rate:>11.3g}")
    print(
        f"{'mc (timed)':<22}{mc_points:>8}{n_samples:>9}{mc_sub_t:>12.3f}"
        f"{mc_rel_se_median:>12.2%}{mc_flops_sub / mc_sub_t:>11.3g}"
    )
    print(
        f"{'mc (extrapolated)':<22}{n_points:>8}{n_samples:>9}{mc_t:>12.1f}"
        f"{mc_rel_se_median:>12.2%}{mc_flops_sub / mc_sub_t:>11.3g}"
    )
    print(f"{'matmul (same GEMMs)':<22}{n_points:>8}{'-':>9}{rate_t:>12.4f}{'':>12}{rate:>11.3g}")
    print(
        f"pilot: {pilot_samples} samples on {mc_points} points, median CV of ||J delta|| "
        f"{pilot_cv:.4f} -> n_samples = (CV/{REL_SE_TARGET})^2 = {n_samples}; achieved "
        f"per-point rel SE median {mc_rel_se_median:.3%}, max {mc_rel_se_max:.3%}"
    )
    print(
        f"mc timed on {mc_points} of {n_points} points and scaled linearly "
        f"(x {n_points / mc_points:g}); mc - exact on those points: {mc_vs_exact_z:+.2f} SE"
    )
    ok_speed, ok_peak = speedup >= TARGET_SPEEDUP, peak_fraction >= TARGET_PEAK
    verdict = {True: "PASS", False: "FAIL"}
    print(f"{verdict[ok_speed]} speedup {speedup:.0f}x (target >= {TARGET_SPEEDUP:g}x)")
    print(
        f"{verdict[ok_peak]} peak_fraction {peak_fraction:.3f} "
        f"(target >= {TARGET_PEAK:.2f}; exact {exact_rate:.3g} FLOP/s / matmul {rate:.3g} FLOP/s)"
    )
    cnn = cnn_case(a.quick, repeats)

    if a.json:
        out = {
            "speedup": speedup,
            "peak_fraction": peak_fraction,
            "speedup_target": TARGET_SPEEDUP,
            "peak_fraction_target": TARGET_PEAK,
            "speedup_pass": ok_speed,
            "peak_fraction_pass": ok_peak,
            "exact_time_s": exact_t,
            "exact_times_s": exact_times,
            "exact_flops": exact_flops,
            "exact_flops_per_s": exact_rate,
            "exact_value": exact.value,
            "mc_time_s": mc_t,
            "mc_extrapolated": True,
            "mc_points_timed": mc_points,
            "mc_time_timed_points_s": mc_sub_t,
            "mc_times_timed_points_s": mc_sub_times,
            "mc_n_samples": n_samples,
            "mc_flops_per_s": mc_flops_sub / mc_sub_t,
            "mc_rel_stderr_median": mc_rel_se_median,
            "mc_rel_stderr_max": mc_rel_se_max,
            "mc_minus_exact_z": mc_vs_exact_z,
            "pilot_samples": pilot_samples,
            "pilot_cv_median": pilot_cv,
            "matmul_flops_per_s": rate,
            "matmul_time_s": rate_t,
            "matmul_times_s": gemm_times,
            "matmul_flops": gemm_flops,
            "config": {
                "in_dim": d,
                "width": m,
                "depth": depth,
                "out_dim": k,
                "points": n_points,
                "eps": eps,
                "region": region,
                "dtype": "float32",
                "device": "cpu",
                "threads": torch.get_num_threads(),
                "repeats": repeats,
                "quick": a.quick,
                "torch": torch.__version__,
                "robustlab": rl.__version__,
                "machine": platform.machine(),
                "processor": platform.processor(),
            },
        }
        out["cnn"] = cnn
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
