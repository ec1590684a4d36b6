"""One Markdown table across feedback models: every eval after every step, with and without a system prompt.

Each `scalelab posttrain` run writes OUT/posttrain.json for one feedback model. This module reads several
and lays them side by side, with each feedback model's agreement with the oracle (RL-CAI label accuracy,
the oracle quality of its SL-CAI revisions and of its character-teacher replies), so the effect of the
feedback model's quality on the aligned lm can be read off one table:

    python -m scalelab.posttrain.compare RUN_ORACLE/posttrain.json RUN_POLICY/posttrain.json ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from scalelab.posttrain.report import CAPABILITY_COLUMNS, CHAT_COLUMNS, accuracy_n
from scalelab.posttrain.steps import STEPS

STEP_ROWS = ("base", *STEPS)
SHORT = {"harmful_compliance": "harm", "over_refusal": "over-ref", "helpfulness": "help", "sycophancy": "syc",
         "correction": "corr", "idk_rate": "idk", "hallucination": "halluc", "fact_recall": "facts",
         "arithmetic": "arith"}


def _cell(x: Any) -> str:
    return "–" if x is None else f"{x:.2f}"


def feedback_agreement(summary: dict[str, Any]) -> dict[str, Any]:
    """How the run's feedback model compares with the oracle, from its per-step details."""
    det = summary.get("details", {})
    sl, rl, ch = det.get("sl_cai", {}), det.get("rl_cai", {}), det.get("character", {})
    return {"rl_label_accuracy": accuracy_n(rl, "label_accuracy_vs_oracle", 2),
            "rl_label_strength": rl.get("label_strength"),
            "rm_accuracy_vs_oracle": accuracy_n(rl.get("reward_model") or {}, "heldout_accuracy_vs_oracle", 2),
            "sl_quality_initial": sl.get("oracle_quality_initial"),
            "sl_quality_revised": sl.get("oracle_quality_revised"),
            "teacher_quality": ch.get("teacher_oracle_quality")}


def compare_table(summaries: list[dict[str, Any]]) -> str:
    """Markdown: one block of rows per feedback model, one row per step, each metric as "no system / system"."""
    cols = (*CHAT_COLUMNS, *CAPABILITY_COLUMNS)
    lines = ["| feedback | step | " + " | ".join(SHORT[c] for c in cols) + " |", "|" + "---|" * (len(cols) + 2)]
    for s in summaries:
        for step in (k for k in STEP_ROWS if k in s["steps"]):
            row = s["steps"][step]
            sysrow = row.get("system", {})
            cells = [_cell(row.get(c)) + (f" / {_cell(sysrow[c])}" if c in sysrow else "") for c in cols]
            label = "start" if step == "base" and "sft" not in s["steps"] else step
            lines.append(f"| {s['feedback']} | {label} | " + " | ".join(cells) + " |")
    lines += ["", "| feedback | RL-CAI label accuracy vs oracle (n decided pairs) | label strength | "
              "RM held-out accuracy vs oracle (n) | SL-CAI reply quality before → after revision | "
              "character teacher quality |", "|---|---|---|---|---|---|"]
    for s in summaries:
        a = feedback_agreement(s)
        lines.append(f"| {s['feedback']} | {a['rl_label_accuracy']} | "
                     f"{_cell(a['rl_label_strength'])} | {a['rm_accuracy_vs_oracle']} | "
                     f"{_cell(a['sl_quality_initial'])} → {_cell(a['sl_quality_revised'])} | "
                     f"{_cell(a['teacher_quality'])} |")
    return "\n".join(lines)


def main(paths: list[str]) -> None:
    if not paths:
        raise SystemExit("usage: python -m scalelab.posttrain.compare OUT/posttrain.json [OUT2/posttrain.json ...]")
    print(compare_table([json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]))


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
