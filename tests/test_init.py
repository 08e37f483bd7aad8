"""Initialization schemes (DESIGN §1 table), the registry, determinism, argument checks.

Sampled variances are checked against the table of DESIGN §1, written out here again as
the independent reference. For n i.i.d. N(0, s) entries, ``mean(w^2) / s`` has mean 1 and
standard deviation ``sqrt(2 / n)`` (chi-square with n degrees of freedom, divided by n);
the tolerance is ``Z * sqrt(2 / n)`` with Z = 5 (a false alarm has probability ~6e-7 per
check). The means are checked the same way: ``|mean(w)| < Z * sqrt(s / n)``.
"""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
import torch

import robustlab as rl
from robustlab.init import InitScheme, register

Z = 5.0
# wide enough that each matrix has >= 4,000 entries: relative tolerance <= 5*sqrt(2/4000) = 11%
D, M, K = 200, 400, 20

# DESIGN §1, as (s1, s2, s3) functions of (d, m, k)
TABLE = {
    "lecun": lambda d, m, k: (1 / d, 1 / m, 1 / m),
    "he": lambda d, m, k: (2 / d, 2 / m, 2 / m),
    "ntk": lambda d, m, k: (2 / m, 2 / m, 1.0),
    "xavier": lambda d, m, k: (2 / (d + m), 1 / m, 2 / (m + k)),
    "ntk_param": lambda d, m, k: (2 / d, 2 / m, 1 / m),
}


def check_gaussian(w: torch.Tensor, var: float, what: str) -> None:
    """Entries of w look like i.i.d. N(0, var): second moment and mean within Z SE."""
    w = w.detach().double().flatten()
    n = w.numel()
    ratio = float(w.pow(2).mean()) / var
    assert abs(ratio - 1) < Z * math.sqrt(2 / n), f"{what}: mean(w^2)/var = {ratio:.4f}, n={n}"
    assert abs(float(w.mean())) < Z * math.sqrt(var / n), f"{what}: mean {float(w.mean()):.3g}"


def weights(model: rl.MLP) -> list[torch.Tensor]:
    return [layer.weight for layer in model.layers]


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- variances
@pytest.mark.parametrize("name", ["lecun", "he", "ntk", "xavier"])
def test_standard_schemes_sample_the_table_variances(name):
    net = rl.mlp(D, M, 3, out_dim=K, init=name, generator=seeded(0))
    expected = TABLE[name](D, M, K)
    assert net.spec.multipliers == (1.0, 1.0, 1.0)
    for role, (w, s) in enumerate(zip(weights(net), expected, strict=True)):
        check_gaussian(w, s, f"{name} layer role {role}")
    # the scheme object and the spec report the same numbers exactly
    assert rl.get_init(name).variances(D, M, K) == pytest.approx(expected, rel=1e-12)
    assert net.spec.variances == pytest.approx(expected, rel=1e-12)
    assert net.spec.weight_variances == pytest.approx(expected, rel=1e-12)


def test_hidden_layers_all_use_s2():
    net = rl.mlp(D, M, 5, out_dim=K, init="he", generator=seeded(1))
    for w in weights(net)[1:-1]:
        assert w.shape == (M, M)
        check_gaussian(w, 2 / M, "he hidden")


def test_ntk_param_stores_unit_gaussians_and_multiplies_in_forward():
    net = rl.mlp(D, M, 3, out_dim=K, init="ntk_param", generator=seeded(2), dtype=torch.float64)
    for role, w in enumerate(weights(net)):
        check_gaussian(w, 1.0, f"ntk_param stored weights, role {role}")
    c = (math.sqrt(2 / D), math.sqrt(2 / M), math.sqrt(1 / M))
    assert net.spec.multipliers == pytest.approx(c, rel=1e-12)
    assert net.spec.weight_variances == (1.0, 1.0, 1.0)
    assert net.spec.variances == pytest.approx(TABLE["ntk_param"](D, M, K), rel=1e-12)
    # the forward pass is c3 W3 relu(c2 W2 relu(c1 W1 x))
    x = torch.randn(6, D, generator=seeded(3), dtype=torch.float64)
    w1, w2, w3 = weights(net)
    h = torch.relu(c[0] * x @ w1.T)
    h = torch.relu(c[1] * h @ w2.T)
    ref = c[2] * h @ w3.T
    torch.testing.assert_close(net(x), ref, rtol=1e-12, atol=1e-12)


