"""The `api-stub` agent: the real API loop against the loopback stub server, whose script is the oracle.

The loop, the messages and the coordinates are the real ones; the decisions are scripted (the oracle on the
page the harness sees), so its success measures the harness and the protocol, not a model.
"""

from __future__ import annotations

from typing import Any

from scalelab.computer.agents.oracle import OracleAgent


class OracleScript:
    """A script that plays the oracle on the harness's latest observation (fed by `ScriptedApiAgent`)."""

    def __init__(self) -> None:
        self.oracle = OracleAgent()
        self.obs: dict[str, Any] | None = None

    def __call__(self, request: dict[str, Any]) -> dict[str, Any] | str | None:
        return self.oracle.act(self.obs, None) if self.obs is not None else None


class ScriptedApiAgent:
    """The api agent against the stub server, whose script is the oracle on the same page: `api (stub)`."""

    def __init__(self, inner: Any, script: OracleScript):
        self.inner, self.script, self.name = inner, script, "api-stub"

    def reset(self, obs: dict[str, Any]) -> None:
        self.script.oracle.reset(obs)
        self.inner.reset(obs)

    def act(self, obs: dict[str, Any], last: dict[str, Any] | None) -> dict[str, Any]:
        self.script.obs = obs
        return self.inner.act(obs, last)

    def close(self) -> None:
        self.inner.close()
