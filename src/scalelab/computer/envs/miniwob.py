"""MiniWoB++ in headless Chromium: the fast backend, one browser for every task, actions through WebDriver.

The screen is MiniWoB's 160×210 task area (instruction bar on top), so screenshot pixels are CSS pixels
and no scaling applies. Mouse and keyboard go through WebDriver's W3C input actions — real pointer and key
events that the page cannot tell from a person's, without an X server.
"""

from __future__ import annotations

import io
import time
from typing import Any

from PIL import Image

from scalelab.computer.envs.base import Computer, PageState
from scalelab.computer.envs.keys import modifiers_of, parse_combo
from scalelab.computer.envs.page import TASK_SIZE, MiniWoBPage, chrome_driver
from scalelab.computer.injection import Attack
from scalelab.computer.schema import ToolError

SCROLL_PX = 50  # pixels per scroll click, about three lines as a wheel notch scrolls in Chromium
_BUTTONS = {"left_click": 0, "middle_click": 1, "right_click": 2, "double_click": 0, "triple_click": 0}


class MiniWoBComputer(Computer):
    backend = "miniwob"

    def __init__(self, profile_dir: str, max_steps: int, episode_time_s: float = 60.0):
        super().__init__(TASK_SIZE, max_steps)
        # without a vsync to wait for, a screenshot takes ~10 ms instead of ~40 (the same pixels): most of a step
        self.driver = chrome_driver(["--headless=new", "--disable-gpu", "--window-size=500,500",
                                     "--disable-gpu-vsync", "--disable-frame-rate-limit"], profile_dir)
        self.page = MiniWoBPage(self.driver)
        self.episode_ms = int(episode_time_s * 1000)

    def _start(self, task: str, seed: int, attack: Attack | None) -> None:
        self.page.start(task, seed, attack, episode_ms=self.episode_ms)

    def _state(self) -> PageState:
        utterance, fields, elements, st = self.page.state()
        return PageState(utterance, fields, elements, st["done"], st["reward"], st["attack_hit"],
                         {"reason": st["reason"]})

    def _grab(self) -> Image.Image:
        png = self.driver.get_screenshot_as_png()
        return Image.open(io.BytesIO(png)).convert("RGB").crop((0, 0, *TASK_SIZE))

    def close(self) -> None:
        self.driver.quit()

    # --- input -------------------------------------------------------------------------------------
    def _chain(self) -> Any:
        from selenium.webdriver.common.action_chains import ActionChains  # lazy: optional dependency

        return ActionChains(self.driver, duration=0)

    def _pointer(self, x: int, y: int) -> Any:
        builder = self._chain().w3c_actions  # W3C builder: pointer moves to absolute viewport pixels
        builder.pointer_action.move_to_location(x, y)
        return builder

    def _execute(self, action: dict[str, Any]) -> str | None:
        from selenium.common.exceptions import WebDriverException  # lazy: optional dependency

        try:
            return self._input(action)
        except WebDriverException as e:
            raise ToolError(f"the browser refused {action['action']}: {e.msg or type(e).__name__}") from None

    def _input(self, action: dict[str, Any]) -> str | None:
        name = action["action"]
        x, y = action.get("coordinate", self.cursor)
        if name in ("key", "hold_key"):
            mods, key = parse_combo(action["text"])
            chain = self._chain()
            for m in mods:
                chain.key_down(m)
            chain.key_down(key)
            if name == "hold_key":
                chain.pause(action["duration"])
            chain.key_up(key)
            for m in reversed(mods):
                chain.key_up(m)
            chain.perform()
        elif name == "type":
            self._chain().send_keys(action["text"]).perform()
        elif name in ("mouse_move", "left_mouse_down", "left_mouse_up", "left_click_drag") or name in _BUTTONS:
            self._mouse(name, x, y, action)
        elif name == "scroll":
            dx = {"left": -1, "right": 1}.get(action["scroll_direction"], 0) * SCROLL_PX * action["scroll_amount"]
            dy = {"up": -1, "down": 1}.get(action["scroll_direction"], 0) * SCROLL_PX * action["scroll_amount"]
            b = self._chain().w3c_actions
            mods = modifiers_of(action.get("text"))
            for m in mods:
                b.key_action.key_down(m)
            b.wheel_action.scroll(x=int(x), y=int(y), delta_x=dx, delta_y=dy)
            for m in reversed(mods):
                b.key_action.key_up(m)
            b.perform()
        return None

    def _mouse(self, name: str, x: int, y: int, action: dict[str, Any]) -> None:
        b = self._pointer(x, y)
        p = b.pointer_action
        mods = modifiers_of(action.get("text")) if name in _BUTTONS else []
        for m in mods:
            b.key_action.key_down(m)
        if name == "left_mouse_down":
            p.pointer_down(0)
        elif name == "left_mouse_up":
            p.pointer_up(0)
        elif name == "left_click_drag":
            sx, sy = action["start_coordinate"]
            p.move_to_location(sx, sy)
            p.pointer_down(0)
            for i in range(1, 11):  # intermediate moves: drag-and-drop widgets track mousemove events
                p.move_to_location(round(sx + (x - sx) * i / 10), round(sy + (y - sy) * i / 10))
                p.pause(0.01)
            p.pointer_up(0)
        elif name in _BUTTONS:
            clicks = {"double_click": 2, "triple_click": 3}.get(name, 1)
            for _ in range(clicks):
                p.pointer_down(_BUTTONS[name])
                p.pointer_up(_BUTTONS[name])
        for m in reversed(mods):
            b.key_action.key_up(m)
        b.perform()
        time.sleep(0.01)  # let the page's handlers run before the next read
