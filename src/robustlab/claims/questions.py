"""Protocol 2 (``docs/claims.md``): the paper's questions as they are, judged on result rows.

Where Protocol 1 gives each claim one verdict at a matched level of fit, Protocol 2 asks:

- **C1 / C2** (width, below / above p = N): the slope of log P on log width over the widths
  with p/N <= 0.5 / >= 2, at each run's own end of training (the fit is shown, never
  matched), per data set and label model, pooled over N with a free intercept per (N, init).
- **C12-peak**: does P peak in the interior near p = N, and does the peak width grow in
  proportion to N? Per seed and N the peak of the mean log P over the inits
  (:func:`~.estimators.peak_location`), then the exponent of peak width against N
  (:func:`~.estimators.scaling_exponent`).
- **C3 / C4-he / C4-ntk** (depth, linearized runs) per label scale c, with the shape of
  log P in depth (:func:`depth_shape`: exponential or polynomial, first step and tail), and per
  initialization the ratio r* = ||y|| / ||f0(X)|| where d log P / d depth changes sign
  (:func:`~.estimators.crossover`), from the finite runs and from the exact lazy limit.

Verdicts: ``supported`` / ``contradicted here`` when the two-sided t test over seeds rejects
a zero slope after Holm's adjustment over the family of directional verdicts in the table
(:func:`~.estimators.holm`); ``flat`` when two one-sided tests put the effect across the
swept range within :data:`FLAT_MARGIN` (:func:`~.estimators.equivalence`); else
``inconclusive``. A supported or contradicted slope is ``fragile`` when a meaningful factor
reverses its sign (:func:`variants`: the training points, the swept range without its lowest
or highest value; and another data set): the column ``reversed_by`` names them. Leaving a
seed out is not a factor (it measures lost power). This module imports no torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .estimators import crossover, equivalence, holm, peak_location, scaling_exponent, t_pvalue
from .stats import seed_slopes, t_interval

__all__ = [
    "DEPTH_CLAIMS",
    "FLAT_MARGIN",
    "VARIANTS",
    "QuestionsProtocol",
    "crossovers",
    "depth_questions",
    "depth_shape",
    "label_model",
    "questions",
    "variants",
    "width_questions",
]

FLAT_MARGIN = math.log(1.05)  # flat: |effect across the swept range| < 5% (in log P)
# claim -> (init, expected sign of d log P / d depth) on linearized runs
DEPTH_CLAIMS = {"C3": ("lecun", -1), "C4-he": ("he", +1), "C4-ntk": ("ntk", +1)}


@dataclass(frozen=True)
class QuestionsProtocol:
    """Every choice of Protocol 2, in one place (``docs/claims.md``, "Protocol 2").

    Attributes:
        below, above: C1 uses the widths with p/N <= ``below``, C2 those with p/N >= ``above``.
        level: confidence level of the intervals and 1 - the Holm family-wise error.
        flat_margin: the equivalence margin on log P across the swept range.
        peak_share: the share of seeds that must show an interior peak at every N.
        exponent_margin: proportional growth means an exponent within 1 +- this margin.
        peak_level: the level of the exponent's interval for ``supported`` (two one-sided
            tests at (1 - peak_level) / 2 each).
    """

    below: float = 0.5
    above: float = 2.0
    level: float = 0.95
    flat_margin: float = FLAT_MARGIN
    peak_share: float = 0.8
    exponent_margin: float = 0.25
    peak_level: float = 0.90


def label_model(config_json: object) -> str:
    """``gauss`` (regression targets plus Gaussian noise), ``flip`` (+-1 labels with flips),
    ``clean`` or ``other``, read from a cell's config JSON (its ``data`` section)."""
    try:
        data = json.loads(str(config_json)).get("data", {})
    except (ValueError, AttributeError):
        return "other"
    options = data.get("options", data)
    noise = float(options.get("label_noise", 0.0) or 0.0)
    if options.get("task") == "regression":
        return "gauss" if noise > 0 else "clean"
    return "flip" if noise > 0 else "clean"


