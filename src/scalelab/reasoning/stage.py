"""The `reasoning` stage of `scalelab run`: past the data wall, and reasoning trained on checked answers.

Three parts (`reasoning.experiments`), each recorded in `summary.json["reasoning"]`:

- `data_constrained`: repeated vs fresh data at the smallest rung (`scaling.data_constrained`): R* with its
  interval, and per epoch count the loss and knowledge gap of both arms;
- `synthetic`: real data plus model-written data, as is or verified, and the recursion over generations
  (`scaling.synthetic`), the largest rung writing: per arm and generation loss, knowledge gap, distinct n-grams;
- `tasks`: every task trained on `reasoning.depth` through the configured steps (`reasoning.run`): per task and
  step pass@k keyed by k, majority@k, the held-out harder difficulty's pass@1 and self-verification agreement;
  GRPO's seeds summarised with an interval; with `compute_depths`, the train-vs-inference-compute trade.

Each part records the scale it ran at (depth, parameters, tokens); their fuller versions are `scalelab scale
data-constrained`, `scalelab synth` and `scalelab reason`. `seconds` is the stage's time with the recorded
seconds of steps an earlier run made added back (`reasoning.timing`), so a resumed run does not report the
seconds it took to skip them; `timing` holds the parts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from scalelab.config import ConfigError
from scalelab.layout import rung_name
from scalelab.reasoning.compute import compute_trade, pretrain_flops
from scalelab.reasoning.config import ReasoningConfig
from scalelab.reasoning.passk import mean_interval
from scalelab.reasoning.plots import plot_compute_trade, plot_pass_at_k
from scalelab.reasoning.report import section_reasoning
from scalelab.reasoning.run import eval_step, run_task, sft_only, train_step
from scalelab.reasoning.timing import TimedContext, timing
from scalelab.scaling.data_constrained import run_data_constrained
from scalelab.scaling.synthetic import run_synthetic
from scalelab.stage import Context, Stage, Summary, torch_threads

EXPERIMENTS = ("tasks", "data_constrained", "synthetic")


def _rung(ctx: Context, depth: int, key: str) -> Path:
    depth = depth or max(ctx.cfg.ladder)
    if depth not in ctx.cfg.ladder:
        raise ConfigError(f"reasoning.{key}={depth} is not on the ladder {ctx.cfg.ladder}; pick one of them or 0")
    return ctx.layout.model(rung_name(depth))


def task_entry(model: dict[str, Any]) -> dict[str, Any]:
    """One trained model's line in the summary: the keys the issue names, then what explains them."""
    ev = model["eval"]
    sv = ev.get("self_verification") or {}
    return {"pass_at_k": ev["pass_at_k"], "majority_at_k": ev["majority_at_k"],
            "heldout_difficulty_pass_at_1": ev["heldout_difficulty_pass_at_1"],
            "self_verification_agreement": sv.get("agreement"),
            "greedy": ev["greedy"], "heldout_difficulty_greedy": ev["heldout_difficulty_greedy"],
            "pass_at_k_ci": ev["pass_at_k_ci"], "malformed": ev["malformed"],
            "by_difficulty": {d: {"greedy": v["greedy"], "pass_at_1": v["pass_at_k"].get("1"), "n": v["n_problems"]}
                              for d, v in ev["by_difficulty"].items()},
            "self_verification": sv or None, "from": model["from"], "seed": model["seed"],
            "train_flops": model["train"]["flops"], "total_train_flops": model["total_train_flops"],
            "train_seconds": model["train"].get("stage_seconds")}


def grpo_over_seeds(models: dict[str, dict[str, Any]], steps: list[str]) -> dict[str, Any] | None:
    """pass@1 of every GRPO seed against the model GRPO started from, with t intervals over seeds."""
    runs = [m for m in models.values() if m["step"] == "grpo"]
    if not runs:
        return None
    start = models[runs[0]["from"]]["eval"]["pass_at_k"]["1"] if runs[0]["from"] in models else None
    p1 = [m["eval"]["pass_at_k"]["1"] for m in runs]
    mean, lo, hi = mean_interval(p1)
    out = {"seeds": [m["seed"] for m in runs], "pass_at_1": p1, "mean": mean, "ci": [lo, hi],
           "start": runs[0]["from"], "start_pass_at_1": start}
    if start is not None:
        d_mean, d_lo, d_hi = mean_interval([x - start for x in p1])
        out.update(delta_mean=d_mean, delta_ci=[d_lo, d_hi])
    return out


