"""The cross-feedback-model table (`python -m scalelab.posttrain.compare`)."""

from __future__ import annotations

from scalelab.posttrain.compare import compare_table


def test_compare_table_lays_feedback_models_side_by_side():
    def run(feedback: str, halluc: float, acc: float | None) -> dict:
        row = {"harmful_compliance": 0.0, "hallucination": halluc, "system": {"hallucination": halluc + 0.1}}
        return {"feedback": feedback, "steps": {"base": row, "rl_cai": row},
                "details": {"rl_cai": {"label_accuracy_vs_oracle": acc, "oracle_decided_pairs": 20}}}

    text = compare_table([run("oracle", 0.1, 1.0), run("self", 0.5, 0.65)])
    assert "| oracle | start | 0.00 / – |" not in text  # a metric without a system-prompt value shows alone
    assert "| oracle | start | 0.00 | – | – | – | – | – | 0.10 / 0.20 |" in text
    assert "| self | rl_cai |" in text and "| self | 0.65 (20) |" in text
