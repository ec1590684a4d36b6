"""Render a run's summary as Markdown and HTML, next to `summary.json`.

The report is a list of sections, each a function from the summary to Markdown; a later stage adds a
section by appending to `SECTIONS`. HTML is rendered from the same Markdown by a small converter for
the subset the sections use (headings, paragraphs, pipe tables, images, lists), so the two files never
disagree.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scalelab.artifacts import atomic_write_json, atomic_write_text
from scalelab.report.plots import plot_training_curves

Section = Callable[[dict[str, Any], Path], str]


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    if isinstance(x, int) and abs(x) >= 10_000:
        return f"{x:.3g}" if abs(x) >= 1e9 else f"{x:,}"
    return str(x)


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def section_overview(summary: dict[str, Any], out: Path) -> str:
    lines = [f"# scalelab run — preset `{summary['preset']}`", ""]
    world = summary.get("world")
    if world:
        lines += [
            f"Corpus: the synthetic world ({_fmt((world.get('n_docs') or {}).get('train'))} training documents, "
            f"{_fmt(world.get('fact_bits'), 0)} bits of facts). "
            f"Its exact entropy floor is **{_fmt(world.get('entropy_floor_nats_per_token'), 4)} nats/token** "
            "on the validation split under the trained tokenizer: the Bayes-optimal loss, which no model "
            "reading it can beat.",
        ]
    else:
        lines.append(f"Corpus: `{summary.get('corpus')}` (real text; no known entropy floor).")
    shards = summary.get("shards", {})
    lines += ["", f"Tokenizer: byte-level BPE, {summary.get('tokenizer', {}).get('vocab_size')} tokens. "
              f"Shards: {_fmt(shards.get('train_tokens'))} train / {_fmt(shards.get('val_tokens'))} val tokens.",
              "", f"Wall clock: {summary.get('wall_seconds')} s."]
    return "\n".join(lines)


def section_ladder(summary: dict[str, Any], out: Path) -> str:
    models = summary.get("models", [])
    if not models:
        return ""
    rows = []
    for m in models:
        ev = m.get("evals") or {}
        rows.append([m["name"], m["params"], m["non_embedding_params"], m["tokens"], m["train_flops"],
                     m["final_val_loss"], round(m["tokens_per_second"]), ev.get("fact_recall"),
                     ev.get("arithmetic"), ev.get("hazard_knowledge")])
    text = ["## The ladder", "",
            "Parameters N count every weight; non-embedding N excludes the token embedding and the (untied) "
            "unembedding. Train FLOPs follow `scalelab.model.flops.train_flops`. Eval columns are accuracies "
            "on the world's held-out sets (fact recall and hazard knowledge: multiple choice among 4, chance "
            "0.25; arithmetic: exact match, chance ≈ 0).", "",
            table(["model", "params", "non-emb params", "tokens", "train FLOPs", "val loss", "tok/s",
                   "fact recall", "arithmetic", "hazard"], rows)]
    floor = (summary.get("world") or {}).get("entropy_floor_nats_per_token")
    png = plot_training_curves(models, out, out / "training_curves.png", floor)
    if png is not None:
        text += ["", f"![training curves]({png.name})"]
    return "\n".join(text)


def section_arithmetic(summary: dict[str, Any], out: Path) -> str:
    models = [m for m in summary.get("models", []) if m.get("evals")]
    if not models:
        return ""
    digits = sorted({d for m in models for d in m["evals"]["details"]["arithmetic"]["by_digits"]}, key=int)
    rows = []
    for m in models:
        by = m["evals"]["details"]["arithmetic"]["by_digits"]
        rows.append([m["name"]] + [f"{by[d]['exact_match']:.2f} / {by[d]['per_digit']:.2f}" if d in by else "–"
                                   for d in digits])
    return "\n".join([
        "## Arithmetic by digit count", "",
        "Exact match / per-digit accuracy. Exact match on long sums can look like a sudden 'emergent' jump "
        "while per-digit accuracy improves smoothly (Schaeffer et al., 2023).", "",
        table(["model", *[f"{d} digits" for d in digits]], rows),
    ])


# In order. Later stages add theirs as "module:function" strings (imported only when a report is written),
# each a function (summary, out_dir) -> Markdown that returns "" when its key is absent from the summary.
SECTIONS: list[Section | str] = [section_overview, section_ladder, section_arithmetic,
                                 "scalelab.scaling.report:section_scaling",
                                 "scalelab.interp.stage:section_interp",
                                 "scalelab.posttrain.report:section_posttrain",
                                 "scalelab.rsp.report:section_rsp"]


def _section(entry: Section | str) -> Section:
    if callable(entry):
        return entry
    import importlib

    module, _, name = entry.partition(":")
    return getattr(importlib.import_module(module), name)


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


def write_report(summary: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write summary.json, report.md (with plots) and report.html into `out`."""
    out = Path(out)
    parts = [_section(s)(summary, out) for s in SECTIONS]
    md = "\n\n".join(p for p in parts if p) + "\n"
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "report.md", md)
    atomic_write_text(out / "report.html", markdown_to_html(md, f"scalelab report ({summary['preset']})"))
    return {"summary": out / "summary.json", "markdown": out / "report.md", "html": out / "report.html"}
