"""Worst case beside average: PGD against P for random ReLU MLPs at initialization.

For each init, width m and depth L: ``rl.mlp(d=10, m, L)`` drawn with seeds 0..S-1, N points
uniform on the unit sphere S^9 (seed 10_000 + s), eps = 0.1 (L2 ball):

- ``P``: exact average stability, eps kappa_d mean ||grad f|| (the linear form);
- ``P_fd``: average nonlinear change E |f(x') - f(x)| (finite differences, 64 draws);
- ``worst``: mean over points of max |f(x') - f(x)| found by PGD (20 steps, 3 restarts);
- ``ratio`` = worst / P. For a linear f the ratio is 1 / kappa_d (= 4.25 in d = 10): the
  worst case of |g . delta| is eps ||g|| where the average is eps kappa_d ||g||.

Usage: python benchmarks/worst_vs_average.py [--seeds S] [--points N] [--init he,lecun]
"""

from __future__ import annotations

import argparse

import torch

import robustlab as rl
from robustlab.metrics.at_init import sphere_points
from robustlab.theory import kappa


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--points", type=int, default=200)
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--init", default="he,lecun")
    p.add_argument("--widths", default="16,64,256")
    p.add_argument("--depths", default="2,4,8")
    a = p.parse_args()
    d = 10
    print(f"d={d}, eps={a.eps}, L2 ball, {a.points} sphere points, {a.seeds} seeds; "
          f"linear reference 1/kappa_d = {1 / kappa(d):.3f}")  # fmt: skip
    print(f"{'init':<7}{'width':>6}{'depth':>6}{'P':>11}{'P_fd':>11}{'worst':>11}{'ratio':>8}")
    for init in a.init.split(","):
        for width in (int(w) for w in a.widths.split(",")):
            for depth in (int(L) for L in a.depths.split(",")):
                ps, fds, worsts = [], [], []
                for s in range(a.seeds):
                    net = rl.mlp(
                        d, width, depth, init=init, generator=torch.Generator().manual_seed(s)
                    )
                    gen = torch.Generator().manual_seed(10_000 + s)
                    x = sphere_points(a.points, d, generator=gen)
                    ps.append(rl.perturbation_stability(net, x, a.eps).value)
                    fds.append(
                        rl.perturbation_stability(
                            net, x, a.eps, method="finite_difference", generator=gen
                        ).value
                    )
                    worsts.append(rl.metrics.adversarial(net, x, a.eps, generator=gen).value)
                P, fd, worst = (sum(v) / len(v) for v in (ps, fds, worsts))
                print(
                    f"{init:<7}{width:>6}{depth:>6}{P:>11.4g}{fd:>11.4g}{worst:>11.4g}"
                    f"{worst / P:>8.2f}"
                )


if __name__ == "__main__":
    main()
