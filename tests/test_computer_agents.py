"""The api agents' loops against the loopback stub server, and the pixel agent's training at toy size.

Both run against an in-process MiniWoB computer (no sandbox: the sandbox has its own tests) shared by the
module.
"""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

from scalelab.computer.agents import load_agent
from scalelab.computer.agents.api import AnthropicAgent, OpenAIAgent
from scalelab.computer.agents.bc import collect_demos, train_pixel
from scalelab.computer.agents.pixel import KINDS, PixelAgent, PixelPolicy, load_policy
from scalelab.computer.agents.scripted import OracleScript, ScriptedApiAgent
from scalelab.computer.envs.miniwob import MiniWoBComputer
from scalelab.computer.runner import play, play_episode
from scalelab.computer.schema import validate
from scalelab.computer.stub import StubServer
from scalelab.computer.suite import resolve, task
from scalelab.errors import InputError


@pytest.fixture(scope="module")
def computer():
    c = MiniWoBComputer(tempfile.mkdtemp(prefix="scalelab-test-profile-"), max_steps=6)
    yield c
    c.close()


@pytest.mark.parametrize("flavour", ["anthropic", "openai"])
def test_api_loop_against_the_stub(computer, flavour):
    script = OracleScript()
    server = StubServer(script, max_images=2)
    try:
        inner = (AnthropicAgent("stub", base_url=server.url, api_key="k", max_images=2) if flavour == "anthropic"
                 else OpenAIAgent("stub", base_url=server.url + "/v1", api_key="k", max_images=2))
        eps, _ = play(computer, ScriptedApiAgent(inner, script), resolve("click-test,enter-text,click-collapsible"),
                      "heldout", 1)
        assert all(e.success for e in eps), [(e.task, e.reason) for e in eps]
        assert server.problems == []  # tool declared, results answer calls, at most 2 screenshots kept
        assert len(server.requests) == sum(e.steps for e in eps)
        # enter-text takes 3 steps: its third request would hold 3 screenshots, so the oldest was dropped
        assert any("older screenshot omitted" in json_text(r) for r in server.requests)
    finally:
        server.close()


def json_text(m):
    import json

    return json.dumps(m)


def test_api_tool_errors_go_back_to_the_model(computer):
    calls = iter([{"action": "left_click", "coordinate": [9999, 1]}, {"action": "warp"}, None])
    server = StubServer(lambda body: next(calls, None))  # then plain text: the model is done
    try:
        agent = AnthropicAgent("stub", base_url=server.url, api_key="k")
        ep = play_episode(computer, agent, task("click-test"), "train", 0)
        assert ep.errors == 2 and not ep.success
        results = [b for m in server.requests[2]["messages"] for b in m["content"]
                   if isinstance(b, dict) and b.get("type") == "tool_result"]
        assert results[-1]["is_error"] is True and "unknown action 'warp'" in json_text(results[-1])
        assert "outside the 160x210" in json_text(results[0])
    finally:
        server.close()


def test_api_agent_needs_a_key(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(InputError, match="ANTHROPIC_API_KEY"):
        load_agent("api")
    with pytest.raises(InputError, match="unknown agent"):
        load_agent("/no/such/pixel/agent")


def test_pixel_agent_trains_saves_loads_and_acts(computer, tmp_path):
    tasks = [task("click-test"), task("enter-text")]
    demos, episode_of = collect_demos(computer, tasks, 2, PixelPolicy(8).grid)
    assert demos.episodes == 4 and len(demos) == len(episode_of) >= 8
    assert set(demos.targets["kind"].tolist()) == {KINDS.index("left_click"), KINDS.index("type")}
    assert (demos.targets["start"] >= 0).sum() == 2  # the two typed names were found in the instruction
    rec = train_pixel(demos, tmp_path / "pix", width=8, seconds=3.0, batch=8)
    assert rec["steps"] >= 1 and np.isfinite(rec["final_loss"]) and rec["params"] > 0
    agent = PixelAgent(load_policy(tmp_path / "pix"))
    eps, _ = play(computer, agent, tasks, "heldout", 1)
    assert len(eps) == 2 and all(e.steps >= 1 for e in eps)
    for a in eps[0].actions + eps[1].actions:
        validate(a, (160, 210))  # whatever it learned, it speaks the schema
