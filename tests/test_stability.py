"""perturbation_stability (exact / mc / finite_difference) and stability_at_init.

Statistical checks accept ``|a - b| < Z * SE`` with Z = 4, SE the Monte Carlo standard
error of the difference: for a Monte Carlo value over the *same* points as an exact one,
only the perturbations are random, so SE = sqrt(sum_i se_i^2) / N with se_i the per-point
standard errors the library reports (``per_point_stderr``). All seeds are fixed.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import jacrev, vmap

import robustlab as rl
from robustlab.metrics import input_gradients, sample_perturbations
from robustlab.metrics.at_init import sphere_points, stability_at_init
from robustlab.theory import expected_grad_sq_norm, kappa, rms_factor

Z = 4.0
F64 = torch.float64
REGIONS = ["ball", "sphere"]


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def net_and_points(d=6, m=24, depth=3, k=1, n=40, dtype=F64, init="he", seed=0):
    net = rl.mlp(d, m, depth, out_dim=k, init=init, generator=seeded(seed), dtype=dtype)
    x = torch.randn(n, d, generator=seeded(seed + 100), dtype=dtype)
    return net, x


def mc_se(res: rl.StabilityResult) -> float:
    """SE of a Monte Carlo value due to the perturbations only (points held fixed)."""
    return float(res.per_point_stderr.pow(2).sum().sqrt()) / res.n_points


def jacobians(net, x: torch.Tensor) -> torch.Tensor:
    """Independent reference: per-point input Jacobians via torch.func.jacrev, (N, k, d)."""
    return vmap(jacrev(lambda x1: net(x1[None])[0]))(x).detach()


# ----------------------------------------------------------------------------- exact
@pytest.mark.parametrize("region", REGIONS)
def test_exact_is_eps_kappa_mean_grad_norm(region):
    net, x = net_and_points()
    eps = 0.05
    res = rl.perturbation_stability(net, x, eps, method="exact", region=region)
    g = jacobians(net, x)[:, 0, :]  # (N, d)
    per_point = eps * kappa(6, region) * g.norm(dim=1)
    torch.testing.assert_close(res.per_point, per_point, rtol=1e-12, atol=0)
    assert res.value == pytest.approx(float(per_point.mean()), rel=1e-12)
    assert res.stderr == pytest.approx(float(per_point.std()) / math.sqrt(40), rel=1e-10)
    assert (res.method, res.n_points, res.n_samples, res.eps, res.region) == (
        "exact",
        40,
        0,
        eps,
        region,
    )
    assert res.per_point.dtype == F64 and res.per_point.device.type == "cpu"
    assert torch.count_nonzero(res.per_point_stderr) == 0
    torch.testing.assert_close(input_gradients(net, x), g, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("region", REGIONS)
def test_exact_mc_and_finite_difference_agree_at_small_eps(region):
    """At eps = 1e-4 the ReLU net is linear on almost every perturbation region, so
    E|f(x+delta) - f(x)| = E|g . delta| = eps kappa_d ||g||."""
    net, x = net_and_points(n=30)
    eps = 1e-4
    exact = rl.perturbation_stability(net, x, eps, method="exact", region=region)
    for method, seed in (("mc", 1), ("finite_difference", 2)):
        res = rl.perturbation_stability(
            net, x, eps, method=method, region=region, n_samples=400, generator=seeded(seed)
        )
        assert res.method == method and res.n_samples == 400
        se = mc_se(res)
        assert 0 < se < 0.05 * exact.value  # the check has power: SE is a few percent
        assert abs(res.value - exact.value) < Z * se, (method, res.value, exact.value, se)
        # per point as well (30 checks at Z = 4: false-alarm probability ~2e-3 in all)
        dev = (res.per_point - exact.per_point).abs() / res.per_point_stderr
        assert float(dev.max()) < Z, (method, float(dev.max()))


@pytest.mark.parametrize("region", REGIONS)
def test_mc_multi_output_against_jacobian_reference_and_rms_identity(region):
    """k = 3: the library's JVP Monte Carlo against an independent one with J from jacrev;
    Jensen: E||J delta|| <= sqrt(E||J delta||^2) = eps ||J||_F sqrt(c) (c = rms_factor)."""
    d, k, n_pts, eps, n_lib, n_ref = 6, 3, 8, 0.2, 2000, 20_000
    net, x = net_and_points(d=d, k=k, n=n_pts)
    res = rl.perturbation_stability(
        net, x, eps, method="mc", region=region, n_samples=n_lib, generator=seeded(5)
    )
    J = jacobians(net, x)  # (N, k, d)
    rms = eps * J.pow(2).sum((1, 2)).sqrt() * math.sqrt(rms_factor(d, region))  # (N,)
    delta = sample_perturbations(n_ref, d, eps, region, generator=seeded(6), dtype=F64)
    v = torch.linalg.vector_norm(torch.einsum("nkd,sd->nsk", J, delta), dim=2)  # (N, n_ref)
    ref = v.mean(1)
    ref_se = v.std(1) / math.sqrt(n_ref)
    lib_se = res.per_point_stderr
    assert torch.all((res.per_point - ref).abs() < Z * (lib_se.pow(2) + ref_se.pow(2)).sqrt())
    # Jensen, allowing for the Monte Carlo error of the mean
    assert torch.all(res.per_point <= rms + Z * lib_se)
    assert torch.all(ref < rms)  # strict for k > 1 unless J delta has constant norm
    # the closed form E||J delta||^2 = eps^2 ||J||_F^2 c, with the reference samples ...
    sq = v.pow(2)
    assert torch.all((sq.mean(1) - rms**2).abs() < Z * sq.std(1) / math.sqrt(n_ref))
    # ... and with the library's own samples: mean(v^2) = mean^2 + se^2 (n - 1)
    lib_sq = res.per_point.pow(2) + lib_se.pow(2) * (n_lib - 1)
    assert torch.all((lib_sq - rms**2).abs() < Z * sq.std(1) / math.sqrt(n_lib))


def test_auto_picks_exact_for_scalar_jacobian_for_small_k_and_mc_beyond():
    net1, x = net_and_points(k=1, n=5)
    assert rl.perturbation_stability(net1, x, 0.1).method == "exact"
    assert rl.perturbation_stability(net1, x, 0.1).n_samples == 0
    net3, _ = net_and_points(k=3, n=5)
    res = rl.perturbation_stability(net3, x, 0.1, n_samples=8, generator=seeded(0))
    assert (res.method, res.n_samples) == ("jacobian", 8)
    # min(k, d) = 65 > AUTO_JACOBIAN_MAX_PASSES = 64: Monte Carlo
    net65, x65 = net_and_points(d=65, m=8, k=65, n=2)
    res = rl.perturbation_stability(net65, x65, 0.1, n_samples=4, generator=seeded(0))
    assert (res.method, res.n_samples) == ("mc", 4)


def test_exact_refuses_vector_outputs():
    net3, x = net_and_points(k=3, n=5)
    with pytest.raises(ValueError, match=r"needs a scalar output \(k = 1\), the model has k = 3"):
        rl.perturbation_stability(net3, x, 0.1, method="exact")
    with pytest.raises(ValueError, match="scalar output"):
        input_gradients(net3, x)


# ----------------------------------------------------------------------------- batching
def test_exact_chunked_equals_one_chunk():
    """chunk_size 7 over N = 50 (8 chunks, the last of 1 point) and one point at a time give
    the one-chunk values up to float64 rounding (BLAS may block sums differently per batch
    size, so bit equality is not promised; 1e-12 is ~1e4 float64 ulps)."""
    net, x = net_and_points(n=50)
    one = rl.perturbation_stability(net, x, 0.1, method="exact", chunk_size=4096)
    for chunk in (7, 1, 49, 50):
        res = rl.perturbation_stability(net, x, 0.1, method="exact", chunk_size=chunk)
        torch.testing.assert_close(res.per_point, one.per_point, rtol=1e-12, atol=0)
    per_example = torch.cat(
        [rl.perturbation_stability(net, x[i : i + 1], 0.1).per_point for i in range(50)]
    )
    torch.testing.assert_close(per_example, one.per_point, rtol=1e-12, atol=0)


@pytest.mark.parametrize("method", ["mc", "finite_difference"])
def test_mc_chunking_guarantees(method):
    """What the sampler guarantees: perturbations are drawn call by call, (samples x points)
    sample-major. So (a) chunk sizes that give the same calls give bit-identical results;
    (b) one point per call (chunk_size = n_samples) equals per-example calls sharing one
    generator; (c) other chunkings draw different perturbations and agree statistically."""
    net, x = net_and_points(n=20)
    s = 32

    def run(chunk, pts=x, gen=None):
        return rl.perturbation_stability(
            net, pts, 0.1, method=method, n_samples=s, chunk_size=chunk, generator=gen or seeded(9)
        )

    full = run(s * 20)  # all points and samples in one call
    assert torch.equal(run(10**7).per_point, full.per_point)
    per_point_calls = run(s)  # one point, all its samples, per call
    gen = seeded(9)
    loop = torch.cat([run(s, x[i : i + 1], gen).per_point for i in range(20)])
    assert torch.equal(loop, per_point_calls.per_point)
    tiny = run(5)  # 5 samples per call
    for other in (per_point_calls, tiny):
        assert not torch.equal(other.per_point, full.per_point)
        se = math.hypot(mc_se(other), mc_se(full))
        assert abs(other.value - full.value) < Z * se


def test_image_shaped_inputs_equal_flattened():
    net, x = net_and_points(d=20, n=12)
    x4 = x.reshape(12, 1, 4, 5)
    for method in ("exact", "mc", "finite_difference"):
        kw = {"method": method, "n_samples": 16}
        a = rl.perturbation_stability(net, x4, 0.1, generator=seeded(1), **kw)
        b = rl.perturbation_stability(net, x, 0.1, generator=seeded(1), **kw)
        assert torch.equal(a.per_point, b.per_point), method
        assert torch.equal(a.per_point_stderr, b.per_point_stderr), method
    assert input_gradients(net, x4).shape == (12, 20)


def test_float32_agrees_with_float64():
    net64, x = net_and_points(n=30)
    net32 = rl.mlp(6, 24, 3, init="he", generator=seeded(0), dtype=torch.float32)
    e64 = rl.perturbation_stability(net64, x, 0.1, method="exact")
    e32 = rl.perturbation_stability(net32, x, 0.1, method="exact")  # x is cast to float32
    # float32 rounding (2^-24 ~ 6e-8) over sums of <= 24 terms in 3 layers: well below 1e-5
    torch.testing.assert_close(e32.per_point, e64.per_point, rtol=1e-5, atol=0)
    # mc: float32 and float64 draw different normals from one seed; agree statistically
    m64 = rl.perturbation_stability(net64, x, 0.1, method="mc", n_samples=200, generator=seeded(3))
    m32 = rl.perturbation_stability(net32, x, 0.1, method="mc", n_samples=200, generator=seeded(3))
    assert abs(m32.value - m64.value) < Z * math.hypot(mc_se(m32), mc_se(m64))


# ----------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("method", ["mc", "finite_difference"])
def test_seeded_generator_is_deterministic(method):
    net, x = net_and_points(n=10)

    def run(gen):
        return rl.perturbation_stability(
            net, x, 0.3, method=method, n_samples=16, generator=gen
        ).per_point

    assert torch.equal(run(seeded(4)), run(seeded(4)))
    assert not torch.equal(run(seeded(4)), run(seeded(5)))
    torch.manual_seed(11)  # generator=None uses the global generator
    a = run(None)
    torch.manual_seed(11)
    assert torch.equal(a, run(None))


# ----------------------------------------------------------------------------- model state
def snapshot(net):
    return (
        [m.training for m in net.modules()],
        [p.requires_grad for p in net.parameters()],
        [p.detach().clone() for p in net.parameters()],
    )


def assert_untouched(net, before):
    modes, flags, values = before
    assert [m.training for m in net.modules()] == modes
    assert [p.requires_grad for p in net.parameters()] == flags
    for p, v in zip(net.parameters(), values, strict=True):
        assert torch.equal(p, v)
        assert p.grad is None


@pytest.mark.parametrize("method", ["auto", "exact", "mc", "finite_difference"])
def test_model_state_is_restored(method):
    net, x = net_and_points(n=6)
    net.train()
    net.layers[1].eval()  # a mixed state: only an exact restore keeps it
    net.layers[0].weight.requires_grad_(False)
    before = snapshot(net)
    x = x.clone().requires_grad_(True)
    rl.perturbation_stability(net, x, 0.1, method=method, n_samples=4, generator=seeded(0))
    assert_untouched(net, before)
    assert x.grad is None
    assert [m.training for m in net.modules()] == [True, True, True, False, True]
    # after an exception raised inside the evaluation (x of the wrong width)
    with pytest.raises(ValueError, match=r"x of shape \(6, 7\) does not fit the model"):
        rl.perturbation_stability(
            net, torch.randn(6, 7, dtype=F64), 0.1, method=method, n_samples=4
        )
    assert_untouched(net, before)


def test_input_gradients_restores_state():
    net, x = net_and_points(n=6)
    net.train()
    net.layers[2].weight.requires_grad_(False)
    before = snapshot(net)
    input_gradients(net, x)
    assert_untouched(net, before)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("eps", [0, -1, 0.0, float("nan"), float("inf"), "0.1", None, True])
def test_bad_eps(eps):
    net, x = net_and_points(n=3)
    with pytest.raises(ValueError, match="eps: expected a positive number"):
        rl.perturbation_stability(net, x, eps)


def test_bad_inputs_name_the_problem():
    net, x = net_and_points(n=4)  # in_dim 6
    bad_x = x.clone()
    bad_x[2, 3] = float("nan")
    cases = [
        ({"x": bad_x}, "x contains NaN"),
        ({"x": torch.full((4, 6), float("inf"), dtype=F64)}, "x contains NaN or infinite"),
        ({"x": torch.randn(4, 7)}, r"x of shape \(4, 7\) does not fit the model"),
        ({"x": torch.randn(6)}, r"x must have shape \(N, ...\).*got shape \(6,\)"),
        ({"x": torch.randn(0, 6)}, r"N >= 1"),
        ({"x": x.numpy()}, "x must be a torch.Tensor"),
        ({"method": "hessian"}, "unknown method 'hessian'; choices: auto, exact, mc"),
        ({"region": "cube"}, "unknown region 'cube'; choices: ball, sphere"),
        ({"n_samples": 0}, "n_samples: expected a positive integer, got 0"),
        ({"n_samples": 2.0, "method": "mc"}, "n_samples: expected a positive integer"),
        ({"chunk_size": 0}, "chunk_size: expected a positive integer, got 0"),
    ]
    for kwargs, message in cases:
        args = {"x": x, **kwargs}
        with pytest.raises(ValueError, match=message):
            rl.perturbation_stability(net, args.pop("x"), 0.1, **args)
    for method in ("mc", "finite_difference"):
        with pytest.raises(ValueError, match="does not fit the model"):
            rl.perturbation_stability(net, torch.randn(4, 7), 0.1, method=method, n_samples=2)


def test_integer_inputs_are_cast():
    net, _ = net_and_points(n=1)
    x = torch.arange(12).reshape(2, 6)
    res = rl.perturbation_stability(net, x, 0.1)
    ref = rl.perturbation_stability(net, x.to(F64), 0.1)
    assert torch.equal(res.per_point, ref.per_point)


# ----------------------------------------------------------------------------- at init
def test_stability_at_init_against_theory():
    d, m, L, eps = 10, 64, 4, 0.1
    r = stability_at_init("lecun", d, m, L, eps, seeds=30, points=200, dtype=F64)
    assert r["method"] == "exact" and r["seeds"] == 30 and len(r["runs"]) == 30
    assert r["grad_sq_theory"] == pytest.approx(expected_grad_sq_norm("lecun", d, m, L))
    bound = eps * kappa(d) * math.sqrt(r["grad_sq_theory"])
    assert r["p_bound_theory"] == pytest.approx(bound, rel=1e-14)
    # networks are independent across seeds (points within a seed share a network): the
    # standard errors are over seeds
    g2 = torch.tensor([run["grad_sq_mean"] for run in r["runs"]], dtype=F64)
    g2_mean, g2_se = float(g2.mean()), float(g2.std()) / math.sqrt(30)
    assert r["grad_sq_measured"] == pytest.approx(g2_mean, rel=1e-12)
    assert abs(r["grad_sq_measured"] - r["grad_sq_theory"]) < Z * g2_se
    # Jensen: E||g|| <= sqrt(E||g||^2), so P <= bound, up to the Monte Carlo error over seeds
    assert r["p_stderr"] > 0
    assert r["p_mean"] <= bound * (1 + Z * r["p_stderr"] / bound)
    p = torch.tensor([run["p_value"] for run in r["runs"]], dtype=F64)
    assert r["p_mean"] == pytest.approx(float(p.mean()), rel=1e-12)
    assert r["p_stderr"] == pytest.approx(float(p.std()) / math.sqrt(30), rel=1e-10)


def test_stability_at_init_is_seeded_and_handles_vector_outputs():
    a = stability_at_init("he", 5, 16, 3, 0.1, seeds=2, points=20)
    b = stability_at_init("he", 5, 16, 3, 0.1, seeds=2, points=20)
    assert a["runs"] == b["runs"]
    r = stability_at_init("he", 5, 16, 3, 0.1, seeds=2, points=20, out_dim=3, n_samples=8)
    assert r["method"] == "jacobian"
    assert math.isnan(r["grad_sq_measured"]) and math.isnan(r["p_bound_theory"])
    assert r["grad_sq_theory"] == pytest.approx(3 * 2.0)
    with pytest.raises(ValueError, match="seeds: expected a positive integer"):
        stability_at_init("he", 5, 16, 3, 0.1, seeds=0)


def test_sphere_points_are_unit_vectors():
    x = sphere_points(100, 7, generator=seeded(0), dtype=F64)
    assert x.shape == (100, 7)
    torch.testing.assert_close(x.norm(dim=1), torch.ones(100, dtype=F64), rtol=1e-14, atol=0)


def test_exact_from_gradients_equals_the_exact_method():
    net = rl.mlp(7, 32, 3, init="he", generator=torch.Generator().manual_seed(2),
                 dtype=torch.float64)  # fmt: skip
    x = torch.randn(50, 7, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    grads = rl.metrics.input_gradients(net, x)
    for region in ("ball", "sphere"):
        for eps in (0.05, 0.3):
            a = rl.metrics.exact_from_gradients(grads, eps, region)
            b = rl.perturbation_stability(net, x, eps, method="exact", region=region)
            assert (a.value, a.stderr, a.rms) == pytest.approx((b.value, b.stderr, b.rms))
            assert torch.allclose(a.per_point, b.per_point)
    with pytest.raises(ValueError, match="no closed form on region 'linf_ball'"):
        rl.metrics.exact_from_gradients(grads, 0.1, "linf_ball")


def test_stability_table_is_the_grid_of_single_measurements():
    from robustlab.metrics.at_init import TABLE_COLUMNS, stability_table

    ticks = []
    rows = stability_table(["lecun", "he"], 6, [8], [2, 3], [0.1], seeds=2, points=20,
                           progress=lambda: ticks.append(1))  # fmt: skip
    assert len(rows) == 4 and len(ticks) == 4 * 2  # one tick per network
    assert [(r["init"], r["depth"]) for r in rows] == [
        ("lecun", 2), ("lecun", 3), ("he", 2), ("he", 3)
    ]  # fmt: skip
    one = stability_at_init("he", 6, 8, 3, 0.1, seeds=2, points=20)
    assert rows[3] == {c: one[c] for c in TABLE_COLUMNS}
