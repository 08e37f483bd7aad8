"""Run Protocol 2's presets (docs/claims.md) into a store and print its tables: the preview
of issue 17's judge, before ``reproduce`` uses it.

    python scripts/protocol2_preview.py OUT.db [--mode quick|full] [--judge-only]

Runs every ``robustlab/presets/protocol2/MODE/*.yaml`` (resumable, local executor), then
prints ``robustlab.claims.questions.questions`` (verdicts, Holm, fragility), the depth shape
columns of ``depth_questions`` and ``crossovers`` (r* from the finite runs and the lazy
limit), with each preset's wall time.
"""

from __future__ import annotations

import argparse
import time
from importlib import resources
from pathlib import Path

import pandas as pd

from robustlab.claims.questions import crossovers, depth_questions, questions
from robustlab.sweep import load, run

SHAPE = ["claim", "label_scale", "shape", "shape_seeds", "step_first", "step_first_low",
         "step_first_high", "tail_slope", "tail_low", "tail_high"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--mode", choices=["quick", "full"], default="quick")
    parser.add_argument("--judge-only", action="store_true", help="judge the store as it is")
    args = parser.parse_args()
    if not args.judge_only:
        folder = Path(str(resources.files("robustlab") / "presets" / "protocol2" / args.mode))
        for preset in sorted(folder.glob("*.yaml")):
            start = time.perf_counter()
            summary = run(str(preset), args.store, executor="local")
            print(f"{preset.name}: {summary.ok} ok in {time.perf_counter() - start:.1f} s")
    rows = load(args.store)
    fmt = {"float_format": lambda v: f"{v:.3g}"}
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        table = questions(rows)
        print(table.to_string(**fmt))
        print(f"Holm family: {table.attrs.get('family')} directional rows")
        print(depth_questions(rows)[SHAPE].to_string(**fmt))
        print(crossovers(rows).to_string(**fmt))


if __name__ == "__main__":
    main()
