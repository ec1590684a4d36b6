"""One evaluation: an agent on tasks of a split, in a (sandboxed) computer; results, trajectories, viewer.

This is what `scalelab computer run` does and what the stage and `bench` call for every agent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scalelab.computer.agents import load_agent
from scalelab.computer.results import summarise
from scalelab.computer.runner import ConfirmHook, play
from scalelab.computer.sandbox import SandboxedComputer
from scalelab.computer.suite import Task
from scalelab.computer.viewer import write_viewer


def run_eval(agent_spec: str, tasks: list[Task], *, split: str = "train", episodes: int = 5,
             out_dir: Path | None = None, attack: bool = False, defence: bool = False, backend: str = "miniwob",
             sandbox: bool = True, max_steps: int = 12, computer: Any = None, confirm: ConfirmHook | None = None,
             base_url: str | None = None, model: str | None = None, max_images: int = 3, seed: int = 0,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Play `episodes` per task; write DIR/results.json, DIR/trajectories/ and DIR/index.html when out_dir."""
    agent, resource = load_agent(agent_spec, seed=seed, base_url=base_url, model=model, max_images=max_images)
    own = computer is None
    comp = SandboxedComputer(backend, max_steps, sandbox=sandbox) if own else computer
    try:
        traj = out_dir / "trajectories" if out_dir else None
        eps, seconds = play(comp, agent, tasks, split, episodes, attack=attack, defence=defence, traj_dir=traj,
                            confirm=confirm, log=log)
    finally:
        agent.close()
        if resource is not None:
            resource.close()
        if own:
            comp.close()
    results = summarise(eps, agent=getattr(agent, "name", agent_spec), backend=backend, split=split,
                        seconds=seconds, attack=attack, defence=defence,
                        sandboxed=getattr(comp, "sandboxed", False))
    if resource is not None and getattr(resource, "problems", None):
        results["protocol_problems"] = resource.problems[:20]
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.json").write_text(json.dumps(results, indent=2))
        write_viewer(out_dir, results)
    return results
