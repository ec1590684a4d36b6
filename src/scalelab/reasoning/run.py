"""Reasoning training and evaluation as artifacts: every step a HF folder, every evaluation a results folder.

`train_step` runs one training step (`reasoning.steps`) on a model folder into `RUN/reasoning/<task>/<name>/`
and `eval_step` measures a model into `RUN/reasoning/<task>/evals/<name>/`, both through `Context.step`, so a
rerun skips what is done. `run_task` chains the configured steps (each on the previous step's model), runs
GRPO once per seed from the same start, adds the direct-answer baseline where asked, and evaluates each model:
pass@k / majority@k per difficulty and, for scratchpad models, self-verification and check-then-revise.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from scalelab.artifacts import atomic_write_json
from scalelab.config import to_dict
from scalelab.model.lm import load_lm, save_lm
from scalelab.reasoning.compute import pretrain_flops, step_flops, token_flops
from scalelab.reasoning.config import ReasoningConfig
from scalelab.reasoning.evaluate import evaluate_task
from scalelab.reasoning.steps import DIRECT, STEPS, step_config
from scalelab.reasoning.tasks import make_task
from scalelab.reasoning.verify import measure_verification
from scalelab.stage import Context, torch_threads

RESULT = "result.json"


def grpo_name(seed: int, first: int) -> str:
    return "grpo" if seed == first else f"grpo-s{seed}"


def _identity(cfg: ReasoningConfig, task: str, step: str, seed: int) -> dict[str, Any]:
    section = to_dict(step_config(cfg, step))
    section.pop("seeds", None)  # one artifact per seed: the list of seeds is not part of any one run
    return {"task": task, "step": step, "seed": seed, "dials": to_dict(cfg.task), "config": section,
            "max_len": cfg.max_len, "max_new_tokens": cfg.max_new_tokens}


def train_step(ctx: Context, task_name: str, step: str, source: Path, world_dir: Path | None,
               cfg: ReasoningConfig, *, name: str | None = None, seed: int = 0) -> tuple[Path, dict[str, Any]]:
    """Train `step` on the model in `source` into `RUN/reasoning/<task>/<name>/`; (its folder, its result)."""
    name = name or step
    out = ctx.layout.reasoning(task_name, name)
    parents = [Path(source)] + ([Path(world_dir)] if world_dir is not None else [])

    def build(d: Path) -> dict[str, Any]:
        lm = load_lm(source, chat=True)
        task = make_task(task_name, cfg.task, world_dir)
        with torch_threads(cfg.threads):
            res = STEPS[step](lm, task, cfg, seed, ctx.progress)
        res["flops"] = step_flops(lm, cfg.max_len, trained_tokens=res["trained_tokens"],
                                  sampled_tokens=res["sampled_tokens"])
        save_lm(lm, d)
        atomic_write_json(d / RESULT, res)
        return res

    return out, ctx.step(f"reasoning:{task_name}:{name}", "reasoning_model", out,
                         _identity(cfg, task_name, step, seed), parents, build)


def eval_step(ctx: Context, task_name: str, name: str, model_dir: Path, world_dir: Path | None,
              cfg: ReasoningConfig, *, verify: bool = True) -> dict[str, Any]:
    """pass@k / majority@k per difficulty of one model (+ self-verification when `verify`), as an artifact."""
    out = ctx.layout.reasoning_eval(task_name, name)
    parents = [Path(model_dir)] + ([Path(world_dir)] if world_dir is not None else [])
    identity = {"task": task_name, "dials": to_dict(cfg.task), "eval": to_dict(cfg.eval), "verify": verify,
                "max_new_tokens": cfg.max_new_tokens, "seed": cfg.seed}

    def build(d: Path) -> dict[str, Any]:
        lm = load_lm(model_dir, chat=True)
        task = make_task(task_name, cfg.task, world_dir)
        with torch_threads(cfg.threads):
            precision = lm.use_precision(cfg.eval.dtype, rows=cfg.eval.batch_size)
            res = evaluate_task(lm, task, cfg.eval, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed,
                                progress=ctx.progress)
            if verify:
                problems = task.mixed("heldout", cfg.eval.verify_problems, cfg.seed + 1)
                res["self_verification"] = measure_verification(
                    lm, task, problems, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed,
                    batch_size=cfg.eval.batch_size)
        res["forward_flops_per_token"] = token_flops(lm, cfg.max_len)[1]
        res["precision"] = precision.to_json()
        atomic_write_json(d / "results.json", res)
        return res

    return ctx.step(f"reasoning-eval:{task_name}:{name}", "reasoning_eval", out, identity, parents, build)


def run_task(ctx: Context, task_name: str, model_dir: Path, world_dir: Path | None,
             cfg: ReasoningConfig) -> dict[str, Any]:
    """The configured steps on one task from `model_dir`, each trained and evaluated; per model its result."""
    models: dict[str, dict[str, Any]] = {}
    base_flops = pretrain_flops(model_dir) or 0.0
    source, spent = Path(model_dir), base_flops
    for step in cfg.steps:
        seeds = cfg.grpo.seeds if step == "grpo" else [cfg.seed]
        chained = None
        for seed in seeds:
            name = grpo_name(seed, seeds[0]) if step == "grpo" else step
            out, res = train_step(ctx, task_name, step, source, world_dir, cfg, name=name, seed=seed)
            ev = eval_step(ctx, task_name, name, out, world_dir, cfg, verify=True)
            models[name] = {"step": step, "seed": seed, "train": res, "eval": ev, "from": source.name,
                            "total_train_flops": spent + res["flops"]}
            chained = chained or (out, spent + res["flops"])
        source, spent = chained  # type: ignore[misc]
    if task_name in cfg.direct_baseline:
        out, res = train_step(ctx, task_name, DIRECT, Path(model_dir), world_dir, cfg, seed=cfg.seed)
        ev = eval_step(ctx, task_name, DIRECT, out, world_dir, cfg, verify=False)
        models[DIRECT] = {"step": DIRECT, "seed": cfg.seed, "train": res, "eval": ev, "from": Path(model_dir).name,
                          "total_train_flops": base_flops + res["flops"]}
    return models


def sft_only(cfg: ReasoningConfig) -> ReasoningConfig:
    """The config of the compute-trade rungs: SFT alone, no direct baseline, no GRPO seeds."""
    return dataclasses.replace(cfg, steps=["sft"], direct_baseline=[])