def _rows(df: pd.DataFrame, points: str = "test") -> pd.DataFrame:
    """ok rows of P at the final stage on test points, of the network itself, P > 0, with
    a ``labels`` column (:func:`label_model`); columns older rows lack get their defaults."""
    defaults = {"label_scale": 1.0, "y_f0_ratio": math.nan, "p_lazy_limit": math.nan,
                "points": "test", "config_json": None, "train_loss": math.nan}  # fmt: skip
    df = df.assign(**{k: v for k, v in defaults.items() if k not in df.columns})
    d = df[
        (df["status"] == "ok")
        & (df["stage"] == "final")
        & (df["points"].fillna("test") == points)
        & (df["method"] != "pgd")
    ]
    d = d[pd.to_numeric(d["p_value"], errors="coerce") > 0]
    if d.empty:
        return d.assign(labels=pd.Series(dtype=str))
    models = {c: label_model(c) for c in d["config_json"].dropna().unique()}
    return d.assign(labels=d["config_json"].map(models).fillna("other"))


def _verdict_row(slopes: np.ndarray, span: float, sign: int, protocol: QuestionsProtocol) -> dict:
    """Slope, interval, p-value and the flat test of per-seed slopes over a range ``span``."""
    mean, low, high = t_interval(slopes, protocol.level)
    flat, flat_p = (
        equivalence(slopes, protocol.flat_margin / span)
        if span > 0 and len(slopes) >= 2
        else (False, math.nan)
    )
    return {
        "expected_sign": "+" if sign > 0 else "-",
        "slope": mean,
        "ci_low": low,
        "ci_high": high,
        "p": t_pvalue(slopes),
        "flat": flat,
        "flat_p": flat_p,
        "effect": math.exp(mean * span) if math.isfinite(mean) else math.nan,
        "n_seeds": len(slopes),
    }


def width_questions(
    df: pd.DataFrame, protocol: QuestionsProtocol | None = None, variant: str | None = None
) -> pd.DataFrame:
    """C1, C2 and C12-peak per (dataset, label model): one row each (see module docstring).

    Rows used: standard two-layer runs at the final stage. Per seed, log P on log width with
    a free intercept per (N, init) (:func:`~.stats.seed_slopes`); the t test over seeds.
    ``variant`` (one of :data:`VARIANTS`) re-judges C1 and C2 on the training points or
    without the lowest / highest width of each claim's range at each N.
    """
    protocol = protocol or QuestionsProtocol()
    d = _rows(df, "train" if variant == "training points" else "test")
    d = d[(d["regime"] == "standard") & (d["depth"] == 2)]
    # width sweeps only: a sweep with fewer than three widths (e.g. the depth preset's
    # standard twins at depth 2) says nothing about the width curve
    widths = d.groupby("sweep")["width"].transform("nunique")
    d = d[widths >= 3]
    out = []
    for (dataset, labels), g in d.groupby(["dataset", "labels"], sort=True):
        ratio = g["n_params"].to_numpy(float) / g["n_train"].to_numpy(float)
        x = np.log(g["width"].to_numpy(float))
        y = np.log(g["p_value"].to_numpy(float))
        groups = (g["n_train"].astype(str) + "/" + g["init"].astype(str)).to_numpy()
        seeds = g["seed"].to_numpy()
        base = {"dataset": dataset, "labels": labels, "n_train": _ns(g)}
        for claim, mask, sign in (
            ("C1", ratio <= protocol.below, +1),
            ("C2", ratio >= protocol.above, -1),
        ):
            mask = _trimmed(g["width"], g["n_train"], mask, variant)
            _, slopes = seed_slopes(x[mask], y[mask], seeds[mask], groups[mask])
            span = _span(g[mask])
            out.append(
                {
                    "claim": claim,
                    **base,
                    **_verdict_row(slopes, span, sign, protocol),
                    "p_over_n": _range(ratio[mask]),
                    "train_loss_max": float(g.loc[mask, "train_loss"].max()),
                }
            )
        if variant is None:
            out.append({"claim": "C12-peak", **base, **_peak(g, protocol)})
    return pd.DataFrame(out)


def _trimmed(x: pd.Series, by: pd.Series, mask: np.ndarray, variant: str | None) -> np.ndarray:
    """``mask`` less the rows at the lowest (or highest) value of ``x`` among the masked rows
    of each value of ``by``, for the variants that trim the swept range."""
    if variant not in ("without the lowest value", "without the highest value"):
        return mask
    inside = x.where(mask)
    edge = inside.groupby(by).transform("min" if "lowest" in variant else "max")
    return mask & (x != edge).to_numpy()


