"""`scalelab computer ...`: list the tasks, run an agent, train the pixel agent, benchmark every agent."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from scalelab.computer.config import ComputerConfig
from scalelab.computer.evaluate import run_eval
from scalelab.computer.sandbox import SandboxedComputer
from scalelab.computer.suite import DESKTOP_TASKS, DROPPED, SUITE, resolve

app = typer.Typer(help="Computer use: MiniWoB++ and a desktop, in a sandbox, driven through the computer tool.",
                  no_args_is_help=True)

Out = Annotated[Path, typer.Option(help="output folder")]
Tasks = Annotated[str, typer.Option(help="suite, smoke, desktop, or task names separated by commas")]
Sandbox = Annotated[bool, typer.Option(help="run the computer under bubblewrap (no network, read-only root)")]


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected integers separated by commas, got {text!r}") from None


@app.command()
def tasks() -> None:
    """The task suite, with families and counts (and the tasks dropped, with the reason)."""
    counts = Counter(t.family for t in SUITE)
    typer.echo(f"MiniWoB++ suite: {len(SUITE)} tasks")
    for family in counts:
        names = ", ".join(t.name for t in SUITE if t.family == family)
        typer.echo(f"  {family:11s} {counts[family]:2d}  {names}")
    typer.echo(f"desktop tasks (--backend desktop): {', '.join(t.name for t in DESKTOP_TASKS)}")
    for name, why in DROPPED.items():
        typer.echo(f"dropped {name}: {why}")


@app.command()
def run(agent: Annotated[str, typer.Option(help="oracle, random, api, api-openai, api-stub, or a pixel agent's "
                                                "folder")],
        out: Out, tasks: Tasks = "suite", episodes: Annotated[int, typer.Option(min=1)] = 5,
        split: Annotated[str, typer.Option(help="train or heldout")] = "train",
        attack: Annotated[str, typer.Option(help="on: every episode is the task's prompt-injected variant")] = "off",
        defence: Annotated[bool, typer.Option(help="turn the injection guard on")] = False,
        backend: Annotated[str, typer.Option(help="miniwob (headless Chromium) or desktop (Xvfb)")] = "miniwob",
        max_steps: Annotated[int, typer.Option(min=1)] = 12, sandbox: Sandbox = True,
        base_url: Annotated[str | None, typer.Option(help="API base URL for the api agents")] = None,
        model: Annotated[str | None, typer.Option(help="model name for the api agents")] = None) -> None:
    """Run one agent; write OUT/results.json, OUT/trajectories/<task>-<episode>.jsonl and OUT/index.html."""
    if attack not in ("on", "off"):
        raise typer.BadParameter(f"--attack is on or off, got {attack!r}")
    r = run_eval(agent, resolve(tasks, backend), split=split, episodes=episodes, out_dir=out, attack=attack == "on",
                 defence=defence, backend=backend, sandbox=sandbox, max_steps=max_steps, base_url=base_url,
                 model=model, log=typer.echo)
    typer.echo(f"success {r['success_rate']:.3f} (95% CI {r['ci95'][0]:.3f}-{r['ci95'][1]:.3f}) over "
               f"{r['episodes']} episodes, {r['steps_per_second']} steps/s"
               + (f"; attack success {r['attack_success_rate']:.3f}" if r["attack"] else "") + f" -> {out}")


@app.command()
def train(out: Out, agent: Annotated[str, typer.Option(help="only pixel is trainable")] = "pixel",
          tasks: Tasks = "suite", demos: Annotated[int, typer.Option(min=1, help="oracle demos per task")] = 10,
          width: Annotated[int, typer.Option(min=4, help="policy width (conv channels)")] = 32,
          seconds: Annotated[float, typer.Option(min=1, help="training budget, wall-clock seconds")] = 600.0,
          sandbox: Sandbox = True) -> None:
    """Behaviour cloning of the pixel agent on oracle demonstrations (train seeds)."""
    if agent != "pixel":
        raise typer.BadParameter(f"only the pixel agent is trained, got {agent!r}")
    from scalelab.computer.stage import train_pixel_agent

    cfg = ComputerConfig(tasks=tasks, demos_per_task=demos, pixel_width=width, pixel_seconds=seconds, sandbox=sandbox)
    with SandboxedComputer("miniwob", cfg.max_steps, sandbox=sandbox) as comp:
        rec = train_pixel_agent(comp, resolve(tasks), out, cfg, typer.echo, demos, width, seconds, {})
    typer.echo(json.dumps(rec))


@app.command()
def bench(out: Out, episodes: Annotated[int, typer.Option(min=1)] = 5, pixel_seconds: float = 600.0,
          curve_seconds: float = 120.0, demos: int = 10,
          demo_curve: Annotated[str, typer.Option(help="demos per task at each curve point")] = "1,3",
          width_curve: Annotated[str, typer.Option(help="policy width at each curve point")] = "8,16",
          sandbox: Sandbox = True) -> None:
    """Every agent side by side on the suite (train, held-out, attacked, defended), the pixel agent's curves,
    the plot and the report section (OUT/computer.md)."""
    from scalelab.computer.stage import run_computer, section_computer

    cfg = ComputerConfig(episodes=episodes, pixel_seconds=pixel_seconds, curve_seconds=curve_seconds,
                         demos_per_task=demos, demo_curve=_ints(demo_curve), width_curve=_ints(width_curve),
                         sandbox=sandbox)
    section = run_computer(out, cfg, log=typer.echo)
    (out / "computer.md").write_text(section_computer({"computer": section}, out))
    typer.echo(f"wrote {out / 'computer.md'} and {out / 'computer.json'}")
