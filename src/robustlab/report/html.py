"""One self-contained HTML report: claims, definitions, figures, configs, runs, versions.

The page has no external resources and no scripts: figures are embedded as base64 PNG
``<img>`` elements and the style sheet is inline. Every string that comes from data or
configs is escaped with :func:`html.escape`. The file is written atomically (a temporary
file in the same directory, then :func:`os.replace`).
"""

from __future__ import annotations

import base64
import html
import platform
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .._atomic import atomic_write
from .._version import __version__
from ..claims import evaluate
from ..claims.judge import _numpy_dtypes
from .figures import figures

__all__ = ["build", "write_html"]

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f2f2f2} td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{font-weight:600;white-space:nowrap}
.v-supported{background:#d4edda;color:#155724} .v-contradicted{background:#f8d7da;color:#721c24}
.v-inconclusive{background:#fff3cd;color:#856404}
.v-regime-not-reached{background:#e2e3f3;color:#383d71} .v-no-data{background:#eee;color:#555}
pre{background:#f7f7f7;border:1px solid #ddd;padding:.6em;overflow-x:auto;font-size:.85em}
figure{margin:1.2em 0} figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.9em;color:#444}
"""

_VERDICTS = {
    "supported": "the confidence interval of the slope excludes 0 on the side the claim predicts.",
    "contradicted": "the interval excludes 0 on the opposite side: the data go against the claim.",
    "inconclusive": "the interval contains 0, or too few distinct widths/depths to fit a slope.",
    "regime not reached": "the claim has runs, but none in its regime (p vs N, or laziness).",
    "no data": "no runs of the kind the claim is about.",
}

_DEFINITIONS = """\
P(f, eps) = E_{x ~ data} E_{x' ~ U(B_2(x, eps))} ||J_f(x) (x' - x)||_2      (lower = more robust)
  J_f(x): k x d input Jacobian; x' uniform in the L2 ball of radius eps (or on its sphere).
  For k = 1: E_{delta ~ U(B(0, eps))} |g . delta| = eps * kappa_d * ||g||_2, exactly, with
kappa_d = d/(d+1) * Gamma(d/2) / (sqrt(pi) * Gamma((d+1)/2))   (ball; sphere: without d/(d+1))
E ||grad_x f(x)||^2 = (d s1/2) (m s2/2)^(L-2) (m s3)   at initialization (bias-free ReLU MLP,
  W_1, W_l, W_L entries ~ N(0, s1), N(0, s2), N(0, s3); exact in expectation at any width)
  Jensen: P_init <= eps * kappa_d * sqrt(E ||grad_x f||^2)
Laziness: relative weight change ||W_T - W_0||_F / ||W_0||_F over the whole network;
  lazy when <= the lazy threshold, non-lazy (feature learning) when >= the non-lazy one.
Scaling exponent: slope b of log P = a + b log m (width) or log P = a + b L (depth), pooled
  over groups by a fixed-effects fit; interval: percentile bootstrap over seeds.
Source: Zhu, Liu, Chrysos & Cevher, NeurIPS 2022 (arXiv 2209.07263); robustlab DESIGN §1."""

_CAPTIONS = {
    "p_vs_width": "P after training against width; error bars: standard error over seeds.",
    "p_vs_depth": "P after training against depth; error bars: standard error over seeds.",
    "p_init_theory": "P at initialization (points) and the closed-form Jensen bound (dashed).",
    "weight_change_vs_width": "Regime check: relative weight change against width.",
    "p_init_vs_final": "P at initialization against P after training, one point per run.",
}


def _e(v) -> str:
    return html.escape(str(v), quote=True)


def _num(v, spec: str = ".3g") -> str:
    return "&mdash;" if v is None or pd.isna(v) else format(float(v), spec)


def _table(head: Iterable[str], rows: Iterable[Iterable[str]], attrs: str = "") -> str:
    """Rows of already-escaped cell HTML (``<td>`` included) -> ``<table>``."""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    return f"<table{attrs}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _claims_html(claims: pd.DataFrame) -> str:
    rows = []
    for _, c in claims.iterrows():
        v = str(c["verdict"])
        level = c.get("level", 0.95)
        interval = f"[{_num(c['ci_low'])}, {_num(c['ci_high'])}]"
        rows.append(
            [
                f"<td>{_e(c['claim'])}</td>",
                f"<td>{_e(c['statement'])}</td>",
                f'<td class="verdict v-{_e(v.replace(" ", "-"))}">{_e(v)}</td>',
                f'<td class="num">{_num(c["slope"])}</td>',
                f"<td>{interval} ({_num(100 * level, '.0f')}%, {_e(c.get('ci_method', ''))})</td>",
                f"<td>{_e(c.get('x', ''))} ({_e(c.get('expected_sign', ''))})</td>",
                f'<td class="num">{_e(c["n"])}</td>',
                f'<td class="num">{_num(c.get("median_rel_weight_change"))}</td>',
                f"<td>{_e(c['reason'])}</td>",
            ]
        )
    head = [
        "claim",
        "statement",
        "verdict",
        "slope",
        "interval",
        "x (claimed sign)",
        "n",
        "median rel. weight change",
        "reason",
    ]
    return _table(head, rows, ' id="claims"')


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
    out = _table(
        ["status", "cells"],
        [[f"<td>{_e(s)}</td>", f'<td class="num">{n}</td>'] for s, n in counts.items()],
    )
    bad = cells[cells["status"] != "ok"]
    if len(bad):
        cols = [
            c
            for c in ("cell", "width", "depth", "init", "regime", "seed", "status", "message")
            if c in bad.columns
        ]
        out += "<h3>Diverged or failed cells</h3>" + _table(
            cols, [[f"<td>{_e(r[c])}</td>" for c in cols] for _, r in bad.iterrows()]
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
    return _table(
        ["component", "version"], [[f"<td>{_e(a)}</td>", f"<td>{_e(b)}</td>"] for a, b in rows]
    )


def _figures_html(df: pd.DataFrame, figures_dir) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(figures_dir) if figures_dir is not None else Path(tmp)
        formats = ("png", "pdf") if figures_dir is not None else ("png",)
        parts = []
        for path in figures(df, out, formats=formats):
            if path.suffix != ".png":
                continue
            b64 = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(
                f'<figure><img alt="{_e(path.stem)}" src="data:image/png;base64,{b64}">'
                f"<figcaption><b>{_e(path.stem)}</b>: {_e(_CAPTIONS[path.stem])}"
                "</figcaption></figure>"
            )
    return "".join(parts) or "<p>No figure: the results lack the data for any.</p>"


def write_html(
    df: pd.DataFrame,
    path: str | Path,
    *,
    claims: pd.DataFrame | None = None,
    configs: Iterable[Mapping] = (),
    title: str = "robustlab report",
    figures_dir: str | Path | None = None,
    sensitivity: pd.DataFrame | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> Path:
    """Write the report for result rows ``df`` to ``path`` and return it.

    ``claims`` defaults to :func:`robustlab.claims.evaluate` ``(df)``; ``configs`` are the
    sweep configs shown as YAML; ``figures_dir`` keeps the figures (PNG and PDF) there,
    otherwise they are drawn in a temporary directory and only embedded.
    """
    path = Path(path)
    df = _numpy_dtypes(df)
    thresholds = dict(thresholds or {})
    claims = evaluate(df, **thresholds) if claims is None else claims
    sens = ""
    if sensitivity is not None and len(sensitivity):
        share = (
            sensitivity.merge(claims[["claim", "primary_verdict"]], on="claim")
            .assign(same=lambda t: t["verdict"] == t["primary_verdict"])
            .groupby(["claim", "points", "fit", "range"], sort=False)["same"]
            .mean()
            .reset_index()
        )
        sens = _table(
            ["claim", "points", "fit", "range", "share of seed variants with the main verdict"],
            [[f"<td>{_e(v)}</td>" for v in r[:4]] + [f'<td class="num">{_num(r[4])}</td>']
             for r in share.itertuples(index=False)],
            ' id="sensitivity"',
        )  # fmt: skip
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    cfgs = (
        "".join(
            f"<pre>{_e(yaml.safe_dump(_plain(c), sort_keys=False, allow_unicode=True))}</pre>"
            for c in configs
        )
        or "<p>No sweep configs given.</p>"
    )
    meaning = "".join(
        f'<li><span class="verdict v-{k.replace(" ", "-")}">{k}</span>: {_e(v)}</li>'
        for k, v in _VERDICTS.items()
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<style>{_CSS}</style></head><body>
<h1>{_e(title)}</h1><p>Generated {now} by robustlab {_e(__version__)}.</p>
<h2>Claims</h2>{_claims_html(claims)}
<h2>What each verdict means</h2><ul>{meaning}</ul>
<h2>Sensitivity of the verdicts</h2>{sens or "<p>No sensitivity table.</p>"}
<h2>Definitions</h2><pre>{_e(_DEFINITIONS)}</pre>
<h2>Figures</h2>{_figures_html(df, figures_dir)}
<h2>Sweep configs</h2>{cfgs}
<h2>Runs</h2>{_runs_html(df)}
<h2>Versions</h2>{_versions_html(df)}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))


def build(store_path: str | Path, out_html: str | Path, *, figures_dir=None) -> Path:
    """Report of a results store: :func:`robustlab.sweep.store.load` rows + its configs."""
    from ..sweep.store import load, load_configs  # lazy: keeps the report importable alone

    df, configs = load(store_path), load_configs(store_path)
    title = f"robustlab report: {Path(store_path).name}"
    return write_html(df, out_html, configs=configs, title=title, figures_dir=figures_dir)
