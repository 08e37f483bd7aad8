"""Protocol 2's judge through the real pipeline: real rows of small sweeps, the swept axis
permuted within each run's curve, give few directional verdicts (at most 7% per claim)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from robustlab.claims.questions import questions
from robustlab.sweep import load, run

PERMUTATIONS = 200
RATIOS = (0.1, 0.2, 0.35, 0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 2.0, 3.0, 6.0)
N = 50  # d = 4: p = 5 m, so m = 10 r spans p/N = r over RATIOS
WIDTH = {
    "name": "null-width",
    "data": {
        "name": "sphere",
        "in_dim": 4,
        "n_train": N,
        "n_test": 40,
        "teacher": "relu",
        "label_noise": 0.2,
    },  # fmt: skip
    "grid": {
        "width": sorted({round(10 * r) for r in RATIOS}),
        "depth": [2],
        "init": ["lecun", "he"],
        "regime": ["standard"],
    },  # fmt: skip
    "seeds": 5,
    "train": {"steps": 300, "target_loss": 1e-3, "plateau": 1e-3},
    "measure": {"eps": [0.1], "methods": ["exact"], "points": 40, "at": ["final"]},
}
DEPTH = {
    "name": "null-depth",
    "data": {"name": "sphere", "in_dim": 4, "n_train": 30, "n_test": 30, "teacher": "relu"},
    "grid": {
        "width": [32],
        "depth": [2, 3, 4],
        "init": ["lecun", "he", "ntk"],
        "regime": ["linearized"],
        "label_scale": [0.3, 3],
    },  # fmt: skip
    "seeds": 5,
    "train": {"steps": 150, "target_loss": 1e-4, "plateau": 1e-3},
    "measure": {"eps": [0.1], "methods": ["exact"], "points": 30, "at": ["final"]},
}


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> pd.DataFrame:
    store = tmp_path_factory.mktemp("null") / "rows.db"
    run([WIDTH, DEPTH], store, executor="serial")
    return load(store)


def permuted(rows: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """P permuted over the swept axis within each run's curve (one seed, init, regime, N
    and label scale): the axis carries no information, everything else is real."""
    d = rows.copy()
    keys = ["sweep", "seed", "init", "regime", "n_train", "label_scale", "stage", "points"]
    for _, idx in d.groupby(keys, dropna=False).groups.items():
        values = d.loc[idx, ["p_value", "p_lazy_limit"]].to_numpy()
        d.loc[idx, ["p_value", "p_lazy_limit"]] = values[rng.permutation(len(idx))]
    return d


@pytest.mark.slow
def test_permuted_axes_give_at_most_7_percent_directional_verdicts(rows):
    assert set(questions(rows)["claim"]) >= {"C1", "C2", "C3", "C4-he", "C4-ntk"}
    rng = np.random.default_rng(0)
    hits: dict[tuple, int] = {}
    for _ in range(PERMUTATIONS):
        # without the variants: fragile only turns directional verdicts into fragile ones
        t = questions(permuted(rows, rng), fragility=False)
        t = t[t["claim"] != "C12-peak"]
        keys = zip(t["claim"], t["label_scale"].fillna(1.0), strict=True)
        for key, verdict in zip(keys, t["verdict"], strict=True):
            hits[key] = hits.get(key, 0) + (verdict in ("supported", "contradicted here"))
    rates = {k: v / PERMUTATIONS for k, v in hits.items()}
    assert len(rates) == 2 + 3 * 2  # C1, C2; C3, C4-he, C4-ntk at two label scales
    assert max(rates.values()) <= 0.07, rates
