"""The `computer` stage of `scalelab run` (and `scalelab computer bench`): every agent on the suite, side by side.

Order: start one sandboxed computer; collect oracle demonstrations on train seeds and train the pixel agent
(behaviour cloning); evaluate each agent on train and held-out seeds, then on the held-out seeds' attacked
variants, with and without the injection guard; for the bench, also retrain the pixel agent along a
demonstrations curve and a policy-size curve. Returns `summary.json["computer"]`; `section_computer`
renders it with a plot.
"""

from __future__ import annotations

import json
import os
import platform
import queue
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from scalelab.computer.agents.bc import collect_demos, train_pixel
from scalelab.computer.agents.pixel import PixelPolicy
from scalelab.computer.config import ComputerConfig
from scalelab.computer.evaluate import run_eval
from scalelab.computer.sandbox import SandboxedComputer
from scalelab.computer.suite import DROPPED, resolve
from scalelab.stage import Context, Stage, Summary

Log = Callable[[str], None]


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _agent_row(ev: dict[str, dict[str, Any]]) -> dict[str, Any]:
    train, held = ev.get("train"), ev.get("heldout")
    attacked, defended = ev.get("attack"), ev.get("defence")
    return {
        "success_rate": train["success_rate"] if train else None, "ci95": train["ci95"] if train else None,
        "heldout_success_rate": held["success_rate"], "heldout_ci95": held["ci95"],
        "heldout_episodes": held["episodes"], "steps_per_second": held["steps_per_second"],
        "utility_under_attack": attacked["utility_under_attack"] if attacked else None,
        "attack_success_rate": attacked["attack_success_rate"] if attacked else None,
        "defended": ({"utility_under_attack": defended["utility_under_attack"],
                      "attack_success_rate": defended["attack_success_rate"]} if defended else None),
        "families": held["families"],
    }


def train_pixel_agent(comp: Any, tasks: list[Any], out: Path, cfg: ComputerConfig, log: Log,
                      demos: int, width: int, seconds: float, cache: dict[int, Any]) -> dict[str, Any]:
    """Collect demonstrations (once per count: every width's grid is the same), then behaviour-clone the
    pixel agent into `out`; returns the training record."""
    if demos not in cache:
        t0 = time.perf_counter()
        data, _ = collect_demos(comp, tasks, demos, PixelPolicy(width).grid)
        cache[demos] = (data, round(time.perf_counter() - t0, 1))
    data, collect_s = cache[demos]
    log(f"[computer] pixel: {len(data)} steps from {data.episodes} oracle episodes ({demos}/task), width {width}, "
        f"{seconds:.0f}s of training")
    rec = train_pixel(data, out, width=width, seconds=seconds, batch=cfg.pixel_batch, seed=cfg.seed)
    return {**rec, "demos_per_task": demos, "collect_seconds": collect_s}


