"""One self-contained HTML report: the results, the paper's claims where asked for, runs.

The page opens with figures: for sweeps that test the paper's claims (a ``claims`` key in a
stored sweep config, or ``claims=True``) the claims section first (its figure, the verdicts,
their evidence and robustness), then the results of any study (P against each swept axis,
the tables of P by the swept axes over seeds, the worst case, P at init, the regime checks),
the definitions, the configs and the runs. A report without the claims section judges
nothing and says nothing of the claims.

Where the assessment carries Protocol 2's verdicts (``assessment.questions``), the page
opens with them instead (:mod:`robustlab.report.questions_html`): the findings, one sentence
per verdict; the headline figures; Protocol 2's tables; then Protocol 1's claims section,
titled as the control, and everything else as before.

The page has no external resources and no scripts: figures are embedded as base64 PNG
``<img>`` elements and the style sheet is inline. Every string that comes from data or
configs is escaped (:mod:`robustlab.report.markup`). The file is written atomically (a
temporary file in the same directory, then :func:`os.replace`).
"""

from __future__ import annotations

import platform
import tempfile
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .._atomic import atomic_write, check_target
from .._frames import numpy_dtypes
from .._version import __version__
from ..claims import VERDICTS, Assessment, Protocol, assess
from ..claims.questions import _width_rows
from ._figures import CLAIM_FIGURES, STUDY_FIGURES, caption, figures
from .markup import CSS, e, figure, table
from .questions_html import SECTIONS as QUESTION_SECTIONS
from .questions_html import questions_html
from .results import STAGES, p_by_axes
from .results_html import results_tables
from .robustness import sensitivity_table, threshold_table, variants_table
from .tables import claims_table, details_table, groups_table
from .texts import (
    THRESHOLD_NOTE,
    Y_F0_NOTE,
    claim_definitions,
    definitions,
    sensitivity_note,
    verdict_meanings,
)

__all__ = ["build", "claims_wanted", "write_html"]

Progress = Callable[[str], None]  # called with a short description of each step


def claims_wanted(configs: Iterable[Mapping]) -> bool:
    """Whether any sweep config (as stored: :func:`robustlab.sweep.store.load_configs`)
    carries the paper's claims (its ``claims`` key; :class:`robustlab.sweep.SweepConfig`)."""
    return any(isinstance(c, Mapping) and bool(c.get("claims")) for c in configs)


def _plain(obj):
    """Config values -> YAML-safe builtins (tuples, paths, numpy scalars)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj if isinstance(obj, (str, int, float, bool, type(None))) else str(obj)


def _yaml(config: Mapping) -> str:
    """A config as YAML, lists of numbers and names on one line."""
    return yaml.safe_dump(
        _plain(config), sort_keys=False, allow_unicode=True, default_flow_style=None, width=96
    )


def _runs_html(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p>No result rows.</p>"
    cells = df.drop_duplicates("cell") if "cell" in df.columns else df
    counts = cells["status"].value_counts()
    out = table(
        ["status", "cells"],
        [[f"<td>{e(s)}</td>", f'<td class="num">{n}</td>'] for s, n in counts.items()],
    )
    bad = cells[cells["status"] != "ok"]
    if len(bad):
        cols = [
            c
            for c in ("sweep", "cell", "width", "depth", "init", "regime", "seed", "status",
                      "message")
            if c in bad.columns
        ]  # fmt: skip
        out += "<h3>Diverged or failed cells</h3>" + table(
            cols, [[f"<td>{e(r[c])}</td>" for c in cols] for _, r in bad.iterrows()]
        )
    return out


def _versions_html(df: pd.DataFrame) -> str:
    def pkg(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    rows = [
        ("robustlab", __version__),
        ("torch", pkg("torch")),
        ("python", platform.python_version()),
        ("numpy", np.__version__),
        ("pandas", pd.__version__),
        ("matplotlib", pkg("matplotlib")),
    ]
    for col in ("robustlab_version", "torch_version"):
        if col in df.columns and df[col].notna().any():
            rows.append((f"{col} in the results", ", ".join(map(str, df[col].dropna().unique()))))
    return table(
        ["component", "version"], [[f"<td>{e(a)}</td>", f"<td>{e(b)}</td>"] for a, b in rows]
    )


def _draw_figures(
    df: pd.DataFrame, names, figures_dir, protocol: Protocol, claims: bool, progress
) -> dict[str, str]:
    """Figure name -> its ``<figure>`` HTML (embedded PNG, caption from the rows), for the
    figures of ``names`` that the rows hold; PNG and PDF kept in ``figures_dir`` if given."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(figures_dir) if figures_dir is not None else Path(tmp)
        formats = ("png", "pdf") if figures_dir is not None else ("png",)
        parts = {}
        paths = figures(df, out, formats=formats, protocol=protocol, names=names,
                        progress=progress)  # fmt: skip
        for path in paths:
            if path.suffix == ".png":
                text = caption(path.stem, df, protocol=protocol, claims=claims)
                parts[path.stem] = figure(path.stem, path.read_bytes(), text)
    return parts


