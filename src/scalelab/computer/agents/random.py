"""The floor: uniformly random tool calls (clicks most often, as a person's random use of a page would be)."""

from __future__ import annotations

import random
from typing import Any


class RandomAgent:
    name = "random"
    uses_screenshot = False

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)

    def reset(self, obs: dict[str, Any]) -> None:
        pass

    def act(self, obs: dict[str, Any], last: dict[str, Any] | None) -> dict[str, Any]:
        w, h = obs["size"]
        r = self.rng
        xy = [r.randrange(w), r.randrange(h)]
        kind = r.choices(["left_click", "type", "key", "scroll", "left_click_drag"], [6, 1, 1, 1, 1])[0]
        if kind == "type":
            words = [t.strip("\"'.,") for t in obs["utterance"].split()] or ["a"]
            return {"action": "type", "text": r.choice(words) or "a"}
        if kind == "key":
            return {"action": "key", "text": r.choice(["Return", "Tab", "BackSpace"])}
        if kind == "scroll":
            return {"action": "scroll", "coordinate": xy, "scroll_direction": r.choice(["up", "down"]),
                    "scroll_amount": r.randint(1, 5)}
        if kind == "left_click_drag":
            return {"action": "left_click_drag", "start_coordinate": xy,
                    "coordinate": [r.randrange(w), r.randrange(h)]}
        return {"action": "left_click", "coordinate": xy}

    def close(self) -> None:
        pass
