"""Autonomy as a capability the RSP can evaluate: the strongest learned agent's held-out success, and the
pixel agent's scaling curve (success against demonstrations and against policy size) for forecasting.

`autonomy_capability(summary)` reads the `computer` section of a run's summary (or a bench's) and returns
a plain record; it does not run anything, so the RSP can register it beside its other evals.
"""

from __future__ import annotations

from typing import Any

from scalelab.computer.results import wilson

# Scripted and stand-in agents say nothing about a model's capability: only these count.
CAPABILITY_AGENTS = ("pixel", "api")


def autonomy_capability(computer: dict[str, Any]) -> dict[str, Any]:
    """{score, ci95, agent, episodes, curve: {demos: [[n, rate]], params: [[n, rate]]}} from a computer section.

    `score` is the held-out success rate of the best agent among CAPABILITY_AGENTS, with its Wilson
    interval; None when no such agent was evaluated.
    """
    best = None
    for name, row in computer.get("agents", {}).items():
        if name not in CAPABILITY_AGENTS or row.get("heldout_success_rate") is None:
            continue
        if best is None or row["heldout_success_rate"] > best[1]["heldout_success_rate"]:
            best = (name, row)
    curve = computer.get("pixel_curve", {})
    if best is None:
        return {"score": None, "ci95": None, "agent": None, "episodes": 0, "curve": curve}
    name, row = best
    n = int(row.get("heldout_episodes", 0))
    return {"score": row["heldout_success_rate"], "ci95": wilson(round(row["heldout_success_rate"] * n), n),
            "agent": name, "episodes": n, "curve": curve}
