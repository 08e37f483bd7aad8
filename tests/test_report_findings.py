"""The report's opening when the assessment has Protocol 2's verdicts: the findings (one
sentence per verdict, every number formatted from the assessment's frames), the headline
figures and Protocol 2's tables, before Protocol 1's section (the control); synthetic rows."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from _chromium import dom, needs_chromium, screenshot
from robustlab.claims import assess
from robustlab.report import FINDING_FIGURES, finding_figures, findings, write_html
from robustlab.report.finding_texts import plain, signed
from robustlab.sweep.schema import COLUMNS
from test_questions import GAUSS, depth_rows, width_rows
from test_report import dom_table

SEEDS = 3
NUMBER = re.compile(r"(?<![\w.^])[+-]?\d+(?:\.\d+)?(?:e[+-]?\d+)?")  # not the 1 of "C1"


def rows(*, width: bool = True, depth: bool = True) -> pd.DataFrame:
    """Width sweeps at N = 100, 200, 400 under flipped and Gaussian labels (C1 rises, C2
    falls, a peak near p = N), and linearized depth sweeps over four label scales with the
    lazy limit: He changes sign at ||y|| / ||f0|| = 1, LeCun never does (r* far outside)."""
    rng = np.random.default_rng(0)
    parts = []
    if width:
        parts += [
            width_rows(rng, slope_below=0.5, slope_above=-0.3, seeds=SEEDS),
            width_rows(rng, slope_below=0.3, slope_above=-0.2, seeds=SEEDS).assign(
                config_json=GAUSS
            ),
        ]
    if depth:
        parts += [
            depth_rows(rng, r_star=1.0, seeds=SEEDS),
            depth_rows(rng, r_star=100.0, seeds=SEEDS).assign(init="lecun"),
        ]
    d = pd.concat(parts, ignore_index=True)
    d = d.reindex(columns=list(dict.fromkeys([*COLUMNS, *d.columns])))
    return d.assign(eps=0.1, region="ball", sweep_hash="h", model=None, message=None,
                    cell=[f"c{i}" for i in range(len(d))], steps=100)  # fmt: skip


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return rows()


@pytest.fixture(scope="module")
def a(df):
    return assess(df)


@pytest.fixture(scope="module")
def figs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("headline")


@pytest.fixture(scope="module")
def page(df, a, figs_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("findings") / "report.html"
    return write_html(df, path, assessment=a, claims=True, figures_dir=figs_dir)


def sentences(a, df) -> dict[str, str]:
    """Each finding's text by its head (the claim, data set and setting)."""
    return {f.head: f.text for _, group in findings(a, df) for f in group}


def one(texts: dict[str, str], first: str, *words: str) -> str:
    """The one sentence whose head starts with the word ``first`` and holds ``words``."""
    hits = [t for h, t in texts.items() if h.split()[0] == first and all(w in h for w in words)]
    assert len(hits) == 1, (first, words, list(texts))
    return hits[0]


def numbers(text: str) -> list[str]:
    """The numbers of a sentence, less the names of the protocols."""
    return NUMBER.findall(text.replace("Protocol 1", "Protocol"))


def test_the_findings_come_first(page):
    text = page.read_text(encoding="utf-8")
    sections = re.findall(r'<h2 id="([\w-]+)"', text)
    assert sections[:5] == ["findings", "headline", "protocol-2", "claims-section", "results"]
    assert "Control: Protocol 1" in text[text.index('id="claims-section"') :][:200]
    nav = text[text.index("<nav>") : text.index("</nav>")]
    assert nav.index("Findings") < nav.index("Control: Protocol 1") < nav.index("Results")


def test_the_preamble_says_what_a_verdict_is_and_the_family_size(a, page):
    text = page.read_text(encoding="utf-8")
    family = int(a.questions["p_holm"].notna().sum())
    assert family == 2 * 2 + 2 * 4  # C1, C2 per label model; C3, C4-he per label scale
    lead = text[text.index('id="findings"') : text.index('id="headline"')]
    assert f"family of {family} directional verdicts" in lead
    assert "&quot;contradicted here&quot; is a verdict on a trend in one setting" in lead


def test_one_sentence_per_verdict_in_order(a, df):
    groups = findings(a, df)
    titles = [t for t, _ in groups]
    assert titles == [
        "Width, sphere data, flipped labels",
        "Width, sphere data, Gaussian-noise labels",
        "Peak, sphere data",
        "Depth, sphere data",
        "Crossover ratio r*, sphere data",
        "Judged by Protocol 1 only",
    ]
    told = [f for _, g in groups for f in g if f.verdict is not None]
    judged = a.questions["verdict"].tolist() + ["no data"]  # then C5, judged by Protocol 1
    assert [f.verdict for f in told] == judged
    assert all("nan" not in f.text for _, g in groups for f in g)