def run_computer(out_dir: Path, cfg: ComputerConfig, log: Log = print) -> dict[str, Any]:
    """Run the stage into out_dir; return the summary section (also written to out_dir/computer.json)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = resolve(cfg.tasks, cfg.backend)
    t_start = time.perf_counter()
    load0 = os.getloadavg()[0]
    comp = SandboxedComputer(cfg.backend, cfg.max_steps, sandbox=cfg.sandbox)
    cache: dict[int, Any] = {}
    evals: dict[str, dict[str, dict[str, Any]]] = {}
    pixel: dict[str, Any] | None = None
    curve: dict[str, list[list[float]]] = {}
    try:
        if "pixel" in cfg.agents:
            pixel = train_pixel_agent(comp, tasks, out_dir / "pixel", cfg, log, cfg.demos_per_task, cfg.pixel_width,
                                      cfg.pixel_seconds, cache)
        jobs: list[tuple[str, str, dict[str, Any]]] = []
        for name in cfg.agents:
            jobs.append((name, "heldout", {"out_dir": out_dir / name}))
            if cfg.train_split_agents is None or name in cfg.train_split_agents:
                jobs.append((name, "train", {}))
            if cfg.attack and (cfg.attack_agents is None or name in cfg.attack_agents):
                jobs.append((name, "attack", {"attack": True}))
                if cfg.defence and (cfg.defence_agents is None or name in cfg.defence_agents):
                    jobs.append((name, "defence", {"attack": True, "defence": True}))
        evals = _evaluate(jobs, comp, tasks, out_dir, cfg, log)
        curve = _curves(comp, tasks, out_dir, cfg, log, cache)
    finally:
        comp.close()
    section = {
        "tasks": len(tasks), "task_set": cfg.tasks, "backend": cfg.backend, "episodes": cfg.episodes,
        "sandboxed": cfg.sandbox, "dropped": DROPPED, "cpu": _cpu(), "load_average_start": round(load0, 2),
        "load_average_end": round(os.getloadavg()[0], 2), "seconds": round(time.perf_counter() - t_start, 1),
        "agents": {name: _agent_row(ev) for name, ev in evals.items()}, "pixel": pixel, "pixel_curve": curve,
        "config": asdict(cfg),
    }
    (out_dir / "computer.json").write_text(json.dumps(section, indent=2))
    return section


def _evaluate(jobs: list[tuple[str, str, dict[str, Any]]], comp: Any, tasks: list[Any], out_dir: Path,
              cfg: ComputerConfig, log: Log) -> dict[str, dict[str, dict[str, Any]]]:
    """Every (agent, run) job, on `cfg.browsers` sandboxed computers at once. A step is mostly waiting on the
    browser (a frame per mouse move, a WebDriver round trip per command), so two browsers on two cores finish
    the same episodes ~1.25x sooner; each episode runs alone in its browser, so results do not change."""
    free: queue.Queue[Any] = queue.Queue()
    free.put(comp)
    extra = [SandboxedComputer(cfg.backend, cfg.max_steps, sandbox=cfg.sandbox) for _ in range(cfg.browsers - 1)]
    for c in extra:
        free.put(c)

    def run(job: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
        name, key, kw = job
        computer = free.get()
        try:
            r = run_eval(str(out_dir / "pixel") if name == "pixel" else name, tasks,
                         split="train" if key == "train" else "heldout", episodes=cfg.episodes, computer=computer,
                         backend=cfg.backend, max_steps=cfg.max_steps, seed=cfg.seed, max_images=cfg.max_images,
                         **kw)
        finally:
            free.put(computer)
        log(f"[computer] {name:8s} {key:8s} success {r['success_rate']:.3f}"
            + (f"  attack {r['attack_success_rate']:.3f}" if r.get("attack") else ""))
        return r

    evals: dict[str, dict[str, dict[str, Any]]] = {}
    try:
        with ThreadPoolExecutor(max(1, cfg.browsers)) as pool:
            for (name, key, _), r in zip(jobs, pool.map(run, jobs), strict=True):
                evals.setdefault(name, {})[key] = r
    finally:
        for c in extra:
            c.close()
    return evals


def _curves(comp: Any, tasks: list[Any], out_dir: Path, cfg: ComputerConfig, log: Log,
            cache: dict[int, Any]) -> dict[str, list[list[float]]]:
    """Held-out success of the pixel agent against demonstrations per task and against parameters, every
    point trained for the same `curve_seconds` (a point on both axes is trained once)."""
    curve: dict[str, list[list[float]]] = {"demos": [], "params": []}
    points = [("demos", d, cfg.pixel_width) for d in cfg.demo_curve]
    points += [("params", cfg.demos_per_task, w) for w in cfg.width_curve]
    done: dict[tuple[int, int], tuple[dict[str, Any], float]] = {}
    for axis, demos, width in points:
        if (demos, width) not in done:
            d = out_dir / "curve" / f"pixel-d{demos}-w{width}"
            rec = train_pixel_agent(comp, tasks, d, cfg, log, demos, width, cfg.curve_seconds, cache)
            r = run_eval(str(d), tasks, split="heldout", episodes=cfg.episodes, computer=comp, backend=cfg.backend,
                         max_steps=cfg.max_steps)
            done[(demos, width)] = (rec, r["success_rate"])
        rec, rate = done[(demos, width)]
        x = demos if axis == "demos" else rec["params"]
        curve[axis].append([x, rate])
        log(f"[computer] curve {axis}={x}: held-out success {rate:.3f}")
    return curve


def section_computer(summary: dict[str, Any], out: Path) -> str:
    """Markdown report section for summary["computer"], with a plot written into `out`."""
    from scalelab.computer.report import render_section

    return render_section(summary, out)


def run_computer_stage(ctx: Context, summary: Summary) -> dict[str, Any]:
    """The `computer` stage of `scalelab run`: the suite with every agent, skipped when done for this config."""
    cfg: ComputerConfig = ctx.cfg.computer
    return ctx.step("computer", "computer_use", ctx.layout.computer, cfg, [],
                    lambda d: run_computer(d, cfg, ctx.log))


STAGE = Stage("computer", run_computer_stage, section_computer)
