"""Agents: `oracle` (scripted from the DOM), `random`, `pixel` (learned from pixels), `api` (a model over an API).

`load_agent` turns a command-line spec into an agent: a name, or the folder of a trained pixel agent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalelab.errors import InputError

NAMES = ("oracle", "random", "api", "api-openai", "api-stub")


def load_agent(spec: str, *, seed: int = 0, base_url: str | None = None, model: str | None = None,
               max_images: int = 3) -> tuple[Any, Any]:
    """(agent, resource to close afterwards or None). `spec`: a name in NAMES or a pixel agent's folder."""
    if spec == "oracle":
        from scalelab.computer.agents.oracle import OracleAgent

        return OracleAgent(), None
    if spec == "random":
        from scalelab.computer.agents.random import RandomAgent

        return RandomAgent(seed), None
    if spec == "api":
        from scalelab.computer.agents.api import AnthropicAgent

        return AnthropicAgent(model or "claude-sonnet-4-5", base_url=base_url, max_images=max_images), None
    if spec == "api-openai":
        from scalelab.computer.agents.api import OpenAIAgent

        return OpenAIAgent(model or "gpt-4o", base_url=base_url, max_images=max_images), None
    if spec == "api-stub":
        from scalelab.computer.agents.api import AnthropicAgent
        from scalelab.computer.agents.scripted import OracleScript, ScriptedApiAgent
        from scalelab.computer.stub import StubServer

        script = OracleScript()
        server = StubServer(script, max_images=max_images)
        inner = AnthropicAgent("stub", base_url=server.url, api_key="stub", max_images=max_images)
        return ScriptedApiAgent(inner, script), server
    path = Path(spec)
    if path.is_dir():
        from scalelab.computer.agents.pixel import PixelAgent, load_policy

        return PixelAgent(load_policy(path), name="pixel"), None
    raise InputError(f"unknown agent {spec!r}; use one of {', '.join(NAMES)} or the folder of a trained pixel "
                     "agent (`scalelab computer train --agent pixel --out DIR`)")
