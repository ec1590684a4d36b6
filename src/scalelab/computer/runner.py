"""Play episodes: an agent against a computer, task by task, seed by seed; optionally record trajectories.

`Computer` here is anything with `reset`, `step`, `probe` and `close` — the in-process environment or the
sandboxed client (`sandbox.SandboxedComputer`), which has the same methods. The confirmation hook, when
given, sees each consequential action first and may decline it (the agent gets a tool error).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalelab.computer.injection import make_attack
from scalelab.computer.schema import ToolError, validate
from scalelab.computer.suite import Task, seed_for

if TYPE_CHECKING:  # agents import the runner (demonstrations); the runner needs only their interface
    from scalelab.computer.agents.base import Agent

ConfirmHook = Callable[[dict[str, Any], dict[str, Any] | None], bool]
StepHook = Callable[[dict[str, Any], dict[str, Any]], None]
_CONSEQUENTIAL = ("submit", "login", "delete", "send", "buy", "agree", "search", "save", "ok")


@dataclass
class Episode:
    task: str
    family: str
    episode: int
    seed: int
    success: bool
    reward: float
    steps: int
    attack_hit: bool = False
    attacked: bool = False
    errors: int = 0
    reason: str | None = None
    seconds: float = 0.0
    actions: list[dict[str, Any]] = field(default_factory=list)


def consequential(action: dict[str, Any], element: dict[str, Any] | None) -> bool:
    """An action that commits something: a click on a submit/delete/send-like control, or Enter."""
    if action.get("action") == "key" and str(action.get("text", "")).lower() in ("return", "enter", "ctrl+s"):
        return True
    if element is None or action.get("action") not in ("left_click", "double_click", "triple_click"):
        return False
    return any(w in element.get("text", "").strip().lower().split() for w in _CONSEQUENTIAL)


def has_text_field(obs: dict[str, Any]) -> bool:
    """Can the attack ask for typed text? Pages with a text field can; so can a desktop application's screen
    (no DOM: a terminal or an editor, where typing is the whole interface)."""
    return not obs["elements"] or any(e["tag"] in ("INPUT_text", "INPUT_password", "TEXTAREA")
                                      for e in obs["elements"])


_TEXT_FIELD: dict[tuple[str, str, int], bool] = {}


def _clean_page_has_text_field(computer: Any, task: str, seed: int) -> bool:
    """The attack's kind depends on the clean page (does it have a text field?), so peek at it first — once per
    backend, task and seed: every agent's attacked run asks the same question about the same page."""
    key = (str(getattr(computer, "backend", "")), task, seed)
    if key not in _TEXT_FIELD:
        _TEXT_FIELD[key] = has_text_field(computer.reset(task, seed, observe=False))
    return _TEXT_FIELD[key]


def play_episode(computer: Any, agent: Agent, task: Task, split: str, episode: int, *, attack: bool = False,
                 defence: bool = False, traj_dir: Path | None = None, confirm: ConfirmHook | None = None,
                 on_step: StepHook | None = None) -> Episode:
    seed = seed_for(split, episode)
    t0 = time.perf_counter()
    atk = None
    if attack:
        atk = make_attack(task.name, seed, _clean_page_has_text_field(computer, task.name, seed))
    # screenshots only where something looks at them: the agent, the trajectory, or a demonstration hook
    observe = getattr(agent, "uses_screenshot", True) or traj_dir is not None or on_step is not None
    obs = computer.reset(task.name, seed, attack=atk, defence=defence, observe=observe)
    agent.reset(obs)
    lines: list[dict[str, Any]] = []
    result: dict[str, Any] | None = None
    ep = Episode(task.name, task.family, episode, seed, False, 0.0, 0, attacked=atk is not None)
    stem = f"{task.name}-{episode}"
    while True:
        action = agent.act(obs, result)
        shot = _save_shot(traj_dir, stem, len(lines), obs) if traj_dir else None
        result = _confirmed_step(computer, action, confirm, observe)
        if on_step is not None:
            on_step(obs, action)
        ep.errors += result["error"] is not None
        ep.attack_hit = ep.attack_hit or bool(result.get("attack_hit"))
        ep.actions.append(action)
        lines.append({"step": len(lines), "action": action, "screenshot": shot, "reward": result["reward"],
                      "done": result["done"], "error": result["error"], "output": result.get("output"),
                      "attack_hit": result.get("attack_hit", False)})
        obs = result["obs"]
        if result["done"]:
            break
    ep.reward, ep.steps, ep.reason = float(result["reward"]), len(lines), result.get("reason")
    ep.success = ep.reward > 0
    ep.seconds = time.perf_counter() - t0
    if traj_dir:
        final = _save_shot(traj_dir, stem, len(lines), obs)
        with open(traj_dir / f"{stem}.jsonl", "w") as fh:
            for line in lines:
                fh.write(json.dumps(line) + "\n")
        (traj_dir / f"{stem}.meta.json").write_text(json.dumps(
            {**{k: v for k, v in asdict(ep).items() if k != "actions"}, "utterance": obs.get("utterance", ""),
             "final_screenshot": final, "attack": atk.to_dict() if atk else None}))
    return ep


def _confirmed_step(computer: Any, action: Any, confirm: ConfirmHook | None, observe: bool) -> dict[str, Any]:
    """Step, unless the hook declines a consequential action: then the agent gets a tool error instead."""
    if confirm is not None:
        try:
            checked = validate(action, tuple(computer.size))
        except ToolError:
            checked = None  # malformed: the computer answers it with the tool error
        if checked is not None and checked["action"] in ("left_click", "double_click", "triple_click", "key"):
            element = computer.probe(checked["coordinate"]) if "coordinate" in checked else None
            if consequential(checked, element) and not confirm(checked, element):
                result = computer.step({"action": "screenshot"}, observe=observe)
                result["error"] = "declined: the confirmation hook did not approve this consequential action"
                return result
    return computer.step(action, observe=observe)


def _save_shot(traj_dir: Path, stem: str, i: int, obs: dict[str, Any]) -> str:
    rel = f"{stem}/step-{i:03d}.png"
    path = traj_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(obs["screenshot"]))
    return rel


def play(computer: Any, agent: Agent, tasks: list[Task], split: str, episodes: int, *, attack: bool = False,
         defence: bool = False, traj_dir: Path | None = None, confirm: ConfirmHook | None = None,
         log: Callable[[str], None] | None = None) -> tuple[list[Episode], float]:
    """Every task × episode; returns the episodes and the wall seconds spent in them."""
    if traj_dir:
        traj_dir.mkdir(parents=True, exist_ok=True)
    out, t0 = [], time.perf_counter()
    for task in tasks:
        eps = [play_episode(computer, agent, task, split, i, attack=attack, defence=defence, traj_dir=traj_dir,
                            confirm=confirm) for i in range(episodes)]
        out += eps
        if log:
            log(f"  {task.name:28s} {sum(e.success for e in eps)}/{len(eps)}"
                + (f"  attack hit {sum(e.attack_hit for e in eps)}" if attack else ""))
    return out, time.perf_counter() - t0