def test_ntk_param_has_the_function_law_of_he_at_init():
    """Same effective variances as He except the last layer: 1/m (ntk_param) vs 2/m (he)."""
    ntk_param, he = rl.get_init("ntk_param"), rl.get_init("he")
    assert ntk_param.variances(D, M, K)[:2] == he.variances(D, M, K)[:2]
    assert ntk_param.variances(D, M, K)[2] == he.variances(D, M, K)[2] / 2


def test_custom_with_numbers():
    scheme = rl.custom(0.5, 0.25, 2.0)
    assert scheme.variances(D, M, K) == (0.5, 0.25, 2.0)
    net = rl.mlp(D, M, 3, out_dim=K, init=scheme, generator=seeded(4))
    for role, (w, s) in enumerate(zip(weights(net), (0.5, 0.25, 2.0), strict=True)):
        check_gaussian(w, s, f"custom numbers role {role}")
    assert net.spec.init == scheme.name


def test_custom_with_callables_gets_d_m_k():
    seen = []

    def s1(d, m, k):
        seen.append((d, m, k))
        return 3.0 / d

    scheme = rl.custom(s1, lambda d, m, k: 0.5 / m, lambda d, m, k: 4.0 / (m + k))
    net = rl.mlp(D, M, 3, out_dim=K, init=scheme, generator=seeded(5))
    assert (D, M, K) in seen
    expected = (3.0 / D, 0.5 / M, 4.0 / (M + K))
    assert net.spec.variances == pytest.approx(expected, rel=1e-12)
    for role, (w, s) in enumerate(zip(weights(net), expected, strict=True)):
        check_gaussian(w, s, f"custom callables role {role}")


def test_mean_field_two_layer_network():
    m = 4000  # the output layer has m entries: 5*sqrt(2/4000) = 11% tolerance
    net = rl.mlp(D, m, 2, init="lecun", mean_field=True, generator=seeded(6), dtype=torch.float64)
    w, a = weights(net)
    check_gaussian(w, 1 / D, "mean-field first layer")
    check_gaussian(a, 1.0, "mean-field output weights a_j")
    assert net.spec.mean_field
    assert net.spec.multipliers[2] == pytest.approx(1 / m, rel=1e-12)
    assert net.spec.weight_variances[2] == 1.0
    assert net.spec.variances[2] == pytest.approx(1 / m**2, rel=1e-12)
    # f(x) = (1/m) sum_j a_j relu(w_j . x)
    x = torch.randn(5, D, generator=seeded(7), dtype=torch.float64)
    ref = (torch.relu(x @ w.T) * a[0]).sum(1, keepdim=True) / m
    torch.testing.assert_close(net(x), ref, rtol=1e-12, atol=1e-15)


def test_mean_field_needs_depth_two():
    with pytest.raises(ValueError, match="depth 2"):
        rl.mlp(D, M, 3, mean_field=True)


def test_bias_starts_at_zero_and_dtype_device_are_honoured():
    net = rl.mlp(7, 9, 3, bias=True, generator=seeded(8), dtype=torch.float64, device="cpu")
    for layer in net.layers:
        assert layer.bias is not None
        assert torch.count_nonzero(layer.bias) == 0
        assert layer.weight.dtype == torch.float64
        assert layer.weight.device.type == "cpu"
    assert net.spec.n_params == 7 * 9 + 9 * 9 + 9 + (2 * 9 + 1)


# ----------------------------------------------------------------------------- registry
def test_registry_names():
    assert rl.init_schemes() == ["he", "lecun", "ntk", "ntk_param", "xavier"]
    for name in rl.init_schemes():
        scheme = rl.get_init(name)
        assert isinstance(scheme, InitScheme)
        assert scheme.name == name
        assert rl.get_init(scheme) is scheme
        # every scheme documents its variances and its source (authors: "X et al." or "X & Y")
        assert "/m" in scheme.doc, scheme.doc
        assert re.search(r"[A-Z][a-z]+ (et al\.|& [A-Z])", scheme.doc), scheme.doc
    assert rl.get_init("  LeCun ") is rl.get_init("lecun")


