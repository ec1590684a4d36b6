"""`scalelab run`: world → tokenizer → shards → a ladder of pretrained models → evals → report.

Each stage is a function from artifacts on disk to an artifact on disk. Before running a stage the
pipeline asks whether its output directory already holds a finished artifact with the same config hash
and parents (`artifacts.is_done`); if so the stage is skipped, so a rerun after a kill resumes where
it stopped (a half-trained model resumes from its own checkpoint). Every stage is recorded in the
registry with what it consumed and produced.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalelab import artifacts
from scalelab.config import ConfigError, RunConfig, config_hash, to_dict
from scalelab.registry import Registry


@dataclass
class Context:
    """Where a run writes, its config, and its registry; stages read and write through it."""

    cfg: RunConfig
    out: Path
    registry: Registry
    log: Callable[[str], None] = print
    results: dict[str, Any] = field(default_factory=dict)

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)


def stage(ctx: Context, name: str, kind: str, out_dir: Path, config: Any, parents: list[Path],
          build: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Run `build(out_dir)` unless a finished artifact with this config and these parents is there.

    `build` returns a JSON-able result that is stored in meta.json, so a skipped stage hands later
    stages the same result it would have computed.
    """
    chash = config_hash(config)
    parent_strs = [str(p.resolve()) for p in parents]
    if artifacts.is_done(out_dir, kind, chash, parent_strs):
        ctx.log(f"[{name}] up to date, skipped ({out_dir})")
        return artifacts.read_meta(out_dir)["result"]  # type: ignore[index]
    # A different config or parents: the old payload is stale. Training keeps its own checkpoint
    # directory (it resumes from it only when the config matches, see train.checkpoint).
    if (out_dir / artifacts.META).exists():
        (out_dir / artifacts.META).unlink()
    ctx.log(f"[{name}] running → {out_dir}")
    t0 = time.perf_counter()
    with ctx.registry.run(name, {"config": config if isinstance(config, dict) else to_dict(config)}) as run_id:
        for p in parents:
            ctx.registry.record_consumed(run_id, p)
        out_dir.mkdir(parents=True, exist_ok=True)
        result = build(out_dir)
        result = {**result, "stage_seconds": round(time.perf_counter() - t0, 2)}
        cfg_json = config if isinstance(config, dict) else to_dict(config)
        artifacts.write_meta(out_dir, kind, cfg_json, chash, parent_strs, result=result)
        ctx.registry.record_artifact(run_id, kind, out_dir, config_hash=chash, parents=parent_strs)
    ctx.log(f"[{name}] done in {result['stage_seconds']:.1f}s")
    return result


def run_world(ctx: Context) -> dict[str, Any]:
    from scalelab.world import build_world

    out_dir = ctx.path("world")
    return stage(ctx, "world", "corpus", out_dir, ctx.cfg.world, [],
                 lambda d: build_world(ctx.cfg.world, d, progress=ctx.cfg.train.progress))


def corpus_source(ctx: Context) -> Path | str:
    """The corpus the tokenizer and shards read: the world directory or the user's real text."""
    return ctx.path("world") if ctx.cfg.corpus == "world" else ctx.cfg.corpus


def run_tokenizer(ctx: Context) -> dict[str, Any]:
    from scalelab.data.corpus import split_documents
    from scalelab.data.tokenizer import train_tokenizer

    out_dir = ctx.path("tokenizer")
    source = corpus_source(ctx)

    def build(d: Path) -> dict[str, Any]:
        train_docs, _ = split_documents(source, ctx.cfg.world.val_fraction)
        tok = train_tokenizer(train_docs, ctx.cfg.tokenizer.vocab_size, d,
                              max_chars=ctx.cfg.tokenizer.max_train_chars)
        return {"vocab_size": len(tok)}

    cfg = {"tokenizer": to_dict(ctx.cfg.tokenizer), "corpus": str(source)}
    return stage(ctx, "tokenizer", "tokenizer", out_dir, cfg, _corpus_parents(ctx), build)


def _corpus_parents(ctx: Context) -> list[Path]:
    src = corpus_source(ctx)
    return [Path(src)] if isinstance(src, Path) or Path(str(src)).exists() else []


def run_shards(ctx: Context) -> dict[str, Any]:
    from scalelab.data.corpus import split_documents
    from scalelab.data.floor import entropy_floor
    from scalelab.data.shards import pack_shards
    from scalelab.data.tokenizer import load_tokenizer

    out_dir = ctx.path("shards")
    source = corpus_source(ctx)

    def build(d: Path) -> dict[str, Any]:
        tok = load_tokenizer(ctx.path("tokenizer"))
        train_docs, val_docs = split_documents(source, ctx.cfg.world.val_fraction)
        index = pack_shards(tok, train_docs, val_docs, d, progress=ctx.cfg.train.progress)
        result: dict[str, Any] = {
            "train_tokens": int(sum(index["splits"]["train"]["tokens"])),
            "val_tokens": int(sum(index["splits"]["val"]["tokens"])),
        }
        if ctx.cfg.corpus == "world":
            from scalelab.data.corpus import read_world_records

            result["floor_val"] = entropy_floor(read_world_records(ctx.path("world"), "val"), tok)
        return result

    cfg = {"corpus": str(source), "tokenizer_hash": config_hash(ctx.cfg.tokenizer)}
    return stage(ctx, "shards", "shards", out_dir, cfg, [*_corpus_parents(ctx), ctx.path("tokenizer")], build)