def test_every_number_of_a_width_sentence_is_the_frames(a, df):
    r = a.questions.set_index(["claim", "labels"]).loc[("C1", "flip")]
    text = one(sentences(a, df), "C1", "flipped")
    allowed = {signed(r[c]) for c in ("slope", "ci_low", "ci_high")}
    allowed |= {plain(r["effect"]), plain(r["train_loss_max"]), f"{r['p_holm']:.2g}"}
    allowed |= {str(int(r["n_seeds"])), *r["p_over_n"].split("-")}
    assert set(numbers(text)) <= allowed and signed(r["slope"]) in text
    assert f"{signed(r['slope'])} [{signed(r['ci_low'])}, {signed(r['ci_high'])}]" in text
    assert f"Protocol 1 (matched fit) said: {r['control']}." in text


def test_a_sentence_follows_its_frame(a, df, page):
    """Change the frame's number and the sentence changes with it: nothing is copied."""
    q = a.questions.copy()
    c1 = (q["claim"] == "C1") & (q["labels"] == "flip")
    peak = (q["claim"] == "C12-peak") & (q["labels"] == "flip")
    q.loc[c1, ["slope", "ci_low", "ci_high"]] = [0.123456, 0.0456, 0.2011]
    q.loc[peak, ["exponent", "exponent_low", "exponent_high"]] = [0.4321, 0.3, 0.55]
    cross = a.crossovers.copy()
    cross.loc[cross["init"] == "he", ["finite_r", "finite_low", "finite_high"]] = [1.2345, 1.1, 1.4]
    changed = dataclasses.replace(a, questions=q, crossovers=cross)
    before, after = sentences(a, df), sentences(changed, df)
    assert "log P changes by +0.123 [+0.0456, +0.201]" in one(after, "C1", "flipped")
    assert signed(a.questions.loc[c1, "slope"].iloc[0]) in one(before, "C1", "flipped")
    peak_text = one(after, "C12-peak", "flipped")
    assert "the peak width grows as N^0.432 [0.300, 0.550]" in peak_text
    old = a.questions.loc[peak].iloc[0]
    assert f"N^{plain(old['exponent'])} " in one(before, "C12-peak", "flipped")
    assert "r* = 1.23 [1.10, 1.40] in the finite linearized networks" in one(after, "He")
    he = a.crossovers.set_index("init").loc["he"]
    was = f"r* = {plain(he['finite_r'])} [{plain(he['finite_low'])}, {plain(he['finite_high'])}]"
    assert was in one(before, "He") and was in page.read_text(encoding="utf-8")


def test_depth_and_crossover_sentences(a, df):
    texts = sentences(a, df)
    r = a.questions.set_index(["claim", "label_scale"]).loc[("C4-he", 0.1)]
    text = one(texts, "C4-he", "c = 0.1 ")
    allowed = {signed(r[c]) for c in ("slope", "ci_low", "ci_high", "step_first",
                                      "step_first_low", "step_first_high", "tail_slope",
                                      "tail_low", "tail_high")}  # fmt: skip
    allowed |= {plain(r["effect"]), plain(r["y_f0_ratio"]), f"{r['p_holm']:.2g}", "0.1"}
    allowed |= {str(int(r["n_seeds"])), *r["shape_seeds"].split(" of ")}
    allowed |= {str(v) for v in (2, 3, 5)}  # the swept depths of the rows: 2-5, first 2 -> 3
    assert set(numbers(text)) <= allowed
    assert r["verdict"] == "contradicted here" and ": contradicted here: " in text  # He, c < r*
    he = one(texts, "He")
    assert "deeper is more robust (P falls with depth) below r*" in he
    lim = a.crossovers.set_index("init").loc["he"]
    assert f"at r* = {plain(lim['limit_r'])} " in he and "in the exact lazy limit" in he
    lecun = one(texts, "LeCun")
    assert "no r* in the finite linearized networks" in lecun
    assert ", nor in the exact lazy limit (0 of 3 seeds)" in lecun


def test_the_peak_sentence_names_the_label_models(a, df):
    text = one(sentences(a, df), "Which")
    for labels, words in (("flip", "flipped labels"), ("gauss", "Gaussian-noise labels")):
        r = a.questions.set_index(["claim", "labels"]).loc[("C12-peak", labels)]
        assert f"under {words} P shows an interior peak" in text
        assert f"in at least {r['peak_share_min']:.0%} of the seeds at every N" in text
        assert f"C12-peak {r['verdict']}" in text


def test_fragility_and_holds_on_are_said(a, df):
    q = a.questions.copy()
    c2 = (q["claim"] == "C2") & (q["labels"] == "gauss")
    q.loc[c2, ["verdict", "reversed_by", "holds_on"]] = ["fragile", "training points", "1 of 2"]
    text = one(sentences(dataclasses.replace(a, questions=q), df), "C2", "Gaussian")
    assert ": fragile: " in text and "reversed by: training points." in text
    assert "Supported on 1 of 2 data sets." in text


