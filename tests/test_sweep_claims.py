"""A sweep config's optional ``claims``: the paper's claims it was designed to test."""

from __future__ import annotations

import re

import pytest

from robustlab.claims import CLAIMS
from robustlab.reproduce import MODES, preset_paths
from robustlab.sweep import load_config
from robustlab.sweep.config import SweepConfig

BASE = {
    "name": "mine",
    "data": {"name": "sphere", "in_dim": 4, "n_train": 16, "n_test": 8},
    "grid": {"width": [8, 16], "depth": [2]},
}


def test_claims_default_to_none_and_leave_the_config_as_it_was():
    plain = load_config(BASE)
    assert plain.claims == () and "claims" not in plain.to_dict()
    assert load_config(BASE | {"claims": []}).hash == plain.hash  # empty: the same config
    tagged = load_config(BASE | {"claims": ["C2", "C1"]})
    assert tagged.claims == ("C1", "C2")  # catalog order: listing order changes no hash
    assert tagged.to_dict()["claims"] == ["C1", "C2"]
    assert load_config(tagged.to_dict()) == tagged
    assert tagged.hash == load_config(BASE | {"claims": ["C1", "C2"]}).hash != plain.hash
    # what is measured is the same: the cells (and their stored rows) are those of the plain one
    assert [c.hash for c in tagged.cells()] == [c.hash for c in plain.cells()]


@pytest.mark.parametrize(
    "claims, message",
    [
        (["C9"], "claims[0]: expected one of C1, C2, C3, C4-he, C4-ntk, C5, got 'C9'"),
        (["C1", "C1"], "claims[1]: duplicate value 'C1'"),
        ([3], "claims[0]: expected one of"),
    ],
)
def test_unknown_or_repeated_claims_are_refused(claims, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        SweepConfig.from_dict(BASE | {"claims": claims})


@pytest.mark.parametrize("mode", MODES)
def test_every_preset_names_the_claims_it_tests(mode):
    configs = [load_config(p) for p in preset_paths(mode)]
    assert all(c.claims for c in configs)
    tested = [claim for c in configs for claim in c.claims]
    assert sorted(tested) == sorted(c.id for c in CLAIMS)  # each claim by one preset
