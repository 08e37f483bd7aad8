"""rl.cnn and rl.resnet: init variances of conv kernels against their fan-in table, specs,
shapes, determinism, save/load round trips.

The table is written out here as the independent reference (He et al., ICCV 2015: a conv
kernel's fan-in is C_in * kh * kw). For n i.i.d. N(0, s) entries, ``mean(w^2) / s`` has
standard deviation ``sqrt(2 / n)``; the tolerance is Z = 5 of those.
"""

from __future__ import annotations

import math

import pytest
import torch

import robustlab as rl
from robustlab.init import get_init, init_schemes

Z = 5.0
C, W, KS, K = 3, 48, 3, 10  # input channels, width, kernel size, outputs

# variance of (multiplier * kernel) entries per scheme, as (first, hidden, last) functions of
# the layer's (fan_in, fan_out)
TABLE = {
    "lecun": (lambda i, o: 1 / i, lambda i, o: 1 / i, lambda i, o: 1 / i),
    "he": (lambda i, o: 2 / i, lambda i, o: 2 / i, lambda i, o: 2 / i),
    "ntk": (lambda i, o: 2 / o, lambda i, o: 2 / i, lambda i, o: 1.0),
    "xavier": (lambda i, o: 2 / (i + o), lambda i, o: 1 / i, lambda i, o: 2 / (i + o)),
    "ntk_param": (lambda i, o: 2 / i, lambda i, o: 2 / i, lambda i, o: 1 / i),
}
ROLE = {"first": 0, "hidden": 1, "last": 2}


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def fans(depth_layers: int) -> list[tuple[str, int, int]]:
    """(role, fan_in, fan_out) of the weight layers: first conv, hidden convs, head."""
    k2 = KS * KS
    return (
        [("first", C * k2, W * k2)] + [("hidden", W * k2, W * k2)] * depth_layers + [("last", W, K)]
    )


def check_variance(w: torch.Tensor, var: float, what: str) -> None:
    w = w.detach().double().flatten()
    ratio = float(w.pow(2).mean()) / var
    assert abs(ratio - 1) < Z * math.sqrt(2 / w.numel()), f"{what}: {ratio:.4f} (n={w.numel()})"


@pytest.mark.parametrize("name", sorted(TABLE))
def test_conv_init_variances_follow_the_fan_in_table(name):
    net = rl.cnn((C, 8, 8), W, 4, out_dim=K, init=name, generator=seeded(0))
    res = rl.resnet((C, 8, 8), W, 1, out_dim=K, init=name, generator=seeded(1))
    ntk_param = get_init(name).parameterization == "ntk"
    for model, hidden in ((net, 2), (res, 2)):
        layers, spec = model.weight_layers(), model.spec
        assert len(layers) == len(spec.multipliers) == hidden + 2
        for i, ((role, fi, fo), layer) in enumerate(zip(fans(hidden), layers, strict=True)):
            s = TABLE[name][ROLE[role]](fi, fo)
            c = spec.multipliers[i]
            assert spec.fan_in[i] == fi
            assert spec.variances[i] == pytest.approx(s, rel=1e-12)
            assert c == pytest.approx(math.sqrt(s) if ntk_param else 1.0, rel=1e-12)
            assert layer.multiplier == c
            check_variance(layer.weight, s / (c * c), f"{name} {type(model).__name__} layer {i}")
            assert layer.bias is None


def test_layer_variance_reproduces_the_mlp_table():
    """For an MLP's layers (fans d->m, m->m, m->k) layer_variance gives variances()."""
    d, m, k = 30, 70, 5
    for name in init_schemes():
        scheme = get_init(name)
        got = (
            scheme.layer_variance("first", d, m),
            scheme.layer_variance("hidden", m, m),
            scheme.layer_variance("last", m, k),
        )
        assert got == pytest.approx(scheme.variances(d, m, k), rel=1e-15), name
    with pytest.raises(ValueError, match="unknown layer role 'middle'"):
        get_init("he").layer_variance("middle", 3, 3)
    with pytest.raises(ValueError, match="fan_in: expected a positive integer"):
        get_init("he").layer_variance("first", 0, 3)


