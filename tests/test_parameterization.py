"""Parameterizations are objects of the init registry; networks record theirs; theory reads
a network's recorded variances."""

from __future__ import annotations

import pytest
import torch

import robustlab as rl
from robustlab.init import PARAMETERIZATIONS, get_init
from robustlab.models import build_model
from robustlab.theory import expected_grad_sq_norm, grad_sq_norm


def seeded(s: int) -> torch.Generator:
    return torch.Generator().manual_seed(s)


def test_mean_field_is_a_parameterization_recorded_in_the_spec():
    he = get_init("he")
    mf = he.as_mean_field()
    assert mf.parameterization == "mean_field" and mf.name == "he"
    assert he.with_parameterization("mean_field") == mf and mf.as_mean_field() is mf
    d, m = 6, 50
    assert mf.variances(d, m, 1) == pytest.approx((2 / d, 2 / m, 1 / m**2))
    assert mf.multipliers(d, m, 1) == (1.0, 1.0, 1 / m)
    a = rl.mlp(d, m, 2, init=mf, generator=seeded(0))
    b = rl.mlp(d, m, 2, init="he", mean_field=True, generator=seeded(0))
    assert a.spec == b.spec and a.spec.parameterization == "mean_field" and a.spec.mean_field
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    c = build_model("mlp", (d,), m, 2, init="he", parameterization="mean_field",
                    generator=seeded(0))  # fmt: skip
    assert c.spec == a.spec


def test_parameterizations_refuse_what_they_do_not_define():
    with pytest.raises(ValueError, match="needs a network of depth 2, got depth 3"):
        rl.mlp(4, 8, 3, init=get_init("lecun").as_mean_field())
    with pytest.raises(ValueError, match="needs a standard one"):
        get_init("ntk_param").as_mean_field()
    with pytest.raises(ValueError, match="model family 'cnn' has no mean_field"):
        build_model("cnn", (1, 8, 8), 4, 2, parameterization="mean_field")
    with pytest.raises(ValueError, match="defined for MLPs only"):
        get_init("he").as_mean_field().layer_init("first", 9, 4)
    assert set(PARAMETERIZATIONS) == {"standard", "ntk", "mean_field"}


@pytest.mark.parametrize(
    ("init", "depth", "mean_field"),
    [("lecun", 3, False), ("ntk_param", 4, False), ("he", 2, True), ("lecun", 2, True)],
)
def test_theory_from_recorded_variances_matches_monte_carlo(init, depth, mean_field):
    """E||grad_x f||^2 at init from spec.variances against an average over 400 networks."""
    d, m = 5, 64
    x = torch.nn.functional.normalize(torch.randn(1, d, generator=seeded(1), dtype=torch.float64))
    sq = []
    for s in range(400):
        net = rl.mlp(d, m, depth, init=init, mean_field=mean_field, generator=seeded(s),
                     dtype=torch.float64)  # fmt: skip
        xi = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(net(xi).sum(), xi)
        sq.append(float(g.square().sum()))
    theory = grad_sq_norm(net.spec.variances, d, m, depth)
    mc = torch.tensor(sq, dtype=torch.float64)
    assert abs(mc.mean().item() - theory) < 4 * mc.std().item() / 20  # 4 standard errors
    if not mean_field:
        assert theory == pytest.approx(expected_grad_sq_norm(init, d, m, depth), rel=1e-12)


def test_records_from_before_mean_field_was_a_parameterization_still_train():
    from robustlab.models._mlp import MLPSpec, mlp_from_spec

    new = rl.mlp(5, 8, 2, init="he", mean_field=True, generator=seeded(0))
    old = {**new.spec.to_dict(), "parameterization": "standard"}  # how records used to read
    rebuilt = mlp_from_spec(old)
    assert rebuilt.spec == new.spec and rebuilt.spec.parameterization == "mean_field"
    rebuilt.load_state_dict(new.state_dict())
    ds = rl.data.load("sphere", n_train=16, in_dim=5, task="regression", dtype=torch.float64)
    res = rl.train(rebuilt.double(), ds, rl.TrainConfig(regime="mean_field", steps=2))
    assert len(res.history["loss"]) == 3
    assert MLPSpec(**{**old, "mean_field": False}).parameterization == "standard"
    assert build_model("mlp", (5,), 8, 2, mean_field=True).spec.parameterization == "mean_field"
