"""The report's synthetic-data table: each arm's loss and what the world's checker found in its written text.

`gap closed` is a share of the repeat → fresh loss gap, so it is shown only when that gap is real; when fresh data
did not beat repetition, the section says so instead of printing a ratio over noise. Summaries written before the
gap was recorded (no `gap` key) are re-read from their arms' losses with the same rule.
"""

from __future__ import annotations

import copy
from typing import Any

from scalelab.report.render import fmt, table
from scalelab.scaling.synthetic import gaps_closed


def _gap(syn: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    if syn.get("gap") is not None:
        return syn["arms"], syn["gap"]
    arms = copy.deepcopy(syn["arms"])
    return arms, gaps_closed(arms)


def synthetic_section(syn: dict[str, Any]) -> list[str]:
    """Markdown lines for `summary["reasoning"]["synthetic"]`."""
    arms, gap = _gap(syn)
    lines = ["", "### Synthetic data, verified and not", "",
             f"d{syn['depth']} trained {syn['steps']} steps on U = {fmt(syn['unique_tokens'])} real tokens plus "
             f"{fmt(syn['synthetic_tokens'])} more per arm, written by `{syn['writer']}`. Gap closed = share of the "
             "repeat → fresh loss gap an arm closes.", ""]
    if not gap["closable"]:
        lines += ["Fresh data did not beat repetition here, so there is no gap to close (repeat − fresh loss "
                  f"{gap['repeat_minus_fresh']:+.3f}; a gap must exceed {gap['noise']:.3f}, the noise between "
                  "single-seed runs): gap closed is not given.", ""]
    lines.append(table(["arm", "loss", "knowledge gap", "distinct n-grams added", "gap closed",
                        "documents passing the checker", "false claims (sampled)", "false claims (kept)",
                        "kept with no checkable claim"],
                       [[name, a["loss"], a["knowledge_gap"], a.get("distinct_ngrams"), a.get("gap_closed"),
                         a.get("pass_rate"), a.get("sampled_false_claim_rate"), a.get("kept_false_claim_rate"),
                         a.get("kept_no_claim_fraction")] for name, a in arms.items()]))
    lines += ["", "False claims: false / checked claims in every sampled document and in the kept ones; a document "
              "with no checkable claim passes the checker trivially, and the last column is their share of what "
              "was kept."]
    real = syn.get("real_text") or {}
    lines += ["", f"Recursion (real text: distinct n-grams {fmt(real.get('distinct_ngrams'))}, tail entities named "
              f"{fmt(real.get('tail_coverage'))}):", ""]
    rows = [[mode, g["generation"], g["loss"], g["knowledge_gap"], g["distinct_ngrams"], g["tail_coverage"],
             g.get("pass_rate")] for mode, gens in syn["recursion"].items() for g in gens]
    lines.append(table(["mode", "generation", "loss", "knowledge gap", "distinct n-grams written",
                        "tail entities named", "passing the checker"], rows))
    return lines
