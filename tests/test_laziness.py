"""Laziness diagnostics (robustlab.metrics.laziness) against direct computations.

References are independent of the library's code paths: the empirical NTK from the full
parameter Jacobian (torch.func.jacrev, float64), relative changes from the weight tensors,
activation patterns from a hand-written forward pass. Homogeneity gives exact checks:
scaling every weight of a bias-free depth-L ReLU network by s scales its NTK by s^(2(L-1)).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.func import functional_call, jacrev

import robustlab as rl
from robustlab.metrics import empirical_ntk, laziness

F64 = torch.float64


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def net(depth=3, width=16, k=1, d=5, init="he", seed=0, **kw):
    return rl.mlp(d, width, depth, out_dim=k, init=init, generator=seeded(seed), dtype=F64, **kw)


def points(n=12, d=5, seed=100) -> torch.Tensor:
    return torch.randn(n, d, generator=seeded(seed), dtype=F64)


def moved(model, scale=0.1, seed=1):
    """A copy with every weight perturbed by scale * N(0, 1) * its own RMS."""
    out = copy.deepcopy(model)
    gen = seeded(seed)
    with torch.no_grad():
        for p in out.parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            p.add_(scale * p.pow(2).mean().sqrt() * noise)
    return out


def ntk_reference(model, x) -> torch.Tensor:
    """K = J J^T with J the full (n k, p) Jacobian from jacrev; rows ordered point-major."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    jac = jacrev(lambda p: functional_call(model, p, (x,)).reshape(-1))(params)
    J = torch.cat([jac[k].reshape(jac[k].shape[0], -1) for k in params], dim=1)
    return J @ J.T


def hidden_preactivations(model, x) -> list[torch.Tensor]:
    """Hand-written forward of a bias-free MLP: pre-activations c_l W_l h of each hidden layer."""
    c = list(model.spec.multipliers)
    mult = [c[0]] + [c[1]] * (model.spec.depth - 2)
    h, out = x, []
    for layer, cl in zip(model.layers[:-1], mult, strict=True):
        pre = cl * (h @ layer.weight.detach().T)
        out.append(pre)
        h = torch.relu(pre)
    return out


def test_identical_models_give_zero_everywhere():
    model, x = net(), points()
    lz = laziness(model, copy.deepcopy(model), x)
    assert lz["rel_weight_change"] == 0.0
    assert set(lz["rel_weight_change_per_layer"].values()) == {0.0}
    assert lz["ntk_change"] == 0.0
    assert abs(lz["kernel_distance"]) < 1e-12  # 1 - <K, K> / ||K||^2 up to rounding
    assert lz["pattern_flip"] == 0.0


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("chunk", [64, 5])
def test_empirical_ntk_equals_jacobian_product(k, chunk):
    model, x = net(k=k), points(n=7)
    K = empirical_ntk(model, x, chunk=chunk)
    assert K.shape == (7 * k, 7 * k)
    torch.testing.assert_close(K, ntk_reference(model, x), rtol=1e-10, atol=1e-12)


def test_ntk_change_and_kernel_distance_against_direct_computation():
    m0, x = net(depth=3, k=2), points(n=20)
    m1 = moved(m0, scale=0.3)
    lz = laziness(m0, m1, x, probe=12)  # only the first 12 points enter the kernels
    k0, k1 = ntk_reference(m0, x[:12]), ntk_reference(m1, x[:12])
    n0, n1 = torch.linalg.norm(k0), torch.linalg.norm(k1)
    want_change = float(torch.linalg.norm(k1 - k0) / n0)
    want_distance = float(1 - (k0 * k1).sum() / (n0 * n1))
    assert lz["ntk_change"] == pytest.approx(want_change, rel=1e-9)
    assert lz["kernel_distance"] == pytest.approx(want_distance, rel=1e-9)
    assert 0 < want_distance < want_change  # a genuine, nontrivial move