def model_name(depth: int) -> str:
    return f"d{depth}"


def run_pretrain(ctx: Context, depth: int) -> dict[str, Any]:
    import dataclasses

    from scalelab.train import pretrain

    model_cfg = dataclasses.replace(ctx.cfg.model, depth=depth)
    name = model_name(depth)
    out_dir = ctx.path("models", name)
    cfg = {"model": to_dict(model_cfg), "train": _train_identity(ctx)}

    def build(d: Path) -> dict[str, Any]:
        return pretrain(model_cfg, ctx.cfg.train, ctx.path("shards"), d,
                        tokenizer_dir=ctx.path("tokenizer"), resume=True, name=name)

    return stage(ctx, f"pretrain:{name}", "model", out_dir, cfg,
                 [ctx.path("shards"), ctx.path("tokenizer")], build)


def _train_identity(ctx: Context) -> dict[str, Any]:
    """The training config minus fields that change how a run is watched, not what it computes."""
    d = to_dict(ctx.cfg.train)
    for k in ("progress", "log_every"):
        d.pop(k, None)
    return d


def run_evals(ctx: Context, depth: int) -> dict[str, Any]:
    from scalelab.evals.base import evaluate_base_model

    name = model_name(depth)
    model_dir = ctx.path("models", name, "final")
    out_dir = ctx.path("evals", name)
    cfg = {"evals": to_dict(ctx.cfg.evals), "model": name}

    def build(d: Path) -> dict[str, Any]:
        res = evaluate_base_model(model_dir, ctx.path("world"), ctx.cfg.evals, device=ctx.cfg.train.device)
        artifacts.atomic_write_json(d / "results.json", res)
        return res

    return stage(ctx, f"evals:{name}", "eval_results", out_dir, cfg,
                 [ctx.path("models", name), ctx.path("world")], build)


def run_all(cfg: RunConfig, out: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole pipeline: foundation stages, then LATER_STAGES; returns the summary written to out/summary.json."""
    from scalelab.report import write_report

    unknown = set(cfg.skip_stages) - {key for key, _ in LATER_STAGES}
    if unknown:
        raise ConfigError(f"skip_stages names unknown stages {sorted(unknown)}; later stages: "
                          f"{', '.join(key for key, _ in LATER_STAGES) or 'none'}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(cfg=cfg, out=out, registry=Registry(out / "runs.sqlite"), log=log)
    artifacts.atomic_write_json(out / "config.json", to_dict(cfg))
    t0 = time.perf_counter()
    world = run_world(ctx) if cfg.corpus == "world" else None
    tok = run_tokenizer(ctx)
    shards = run_shards(ctx)
    models = []
    for depth in cfg.ladder:
        res = run_pretrain(ctx, depth)
        if world is not None:
            res = {**res, "evals": run_evals(ctx, depth)}
        models.append(res)
    summary: dict[str, Any] = {
        "preset": cfg.preset,
        "corpus": cfg.corpus,
        "world": world_summary(world, shards) if world is not None else None,
        "tokenizer": tok,
        "shards": {k: v for k, v in shards.items() if k != "floor_val"},
        "models": models,
    }
    write_report(summary, out)  # the foundation's report stands even if a later stage fails
    for key, target in LATER_STAGES:
        if key in cfg.skip_stages:
            ctx.log(f"[{key}] skipped (skip_stages)")
            continue
        section = _resolve(target)(ctx, summary)
        if section is not None:
            summary[key] = section
            write_report(summary, out)
    summary["wall_seconds"] = round(time.perf_counter() - t0, 1)
    write_report(summary, out)
    return summary


# Stages that run after the ladder, in order: (summary.json key, "module:function"). Each function takes
# (Context, summary so far) and returns its section of summary.json (or None). Imported lazily so a
# stage's heavy dependencies load only when it runs.
LATER_STAGES: list[tuple[str, str]] = [
    ("scaling", "scalelab.scaling.stage:run_scaling"),
    ("interp", "scalelab.interp.stage:run_interp"),
    ("posttrain", "scalelab.posttrain.run:run_posttrain"),
    ("rsp", "scalelab.rsp.stage:run_rsp"),
]


def _resolve(target: str) -> Callable[[Context, dict[str, Any]], dict[str, Any] | None]:
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def world_summary(world: dict[str, Any], shards: dict[str, Any]) -> dict[str, Any]:
    floor = shards.get("floor_val", {})
    return {
        **{k: v for k, v in world.items() if k != "stage_seconds"},
        "entropy_floor_nats_per_token": floor.get("entropy_floor_nats_per_token"),
        "entropy_floor_split": "val",
    }


def clean(out: Path) -> None:
    """Remove a run directory (used by tests and `scalelab run --fresh`)."""
    shutil.rmtree(out, ignore_errors=True)


def load_summary(out: Path) -> dict[str, Any]:
    return json.loads((Path(out) / "summary.json").read_text(encoding="utf-8"))
