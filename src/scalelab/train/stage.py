"""The `ladder` stage of `scalelab run`: one model pretrained per depth of `ladder`, as RUN/models/d{N}/.

Its section, `summary.json["models"]`, holds each rung's size, tokens, FLOPs, losses and speed (the base
evals add their scores to each row); the report's ladder table and training curves render it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from scalelab.config import to_dict
from scalelab.layout import rung_name
from scalelab.report.render import table
from scalelab.stage import Context, Stage, Summary
from scalelab.train.loop import pretrain
from scalelab.train.plots import plot_training_curves


def train_identity(cfg: Any) -> dict[str, Any]:
    """The training config minus fields that change how a run is watched, not what it computes."""
    d = to_dict(cfg.train)
    for k in ("progress", "log_every"):
        d.pop(k, None)
    return d


def pretrain_rung(ctx: Context, depth: int) -> dict[str, Any]:
    """Pretrain (or resume, or skip) the ladder model of `depth`; its result row."""
    model_cfg = dataclasses.replace(ctx.cfg.model, depth=depth)
    name = rung_name(depth)
    cfg = {"model": to_dict(model_cfg), "train": train_identity(ctx.cfg)}

    def build(d: Path) -> dict[str, Any]:
        return pretrain(model_cfg, ctx.cfg.train, ctx.layout.shards, d, tokenizer_dir=ctx.layout.tokenizer,
                        resume=True, name=name)

    return ctx.step(f"pretrain:{name}", "model", ctx.layout.rung(name), cfg, [ctx.layout.shards, ctx.layout.tokenizer],
                    build)


def run_ladder(ctx: Context, summary: Summary) -> list[dict[str, Any]]:
    return [pretrain_rung(ctx, depth) for depth in ctx.cfg.ladder]


def section_ladder(summary: Summary, out: Path) -> str:
    models = summary.get("models", [])
    if not models:
        return ""
    floor = (summary.get("world") or {}).get("entropy_floor_nats_per_token")
    rows = []
    for m in models:
        ev = m.get("evals") or {}
        rows.append([m["name"], m["params"], m["non_embedding_params"], m["tokens"], m["train_flops"],
                     m["final_val_loss"], None if floor is None else m["final_val_loss"] - floor,
                     round(m["tokens_per_second"]), ev.get("fact_recall"), ev.get("arithmetic"),
                     ev.get("hazard_knowledge")])
    text = ["## The ladder", "",
            "Parameters N count every weight; non-embedding N excludes the token embedding and the (untied) "
            "unembedding. Train FLOPs follow `scalelab.model.flops.train_flops`. The val loss scores whole "
            "documents of the validation split (each token with its whole document in view), the tokens the "
            "entropy floor is computed over, so `− floor` is how far each rung is from the bound. Eval columns are "
            "accuracies on the world's held-out sets; their controls and no-knowledge baselines are in the next "
            "section.", "",
            table(["model", "params", "non-emb params", "tokens", "train FLOPs", "val loss", "− floor", "tok/s",
                   "fact recall", "arithmetic", "hazard"], rows)]
    png = plot_training_curves(models, out, out / "training_curves.png", floor)
    if png is not None:
        text += ["", f"![training curves]({png.name})"]
    return "\n".join(text)


STAGE = Stage("ladder", run_ladder, section_ladder, optional=False, key="models")

