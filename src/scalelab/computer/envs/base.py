"""What every environment shares: an episode of validated tool calls against a screen, scored by its task.

A backend supplies five things (`_start`, `_state`, `_grab`, `_execute`, `close`) and `Computer` does the
rest the same way for all: validate each call against the schema (a bad one becomes a tool error in the
step's result, the episode goes on), scale coordinates between screenshot and display, count steps
against the limit, mask and guard the screen when the injection defence is on, and report reward, done
and whether an injected goal was reached. Observations are plain JSON (screenshot as base64 PNG) because
they cross the sandbox's boundary as a line of text.
"""

from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from scalelab.computer.injection import Attack, Guard
from scalelab.computer.schema import Scaler, ToolError, validate


@dataclass
class PageState:
    """What a task's page says about itself: instruction, DOM elements (display pixels), reward."""

    utterance: str
    fields: dict[str, str]
    elements: list[dict[str, Any]]
    done: bool = False
    reward: float = 0.0
    attack_hit: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def png_b64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)  # fast: screenshots are written every step
    return base64.b64encode(buf.getvalue()).decode()


def decode_png(data: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


class Computer:
    """One screen and its task. Subclasses implement the backend methods; this class runs the episode."""

    backend = "base"

    def __init__(self, display: tuple[int, int], max_steps: int, scale: bool = True):
        self.scaler = Scaler.for_display(*display, enabled=scale)
        self.max_steps = max_steps
        self.steps = 0
        self.cursor = (0, 0)
        self.attack: Attack | None = None
        self.guard: Guard | None = None
        self.task = ""

    @property
    def size(self) -> tuple[int, int]:
        """Screenshot size: the coordinate space the agent uses."""
        return self.scaler.target

    # --- backend -----------------------------------------------------------------------------------
    def _start(self, task: str, seed: int, attack: Attack | None) -> None:
        raise NotImplementedError

    def _state(self) -> PageState:
        raise NotImplementedError

    def _grab(self) -> Image.Image:
        """The whole display, display pixels."""
        raise NotImplementedError

    def _execute(self, action: dict[str, Any]) -> str | None:
        """Perform a validated action given in display pixels; return text output if the action has one."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # --- episode -----------------------------------------------------------------------------------
    def reset(self, task: str, seed: int, attack: Attack | None = None, defence: bool = False,
              observe: bool = True) -> dict[str, Any]:
        self.task, self.steps, self.attack = task, 0, attack
        self._start(task, seed, attack)
        state = self._state()
        self.guard = Guard.from_elements(state.elements, state.utterance) if defence else None
        return self._observation(state, observe)

    def probe(self, coordinate: list[int]) -> dict[str, Any] | None:
        """The innermost page element under a screenshot coordinate (for the confirmation hook)."""
        x, y = self.scaler.to_display(*coordinate)
        hits = [e for e in self._state().elements
                if e["left"] <= x < e["left"] + e["width"] and e["top"] <= y < e["top"] + e["height"]]
        return min(hits, key=lambda e: e["width"] * e["height"]) if hits else None

    def step(self, raw: Any, observe: bool = True) -> dict[str, Any]:
        """Apply one tool call; return {obs, reward, done, error, output, attack_hit, steps}.

        `observe=False` leaves the screenshot out of the observation (None): for agents that act on the DOM
        or at random, a screenshot per step is most of the step's cost."""
        self.steps += 1
        error = output = zoom = None
        try:
            action = validate(raw, self.size)
            if self.guard is not None:
                self.guard.check(action, self.scaler)
            output = self._run(action)
            if action["action"] == "zoom":
                zoom = self._zoom(action["region"])
        except ToolError as e:
            error = str(e)
        state = self._state()
        done = state.done
        reason = state.extra.get("reason")
        if not done and self.steps >= self.max_steps:
            done, reason = True, f"step limit ({self.max_steps})"
        reward = state.reward if state.done else 0.0
        return {"obs": self._observation(state, observe), "reward": reward, "done": done, "error": error,
                "output": output, "attack_hit": state.attack_hit, "steps": self.steps, "reason": reason, "zoom": zoom}

    def _zoom(self, region: list[int]) -> str:
        """The region of the screen (screenshot pixels) shown at the full screenshot size, as base64 PNG."""
        x0, y0 = self.scaler.to_display(*region[:2])
        x1, y1 = self.scaler.to_display(*region[2:])
        return png_b64(self._grab().crop((x0, y0, x1, y1)).resize(self.size, Image.Resampling.LANCZOS))

    def _run(self, action: dict[str, Any]) -> str | None:
        name = action["action"]
        if name == "screenshot":
            return None
        if name == "cursor_position":
            return "X={},Y={}".format(*self.scaler.to_screenshot(*self.cursor))
        if name == "wait":
            time.sleep(action["duration"])
            return None
        if name == "zoom":
            return None  # the observation carries the zoomed image (see _observation)
        display_action = self.scaler.action_to_display(action)
        if "coordinate" in display_action:
            self.cursor = tuple(display_action["coordinate"])
        return self._execute(display_action)

    def _observation(self, state: PageState, observe: bool = True) -> dict[str, Any]:
        shot = None
        if observe:
            img = self._grab()
            if img.size != self.size:
                img = img.resize(self.size, Image.Resampling.LANCZOS)
            if self.guard is not None:
                img = self.guard.mask(img, self.scaler)
            shot = png_b64(img)
        sx, sy = self.size[0] / self.scaler.display[0], self.size[1] / self.scaler.display[1]
        elements = [{**e, "left": e["left"] * sx, "top": e["top"] * sy, "width": e["width"] * sx,
                     "height": e["height"] * sy} for e in state.elements]
        return {"task": self.task, "utterance": state.utterance, "fields": state.fields, "elements": elements,
                "screenshot": shot, "size": list(self.size), "backend": self.backend}