def _overview(df: pd.DataFrame) -> str:
    """One paragraph: the sweeps, runs, regimes, inits and stages in the rows."""
    if df.empty or "status" not in df.columns:
        return "<p class=lead>No result rows.</p>"
    cells = df.drop_duplicates("cell") if "cell" in df.columns else df
    status = cells["status"].value_counts()
    ok = df[df["status"] == "ok"]

    def listed(col: str, order=()) -> str:
        if col not in ok.columns:
            return ""
        values = {str(v) for v in ok[col].dropna().unique()}
        return ", ".join([v for v in order if v in values] + sorted(values - set(order)))

    sweeps = sorted(str(v) for v in df["sweep"].dropna().unique()) if "sweep" in df else []
    runs = ", ".join(f"{n} {s}" for s, n in status.items())
    text = (
        f"{len(sweeps)} sweep{'s' * (len(sweeps) != 1)} ({', '.join(sweeps)}): "
        f"{len(cells)} runs ({runs}); regimes {listed('regime')}; inits {listed('init')}; "
        f"P measured at {listed('stage', STAGES)}."
    )
    return f"<p class=lead>{e(text)}</p>"


def _robustness_html(a: Assessment) -> str:
    """The sensitivity variants and the verdicts across the laziness thresholds."""
    if len(a.sensitivity):
        sens = (
            f"<p class=note>{e(sensitivity_note(a.protocol))}</p>"
            + sensitivity_table(a.sensitivity, a.claims, a.protocol.robust_share)
            + "<details><summary>Every variant (all seeds)</summary>"
            + variants_table(a.sensitivity)
            + "</details>"
        )
    else:
        sens = "<p>No sensitivity table.</p>"
    return (
        f"{sens}<h4>Sensitivity to the laziness thresholds</h4><p class=note>{THRESHOLD_NOTE}"
        f"</p>{threshold_table(a.thresholds, a.claims)}"
    )


CLAIMS_TITLE = "Claims of Zhu et al. (NeurIPS 2022)"
CONTROL_TITLE = "Control: Protocol 1 (matched fit) on the claims of Zhu et al. (NeurIPS 2022)"
CONTROL_NOTE = (
    "Protocol 1 judges each claim once, at a level of fit every run reached; its verdicts "
    "are the control of Protocol 2's above (their column 'Protocol 1 (control)'), and it "
    "alone judges C5. "
)


