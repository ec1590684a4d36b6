"""The agent interface: given the task's observation, return the next `computer` tool call.

An agent never touches the environment: it gets observations (instruction, screenshot, and — for the
scripted oracle only — the page's elements) and returns schema actions, which cross into the sandbox.
`last` is the previous step's result, so an agent can see its tool errors.
"""

from __future__ import annotations

from typing import Any, Protocol


class Agent(Protocol):
    name: str

    def reset(self, obs: dict[str, Any]) -> None:
        """A new episode starts with this observation."""

    def act(self, obs: dict[str, Any], last: dict[str, Any] | None) -> dict[str, Any]:
        """The next tool call (a dict in the schema's spelling)."""

    def close(self) -> None:
        """Release anything the agent holds (a server connection)."""


def centre(e: dict[str, Any]) -> list[int]:
    """An element's centre in screenshot pixels."""
    return [int(e["left"] + e["width"] / 2), int(e["top"] + e["height"] / 2)]


def click(e: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"action": "left_click", "coordinate": centre(e), **extra}
