"""Report: figures and the self-contained HTML page, from synthetic result rows."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import types

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from robustlab.claims import evaluate
from robustlab.report import FIGURES, build, figures, write_html
from robustlab.sweep.schema import COLUMNS
from robustlab.theory import expected_grad_sq_norm, kappa

D, N = 8, 2000
EVIL = "<script>alert(1)</script>"


def full_df(n_seeds: int = 3) -> pd.DataFrame:
    """Init and final rows of a width x depth x init grid, a mean-field sweep, a diverged cell.

    P at init follows the Jensen bound (DESIGN §1) up to noise; after training it scales as
    m^0.4 below p = N and m^-0.4 above; the weight change falls as m^-0.5.
    """
    rng = np.random.default_rng(0)
    out = []

    def cell(**kw):
        r = (
            dict.fromkeys(COLUMNS)
            | {
                "sweep": "syn",
                "status": "ok",
                "message": "",
                "eps": 0.1,
                "method": "exact",
                "region": "ball",
                "model": "network",
                "dataset": "teacher",
                "in_dim": D,
                "out_dim": 1,
                "n_train": N,
                "alpha": 1.0,
            }
            | kw
        )
        m, L = r["width"], r["depth"]
        r["cell"] = f"{r['regime']}-{r['init']}-{m}-{L}-{r['seed']}"
        r["n_params"] = m * (D + 1) + (L - 2) * m * m
        r["theory_grad_sq"] = expected_grad_sq_norm(r["init"], D, m, L)
        p0 = 0.1 * kappa(D) * np.sqrt(r["theory_grad_sq"]) * np.exp(0.05 * rng.normal())
        b = 0.4 if r["n_params"] < N else -0.4
        p1 = p0 * (m / 64) ** b * np.exp(0.05 * rng.normal())
        out.append(r | {"at": "init", "p_value": p0, "rel_weight_change": None})
        out.append(r | {"at": "final", "p_value": p1})

    for s in range(n_seeds):
        for init in ("lecun", "he"):
            for m in (16, 64, 256, 1024):
                for L in (2, 3, 4):
                    cell(
                        seed=s,
                        init=init,
                        width=m,
                        depth=L,
                        regime="standard",
                        rel_weight_change=0.5 * (m / 16) ** -0.5,
                    )
        for m in (16, 64, 256):
            cell(seed=s, init="lecun", width=m, depth=2, regime="mean_field", rel_weight_change=0.6)
    bad = out[-1] | {"status": "diverged", "cell": "bad-cell", "message": "loss <nan> at step 3"}
    return pd.DataFrame([*out, bad], columns=list(COLUMNS))


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return full_df()


@pytest.fixture(scope="module")
def figs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("report_figures")


@pytest.fixture(scope="module")
def report(df, figs_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    configs = [{"name": EVIL, "widths": (16, 64), "note": "a & b"}]
    return write_html(df, path, configs=configs, title=f"sweep {EVIL}", figures_dir=figs_dir)


def test_all_figures_written_for_a_full_grid(df, tmp_path):
    paths = figures(df, tmp_path)
    assert len(paths) == 2 * len(FIGURES) == 10
    assert {p.name for p in paths} == {f"{n}.{f}" for n in FIGURES for f in ("png", "pdf")}
    for p in paths:
        head = p.read_bytes()[:8]
        assert head == b"\x89PNG\r\n\x1a\n" if p.suffix == ".png" else head.startswith(b"%PDF")
        assert p.stat().st_size > 5000
    img = imread(tmp_path / "p_vs_width.png")
    assert img.shape[1] > 600 and img[..., :3].std() > 0.05  # drawn, not blank


def test_figures_skip_what_the_rows_cannot_show(df, tmp_path):
    final_only = df[df["at"] == "final"]
    names = {p.stem for p in figures(final_only, tmp_path / "a", formats=("png",))}
    assert names == {"p_vs_width", "p_vs_depth", "weight_change_vs_width"}
    one_width = df[df["width"] == 64]
    names = {p.stem for p in figures(one_width, tmp_path / "b", formats=("png",))}
    assert names == {"p_vs_depth", "p_init_theory", "p_init_vs_final"}
    assert figures(df.iloc[:0], tmp_path / "c") == []
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(f"{n}.png" for n in names)


def test_theory_figure_follows_the_jensen_bound_rows(df):
    # the synthetic P at init equals the bound up to 5% noise, so the bound must be drawn
    # within a few percent of the measured means (the figure's dashed lines)
    fig = FIGURES["p_init_theory"](df)
    ax = fig.axes[0]  # P at init against depth, at the largest width
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--" and len(ln.get_xdata())]
    assert len(dashed) == 2  # one per init scheme
    lecun = min(dashed, key=lambda ln: ln.get_ydata()[-1])
    expected = [
        0.1 * kappa(D) * np.sqrt(expected_grad_sq_norm("lecun", D, 1024, L)) for L in (2, 3, 4)
    ]
    np.testing.assert_allclose(lecun.get_ydata(), expected, rtol=1e-12)
    assert any(
        "Jensen bound eps*kappa_d*sqrt(E||grad||^2)" in t.get_text()
        for t in ax.get_legend().get_texts()
    )


def test_html_is_self_contained_and_escaped(report):
    text = report.read_text(encoding="utf-8")
    assert 'id="claims"' in text and "data:image/png;base64," in text
    assert text.count("<img ") == len(FIGURES)
    assert EVIL not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "loss &lt;nan&gt; at step 3" in text and "bad-cell" in text  # diverged cell listed
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # no external resource
    assert "<script" not in text.lower()
    for needle in ("kappa_d", "(m s2/2)^(L-2)", "||W_T - W_0||_F / ||W_0||_F", "torch", "numpy"):
        assert needle in text
    assert report.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in report.parent.iterdir()] == ["report.html"]  # no temp file left


def test_claims_table_has_a_colored_verdict_per_claim(df, report):
    text = report.read_text(encoding="utf-8")
    table = text[text.index('id="claims"') : text.index("</table>", text.index('id="claims"'))]
    claims = evaluate(df)
    for cid, verdict in zip(claims["claim"], claims["verdict"], strict=True):
        assert f"<td>{cid}</td>" in table
        assert f'class="verdict v-{verdict.replace(" ", "-")}">{verdict}<' in table
    assert ".v-supported{" in text and ".v-contradicted{" in text


def test_figures_dir_keeps_png_and_pdf(report, figs_dir):
    kept = sorted(p.name for p in figs_dir.iterdir())
    assert kept == sorted(f"{n}.{f}" for n in FIGURES for f in ("png", "pdf"))


def test_given_claims_are_shown(df, tmp_path):
    claims = evaluate(df, n_boot=100).assign(reason="marker-reason <b>")
    out = write_html(df.iloc[-1:], tmp_path / "r.html", claims=claims)  # one diverged row
    text = out.read_text(encoding="utf-8")
    assert "marker-reason &lt;b&gt;" in text and "No figure" in text


def test_build_reads_the_store_interface(df, tmp_path, monkeypatch):
    calls = []
    fake = types.ModuleType("robustlab.sweep.store")
    fake.load = lambda p: calls.append(("load", p)) or df.iloc[-1:]
    fake.load_configs = lambda p: calls.append(("configs", p)) or [{"name": "from-store"}]
    monkeypatch.setitem(sys.modules, "robustlab.sweep.store", fake)
    out = build(tmp_path / "results.db", tmp_path / "out.html")
    assert calls == [("load", tmp_path / "results.db"), ("configs", tmp_path / "results.db")]
    text = out.read_text(encoding="utf-8")
    assert "name: from-store" in text and "robustlab report: results.db" in text


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(report, tmp_path):
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    url = report.as_uri()
    shot = tmp_path / "shot.png"
    subprocess.run(
        ["chromium", *flags, f"--screenshot={shot}", "--window-size=1200,2000", url],
        check=True,
        timeout=120,
        capture_output=True,
    )
    img = imread(shot)[..., :3]
    assert img.shape[:2] == (2000, 1200)
    assert img.std() > 0.05 and (img < 0.9).any()  # not blank, not all white
    dom = subprocess.run(
        ["chromium", *flags, "--dump-dom", url],
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    ).stdout
    table = dom[dom.index('id="claims"') :]
    table = table[: table.index("</table>")]
    assert re.findall(r"<td>(C\d)</td>", table) == ["C1", "C2", "C3", "C4", "C5"]
