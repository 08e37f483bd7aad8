"""``robustlab reproduce``: the paper's claims end to end (presets -> sweep -> claims -> report).

Protocol 2 (the default, ``docs/claims.md``) runs the presets in
``robustlab/presets/protocol2/{quick,full}/`` (width sweeps across p = N at three training-set
sizes under two label models and on digits; depth sweeps over the label scale with the lazy
limit) and Protocol 1's ``c5`` preset (mean-field width); ``protocol=1`` runs Protocol 1's
three presets in ``robustlab/presets/{quick,full}/`` (``c12``, ``c34``, ``c5``) as before.
Everything lands in ``OUT/``: ``results.db`` (resumable), ``claims.csv``, ``crossovers.csv``,
``variants.csv`` (Protocol 2's fragility factors), ``protocol1.csv`` (the control),
``sensitivity.csv`` (Protocol 1's), ``figures/*.png|pdf`` and ``report.html``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path

import pandas as pd

from ._atomic import atomic_write
from ._checks import ConfigError
from .claims import Assessment, Protocol, assess
from .report import write_html
from .sweep import Progress, SweepSummary, load, load_config, load_configs, run

__all__ = ["MODES", "ReproduceResult", "preset_paths", "reproduce"]

MODES = ("quick", "full")
PROTOCOLS = (1, 2)


@dataclass(frozen=True)
class ReproduceResult:
    """Paths of the artifacts, the assessment of the claims and the sweep summary."""

    out_dir: Path
    store: Path
    claims_csv: Path
    sensitivity_csv: Path
    report: Path
    figures: list[Path]
    assessment: Assessment
    summary: SweepSummary
    presets: int = 2
    crossovers_csv: Path | None = None
    protocol1_csv: Path | None = None

    @property
    def claims(self) -> pd.DataFrame:
        """The claims table (:func:`_claims_table`)."""
        return _claims_table(self.assessment, self.presets)


def _claims_table(assessment: Assessment, presets: int) -> pd.DataFrame:
    """What ``claims.csv`` holds: :attr:`Assessment.table` for Protocol 2's presets
    (Protocol 2's rows, then C5 by Protocol 1), :attr:`Assessment.claims` for Protocol 1's."""
    return assessment.table if presets == 2 else assessment.claims


def _yamls(*parts: str) -> list[Path]:
    folder = resources.files("robustlab").joinpath("presets", *parts)
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_paths(mode: str = "quick", protocol: int = 2) -> list[Path]:
    """The preset sweep configs of ``mode`` (``quick`` or ``full``) under ``protocol``:
    Protocol 2's presets (``presets/protocol2/MODE/``, in file-name order) and Protocol 1's
    ``c5`` (C5 is judged by Protocol 1 only), or Protocol 1's three presets
    (``presets/MODE/``)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choices: {', '.join(MODES)}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choices: 1, 2")
    if protocol == 1:
        return _yamls(mode)
    return _yamls("protocol2", mode) + [p for p in _yamls(mode) if p.stem == "c5"]


def reproduce(
    out_dir: str | os.PathLike,
    *,
    mode: str = "quick",
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: Callable[[Progress], None] | None = None,
    protocol: Protocol | None = None,
    overrides: Sequence[str] = (),
    mlflow: bool | str = False,
    presets: int = 2,
) -> ReproduceResult:
    """Run the presets of ``mode`` into ``out_dir``; assess the claims once under
    ``protocol`` (default :class:`~robustlab.claims.Protocol`) and write claims.csv,
    sensitivity.csv, figures and report.html from that assessment.

    ``presets``: 2 (Protocol 2's presets and Protocol 1's ``c5``; ``claims.csv`` is
    :attr:`~robustlab.claims.Assessment.table`) or 1 (Protocol 1's presets; ``claims.csv`` is
    Protocol 1's table, as before Protocol 2). Both judge the rows under both protocols:
    ``protocol1.csv`` is Protocol 1's table (the control), ``crossovers.csv`` Protocol 2's r*.

    ``overrides`` (``"train.steps=500"``, ...; :mod:`robustlab.sweep.overrides`) are set on
    every preset sweep before it is read, so they are part of each stored config; a store
    keeps one config per sweep name, so a run with other overrides needs another
    ``out_dir``. The presets keep their own names (an override of ``name`` is refused).

    Resumable: rerunning skips finished cells (and on a finished store only re-judges).
    Claims are judged on the rows of this mode's sweeps only (a store may also hold the other
    mode's runs).

    ``mlflow`` (``True``: beside the store, ``OUT/results-mlflow/``; or a tracking URI) logs
    each cell as :func:`robustlab.sweep.run` does, then one run ``report`` in the experiment
    ``robustlab-reproduce-MODE`` with report.html, claims.csv and sensitivity.csv as
    artifacts, the protocol as params and each claim's verdict as a tag ``verdict.C1``, ...
    A tracking failure is reported in ``summary.tracking_error``; every file is written.
    """
    protocol = protocol or Protocol()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError("out_dir", f"{str(out)!r} exists and is not a directory")
    configs = [load_config(p, overrides) for p in preset_paths(mode, presets)]  # before out
    if len({c.name for c in configs}) < len(configs):
        raise ValueError(
            f"name: reproduce runs {len(configs)} preset sweeps, each under its own name; "
            "an override cannot give them one"
        )
    out.mkdir(parents=True, exist_ok=True)
    store = out / "results.db"
    summary = run(
        configs, store, executor=executor, workers=workers, address=address, progress=progress,
        mlflow=mlflow,
    )  # fmt: skip
    names = {c.name for c in configs}
    df = load(store)
    df = df[df["sweep"].isin(names)]
    assessment = assess(df, protocol)
    table = _claims_table(assessment, presets)
    written = {}
    for name, frame in (("claims", table), ("sensitivity", assessment.sensitivity),
                        ("crossovers", assessment.crossovers), ("variants", assessment.variants),
                        ("protocol1", assessment.claims)):  # fmt: skip
        written[name] = out / f"{name}.csv"
        atomic_write(written[name], lambda tmp, f=frame: f.to_csv(tmp, index=False))
    claims_csv, sens_csv = written["claims"], written["sensitivity"]
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    sweep_configs = [c for c in load_configs(store) if c.get("name") in names]
    report = write_html(
        df,
        out / "report.html",
        assessment=assessment,
        claims=True,  # the report of the paper's presets always judges the claims
        configs=sweep_configs,
        title=f"robustlab: reproduction of Zhu et al. (NeurIPS 2022), {mode}",
        figures_dir=fig_dir,
        overwrite=True,  # reproduce's own report, rewritten on every (resumed) run
    )
    figures = sorted(fig_dir.glob("*.png")) + sorted(fig_dir.glob("*.pdf"))
    if mlflow and not summary.tracking_error:
        files = [report, *written.values()]
        summary = _log_report(summary, store, mode, protocol, table, files)
    return ReproduceResult(
        out, store, claims_csv, sens_csv, report, figures, assessment, summary, presets,
        written["crossovers"], written["protocol1"],
    )  # fmt: skip


def verdict_key(row: pd.Series) -> str:
    """The MLflow tag of one row of the claims table: ``verdict.CLAIM`` and, where the row
    has them, its data set and label model or label scale (``verdict.C4-he.sphere.c0.1``)."""
    parts = [str(row["claim"])]
    for key in ("dataset", "labels"):
        if isinstance(row.get(key), str):
            parts.append(row[key])
    scale = row.get("label_scale")
    if isinstance(scale, float) and scale == scale:
        parts.append(f"c{scale:g}")
    return "verdict." + ".".join(parts)


def _log_report(
    summary: SweepSummary,
    store: Path,
    mode: str,
    protocol: Protocol,
    table: pd.DataFrame,
    files: list[Path],
) -> SweepSummary:
    """Log the report and the claims tables as one MLflow run (the summary's tracking URI),
    with each row's verdict as a tag (:func:`verdict_key`); the summary with the error when
    that fails."""
    from .sweep.tracking import Tracker

    tracker = Tracker(store, summary.tracking)
    verdicts = {verdict_key(r): str(r["verdict"]) for _, r in table.iterrows()}
    logged = tracker.log_files(
        f"robustlab-reproduce-{mode}",
        "report",
        files,
        params={"mode": mode, **asdict(protocol)},
        tags={"sweeps": summary.name, **verdicts},
    )
    return summary if logged else replace(summary, tracking_error=tracker.error or "")