def _ns(g: pd.DataFrame) -> str:
    return ",".join(str(int(n)) for n in sorted(g["n_train"].unique()))


def _span(g: pd.DataFrame) -> float:
    """The mean (over N) span of log width of the rows: the range the effect is given for."""
    if g.empty:
        return math.nan
    spans = g.groupby("n_train")["width"].agg(lambda w: math.log(w.max() / w.min()))
    return float(spans.mean())


def _range(values: np.ndarray) -> str:
    return f"{values.min():.2g}-{values.max():.2g}" if values.size else ""


def _peak(g: pd.DataFrame, protocol: QuestionsProtocol) -> dict:
    """Per (N, seed) the peak of mean log P over the inits; the share of interior peaks per
    N, the mean peak p/N per N, and the exponent of peak width against N."""
    logs = g.assign(log_p=np.log(g["p_value"].to_numpy(float)))
    curves = logs.groupby(["n_train", "seed", "width"])["log_p"].mean().reset_index()
    per_param = float(np.median(g["n_params"].to_numpy(float) / g["width"].to_numpy(float)))
    peaks = []
    for (n, seed), c in curves.groupby(["n_train", "seed"]):
        c = c.sort_values("width")
        x = np.log(c["width"].to_numpy(float))
        at = peak_location(x, c["log_p"].to_numpy()) if len(c) >= 3 else math.nan
        peaks.append({"n_train": n, "seed": seed, "log_peak": at})
    p = pd.DataFrame(peaks)
    if p.empty:
        return {"verdict_basis": "no runs"}
    share = p.groupby("n_train")["log_peak"].apply(lambda v: float(np.isfinite(v).mean()))
    where = p.groupby("n_train")["log_peak"].apply(
        lambda v: (
            float(np.exp(v[np.isfinite(v)]).mean() * per_param)
            if np.isfinite(v).any()
            else math.nan
        )
    )
    pn = {int(n): where[n] / n for n in where.index}
    k, k_lo, k_hi = scaling_exponent(
        np.log(p["n_train"].to_numpy(float)), p["log_peak"].to_numpy(), p["seed"].to_numpy(),
        protocol.level,
    )  # fmt: skip
    _, k90_lo, k90_hi = scaling_exponent(
        np.log(p["n_train"].to_numpy(float)), p["log_peak"].to_numpy(), p["seed"].to_numpy(),
        protocol.peak_level,
    )  # fmt: skip
    lo, hi = 1 - protocol.exponent_margin, 1 + protocol.exponent_margin
    interior = bool((share >= protocol.peak_share).all()) and len(share) >= 3
    if interior and lo < k90_lo and k90_hi < hi:
        verdict = "supported"
    elif (share < 0.5).any() or (math.isfinite(k_lo) and (k_hi < lo or k_lo > hi)):
        verdict = "contradicted here"
    else:
        verdict = "inconclusive"
    return {
        "verdict": verdict,
        "peak_share_min": float(share.min()),
        "peak_p_over_n": ", ".join(f"N={n}: {v:.2f}" for n, v in pn.items()),
        "exponent": k,
        "exponent_low": k_lo,
        "exponent_high": k_hi,
        "n_seeds": int(p["seed"].nunique()),
    }


def depth_questions(
    df: pd.DataFrame, protocol: QuestionsProtocol | None = None, variant: str | None = None
) -> pd.DataFrame:
    """C3, C4-he, C4-ntk per (dataset, label scale) on the linearized runs: one row each;
    ``variant`` as in :func:`width_questions` (the range trimmed in depth)."""
    protocol = protocol or QuestionsProtocol()
    d = _rows(df, "train" if variant == "training points" else "test")
    d = d[d["regime"] == "linearized"]
    if len(d):
        keep = _trimmed(d["depth"], d["label_scale"], np.ones(len(d), bool), variant)
        d = d[keep]
    out = []
    for claim, (init, sign) in DEPTH_CLAIMS.items():
        for (dataset, c), g in d[d["init"] == init].groupby(["dataset", "label_scale"]):
            x = g["depth"].to_numpy(float)
            _, slopes = seed_slopes(x, np.log(g["p_value"].to_numpy(float)), g["seed"].to_numpy())
            out.append(
                {
                    "claim": claim,
                    "dataset": dataset,
                    "label_scale": float(c),
                    "y_f0_ratio": float(g["y_f0_ratio"].median()),
                    **_verdict_row(slopes, float(x.max() - x.min()), sign, protocol),
                    **(depth_shape(g, protocol) if variant is None else {}),
                    "train_loss_max": float(g["train_loss"].max()),
                }
            )
    return pd.DataFrame(out)