def test_ntk_param_cnn_has_the_function_law_of_he():
    """NTK parameterization: weights N(0, 1) times sqrt(2/fan_in) gives He's function law;
    with the same draws the two networks compute the same function."""
    he = rl.cnn((C, 6, 6), 8, 3, init="he", generator=seeded(3), dtype=torch.float64)
    ntk = rl.cnn((C, 6, 6), 8, 3, init="ntk_param", generator=seeded(3), dtype=torch.float64)
    x = torch.randn(4, C, 6, 6, generator=seeded(4), dtype=torch.float64)
    # He's last layer is 2/m, ntk_param's 1/m: outputs differ by sqrt(2) exactly
    torch.testing.assert_close(he(x), math.sqrt(2) * ntk(x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("family", ["cnn", "resnet"])
def test_shapes_spec_params_and_determinism(family):
    build = {"cnn": rl.cnn, "resnet": rl.resnet}[family]
    kw = {"norm": "batch"} if family == "resnet" else {}
    a = build((2, 5, 7), 6, 2, out_dim=4, init="he", bias=True, generator=seeded(0), **kw)
    b = build((2, 5, 7), 6, 2, out_dim=4, init="he", bias=True, generator=seeded(0), **kw)
    x = torch.randn(3, 2, 5, 7)
    out = a(x)
    assert out.shape == (3, 4)
    assert torch.equal(out, b(x)) and torch.equal(a(x.reshape(3, -1)), out)  # flat inputs too
    assert a.spec.n_params == sum(p.numel() for p in a.parameters())
    assert a.spec.in_dim == 70 and a.spec.family == family
    c = build((2, 5, 7), 6, 2, out_dim=4, init="he", bias=True, generator=seeded(1), **kw)
    assert not torch.equal(c(x), out)  # another seed, other weights


@pytest.mark.parametrize("family", ["cnn", "resnet"])
def test_save_load_round_trip(tmp_path, family):
    build = {"cnn": rl.cnn, "resnet": rl.resnet}[family]
    kw = {"norm": "batch"} if family == "resnet" else {}
    net = build((1, 6, 6), 5, 2, out_dim=3, init="ntk_param", generator=seeded(2), **kw)
    if family == "resnet":  # non-trivial BatchNorm statistics travel in the state dict
        net.train()
        net(torch.randn(16, 1, 6, 6, generator=seeded(3)))
        net.eval()
    x = torch.randn(4, 1, 6, 6, generator=seeded(4))
    rl.save_model(net, tmp_path / "m.pt")
    torch.save(net.state_dict(), tmp_path / "sd.pt")  # bare, with robustlab's record
    for name in ("m.pt", "sd.pt"):
        loaded = rl.load_model(tmp_path / name).eval()
        assert type(loaded) is type(net) and loaded.spec == net.spec
        torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)


def test_bad_arguments():
    cases = [
        (lambda: rl.cnn((3, 8), 4, 2), r"in_shape must be \(channels, height, width\)"),
        (lambda: rl.cnn((3, 8, 8), 4, 1), "a CNN needs depth >= 2"),
        (lambda: rl.cnn((3, 8, 8), 0, 2), "width: expected a positive integer"),
        (lambda: rl.cnn((3, 8, 8), 4, 2, kernel_size=2), "kernel_size must be odd"),
        (lambda: rl.cnn((3, 8, 8), 4, 2, init="glorot"), "unknown init scheme 'glorot'"),
        (lambda: rl.resnet((3, 8, 8), 4, 0), "depth: expected a positive integer"),
        (lambda: rl.resnet((3, 8, 8), 4, 1, norm="layer"), "unknown norm 'layer'"),
        (lambda: rl.resnet((3, 8, 8), 4, 1, norm=["batch"]), "unknown norm"),
    ]
    for build, message in cases:
        with pytest.raises(ValueError, match=message):
            build()
    net = rl.cnn((3, 8, 8), 4, 2)
    with pytest.raises(ValueError, match=r"x of shape \(2, 3, 7, 7\) does not fit the model"):
        rl.perturbation_stability(net, torch.randn(2, 3, 7, 7), 0.1)


def test_networks_pickle_and_copy_with_their_record():
    """The state-dict record is a hook; the networks must still pickle (process pools) and
    deep-copy (trainers keep the initial model), and keep recording their spec."""
    import copy
    import pickle

    for net in (rl.mlp(3, 4, 2), rl.cnn((1, 4, 4), 2, 2), rl.resnet((1, 4, 4), 2, 1)):
        for other in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
            record = other.state_dict()._metadata[""]["robustlab"]
            assert record == {"family": net.spec.family, "spec": net.spec.to_dict()}
