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
    # claims say how the sweep is reported, not what is run: the sweep's identity and its
    # cells (and their stored rows) are those of the plain one
    assert tagged.hash == plain.hash
    assert [c.hash for c in tagged.cells()] == [c.hash for c in plain.cells()]


def test_a_store_takes_a_sweep_that_differs_only_in_its_claims(tmp_path):
    from robustlab.sweep import Store, load_configs

    path = tmp_path / "s.db"
    plain, tagged = load_config(BASE), load_config(BASE | {"claims": ["C1"]})
    with Store(path) as store:
        assert store.record_sweep(plain.to_dict())
        assert not store.record_sweep(tagged.to_dict())  # the same sweep: its claims now kept
    assert [c.get("claims") for c in load_configs(path)] == [["C1"]]
    with Store(path) as store, pytest.raises(ValueError, match="different config"):
        store.record_sweep(load_config(BASE | {"seeds": 2}).to_dict())


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
    configs = [load_config(p) for p in preset_paths(mode, protocol=1)]
    assert all(c.claims for c in configs)
    tested = [claim for c in configs for claim in c.claims]
    assert sorted(tested) == sorted(c.id for c in CLAIMS)  # each claim by one preset
    # Protocol 2: every claim by at least one preset, the width claims at three or more N
    # on each data set and label model
    configs = [load_config(p) for p in preset_paths(mode, protocol=2)]
    assert all(c.claims for c in configs)
    assert {claim for c in configs for claim in c.claims} == {c.id for c in CLAIMS}
    width = [c for c in configs if "C1" in c.claims]
    studies = {(c.data.name, c.data.options.get("label_noise", 0), c.data.options.get("task"))
               for c in width}  # fmt: skip
    assert len(studies) == 3  # sphere flip, sphere gauss, digits flip
    for study in studies:
        ns = {c.data.n_train for c in width if (c.data.name, c.data.options.get("label_noise", 0),
                                                 c.data.options.get("task")) == study}  # fmt: skip
        assert len(ns) >= 3, study
