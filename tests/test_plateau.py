"""TrainConfig.plateau (a run stops once its loss stops falling) and TrainResult.stop_reason
(target | plateau | budget | diverged), per member of an ensemble and on every sweep row."""

from __future__ import annotations

import math

import pytest
import torch

import robustlab as rl
from robustlab.data import Dataset
from robustlab.sweep import load_config
from robustlab.sweep.cells import run_group
from robustlab.training import TrainConfig, train_ensemble

D, N, STEPS, TARGET, PLATEAU = 5, 64, 300, 0.01, 1e-3


def reference_plateau_step(losses: list[float], plateau: float) -> int | None:
    """The documented rule, written out: the first t in 50, 60, 70, ... at which the relative
    decrease (L(s) - L(t)) / L(s), s = floor(4 t / 5), is below ``plateau``."""
    for t in range(50, len(losses), 10):
        s = math.floor(0.8 * t)
        if (losses[s] - losses[t]) / losses[s] < plateau:
            return t
    return None


def _regression(x: torch.Tensor, y: torch.Tensor) -> Dataset:
    return Dataset(x, y, x[:4], y[:4], "synthetic", D, 0, "regression")


def _train(steps: int = STEPS, plateau: float | None = PLATEAU):
    """Four two-layer width-4 networks (float64), one data set and step each:
    0: a linear target at lr="auto" (reaches TARGET);
    1: every input twice, labelled +1 and -1 (unlearnable: the loss falls to its floor 0.5,
       the mean of 0.5 y^2 at f = 0, and flattens), a fixed lr 0.1;
    2: the linear target at a small fixed lr 0.01 (still falling by 8% or more per fifth
       when the budget ends);
    3: the linear target at lr 50 (diverges; no retry)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=1, keepdim=True)
    linear = _regression(x, 0.5 * (x @ torch.randn(D, generator=g, dtype=torch.float64)))
    half = x[: N // 2]
    twice = _regression(
        torch.cat([half, half]), torch.cat([torch.ones(N // 2), -torch.ones(N // 2)]).double()
    )
    nets = [rl.mlp(D, 4, 2, init="he", generator=torch.Generator().manual_seed(s)).double()
            for s in range(4)]  # fmt: skip
    config = TrainConfig(steps=steps, target_loss=TARGET, plateau=plateau, max_retries=0,
                         lr_backoff=False)  # fmt: skip
    return train_ensemble(nets, [linear, twice, linear, linear], config,
                          lrs=["auto", 0.1, 0.01, 50.0])  # fmt: skip


@pytest.fixture(scope="module")
def runs():
    return _train(), _train(plateau=None)


def test_each_member_stops_for_its_own_reason(runs):
    with_rule, without = runs
    assert [r.stop_reason for r in with_rule] == ["target", "plateau", "budget", "diverged"]
    assert [r.stop_reason for r in without] == ["target", "budget", "budget", "diverged"]
    target, flat, budget, diverged = with_rule
    assert target.history["loss"][-1] <= TARGET < min(target.history["loss"][:-1])
    assert budget.steps == STEPS and diverged.diverged and target.reached_target
    assert 50 < flat.steps < STEPS and not flat.reached_target


def test_the_plateau_step_is_the_rule_on_the_full_history(runs):
    with_rule, without = runs
    full = without[1].history["loss"]  # the same run without the rule, to its budget
    assert len(full) == STEPS + 1
    assert with_rule[1].steps == reference_plateau_step(full, PLATEAU)
    assert with_rule[1].history["loss"] == full[: with_rule[1].steps + 1]  # bit for bit
    for i in (0, 2):  # the rule never holds for them: they run as without it
        assert reference_plateau_step(without[i].history["loss"], PLATEAU) is None
        assert with_rule[i].history["loss"] == without[i].history["loss"]
        for p, q in zip(with_rule[i].model.parameters(), without[i].model.parameters(),
                        strict=True):  # fmt: skip
            assert torch.equal(p, q)


def test_a_stopped_member_keeps_its_weights_while_the_others_go_on(runs):
    with_rule, _ = runs
    t = with_rule[1].steps
    until_then = _train(steps=t, plateau=None)[1]  # the same member, stopped by the budget at t
    assert until_then.stop_reason == "budget" and until_then.steps == t
    for p, q in zip(with_rule[1].model.parameters(), until_then.model.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("bad", [0, 1, -0.1, 1.5, float("nan"), "flat", True])
def test_a_bad_plateau_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match=r"^plateau: expected a number in \(0, 1\), got"):
        TrainConfig(plateau=bad)


def test_the_sweep_section_writes_plateau_only_when_set():
    base = {"name": "p", "data": {"name": "sphere", "in_dim": 3, "n_train": 20, "n_test": 5},
            "grid": {"width": [4], "depth": [2]}}  # fmt: skip
    assert "plateau" not in load_config(base).to_dict()["train"]
    assert load_config({**base, "train": {"plateau": 0.002}}).to_dict()["train"]["plateau"] == 0.002
    with pytest.raises(ValueError, match=r"^train\.plateau: expected a number in \(0, 1\)"):
        load_config({**base, "train": {"plateau": 2}})


def test_sweep_rows_record_why_each_cell_stopped():
    """Every row of a cell (init rows too) carries its stop reason: a cell that plateaus, and
    one that diverges at a fixed step of 1e3."""
    rows = {}
    for lr, steps in (("auto", 400), (1e3, 400)):
        config = load_config({
            "name": f"stops-{lr}",
            "data": {"name": "sphere", "in_dim": 4, "n_train": 40, "n_test": 8,
                     "label_noise": 0.5},
            "grid": {"width": [4], "depth": [2], "init": ["he"]},
            "train": {"steps": steps, "lr": lr, "plateau": 0.01, "max_retries": 0},
            "measure": {"points": 8, "at": ["init", "final"]},
        })  # fmt: skip
        (outcome,) = run_group(config.cells(), dtype="float64")
        rows[lr] = outcome.rows
    assert {(r["stage"], r["stop_reason"]) for r in rows["auto"]} == {
        ("init", "plateau"), ("final", "plateau")}  # fmt: skip
    assert {r["steps"] for r in rows["auto"]} < set(range(50, 400, 10))
    assert {(r["status"], r["stop_reason"]) for r in rows[1e3]} == {("diverged", "diverged")}
