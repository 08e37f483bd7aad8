"""rl.metrics.adversarial (PGD with random restarts) against closed forms and bounds.

Linear f(x) = w . x: the worst change over the L2 ball is eps ||w||_2 (at delta = eps w /
||w||), over the L-infinity ball eps ||w||_1 (delta = eps sign(w)); with labels y in {-1, +1}
the smallest margin is y w.x - eps ||w||_* (dual norm), so robust accuracy is known exactly.
ReLU networks: the true worst case lies between the average change (finite-difference P, a
mean over the same ball) and eps times the Lipschitz bound prod_l c_l ||W_l||_2.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import robustlab as rl
from robustlab.metrics import adversarial

F64 = torch.float64


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def linear(d: int, k: int = 1, seed: int = 0) -> nn.Linear:
    lin = nn.Linear(d, k, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(k, d, generator=seeded(seed), dtype=F64))
    return lin


@pytest.mark.parametrize("d", [3, 40])
def test_linear_worst_case_is_the_dual_norm(d):
    lin, eps = linear(d), 0.2
    w = lin.weight.detach()[0]
    x = torch.randn(16, d, generator=seeded(1), dtype=F64)
    l2 = adversarial(lin, x, eps, norm="l2", steps=20, restarts=1, generator=seeded(2))
    linf = adversarial(lin, x, eps, norm="linf", steps=20, restarts=1, generator=seeded(3))
    torch.testing.assert_close(
        l2.per_point, torch.full((16,), eps * float(w.norm()), dtype=F64), rtol=1e-8, atol=0
    )
    torch.testing.assert_close(
        linf.per_point, torch.full((16,), eps * float(w.abs().sum()), dtype=F64), rtol=1e-12, atol=0
    )
    assert (l2.objective, l2.norm, l2.n_points, l2.robust_accuracy) == ("change", "l2", 16, None)
    assert l2.value == pytest.approx(eps * float(w.norm()), rel=1e-8)
    # the worst points lie in the regions
    dl2 = (l2.x_adv - x).norm(dim=1)
    assert float(dl2.max()) <= eps * (1 + 1e-12)
    assert float((linf.x_adv - x).abs().max()) <= eps * (1 + 1e-12)


@pytest.mark.parametrize(("norm", "dual"), [("l2", 2), ("linf", 1)])
def test_linear_margin_gives_exact_robust_accuracy(norm, dual):
    d, eps = 10, 0.3
    lin = linear(d)
    w = lin.weight.detach()[0]
    x = torch.randn(200, d, generator=seeded(4), dtype=F64)
    y = torch.where(torch.rand(200, generator=seeded(5)) < 0.8, 1.0, -1.0) * torch.sign(x @ w)
    margin = y * (x @ w)
    worst = margin - eps * float(torch.linalg.vector_norm(w, ord=dual))
    res = adversarial(lin, x, eps, norm=norm, y=y, steps=20, restarts=1, generator=seeded(6))
    assert res.objective == "margin"
    torch.testing.assert_close(res.per_point, worst, rtol=1e-7, atol=1e-9)
    assert res.clean_accuracy == pytest.approx(float((margin > 0).double().mean()))
    assert res.robust_accuracy == pytest.approx(float((worst > 0).double().mean()))
    assert 0.2 < res.robust_accuracy < res.clean_accuracy  # eps makes a difference


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize(("k", "depth"), [(1, 3), (3, 4)])
def test_relu_worst_case_between_average_and_lipschitz_bound(norm, k, depth):
    d, eps = 8, 0.5
    net = rl.mlp(d, 32, depth, out_dim=k, init="he", generator=seeded(7), dtype=F64)
    x = torch.randn(20, d, generator=seeded(8), dtype=F64)
    region = "ball" if norm == "l2" else "linf_ball"
    average = rl.perturbation_stability(
        net, x, eps, method="finite_difference", region=region, n_samples=256, generator=seeded(9)
    )
    worst = adversarial(net, x, eps, norm=norm, generator=seeded(10))
    lipschitz = math.prod(
        c * float(torch.linalg.matrix_norm(layer.weight.detach(), 2))
        for layer, c in zip(net.layers, net._mult, strict=True)
    )
    radius = eps if norm == "l2" else eps * math.sqrt(d)  # the cube's L2 radius
    assert torch.all(worst.per_point > average.per_point)
    assert torch.all(worst.per_point <= radius * lipschitz)
    assert worst.value > 1.5 * average.value  # in d = 8 the worst case is well above average


def test_restarts_only_improve_and_clip_is_respected():
    net = rl.mlp(6, 16, 3, init="he", generator=seeded(0), dtype=F64)
    x = torch.rand(12, 6, generator=seeded(1), dtype=F64)
    one = adversarial(net, x, 0.4, restarts=1, generator=seeded(2))
    three = adversarial(net, x, 0.4, restarts=3, generator=seeded(2))  # same first start
    assert torch.all(three.per_point >= one.per_point)
    again = adversarial(net, x, 0.4, restarts=3, generator=seeded(2))
    assert torch.equal(again.per_point, three.per_point)
    boxed = adversarial(net, x, 0.4, norm="linf", clip=(0, 1), generator=seeded(3))
    assert float(boxed.x_adv.min()) >= 0 and float(boxed.x_adv.max()) <= 1
    assert float((boxed.x_adv - x).abs().max()) <= 0.4 * (1 + 1e-12)
    assert bool(((boxed.x_adv == 0) | (boxed.x_adv == 1)).any())  # the box did bind


def test_outputs_and_image_inputs():
    """A CNN returning a dict; output picks the logits; labels make it a margin attack."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cnn = rl.cnn((1, 4, 4), 4, 2, out_dim=3, init="he", generator=seeded(0))

        def forward(self, z):
            return {"logits": self.cnn(z), "other": z.sum((1, 2, 3))}

    x = torch.rand(6, 1, 4, 4, generator=seeded(1))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    res = adversarial(Net(), x, 0.3, output="logits", y=y, clip=(0, 1), generator=seeded(2))
    assert res.x_adv.shape == (6, 1, 4, 4) and res.objective == "margin"
    assert 0 <= res.robust_accuracy <= res.clean_accuracy <= 1
    change = adversarial(Net(), x, 0.3, output="logits", generator=seeded(2))
    assert change.objective == "change" and torch.all(change.per_point > 0)