@pytest.mark.parametrize("depth", [2, 4])
def test_uniform_scaling_is_an_exact_check(depth):
    """w -> s w: relative change s - 1 everywhere, K -> s^(2(L-1)) K (so ntk_change =
    s^(2(L-1)) - 1 and kernel_distance = 0), and no ReLU pattern flips (s > 0)."""
    s = 1.1
    m0, x = net(depth=depth), points()
    m1 = copy.deepcopy(m0)
    with torch.no_grad():
        for p in m1.parameters():
            p.mul_(s)
    lz = laziness(m0, m1, x)
    assert lz["rel_weight_change"] == pytest.approx(s - 1, rel=1e-12)
    for value in lz["rel_weight_change_per_layer"].values():
        assert value == pytest.approx(s - 1, rel=1e-12)
    assert lz["ntk_change"] == pytest.approx(s ** (2 * (depth - 1)) - 1, rel=1e-9)
    assert abs(lz["kernel_distance"]) < 1e-12
    assert lz["pattern_flip"] == 0.0


def test_per_layer_relative_change_against_direct_computation():
    m0 = net(depth=4)
    m1 = moved(m0, scale=0.2)
    lz = laziness(m0, m1, points(), ntk=False)
    p0 = {k: v.detach() for k, v in m0.named_parameters()}
    p1 = {k: v.detach() for k, v in m1.named_parameters()}
    assert (
        set(lz["rel_weight_change_per_layer"])
        == set(p0)
        == {f"layers.{i}.weight" for i in range(4)}
    )
    num = den = 0.0
    for name, w0 in p0.items():
        diff = float(torch.linalg.norm(p1[name] - w0))  # Frobenius
        base = float(torch.linalg.norm(w0))
        assert lz["rel_weight_change_per_layer"][name] == pytest.approx(diff / base, rel=1e-12)
        num, den = num + diff**2, den + base**2
    assert lz["rel_weight_change"] == pytest.approx(math.sqrt(num / den), rel=1e-12)
    assert math.isnan(lz["ntk_change"]) and math.isnan(lz["kernel_distance"])  # ntk=False


@pytest.mark.parametrize("depth,init", [(2, "he"), (4, "he"), (3, "ntk_param")])
def test_pattern_flip_against_a_direct_count(depth, init):
    m0, x = net(depth=depth, width=24, init=init), points(n=30)
    m1 = moved(m0, scale=0.5)
    a0, a1 = hidden_preactivations(m0, x), hidden_preactivations(m1, x)
    flips = sum(int(((u > 0) != (v > 0)).sum()) for u, v in zip(a0, a1, strict=True))
    total = 30 * 24 * (depth - 1)  # (points) x (hidden units) x (hidden layers)
    assert 0 < flips < total
    assert laziness(m0, m1, x, ntk=False)["pattern_flip"] == flips / total


def test_pattern_flip_of_one_negated_unit_is_one_over_width():
    """Two-layer net, unit j's incoming weights negated: its pre-activation changes sign at
    every point (none is exactly 0) and no other unit changes, so exactly 1/m flip."""
    m0, x = net(depth=2, width=20), points(n=30)
    m1 = copy.deepcopy(m0)
    with torch.no_grad():
        m1.layers[0].weight[7].neg_()
    assert laziness(m0, m1, x, ntk=False)["pattern_flip"] == pytest.approx(1 / 20, rel=1e-15)


def test_input_models_and_points_are_not_modified():
    m0, x = net(), points()
    m1 = moved(m0)
    m0.train()
    m1.eval()
    m1.layers[1].weight.requires_grad_(False)
    states = [{k: v.clone() for k, v in m.state_dict().items()} for m in (m0, m1)]
    flags = [[p.requires_grad for p in m.parameters()] for m in (m0, m1)]
    x_before = x.clone()
    laziness(m0, m1, x)
    empirical_ntk(m1, x)
    for m, state, flag in zip((m0, m1), states, flags, strict=True):
        for k, v in m.state_dict().items():
            assert torch.equal(v, state[k])
        assert [p.requires_grad for p in m.parameters()] == flag
    assert m0.training and all(mod.training for mod in m0.modules())
    assert not m1.training and not any(mod.training for mod in m1.modules())
    assert torch.equal(x, x_before)


def test_models_with_different_parameters_are_refused():
    with pytest.raises(ValueError, match="different parameters"):
        laziness(net(depth=2), net(depth=3), points())
