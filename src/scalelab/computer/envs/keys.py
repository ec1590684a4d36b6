"""Key names as the `computer` tool spells them (xdotool's keysyms, `ctrl+a`) translated for WebDriver.

The desktop backend hands the names to xdotool unchanged; the headless backend has no X server, so it
presses the same keys through WebDriver, which needs its own code points for the special keys.
"""

from __future__ import annotations

from selenium.webdriver.common.keys import Keys

from scalelab.computer.schema import ToolError

_SPECIAL = {
    "return": Keys.ENTER, "enter": Keys.ENTER, "kp_enter": Keys.ENTER, "tab": Keys.TAB, "escape": Keys.ESCAPE,
    "esc": Keys.ESCAPE, "backspace": Keys.BACKSPACE, "delete": Keys.DELETE, "space": Keys.SPACE,
    "up": Keys.UP, "down": Keys.DOWN, "left": Keys.LEFT, "right": Keys.RIGHT, "home": Keys.HOME, "end": Keys.END,
    "page_up": Keys.PAGE_UP, "prior": Keys.PAGE_UP, "page_down": Keys.PAGE_DOWN, "next": Keys.PAGE_DOWN,
    "insert": Keys.INSERT, **{f"f{i}": getattr(Keys, f"F{i}") for i in range(1, 13)},
}
_MODIFIERS = {"ctrl": Keys.CONTROL, "control": Keys.CONTROL, "shift": Keys.SHIFT, "alt": Keys.ALT,
              "super": Keys.META, "meta": Keys.META, "cmd": Keys.META}


def parse_combo(text: str) -> tuple[list[str], str]:
    """`ctrl+shift+a` -> ([CONTROL, SHIFT], 'a') in WebDriver code points; ToolError for an unknown key."""
    parts = [p for p in text.strip().split("+") if p]
    if not parts:
        raise ToolError(f"empty key combination {text!r}")
    *mods, key = parts
    try:
        modifiers = [_MODIFIERS[m.lower()] for m in mods]
    except KeyError as e:
        raise ToolError(f"unknown modifier {e.args[0]!r} in {text!r}; use ctrl, shift, alt or super") from None
    if len(key) == 1:
        return modifiers, key
    if key.lower() in _SPECIAL:
        return modifiers, _SPECIAL[key.lower()]
    raise ToolError(f"unknown key {key!r} in {text!r}; use xdotool names such as Return, Tab, BackSpace, Up")


def modifiers_of(text: str | None) -> list[str]:
    """Modifier keys held during a click or scroll (`text` of the action), as WebDriver code points."""
    if not text:
        return []
    try:
        return [_MODIFIERS[m.lower()] for m in text.split("+") if m]
    except KeyError as e:
        raise ToolError(f"unknown modifier {e.args[0]!r}; use ctrl, shift, alt or super") from None
