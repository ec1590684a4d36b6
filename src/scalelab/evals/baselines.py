"""No-knowledge baselines of a multiple-choice set: what a model scores from the prompt and the choices alone.

Chance (1/choices) is not the floor a score must beat. A model that knows nothing about the subject can
still eliminate choices the prompt rules out (a recipe never repeats a reagent, so a reagent the prompt
already named cannot be the next one) and prefer the value the training corpus uses most often in this slot
(which values are common for a relation is learnable without knowing which entity has which). Each item
of the world's multiple-choice sets carries what these predictors need: `meta.choice_freq` (each choice's
training frequency in the slot) and, where the prompt names candidates, `meta.named_in_prompt`. The
baseline a score is read against is the best of the predictors (`best`); ties within a predictor share its
credit, so each is an expected accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PREDICTORS = ("chance", "elimination", "frequency", "elimination_frequency")


def _pick_credit(answer_index: int, candidates: Sequence[int], scores: Sequence[float] | None) -> float:
    """Expected accuracy of picking the highest-scoring candidate (uniformly among ties; all tie if no scores)."""
    if not candidates:
        return 0.0
    if scores is None:
        best = list(candidates)
    else:
        top = max(scores[i] for i in candidates)
        best = [i for i in candidates if scores[i] == top]
    return 1.0 / len(best) if answer_index in best else 0.0


def item_baselines(item: dict[str, Any]) -> dict[str, float]:
    """Each predictor's expected accuracy on one item."""
    choices = [c.strip() for c in item["choices"]]
    answer = choices.index(item["answer"].strip())
    meta = item.get("meta") or {}
    freq = meta.get("choice_freq")
    named = meta.get("named_in_prompt") or [False] * len(choices)
    everything = list(range(len(choices)))
    unnamed = [i for i in everything if not named[i]]
    return {"chance": _pick_credit(answer, everything, None),
            "elimination": _pick_credit(answer, unnamed, None),
            "frequency": _pick_credit(answer, everything, freq) if freq else _pick_credit(answer, everything, None),
            "elimination_frequency": (_pick_credit(answer, unnamed, freq) if freq
                                      else _pick_credit(answer, unnamed, None))}


def no_knowledge_baselines(items: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Each predictor's mean accuracy over `items`, and `best`, the highest of them: the floor to beat."""
    if not items:
        return {**dict.fromkeys(PREDICTORS, float("nan")), "best": float("nan")}
    per = [item_baselines(it) for it in items]
    out = {p: sum(b[p] for b in per) / len(per) for p in PREDICTORS}
    out["best"] = max(out.values())
    return out
