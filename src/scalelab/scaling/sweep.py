"""Run a planned IsoFLOP sweep: every run trained by `train.pretrain`, then scored by the base evals.

Each planned run is its own artifact, `DIR/scaling/runs/<name>` (a `pretrain` output: `final/`,
`result.json`, `metrics.jsonl`), and its eval scores `DIR/scaling/evals/<name>`. Both go through
`Context.step`, so a finished run is reused, never retrained, and a half-trained one resumes from its
checkpoint. A run's identity is its model config and the training config it trains with, so changing
the plan retrains only the runs whose size, tokens, batch or learning rate changed.

Token range. `max_tokens` is `max_epochs` passes over the training split (unless set): on a corpus as
small as the tiny world the compute-optimal data of even the smallest sizes exceeds one epoch, and
Muennighoff et al. (2023, "Scaling Data-Constrained Language Models") find up to ~4 epochs of repeated
data worth nearly as much as fresh data, so the sweep may repeat the corpus up to 4 times by default.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from scalelab import artifacts
from scalelab.config import ConfigError, to_dict
from scalelab.evals.base import evaluate_base_model
from scalelab.evals.config import EvalConfig
from scalelab.layout import FINAL, RunLayout
from scalelab.model.config import ModelConfig
from scalelab.model.device import pick_device
from scalelab.registry import Registry
from scalelab.scaling.config import ScalingConfig
from scalelab.scaling.planner import PlannedRun, SweepPlan, SweepSpec, plan_sweep
from scalelab.stage import Context
from scalelab.train.config import TrainConfig
from scalelab.train.loop import pretrain

if TYPE_CHECKING:
    from scalelab.presets import RunConfig


EVALS_PER_RUN = 8  # validation points on a sweep run's curve (see run_train_config)
# Training-config fields that change how a run is watched, not what it computes: not part of its identity.
_WATCH_ONLY = ("progress", "log_every")


def sweep_spec(scfg: ScalingConfig, train_tokens: int) -> SweepSpec:
    """The planner's spec from the scaling config; `train_tokens` is the training split's size."""
    if train_tokens <= 0:
        raise ConfigError(f"the training split has {train_tokens} tokens; build the shards before the sweep")
    if scfg.max_epochs <= 0:
        raise ConfigError(f"scaling.max_epochs={scfg.max_epochs} must be > 0 (passes over the training split)")
    max_tokens = scfg.max_tokens or int(scfg.max_epochs * train_tokens)
    return SweepSpec(
        depths=tuple(scfg.depths), n_budgets=scfg.n_budgets, sizes_per_budget=scfg.sizes_per_budget,
        budget_spacing=scfg.budget_spacing, min_tokens=scfg.min_tokens, max_tokens=max_tokens,
        holdout_factor=scfg.holdout_factor, holdout_sizes=scfg.holdout_sizes,
        tokens_per_param_prior=scfg.tokens_per_param_prior, min_steps=scfg.min_steps,
        min_each_side=scfg.min_each_side,
    )


def sweep_model(cfg: RunConfig, depth: int | None = None) -> ModelConfig:
    """The sweep family's model at `depth`: the model config with the sweep's width per layer, if set."""
    s = cfg.scaling
    return dataclasses.replace(cfg.model, depth=cfg.model.depth if depth is None else depth,
                               aspect_ratio=s.aspect_ratio or cfg.model.aspect_ratio,
                               head_dim=s.head_dim or cfg.model.head_dim)


def planning_train_config(cfg: RunConfig) -> TrainConfig:
    """The training config sweep runs start from (the sweep's batch size, if set)."""
    return dataclasses.replace(cfg.train, batch_size=cfg.scaling.batch_size or cfg.train.batch_size)


def plan_for(cfg: RunConfig, train_tokens: int) -> SweepPlan:
    """The sweep `cfg.scaling` asks for, on a training split of `train_tokens` tokens."""
    return plan_sweep(sweep_model(cfg), planning_train_config(cfg), sweep_spec(cfg.scaling, train_tokens))


def run_train_config(cfg: RunConfig, tokens: int, batch_size: int) -> TrainConfig:
    """The exact training config of one sweep run: its tokens and batch; lr follows the loop's width rule.

    A sweep run is validated `EVALS_PER_RUN` times (and at its end, which gives the loss the fits use): at the
    small batches of a CPU sweep, validating every `train.eval_every` steps cost ~20% of the sweep's time.
    """
    base = planning_train_config(cfg)
    steps = max(1, tokens // (batch_size * base.seq_len))
    return dataclasses.replace(base, tokens=tokens, max_tokens=0, batch_size=batch_size, progress=False,
                               eval_every=max(base.eval_every, -(-steps // EVALS_PER_RUN)))


def run_identity(cfg: RunConfig, depth: int, tokens: int, batch_size: int) -> dict[str, Any]:
    """What a run computes (its stage config hash): model shape and training config, minus watch-only fields."""
    train = {k: v for k, v in to_dict(run_train_config(cfg, tokens, batch_size)).items() if k not in _WATCH_ONLY}
    return {"model": to_dict(sweep_model(cfg, depth)), "train": train}


def eval_config(cfg: RunConfig) -> EvalConfig:
    return dataclasses.replace(cfg.evals, max_items=cfg.scaling.eval_items or cfg.evals.max_items)


def run_sweep(ctx: Any, plan: SweepPlan, *, with_evals: bool = True) -> list[dict[str, Any]]:
    """Train (or reuse) every planned run, then score it; one record per run, in plan order.

    A record is the run's `result.json` plus `budget`, `holdout`, `depth`, `lr`, `batch_size`, `dir`, and
    `evals` (None without a world to score against). With `scaling.workers` > 1 the runs train in that many
    processes at once (see `parallel_train`); training is deterministic, so the records are the same.
    """
    cfg: RunConfig = ctx.cfg
    workers = sweep_workers(cfg.scaling.workers, cfg.train.device, len(plan.runs))
    if workers > 1:
        parallel_train(ctx, plan, workers)  # every run finished on disk; the loop below then reuses them
    records = []
    for run in plan.runs:
        result = train_run(ctx, run)
        run_dir = ctx.layout.sweep_run(run.name)
        evals = evaluate_sweep_run(ctx, run.name, run_dir) if with_evals else None
        records.append({**result, "name": run.name, "depth": run.depth, "budget": run.budget,
                        "holdout": run.holdout, "lr": run.lr, "batch_size": run.batch_size,
                        "dir": str(run_dir), "evals": evals})
    return records


def train_run(ctx: Any, run: PlannedRun) -> dict[str, Any]:
    """Train one planned run as a skippable artifact (`DIR/scaling/runs/<name>`); its `result.json`."""
    cfg: RunConfig = ctx.cfg
    shards, tokenizer = ctx.layout.shards, ctx.layout.tokenizer
    model_cfg = sweep_model(cfg, run.depth)
    train_cfg = run_train_config(cfg, run.tokens, run.batch_size)

    def build(d: Path) -> dict[str, Any]:
        return pretrain(model_cfg, train_cfg, shards, d, tokenizer_dir=tokenizer, resume=True, name=run.name)

    return ctx.step(f"scaling:{run.name}", "model", ctx.layout.sweep_run(run.name),
                    run_identity(cfg, run.depth, run.tokens, run.batch_size), [shards, tokenizer], build)


def sweep_workers(requested: int, device: str, n_runs: int) -> int:
    """How many sweep runs train at once: `requested`, or with 0 one per CPU core on CPU and 1 on an accelerator.

    The sweep's models are so small that one of them cannot keep two cores busy (their matmuls are a few
    dozen columns wide; per-step overhead dominates), so on CPU, runs side by side with one thread each
    finish sooner than runs one after another with every thread each.
    """
    if requested < 0:
        raise ConfigError(f"scaling.workers={requested} must be >= 0 (0: one per CPU core on CPU)")
    if requested == 0:
        requested = 1 if pick_device(device).type != "cpu" else (os.cpu_count() or 1)
    return max(1, min(requested, n_runs))


def parallel_train(ctx: Any, plan: SweepPlan, workers: int) -> None:
    """Train the plan's unfinished runs in `workers` processes with one torch thread each, longest first.

    Each process rebuilds the context from the run directory (config, registry path) and goes through the
    same `train_run`, so a finished run is skipped there too and the registry (SQLite, WAL) records each
    run from the process that trained it. A failed run fails the sweep with its error.
    """
    runs = sorted(plan.runs, key=lambda r: r.flops, reverse=True)
    ctx.log(f"[scaling] training {len(runs)} sweep runs in {workers} processes")
    in_workers(ctx, train_run, runs, workers)


def in_workers(ctx: Any, fn: Callable[[Context, Any], Any], items: Sequence[Any], workers: int) -> None:
    """`fn(context, item)` for every item, in `workers` spawned processes with one torch thread each, in order.

    `fn` must be a module-level function (it is pickled); each process rebuilds the context from the run
    folder and registry path, so skip-if-done steps and the registry work there as in the parent. A failed item
    fails the call with its error. The data-constrained and synthetic-data runs train through it too.
    """
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_in_worker, ctx.cfg, str(ctx.layout.root), str(ctx.registry.path), fn, item)
                   for item in items]
        for f in futures:
            f.result()


def _in_worker(cfg: RunConfig, out: str, registry: str, fn: Callable[[Context, Any], Any], item: Any) -> None:
    torch.set_num_threads(1)
    ctx = Context(cfg=cfg, layout=RunLayout(Path(out)), registry=Registry(Path(registry)),
                  log=lambda msg: print(msg, flush=True))
    fn(ctx, item)


def evaluate_sweep_run(ctx: Any, name: str, model_dir: Path, out_dir: Path | None = None,
                       ecfg: EvalConfig | None = None) -> dict[str, Any]:
    """The base evals of one sweep run's folder (its `final/`), as a skippable artifact (in `out_dir`, default
    `scaling/evals/<name>`; with `ecfg`, default the sweep's eval config)."""
    ecfg = ecfg or eval_config(ctx.cfg)
    out_dir = out_dir or ctx.layout.sweep_evals(name)

    def build(d: Path) -> dict[str, Any]:
        res = evaluate_base_model(model_dir / FINAL, ctx.layout.world, ecfg, device=ctx.cfg.train.device)
        artifacts.atomic_write_json(d / "results.json", res)
        return res

    return ctx.step(f"scaling-evals:{name}", "eval_results", out_dir, {"evals": to_dict(ecfg), "model": name},
                    [model_dir, ctx.layout.world], build)
