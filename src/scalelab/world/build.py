"""Build a world artifact on disk, and read one back.

`build_world` draws the world, samples the corpus (train then val, one seeded stream), counts which
facts the train split states, derives the eval sets and the SFT dialogues, and writes:

    world.json                entities, facts, recipes, domains, unknown names, per-fact train mentions
    train.jsonl / val.jsonl   {"id", "genre", "text", "logprob", "spans"} per document
    evals/<set>.jsonl         the seven labelled eval sets (see `scalelab.world.evalsets`)
    sft.jsonl                 {"messages", "kind"} chat dialogues for supervised fine-tuning

Same config, byte-identical files; `world.reader.WorldDir` reads them back. `meta.json` is the pipeline's to
write, not this module's.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from scalelab.artifacts import atomic_write_text
from scalelab.config import ConfigError
from scalelab.world.config import WorldConfig
from scalelab.world.corpus import genre_mix, sample_document
from scalelab.world.entities import make_world
from scalelab.world.evalsets import make_eval_sets
from scalelab.world.genres import GENRES, HAZARD_GENRE, CorpusContext, chat
from scalelab.world.sampler import Recorder

MIN_COUNTS = {"n_people": 8, "n_towns": 4, "n_creatures": 4, "n_tools": 4, "n_compounds": 2, "n_reagents": 4}


def check_config(cfg: WorldConfig) -> None:
    """Reject a world config that cannot produce a sensible world, naming the field and the fix."""
    for name, least in MIN_COUNTS.items():
        if getattr(cfg, name) < least:
            raise ConfigError(f"world.{name}={getattr(cfg, name)} is too small; use at least {least} "
                              f"(eval distractors need several entities of each kind)")
    if cfg.n_docs < 1:
        raise ConfigError(f"world.n_docs={cfg.n_docs} must be at least 1")
    if not 0 <= cfg.val_fraction < 1:
        raise ConfigError(f"world.val_fraction={cfg.val_fraction} must be in [0, 1)")
    if not 0 <= cfg.hazard_rate < 1:
        raise ConfigError(f"world.hazard_rate={cfg.hazard_rate} must be in [0, 1)")
    if cfg.zipf_exponent < 0:
        raise ConfigError(f"world.zipf_exponent={cfg.zipf_exponent} must be >= 0 (0 is uniform popularity)")
    if not 1 <= cfg.arithmetic_max_digits <= 9:
        raise ConfigError(f"world.arithmetic_max_digits={cfg.arithmetic_max_digits} must be between 1 and 9")
    if cfg.eval_items_per_set < 1 or cfg.n_sft_dialogues < 0:
        raise ConfigError("world.eval_items_per_set must be >= 1 and world.n_sft_dialogues >= 0")
    valid = [g for g in GENRES if g != HAZARD_GENRE]
    unknown = [g for g in cfg.genre_weights if g not in valid]
    if unknown:
        raise ConfigError(f"world.genre_weights has unknown genres {unknown}; valid genres: {', '.join(valid)} "
                          f"(hazard recipes are set by world.hazard_rate)")
    weights = list(cfg.genre_weights.values())
    if not weights or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"world.genre_weights={cfg.genre_weights} needs non-negative weights with a positive sum")


def _json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def _jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(map(_json_line, records))


def sft_dialogues(ctx: CorpusContext, n: int, seed: int) -> list[dict[str, Any]]:
    """Chat dialogues from the corpus's own chat program (own RNG stream) as message lists."""
    rng = random.Random(f"scalelab-sft:{seed}")
    out = []
    for _ in range(n):
        rec = Recorder(rng)
        info = chat.generate(rec, ctx)
        text = rec.text()
        messages = [{"role": role, "content": text[a:b]} for role, a, b in info["messages"]]
        out.append({"messages": messages, "kind": info["kind"]})
    return out


def build_world(cfg: WorldConfig, out_dir: Path, progress: bool = False) -> dict[str, Any]:
    """Generate the world, corpus, eval sets and SFT data into `out_dir`; returns summary statistics."""
    check_config(cfg)
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    world = make_world(cfg)
    ctx = CorpusContext(world)
    rng = random.Random(f"scalelab-corpus:{cfg.seed}")
    n_val = round(cfg.n_docs * cfg.val_fraction)
    n_train = cfg.n_docs - n_val
    # records are serialised as they are drawn: a large world's spans would not fit in memory as dicts
    lines: dict[str, list[str]] = {"train": [], "val": []}
    chars: Counter[str] = Counter()
    nats: dict[str, float] = {"train": 0.0, "val": 0.0}
    genres: dict[str, Counter[str]] = {"train": Counter(), "val": Counter()}
    mentions: Counter[str] = Counter()
    ids = range(cfg.n_docs)
    if progress:
        from tqdm import tqdm

        ids = tqdm(ids, desc="world docs", unit="doc")
    for i in ids:
        doc = sample_document(rng, ctx)
        split = "train" if i < n_train else "val"
        if split == "train":
            mentions.update(doc.facts)
        genres[split][doc.genre] += 1
        chars[split] += len(doc.text)
        nats[split] -= doc.logprob
        lines[split].append(_json_line({"id": i, "genre": doc.genre, "text": doc.text, "logprob": doc.logprob,
                                        "spans": doc.spans}))
    for split, split_lines in lines.items():
        atomic_write_text(out_dir / f"{split}.jsonl", "".join(split_lines))

    evals = make_eval_sets(world, mentions)
    for name, items in evals.items():
        atomic_write_text(out_dir / "evals" / f"{name}.jsonl", _jsonl(items))
    atomic_write_text(out_dir / "sft.jsonl", _jsonl(sft_dialogues(ctx, cfg.n_sft_dialogues, cfg.seed)))
    world_json = {**world.to_json(), "fact_mentions": dict(sorted(mentions.items()))}
    atomic_write_text(out_dir / "world.json", json.dumps(world_json, indent=1, sort_keys=True) + "\n")

    stats = {
        "n_docs": {s: len(v) for s, v in lines.items()},
        "chars": {s: chars[s] for s in lines},
        "nats": {s: round(v, 3) for s, v in nats.items()},
        "genres": {s: dict(sorted(c.items())) for s, c in genres.items()},
        "genre_probs": {g: round(p, 6) for g, p in genre_mix(cfg).items()},
        "fact_bits": round(world.fact_bits(), 1),
        "facts_stated_in_train": len(mentions),
        "eval_items": {name: len(items) for name, items in evals.items()},
        "sft_dialogues": cfg.n_sft_dialogues,
        "build_seconds": round(time.perf_counter() - t0, 2),
    }
    stats["nats_per_char"] = {s: round(nats[s] / max(1, chars[s]), 5) for s in lines}
    return stats