def _claims_html(a: Assessment, figs: dict[str, str], why: str) -> str:
    """The claims section: the first claim figure, the verdicts, their meaning and evidence,
    the other claim figures, the per-group verdicts, the sensitivity, how claims are judged;
    titled as the control where the assessment has Protocol 2's verdicts."""
    title, why = (CLAIMS_TITLE, why) if a.questions.empty else (CONTROL_TITLE, CONTROL_NOTE + why)
    first, *rest = [figs[n] for n in CLAIM_FIGURES if n in figs] or [""]
    meanings = verdict_meanings(a.protocol)
    meaning = "".join(
        f'<li><span class="verdict v-{e(k.replace(" ", "-"))}">{e(k)}</span>: '
        f"{e(meanings.get(k, ''))}</li>"
        for k in VERDICTS
    )
    groups = groups_table(a.groups) if len(a.groups) else "<p>No groups.</p>"
    return f"""<h2 id="claims-section">{e(title)}</h2>
<p class=note>{e(why)}</p>{first}
<h3>Verdicts</h3>{claims_table(a.claims)}
<h3>What each verdict means</h3><ul>{meaning}</ul>
<h3>Evidence beside each verdict</h3>{details_table(a.claims)}<p class=note>{e(Y_F0_NOTE)}</p>
{"".join(rest)}
<h3>Verdicts per group</h3><details><summary>One row per claim and group ({len(a.groups)})
</summary>{groups}</details>
<h3>Sensitivity of the verdicts</h3>{_robustness_html(a)}
<h3>How the claims are judged</h3><pre>{e(claim_definitions(a.protocol))}</pre>
"""


def _results_html(df: pd.DataFrame, figs: dict[str, str]) -> str:
    """The results of any study: P against the swept axes, the tables, the other checks."""
    axes = "".join(v for n, v in figs.items() if n.startswith("p_by_"))
    checks = "".join(v for n, v in figs.items() if n in STUDY_FIGURES and not n.startswith("p_by_"))
    if not axes and not checks:
        axes = "<p>No figure: the results lack the data for any.</p>"
    return (
        f'<h2 id="results">Results</h2>{axes}'
        f"<h3>P by the swept axes</h3>{results_tables(p_by_axes(df))}"
        + (f"<h3>Worst case, initialization and laziness</h3>{checks}" if checks else "")
    )


