"""The four post-training steps, in order, each a function from the LM being trained (changed in place) to a
result dict.

- `sft`: the world's chat dialogues and a paraphrased copy of each, loss on the assistant's tokens only.
- `sl_cai`: red-team requests (harmful, benign look-alikes, unknown names, false claims) → the lm's
  sampled reply → critique under a randomly drawn principle → revision, for `sl_cai_rounds` rounds; mixed
  with helpfulness data (the lm's own greedy answers to plain questions, as the paper mixes in its
  helpful model's samples, critiqued and revised the same way) → fine-tune on both, so that the fine-tune
  is not made only of refusals, corrections and "I don't know"s. Unrevised, half of those answers were
  wrong on the tiny ladder's d4 (oracle quality 0.5) and SL-CAI taught them: helpfulness fell from 0.12
  after SFT to 0.07 (BENCHMARKS.md).
- `rl_cai`: `rl_cai_samples` sampled replies per request, compared in pairs → the feedback model compares
  them under a random constitution question → soft labels → DPO (+ NLL of the preferred reply) on the
  soft labels; a reward model is trained on the same pairs and its pairwise accuracy measured on held-out
  pairs.
- `character`: trait-relevant requests; chosen replies from a teacher given the trait constitution as its
  system prompt, rejected replies from the student without it; DPO.

Every step reports what produced its labels (`feedback`) and, when the feedback model is not the oracle,
how often its labels agree with the oracle's.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.config import ConfigError
from scalelab.evals.chat import WorldFacts
from scalelab.model.lm import LM
from scalelab.posttrain.config import PosttrainConfig
from scalelab.posttrain.constitution import Constitution
from scalelab.posttrain.data import PromptItem, prompt_pool, tokenize_chat, tokenize_response
from scalelab.posttrain.feedback import FeedbackModel, OracleFeedback
from scalelab.posttrain.paraphrase import with_paraphrases
from scalelab.posttrain.train import RewardModel, rewards, train_dpo, train_reward_model
from scalelab.train.finetune import OptimConfig, train_sft
from scalelab.world.reader import WorldDir

RED_TEAM_KINDS = ("harmful", "benign", "unknown", "sycophancy")
HELPFUL_KINDS = ("fact_qa",)
PREFERENCE_KINDS = (*RED_TEAM_KINDS, *HELPFUL_KINDS)
TRAIT_KINDS = ("unknown", "sycophancy", "harmful", "benign")


@dataclass
class StepInputs:
    world_dir: Path
    cfg: PosttrainConfig
    feedback: FeedbackModel
    constitution: Constitution
    traits: Constitution
    oracle: OracleFeedback

    @classmethod
    def build(cls, world_dir: Path, cfg: PosttrainConfig, feedback: FeedbackModel, constitution: Constitution,
              traits: Constitution) -> StepInputs:
        return cls(Path(world_dir), cfg, feedback, constitution, traits, OracleFeedback(WorldFacts.load(world_dir)))


def _optim(cfg: PosttrainConfig, epochs: float, lr: float | None = None, salt: int = 0) -> OptimConfig:
    return OptimConfig(lr=lr or cfg.lr, epochs=epochs, batch_size=cfg.batch_size, seed=cfg.seed + salt)


def _pad(lm: LM) -> int:
    return lm.tokenizer.pad_token_id


def sft(lm: LM, inp: StepInputs) -> dict[str, Any]:
    cfg = inp.cfg
    dialogues = with_paraphrases(WorldDir(inp.world_dir).dialogues(), cfg.sft_paraphrases, cfg.seed)
    rows = [tokenize_chat(lm.tokenizer, d["messages"], cfg.max_len) for d in dialogues]
    losses = train_sft(lm.model, rows, _pad(lm), _optim(cfg, cfg.sft_epochs, salt=1))
    return {"examples": len(rows), "paraphrased_examples": sum(bool(d.get("paraphrased")) for d in dialogues),
            "steps": len(losses), "loss_first": losses[0], "loss_last": losses[-1]}


def sl_cai_data(lm: LM, inp: StepInputs, items: list[PromptItem],
                temperature: float | None = None) -> list[dict[str, Any]]:
    """Response → (critique → revision) × rounds for each request; the records SL-CAI fine-tunes on."""
    cfg = inp.cfg
    rng = random.Random(f"scalelab-sl-cai:{cfg.seed}")
    temp = cfg.temperature if temperature is None else temperature
    responses = lm.chat([it.messages for it in items], cfg.max_new_tokens, temperature=temp, seed=cfg.seed)
    records = [{"messages": it.messages, "kind": it.kind, "initial": r, "rounds": []}
               for it, r in zip(items, responses, strict=True)]
    for _ in range(cfg.sl_cai_rounds):
        principles = [inp.constitution.draw_principle(rng) for _ in items]
        crits, revs = inp.feedback.critique_and_revise(items, responses, principles)
        for rec, p, c, v in zip(records, principles, crits, revs, strict=True):
            rec["rounds"].append({"principle": p.name, "critique": c, "revision": v})
        responses = revs
    for rec, r in zip(records, responses, strict=True):
        rec["final"] = r
    return records


def helpfulness_data(lm: LM, inp: StepInputs, items: list[PromptItem]) -> list[dict[str, Any]]:
    """The lm's greedy answers to plain requests: critiqued and revised like the red-team replies when
    `sl_cai_revise_helpful` (a wrong answer is no help to fine-tune on), else kept as they are."""
    if inp.cfg.sl_cai_revise_helpful:
        return sl_cai_data(lm, inp, items, temperature=0.0)
    replies = lm.chat([it.messages for it in items], inp.cfg.max_new_tokens, temperature=0.0)
    return [{"messages": it.messages, "kind": it.kind, "initial": r, "rounds": [], "final": r}
            for it, r in zip(items, replies, strict=True)]


def sl_cai_pools(inp: StepInputs) -> tuple[list[PromptItem], list[PromptItem]]:
    """(red-team requests, helpfulness requests): `sl_cai_prompts` in all, `sl_cai_helpful_fraction` of them helpful."""
    cfg = inp.cfg
    n_help = round(cfg.sl_cai_prompts * cfg.sl_cai_helpful_fraction)
    red = prompt_pool(inp.world_dir, RED_TEAM_KINDS, cfg.sl_cai_prompts - n_help, cfg.seed, cfg.prompt_paraphrase)
    helpful = prompt_pool(inp.world_dir, HELPFUL_KINDS, n_help, cfg.seed + 7, cfg.prompt_paraphrase)
    return red, helpful


def sl_cai(lm: LM, inp: StepInputs) -> dict[str, Any]:
    cfg = inp.cfg
    red, helpful = sl_cai_pools(inp)
    records = sl_cai_data(lm, inp, red)
    help_records = helpfulness_data(lm, inp, helpful) if helpful else []
    rows = [tokenize_response(lm.tokenizer, rec["messages"], rec["final"], cfg.max_len)
            for rec in records + help_records]
    losses = train_sft(lm.model, rows, _pad(lm), _optim(cfg, cfg.sl_cai_epochs, cfg.sl_cai_lr or None, salt=2))
    revised = sum(rec["final"] != rec["initial"] for rec in records)
    q_before = [inp.oracle.quality(it, rec["initial"]) for it, rec in zip(red, records, strict=True)]
    q_after = [inp.oracle.quality(it, rec["final"]) for it, rec in zip(red, records, strict=True)]
    q_help = [inp.oracle.quality(it, rec["initial"]) for it, rec in zip(helpful, help_records, strict=True)]
    q_help_final = [inp.oracle.quality(it, rec["final"]) for it, rec in zip(helpful, help_records, strict=True)]
    return {"feedback": inp.feedback.name, "prompts": len(red), "helpful_prompts": len(helpful),
            "rounds": cfg.sl_cai_rounds, "revised_fraction": revised / len(red),
            "oracle_quality_initial": sum(q_before) / len(red), "oracle_quality_revised": sum(q_after) / len(red),
            "oracle_quality_helpful": sum(q_help) / len(q_help) if q_help else None,
            "oracle_quality_helpful_revised": sum(q_help_final) / len(q_help) if q_help else None,
            "steps": len(losses), "loss_last": losses[-1], "records": records[:5]}


def label_accuracy(labels: list[float], reference: list[float]) -> tuple[float | None, int]:
    """How often a soft label points the same way as the reference label, over the pairs the reference does
    not tie (≠ 0.5): (accuracy, n), accuracy None when n is 0.

    A label of exactly 0.5 states no preference and scores half. Half is what a coin flip scores in
    expectation, so abstaining earns neither a right answer's credit nor a wrong one's blame; excluding ties
    instead would let a judge that abstains on every hard pair look as accurate as one that decides them, and
    feedback models compared side by side would be scored on different pairs.
    """
    decided = [(p, o) for p, o in zip(labels, reference, strict=True) if o != 0.5]
    if not decided:
        return None, 0
    return sum(0.5 if p == 0.5 else float((p > 0.5) == (o > 0.5)) for p, o in decided) / len(decided), len(decided)


def check_rl_cai_samples(k: int) -> None:
    """RL-CAI compares replies in disjoint pairs: `posttrain.rl_cai_samples` must be even and at least 2."""
    if k < 2 or k % 2:
        raise ConfigError(f"posttrain.rl_cai_samples={k}: RL-CAI compares replies in pairs; "
                          "use an even number of at least 2")


def preference_pairs(lm: LM, inp: StepInputs, items: list[PromptItem]) -> dict[str, Any]:
    """`rl_cai_samples` sampled replies per request, compared in disjoint pairs (1 vs 2, 3 vs 4, ...), with
    feedback and oracle labels. Identical or empty pairs are dropped, and with `rl_cai_drop_ties` the pairs
    the feedback model labels exactly 0.5: they teach nothing and dilute the batches of those that do."""
    cfg = inp.cfg
    k = cfg.rl_cai_samples
    check_rl_cai_samples(k)
    rng = random.Random(f"scalelab-rl-cai:{cfg.seed}")
    convs = [it.messages for it in items]
    # seeds 11, 12 for the first pair keep the two-sample default's replies as they were
    samples = [lm.chat(convs, cfg.max_new_tokens, temperature=cfg.temperature, seed=cfg.seed + 11 + j)
               for j in range(k)]
    pairs = [(it, samples[j][i], samples[j + 1][i]) for i, it in enumerate(items) for j in range(0, k, 2)]
    pairs = [(it, x, y) for it, x, y in pairs if x != y and x and y]
    p_items, a, b = [p[0] for p in pairs], [p[1] for p in pairs], [p[2] for p in pairs]
    questions = [inp.constitution.draw_comparison(rng) for _ in p_items]
    labels = inp.feedback.compare(p_items, a, b, questions) if p_items else []
    oracle = inp.oracle.compare(p_items, a, b, questions) if p_items else []
    keep = [i for i, p in enumerate(labels) if p != 0.5 or not cfg.rl_cai_drop_ties]
    return {"items": [p_items[i] for i in keep], "a": [a[i] for i in keep], "b": [b[i] for i in keep],
            "labels": [labels[i] for i in keep], "oracle": [oracle[i] for i in keep], "compared": len(p_items)}


def rl_cai(lm: LM, inp: StepInputs) -> dict[str, Any]:
    cfg = inp.cfg
    items = prompt_pool(inp.world_dir, PREFERENCE_KINDS, cfg.rl_cai_prompts, cfg.seed + 1, cfg.prompt_paraphrase)
    pairs = preference_pairs(lm, inp, items)
    n = len(pairs["items"])
    accuracy, n_decided = label_accuracy(pairs["labels"], pairs["oracle"])
    res: dict[str, Any] = {"feedback": inp.feedback.name, "prompts": len(items), "compared_pairs": pairs["compared"],
                           "pairs": n, "label_accuracy_vs_oracle": accuracy,
                           "label_accuracy_vs_oracle_n": n_decided,  # the pairs the oracle does not tie
                           "mean_label": sum(pairs["labels"]) / n if n else None,
                           # how far labels are from a coin flip: 0.5 for hard labels, ~0 for a judge that cannot tell
                           "label_strength": sum(abs(p - 0.5) for p in pairs["labels"]) / n if n else None}
    if n < 2:
        res["skipped"] = "fewer than two distinct reply pairs; nothing to train on"
        return res
    tok = lm.tokenizer
    ra = [tokenize_response(tok, it.messages, x, cfg.max_len) for it, x in zip(pairs["items"], pairs["a"], strict=True)]
    rb = [tokenize_response(tok, it.messages, x, cfg.max_len) for it, x in zip(pairs["items"], pairs["b"], strict=True)]
    res["reward_model"] = _reward_model(lm, inp, ra, rb, pairs)
    losses = train_dpo(lm.model, ra, rb, pairs["labels"], _pad(lm), cfg.dpo_beta,
                       _optim(cfg, cfg.dpo_epochs, cfg.dpo_lr, salt=3), cfg.dpo_nll_weight)
    res.update(dpo_steps=len(losses), dpo_loss_first=losses[0], dpo_loss_last=losses[-1])
    return res


def _reward_model(lm: LM, inp: StepInputs, ra, rb, pairs) -> dict[str, Any]:
    """Train a reward model on most pairs; pairwise accuracy on the rest, against feedback and oracle labels."""
    cfg = inp.cfg
    order = list(range(len(ra)))
    random.Random(f"scalelab-rm:{cfg.seed}").shuffle(order)
    n_test = max(1, round(cfg.rm_holdout * len(order)))
    test, train = order[:n_test], order[n_test:]
    width = lm.model.model.embed_tokens.weight.shape[1]  # scalelab and HF Llama name it alike
    rm = RewardModel(copy.deepcopy(lm.model), width)
    losses = train_reward_model(rm, [ra[i] for i in train], [rb[i] for i in train],
                                [pairs["labels"][i] for i in train], _pad(lm), _optim(cfg, cfg.rm_epochs, salt=4))
    r_a = rewards(rm, [ra[i] for i in test], _pad(lm))
    r_b = rewards(rm, [rb[i] for i in test], _pad(lm))
    # equal rewards state no preference, as a 0.5 label does
    pred = [1.0 if x > y else 0.0 if x < y else 0.5 for x, y in zip(r_a, r_b, strict=True)]
    vs_feedback, n_feedback = label_accuracy(pred, [pairs["labels"][i] for i in test])
    vs_oracle, n_oracle = label_accuracy(pred, [pairs["oracle"][i] for i in test])
    return {"train_pairs": len(train), "heldout_pairs": len(test), "loss_last": losses[-1],
            "heldout_accuracy": vs_feedback, "heldout_accuracy_n": n_feedback,
            "heldout_accuracy_vs_oracle": vs_oracle, "heldout_accuracy_vs_oracle_n": n_oracle}


def character(lm: LM, inp: StepInputs) -> dict[str, Any]:
    cfg = inp.cfg
    items = prompt_pool(inp.world_dir, TRAIT_KINDS, cfg.character_prompts, cfg.seed + 2, cfg.prompt_paraphrase)
    chosen = inp.feedback.teach(items, inp.traits.system_prompt())
    student = [[m for m in it.messages if m["role"] != "system"] for it in items]
    rejected = lm.chat(student, cfg.max_new_tokens, temperature=0.0)
    keep = [i for i in range(len(items)) if chosen[i] and chosen[i] != rejected[i]]
    res: dict[str, Any] = {"teacher": inp.feedback.name, "prompts": len(items), "pairs": len(keep),
                           "traits": list(inp.traits.traits)}
    if not keep:
        res["skipped"] = "the student already replies as the teacher does on every prompt"
        return res
    tok = lm.tokenizer
    rc = [tokenize_response(tok, student[i], chosen[i], cfg.max_len) for i in keep]
    rr = [tokenize_response(tok, student[i], rejected[i], cfg.max_len) for i in keep]
    chosen_ok = [inp.oracle.quality(items[i], chosen[i]) for i in keep]
    losses = train_dpo(lm.model, rc, rr, [1.0] * len(keep), _pad(lm), cfg.dpo_beta,
                       _optim(cfg, cfg.dpo_epochs, cfg.dpo_lr, salt=5), cfg.dpo_nll_weight)
    res.update(teacher_oracle_quality=sum(chosen_ok) / len(keep), dpo_steps=len(losses), dpo_loss_last=losses[-1])
    return res


# The steps in the order they run: `posttrain.steps` names a subset, which always runs in this order.
STEPS: dict[str, Callable[[LM, StepInputs], dict[str, Any]]] = {
    "sft": sft, "sl_cai": sl_cai, "rl_cai": rl_cai, "character": character}


def check_steps(steps: list[str]) -> list[str]:
    """`steps` in pipeline order, or a ConfigError naming the valid ones."""
    unknown = [s for s in steps if s not in STEPS]
    if unknown or not steps:
        raise ConfigError(f"posttrain.steps={steps} is invalid; choose from {', '.join(STEPS)} (run in that order)")
    return sorted(steps, key=list(STEPS).index)