def depth_shape(g: pd.DataFrame, protocol: QuestionsProtocol | None = None) -> dict:
    """How log P depends on depth L, per seed (the paper's abstract contrasts exponential and
    polynomial growth in depth):

    - ``shape``: the better of log P = a + b L (``exponential``) and log P = a + b log L
      (``polynomial``) by the pooled residual sum of squares over seeds (each seed its own
      intercept and slope); ``shape_seeds``: in how many seeds that fit is the better one.
    - ``step_first``: the mean over seeds of log P(L_min + 1) - log P(L_min) (the first
      step, 2 -> 3 in the presets) with its t interval; ``tail_slope``: the mean over
      seeds of the slope of log P on L over L >= L_min + 1, per layer.
    """
    protocol = protocol or QuestionsProtocol()
    rss = {"exponential": [], "polynomial": []}
    steps, tails = [], []
    for _, h in g.groupby("seed"):
        by_depth = np.log(h["p_value"].to_numpy(float))
        depth = h["depth"].to_numpy(float)
        mean = pd.Series(by_depth).groupby(depth).mean()
        if len(mean) < 3:
            continue
        L, y = mean.index.to_numpy(float), mean.to_numpy()
        for name, x in (("exponential", L), ("polynomial", np.log(L))):
            fit = np.polyval(np.polyfit(x, y, 1), x)
            rss[name].append(float(np.sum((y - fit) ** 2)))
        steps.append(float(y[1] - y[0]))
        tails.append(float(np.polyfit(L[1:], y[1:], 1)[0]) if len(L) >= 3 else math.nan)
    if not steps:
        return {"shape": "", "shape_seeds": ""}
    e, q = np.asarray(rss["exponential"]), np.asarray(rss["polynomial"])
    shape = "exponential" if e.sum() <= q.sum() else "polynomial"
    better = int(np.sum(e <= q)) if shape == "exponential" else int(np.sum(q < e))
    step, step_lo, step_hi = t_interval(steps, protocol.level)
    tail, tail_lo, tail_hi = t_interval(tails, protocol.level)
    return {
        "shape": shape,
        "shape_seeds": f"{better} of {len(steps)}",
        "step_first": step,
        "step_first_low": step_lo,
        "step_first_high": step_hi,
        "tail_slope": tail,
        "tail_low": tail_lo,
        "tail_high": tail_hi,
    }


def crossovers(df: pd.DataFrame, protocol: QuestionsProtocol | None = None) -> pd.DataFrame:
    """Per (dataset, init): r* where d log P / d depth changes sign against
    u = log(y_f0_ratio), from the finite linearized runs and from the lazy limit."""
    protocol = protocol or QuestionsProtocol()
    d = _rows(df)
    d = d[d["regime"] == "linearized"]
    out = []
    for (dataset, init), g in d.groupby(["dataset", "init"]):
        row = {"dataset": dataset, "init": init}
        for source, column in (("finite", "p_value"), ("limit", "p_lazy_limit")):
            per = []
            for (seed, _), h in g.groupby(["seed", "label_scale"]):
                v = pd.to_numeric(h[column], errors="coerce").to_numpy(float)
                ok = np.isfinite(v) & (v > 0)
                if ok.sum() < 2:
                    continue
                slope = np.polyfit(h["depth"].to_numpy(float)[ok], np.log(v[ok]), 1)[0]
                u = math.log(float(h["y_f0_ratio"].median()))
                per.append((seed, u, slope))
            if per:
                seeds, u, s = map(np.asarray, zip(*per, strict=True))
                r, lo, hi, n = crossover(u, s, seeds, protocol.level)
            else:
                r = lo = hi = math.nan
                n = 0
            row |= {f"{source}_r": r, f"{source}_low": lo, f"{source}_high": hi,
                    f"{source}_seeds": n}  # fmt: skip
        out.append(row)
    return pd.DataFrame(out)


