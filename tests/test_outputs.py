"""output= (tuple, dict, index, margin, label, callable), labels y=, any callable as model,
and clip= for finite differences.

References: the margin's gradient from jacrev Jacobians (J_y - J_j* with j* the runner-up
class), and models wrapped by hand (a module returning the selected output directly). Exact
P is deterministic, so those compare to float64 rounding.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import jacrev, vmap

import robustlab as rl
from robustlab.metrics import input_gradients
from robustlab.theory import kappa

F64 = torch.float64


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Multi(nn.Module):
    """Returns several things: a tuple (logits, features) or a dict, as real models do."""

    def __init__(self, net: nn.Module, as_dict: bool = False) -> None:
        super().__init__()
        self.net, self.as_dict = net, as_dict

    def forward(self, x):
        z = self.net(x)
        feats = torch.tanh(x.reshape(x.shape[0], -1)[:, :3])
        return {"logits": z, "features": feats} if self.as_dict else (z, feats)


def setup(k: int = 4, n: int = 12):
    net = rl.mlp(6, 16, 3, out_dim=k, init="he", generator=seeded(0), dtype=F64)
    x = torch.randn(n, 6, generator=seeded(1), dtype=F64)
    return net, x


def test_tuple_dict_index_and_callable_select_the_same_output():
    net, x = setup()
    ref = rl.perturbation_stability(net, x, 0.1, method="jacobian", generator=seeded(2))
    for model, output in (
        (Multi(net), 0),
        (Multi(net, as_dict=True), "logits"),
        (Multi(net, as_dict=True), lambda out: out["logits"]),
    ):
        res = rl.perturbation_stability(
            model, x, 0.1, method="jacobian", output=output, generator=seeded(2)
        )
        assert torch.equal(res.per_point, ref.per_point), output
    # an index on a tensor is a column (logit 2); a plain function is a model too
    col = rl.perturbation_stability(lambda z: net(z), x, 0.1, output=2)
    g = vmap(jacrev(lambda x1: net(x1[None])[0]))(x)[:, 2]  # (N, d)
    torch.testing.assert_close(col.per_point, 0.1 * kappa(6) * g.norm(dim=1), rtol=1e-12, atol=0)
    assert col.method == "exact"
    # a chain: dict key then margin
    y = torch.arange(12) % 4
    a = rl.perturbation_stability(Multi(net, True), x, 0.1, output=("logits", "margin"), y=y)
    b = rl.perturbation_stability(net, x, 0.1, output="margin", y=y)
    assert torch.equal(a.per_point, b.per_point)


def test_margin_and_label_against_the_jacobian():
    net, x = setup()
    y = torch.tensor([0, 1, 2, 3] * 3)
    J = vmap(jacrev(lambda x1: net(x1[None])[0]))(x)  # (N, k, d)
    z = net(x).detach()
    others = z.clone()
    others[torch.arange(12), y] = -float("inf")
    runner_up = others.argmax(1)
    g_margin = J[torch.arange(12), y] - J[torch.arange(12), runner_up]
    res = rl.perturbation_stability(net, x, 0.1, output="margin", y=y)
    assert res.method == "exact"
    torch.testing.assert_close(
        res.per_point, 0.1 * kappa(6) * g_margin.norm(dim=1), rtol=1e-12, atol=0
    )
    lab = rl.perturbation_stability(net, x, 0.1, output="label", y=y)
    g_label = J[torch.arange(12), y]
    torch.testing.assert_close(
        lab.per_point, 0.1 * kappa(6) * g_label.norm(dim=1), rtol=1e-12, atol=0
    )
    torch.testing.assert_close(
        input_gradients(net, x, output="margin", y=y), g_margin, rtol=1e-12, atol=1e-15
    )


def test_binary_margin_of_one_output():
    """k = 1 with labels in {-1, +1}: margin y f, whose |gradient| is that of f."""
    net, x = setup(k=1)
    y = torch.tensor([1.0, -1.0] * 6)
    plain = rl.perturbation_stability(net, x, 0.1)
    margin = rl.perturbation_stability(net, x, 0.1, output="margin", y=y)
    torch.testing.assert_close(margin.per_point, plain.per_point, rtol=1e-14, atol=0)
    with pytest.raises(ValueError, match=r"labels in \{-1, \+1\}"):
        rl.perturbation_stability(net, x, 0.1, output="margin", y=torch.zeros(12))


def test_labels_follow_their_points_through_chunks_and_samples():
    """mc and finite_difference repeat the points sample-major within a call; each row must
    keep its point's label. All 12 points in one call against the exact per-point margin P
    (eps = 1e-4: the ReLU net and the margin's argmax are fixed on almost every ball)."""
    net, x = setup()
    y = torch.tensor([3, 0, 2, 1] * 3)
    exact = rl.perturbation_stability(net, x, 1e-4, output="margin", y=y)
    for method in ("mc", "finite_difference"):
        res = rl.perturbation_stability(
            net, x, 1e-4, method=method, output="margin", y=y, n_samples=400, generator=seeded(4)
        )
        dev = (res.per_point - exact.per_point).abs() / res.per_point_stderr
        assert float(dev.max()) < 4.0, (method, dev)


def test_output_errors_name_the_fix():
    net, x = setup()
    y = torch.arange(12) % 4
    cases = [
        (Multi(net), {}, r"returns a tuple of 2 outputs; choose one with output="),
        (Multi(net, True), {}, r"returns a dict with keys \['features', 'logits'\]"),
        (Multi(net, True), {"output": "logit"}, "output='logit' is not a key"),
        (Multi(net), {"output": 5}, "output=5 but the model returns a tuple of 2"),
        (net, {"output": 4}, "output=4 but the output has k = 4 columns"),
        (net, {"output": "logits"}, "output='logits' does not apply: the model returns a tensor"),
        (Multi(net), {"output": "margin", "y": y}, r"select the logits first, e.g. output=\(0"),
        (net, {"output": "margin"}, r"needs the labels: pass y="),
        (net, {"output": "margin", "y": y[:5]}, r"y must have shape \(12,\)"),
        (net, {"output": "margin", "y": y + 1}, r"class indices 0..3, got 4"),
        (net, {"output": "margin", "y": y.numpy()}, "y must be a torch.Tensor"),
        (net, {"output": 1.5}, "output must be an index, a dict key"),
        (rl.mlp(6, 8, 2, generator=seeded(0)), {"output": "label", "y": y}, "needs k >= 2"),
    ]
    for model, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            rl.perturbation_stability(model, x, 0.1, **kwargs)


# ----------------------------------------------------------------------------- clip
def test_finite_difference_respects_the_clip_box():
    """With x in [0, 1], f(clamp(x + delta)) - f(x) is the finite difference of the model
    that clamps its own input: same draws, same values."""
    net, _ = setup(k=3)
    x = torch.rand(10, 6, generator=seeded(5), dtype=F64)

    def clamped(z):
        return net(z.clamp(0.0, 1.0))

    kw = dict(method="finite_difference", n_samples=32)
    a = rl.perturbation_stability(net, x, 0.5, clip=(0, 1), generator=seeded(6), **kw)
    b = rl.perturbation_stability(clamped, x, 0.5, generator=seeded(6), **kw)
    torch.testing.assert_close(a.per_point, b.per_point, rtol=1e-14, atol=0)
    free = rl.perturbation_stability(net, x, 0.5, generator=seeded(6), **kw)
    assert not torch.equal(a.per_point, free.per_point)  # the box did bind


def test_clip_errors():
    net, _ = setup()
    x = torch.rand(4, 6, generator=seeded(5), dtype=F64)
    for method in ("auto", "exact", "mc", "jacobian"):
        with pytest.raises(ValueError, match="clip applies to method='finite_difference'"):
            rl.perturbation_stability(net, x, 0.1, method=method, clip=(0, 1))
    for clip in ((1, 0), (0,), (0, float("inf")), "01", (0, True)):
        with pytest.raises(ValueError, match=r"clip must be a pair \(lo, hi\)"):
            rl.perturbation_stability(net, x, 0.1, method="finite_difference", clip=clip)
    with pytest.raises(ValueError, match=r"outside clip=\(0, 0.5\)"):
        rl.perturbation_stability(net, x + 0.5, 0.1, method="finite_difference", clip=(0, 0.5))


def test_image_shaped_inputs_reach_the_model_unflattened():
    seen = []
    cnn = rl.cnn((2, 3, 3), 4, 2, out_dim=3, init="he", generator=seeded(0), dtype=F64)

    def model(z):
        seen.append(tuple(z.shape[1:]))
        return cnn(z)

    x = torch.randn(5, 2, 3, 3, generator=seeded(1), dtype=F64)
    for method in ("jacobian", "mc", "finite_difference"):
        rl.perturbation_stability(model, x, 0.1, method=method, n_samples=4, generator=seeded(2))
    assert set(seen) == {(2, 3, 3)}


def test_progress_reports_points_done():
    net, x = setup()
    for method in ("exact", "jacobian", "mc", "finite_difference"):
        seen: list = []
        rl.perturbation_stability(
            net, x, 0.1, method=method, output=0, n_samples=4, chunk_size=5,
            progress=lambda done, n, seen=seen: seen.append((done, n)), generator=seeded(0),
        )  # fmt: skip
        assert seen[-1] == (12, 12) and len(seen) > 1, (method, seen)
        assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    seen = []
    rl.metrics.adversarial(net, x, 0.1, steps=2, chunk_size=5, progress=lambda *a: seen.append(a))
    assert seen == [(5, 12), (10, 12), (12, 12)]
