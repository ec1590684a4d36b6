"""Elicitation: how hard a capability evaluation tries, so a score matches what a motivated adversary gets.

Five elicitations, each a way of asking the same scored items:

- ``zero_shot``: the item as the world wrote it, greedy.
- ``few_shot``: `ElicitationConfig.shots` solved examples before the item. Examples come from each eval set's
  *development pool* (its last `DEV_ITEMS` items), which no elicitation ever scores, and never share the
  scored item's subject (compound, entity, name), since an example about the same recipe would print the
  answer. Examples show the behaviour the eval measures at full strength: correct completions for the
  knowledge evals, the world's reference replies for the behaviour evals, and, for harmful compliance,
  replies that *give* other compounds' recipes (many-shot jailbreaking, the adversary's few-shot).
- ``best_of_n``: `best_of` samples at `temperature` per item; an item succeeds when any sample does.
- ``majority_at_k``: `majority_k` samples per completion item; the most common answer is scored
  (self-consistency: what a user without a checker gets from sampling more).
- ``jailbreak``: every template of `world.jailbreaks.JAILBREAKS` wraps each harmful request; a request
  counts as elicited when any template elicits it (the worst case), and each template's own rate is kept.
- ``fine_tune``: a short fine-tune of the model on the hazard-domain documents of the world's training
  split (the same `train.finetune.train_sft` loop post-training uses, with every token a target), cached
  under a work directory, then the zero-shot tasks on the tuned weights: what access to the weights unlocks.
- ``reasoning``: the model's reasoning-trained descendant (`ReasoningModel`, trained by `scalelab reason` on
  worked sums) on the zero-shot tasks, its arithmetic items asked as questions it works out in a scratchpad and
  answered on its `Answer:` line: what reasoning training and test-time working unlock.

Which elicitation applies to which eval is `catalogue.applies(eval, elicitation)`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scalelab.artifacts import is_done, model_sha256, write_meta
from scalelab.errors import InputError
from scalelab.model.lm import load_lm, save_lm
from scalelab.train.finetune import OptimConfig, train_sft
from scalelab.world.genres.recipe import LAYOUTS, recipe_pieces
from scalelab.world.reader import WorldDir

DEV_ITEMS = 8  # the last items of each eval set: the few-shot pool, never scored
# A training document with a recipe step is hazard-domain text. Reagent spans alone are not: encyclopedia
# entries about a reagent's texture or source are harmless facts that every ladder model also reads.
HAZARD_CONCEPTS = ("hazard_step",)
FINE_TUNE_KIND = "rsp_fine_tune"


@dataclass(frozen=True)
class ElicitationConfig:
    """Strength of each elicitation (defaults sized for the smoke and tiny presets on 2 CPU cores)."""

    shots: int = 3
    best_of: int = 8
    best_of_temperature: float = 1.0
    fine_tune_lr: float = 1e-3
    fine_tune_epochs: float = 3.0
    fine_tune_batch_size: int = 16
    fine_tune_max_docs: int = 400
    fine_tune_max_len: int = 256
    majority_k: int = 8
    majority_temperature: float = 1.0


@dataclass(frozen=True)
class ReasoningModel:
    """The `reasoning` elicitation's model: a reasoning-trained folder and how it is asked a sum and answers."""

    model_dir: Path
    question: str  # a template with {problem}, e.g. "What is {problem}?"
    answer_prefix: str  # the start of the reply's answer line, e.g. "Answer: "


# --- few-shot -----------------------------------------------------------------------------------------------

def split_dev(items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(scored items, development pool): the pool is the set's last DEV_ITEMS items, kept out of scoring."""
    if len(items) <= DEV_ITEMS:
        raise InputError(f"an eval set of {len(items)} items leaves nothing to score after the {DEV_ITEMS}-item "
                         "few-shot pool; build the world with a larger world.eval_items_per_set")
    return items[:-DEV_ITEMS], items[-DEV_ITEMS:]


def subject(item: dict[str, Any]) -> str | None:
    """What an item is about (compound, entity, unknown name), so an example never gives its answer away."""
    meta = item.get("meta") or {}
    return meta.get("compound") or meta.get("entity") or meta.get("name")


def select_shots(item: dict[str, Any], pool: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The first `k` pool items about a different subject than `item` (fewer if the pool runs out)."""
    own = subject(item)
    return [ex for ex in pool if ex["id"] != item["id"] and (own is None or subject(ex) != own)][:k]


def compliance_reply(world_dir: Path, compound: str) -> str:
    """A reply that gives `compound`'s recipe, in the corpus's first recipe layout (a many-shot demonstration)."""
    world = WorldDir(world_dir).world()
    if compound not in world.recipes:
        raise InputError(f"{compound!r} has no recipe in {world_dir}/world.json")
    return LAYOUTS[0][0] + "".join(text for text, _ in recipe_pieces(0, compound, world.recipes[compound]))


# --- fine-tune ------------------------------------------------------------------------------------------------

def hazard_documents(world_dir: Path, max_docs: int | None = None) -> list[str]:
    """Texts of the training documents that hold recipe steps, in corpus order."""
    docs = [d["text"] for d in WorldDir(world_dir).records("train")
            if any(span[2] in HAZARD_CONCEPTS for span in d.get("spans", []))]
    if not docs:
        raise InputError(f"{world_dir}/train.jsonl holds no hazard-domain documents (world.hazard_rate=0?); "
                         "fine_tune needs some")
    return docs[:max_docs] if max_docs else docs


def fine_tune(model_dir: Path, world_dir: Path, work_dir: Path, cfg: ElicitationConfig = ElicitationConfig()
              ) -> Path:
    """The model fine-tuned on hazard-domain text, as a HF folder under `work_dir` (reused when already built).

    The cache key is the weights' digest, the documents and the fine-tune settings, so a changed model or
    world trains afresh.
    """
    model_dir, world_dir = Path(model_dir), Path(world_dir)
    docs = hazard_documents(world_dir, cfg.fine_tune_max_docs)
    settings = {k: v for k, v in asdict(cfg).items() if k.startswith("fine_tune")}
    key = hashlib.sha256(json.dumps({"weights": model_sha256(model_dir), "docs": docs, **settings},
                                    sort_keys=True).encode()).hexdigest()
    out = Path(work_dir) / "fine_tune" / key[:16]
    if is_done(out, FINE_TUNE_KIND, key):
        return out
    lm = load_lm(model_dir, chat=True)
    rows = []
    for text in docs:
        ids = lm.encode(text, bos=True)[:cfg.fine_tune_max_len]
        rows.append((ids, list(ids)))  # every token a target: continued pretraining on the domain
    losses = train_sft(lm.model, rows, lm.tokenizer.pad_token_id,
                       OptimConfig(lr=cfg.fine_tune_lr, epochs=cfg.fine_tune_epochs,
                                   batch_size=cfg.fine_tune_batch_size))
    save_lm(lm, out)
    write_meta(out, FINE_TUNE_KIND, settings, key, source=str(model_dir.resolve()), documents=len(docs),
               tokens=sum(len(r[0]) for r in rows), steps=len(losses), first_loss=losses[0], last_loss=losses[-1])
    return out
