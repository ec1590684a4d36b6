"""The action schema every agent speaks: Anthropic's `computer` tool, version `computer_20250124`, plus `zoom`.

An action is the dict a model puts in a `tool_use` block's `input` (`{"action": "left_click", "coordinate":
[x, y]}`); trajectories store it exactly so. `validate` checks one against the schema and returns it
normalised; anything malformed raises `ToolError`, which the harness hands back to the agent as a tool
error (never a crash). `Scaler` maps between the screenshot the agent sees and the display, the way the
computer-use reference implementation does: a display larger than a standard target of its aspect ratio
(XGA 1024×768, WXGA 1280×800, FWXGA 1366×768) is shown to the model at that target, and the model's
coordinates are scaled back up before they reach the display.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

TOOL_TYPE = "computer_20250124"
ZOOM_TOOL_TYPE = "computer_20251124"  # the version that added `zoom`
TOOL_NAME = "computer"

COORD_ACTIONS = ("mouse_move", "left_click", "right_click", "middle_click", "double_click", "triple_click")
CLICK_ACTIONS = ("left_click", "right_click", "middle_click", "double_click", "triple_click")
SCROLL_DIRECTIONS = ("up", "down", "left", "right")
ACTIONS = (
    "key", "hold_key", "type", "cursor_position", "mouse_move", "left_mouse_down", "left_mouse_up", "left_click",
    "left_click_drag", "right_click", "middle_click", "double_click", "triple_click", "scroll", "wait",
    "screenshot", "zoom",
)
# Which keys each action may carry besides `action`; anything else is a malformed call.
_ALLOWED: dict[str, frozenset[str]] = {
    "key": frozenset({"text"}),
    "hold_key": frozenset({"text", "duration"}),
    "type": frozenset({"text"}),
    "cursor_position": frozenset(),
    "left_mouse_down": frozenset(),
    "left_mouse_up": frozenset(),
    "left_click_drag": frozenset({"start_coordinate", "coordinate"}),
    "scroll": frozenset({"coordinate", "scroll_direction", "scroll_amount", "text"}),
    "wait": frozenset({"duration"}),
    "screenshot": frozenset(),
    "zoom": frozenset({"region"}),
    **{a: frozenset({"coordinate", "text"}) for a in CLICK_ACTIONS},
    "mouse_move": frozenset({"coordinate"}),
}
MAX_WAIT_S = 10.0
MAX_SCROLL = 20
MAX_TEXT = 500

# Standard resolutions a larger display is scaled down to, by aspect ratio.
SCALING_TARGETS: dict[str, tuple[int, int]] = {"XGA": (1024, 768), "WXGA": (1280, 800), "FWXGA": (1366, 768)}


class ToolError(Exception):
    """A malformed or impossible action; its message goes back to the agent as the tool result."""


def _coordinate(action: dict[str, Any], key: str, size: tuple[int, int]) -> list[int]:
    value = action.get(key)
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ToolError(f"{key} must be a list of two integers [x, y], got {value!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        raise ToolError(f"{key} must hold two finite numbers, got {value!r}")
    x, y = round(value[0]), round(value[1])
    if not (0 <= x < size[0] and 0 <= y < size[1]):
        raise ToolError(f"{key} {[x, y]} is outside the {size[0]}x{size[1]} screenshot")
    return [x, y]


def _text(action: dict[str, Any], required: bool) -> None:
    text = action.get("text")
    if text is None and not required:
        return
    if not isinstance(text, str) or (required and not text):
        raise ToolError(f"{action['action']} needs a non-empty string `text`, got {text!r}")
    if len(text) > MAX_TEXT:
        raise ToolError(f"text is {len(text)} characters; at most {MAX_TEXT} per action")


def _number(action: dict[str, Any], key: str, lo: float, hi: float) -> float:
    value = action.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not (lo <= value <= hi):
        raise ToolError(f"{key} must be a number in [{lo}, {hi}], got {value!r}")
    return float(value)


def validate(action: Any, size: tuple[int, int]) -> dict[str, Any]:
    """Check one tool call against the schema for a screenshot of `size` (width, height); return it normalised.

    Raises ToolError, naming the problem, for anything the schema does not allow.
    """
    if not isinstance(action, dict):
        raise ToolError(f"an action is a JSON object with an `action` key, got {type(action).__name__}")
    name = action.get("action")
    if name not in _ALLOWED:
        raise ToolError(f"unknown action {name!r}; valid: {', '.join(ACTIONS)}")
    extra = set(action) - {"action"} - _ALLOWED[name]
    if extra:
        raise ToolError(f"{name} does not take {', '.join(sorted(extra))}")
    out: dict[str, Any] = {"action": name}
    if name in ("key", "type", "hold_key"):
        _text(action, required=True)
        out["text"] = action["text"]
    if name == "hold_key" or name == "wait":
        out["duration"] = _number(action, "duration", 0.0, MAX_WAIT_S)
    if name in COORD_ACTIONS:
        if name == "mouse_move" or "coordinate" in action:
            out["coordinate"] = _coordinate(action, "coordinate", size)
        if name in CLICK_ACTIONS and "text" in action:  # modifier keys held during the click
            _text(action, required=True)
            out["text"] = action["text"]
    if name == "left_click_drag":
        out["start_coordinate"] = _coordinate(action, "start_coordinate", size)
        out["coordinate"] = _coordinate(action, "coordinate", size)
    if name == "scroll":
        out["coordinate"] = _coordinate(action, "coordinate", size)
        if action.get("scroll_direction") not in SCROLL_DIRECTIONS:
            raise ToolError(f"scroll_direction must be one of {SCROLL_DIRECTIONS}, got "
                            f"{action.get('scroll_direction')!r}")
        out["scroll_direction"] = action["scroll_direction"]
        amount = action.get("scroll_amount")
        if not isinstance(amount, int) or isinstance(amount, bool) or not (0 <= amount <= MAX_SCROLL):
            raise ToolError(f"scroll_amount must be an integer in [0, {MAX_SCROLL}], got {amount!r}")
        out["scroll_amount"] = amount
        if "text" in action:
            _text(action, required=True)
            out["text"] = action["text"]
    if name == "zoom":
        region = action.get("region")
        if not isinstance(region, (list, tuple)) or len(region) != 4:
            raise ToolError(f"region must be [x0, y0, x1, y1], got {region!r}")
        x0, y0 = _coordinate({"c": region[:2]}, "c", (size[0] + 1, size[1] + 1))
        x1, y1 = _coordinate({"c": region[2:]}, "c", (size[0] + 1, size[1] + 1))
        if x1 <= x0 or y1 <= y0:
            raise ToolError(f"region {region!r} must have x1 > x0 and y1 > y0")
        out["region"] = [x0, y0, x1, y1]
    return out


@dataclass(frozen=True)
class Scaler:
    """Maps screenshot coordinates (what the agent sees) to display coordinates and back."""

    display: tuple[int, int]
    target: tuple[int, int]

    @classmethod
    def for_display(cls, width: int, height: int, enabled: bool = True) -> Scaler:
        """The target whose aspect ratio is within 0.02 of the display's and is smaller; else no scaling."""
        target = (width, height)
        if enabled:
            for w, h in SCALING_TARGETS.values():
                if abs(w / h - width / height) < 0.02:
                    if w < width:
                        target = (w, h)
                    break
        return cls((width, height), target)

    def to_display(self, x: int, y: int) -> tuple[int, int]:
        return round(x * self.display[0] / self.target[0]), round(y * self.display[1] / self.target[1])

    def to_screenshot(self, x: int, y: int) -> tuple[int, int]:
        return round(x * self.target[0] / self.display[0]), round(y * self.target[1] / self.display[1])

    def action_to_display(self, action: dict[str, Any]) -> dict[str, Any]:
        """A validated action with its coordinates moved from screenshot pixels to display pixels."""
        out = dict(action)
        for key in ("coordinate", "start_coordinate"):
            if key in out:
                out[key] = list(self.to_display(*out[key]))
        if "region" in out:
            x0, y0, x1, y1 = out["region"]
            out["region"] = [*self.to_display(x0, y0), *self.to_display(x1, y1)]
        return out


