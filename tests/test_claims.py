"""Claims C1..C5 on synthetic result rows with known scaling exponents."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from robustlab.claims import CLAIMS, evaluate, fit_slope
from robustlab.sweep.schema import COLUMNS

WIDTHS = (8, 16, 32, 64, 128)
DEPTHS = (2, 3, 4, 5, 6)


def rows(
    kind: str,
    slope: float,
    *,
    seeds=range(5),
    noise=0.05,
    rwc=0.02,
    init="lecun",
    regime="standard",
    n_train=None,
    eps=0.1,
    seed=0,
    **extra,
) -> pd.DataFrame:
    """Rows with log P = slope * x + noise, x = log width (kind "width") or depth ("depth").

    kind "width": widths WIDTHS at depth 2 (p = 10 m; N = 10_000 puts every width at p < N);
    kind "depth": depths DEPTHS at width 512 (p = 10^6 > N = 1000).
    """
    rng = np.random.default_rng(seed)
    out = []
    for s in seeds:
        for v in WIDTHS if kind == "width" else DEPTHS:
            m, L = (v, 2) if kind == "width" else (512, v)
            x = np.log(m) if kind == "width" else L
            r = dict.fromkeys(COLUMNS)
            r |= {
                "sweep": "t",
                "cell": f"{init}-{regime}-{m}-{L}-{s}",
                "seed": s,
                "width": m,
                "depth": L,
                "init": init,
                "regime": regime,
                "alpha": 1.0,
                "dataset": "teacher",
                "in_dim": 10,
                "out_dim": 1,
                "n_params": 10 * m if kind == "width" else 10**6,
                "n_train": n_train or (10_000 if kind == "width" else 1000),
                "status": "ok",
                "message": "",
                "at": "final",
                "eps": eps,
                "method": "exact",
                "region": "ball",
                "model": "network",
                "rel_weight_change": rwc,
                "p_value": eps * np.exp(slope * x + noise * rng.normal()),
            }
            out.append(r | extra)
    return pd.DataFrame(out, columns=list(COLUMNS))


def claim(df: pd.DataFrame, cid: str, **kw) -> pd.Series:
    out = evaluate(df, n_boot=500, **kw)
    return out.set_index("claim").loc[cid]


def test_one_row_per_claim_in_order_with_documented_columns():
    out = evaluate(rows("width", 0.5), n_boot=200)
    assert list(out["claim"]) == ["C1", "C2", "C3", "C4", "C5"] == [c.id for c in CLAIMS]
    for col in (
        "claim",
        "statement",
        "verdict",
        "slope",
        "ci_low",
        "ci_high",
        "n",
        "n_groups",
        "groups_supported",
        "groups_contradicted",
        "x",
        "expected_sign",
        "median_rel_weight_change",
        "reason",
        "ci_method",
    ):
        assert col in out.columns
    assert list(out["expected_sign"]) == ["+", "-", "-", "+", "-"]
    assert list(out["x"]) == ["log width", "log width", "depth", "depth", "log width"]


def test_c1_supported_with_interval_around_true_exponent():
    c = claim(rows("width", 0.5), "C1")
    assert c["verdict"] == "supported"
    assert c["ci_low"] < 0.5 < c["ci_high"]
    assert c["ci_low"] <= c["slope"] <= c["ci_high"]
    assert c["n"] == 25 and c["n_groups"] == 1 and c["groups_supported"] == 1
    assert c["ci_method"] == "bootstrap over seeds"
    assert c["median_rel_weight_change"] == pytest.approx(0.02)


def test_c1_contradicted_and_c2_supported_by_falling_P():
    df = rows("width", -0.5)
    assert claim(df, "C1")["verdict"] == "contradicted"
    over = rows("width", -0.5, n_train=50)  # p = 10 m > 50 at every width
    c2 = claim(over, "C2")
    assert c2["verdict"] == "supported" and c2["ci_low"] < -0.5 < c2["ci_high"]


def test_flat_noisy_P_is_inconclusive():
    c = claim(rows("width", 0.0, noise=0.3, seeds=range(4)), "C1")
    assert c["verdict"] == "inconclusive"
    assert c["ci_low"] < 0 < c["ci_high"]


def test_wrong_side_of_p_vs_n_is_regime_not_reached_with_reason():
    c2 = claim(rows("width", 0.5), "C2")  # every width has p < N
    assert c2["verdict"] == "regime not reached"
    assert "p > N" in c2["reason"] and "N=10000" in c2["reason"]
    c1 = claim(rows("width", 0.5, n_train=50), "C1")
    assert c1["verdict"] == "regime not reached"
    assert c1["reason"] == "no widths with p < N (smallest p=80, N=50)"


def test_c3_lazy_lecun_depth_helps():
    c = claim(rows("depth", -0.3, rwc=0.02), "C3")
    assert c["verdict"] == "supported" and c["x"] == "depth"
    assert c["ci_low"] < -0.3 < c["ci_high"]


def test_c3_on_non_lazy_runs_is_regime_not_reached():
    c = claim(rows("depth", -0.3, rwc=0.5), "C3")
    assert c["verdict"] == "regime not reached"
    assert c["reason"] == "no runs with rel_weight_change <= 0.1 (median 0.5)"
    assert c["median_rel_weight_change"] == pytest.approx(0.5)
    assert claim(rows("depth", -0.3, rwc=0.5), "C3", lazy_threshold=0.6)["verdict"] == "supported"


def test_c4_pools_he_and_ntk_groups():
    df = pd.concat([rows("depth", 0.2, init="he"), rows("depth", 0.3, init="ntk", seed=1)])
    c = claim(df, "C4")
    assert c["verdict"] == "supported" and c["n_groups"] == 2 and c["groups_supported"] == 2
    assert 0.2 < c["slope"] < 0.3
    assert claim(df, "C3")["verdict"] == "no data"  # no LeCun rows


def test_c5_needs_non_lazy_two_layer_runs():
    lazy = rows("width", -0.5, regime="mean_field", rwc=0.05)
    c = claim(lazy, "C5")
    assert c["verdict"] == "regime not reached" and "rel_weight_change >= 0.3" in c["reason"]
    c = claim(rows("width", -0.5, regime="mean_field", rwc=0.6), "C5")
    assert c["verdict"] == "supported" and c["ci_low"] < -0.5 < c["ci_high"]


def test_missing_claims_have_no_data():
    out = evaluate(rows("depth", -0.3), n_boot=100).set_index("claim")
    assert list(out.loc[["C4", "C5"], "verdict"]) == ["no data", "no data"]
    empty = evaluate(pd.DataFrame(), n_boot=100)
    assert list(empty["verdict"]) == ["no data"] * 5


def test_only_final_ok_network_rows_are_used():
    good = rows("width", 0.5)
    noise = pd.concat(
        [
            rows("width", -2.0, at="init", seed=1),
            rows("width", -2.0, model="centred", seed=2),
            rows("width", -2.0, status="diverged", seed=3),
        ]
    )
    base = claim(good, "C1")
    mixed = claim(pd.concat([good, noise]), "C1")
    assert mixed["slope"] == pytest.approx(base["slope"]) and mixed["n"] == base["n"]


def test_groups_by_eps_and_fixed_effects_pool():
    # P is linear in eps: two radii are two groups with the same exponent
    df = pd.concat([rows("width", 0.5, eps=0.1), rows("width", 0.5, eps=0.5)])
    c = claim(df, "C1")
    assert c["n_groups"] == 2 and c["n"] == 50
    assert c["slope"] == pytest.approx(claim(rows("width", 0.5), "C1")["slope"])
    per = evaluate(df, n_boot=100, by_group=True)
    c1 = per[per["claim"] == "C1"]
    assert sorted(c1["eps"]) == [0.1, 0.5] and set(c1["verdict"]) == {"supported"}
    assert set(per["claim"]) == {"C1", "C2", "C3", "C4", "C5"}


def test_missing_columns_raise_with_their_names():
    with pytest.raises(ValueError, match="rel_weight_change"):
        evaluate(rows("width", 0.5).drop(columns="rel_weight_change"))


def test_bootstrap_is_seeded():
    df = rows("width", 0.5)
    a, b = evaluate(df, n_boot=300, seed=3), evaluate(df, n_boot=300, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert evaluate(df, n_boot=300, seed=4).loc[0, "ci_low"] != a.loc[0, "ci_low"]


def test_interval_contains_estimate_and_shrinks_with_more_seeds():
    few = claim(rows("width", 0.5, seeds=range(3), noise=0.2), "C1")
    many = claim(rows("width", 0.5, seeds=range(30), noise=0.2), "C1")
    for c in (few, many):
        assert c["ci_low"] <= c["slope"] <= c["ci_high"]
    assert many["ci_high"] - many["ci_low"] < 0.6 * (few["ci_high"] - few["ci_low"])


def test_single_seed_falls_back_to_t_interval():
    df = rows("width", 0.5, seeds=[7], noise=0.1)
    c = claim(df, "C1")
    ref = stats.linregress(np.log(df["width"]), np.log(df["p_value"]))
    half = stats.t.ppf(0.975, len(df) - 2) * ref.stderr
    assert c["ci_method"] == "t (OLS)" and "single seed" in c["reason"]
    assert c["slope"] == pytest.approx(ref.slope)
    assert (c["ci_low"], c["ci_high"]) == pytest.approx((ref.slope - half, ref.slope + half))


def _loop_bootstrap(x, y, seeds, groups, counts):
    """Reference: materialise each resample and refit by demeaned least squares."""
    ids = np.unique(seeds)
    out = []
    for cnt in counts:
        take = np.concatenate(
            [np.flatnonzero(seeds == s).repeat(c) for s, c in zip(ids, cnt, strict=True)]
        )
        xb, yb, gb = x[take], y[take], groups[take]
        xd = xb - pd.Series(xb).groupby(gb).transform("mean").to_numpy()
        yd = yb - pd.Series(yb).groupby(gb).transform("mean").to_numpy()
        out.append(np.sum(xd * yd) / np.sum(xd * xd))
    return np.array(out)


def test_vectorized_bootstrap_matches_a_loop_over_resamples():
    rng = np.random.default_rng(5)
    seeds = np.repeat(np.arange(6), 8)
    groups = np.tile(np.repeat([0, 1], 4), 6)
    x = np.tile([1.0, 2, 3, 4, 2, 3, 5, 8], 6)
    y = 0.7 * x + 3.0 * groups + rng.normal(0, 0.3, x.size)
    slope, lo, hi, how = fit_slope(x, y, seeds, 400, 0.9, np.random.default_rng(11), groups=groups)
    counts = np.random.default_rng(11).multinomial(6, np.full(6, 1 / 6), size=400)
    ref = np.quantile(_loop_bootstrap(x, y, seeds, groups, counts), [0.05, 0.95])
    assert how == "bootstrap over seeds"
    assert (lo, hi) == pytest.approx(tuple(ref), rel=1e-10)
    demeaned = _loop_bootstrap(x, y, seeds, groups, np.ones((1, 6), dtype=int))[0]
    assert slope == pytest.approx(demeaned, rel=1e-12)


def test_fixed_effects_remove_group_offsets():
    x = np.array([1.0, 2, 3, 3, 4, 5])
    groups = np.array([0, 0, 0, 1, 1, 1])
    y = -0.5 * x + 10.0 * groups  # the offset would flip a naive pooled slope
    seeds = np.array([0, 1, 2, 0, 1, 2])
    slope, lo, hi, _ = fit_slope(x, y, seeds, 200, 0.95, np.random.default_rng(0), groups=groups)
    assert slope == pytest.approx(-0.5) and lo == pytest.approx(-0.5) and hi == pytest.approx(-0.5)
    assert fit_slope(x, y, seeds, 200, 0.95, np.random.default_rng(0))[0] > 0


def test_constant_x_has_no_slope():
    slope, lo, hi, how = fit_slope([1.0, 1.0], [0.0, 1.0], [0, 1], 10, 0.95, None)
    assert np.isnan(slope) and np.isnan(lo) and np.isnan(hi) and how == "none"


def test_claim_slope_is_pooled_within_groups():
    # depth 3 covers only the wide half and sits 1000x lower: pooling raw points would
    # read that offset as P falling with width; the fixed-effects slope stays at 0.5
    deep = rows("width", 0.5, depth=3, seed=1)
    deep = deep[deep["width"] >= 32].assign(p_value=lambda d: d["p_value"] * 1e-3)
    c = claim(pd.concat([rows("width", 0.5), deep]), "C1")
    assert c["n_groups"] == 2 and c["verdict"] == "supported"
    assert c["ci_low"] < 0.5 < c["ci_high"]


def test_store_dtypes_with_missing_values_are_handled():
    # the store loads INTEGER as Int64 and TEXT as nullable string (pd.NA)
    df = pd.concat([rows("width", 0.5), rows("width", -2.0, model=None, status=None, seed=1)])
    dtypes = {
        c: {"INTEGER": "Int64", "TEXT": "string"}.get(t, "float64") for c, t in COLUMNS.items()
    }
    stored = df.astype(dtypes)
    assert stored["model"].isna().sum() == 25
    pd.testing.assert_frame_equal(evaluate(stored, n_boot=200), evaluate(df, n_boot=200))
    assert evaluate(stored, n_boot=200).loc[0, "verdict"] == "supported"