def write_html(
    df: pd.DataFrame,
    path: str | Path,
    *,
    assessment: Assessment | None = None,
    claims: bool | None = None,
    configs: Iterable[Mapping] = (),
    title: str = "robustlab report",
    figures_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write the report for result rows ``df`` to ``path`` and return it.

    The report renders one :class:`~robustlab.claims.Assessment` and judges nothing itself.

    Args:
        df: result rows (columns of :mod:`robustlab.sweep.schema`).
        path: the HTML file to write.
        assessment: the claims judged on ``df`` (:func:`robustlab.claims.assess`); default,
            when the claims section is shown, ``assess(df)`` under the default protocol. Its
            protocol's laziness thresholds are drawn on the regime figures. Where it has
            Protocol 2's rows (``questions``), the page opens with the findings, the
            headline figures and Protocol 2's tables, and the claims section is the control.
        claims: show the claims section (True), leave it out (False), or (None, the
            default) show it when an ``assessment`` is given or a config carries claims
            (:func:`claims_wanted`). Without it nothing is judged.
        configs: the sweep configs, shown as YAML.
        title: page title.
        figures_dir: keep the figures (PNG and PDF) there; otherwise they are drawn in a
            temporary directory and only embedded.
        overwrite: replace an existing ``path`` (never an SQLite database); otherwise an
            existing file is refused, before anything is computed.
        progress: called with a line on each step (judging, each figure, writing).
    """
    path = check_target(path, overwrite=overwrite)
    df = numpy_dtypes(df)
    configs = list(configs)
    say = progress or (lambda _: None)
    show = claims if claims is not None else (assessment is not None or claims_wanted(configs))
    a = None
    if show:
        if assessment is None:
            say("judging the claims")
        a = assess(df) if assessment is None else assessment
    protocol = a.protocol if a is not None else Protocol()
    # Protocol 1's claim figures are drawn for one width sweep per claim, and the per-axis
    # views draw every sweep at once: with Protocol 2's width sweeps (one per N and label
    # model) their legends hide the data, and the headline figures take their place
    crowded = a is not None and not a.questions.empty and _width_rows(df)["sweep"].nunique() > 1
    study = [n for n in STUDY_FIGURES if not (crowded and n.startswith("p_by_"))]
    names = [*(CLAIM_FIGURES if show and not crowded else ()), *study]
    figs = _draw_figures(df, names, figures_dir, protocol, show, say)
    opening = questions_html(df, a, figures_dir, say) if a is not None else ""  # Protocol 2
    say("writing the page")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    cfgs = "".join(f"<pre>{e(_yaml(c))}</pre>" for c in configs) or "<p>No sweep configs.</p>"
    tagged = [str(c.get("name", "")) for c in configs if isinstance(c, Mapping) and c.get("claims")]
    why = "Every claim is judged on every run of this report."
    if tagged:
        why = f"The sweeps {', '.join(tagged)} test them (their configs' claims key). {why}"
    regimes = set(df["regime"].dropna()) if "regime" in df.columns else None
    worst = "method" in df.columns and bool((df["method"] == "pgd").any())
    sections = [("results", "Results"), ("definitions", "Definitions"), ("configs", "Configs"),
                ("runs", "Runs"), ("versions", "Versions")]  # fmt: skip
    if a is not None:
        sections.insert(0, ("claims-section", "Control: Protocol 1" if opening else "Claims"))
    if opening:
        sections[:0] = QUESTION_SECTIONS
    nav = "".join(f'<a href="#{k}">{v}</a>' for k, v in sections)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{CSS}</style></head><body>
<h1>{e(title)}</h1><p>Generated {now} by robustlab {e(__version__)}.</p>
{_overview(df)}<nav>{nav}</nav>
{opening}
{_claims_html(a, figs, why) if a is not None else ""}
{_results_html(df, figs)}
<h2 id="definitions">Definitions</h2><pre>{e(definitions(protocol, regimes, worst=worst))}</pre>
<h2 id="configs">Sweep configs</h2>{cfgs}
<h2 id="runs">Runs</h2>{_runs_html(df)}
<h2 id="versions">Versions</h2>{_versions_html(df)}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(
        path, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"), overwrite=overwrite
    )


def _check_folder(folder: str | Path) -> None:
    """A folder to keep figures in: it, or its nearest existing parent, is a folder."""
    path = Path(folder)
    while not path.exists() and path != path.parent:
        path = path.parent
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"cannot keep figures in {str(folder)!r}: {str(path)!r} is a file; give a folder"
        )


def build(
    store_path: str | Path,
    out_html: str | Path,
    *,
    figures_dir=None,
    overwrite: bool = False,
    claims: bool | None = None,
    progress: Progress | None = None,
) -> Path:
    """Report of a results store (:func:`robustlab.sweep.store.load` rows and its configs).

    The claims section is shown when ``claims`` is True, or (None, the default) when a
    stored sweep config carries claims (:func:`claims_wanted`); the claims are then
    assessed once under the default :class:`~robustlab.claims.Protocol`, and otherwise not
    at all. ``progress`` is called with a line on each step.

    ``out_html`` is checked before the store is read: an existing file is replaced only with
    ``overwrite``, and never an SQLite database or the store itself."""
    from ..sweep.store import load, load_configs  # lazy: the report imports alone

    check_target(out_html, (store_path,), overwrite=overwrite)  # before the long work
    if figures_dir is not None:
        _check_folder(figures_dir)
    say = progress or (lambda _: None)
    say("reading the store")
    df, configs = load(store_path), load_configs(store_path)
    show = claims_wanted(configs) if claims is None else claims
    assessment = None
    if show:
        say("judging the claims")
        assessment = assess(df)
    title = f"robustlab report: {Path(store_path).name}"
    return write_html(df, out_html, assessment=assessment, claims=show, configs=configs,
                      title=title, figures_dir=figures_dir, overwrite=overwrite,
                      progress=progress)  # fmt: skip
