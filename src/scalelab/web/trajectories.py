"""Computer-use trajectories, read from the folders `scalelab computer run` writes, for step-by-step pages.

A folder holds `results.json` (`computer.results.summarise`) and `trajectories/<task>-<episode>.jsonl` (one line
per step: the action as the agent sent it, the screenshot it acted on, reward, done, error) with
`<task>-<episode>.meta.json` (success, reward, the task's utterance, the final screenshot). Actions use the
screenshot's pixel coordinates, so the page draws each on its screenshot with an SVG overlay of the image's size,
read from the PNG header. An episode is looked up among those listed, never by joining a user's string to a path.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from scalelab.errors import MissingInput

_PNG = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk; None for anything else."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or not head.startswith(_PNG):
        return None
    return struct.unpack(">II", head[16:24])


def results(folder: Path) -> dict[str, Any]:
    path = folder / "results.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def episodes(folder: Path) -> list[dict[str, Any]]:
    """Each episode's summary (name, task, success, reward, steps, utterance), in name order."""
    out = []
    for meta_path in sorted((folder / "trajectories").glob("*.meta.json")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        out.append({"name": meta_path.name[: -len(".meta.json")], "task": meta.get("task"),
                    "success": bool(meta.get("success")), "reward": meta.get("reward"), "steps": meta.get("steps"),
                    "utterance": meta.get("utterance", ""), "attacked": bool(meta.get("attacked"))})
    return out


def episode(folder: Path, name: str) -> dict[str, Any]:
    """One episode with its steps; each step's `screenshot` is relative to the run-served folder `base`."""
    known = {e["name"]: e for e in episodes(folder)}
    if name not in known:
        raise MissingInput(f"no episode {name!r} in {folder.name}; episodes: {', '.join(known) or 'none'}")
    traj = folder / "trajectories"
    meta = json.loads((traj / f"{name}.meta.json").read_text(encoding="utf-8"))
    steps = [json.loads(line) for line in (traj / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
             if line.strip()]
    frames = [{**s, "size": png_size(traj / s["screenshot"]) if s.get("screenshot") else None} for s in steps]
    final = meta.get("final_screenshot")
    return {**known[name], "n_steps": known[name]["steps"], "meta": meta, "steps": frames, "final": final,
            "final_size": png_size(traj / final) if final else None}


def overlay(action: dict[str, Any] | None) -> dict[str, Any]:
    """What to draw for an action: a point (clicks, moves, scrolls), a line (drags), and a caption."""
    if not isinstance(action, dict):
        return {"caption": "no action"}
    kind = str(action.get("action", "?"))
    out: dict[str, Any] = {"kind": kind, "caption": kind}
    point = action.get("coordinate")
    if isinstance(point, list | tuple) and len(point) == 2 and all(isinstance(v, int | float) for v in point):
        out["point"] = [float(point[0]), float(point[1])]
    start = action.get("start_coordinate")
    if isinstance(start, list | tuple) and len(start) == 2 and all(isinstance(v, int | float) for v in start):
        out["start"] = [float(start[0]), float(start[1])]
    if action.get("text"):
        out["caption"] += f" {str(action['text'])!r}"
    if action.get("scroll_direction"):
        out["caption"] += f" {action['scroll_direction']} x{action.get('scroll_amount', 1)}"
    return out
