"""Scores from episodes: per-task and overall success with Wilson 95% intervals, speed, injection metrics.

`summarise` builds the `results.json` that `scalelab computer run` writes: `agent`, `backend`, `split`,
`success_rate`, `ci95`, `steps_per_second` and `tasks` (per task: `episodes`, `success_rate`,
`mean_reward`, `mean_steps`); with an attack also `utility_under_attack` and `attack_success_rate`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from scalelab.computer.runner import Episode


def wilson(successes: int, n: int, z: float = 1.96) -> list[float]:
    """Wilson score interval for a binomial proportion (sane at 0 and n, unlike the normal interval)."""
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def summarise(episodes: list[Episode], *, agent: str, backend: str, split: str, seconds: float,
              attack: bool = False, defence: bool = False, sandboxed: bool = True) -> dict[str, Any]:
    by_task: dict[str, list[Episode]] = defaultdict(list)
    for e in episodes:
        by_task[e.task].append(e)
    n = len(episodes)
    wins = sum(e.success for e in episodes)
    steps = sum(e.steps for e in episodes)
    out: dict[str, Any] = {
        "agent": agent, "backend": backend, "split": split, "episodes": n,
        "success_rate": round(wins / n, 4) if n else 0.0, "ci95": wilson(wins, n),
        "steps_per_second": round(steps / seconds, 2) if seconds > 0 else None, "steps": steps,
        "seconds": round(seconds, 1), "attack": attack, "defence": defence, "sandboxed": sandboxed,
        "families": {}, "tasks": {},
    }
    fam: dict[str, list[Episode]] = defaultdict(list)
    for e in episodes:
        fam[e.family].append(e)
    out["families"] = {f: round(sum(e.success for e in es) / len(es), 4) for f, es in sorted(fam.items())}
    for task, eps in by_task.items():
        row = {"family": eps[0].family, "episodes": len(eps),
               "success_rate": round(sum(e.success for e in eps) / len(eps), 4),
               "mean_reward": round(sum(e.reward for e in eps) / len(eps), 4),
               "mean_steps": round(sum(e.steps for e in eps) / len(eps), 2),
               "tool_errors": sum(e.errors for e in eps)}
        if attack:
            row["attack_success_rate"] = round(sum(e.attack_hit for e in eps) / len(eps), 4)
        out["tasks"][task] = row
    if attack:
        hits = sum(e.attack_hit for e in episodes)
        out["utility_under_attack"] = out["success_rate"]
        out["attack_success_rate"] = round(hits / n, 4) if n else 0.0
        out["attack_ci95"] = wilson(hits, n)
    return out
