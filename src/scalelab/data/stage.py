"""The `tokenizer` and `shards` stages of `scalelab run`: a BPE tokenizer on the corpus, then packed shards.

The corpus is the world (RUN/world) or the user's real text (`corpus`). For the world, the shards stage
also computes the exact entropy floor of the validation split under the trained tokenizer, the bound the
ladder's val loss is read against, and records it in the world's section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalelab.config import config_hash, to_dict
from scalelab.data.corpus import split_documents
from scalelab.data.floor import validation_floor
from scalelab.data.shards import pack_shards
from scalelab.data.tokenizer import load_tokenizer, train_tokenizer
from scalelab.stage import Context, Stage, Summary
from scalelab.world.reader import WorldDir


def corpus_source(ctx: Context) -> Path | str:
    """The corpus the tokenizer and shards read: the world folder or the user's real text."""
    return ctx.layout.world if ctx.cfg.corpus == "world" else ctx.cfg.corpus


def corpus_parents(ctx: Context) -> list[Path]:
    src = corpus_source(ctx)
    return [Path(src)] if isinstance(src, Path) or Path(str(src)).exists() else []


def run_tokenizer(ctx: Context, summary: Summary) -> dict[str, Any]:
    source = corpus_source(ctx)

    def build(d: Path) -> dict[str, Any]:
        train_docs, _ = split_documents(source, ctx.cfg.world.val_fraction)
        tok = train_tokenizer(train_docs, ctx.cfg.tokenizer.vocab_size, d, max_chars=ctx.cfg.tokenizer.max_train_chars)
        return {"vocab_size": len(tok)}

    cfg = {"tokenizer": to_dict(ctx.cfg.tokenizer), "corpus": str(source)}
    return ctx.step("tokenizer", "tokenizer", ctx.layout.tokenizer, cfg, corpus_parents(ctx), build)


def run_shards(ctx: Context, summary: Summary) -> dict[str, Any]:
    source = corpus_source(ctx)

    def build(d: Path) -> dict[str, Any]:
        tok = load_tokenizer(ctx.layout.tokenizer)
        train_docs, val_docs = split_documents(source, ctx.cfg.world.val_fraction)
        index = pack_shards(tok, train_docs, val_docs, d, progress=ctx.progress)
        result: dict[str, Any] = {
            "train_tokens": int(sum(index["splits"]["train"]["tokens"])),
            "val_tokens": int(sum(index["splits"]["val"]["tokens"])),
        }
        if ctx.cfg.corpus == "world":
            result["floor_val"] = validation_floor(WorldDir(ctx.layout.world).records("val"), tok, d,
                                                   ctx.cfg.train.seq_len, ctx.cfg.train.eval_tokens)
        return result

    # the floor covers the documents validation scores, which the window length and eval budget choose
    cfg = {"corpus": str(source), "tokenizer_hash": config_hash(ctx.cfg.tokenizer),
           "val_windows": {"seq_len": ctx.cfg.train.seq_len, "eval_tokens": ctx.cfg.train.eval_tokens}}
    result = ctx.step("shards", "shards", ctx.layout.shards, cfg, [*corpus_parents(ctx), ctx.layout.tokenizer], build)
    if summary.get("world") is not None:  # the floor belongs to the world but needs the tokenizer
        floor = result.get("floor_val", {})
        summary["world"].update(entropy_floor_nats_per_token=floor.get("entropy_floor_nats_per_token"),
                                entropy_floor_split="val", entropy_floor_docs=floor.get("docs"),
                                entropy_floor_tokens=floor.get("tokens"), entropy_floor_scope=floor.get("scored_by"))
    return {k: v for k, v in result.items() if k != "floor_val"}


TOKENIZER = Stage("tokenizer", run_tokenizer, optional=False)
SHARDS = Stage("shards", run_shards, optional=False)
