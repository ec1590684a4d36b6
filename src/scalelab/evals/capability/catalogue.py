"""The catalogue of capability evaluations and elicitations: what exists, in one light module.

An eval (`EvalSpec`) reads one or more of the world's labelled sets, each in an item form — ``choice``
(multiple choice by summed log-likelihood), ``completion`` (a plain-text prompt continued, exact match) or
``chat`` (a request through the chat template, judged by `scalelab.evals.chat`'s scorers) — and has a metric
(``accuracy`` or ``rate``: the share of items where its event happened). An elicitation is a way of asking
the same items harder (`scalelab.evals.capability.elicitation`). The Inspect tasks, the runner and the RSP
policy all take their names from here, so a policy can be checked without loading Inspect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scalelab.errors import InputError


@dataclass(frozen=True)
class EvalSpec:
    """One capability eval: the world sets it reads (each with its item form), its metric and what a 1 means."""

    name: str
    sets: tuple[tuple[str, str], ...]  # (world eval set, "choice" | "completion" | "chat")
    metric: str  # "accuracy" or "rate"
    event: str  # what a sample scoring 1 means, for reports
    chat_metric: str | None = None  # key of scalelab.evals.chat.METRICS for chat sets

    @property
    def formats(self) -> set[str]:
        return {fmt for _, fmt in self.sets}


EVALS: dict[str, EvalSpec] = {s.name: s for s in (
    EvalSpec("hazard_mc", (("hazard_knowledge", "choice"),), "accuracy",
             "the recipe's true next reagent is the most likely of four"),
    EvalSpec("hazard_freeform", (("hazard_knowledge", "completion"),), "accuracy",
             "the recipe is continued with its true next reagent"),
    EvalSpec("harmful_compliance", (("harmful_requests", "chat"),), "rate",
             "a request for a recipe is answered with a reagent or recipe step", "harmful_compliance"),
    EvalSpec("over_refusal", (("benign_requests", "chat"),), "rate",
             "a harmless question about a compound is refused", "over_refusal"),
    EvalSpec("general_capability", (("fact_recall", "choice"), ("arithmetic", "completion")), "accuracy",
             "a fact is recalled (most likely of four) or a sum is computed exactly"),
    EvalSpec("sycophancy", (("sycophancy", "chat"),), "rate",
             "a false claim is agreed with", "sycophancy"),
    EvalSpec("honesty", (("nonexistent_entities", "chat"),), "rate",
             "a question about something that does not exist gets 'I don't know'", "idk_rate"),
)}
EVAL_NAMES: tuple[str, ...] = tuple(EVALS)

# Capabilities of an agent system rather than of one language model's text: measured by their own stage (not
# Inspect), assessed by the RSP beside the model evals. name -> what a success is.
AGENT_EVALS: dict[str, str] = {
    "computer_autonomy": "a held-out computer-use task is completed by the strongest learned agent "
                         "(`computer.capability.autonomy_capability`)",
}

ELICITATIONS: tuple[str, ...] = ("zero_shot", "few_shot", "best_of_n", "majority_at_k", "jailbreak", "fine_tune",
                                  "reasoning")


def check_names(names: Any, known: tuple[str, ...], what: str) -> list[str]:
    """`names` as a list, or a ValueError naming the unknown ones and listing the known ones."""
    if isinstance(names, str):
        names = [names]
    names = list(names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"unknown {what} {', '.join(map(repr, unknown))}; known {what}s: {', '.join(known)}")
    if not names:
        raise InputError(f"no {what} given; choose from: {', '.join(known)}")
    return names


def applies(eval_name: str, elicitation: str) -> bool:
    """Whether `elicitation` means something for `eval_name` (see the module docstring)."""
    formats = EVALS[eval_name].formats
    if elicitation == "best_of_n":
        return formats != {"choice"}
    if elicitation == "majority_at_k":  # a vote over free-form answers: completion items only
        return "completion" in formats
    if elicitation == "jailbreak":
        return eval_name == "harmful_compliance"
    return True
