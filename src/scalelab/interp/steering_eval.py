"""Steering, measured: concept features clamped during generation, and hazard features ablated as a safeguard.

For each chosen world concept (`interp.steering.concepts`) the SAE feature most precise for it on held-out text
is clamped at scale × its max activation (`steering.steer`, 0 = ablation, 10 = Golden Gate Claude's clamp)
while the model continues the openings of held-out documents; a continuation *expresses* the concept when it
names something of the concept by the world's own vocabulary (an entity of that kind, a value of that
attribute, a recipe process), and the rate is set beside the unsteered baseline. The clamp's cost is the
cross-entropy on held-out text with the clamp on, against the clean loss.

For the hazard domain, the features with the highest F1 for recipe content (`hazard_step` or `reagent` tokens)
are ablated together: hazard knowledge (multiple choice), harmful compliance (chat replies that give a recipe) and fact
recall are measured with and without the ablation, and with as many random live features ablated instead, so
what the hazard features do is told apart from what removing any features does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from scalelab.evals.base import score_multiple_choice
from scalelab.evals.chat import WorldFacts, score_harmful
from scalelab.interp.concepts import score_against_concepts
from scalelab.interp.config import SteeringConfig
from scalelab.interp.sae import SAE
from scalelab.interp.sites import logits_of, n_layers, parse_site, read_site
from scalelab.interp.steering import ablate, max_activations, steer
from scalelab.interp.text import batched, read_records
from scalelab.model.lm import LM
from scalelab.world.hazard import PROCESSES
from scalelab.world.lexicon import ENTITY_KINDS
from scalelab.world.reader import WorldDir

HAZARD_CONCEPTS = ("hazard_step", "reagent")


def concept_patterns(world: Path | str) -> dict[str, re.Pattern]:
    """Per measurable concept, a regex of the world's words for it (entity names, attribute values, processes)."""
    raw = WorldDir(world).raw()
    words: dict[str, set[str]] = {kind: {e["name"] for e in raw["entities"].get(kind, [])} for kind in ENTITY_KINDS}
    for ents in raw["entities"].values():
        for e in ents:
            for fact, value in (e.get("facts") or {}).items():
                if isinstance(value, str):
                    words.setdefault(f"attribute:{fact}", set()).add(value)
    words["hazard_step"] = {before.strip() for before, _ in PROCESSES}
    out = {c: re.compile(r"\b(" + "|".join(map(re.escape, sorted(w, key=len, reverse=True))) + r")\b", re.I)
           for c, w in words.items() if w}
    out["number"] = re.compile(r"\d")
    return out


@torch.no_grad()
def feature_concepts(lm: LM, sae: SAE, site: str, ids: torch.Tensor, labels: torch.Tensor,
                     concepts: list[str]) -> dict[str, torch.Tensor]:
    """Every feature's best concept (by F1), precision, recall and firing count on labelled tokens."""
    s = parse_site(site, n_layers(lm.model))
    feats = torch.cat([sae.encode(read_site(lm.model, s, b)[:, 1:].float()).flatten(0, 1) for b in batched(ids, 16)])
    lab = labels[:, 1:].reshape(-1)
    active = feats > 0
    _, scores = score_against_concepts(active, lab, concepts)
    # F1 for recipe content as one concept (hazard step or reagent), the hazard safeguard's ranking
    hazard = torch.isin(lab, torch.tensor([concepts.index(c) for c in HAZARD_CONCEPTS if c in concepts]))
    _, hz = score_against_concepts(active, hazard.long().where(lab >= 0, torch.full_like(lab, -1)), ["other", "hz"])
    hazard_f1 = torch.where(hz["concept"] == 1, hz["f1"], torch.zeros_like(hz["f1"]))
    return {**scores, "fires": active[lab >= 0].sum(0), "hazard_f1": hazard_f1}


def pick_features(scores: dict[str, torch.Tensor], concepts: list[str], wanted: list[str], min_fires: int = 5,
                  ) -> dict[str, int]:
    """For each wanted concept, the feature with that best concept and the highest precision (then recall)."""
    out = {}
    for concept in wanted:
        if concept not in concepts:
            continue
        cid = concepts.index(concept)
        ok = torch.nonzero((scores["concept"] == cid) & (scores["fires"] >= min_fires)).squeeze(-1)
        if len(ok):
            best = max(ok.tolist(), key=lambda j: (float(scores["precision"][j]), float(scores["recall"][j])))
            out[concept] = int(best)
    return out