# the meaningful factors a verdict must survive (Protocol 2, "fragile"); the data set is a
# fourth, read across the table's rows. A second level of fit is not yet one: the step at
# which a run reached its checkpoint level is not stored.
VARIANTS = ("training points", "without the lowest value", "without the highest value")
_ROW_KEYS = ["claim", "dataset", "labels", "label_scale"]


def variants(df: pd.DataFrame, protocol: QuestionsProtocol | None = None) -> pd.DataFrame:
    """Every directional claim re-judged under each of :data:`VARIANTS`: one row per
    (claim, dataset, label model or scale, variant) with its slope and interval."""
    protocol = protocol or QuestionsProtocol()
    out = []
    for variant in VARIANTS:
        t = pd.concat(
            [width_questions(df, protocol, variant), depth_questions(df, protocol, variant)],
            ignore_index=True,
        )
        if len(t):
            out.append(t.assign(variant=variant))
    if not out:
        return pd.DataFrame(columns=[*_ROW_KEYS, "variant", "slope", "ci_low", "ci_high"])
    v = pd.concat(out, ignore_index=True)
    for key in _ROW_KEYS:
        if key not in v:
            v[key] = np.nan
    return v[[*_ROW_KEYS, "variant", "slope", "ci_low", "ci_high", "n_seeds"]]


def _reversed_by(table: pd.DataFrame, var: pd.DataFrame) -> list[str]:
    """Per row of ``table``, the factors whose slope has the other sign than a significant
    main slope ("; "-joined; "" where none or the slope is not significant)."""
    out = []
    for _, row in table.iterrows():
        if row.get("verdict") not in ("supported", "contradicted here"):
            out.append("")
            continue
        same = np.ones(len(var), bool)
        for key in _ROW_KEYS:
            a = var[key].to_numpy(object)
            b = row.get(key)
            same &= np.array([x == b or (pd.isna(x) and pd.isna(b)) for x in a])
        rows = var[same]
        signs = np.sign(rows["slope"].to_numpy(float))
        factors = [
            f for f, s in zip(rows["variant"], signs, strict=True) if s == -np.sign(row["slope"])
        ]
        others = table[
            (table["claim"] == row["claim"])
            & (table["dataset"] != row["dataset"])
            & table["verdict"].isin(["supported", "contradicted here"])
            & (np.sign(table["slope"]) == -np.sign(row["slope"]))
        ]
        if "label_scale" in table and pd.notna(row.get("label_scale")):
            others = others[others["label_scale"] == row["label_scale"]]
        if len(others):
            factors.append("data set")
        out.append("; ".join(factors))
    return out


def questions(
    df: pd.DataFrame, protocol: QuestionsProtocol | None = None, *, fragility: bool = True
) -> pd.DataFrame:
    """The Protocol 2 table: width and depth rows, with Holm's adjustment over the
    directional rows (C1, C2, C3, C4-*) and the verdict of each row; ``fragility=False``
    skips the variants (no ``fragile`` verdict: a faster upper bound on the directional
    verdicts, for simulations)."""
    protocol = protocol or QuestionsProtocol()
    table = pd.concat(
        [width_questions(df, protocol), depth_questions(df, protocol)], ignore_index=True
    )
    if table.empty:
        return table
    directional = table["claim"] != "C12-peak"
    p = table["p"].where(directional) if "p" in table else pd.Series(np.nan, table.index)
    table["p_holm"] = holm(p.to_numpy(float))
    alpha = 1 - protocol.level
    for i in np.flatnonzero(directional.to_numpy()):
        row = table.iloc[i]
        significant = row["p_holm"] < alpha
        sign = 1 if row["expected_sign"] == "+" else -1
        if significant and np.sign(row["slope"]) == sign:
            verdict = "supported"
        elif significant:
            verdict = "contradicted here"
        elif row["flat"]:
            verdict = "flat"
        else:
            verdict = "inconclusive"
        table.loc[table.index[i], "verdict"] = verdict
    for key in _ROW_KEYS:
        if key not in table:
            table[key] = np.nan
    table["reversed_by"] = _reversed_by(table, variants(df, protocol)) if fragility else ""
    fragile = table["reversed_by"] != ""
    table.loc[fragile, "verdict"] = "fragile"
    table.attrs["family"] = int(np.isfinite(p.to_numpy(float)).sum())
    return table
