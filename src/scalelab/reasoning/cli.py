"""`scalelab reason sft|star|grpo|eval` and `scalelab synth`: the reasoning and synthetic-data commands.

The commands read the run config (preset → YAML → `--set`) through the loader the top-level CLI hands in
(`make_reason_app(load, guard)`, `make_synth(load, guard)`): this package sits below the presets that build the
config, so it takes the loader rather than importing it. Every command writes its artifacts through
`Context.step` into `--out` (a run-folder layout), so rerunning one resumes it. Heavy modules load inside the
commands, so `scalelab --help` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from scalelab.errors import InputError, MissingInput

Loader = Callable[[str | None, list[str] | None, Path | None], Any]
Guard = Callable[[Callable[[], Any]], Any]

ModelOpt = Annotated[Path, typer.Option("--model", "-m", help="HF causal LM folder with a chat template")]
TaskOpt = Annotated[str, typer.Option("--task", "-t", help="arithmetic | multihop | countdown")]
WorldOpt = Annotated[Path | None, typer.Option("--world", help="world directory (default: the model's run's)")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="output directory (a run-folder layout)")]
PresetOpt = Annotated[str | None, typer.Option("--preset", "-p", help="smoke | tiny | gpu")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="override a config key: section.key=value")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML file of config keys")]


def _world(model: Path, world: Path | None, task: str) -> Path | None:
    from scalelab.layout import RunLayout

    if world is not None:
        return world
    run = RunLayout.of(model)
    if run is not None:
        return run.world
    if task == "multihop":
        raise MissingInput(f"cannot find the world of {model} (no world/evals above it); pass --world")
    return None


def _ints(text: str, flag: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{flag} {text!r} must be integers separated by commas, e.g. 1,4,16,64") from None
    if not values or min(values) < 0:
        raise InputError(f"{flag} {text!r} must list one or more non-negative integers")
    return values


def _brief(ev: dict[str, Any]) -> dict[str, Any]:
    keys = ("greedy", "pass_at_k", "majority_at_k", "heldout_difficulty_greedy", "heldout_difficulty_pass_at_1")
    out = {k: ev[k] for k in keys}
    out["by_difficulty"] = {d: {"greedy": v["greedy"], "pass_at_k": v["pass_at_k"]} for d, v in
                            ev["by_difficulty"].items()}
    if ev.get("self_verification"):
        out["self_verification"] = ev["self_verification"]
    return out


def make_reason_app(load: Loader, guard: Guard) -> typer.Typer:
    """The `reason` command group, reading configs with `load` and reporting user errors with `guard`."""
    app = typer.Typer(no_args_is_help=True,
                      help="Reasoning with verifiable rewards: SFT on world-written traces, STaR, GRPO; pass@k.")

    def train(step: str, model: Path, task: str, world: Path | None, out: Path, preset: str | None,
              overrides: list[str], config: Path | None) -> None:
        from scalelab.reasoning.run import eval_step, grpo_name, train_step
        from scalelab.reasoning.stage import grpo_over_seeds
        from scalelab.stage import Context

        cfg = load(preset, overrides, config)
        rcfg = cfg.reasoning
        ctx = Context.standalone(cfg, out, log=typer.echo)
        world_dir = _world(model, world, task)
        seeds = rcfg.grpo.seeds if step == "grpo" else [rcfg.seed]
        models: dict[str, Any] = {}
        if step == "grpo":  # GRPO's gain is read against where it started
            models[model.name] = {"step": "start", "seed": None,
                                  "eval": eval_step(ctx, task, "start", model, world_dir, rcfg)}
        for seed in seeds:
            name = grpo_name(seed, seeds[0]) if step == "grpo" else step
            folder, res = train_step(ctx, task, step, model, world_dir, rcfg, name=name, seed=seed)
            ev = eval_step(ctx, task, name, folder, world_dir, rcfg, verify=step != "sft-direct")
            models[name] = {"step": step, "seed": seed, "from": model.name, "eval": ev}
            typer.echo(f"{name} → {folder} ({res['stage_seconds']} s, {res['flops']:.3g} FLOPs)")
            typer.echo(json.dumps(_brief(ev), indent=1))
        if step == "grpo":
            typer.echo(json.dumps({"grpo_over_seeds": grpo_over_seeds(models, [step])}, indent=1))

    @app.command("sft")
    def sft(model: ModelOpt, task: TaskOpt, world: WorldOpt = None, out: OutOpt = Path("out/reason"),
            direct: Annotated[bool, typer.Option("--direct", help="the direct-answer baseline: answers alone")] = False,
            preset: PresetOpt = None, set_: SetOpt = None, config: ConfigOpt = None) -> None:
        """Supervised fine-tuning on the world's traces (scratchpad, hop chain, search; some with a mistake
        caught and corrected) into OUT/reasoning/<task>/sft, then pass@k on held-out problems."""
        guard(lambda: train("sft-direct" if direct else "sft", model, task, world, out, preset, set_ or [], config))

    @app.command("star")
    def star(model: ModelOpt, task: TaskOpt, world: WorldOpt = None, out: OutOpt = Path("out/reason"),
             preset: PresetOpt = None, set_: SetOpt = None, config: ConfigOpt = None) -> None:
        """STaR: fine-tune on the model's own verified samples, iterated (reasoning.star.*)."""
        guard(lambda: train("star", model, task, world, out, preset, set_ or [], config))

    @app.command("grpo")
    def grpo(model: ModelOpt, task: TaskOpt, world: WorldOpt = None, out: OutOpt = Path("out/reason"),
             seeds: Annotated[str | None, typer.Option(help="one run per seed, e.g. 0,1,2")] = None,
             preset: PresetOpt = None, set_: SetOpt = None, config: ConfigOpt = None) -> None:
        """GRPO with the task's checker as reward (reasoning.grpo.*: group size, clip, KL, Dr. GRPO / DAPO
        options); reports pass@1 over seeds against the starting model's."""
        def body() -> None:
            sugar = [f"reasoning.grpo.seeds=[{','.join(map(str, _ints(seeds, '--seeds')))}]"] if seeds else []
            train("grpo", model, task, world, out, preset, [*(set_ or []), *sugar], config)
        guard(body)

    @app.command("eval")
    def evaluate(model: ModelOpt, task: TaskOpt, world: WorldOpt = None, out: OutOpt = Path("out/reason-eval"),
                 k: Annotated[str, typer.Option("--k", help="sample counts, e.g. 1,4,16,64")] = "1,4,16,64",
                 verify: Annotated[bool, typer.Option(help="also measure self-verification")] = True,
                 preset: PresetOpt = None, set_: SetOpt = None, config: ConfigOpt = None) -> None:
        """pass@k (unbiased estimator) and majority@k per difficulty, the held-out harder difficulty included."""
        def body() -> None:
            from scalelab.layout import RunLayout
            from scalelab.reasoning.run import eval_step
            from scalelab.stage import Context

            ks = _ints(k, "--k")
            cfg = load(preset, [*(set_ or []), f"reasoning.eval.ks=[{','.join(map(str, ks))}]"], config)
            ctx = Context.standalone(cfg, out, log=typer.echo)
            ev = eval_step(ctx, task, RunLayout.model_label(model), model, _world(model, world, task), cfg.reasoning,
                           verify=verify)
            typer.echo(json.dumps(_brief(ev), indent=1))
        guard(body)

    return app