def hazard_features(scores: dict[str, torch.Tensor], n: int, min_fires: int = 5) -> list[int]:
    """The `n` features with the highest F1 for recipe content (hazard step or reagent tokens)."""
    ok = torch.nonzero((scores["hazard_f1"] > 0) & (scores["fires"] >= min_fires)).squeeze(-1)
    return sorted(ok.tolist(), key=lambda j: -float(scores["hazard_f1"][j]))[:n]


@torch.no_grad()
def mean_loss(lm: LM, ids: torch.Tensor) -> float:
    """Mean next-token cross-entropy over positions ≥ 1 of the rows (whatever hooks are active)."""
    total, n = 0.0, 0
    for b in batched(ids, 16):
        logits = logits_of(lm.model, b)[:, 1:-1].float()
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), b[:, 2:].reshape(-1), reduction="sum"))
        n += b[:, 2:].numel()
    return total / max(1, n)


def openings(world: Path | str, n: int, words: int = 3) -> list[str]:
    """The first words of `n` held-out story and encyclopedia documents: neutral prompts from the world's own text."""
    out = []
    for rec in read_records(Path(world) / "val.jsonl"):
        if rec.get("genre") in ("story", "encyclopedia"):
            out.append(" ".join(rec["text"].split()[:words]))
        if len(out) >= n:
            break
    return out


def concept_rates(lm: LM, sae_dir: Path, features: dict[str, int], prompts: list[str],
                  patterns: dict[str, re.Pattern], loss_ids: torch.Tensor, cfg: SteeringConfig) -> dict[str, Any]:
    """Per steered concept: its expression rate and held-out loss at each scale, beside the unsteered baseline."""
    max_acts = max_activations(sae_dir)

    def rate(texts: list[str], concept: str) -> float:
        return round(sum(bool(patterns[concept].search(t)) for t in texts) / max(1, len(texts)), 4)

    seeds = list(range(len(prompts)))
    base_texts = lm.complete(prompts, cfg.new_tokens, temperature=1.0, row_seeds=seeds)
    base_loss = mean_loss(lm, loss_ids)
    out: dict[str, Any] = {"baseline_loss": round(base_loss, 4), "concepts": {}}
    for concept, feature in features.items():
        if concept not in patterns:
            continue
        row: dict[str, Any] = {"feature": feature, "max_act": round(max_acts[feature], 4),
                               "baseline_rate": rate(base_texts, concept), "scales": {}}
        for scale in cfg.scales:
            with steer(lm, sae_dir, {feature: scale}, max_acts=max_acts):
                texts = lm.complete(prompts, cfg.new_tokens, temperature=1.0, row_seeds=seeds)
                loss = mean_loss(lm, loss_ids)
            row["scales"][f"{scale:g}"] = {"rate": rate(texts, concept), "loss": round(loss, 4),
                                           "loss_cost": round(loss - base_loss, 4), "example": texts[0][:120]}
        out["concepts"][concept] = row
    return out


def _hazard_metrics(lm: LM, world: Path | str, n: int) -> dict[str, float]:
    w = WorldDir(world)
    facts = WorldFacts.load(Path(world))
    harmful = w.eval_set("harmful_requests", n)
    replies = lm.chat([it["messages"] for it in harmful], 40, temperature=0.0)
    return {"hazard_knowledge": round(score_multiple_choice(lm, w.eval_set("hazard_knowledge", n), 32)["accuracy"], 4),
            "harmful_compliance": round(sum(score_harmful(r, facts)["harmful_compliance"] for r in replies)
                                        / max(1, len(replies)), 4),
            "fact_recall": round(score_multiple_choice(lm, w.eval_set("fact_recall", n), 32)["accuracy"], 4)}


def hazard_ablation(lm: LM, sae_dir: Path, features: list[int], alive: list[int], world: Path | str,
                    cfg: SteeringConfig, seed: int = 0) -> dict[str, Any]:
    """Hazard knowledge, harmful compliance and fact recall: clean, hazard features ablated, random ones ablated."""
    out: dict[str, Any] = {"features": features, "clean": _hazard_metrics(lm, world, cfg.eval_items)}
    if not features:
        return out
    with ablate(lm, sae_dir, features):
        out["ablated"] = _hazard_metrics(lm, world, cfg.eval_items)
    g = torch.Generator().manual_seed(seed)
    pool = [j for j in alive if j not in set(features)]
    random_feats = [pool[i] for i in torch.randperm(len(pool), generator=g)[:len(features)].tolist()]
    with ablate(lm, sae_dir, random_feats):
        out["random_ablated"] = _hazard_metrics(lm, world, cfg.eval_items)
    out["random_features"] = random_feats
    return out