def test_model_state_is_restored():
    net = rl.mlp(6, 16, 3, init="he", generator=seeded(0))
    net.train()
    net.layers[1].eval()
    net.layers[0].weight.requires_grad_(False)
    modes = [m.training for m in net.modules()]
    flags = [p.requires_grad for p in net.parameters()]
    x = torch.randn(5, 6, generator=seeded(1)).requires_grad_(True)
    adversarial(net, x, 0.1, steps=3, restarts=1)
    for bad in (torch.randn(5, 7), torch.randn(5, 6)):
        with pytest.raises(ValueError):
            adversarial(net, bad, 0.1, steps=3, y=torch.zeros(4))
    assert [m.training for m in net.modules()] == modes
    assert [p.requires_grad for p in net.parameters()] == flags
    assert all(p.grad is None for p in net.parameters()) and x.grad is None


def test_bad_arguments():
    net = rl.mlp(6, 8, 2, out_dim=3, generator=seeded(0))
    x = torch.randn(4, 6)
    cases = [
        ({"norm": "l1"}, "unknown norm 'l1'; choices: l2, linf"),
        ({"steps": 0}, "steps: expected a positive integer, got 0"),
        ({"restarts": 1.5}, "restarts: expected a positive integer"),
        ({"step_size": -1.0}, "step_size: expected a positive number"),
        ({"step_size": float("nan")}, "step_size: expected a positive number"),
        ({"eps": 0}, "eps: expected a positive number"),
        ({"clip": (1, 0)}, r"clip must be a pair \(lo, hi\)"),
        ({"y": torch.zeros(3)}, r"y must have shape \(4,\)"),
        ({"y": torch.tensor([0, 1, 2, 3])}, "class indices 0..2, got 3"),
        ({"y": torch.zeros(4).long(), "output": "label"}, "output='label' does not apply"),
        ({"chunk_size": 0}, "chunk_size: expected a positive integer"),
    ]
    for kwargs, message in cases:
        args = {"eps": 0.1, **kwargs}
        with pytest.raises(ValueError, match=message):
            adversarial(net, x, args.pop("eps"), **args)


TORCHATTACKS_SKIP = (
    "torchattacks 3.5.1 requires torchvision and requests~=2.25.1; installing it pulls "
    "torch 2.14.1 with CUDA over the pinned torch 2.13 CPU, so it is not a test dependency "
    "(it runs when torchattacks is importable, e.g. installed with --no-deps)"
)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_cross_check_with_torchattacks(norm):
    """Robust accuracy against torchattacks' PGD / PGDL2 (cross-entropy loss, constant step
    eps/4, 20 steps, random start) on the same classifier and box [0, 1]: ours (margin loss,
    cosine schedule, 3 restarts) must be at least as strong, and both must bite."""
    torchattacks = pytest.importorskip("torchattacks", reason=TORCHATTACKS_SKIP)
    torch.manual_seed(0)  # torchattacks draws its random start from the global generator
    net = rl.mlp(64, 64, 3, out_dim=10, init="he", generator=seeded(0))
    x = torch.rand(200, 1, 8, 8, generator=seeded(1))  # torchattacks wants images
    y = net(x).argmax(1).detach()  # clean accuracy 1
    eps = {"l2": 0.5, "linf": 0.03}[norm]
    ours = adversarial(net, x, eps, norm=norm, y=y, clip=(0, 1), generator=seeded(2))
    attack = {"l2": torchattacks.PGDL2, "linf": torchattacks.PGD}[norm]
    x_adv = attack(net, eps=eps, alpha=eps / 4, steps=20, random_start=True)(x, y)
    theirs = float((net(x_adv).argmax(1) == y).double().mean())
    assert ours.clean_accuracy == 1.0
    assert ours.robust_accuracy <= theirs + 0.02
    assert theirs < 0.9 and ours.robust_accuracy < 0.9
