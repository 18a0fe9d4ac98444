"""One way to write a table: Markdown (reports, cards, docs) and escaped HTML (report.html).

    md_table(["stage", "seconds"], [["mix", 1.2]])      # "| stage | seconds |\n|---|---|\n| mix | 1.2 |"
    html_table(head, rows, css="trust")
"""
from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any


def _cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def md_table(head: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table (no trailing newline); `|` in cells is escaped, newlines become spaces."""
    lines = ["| " + " | ".join(_cell(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def html_table(head: Sequence[Any], rows: Iterable[Sequence[Any]], css: str | None = None) -> str:
    e = html.escape
    th = "".join(f"<th>{e(str(h))}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    cls = f' class="{css}"' if css else ""
    return f"<table{cls}><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"