def test_schemes_are_frozen_and_validated():
    with pytest.raises(dataclasses.FrozenInstanceError):
        rl.get_init("he").s1 = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="parameterization"):
        InitScheme("x", 1.0, 1.0, 1.0, parameterization="mup")
    with pytest.raises(ValueError, match="already registered"):
        register(InitScheme("lecun", 1.0, 1.0, 1.0))


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="unknown init scheme 'glorot'") as info:
        rl.get_init("glorot")
    for name in rl.init_schemes() + ["custom(s1,s2,s3)"]:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="unknown init scheme"):
        rl.mlp(4, 4, 2, init="kaiming")
    with pytest.raises(ValueError, match="init must be a scheme name"):
        rl.get_init(3)  # type: ignore[arg-type]


def test_custom_string_parsing():
    scheme = rl.get_init("custom(0.5, 0.25, 2)")
    assert scheme.variances(10, 20, 1) == (0.5, 0.25, 2.0)
    assert scheme.name == "custom(0.5,0.25,2)"
    assert rl.get_init(" CUSTOM(1e-2,3,4) ").variances(1, 1, 1) == (0.01, 3.0, 4.0)
    with pytest.raises(ValueError, match="three numbers"):
        rl.get_init("custom(a, b, c)")
    with pytest.raises(ValueError, match="unknown init scheme"):
        rl.get_init("custom(1, 2)")
    with pytest.raises(ValueError, match="unknown init scheme"):
        rl.get_init("custom(1, 2, 3, 4)")


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_custom_refuses_non_positive_or_non_finite(bad):
    with pytest.raises(ValueError, match="positive finite"):
        rl.custom(1.0, bad, 1.0)
    with pytest.raises(ValueError, match="positive finite"):
        rl.get_init(f"custom(1, {bad}, 1)")


def test_custom_callable_checked_when_evaluated():
    scheme = rl.custom(lambda d, m, k: -1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="positive finite"):
        scheme.variances(3, 4, 1)
    with pytest.raises(ValueError, match="positive finite"):
        rl.mlp(3, 4, 2, init=scheme)


# ----------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("name", ["lecun", "ntk_param", "xavier"])
def test_same_seed_same_weights_different_seed_different(name):
    a = rl.mlp(10, 16, 4, out_dim=2, init=name, generator=seeded(11))
    b = rl.mlp(10, 16, 4, out_dim=2, init=name, generator=seeded(11))
    c = rl.mlp(10, 16, 4, out_dim=2, init=name, generator=seeded(12))
    for wa, wb, wc in zip(weights(a), weights(b), weights(c), strict=True):
        assert torch.equal(wa, wb)
        assert not torch.equal(wa, wc)


def test_global_rng_without_generator_is_reproducible():
    torch.manual_seed(3)
    a = rl.mlp(6, 8, 3)
    torch.manual_seed(3)
    b = rl.mlp(6, 8, 3)
    assert all(torch.equal(u, v) for u, v in zip(weights(a), weights(b), strict=True))


def test_dtype_does_not_change_the_draw():
    """Weights are drawn in float64 and cast: float32 weights are the float64 ones, rounded."""
    a = rl.mlp(6, 8, 3, generator=seeded(4), dtype=torch.float32)
    b = rl.mlp(6, 8, 3, generator=seeded(4), dtype=torch.float64)
    assert all(torch.equal(u, v.float()) for u, v in zip(weights(a), weights(b), strict=True))


# ----------------------------------------------------------------------------- bad sizes
@pytest.mark.parametrize("arg", ["in_dim", "width", "depth", "out_dim"])
@pytest.mark.parametrize("bad", [0, -3, 2.5, "4", True, None, float("nan")])
def test_bad_sizes_name_the_argument(arg, bad):
    kwargs = {"in_dim": 5, "width": 8, "depth": 3, "out_dim": 1}
    kwargs[arg] = bad
    with pytest.raises(ValueError, match=rf"^{arg}: expected a positive integer, got {bad!r}"):
        rl.mlp(**kwargs)
