"""AgentDojo's banking suite through the API loop, offline: the loopback stub plays ground-truth calls."""

from __future__ import annotations

import pytest

from scalelab.computer.agentdojo_adapter import run_agentdojo, to_anthropic
from scalelab.errors import InputError


def test_ground_truth_through_the_loop_scores_full_utility_and_no_attack_success():
    r = run_agentdojo("banking", stub=True, user_tasks=3, injection_tasks=2)
    assert r["protocol_problems"] == []
    assert r["utility"] == 1.0 and r["utility_under_attack"] == 1.0 and r["attack_success_rate"] == 0.0
    assert r["pairs"] == 6


def test_a_hijacked_model_is_scored_as_attacked():
    r = run_agentdojo("banking", stub=True, user_tasks=2, injection_tasks=2, follow_injection=True)
    assert r["utility"] == 1.0 and r["attack_success_rate"] == 1.0 and r["utility_under_attack"] < 1.0


def test_message_conversion_and_bad_suite():
    from agentdojo.functions_runtime import FunctionCall

    call = FunctionCall(function="get_balance", args={}, id="toolu_1")
    system, msgs = to_anthropic([
        {"role": "system", "content": [{"type": "text", "content": "sys"}]},
        {"role": "user", "content": [{"type": "text", "content": "hi"}]},
        {"role": "assistant", "content": [{"type": "text", "content": ""}], "tool_calls": [call]},
        {"role": "tool", "content": [{"type": "text", "content": "42"}], "tool_call_id": "toolu_1", "tool_call": call,
         "error": None},
    ])
    assert system == "sys"
    assert msgs[1] == {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_balance",
                                                         "input": {}}]}
    assert msgs[2]["content"][0]["tool_use_id"] == "toolu_1" and msgs[2]["content"][0]["is_error"] is False
    with pytest.raises(InputError, match="unknown AgentDojo suite"):
        run_agentdojo("no-such-suite", stub=True)
