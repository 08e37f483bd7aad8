"""Small sweep configs shared by the sweep tests (imported by several test modules)."""

from __future__ import annotations


def standard_sweep(name: str, depths: list[int]) -> dict:
    """Width-64 standard MLPs on 128 sphere points in d = 6, LeCun and He, one seed, 60
    steps, exact P at the end: one group of two cells per depth, each a second or so."""
    return {
        "name": name,
        "data": {"name": "sphere", "in_dim": 6, "n_train": 128, "n_test": 32},
        "grid": {
            "width": [64],
            "depth": list(depths),
            "init": ["lecun", "he"],
            "regime": ["standard"],
            "alpha": [1],
        },
        "seeds": 1,
        "train": {"steps": 60},
        "measure": {"eps": [0.1], "methods": ["exact"], "points": 16, "at": ["final"]},
    }
