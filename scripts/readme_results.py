"""Regenerate README.md's results section from real runs of ``robustlab reproduce``.

    /usr/bin/time -f %e -o quick.time sh -c 'python3 -m venv .venv && . .venv/bin/activate \
        && pip install -e . && robustlab reproduce --quick --out robustlab-out' > quick.out
    python scripts/readme_results.py --quick robustlab-out quick.out quick.time \
        [--full full-out full.out full.time]

Each mode's part is: its wall time (the ``/usr/bin/time -f %e`` file), what the command
printed (its stdout, verbatim) and, for the full run (or the quick one when it is the only
one), the findings written from its store by :func:`robustlab.report.finding_texts` (the
sentences that open the report). Nothing in the
section is typed by hand; it replaces the text between ``<!-- results:begin -->`` and
``<!-- results:end -->`` in README.md.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import robustlab as rl
from robustlab.report.finding_texts import findings, preamble
from robustlab.reproduce import preset_paths

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
WHAT = {
    "quick": "the command above, in a fresh clone and a fresh virtual environment, "
    "`pip install` included",
    "full": "`robustlab reproduce --full --out full-out` after the quick run's install",
}


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {round(seconds % 60)} s"


def section(mode: str, out: Path, printed: Path, timed: Path, sentences: bool = True) -> str:
    """One mode's part of the section (markdown); ``sentences``: with its findings."""
    wall = float(timed.read_text().split()[-1])
    rows = rl.sweep.load(out / "results.db")
    names = {rl.sweep.load_config(p).name for p in preset_paths(mode)}
    rows = rows[rows["sweep"].isin(names)]
    a = rl.claims.assess(rows)
    lines = [
        f"### `reproduce --{mode}`",
        "",
        f"On this repository's 2-core CPU machine ({WHAT[mode]}): {_minutes(wall)} wall time. "
        "It printed:",
        "",
        "```",
        printed.read_text().rstrip(),
        "```",
        "",
    ]
    if not sentences:
        return "\n".join(lines)
    lines += [
        "**What this says** (written from that run's store by `robustlab.report.findings`: the "
        f"sentences that open its report). {preamble(a)}",
        "",
    ]
    for group, items in findings(a, rows):
        lines.append(f"*{group}*")
        lines.append("")
        lines += [f"- {f.text}" for f in items]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", nargs=3, metavar=("OUT", "STDOUT", "TIME"), required=True)
    parser.add_argument("--full", nargs=3, metavar=("OUT", "STDOUT", "TIME"))
    args = parser.parse_args()
    parts = [section("quick", *map(Path, args.quick), sentences=not args.full)]
    if args.full:
        parts.append(section("full", *map(Path, args.full)))
    text = README.read_text()
    block = f"{BEGIN}\n" + "\n".join(parts) + f"\n{END}"
    new, n = re.subn(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    if n != 1:
        raise SystemExit(f"README.md must hold one {BEGIN} ... {END} block; found {n}")
    README.write_text(new)
    print(f"README.md: results section rewritten ({len(block.splitlines())} lines)")


if __name__ == "__main__":
    main()
