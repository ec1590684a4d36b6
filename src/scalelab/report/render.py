"""Render a run's summary as Markdown and HTML, next to `summary.json`.

The report is a list of sections, each a function from the summary to Markdown (every stage brings its own,
`stage.Stage.report`; `pipeline.STAGES` orders them), and this module is the shared part: `table` and `fmt`
for the sections, and `write_report`, which writes summary.json, report.md and report.html. HTML is rendered
from the same Markdown by a small converter for the subset the sections use (headings, paragraphs, pipe
tables, images, lists), so the two files never disagree.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scalelab.artifacts import atomic_write_json, atomic_write_text

Section = Callable[[dict[str, Any], Path], str]


def fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    if isinstance(x, int) and abs(x) >= 10_000:
        return f"{x:.3g}" if abs(x) >= 1e9 else f"{x:,}"
    return str(x)


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def markdown_to_html(md: str, title: str) -> str:
    """HTML for the Markdown subset the sections emit."""
    body: list[str] = []
    lines = md.splitlines()
    i = 0

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
        s = re.sub(r"`(.+?)`", r"<code>\1</code>", s)
        return s

    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                if not re.fullmatch(r"\|(-+\|)+", lines[i].strip()):
                    rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            head, *rest = rows
            body.append("<table><thead><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr></thead><tbody>"
                        + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in rest)
                        + "</tbody></table>")
            continue
        elif m := re.fullmatch(r"!\[(.*?)\]\((.+?)\)", line.strip()):
            body.append(f'<p><img src="{html.escape(m.group(2))}" alt="{html.escape(m.group(1))}"></p>')
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{inline(lines[i][2:])}</li>")
                i += 1
            body.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif line.strip():
            body.append(f"<p>{inline(line)}</p>")
        i += 1
    style = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
             "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;"
             "text-align:right}th{background:#f4f4f4}td:first-child{text-align:left}img{max-width:100%}"
             "code{background:#f4f4f4;padding:0 .2rem}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(summary: dict[str, Any], out: Path, sections: Sequence[Section]) -> dict[str, Path]:
    """Write summary.json, report.md (the sections in order, with their plots) and report.html into `out`."""
    out = Path(out)
    parts = [section(summary, out) for section in sections]
    md = "\n\n".join(p for p in parts if p) + "\n"
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "report.md", md)
    atomic_write_text(out / "report.html", markdown_to_html(md, f"scalelab report ({summary['preset']})"))
    return {"summary": out / "summary.json", "markdown": out / "report.md", "html": out / "report.html"}
