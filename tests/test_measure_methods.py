"""``robustlab measure --method pgd`` and ``--methods exact,pgd``: the worst case beside P.

The CLI prints what rl.measure computes; its pgd numbers are the library's PGD
(rl.metrics.adversarial) on the same networks, points and seeds, and the ratio it prints is
the worst case over the average it prints beside it, in every output format.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch

import robustlab as rl
from robustlab.cli import FORMATS, main
from robustlab.measure import measure_at_init, split_methods
from robustlab.metrics._adversarial import norm_of_region
from robustlab.metrics.at_init import WORST_COLUMNS, sphere_points, stability_table

D, M, L, N = 6, 16, 3, 20  # input dim, width, depth, points
TEXT = ("init", "method", "model", "data", "region", "output")  # the columns that are not numbers
AT_INIT = ["measure", "--init", "he", "--in-dim", str(D), "--width", str(M), "--depth", str(L),
           "--points", str(N)]  # fmt: skip


def run(capsys, *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    return out


def rows_of(text: str, fmt: str) -> list[dict]:
    """The rows a --format printed, numbers as floats (the table's to 6 digits)."""
    if fmt == "json":
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    if fmt == "csv":
        raw = list(csv.DictReader(io.StringIO(text)))
    else:
        header, *lines = text.strip().splitlines()
        raw = [dict(zip(header.split(), line.split(), strict=True)) for line in lines]
    return [{k: v if k in TEXT else float(v) for k, v in r.items()} for r in raw]


def library_pgd(seed: int, eps: float, norm: str) -> rl.AdversarialResult:
    """PGD on seed ``seed``'s network and points, as measure draws them at init."""
    net = rl.mlp(D, M, L, init="he", generator=torch.Generator().manual_seed(seed))
    gen = torch.Generator().manual_seed(10_000 + seed)
    x = sphere_points(N, D, generator=gen)
    return rl.adversarial(net, x, eps, norm=norm, generator=gen)


@pytest.mark.parametrize(("region", "norm"), [("ball", "l2"), ("linf_ball", "linf")])
def test_pgd_at_init_is_the_librarys_pgd(capsys, region, norm):
    out = run(capsys, *AT_INIT, "--seeds", "2", "--eps", "0.2", "--region", region,
              "--method", "pgd", "--format", "json")  # fmt: skip
    (row,) = json.loads(out)
    assert list(row) == list(WORST_COLUMNS) and row["method"] == "pgd"
    a, b = library_pgd(0, 0.2, norm), library_pgd(1, 0.2, norm)
    assert row["worst_mean"] == pytest.approx((a.value + b.value) / 2, rel=1e-12)
    assert row["worst_stderr"] == pytest.approx(abs(a.value - b.value) / 2, rel=1e-9)
    # one seed: its own standard error over points
    (one,) = json.loads(run(capsys, *AT_INIT, "--seeds", "1", "--eps", "0.2", "--region",
                            region, "--method", "pgd", "--format", "json"))  # fmt: skip
    assert (one["worst_mean"], one["worst_stderr"]) == pytest.approx((a.value, a.stderr))


@pytest.mark.parametrize("fmt", FORMATS)
def test_both_values_and_their_ratio_in_every_format(capsys, fmt):
    argv = [*AT_INIT, "--seeds", "2", "--eps", "0.1", "0.2", "--format", fmt]
    rows = rows_of(run(capsys, *argv, "--methods", "exact,mc,pgd", "--samples", "8"), fmt)
    assert [(r["eps"], r["method"]) for r in rows] == [
        (0.1, "exact"), (0.1, "mc"), (0.2, "exact"), (0.2, "mc")
    ]  # fmt: skip
    alone = rows_of(run(capsys, *argv, "--method", "exact"), fmt)
    worst = rows_of(run(capsys, *argv, "--method", "pgd"), fmt)
    tol = 1e-12 if fmt != "table" else 2e-5  # the table prints 6 significant digits
    for r in rows:
        p = next(a for a in alone if a["eps"] == r["eps"])["p_mean"]
        w = next(a for a in worst if a["eps"] == r["eps"])["worst_mean"]
        if r["method"] == "exact":  # the same P as --method exact
            assert r["p_mean"] == pytest.approx(p, rel=tol)
        assert r["worst_mean"] == pytest.approx(w, rel=tol)  # the same worst case as pgd alone
        assert r["worst_over_p"] == pytest.approx(r["worst_mean"] / r["p_mean"], rel=tol)
        assert 1 < r["worst_over_p"] < 10  # a worst case above the average (4.25 if linear)


def test_one_average_method_gives_the_rows_it_always_gave():
    kwargs = dict(seeds=2, points=N, region="sphere")
    old = stability_table(["lecun", "he"], D, [8], [2, 3], [0.1], method="auto", **kwargs)
    assert measure_at_init(["lecun", "he"], D, [8], [2, 3], [0.1], **kwargs) == old


@pytest.fixture
def saved(tmp_path):
    """A saved robustlab model and unlabelled points."""
    net = rl.mlp(D, M, L, init="he", generator=torch.Generator().manual_seed(0))
    x = np.random.default_rng(0).standard_normal((N, D)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    rl.save_model(net, tmp_path / "m.pt")
    return ["--model", str(tmp_path / "m.pt"), "--data", str(tmp_path / "x.npz")], net, x


@pytest.mark.parametrize("fmt", FORMATS)
def test_saved_model_pgd_and_ratio(capsys, saved, fmt):
    flags, net, x = saved
    x = torch.from_numpy(x)
    ref_p = rl.perturbation_stability(net, x, 0.1)
    ref_w = rl.adversarial(net, x, 0.1, generator=torch.Generator().manual_seed(0))
    (row,) = rows_of(run(capsys, "measure", *flags, "--methods", "exact,pgd", "--format", fmt),
                     fmt)  # fmt: skip
    tol = 1e-9 if fmt != "table" else 2e-5
    assert row["method"] == "exact" and row["points"] == N
    assert row["p_value"] == pytest.approx(ref_p.value, rel=tol)
    assert row["worst_value"] == pytest.approx(ref_w.value, rel=tol)
    assert row["worst_stderr"] == pytest.approx(ref_w.stderr, rel=tol)
    assert row["worst_over_p"] == pytest.approx(row["worst_value"] / row["p_value"], rel=tol)
    (alone,) = rows_of(run(capsys, "measure", *flags, "--method", "pgd", "--format", fmt), fmt)
    assert alone["method"] == "pgd" and "p_value" not in alone and "worst_over_p" not in alone
    assert alone["worst_value"] == pytest.approx(row["worst_value"], rel=1e-12)


def one_error_line(capsys, *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    (line,) = err.splitlines()
    assert line.startswith("robustlab: error: ")
    return line


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--method", "hessian"], "argument --method: invalid choice: 'hessian'"),
        (["--methods", "exact,hessian"], "argument --methods: unknown method 'hessian'; choices:"),
        (["--methods", "pgd,pgd"], "argument --methods: method 'pgd' is given twice"),
        (["--methods", ""], "argument --methods: unknown method ''"),
        (["--methods", "exact,pgd", "--method", "mc"], "not allowed with argument --methods"),
        (["--method", "pgd", "--region", "cube"], "argument --region: invalid choice: 'cube'"),
    ],
)
def test_bad_methods_exit_2(capsys, flags, message):
    assert message in one_error_line(capsys, *AT_INIT, "--seeds", "1", *flags)


def test_pgd_refuses_a_labelled_output(capsys, saved, tmp_path):
    flags, _, x = saved
    np.savez(tmp_path / "xy.npz", x=x, y=np.sign(x[:, 0]))
    flags = [*flags[:2], "--data", str(tmp_path / "xy.npz"), "--output", "margin"]
    line = one_error_line(capsys, "measure", *flags, "--methods", "exact,pgd")
    assert "--output: pgd measures the worst change of f" in line


def test_the_library_checks_method_names_and_regions():
    assert split_methods("pgd") == ((), True)
    assert split_methods(["pgd", "mc", "exact"]) == (("mc", "exact"), True)
    assert split_methods(("auto",)) == (("auto",), False)
    with pytest.raises(ValueError, match="no method given"):
        split_methods([])
    assert [norm_of_region(r) for r in ("ball", "sphere", "linf_ball")] == ["l2", "l2", "linf"]
    with pytest.raises(ValueError, match="unknown region 'cube'; choices: ball, sphere"):
        norm_of_region("cube")