def _trade(ctx: Context, cfg: ReasoningConfig, task: str, main: dict[str, Any]) -> dict[str, Any]:
    """SFT the first task on each of `compute_depths` (the main rung's SFT reused) and weigh the compute."""
    main_depth = cfg.depth or max(ctx.cfg.ladder)
    rungs = []
    for depth in sorted({*cfg.compute_depths, main_depth}):
        if depth == main_depth and "sft" in main:
            ev, flops = main["sft"]["eval"], main["sft"]["total_train_flops"]
        else:
            source = _rung(ctx, depth, "compute_depths")
            name = f"sft-{rung_name(depth)}"
            out, res = train_step(ctx, task, "sft", source, ctx.layout.world, sft_only(cfg), name=name, seed=cfg.seed)
            ev = eval_step(ctx, task, name, out, ctx.layout.world, cfg, verify=False)
            flops = (pretrain_flops(source) or 0.0) + res["flops"]
        train_diffs = ev["difficulties"]["train"]
        reply = sum(ev["by_difficulty"][str(d)]["mean_reply_tokens"] for d in train_diffs) / len(train_diffs)
        rungs.append({"name": rung_name(depth), "train_flops": flops, "greedy": ev["greedy"],
                      "forward_flops_per_token": ev["forward_flops_per_token"], "reply_tokens": reply,
                      "pass_at_k": ev["pass_at_k"], "majority_at_k": ev["majority_at_k"]})
    return {"task": task, **compute_trade(rungs)}


def run_tasks(ctx: Context, cfg: ReasoningConfig) -> dict[str, Any]:
    model_dir = _rung(ctx, cfg.depth, "depth")
    tasks, plots, seeds = {}, [], {}
    for task in cfg.tasks:
        models = run_task(ctx, task, model_dir, ctx.layout.world, cfg)
        tasks[task] = {name: task_entry(m) for name, m in models.items()}
        over = grpo_over_seeds(models, cfg.steps)
        if over:
            seeds[task] = over
        png = plot_pass_at_k(task, {n: m["eval"] for n, m in models.items()},
                             ctx.layout.reasoning_root / f"pass_at_k_{task}.png")
        plots += [ctx.layout.relative(png)] if png else []
        if task == cfg.tasks[0] and cfg.compute_depths:
            trade = _trade(ctx, cfg, task, models)
            png = plot_compute_trade(trade, ctx.layout.reasoning_root / "compute_trade.png")
            plots += [ctx.layout.relative(png)] if png else []
    out: dict[str, Any] = {"tasks": tasks, "grpo_seeds": seeds, "plots": plots,
                           "scale": {"depth": cfg.depth or max(ctx.cfg.ladder), "model": ctx.layout.relative(model_dir),
                                     "problems_per_difficulty": cfg.eval.problems, "samples": max(cfg.eval.ks)}}
    if cfg.compute_depths:
        out["compute_trade"] = trade
    return out


def run_reasoning(ctx: Context, summary: Summary) -> dict[str, Any] | None:
    """The stage: `summary.json["reasoning"]` (see the module docstring)."""
    cfg: ReasoningConfig = ctx.cfg.reasoning
    if ctx.cfg.corpus != "world":
        ctx.log("[reasoning] skipped: its tasks, checkers and knowledge gaps read the world (corpus=world)")
        return None
    unknown = sorted(set(cfg.experiments) - set(EXPERIMENTS))
    if unknown:
        raise ConfigError(f"reasoning.experiments names {unknown}; choose from {', '.join(EXPERIMENTS)}")
    t0, timed = time.perf_counter(), TimedContext.around(ctx, since=time.time())
    try:
        with torch_threads(cfg.threads):
            out = _experiments(timed, cfg)
    finally:
        timed.hand_back(ctx)
    out["timing"] = timing(timed, time.perf_counter() - t0)
    out["seconds"] = out["timing"]["seconds"]
    return out


def _experiments(ctx: Context, cfg: ReasoningConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "data_constrained" in cfg.experiments:
        dc = run_data_constrained(ctx)
        out["data_constrained"] = {k: dc[k] for k in ("r_star", "r_star_ci", "epochs", "unique_tokens", "depth",
                                                      "params", "batch_size", "plots", "seconds")}
        out["data_constrained"].update(fit=dc["fit"] and {k: v for k, v in dc["fit"].items() if k != "repeated"})
    if "synthetic" in cfg.experiments:
        writer = _rung(ctx, cfg.synthetic.writer_depth, "synthetic.writer_depth")
        syn = run_synthetic(ctx, writer)
        out["synthetic"] = {k: syn[k] for k in ("arms", "gap", "recursion", "real_text", "depth", "unique_tokens",
                                                "synthetic_tokens", "steps", "plots", "seconds")}
        out["synthetic"]["writer"] = ctx.layout.relative(writer)
    if "tasks" in cfg.experiments:
        out.update(run_tasks(ctx, cfg))
    return out


STAGE = Stage("reasoning", run_reasoning, section_reasoning)
