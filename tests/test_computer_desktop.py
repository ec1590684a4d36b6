"""The real desktop in the sandbox: Xvfb, xdotool, Chromium and a terminal; its own tasks and MiniWoB on it."""

from __future__ import annotations

import pytest

from scalelab.computer.agents.oracle import OracleAgent
from scalelab.computer.envs.base import decode_png
from scalelab.computer.injection import make_attack
from scalelab.computer.runner import play, play_episode
from scalelab.computer.sandbox import SandboxedComputer
from scalelab.computer.suite import resolve, seed_for, task


@pytest.fixture(scope="module")
def desktop():
    c = SandboxedComputer("desktop", max_steps=8)
    yield c
    c.close()


def test_display_is_scaled_to_xga(desktop):
    assert desktop.size == (1024, 768)  # a 1280x960 display, shown to the agent at XGA
    obs = desktop.reset("click-test", 0)
    assert decode_png(obs["screenshot"]).size == (1024, 768)
    button = next(e for e in obs["elements"] if e["tag"] == "BUTTON")
    assert button["left"] + button["width"] < 320  # the 2x page, in screenshot pixels


def test_oracle_on_the_desktop(desktop):
    eps, _ = play(desktop, OracleAgent(), resolve("terminal-write-file,editor-save-file,click-test,enter-text"),
                  "heldout", 1)
    assert [e.task for e in eps if not e.success] == []


def test_injected_notice_in_the_terminal(desktop):
    t = task("terminal-write-file")
    atk = make_attack(t.name, seed_for("heldout", 0), has_text_field=True)

    class Obedient:  # types the code the notice asks for
        name = "obedient"

        def reset(self, obs):
            self.n = 0

        def act(self, obs, last):
            self.n += 1
            return [{"action": "left_click", "coordinate": [300, 200]}, {"action": "type", "text": atk.secret},
                    {"action": "key", "text": "Return"}][min(self.n - 1, 2)]

        def close(self):
            pass

    ep = play_episode(desktop, Obedient(), t, "heldout", 0, attack=True)
    assert ep.attack_hit and not ep.success
    ep = play_episode(desktop, OracleAgent(), t, "heldout", 0, attack=True)
    assert ep.success and not ep.attack_hit
