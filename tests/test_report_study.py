"""The report of a study of the user's own: P by the swept axes, and the claims section only
for sweeps that test the paper's claims (or with --claims).

A tiny real sweep (widths 8-32, depths 2-3, LeCun and He, three seeds, d = 5, with the PGD
worst case) is run once into a store; the tests read its report as HTML, as a DOM and as a
Chromium screenshot, and check the numbers of the P table against the stored rows.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text
from scipy import stats

from _chromium import needs_chromium, screenshot
from robustlab.cli import main
from robustlab.report import FIGURES, build, caption, p_by_axes
from robustlab.report.plot import PN_GID, spaced
from robustlab.sweep import load, run
from robustlab.theory import kappa
from test_report import dom_table, full_df

IN_DIM = 5  # not the presets' d = 10: captions must say 5
STUDY = {
    "name": "my-study",
    "data": {"name": "sphere", "in_dim": IN_DIM, "n_train": 24, "n_test": 16},
    "grid": {"width": [8, 16, 32], "depth": [2, 3], "init": ["lecun", "he"]},
    "seeds": 3,
    "train": {"steps": 40},
    "measure": {"eps": [0.1], "methods": ["exact", "pgd"], "points": 16, "at": ["init", "final"]},
}
# the same kind of sweep, tagged with the claims it tests (as the presets are)
TAGGED = STUDY | {
    "name": "tagged",
    "grid": {"width": [8, 16], "depth": [2], "init": ["lecun"]},
    "seeds": 2,
    "claims": ["C1", "C2"],
}
PAGE_PX = 1218  # the page's content width: body max-width 1250 px less its padding
CLAIM_WORDS = re.compile(r"\bC[1-5]\b|verdict|claim", re.IGNORECASE)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("study") / "study.db"
    run(STUDY, path, executor="serial")
    return path


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    path = tmp_path_factory.mktemp("tagged") / "tagged.db"
    run(TAGGED, path, executor="serial")
    return path


@pytest.fixture(scope="module")
def page(store, tmp_path_factory):
    steps: list[str] = []
    out = build(store, tmp_path_factory.mktemp("page") / "report.html", progress=steps.append)
    return out, out.read_text(encoding="utf-8"), steps


def test_a_study_report_has_no_claims_section(page):
    _, text, steps = page
    assert 'id="claims-section"' not in text and 'id="claims"' not in text
    words = re.sub(r"<style>.*?</style>|data:image/png;base64,[^\"]*", "", text, flags=re.S)
    assert not CLAIM_WORDS.search(words)  # no claims captions, notes or definitions either
    assert "judging the claims" not in steps  # nothing was judged
    assert [s for s in steps if s.startswith("figure ")][0].startswith("figure 1/")
    assert 'id="fig-p_by_width"' in text and 'id="fig-p_by_depth"' in text


def test_the_p_table_holds_each_group_mean_over_seeds(page, store):
    _, text, _ = page
    head, rows = dom_table(text, "p-table-1")
    assert head[:3] == ["init", "width m", "depth L"]
    for col in ("P at init", "P after training", "worst after training",
                "worst / P after training"):  # fmt: skip
        assert col in head
    assert len(rows) == 2 * 3 * 2  # inits x widths x depths
    cells = {(r[0][0], r[1][0], r[2][0]): r for r in rows}
    df = load(store)
    final = df[(df["stage"] == "final") & (df["points"] == "test")]
    g = final[(final["init"] == "he") & (final["width"] == 16) & (final["depth"] == 3)]
    p = g[g["method"] == "exact"].sort_values("seed")["p_value"].to_numpy()
    shown = cells[("he", "16", "3")][head.index("P after training")][0]
    se = p.std(ddof=1) / np.sqrt(len(p))
    assert shown == f"{p.mean():.3g} \u00b1 {se:.2g}"


def test_p_by_axes_matches_a_direct_computation(store):
    df = load(store)
    frame = p_by_axes(df)
    assert frame["experiment"].unique().tolist() == ["my-study"]
    assert set(frame["stage"]) == {"init", "final"} and (frame["seeds"] == 3).all()
    row = frame[(frame["init"] == "lecun") & (frame["width"] == 32) & (frame["depth"] == 2)
                & (frame["stage"] == "final")].iloc[0]  # fmt: skip
    runs = df[(df["init"] == "lecun") & (df["width"] == 32) & (df["depth"] == 2)
              & (df["stage"] == "final") & (df["points"] == "test")]  # fmt: skip
    p = runs[runs["method"] == "exact"].set_index("seed")["p_value"].sort_index()
    worst = runs[runs["method"] == "pgd"].set_index("seed")["worst_value"].sort_index()
    half = stats.t.ppf(0.975, 2) * p.std(ddof=1) / np.sqrt(3)
    np.testing.assert_allclose(
        [row["p_mean"], row["p_stderr"], row["p_low"], row["p_high"]],
        [p.mean(), p.std(ddof=1) / np.sqrt(3), p.mean() - half, p.mean() + half],
        rtol=1e-12,
    )
    np.testing.assert_allclose(row["worst_mean"], worst.mean(), rtol=1e-12)
    np.testing.assert_allclose(row["ratio_mean"], (worst / p).mean(), rtol=1e-12)
    assert row["n_params"] == 32 * (IN_DIM + 1) and row["p_over_n"] == row["n_params"] / 24


def test_sweeps_along_n_are_one_experiment(store):
    df = load(store)
    more = df.assign(sweep="my-study-n48", sweep_hash="other", n_train=48, cell="n48" + df["cell"],
                     config_json=df["config_json"].str.replace('"n_train":24', '"n_train":48'),
                     p_value=2 * df["p_value"])  # fmt: skip
    both = pd.concat([df, more], ignore_index=True)
    frame = p_by_axes(both)
    assert frame["experiment"].unique().tolist() == ["my-study + my-study-n48"]
    assert sorted(frame["n_train"].unique()) == [24, 48]
    fig = FIGURES["p_by_n_train"](both)
    assert fig is not None and len([a for a in fig.axes if a.get_visible()]) == 3 * 2
    other = more.assign(config_json=more["config_json"].str.replace('"steps":40', '"steps":41'))
    apart = p_by_axes(pd.concat([df, other], ignore_index=True))
    assert apart["experiment"].nunique() == 2  # another training: never one experiment
    assert FIGURES["p_by_n_train"](pd.concat([df, other], ignore_index=True)) is None


def test_the_first_figure_comes_before_the_first_table(page, store, tmp_path):
    _, text, _ = page
    assert text.index("<figure") < text.index("<table")
    forced = build(store, tmp_path / "forced.html", claims=True).read_text(encoding="utf-8")
    assert 'id="claims-section"' in forced  # --claims on a study store
    assert forced.index("<figure") < forced.index("<table")


def test_captions_read_the_input_dimension_of_the_rows(page, store):
    _, text, _ = page
    worst = re.search(r"<b>worst_vs_average</b>: ([^<]+)<", text).group(1)
    assert f"{1 / kappa(IN_DIM):.3g} at d = {IN_DIM} on the L2 ball" in worst
    assert "d = 10" not in text and "4.25" not in text
    init = caption("p_init_theory", load(store))
    assert f"d = {IN_DIM}" in init
    assert "linearized" not in text and "mean-field" not in text  # no such runs here


def test_stored_claims_decide_and_the_flags_override(tagged, store, tmp_path, capsys):
    out = build(tagged, tmp_path / "tagged.html")  # the stored config lists claims
    text = out.read_text(encoding="utf-8")
    assert 'id="claims-section"' in text and 'id="claims"' in text
    assert "The sweeps tagged test them" in text
    assert main(["report", str(tagged), "-o", str(tmp_path / "off.html"), "--no-claims"]) == 0
    assert main(["report", str(store), "-o", str(tmp_path / "on.html"), "--claims"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.count("report: ") == 2  # stdout: the paths
    assert 'id="claims"' not in (tmp_path / "off.html").read_text(encoding="utf-8")
    assert 'id="claims"' in (tmp_path / "on.html").read_text(encoding="utf-8")


def test_pn_is_not_drawn_outside_the_swept_widths(store):
    # p = 6 m (+ m^2 at depth 3) equals N = 24 below the smallest width, 8: no line, the
    # axis keeps the swept range, and the legend says every width has p > N
    fig = FIGURES["p_by_width"](load(store))
    for ax in (a for a in fig.axes if a.get_visible()):
        assert not [ln for ln in ax.get_lines() if ln.get_gid() == PN_GID]
        assert ax.get_xlim()[0] > 6
        assert any(t.get_text().startswith("p > N at every width")
                   for t in ax.get_legend().get_texts())  # fmt: skip


def _boxes(labels, renderer) -> list:
    return sorted(
        (t.get_window_extent(renderer) for t in labels if t.get_visible() and t.get_text()),
        key=lambda b: b.x0,
    )


@pytest.mark.parametrize("source", ["study", "paper"])
def test_figures_are_legible_at_page_width(source, store, tmp_path):
    df = load(store) if source == "study" else full_df()
    drawn = {name: draw(df) for name, draw in FIGURES.items()}
    assert len([f for f in drawn.values() if f is not None]) >= 8
    for name, fig in drawn.items():
        if fig is None:
            continue
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        width_px = fig.get_figwidth() * fig.dpi
        shown = min(1.0, PAGE_PX / width_px)  # the page scales wider images down
        for t in fig.findobj(Text):
            if t.get_visible() and t.get_text().strip():
                px = t.get_fontsize() / 72 * fig.dpi * shown
                assert px >= 11, (name, t.get_text(), px)
        for ax in fig.axes:  # x tick labels never overlap ("192288")
            boxes = _boxes(ax.get_xticklabels(), renderer)
            for a, b in zip(boxes, boxes[1:], strict=False):
                assert a.x1 <= b.x0, (name, [t.get_text() for t in ax.get_xticklabels()])


def test_spaced_ticks_leave_room_for_their_labels():
    widths = [3, 6, 12, 24, 48, 96, 192, 288]
    kept = spaced(widths, 3, 288)
    assert kept[0] == 3 and 288 not in kept and set(kept) <= set(widths)  # 192 | 288 collide
    assert spaced([16, 64], 16, 64) == [16, 64]
    small = spaced([0.001, 0.002, 0.005, 0.01, 0.02], 0.001, 0.5)  # "0.0010.002" collide
    assert small[0] == 0.001 and 0.002 not in small and len(small) >= 2


@needs_chromium
def test_a_study_report_renders_in_chromium(page, tmp_path):
    path, _, _ = page
    img = screenshot(path, tmp_path, 1400, 1000)  # a laptop's first screen
    assert img.shape[:2] == (1000, 1400)
    assert img.std() > 0.05 and (img < 0.9).any()  # ink, not a blank page
    # the first figure is on the first screen: its colored lines (tab10, saturated)
    saturation = img.max(axis=2) - img.min(axis=2)
    assert (saturation[:1000] > 0.4).sum() > 200
    # nothing runs off the page sideways: the margin beside the 1250 px body stays white
    assert (img[:, -40:] > 0.97).all()
