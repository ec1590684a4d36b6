"""The cross-feedback-model table (`python -m scalelab.posttrain.compare`) and the report's RL-CAI accuracies."""

from __future__ import annotations

from pathlib import Path

from scalelab.posttrain.compare import compare_table
from scalelab.posttrain.report import section_posttrain

RL_CAI = {"feedback": "self", "pairs": 24, "label_accuracy_vs_oracle": 0.65, "label_accuracy_vs_oracle_n": 20,
          "reward_model": {"heldout_pairs": 6, "heldout_accuracy": 0.75, "heldout_accuracy_n": 4,
                           "heldout_accuracy_vs_oracle": 0.5, "heldout_accuracy_vs_oracle_n": 5}}


def test_compare_table_lays_feedback_models_side_by_side():
    def run(feedback: str, halluc: float, acc: float | None) -> dict:
        row = {"harmful_compliance": 0.0, "hallucination": halluc, "system": {"hallucination": halluc + 0.1}}
        return {"feedback": feedback, "steps": {"base": row, "rl_cai": row},
                "details": {"rl_cai": {**RL_CAI, "label_accuracy_vs_oracle": acc}}}

    text = compare_table([run("oracle", 0.1, 1.0), run("self", 0.5, 0.65)])
    assert "| oracle | start | 0.00 / – |" not in text  # a metric without a system-prompt value shows alone
    assert "| oracle | start | 0.00 | – | – | – | – | – | 0.10 / 0.20 |" in text
    # n beside every accuracy: the label accuracy's decided pairs, the reward model's held-out pairs
    assert "| self | rl_cai |" in text and "| self | 0.65 (n=20) | – | 0.50 (n=5) |" in text


def test_report_section_gives_n_beside_every_rl_cai_accuracy():
    row = {"harmful_compliance": 0.0}
    summary = {"posttrain": {"model": "d1", "constitution": "c", "trait_constitution": "t", "feedback": "self",
                             "seconds": 1.0, "steps": {"base": row, "rl_cai": row}, "details": {"rl_cai": RL_CAI}}}
    text = section_posttrain(summary, Path("."))
    assert ("label accuracy against the oracle 0.650 (n=20). Reward model pairwise accuracy on 6 held-out pairs: "
            "0.750 (n=4) against the feedback labels, 0.500 (n=5) against the oracle.") in text