def anthropic_tool(size: tuple[int, int], display_number: int | None = None, zoom: bool = False) -> dict[str, Any]:
    """The tool definition the Messages API takes for a screenshot of `size`."""
    tool: dict[str, Any] = {"type": ZOOM_TOOL_TYPE if zoom else TOOL_TYPE, "name": TOOL_NAME,
                            "display_width_px": size[0], "display_height_px": size[1]}
    if display_number is not None:
        tool["display_number"] = display_number
    return tool


def function_tool(size: tuple[int, int]) -> dict[str, Any]:
    """The same tool as an OpenAI-compatible function (JSON Schema parameters), for chat-completions servers."""
    return {"type": "function", "function": {
        "name": TOOL_NAME,
        "description": f"Use the mouse and keyboard of a {size[0]}x{size[1]} screen; coordinates are screenshot "
                       "pixels [x, y]. Every call returns a new screenshot.",
        "parameters": {"type": "object", "required": ["action"], "properties": {
            "action": {"type": "string", "enum": list(ACTIONS)},
            "coordinate": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
            "start_coordinate": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
            "text": {"type": "string"},
            "scroll_direction": {"type": "string", "enum": list(SCROLL_DIRECTIONS)},
            "scroll_amount": {"type": "integer", "minimum": 0},
            "duration": {"type": "number", "minimum": 0},
            "region": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4},
        }},
    }}
