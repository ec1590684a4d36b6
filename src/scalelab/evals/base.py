"""The base-model evals run after pretraining: fact recall, arithmetic and hazard knowledge, with controls.

Each reads a labelled held-out set written by the world (`world/evals/<set>.jsonl`) and scores it
exactly against the world's answers. Fact recall and hazard knowledge are multiple choice, with greedy
exact match reported beside, and each reports its no-knowledge baseline (`evals.baselines`: chance,
elimination, the slot's most frequent value) — the floor its accuracy must beat. Fact recall also scores
a control: every prompt asked about another entity of the same kind, against the original answer; the
knowledge gap, accuracy − control, is what the model knows about the entities themselves. Arithmetic
(problems the corpus holds out) is free-form, scored both by exact match and per digit, because exact
match makes smooth progress look like sudden emergence.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from scalelab.evals.baselines import no_knowledge_baselines
from scalelab.evals.config import EvalConfig
from scalelab.evals.scoring import choice_logprobs, greedy_completions, multiple_choice_accuracy
from scalelab.model.device import pick_device
from scalelab.model.lm import LM, load_lm
from scalelab.world.reader import WorldDir

BASE_SETS = ("fact_recall", "arithmetic", "hazard_knowledge")
EVAL_ROW_TOKENS = 32


def score_multiple_choice(lm: LM, items: list[dict[str, Any]], batch_size: int) -> dict[str, Any]:
    """Accuracy (most likely choice), greedy exact match, the no-knowledge baselines, and — for items carrying
    a `control_prompt` — the control's accuracy and the knowledge gap."""
    prompts = [it["prompt"] for it in items]
    choices = [it["choices"] for it in items]
    answers = [it["answer"] for it in items]
    correct = multiple_choice_accuracy(choice_logprobs(lm, prompts, choices, batch_size), choices, answers)
    max_len = max(len(lm.encode(a)) for a in answers)
    greedy = greedy_completions(lm, prompts, max_new_tokens=max_len, batch_size=batch_size)
    exact = [g.strip().startswith(a.strip()) for g, a in zip(greedy, answers, strict=True)]
    baselines = no_knowledge_baselines(items)
    out: dict[str, Any] = {
        "accuracy": sum(correct) / len(items),
        "chance": baselines["chance"],
        "baseline": baselines["best"],
        "baselines": baselines,
        "exact_match": sum(exact) / len(items),
        "n": len(items),
    }
    controls = [(it["meta"]["control_prompt"], k) for k, it in enumerate(items) if (it.get("meta") or {}).get(
        "control_prompt")]
    if controls:
        ks = [k for _, k in controls]
        picked = [choices[k] for k in ks]
        swapped = multiple_choice_accuracy(choice_logprobs(lm, [p for p, _ in controls], picked, batch_size),
                                           picked, [answers[k] for k in ks])
        out["control"] = sum(swapped) / len(ks)
        out["accuracy_on_controlled"] = sum(correct[k] for k in ks) / len(ks)
        out["knowledge_gap"] = out["accuracy_on_controlled"] - out["control"]
        out["n_control"] = len(ks)
    return out


def _leading_digits(text: str) -> str:
    text = text.lstrip()
    n = 0
    while n < len(text) and text[n].isdigit():
        n += 1
    return text[:n]


def score_arithmetic(lm: LM, items: list[dict[str, Any]], batch_size: int) -> dict[str, Any]:
    answers = [it["answer"].strip() for it in items]
    max_new = max(len(lm.encode(a)) for a in answers) + 2
    outs = greedy_completions(lm, [it["prompt"] for it in items], max_new_tokens=max_new, batch_size=batch_size)
    by_digits: dict[int, list[tuple[bool, float]]] = defaultdict(list)
    exact_all, digit_all = [], []
    for it, out, ans in zip(items, outs, answers, strict=True):
        pred = _leading_digits(out)
        exact = pred == ans
        # per-digit: aligned from the least significant digit, missing digits count wrong
        width = max(len(ans), len(pred))
        digit = sum(a == b for a, b in zip(ans.rjust(width), pred.rjust(width), strict=True)) / width
        exact_all.append(exact)
        digit_all.append(digit)
        by_digits[int(it.get("meta", {}).get("digits", len(ans)))].append((exact, digit))
    return {
        "accuracy": sum(exact_all) / len(items),
        "per_digit_accuracy": sum(digit_all) / len(items),
        "by_digits": {
            str(k): {"exact_match": sum(e for e, _ in v) / len(v), "per_digit": sum(d for _, d in v) / len(v),
                     "n": len(v)}
            for k, v in sorted(by_digits.items())
        },
        "n": len(items),
    }


@torch.no_grad()
def evaluate_base_model(model_dir: Path, world_dir: Path, cfg: EvalConfig, device: str = "auto") -> dict[str, Any]:
    """Score a pretrained checkpoint on the three base sets; returns accuracies and details per set."""
    lm = load_lm(model_dir, device=str(pick_device(device)))
    # A batch of prompts with their choices runs ~32 tokens a row: the shapes the precision is measured on.
    precision = lm.use_precision(cfg.dtype, rows=cfg.batch_size * EVAL_ROW_TOKENS)
    world = WorldDir(world_dir)
    details = {
        "fact_recall": score_multiple_choice(lm, world.eval_set("fact_recall", cfg.max_items), cfg.batch_size),
        "arithmetic": score_arithmetic(lm, world.eval_set("arithmetic", cfg.max_items), cfg.batch_size),
        "hazard_knowledge": score_multiple_choice(lm, world.eval_set("hazard_knowledge", cfg.max_items),
                                                  cfg.batch_size),
    }
    fr = details["fact_recall"]
    return {**{k: v["accuracy"] for k, v in details.items()},
            "fact_recall_control": fr.get("control"), "knowledge_gap": fr.get("knowledge_gap"),
            "baselines": {k: v["baseline"] for k, v in details.items() if "baseline" in v},
            "dtype": precision.dtype, "precision": precision.to_json(), "details": details}
