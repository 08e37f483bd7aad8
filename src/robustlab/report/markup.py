"""HTML building blocks of the report: escaping, numbers, tables, verdict cells, style.

Every string that comes from data or configs goes through :func:`e` (:func:`html.escape`);
the helpers here return HTML, the callers never concatenate raw data.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable

import pandas as pd

__all__ = ["CSS", "DASH", "e", "figure", "interval", "missing", "num", "table", "td",
           "verdict_cell"]  # fmt: skip

CSS = """
body{font-family:system-ui,sans-serif;max-width:1250px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .45em;text-align:left;vertical-align:top}
th{background:#f2f2f2} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.verdict{font-weight:600;white-space:nowrap}
.v-supported{background:#d4edda;color:#155724} .v-contradicted{background:#f8d7da;color:#721c24}
.v-inconclusive{background:#fff3cd;color:#856404} .v-fragile{background:#ffe0c2;color:#7a3e00}
.v-contradicted-here{background:#f8d7da;color:#721c24} .v-flat{background:#dde8f3;color:#1f3d5c}
ul.findings li{margin:.35em 0;max-width:75em} ul.findings .verdict{padding:0 .3em}
h3.fgroup{font-size:1em;margin:1em 0 .2em}
.v-not-converged{background:#e8d9f2;color:#4b2a63}
.v-regime-not-reached{background:#e2e3f3;color:#383d71} .v-no-data{background:#eee;color:#555}
.warn{color:#a4000f;font-weight:600} .low{background:#fde2e2} .changed{outline:2px solid #a4000f}
pre{background:#f7f7f7;border:1px solid #ddd;padding:.6em;overflow-x:auto;font-size:.85em}
figure{margin:1.2em 0} figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9em;color:#444;max-width:70em}
p.note{font-size:.92em;color:#333;max-width:60em}
.tw{max-width:100%;overflow-x:auto;margin:.6em 0} .tw table{margin:0}
th{vertical-align:bottom} td.iv{white-space:normal;min-width:7em} td.text{min-width:12em}
p.fixed{font-size:.9em;color:#333;margin:.2em 0}
nav{font-size:.92em} nav a{margin-right:1em} p.lead{max-width:70em}
"""


def e(v) -> str:
    """``v`` as escaped HTML text."""
    return html.escape(str(v), quote=True)


def missing(v) -> bool:
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


DASH = "\u2014"  # shown for a missing value


def num(v, spec: str = ".3g") -> str:
    """A number as plain text (an em dash when missing)."""
    return DASH if missing(v) else format(float(v), spec)


def interval(lo, hi, spec: str = ".3g") -> str:
    """``[lo, hi]`` as plain text; empty when either end is missing."""
    return "" if missing(lo) or missing(hi) else f"[{num(lo, spec)}, {num(hi, spec)}]"


def td(v, cls: str = "", *, raw: bool = False) -> str:
    """A cell: ``v`` escaped (``raw``: ``v`` is HTML already); empty when missing."""
    text = v if raw else ("" if missing(v) else e(v))
    return f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>"


def verdict_cell(v, extra_cls: str = "") -> str:
    """A colored verdict cell (class ``v-<verdict with dashes>``)."""
    if missing(v):
        return "<td></td>"
    cls = f"verdict v-{e(str(v).replace(' ', '-'))}" + (f" {extra_cls}" if extra_cls else "")
    return f'<td class="{cls}">{e(v)}</td>'


def figure(name: str, png: bytes, caption: str) -> str:
    """A ``<figure>``: the PNG embedded as base64 (the page has no external resources),
    ``name`` in bold before its ``caption``; both escaped."""
    b64 = base64.b64encode(png).decode("ascii")
    return (
        f'<figure id="fig-{e(name)}"><img alt="{e(name)}" src="data:image/png;base64,{b64}">'
        f"<figcaption><b>{e(name)}</b>: {e(caption)}</figcaption></figure>"
    )


def table(head: Iterable[str], rows: Iterable[Iterable[str]], attrs: str = "") -> str:
    """Rows of cell HTML (``<td>`` included) -> ``<table>``; ``head`` is escaped. The table
    sits in a ``div.tw`` that scrolls sideways when the table is wider than the page (the
    page itself never does)."""
    th = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    return (
        f'<div class="tw"><table{attrs}><thead><tr>{th}</tr></thead><tbody>{body}</tbody>'
        "</table></div>"
    )
