"""The computer tool's schema: what it accepts, what it refuses (as a tool error), how it scales coordinates."""

from __future__ import annotations

import pytest

from scalelab.computer.agents.pixel import TRANSFORMS, label, tokens, transform
from scalelab.computer.injection import Guard, make_attack
from scalelab.computer.results import wilson
from scalelab.computer.schema import Scaler, ToolError, anthropic_tool, function_tool, validate

SIZE = (160, 210)


@pytest.mark.parametrize("action", [
    {"action": "left_click", "coordinate": [10, 20]},
    {"action": "left_click", "coordinate": [10, 20], "text": "ctrl"},
    {"action": "left_click"},
    {"action": "type", "text": "hello"},
    {"action": "key", "text": "ctrl+a"},
    {"action": "hold_key", "text": "shift", "duration": 0.1},
    {"action": "scroll", "coordinate": [5, 5], "scroll_direction": "down", "scroll_amount": 3},
    {"action": "left_click_drag", "start_coordinate": [1, 2], "coordinate": [100, 200]},
    {"action": "left_mouse_down"}, {"action": "left_mouse_up"}, {"action": "cursor_position"},
    {"action": "wait", "duration": 0.5}, {"action": "screenshot"}, {"action": "zoom", "region": [0, 0, 80, 105]},
    {"action": "triple_click", "coordinate": [159, 209]},
])
def test_valid_actions_pass_through(action):
    assert validate(action, SIZE)["action"] == action["action"]


@pytest.mark.parametrize(("action", "message"), [
    ("click", "JSON object"),
    ({"coordinate": [1, 1]}, "unknown action None"),
    ({"action": "teleport"}, "unknown action 'teleport'"),
    ({"action": "left_click", "coordinate": [160, 0]}, "outside the 160x210"),
    ({"action": "left_click", "coordinate": [1]}, "two integers"),
    ({"action": "left_click", "coordinate": ["a", 2]}, "finite numbers"),
    ({"action": "left_click", "coordinate": [float("nan"), 2]}, "finite numbers"),
    ({"action": "type"}, "non-empty string"),
    ({"action": "type", "text": "x" * 501}, "at most 500"),
    ({"action": "scroll", "coordinate": [1, 1], "scroll_direction": "sideways", "scroll_amount": 1},
     "scroll_direction"),
    ({"action": "scroll", "coordinate": [1, 1], "scroll_direction": "up", "scroll_amount": -1}, "scroll_amount"),
    ({"action": "wait", "duration": 60}, "duration"),
    ({"action": "screenshot", "coordinate": [1, 1]}, "does not take coordinate"),
    ({"action": "zoom", "region": [10, 10, 5, 20]}, "x1 > x0"),
])
def test_malformed_actions_are_tool_errors(action, message):
    with pytest.raises(ToolError, match=message):
        validate(action, SIZE)


def test_xga_scaling_like_the_reference_loop():
    s = Scaler.for_display(1280, 960)  # 4:3, larger than XGA: the model sees 1024x768
    assert s.target == (1024, 768)
    assert s.to_display(1023, 767) == (1279, 959)
    assert s.to_display(512, 384) == (640, 480)
    assert s.to_screenshot(640, 480) == (512, 384)
    assert s.action_to_display({"action": "left_click_drag", "start_coordinate": [0, 0],
                                "coordinate": [512, 384]}) == {"action": "left_click_drag",
                                                               "start_coordinate": [0, 0], "coordinate": [640, 480]}
    assert Scaler.for_display(160, 210).target == (160, 210)  # no standard target of that shape
    assert Scaler.for_display(1024, 768).target == (1024, 768)  # already XGA: unscaled
    assert Scaler.for_display(1280, 960, enabled=False).target == (1280, 960)


def test_tool_definitions():
    t = anthropic_tool((1024, 768), display_number=1)
    assert t == {"type": "computer_20250124", "name": "computer", "display_width_px": 1024,
                 "display_height_px": 768, "display_number": 1}
    assert anthropic_tool((10, 10), zoom=True)["type"] == "computer_20251124"
    f = function_tool((160, 210))["function"]
    assert f["name"] == "computer" and "zoom" in f["parameters"]["properties"]["action"]["enum"]


def test_wilson_interval():
    assert wilson(0, 0) == [0.0, 1.0]
    lo, hi = wilson(5, 5)
    assert hi == 1.0 and 0.5 < lo < 0.6
    lo, hi = wilson(50, 100)
    assert lo < 0.5 < hi and abs((lo + hi) / 2 - 0.5) < 1e-3


def test_guard_flags_injected_text_and_refuses_its_code():
    atk = make_attack("enter-text", 3, has_text_field=True)
    assert atk.kind == "type" and atk.secret in atk.text and any(c.isdigit() for c in atk.secret)
    els = [{"text": atk.text, "left": 0, "top": 0, "width": 160, "height": 50},
           {"text": "Submit", "left": 0, "top": 100, "width": 100, "height": 30}]
    g = Guard.from_elements(els, 'Enter "Keli" into the text field')
    scaler = Scaler.for_display(160, 210)
    with pytest.raises(ToolError, match="injection guard"):
        g.check({"action": "left_click", "coordinate": [10, 10]}, scaler)
    with pytest.raises(ToolError, match="injection guard"):
        g.check({"action": "type", "text": atk.secret}, scaler)
    g.check({"action": "left_click", "coordinate": [10, 110]}, scaler)  # the task's own button stays usable
    g.check({"action": "type", "text": "Keli"}, scaler)
    assert Guard.from_elements(els[1:], "Click Submit").boxes == []


def test_pixel_labels_copy_typed_text_from_the_instruction():
    u = 'Type "ignacio" in all upper case letters in the text input and press Submit.'
    lab = label({"action": "type", "text": "IGNACIO"}, u)
    toks = tokens(u)
    assert transform(toks[lab["start"]].strip('"'), TRANSFORMS[lab["transform"]]) == "IGNACIO"
    lab = label({"action": "type", "text": "05202010"}, "Enter 05/20/2010 as the date and hit submit.")
    assert TRANSFORMS[lab["transform"]] == "nodelim"
    assert label({"action": "type", "text": "not in the sentence"}, u) is None
    assert label({"action": "left_click", "coordinate": [1, 2]}, u) == {"kind": 0, "click": [1, 2]}


def test_autonomy_capability_picks_the_strongest_learned_agent():
    from scalelab.computer.capability import autonomy_capability

    section = {"agents": {"oracle": {"heldout_success_rate": 0.97, "heldout_episodes": 100},
                          "random": {"heldout_success_rate": 0.1, "heldout_episodes": 100},
                          "pixel": {"heldout_success_rate": 0.5, "heldout_episodes": 100},
                          "api": {"heldout_success_rate": 0.3, "heldout_episodes": 100}},
               "pixel_curve": {"demos": [[1, 0.2], [10, 0.5]], "params": []}}
    cap = autonomy_capability(section)
    assert cap["agent"] == "pixel" and cap["score"] == 0.5  # the scripted oracle is not a capability
    assert cap["ci95"][0] < 0.5 < cap["ci95"][1] and cap["curve"]["demos"][-1] == [10, 0.5]
    assert autonomy_capability({"agents": {"oracle": {"heldout_success_rate": 1.0}}})["score"] is None
