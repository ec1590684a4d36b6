"""The RSP's elicitations from reasoning: majority@k over sampled answers, and a reasoning-trained model asked to
work sums out in its scratchpad (the capability report shows each beside the plain score)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalelab.errors import InputError
from scalelab.evals.capability.catalogue import applies
from scalelab.evals.capability.elicitation import ElicitationConfig, ReasoningModel
from scalelab.evals.capability.runner import run_capability_evals
from scalelab.evals.capability.tasks import build_samples, scratchpad_answer, vote
from scalelab.reasoning.tasks.arithmetic import QUESTION
from scalelab.reasoning.tasks.base import ANSWER
from test_capability_runner import planted, run_dir  # noqa: F401  (module fixtures, reused)


def test_vote_and_answer_line():
    assert vote(["12", " 12.", "13", "", "7 is it"]) == "12"
    assert vote(["1", "2"]) == "1"  # a tie goes to the earliest sample
    assert vote(["", " "]) is None
    assert scratchpad_answer("7+8+0=15, 5\nAnswer: 15", ANSWER) == "15"
    assert scratchpad_answer("Answer: 1\nAnswer: 2", ANSWER) is None and scratchpad_answer("15", ANSWER) is None
    assert applies("general_capability", "majority_at_k") and applies("hazard_freeform", "majority_at_k")
    assert not applies("hazard_mc", "majority_at_k") and not applies("harmful_compliance", "majority_at_k")


def test_majority_at_k_beats_greedy_on_a_planted_model(planted, tmp_path):  # noqa: F811
    model_dir, world = planted
    r = run_capability_evals(model_dir, world, ["hazard_freeform"], elicitations=["zero_shot", "majority_at_k"],
                             log_dir=tmp_path, config=ElicitationConfig(majority_k=64))["hazard_freeform"]
    assert r["zero_shot"].value == 0.0  # greedy stops at once: an empty answer
    # a sample is "0" (P 0.225), "00" (0.10), "000" (0.05), ... or empty (0.5): of 64, "0" wins the vote
    assert r["majority_at_k"].value >= 0.5


def test_reasoning_elicitation_asks_sums_as_questions(run_dir, tmp_path):  # noqa: F811
    world, model_dir = run_dir / "world", run_dir / "models" / "d1" / "final"
    samples = build_samples("general_capability", world, items=2, scratchpad=(QUESTION, ANSWER))
    sums = [s for s in samples if s.metadata["set"] == "arithmetic"]
    assert sums and all(s.metadata["scratchpad"] == ANSWER for s in sums)
    assert all(s.input[0].text.startswith("What is ") and s.input[0].text.endswith("?") for s in sums)
    with pytest.raises(InputError, match="reasoning="):
        run_capability_evals(model_dir, world, ["general_capability"], elicitations=["reasoning"], log_dir=tmp_path)
    scores = run_capability_evals(model_dir, world, ["general_capability"], elicitations=["zero_shot", "reasoning"],
                                  limit=2, log_dir=tmp_path, reasoning=ReasoningModel(model_dir, QUESTION, ANSWER))
    got = scores["general_capability"]
    assert set(got) == {"zero_shot", "reasoning"} and got["reasoning"].n == got["zero_shot"].n
    assert got["reasoning"].details["reasoning_model"] == str(Path(model_dir))
