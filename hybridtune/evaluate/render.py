"""The report's building blocks, each a (markdown, html) pair: paragraphs, tables, figures,
collapsed blocks, and notes said once under a table instead of on every row.

Used by evaluate/report.py and the sections other modules add to the report (evaluate/dose.py).

    join(para("Text."), table(["a", "b"], [[1, 2.0]]), figures({"box": path}, ["empathy"]))
    details("Resolved config", pre(text))
    rows, legend = notes_once(rows, col=-1)   # a note repeated on many rows becomes [1] + one line below
"""
from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..tables import html_table, md_table
from . import plots


def section(title: str, markdown: str, html_: str) -> dict:
    return {"title": title, "markdown": markdown, "html": html_}


def fmt(x: Any, nd: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{nd}f}" if abs(x) >= 10 ** -nd or x == 0 else f"{x:.1e}"
    return str(x)


def table(headers: list[str], rows: list[list[Any]]) -> tuple[str, str]:
    """The same table as markdown and as (escaped) HTML."""
    cells = [[fmt(c) for c in r] for r in rows]
    return md_table(headers, cells) + "\n", html_table(headers, cells)


def para(text: str) -> tuple[str, str]:
    return text + "\n", f"<p>{html.escape(text)}</p>"


def join(*parts: tuple[str, str]) -> tuple[str, str]:
    return "\n".join(p[0] for p in parts), "\n".join(p[1] for p in parts)


def pre(text: str, lang: str = "") -> tuple[str, str]:
    """Preformatted text (wrapped on the page, so no line runs off its right edge)."""
    return f"```{lang}\n{text.rstrip()}\n```\n", f"<pre>{html.escape(text)}</pre>"


def details(summary: str, *parts: tuple[str, str]) -> tuple[str, str]:
    """A block shown collapsed under a one-line summary (HTML <details>, which Markdown viewers render too)."""
    md, h = join(*parts)
    return (f"<details><summary>{html.escape(summary)}</summary>\n\n{md}\n</details>\n",
            f"<details><summary>{html.escape(summary)}</summary>{h}</details>")


def notes_once(rows: list[list[Any]], col: int = -1) -> tuple[list[list[Any]], tuple[str, str]]:
    """Rows whose note column (`col`) shows a marker [k] for each distinct note, and the notes
    said once below the table (an empty pair when no row has a note)."""
    notes: dict[str, int] = {}
    out = []
    for r in rows:
        r = list(r)
        text = r[col]
        if text:
            r[col] = f"[{notes.setdefault(text, len(notes) + 1)}]"
        out.append(r)
    if not notes:
        return out, ("", "")
    items = [f"[{k}] {t}" for t, k in notes.items()]
    return out, ("\n".join(f"- {x}" for x in items) + "\n",
                 '<ul class="notes">' + "".join(f"<li>{html.escape(x)}</li>" for x in items) + "</ul>")


def figures(paths: dict[str, Path], metrics: Sequence[str] = ()) -> tuple[str, str]:
    """Figures inlined as base64 (html) and linked by file name (markdown), with their captions."""
    captions = {**plots.captions(list(metrics)),
                "dose_response": "Each metric (95% CI) against the real share of the training set"}
    md, h = [], []
    for name, p in paths.items():
        b64 = base64.b64encode(p.read_bytes()).decode("ascii")
        md.append(f"![{captions[name]}]({p.name})\n")
        h.append(f'<figure><img alt="{html.escape(captions[name])}" src="data:image/png;base64,{b64}">'
                 f"<figcaption>{html.escape(captions[name])}</figcaption></figure>")
    return "\n".join(md), '<div class="figs">' + "".join(h) + "</div>"
