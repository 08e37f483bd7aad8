"""One assessment: the claims are judged once and every view renders that result.

``reproduce`` and ``report.build`` each make one :class:`robustlab.claims.Assessment`
(the judge runs exactly as often as one ``assess`` of the same rows needs, the sensitivity
table is computed once); the claims layer works on a CSV without torch.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pandas as pd
import pytest
import yaml

import robustlab.claims._judge as judge_module
import robustlab.claims._sensitivity as sensitivity_module
import robustlab.claims.assessment as assess_module
import robustlab.reproduce as reproduce_module
from robustlab.claims import CLAIMS, Assessment, Protocol, assess
from robustlab.report import build
from robustlab.sweep import load

# two widths x two depths x two seeds of linearized runs: C3/C4 have rows to judge
TINY = {
    "name": "assess-tiny",
    "data": {"name": "sphere", "in_dim": 4, "n_train": 24, "n_test": 12},
    "grid": {"width": [8, 16], "depth": [2, 3], "init": ["lecun"], "regime": ["linearized"]},
    "seeds": 2,
    "train": {"steps": 20, "target_loss": 10.0},
    "measure": {"eps": [0.1], "methods": ["exact"], "points": 12, "at": ["final"]},
    "claims": ["C3"],  # a sweep that tests a claim: its report judges the claims
}


class Counter:
    """Counts calls of the judge, of the sensitivity variants and of assessments made."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.judge = self.variants = self.assessments = 0
        judge, variants, made = judge_module.judge, sensitivity_module._variants, Assessment

        def counted_judge(*args, **kwargs):
            self.judge += 1
            return judge(*args, **kwargs)

        def counted_variants(*args, **kwargs):
            self.variants += 1
            return variants(*args, **kwargs)

        def counted_assessment(*args, **kwargs):
            self.assessments += 1
            return made(*args, **kwargs)

        # every judgement goes through these module globals, whoever asks for it
        monkeypatch.setattr(judge_module, "judge", counted_judge)
        monkeypatch.setattr(sensitivity_module, "judge", counted_judge)
        monkeypatch.setattr(sensitivity_module, "_variants", counted_variants)
        monkeypatch.setattr(assess_module, "Assessment", counted_assessment)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    path = out / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY), encoding="utf-8")
    return out, path


def test_reproduce_assesses_once(tiny_run, monkeypatch):
    out, preset = tiny_run
    monkeypatch.setattr(reproduce_module, "preset_paths", lambda mode="quick", protocol=2: [preset])
    res = reproduce_module.reproduce(out / "run", executor="serial")
    rows = load(res.store)
    counter = Counter(monkeypatch)
    again = reproduce_module.reproduce(out / "run", executor="serial")  # re-judges only
    seen = (counter.judge, counter.variants, counter.assessments)
    monkeypatch.undo()
    alone = Counter(monkeypatch)
    expected = assess(rows[rows["sweep"] == TINY["name"]])
    assert seen == (alone.judge, alone.variants, alone.assessments)
    assert alone.variants == len(CLAIMS) and alone.assessments == 1 and alone.judge > 0
    # what reproduce wrote is that assessment, rendered
    pd.testing.assert_frame_equal(again.assessment.claims, expected.claims)
    written = pd.read_csv(again.sensitivity_csv)
    assert len(written) == len(expected.sensitivity) > 0
    assert (written["verdict"] == expected.sensitivity["verdict"]).all()


def test_report_build_assesses_once(tiny_run, monkeypatch, tmp_path):
    out, preset = tiny_run
    monkeypatch.setattr(reproduce_module, "preset_paths", lambda mode="quick", protocol=2: [preset])
    store = reproduce_module.reproduce(out / "run", executor="serial").store
    counter = Counter(monkeypatch)
    build(store, tmp_path / "report.html")
    seen = (counter.judge, counter.variants, counter.assessments)
    monkeypatch.undo()
    alone = Counter(monkeypatch)
    assess(load(store))
    assert seen == (alone.judge, alone.variants, alone.assessments)
    assert counter.assessments == 1 and counter.variants == len(CLAIMS)


def test_protocol_is_the_one_home_of_its_defaults():
    p = Protocol()
    assert (p.lazy_threshold, p.nonlazy_threshold, p.robust_share) == (0.1, 0.3, 0.8)
    assert (0.1, 0.3) in p.threshold_pairs() and len(p.threshold_pairs()) == 9
    off_grid = p.at_thresholds(0.15, 0.3)
    assert (0.15, 0.3) in off_grid.threshold_pairs() and len(off_grid.threshold_pairs()) == 12
    for bad in ({"lazy_threshold": 0}, {"level": 1.0}, {"robust_share": 2}, {"lazy_grid": ()}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Protocol(**bad)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.level = 0.9  # type: ignore[misc]


def test_claims_judge_a_csv_without_torch(tmp_path):
    rows = pd.DataFrame(
        {
            "status": "ok", "stage": "final", "p_value": [1.0, 0.8, 0.9, 0.7], "seed": [0, 0, 1, 1],
            "width": 16, "depth": [2, 3, 2, 3], "init": "lecun", "regime": "linearized",
            "alpha": 1.0, "dataset": "sphere", "eps": 0.1, "method": "exact",
            "n_params": 1000, "n_train": 100, "rel_weight_change": 0.01, "model": "linearized",
        }
    )  # fmt: skip
    csv = tmp_path / "rows.csv"
    rows.to_csv(csv, index=False)
    code = (
        "import sys, pandas as pd\n"
        "import robustlab.claims as c\n"
        f"a = c.assess(pd.read_csv({str(csv)!r}))\n"
        "print(a.claims.set_index('claim').loc['C3', 'verdict'], 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    verdict, torch_loaded = out.stdout.split()
    assert torch_loaded == "False"
    assert verdict == assess(rows).claims.set_index("claim").loc["C3", "verdict"]


def test_the_assessment_does_not_depend_on_the_order_rows_were_stored():
    # parallel workers store cells in any order; the verdicts must be the same to the bit
    from test_claims import rows as synthetic

    rows = pd.concat(
        [synthetic("width", 0.3, seeds=range(8), rng=1), synthetic("depth", -0.2, seeds=range(8),
         init="lecun", regime="linearized", rng=2)], ignore_index=True
    )  # fmt: skip
    for seed in range(3):
        shuffled = rows.sample(frac=1.0, random_state=seed, ignore_index=True)
        a, b = assess(rows), assess(shuffled)
        pd.testing.assert_frame_equal(a.claims, b.claims, check_exact=True)
        pd.testing.assert_frame_equal(a.groups, b.groups, check_exact=True)
