"""The estimators of the second claims protocol, checked by simulation and against closed
forms: equivalence (TOST) size, Holm's family-wise error, peak and crossover coverage."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from robustlab.claims.estimators import (
    crossover,
    equivalence,
    holm,
    peak_location,
    scaling_exponent,
    t_pvalue,
)

SEEDS = 5
RUNS = 2000


def test_peak_location_is_the_vertex_of_a_parabola():
    x = np.array([0.0, 0.4, 1.0, 1.3, 2.0])  # uneven spacing
    for x0 in (0.55, 1.0, 1.2):
        y = 3.0 - 2.0 * (x - x0) ** 2
        if 0 < np.argmax(y) < x.size - 1:
            assert peak_location(x, y) == pytest.approx(x0, abs=1e-12)
    assert math.isnan(peak_location(x, -x))  # highest at an end: no interior peak
    # a plateau: the parabola through its first point and their neighbours, midway
    assert peak_location(x, np.array([0.0, 1.0, 1.0, 1.0, 0.0])) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="increasing"):
        peak_location(x[::-1], x)


def test_peak_interval_covers_a_known_peak():
    """Per-seed curves log P = c - k (x - x0 - u_s)^2 + noise on a log-width grid; the t
    interval over 5 seeds of the per-seed peaks covers x0 in at least 90% of simulations."""
    rng = np.random.default_rng(0)
    x = np.log(np.array([8, 12, 16, 24, 32, 48, 64, 96, 128], float))
    x0, covered, seen = math.log(40.0), 0, 0
    for _ in range(RUNS // 4):
        peaks = []
        for _ in range(SEEDS):
            shift = 0.1 * rng.normal()  # the data draw moves a seed's peak
            y = 1.0 - 0.8 * (x - x0 - shift) ** 2 + 0.02 * rng.normal(size=x.size)
            peaks.append(peak_location(x, y))
        peaks = np.array(peaks)
        if np.isnan(peaks).any():
            continue
        seen += 1
        low, high = scaling_t(peaks)
        covered += low <= x0 <= high
    assert seen > 0.95 * (RUNS // 4)
    assert covered / seen >= 0.90, covered / seen


def scaling_t(values) -> tuple[float, float]:
    from robustlab.claims.stats import t_interval

    _, low, high = t_interval(values)
    return low, high


def test_scaling_exponent_covers_a_known_exponent():
    """Peaks at N^k (k = 0.9) times a per-seed factor, three N: the t interval of the per-seed
    exponents covers k in at least 90% of simulations."""
    rng = np.random.default_rng(1)
    log_n = np.log(np.array([150.0, 300.0, 600.0]))
    covered = 0
    for _ in range(RUNS // 4):
        seeds = np.repeat(np.arange(SEEDS), log_n.size)
        ln = np.tile(log_n, SEEDS)
        lp = 0.9 * ln + np.repeat(0.2 * rng.normal(size=SEEDS), log_n.size)
        lp = lp + 0.08 * rng.normal(size=lp.size)
        _, low, high = scaling_exponent(ln, lp, seeds)
        covered += low <= 0.9 <= high
    assert covered / (RUNS // 4) >= 0.90


@pytest.mark.parametrize("outside", [1.0, 1.5])
def test_flat_is_rare_for_a_true_effect_at_or_beyond_the_margin(outside):
    """Per-seed values with mean at the margin (or beyond): TOST calls them flat in at most
    5% of simulations (its size), at 5 and 10 seeds."""
    rng = np.random.default_rng(2)
    margin = math.log(1.05)
    for n, sign in itertools.product((5, 10), (1, -1)):
        flat = sum(
            equivalence(sign * outside * margin + 0.03 * rng.normal(size=n), margin)[0]
            for _ in range(RUNS)
        )
        assert flat / RUNS <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / RUNS), (n, sign, flat)


def test_flat_is_found_for_no_effect():
    rng = np.random.default_rng(3)
    margin = math.log(1.05)
    found = sum(equivalence(0.01 * rng.normal(size=10), margin)[0] for _ in range(200))
    assert found / 200 >= 0.95  # power where the noise is well inside the margin
    assert equivalence([0.001, 0.002], margin) == (True, pytest.approx(0.0, abs=0.01))
    with pytest.raises(ValueError, match="margin"):
        equivalence([0.0, 1.0], 0)


def test_holm_adjustment_matches_its_definition_and_controls_the_family():
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.005])
    q = holm(p)
    # sorted 0.005, 0.01, 0.03, 0.04 with m = 4: 0.02, 0.03, max(0.03, 0.06), max(.., 0.04)
    assert np.allclose(q[[4, 0, 3, 1]], [0.02, 0.03, 0.06, 0.06]) and np.isnan(q[2])
    # six true nulls, t tests over 5 seeds each: any rejection in at most 5% of families
    rng = np.random.default_rng(4)
    reject = 0
    for _ in range(RUNS // 2):
        ps = [t_pvalue(rng.normal(size=SEEDS)) for _ in range(6)]
        reject += bool((holm(ps) < 0.05).any())
    assert reject / (RUNS // 2) <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / (RUNS // 2))


def test_t_pvalue_is_uniform_under_the_null():
    rng = np.random.default_rng(5)
    ps = np.array([t_pvalue(rng.normal(size=SEEDS)) for _ in range(RUNS)])
    assert abs((ps < 0.05).mean() - 0.05) < 0.02 and abs((ps < 0.5).mean() - 0.5) < 0.05


def test_crossover_covers_a_known_ratio():
    """Depth slopes linear in u = log r with root log(1.0) per seed (plus a seed-level shift):
    the interval of r* covers 1 in at least 90% of simulations; slopes that never change
    sign in the swept range give no crossover."""
    rng = np.random.default_rng(6)
    u = np.log(np.array([0.1, 0.3, 1.0, 3.0, 10.0]))
    covered, counted = 0, 0
    for _ in range(RUNS // 4):
        seeds = np.repeat(np.arange(SEEDS), u.size)
        uu = np.tile(u, SEEDS)
        shift = np.repeat(0.15 * rng.normal(size=SEEDS), u.size)
        slope = -0.1 * (uu - shift) + 0.01 * rng.normal(size=uu.size)
        r, low, high, n = crossover(uu, slope, seeds)
        counted += n == SEEDS
        covered += low <= 1.0 <= high
    assert counted / (RUNS // 4) >= 0.99
    assert covered / (RUNS // 4) >= 0.90
    never = crossover(np.tile(u, 3), np.full(3 * u.size, -0.2) + 0.01 * np.tile(u, 3),
                      np.repeat(np.arange(3), u.size))  # fmt: skip
    assert math.isnan(never[0]) and never[3] == 0