def make_synth(load: Loader, guard: Guard) -> Callable[..., None]:
    """The `synth` command: synthetic data, verified and not, and its recursion."""

    def synth(model: ModelOpt, world: Annotated[Path, typer.Option("--world", help="world directory")],
              out: OutOpt = Path("out/synth"), preset: PresetOpt = None, set_: SetOpt = None,
              config: ConfigOpt = None) -> None:
        """MODEL writes documents about WORLD; arms at equal tokens (repeat, as written, verified by the world's
        checker, fresh) and the recursion (replace vs accumulate) train reasoning.synthetic.depth models in
        OUT/synthetic/ (the world's tokenizer and shards are built in OUT first)."""
        def body() -> None:
            from scalelab.data.stage import SHARDS, TOKENIZER
            from scalelab.layout import RunLayout
            from scalelab.scaling.synthetic import run_synthetic
            from scalelab.stage import Context
            from scalelab.world.reader import WorldDir

            cfg = load(preset, set_ or [], config)
            if not WorldDir.is_world(world):
                raise MissingInput(f"{world} is not a world directory (no train.jsonl/val.jsonl); build one with "
                                   "`scalelab world --out DIR`")
            layout = RunLayout(out)
            out.mkdir(parents=True, exist_ok=True)
            if not layout.world.exists():  # the world is read where it is, never rebuilt into OUT
                layout.world.symlink_to(world.resolve(), target_is_directory=True)
            elif layout.world.resolve() != world.resolve():
                raise InputError(f"{layout.world} already holds another world; pass another --out")
            ctx = Context.standalone(cfg, out, log=typer.echo)
            summary: dict[str, Any] = {"world": None}
            for stage in (TOKENIZER, SHARDS):
                summary[stage.name] = stage.run(ctx, summary)
            res = run_synthetic(ctx, model)
            typer.echo(json.dumps({k: res[k] for k in ("arms", "recursion", "real_text", "seconds")}, indent=1))
        guard(body)

    return synth