def test_protocol_2_tables_leave_what_does_not_apply_empty(page, a):
    text = page.read_text(encoding="utf-8")
    head, body = dom_table(text, "questions")
    cells = [{h: c for h, (c, _) in zip(head, row, strict=True)} for row in body]
    assert [c["claim"] for c in cells] == a.questions["claim"].tolist()
    c1 = next(c for c in cells if c["claim"] == "C1")
    c3 = next(c for c in cells if c["claim"] == "C3")
    assert c1["c"] == "" and c1["peak p/N"] == "" and c1["p/N range"] != ""
    assert c3["labels"] == "" and c3["p/N range"] == "" and c3["c"] != ""
    assert "reversed by" not in head  # no row is fragile: the column is left out
    _, shape = dom_table(text, "depth-shape")
    assert len(shape) == (a.questions["shape"].fillna("") != "").sum()
    _, cross = dom_table(text, "crossovers")
    lecun = next(r for r in cross if r[1][0] == "lecun")
    assert lecun[2][0] == "no sign change in the swept range"
    head, factors = dom_table(text, "fragility")  # factor by factor
    assert len(factors) == len(a.variants) > 0 and "factor" in head
    assert {r[head.index("factor")][0] for r in factors} == set(a.variants["variant"])


def test_the_headline_figures_are_written(page, figs_dir):
    names = {p.name for p in figs_dir.iterdir()}
    for name in FINDING_FIGURES:
        for fmt in ("png", "pdf"):
            assert f"{name}.{fmt}" in names and (figs_dir / f"{name}.{fmt}").stat().st_size > 5000
        assert imread(figs_dir / f"{name}.png")[..., :3].std() > 0.05  # drawn, not blank
    text = page.read_text(encoding="utf-8")
    at = [text.index(f'id="fig-{n}"') for n in FINDING_FIGURES]
    assert at == sorted(at) and text.index('id="headline"') < at[0] < text.index('id="protocol-2"')


def test_the_peak_figure_marks_the_mean_peaks(a, df):
    fig = FINDING_FIGURES["p_at_each_n"](df, a)
    ax = fig.axes[0]
    stars = [ln for ln in ax.get_lines() if ln.get_marker() == "*"]
    p = a.peaks[(a.peaks["labels"] == "flip")].groupby("n_train")["peak_p_over_n"].mean()
    assert sorted(float(ln.get_xdata()[0]) for ln in stars) == pytest.approx(sorted(p))


@pytest.mark.parametrize("keep", ["width", "depth"])
def test_stores_with_one_kind_of_sweep_draw_what_they_can(keep, tmp_path):
    d = rows(width=keep == "width", depth=keep == "depth")
    a = assess(d)
    written = {p.stem for p in finding_figures(d, a, tmp_path, formats=("png",))}
    width = {"p_at_each_n", "loss_at_each_n", "peak_width_vs_n"}
    want = width if keep == "width" else {"depth_slope_vs_ratio"}
    assert written == want
    text = write_html(d, tmp_path / "r.html", assessment=a, claims=True).read_text("utf-8")
    assert text.index('id="findings"') < text.index('id="claims-section"')
    assert ("Crossover ratio r*" in text) == (keep == "depth")


def test_without_protocol_2_rows_the_report_is_as_before(df, a, tmp_path):
    plain_a = dataclasses.replace(a, questions=pd.DataFrame())
    assert findings(plain_a, df) == []
    assert finding_figures(df, plain_a, tmp_path / "none") == []
    text = write_html(df, tmp_path / "r.html", assessment=plain_a).read_text("utf-8")
    assert 'id="findings"' not in text and 'id="headline"' not in text
    sections = re.findall(r'<h2 id="([\w-]+)"', text)
    assert sections == ["claims-section", "results", "definitions", "configs", "runs", "versions"]
    assert '<h2 id="claims-section">Claims of Zhu et al. (NeurIPS 2022)</h2>' in text
    assert "Control" not in text


@needs_chromium
def test_report_with_findings_renders_in_headless_chromium(page, tmp_path):
    img = screenshot(page, tmp_path, 1200, 1000)
    assert img.shape[:2] == (1000, 1200)
    assert img.std() > 0.05 and (img < 0.9).any()  # not blank, not all white
    # the first screen shows the findings: their verdict chips (supported: #d4edda)
    green = np.all(np.abs(img - np.array([0xD4, 0xED, 0xDA]) / 255) < 0.02, axis=-1)
    assert green.sum() > 200
    text = dom(page, tmp_path)
    assert re.findall(r'<h2 id="([\w-]+)"', text)[0] == "findings"
    assert 'id="questions"' in text and 'id="crossovers"' in text
