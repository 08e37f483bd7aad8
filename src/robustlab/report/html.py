"""One self-contained HTML report: claims, their evidence and robustness, figures, runs.

The page has no external resources and no scripts: figures are embedded as base64 PNG
``<img>`` elements and the style sheet is inline. Every string that comes from data or
configs is escaped (:mod:`robustlab.report.markup`). The file is written atomically (a
temporary file in the same directory, then :func:`os.replace`).
"""

from __future__ import annotations

import base64
import platform
import tempfile
from collections.abc import Iterable, Mapping
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
from .figures import CAPTIONS, figures
from .markup import CSS, e, table
from .robustness import sensitivity_table, threshold_table, variants_table
from .tables import claims_table, details_table, groups_table
from .texts import THRESHOLD_NOTE, Y_F0_NOTE, definitions, sensitivity_note, verdict_meanings

__all__ = ["build", "write_html"]


def _plain(obj):
    """Config values -> YAML-safe builtins (tuples, paths, numpy scalars)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj if isinstance(obj, (str, int, float, bool, type(None))) else str(obj)


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


def _figures_html(df: pd.DataFrame, figures_dir, protocol: Protocol) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(figures_dir) if figures_dir is not None else Path(tmp)
        formats = ("png", "pdf") if figures_dir is not None else ("png",)
        parts = []
        for path in figures(df, out, formats=formats, protocol=protocol):
            if path.suffix != ".png":
                continue
            b64 = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(
                f'<figure><img alt="{e(path.stem)}" src="data:image/png;base64,{b64}">'
                f"<figcaption><b>{e(path.stem)}</b>: {e(CAPTIONS[path.stem])}"
                "</figcaption></figure>"
            )
    return "".join(parts) or "<p>No figure: the results lack the data for any.</p>"


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
        f"{sens}<h3>Sensitivity to the laziness thresholds</h3><p class=note>{THRESHOLD_NOTE}"
        f"</p>{threshold_table(a.thresholds, a.claims)}"
    )


def write_html(
    df: pd.DataFrame,
    path: str | Path,
    *,
    assessment: Assessment | None = None,
    configs: Iterable[Mapping] = (),
    title: str = "robustlab report",
    figures_dir: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the report for result rows ``df`` to ``path`` and return it.

    The report renders one :class:`~robustlab.claims.Assessment` and judges nothing itself.

    Args:
        df: result rows (columns of :mod:`robustlab.sweep.schema`).
        path: the HTML file to write.
        assessment: the claims judged on ``df`` (:func:`robustlab.claims.assess`); default
            ``assess(df)`` under the default protocol. Its protocol's laziness thresholds
            are drawn on the regime figures.
        configs: the sweep configs, shown as YAML.
        title: page title.
        figures_dir: keep the figures (PNG and PDF) there; otherwise they are drawn in a
            temporary directory and only embedded.
        overwrite: replace an existing ``path`` (never an SQLite database); otherwise an
            existing file is refused, before anything is computed.
    """
    path = check_target(path, overwrite=overwrite)
    df = numpy_dtypes(df)
    a = assess(df) if assessment is None else assessment
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    cfgs = (
        "".join(
            f"<pre>{e(yaml.safe_dump(_plain(c), sort_keys=False, allow_unicode=True))}</pre>"
            for c in configs
        )
        or "<p>No sweep configs given.</p>"
    )
    meanings = verdict_meanings(a.protocol)
    meaning = "".join(
        f'<li><span class="verdict v-{e(k.replace(" ", "-"))}">{e(k)}</span>: '
        f"{e(meanings.get(k, ''))}</li>"
        for k in VERDICTS
    )
    groups_html = groups_table(a.groups) if len(a.groups) else "<p>No groups.</p>"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>{CSS}</style></head><body>
<h1>{e(title)}</h1><p>Generated {now} by robustlab {e(__version__)}.</p>
<h2>Claims</h2>{claims_table(a.claims)}
<h2>What each verdict means</h2><ul>{meaning}</ul>
<h2>Evidence beside each verdict</h2>{details_table(a.claims)}<p class=note>{e(Y_F0_NOTE)}</p>
<h2>Verdicts per group</h2>{groups_html}
<h2>Sensitivity of the verdicts</h2>{_robustness_html(a)}
<h2>Definitions</h2><pre>{e(definitions(a.protocol))}</pre>
<h2>Figures</h2>{_figures_html(df, figures_dir, a.protocol)}
<h2>Sweep configs</h2>{cfgs}
<h2>Runs</h2>{_runs_html(df)}
<h2>Versions</h2>{_versions_html(df)}
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
    store_path: str | Path, out_html: str | Path, *, figures_dir=None, overwrite: bool = False
) -> Path:
    """Report of a results store (:func:`robustlab.sweep.store.load` rows and its configs),
    with the claims assessed once under the default :class:`~robustlab.claims.Protocol`.

    ``out_html`` is checked before the store is read: an existing file is replaced only with
    ``overwrite``, and never an SQLite database or the store itself."""
    from ..sweep.store import load, load_configs  # lazy: the report imports alone

    check_target(out_html, (store_path,), overwrite=overwrite)  # before the long work
    if figures_dir is not None:
        _check_folder(figures_dir)
    df, configs = load(store_path), load_configs(store_path)
    title = f"robustlab report: {Path(store_path).name}"
    return write_html(df, out_html, assessment=assess(df), configs=configs, title=title,
                      figures_dir=figures_dir, overwrite=overwrite)  # fmt: skip
